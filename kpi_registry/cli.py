"""The `kpi` command line. Every command reports bad input as a message, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import DefinitionError, KPIError
from .model import ATTRIBUTE_TITLES, ATTRIBUTES, KPI
from .registry import Registry, collect, load

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


def registry_from_args(args: argparse.Namespace) -> Registry:
    """The bundled library plus the folders given with --path (shared by feature commands)."""
    return load(*getattr(args, "path", []) or [])


def _width() -> int:
    import shutil

    return min(100, shutil.get_terminal_size((100, 20)).columns)


# -- validate -------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    paths = args.paths or []
    result = collect(paths, include_bundled=not args.no_bundled, examples=not args.no_examples)
    for diag in result.report.diagnostics:
        print(diag)
    errors = len(result.report.errors)
    n = len(result.kpis)
    print(f"{n} definition{'s' * (n != 1)}, {errors} error{'s' * (errors != 1)}")
    return EXIT_ERRORS if errors else EXIT_OK


# -- list / search / show -------------------------------------------------------------------
def _table(kpis: Sequence[KPI]) -> None:
    if not kpis:
        print("no KPIs match")
        return
    width = max(len(k.id) for k in kpis)
    for k in kpis:
        print(f"{k.id:<{width}}  {k.name}  [{k.category}]")


def cmd_list(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    _check_filter(reg, args)
    _table(reg.filter(category=args.category, industry=args.industry, tag=args.tag))
    return EXIT_OK


def _check_filter(reg: Registry, args: argparse.Namespace) -> None:
    from .errors import did_you_mean

    if args.category and args.category not in reg.taxonomy:
        raise KPIError(
            f"unknown category {args.category!r}{did_you_mean(args.category, reg.taxonomy)}"
        )


def cmd_search(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    hits = reg.search(
        " ".join(args.text),
        category=args.category,
        industry=args.industry,
        tag=args.tag,
        limit=args.limit,
    )
    _table(hits)
    return EXIT_OK


def _wrap(text: str, indent: str = "  ") -> str:
    width = _width()
    paragraphs = [p for p in str(text).strip().split("\n\n")]
    return "\n".join(
        textwrap.fill(" ".join(p.split()), width, initial_indent=indent, subsequent_indent=indent)
        for p in paragraphs
    )


def _bullets(items: list[Any]) -> str:
    width = _width()
    lines = []
    for item in items:
        text = item if isinstance(item, str) else " - ".join(str(v) for v in item.values())
        lines.append(
            textwrap.fill(
                " ".join(str(text).split()), width, initial_indent="  - ", subsequent_indent="    "
            )
        )
    return "\n".join(lines)


def cmd_show(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    kpi = reg[args.id]
    d = kpi.data
    title = f"{kpi.name} ({kpi.id})"
    print(title)
    print("=" * len(title))
    print(_wrap(kpi.summary, ""))
    print()
    facts = [
        ("Category", ", ".join(kpi.categories)),
        ("Unit", kpi.unit),
        ("Direction", kpi.direction.replace("_", " ")),
        ("Indicator", kpi.indicator_type),
        ("Status", kpi.status),
        ("Aliases", ", ".join(kpi.aliases)),
        ("Industries", ", ".join(kpi.industries)),
        ("Owner", d.get("owner", "")),
        ("Source file", str(kpi.path)),
        (
            "Origin",
            kpi.origin
            + (f" (overrides {', '.join(map(str, kpi.overridden))})" if kpi.overridden else ""),
        ),
    ]
    for label, value in facts:
        if value:
            print(f"{label + ':':<13}{value}")
    for attr in ATTRIBUTES:
        if attr not in d:
            continue
        print(f"\n{ATTRIBUTE_TITLES[attr]}\n{'-' * len(ATTRIBUTE_TITLES[attr])}")
        value = d[attr]
        if attr == "formula":
            print(f"  {kpi.id} = {' '.join(value['expression'].split())}")
            if value.get("display"):
                print(_wrap(value["display"]))
            if value.get("notes"):
                print(_wrap(value["notes"]))
        elif attr == "change_impact":
            print(_wrap(value.get("summary", "")))
            for effect in value.get("effects", []):
                print(_bullets([f"{effect['kpi']}: {effect['effect']}"]))
        elif attr == "visualization":
            print(_bullets([f"{v['chart']}: {v['description']}" for v in value]))
        elif isinstance(value, list):
            print(_bullets(value))
        else:
            print(_wrap(value))
    if kpi.datapoints:
        print("\nDatapoints\n----------")
        for dp in kpi.datapoints.values():
            print(
                _bullets(
                    [f"{dp.name} ({dp.unit}, {dp.time}, missing={dp.missing}): {dp.description}"]
                )
            )
    sections = [
        ("Leading indicators", reg.leading(kpi.id)),
        ("Lagging indicators", reg.lagging(kpi.id)),
        ("Influences", reg.influences(kpi.id)),
        ("Related", reg.related(kpi.id)),
    ]
    for label, items in sections:
        if items:
            print(f"\n{label}\n{'-' * len(label)}")
            print(_bullets([f"{r['kpi']}: {r['why']}" for r in items]))
    for label, ids in (
        ("Uses in its formula", reg.dependencies(kpi.id)),
        ("Used in the formula of", reg.used_in(kpi.id)),
    ):
        if ids:
            print(f"\n{label}: {', '.join(ids)}")
    for key, label in (("strategies", "Strategies"), ("faq", "FAQ")):
        items = d.get(key) or []
        if items:
            print(f"\n{label}\n{'-' * len(label)}")
            if key == "faq":
                for qa in items:
                    print(_wrap("Q: " + qa["q"]))
                    print(_wrap("A: " + qa["a"], "     "))
            else:
                print(_bullets([f"{s['name']}: {s['description']}" for s in items]))
    return EXIT_OK


# -- eval -----------------------------------------------------------------------------------
def _read_data(path: str):
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise KPIError(f"data file {path!r} not found")
    try:
        if p.suffix == ".parquet":
            return pd.read_parquet(p)
        if p.suffix in (".csv", ".txt"):
            return pd.read_csv(p)
    except Exception as e:  # pandas raises many types for a malformed file
        raise KPIError(f"cannot read {path}: {e}") from None
    raise KPIError(f"data file {path!r}: use .csv or .parquet")


def parse_columns(pairs: list[str]) -> dict[str, str]:
    """--column datapoint=column pairs as a mapping."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise KPIError(f"--column takes datapoint=column, got {pair!r}")
        key, _, value = pair.partition("=")
        out[key.strip()] = value.strip()
    return out


def cmd_eval(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    for kpi_id in args.ids:
        reg[kpi_id]
    # DuckDB reads CSV/Parquet files (and globs) itself, without going through pandas.
    data = args.data if args.engine == "duckdb" else _read_data(args.data)
    result = reg.evaluate_many(
        args.ids,
        data,
        period=args.period,
        entity=args.entity,
        by=args.by or None,
        grain=args.grain,
        columns=parse_columns(args.column),
        engine=args.engine,
    )
    _print_frame(result, args.format)
    for note in result.attrs.get("warnings", []):
        print(f"warning: {note}", file=sys.stderr)
    return EXIT_OK


def _print_frame(frame, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        print(json.dumps(records, indent=2))
    else:
        print(
            frame.to_string(index=False, float_format=lambda v: f"{v:,.2f}")
            if len(frame)
            else "(no rows)"
        )


# -- schema ---------------------------------------------------------------------------------
def cmd_schema(args: argparse.Namespace) -> int:
    from .schema import kpi_schema

    print(json.dumps(kpi_schema(), indent=2))
    return EXIT_OK


# -- parser ---------------------------------------------------------------------------------
def add_path_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--path",
        action="append",
        metavar="DIR",
        help="a folder of your own definitions to add to the bundled library "
        "(repeatable; KPI_REGISTRY_PATH works too)",
    )


def add_request_arguments(
    p: argparse.ArgumentParser,
    *,
    period_required: bool,
    column_help: str = "read a datapoint from a differently named column (repeatable)",
) -> None:
    """The arguments of Registry.evaluate, shared by `kpi eval` and `kpi sql`."""
    p.add_argument(
        "--period",
        required=period_required,
        metavar="COL",
        help="period column (dates, 2024-01, 2024Q1, ...)",
    )
    p.add_argument("--entity", metavar="COL", help="entity column (customer, account, ...)")
    p.add_argument("--by", action="append", metavar="COL", help="group by this column (repeatable)")
    p.add_argument(
        "--grain",
        choices=["day", "week", "month", "quarter", "year"],
        help="coarsen periods to this grain",
    )
    p.add_argument("--column", action="append", metavar="DATAPOINT=COL", help=column_help)


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--category", help="only KPIs in this category")
    p.add_argument("--industry", help="only KPIs used in this industry")
    p.add_argument("--tag", help="only KPIs with this tag")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpi",
        description="Browse, check and evaluate the KPI registry.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "validate",
        help="check definitions and their worked examples",
        description="Check definition files: schema, references, formulas and "
        "worked examples. Prints every error, then a summary line.",
    )
    p.add_argument("paths", nargs="*", help="files or folders (default: the bundled library)")
    p.add_argument(
        "--no-bundled",
        action="store_true",
        help="check the paths on their own, without the bundled library (by default "
        "it is loaded too, so your files may reference bundled KPIs)",
    )
    p.add_argument("--no-examples", action="store_true", help="skip re-computing examples")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("list", help="list KPIs", description="List KPIs, optionally filtered.")
    _add_filters(p)
    add_path_argument(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "search",
        help="find KPIs by name, alias or text",
        description="Search KPIs; best match first.",
    )
    p.add_argument("text", nargs="+", help="words to look for, e.g. NRR or 'net dollar retention'")
    p.add_argument("--limit", type=int, default=20, help="at most this many results")
    _add_filters(p)
    add_path_argument(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser(
        "show",
        help="show every attribute of one KPI",
        description="Show one KPI, readable in a terminal.",
    )
    p.add_argument("id", help="KPI id, e.g. expansion_revenue")
    add_path_argument(p)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "eval",
        help="evaluate KPIs on a CSV or Parquet file",
        description="Evaluate one or more KPIs per period (and group).",
    )
    p.add_argument("ids", nargs="+", metavar="ID", help="KPI ids")
    p.add_argument("--data", required=True, metavar="FILE", help=".csv or .parquet file")
    add_request_arguments(p, period_required=False)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument(
        "--engine",
        choices=["pandas", "duckdb"],
        default="pandas",
        help="pandas (default) or embedded DuckDB, which reads the file directly",
    )
    add_path_argument(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of definition files",
        description="Print the JSON Schema (Draft 2020-12) for editors and CI.",
    )
    p.set_defaults(func=cmd_schema)

    for name in FEATURE_MODULES:
        importlib.import_module(f"{__package__}.{name}").add_commands(sub)
    return parser


#: Modules that bring their own subcommands: each has ``add_commands(subparsers)`` and keeps
#: heavy imports (mkdocs, duckdb, ruamel) inside the command functions.
FEATURE_MODULES: tuple[str, ...] = ("site", "sql", "scaffold", "formatting", "export")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except DefinitionError as e:
        for diag in e.diagnostics:
            print(diag, file=sys.stderr)
        n = len(e.diagnostics)
        print(
            f"{n} error{'s' * (n != 1)} in definitions; run 'kpi validate' for details",
            file=sys.stderr,
        )
        return EXIT_ERRORS
    except KPIError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERRORS
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug of ours, not bad input: say so, keep the trace on request
        if os.environ.get("KPI_DEBUG"):
            raise
        print(
            f"internal error: {type(e).__name__}: {e}\n(this is a bug in kpi-registry; "
            "run again with KPI_DEBUG=1 to see the traceback and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
