"""The `kpi` command line. Every command reports bad input as a message, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .attribution import tree_text
from .datafiles import check_data_file, check_inputs, find_not_utf8, locate_data_error, read_data
from .errors import DataError, DefinitionError, KPIError, UnknownKPIError, _or_list, did_you_mean
from .evaluation import Request, check_request, shown_columns
from .model import ATTRIBUTE_TITLES, ATTRIBUTES, KPI
from .registry import Registry, collect, load

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


def registry_from_args(args: argparse.Namespace) -> Registry:
    """The bundled library plus the folders given with --path (shared by feature commands).
    Loaded once per command: main() reuses it to suggest KPIs for an unknown id."""
    reg = getattr(args, "registry", None)
    if reg is None:
        reg = load(*getattr(args, "path", []) or [])
        args.registry = reg
    return reg


def near_kpis(reg: Registry, word: str, similar: Sequence[str] = ()) -> list[str]:
    """KPIs a person probably meant by an id that does not exist: the KPI whose name or alias
    it is ('NRR', 'Net Revenue Retention'), else ids spelt ``similar``ly, else search hits."""

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "", text.lower())

    key = norm(word)
    named = [k.id for k in reg if key and key in {norm(k.name), *map(norm, k.aliases)}]
    if named or similar:
        return (named or list(similar))[:3]
    return [k.id for k in reg.search(word.replace("_", " "), limit=3)]


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
def _table(reg: Registry, kpis: Sequence[KPI]) -> None:
    if not kpis:
        print("no KPIs match")
        return
    width = max(len(k.id) for k in kpis)
    for k in kpis:
        print(f"{k.id:<{width}}  {k.name}  [{reg.function_of(k.id).id} / {k.category}]")


def cmd_list(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    _check_filter(reg, args)
    _table(
        reg,
        reg.filter(
            category=args.category, industry=args.industry, tag=args.tag, function=args.function
        ),
    )
    return EXIT_OK


def _check_filter(reg: Registry, args: argparse.Namespace) -> None:
    if args.category is not None and args.category not in reg.taxonomy:
        raise KPIError(
            f"unknown category {args.category!r}{did_you_mean(args.category, reg.taxonomy)}"
        )
    if args.function is not None and args.function not in reg.functions:
        raise KPIError(
            f"unknown function {args.function!r}{did_you_mean(args.function, reg.functions)}; "
            f"functions: {', '.join(sorted(reg.functions))}"
        )
    for label, value, known in (
        ("industry", args.industry, {i for k in reg for i in k.industries}),
        ("tag", args.tag, {t for k in reg for t in k.tags}),
    ):
        if value is not None and value not in known:
            raise KPIError(
                f"no KPI has the {label} {value!r}{did_you_mean(value, known)}; "
                f"'kpi list' shows every KPI"
            )


def cmd_search(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    _check_filter(reg, args)
    hits = reg.search(
        " ".join(args.text),
        category=args.category,
        industry=args.industry,
        tag=args.tag,
        function=args.function,
        limit=args.limit,
    )
    _table(reg, hits)
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
    function = reg.function_of(kpi.id)
    facts = [
        ("Function", f"{function.name} ({function.id})"),
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
    if kpi.expression is not None and (tree := reg.drivers(kpi.id)).children:
        print("\nDriver tree\n-----------")
        print(tree_text(tree))
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
#: Data files by how their names end (case does not matter), as the DuckDB engine reads them.
def parse_columns(pairs: list[str]) -> dict[str, str]:
    """--column datapoint=column pairs as a mapping."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, eq, value = (part.strip() for part in pair.partition("="))
        if not (eq and key and value):
            raise KPIError(f"--column takes datapoint=column, got {pair!r}")
        if key in out and out[key] != value:
            raise KPIError(
                f"--column {key} is given twice ({out[key]!r} and {value!r}); give it once"
            )
        out[key] = value
    return out


def check_column_keys(reg: Registry, ids: Sequence[str], columns: dict[str, str]) -> None:
    """Every --column names a datapoint (or KPI) the requested KPIs read: a misspelt one would
    otherwise be ignored without a word."""
    inputs: set[str] = set()
    todo = list(ids)
    while todo:
        kpi_id = todo.pop()
        if kpi_id not in inputs:
            inputs.add(kpi_id)
            inputs.update(reg[kpi_id].datapoints)
            todo.extend(reg.dependencies(kpi_id))
    for key, column in columns.items():
        if key not in inputs:
            datapoints = sorted(name for name in inputs if name not in reg)
            raise KPIError(
                f"--column {key}={column}: {', '.join(ids)} read{'s' * (len(ids) == 1)} "
                f"no datapoint {key!r}"
                f"{did_you_mean(key, inputs)}; the datapoints are {shown_columns(datapoints)}"
            )


def cmd_eval(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    for kpi_id in args.ids:
        reg[kpi_id]
    columns = parse_columns(args.column)
    check_column_keys(reg, args.ids, columns)
    checked = check_inputs(args.data) if args.engine == "duckdb" else check_data_file(args.data)
    # DuckDB reads CSV/Parquet files (and globs) itself, without going through pandas.
    data = args.data if args.engine == "duckdb" else read_data(checked)
    try:
        result = reg.evaluate_many(
            args.ids,
            data,
            period=args.period,
            entity=args.entity,
            by=args.by or None,
            grain=args.grain,
            columns=columns,
            engine=args.engine,
        )
    except DataError as e:
        if args.engine == "duckdb" and checked and checked.kind == "csv" and "CSV Error" in str(e):
            message = find_not_utf8(checked)  # DuckDB says only "CSV Error on Line: 3"
            if not message.startswith("cannot read"):
                raise DataError(message) from None
        located = checked if args.engine == "pandas" else None
        raise DataError(locate_data_error(str(e), args.data, located)) from None
    _print_frame(result, args.format)
    for note in result.attrs.get("warnings", []):
        print(f"warning: {note}", file=sys.stderr)
    if args.engine == "pandas" and not len(data):
        print(f"warning: {args.data} has no data rows", file=sys.stderr)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Why a KPI moved between --from and --to: its drivers' shares and a reading."""
    from .attribution import as_text, reading

    reg = registry_from_args(args)
    reg[args.id]
    columns = parse_columns(args.column)
    check_column_keys(reg, [args.id], columns)
    checked = check_inputs(args.data) if args.engine == "duckdb" else check_data_file(args.data)
    data = args.data if args.engine == "duckdb" else read_data(checked)
    try:
        frame = reg.explain(
            args.id,
            data,
            start=args.start,
            end=args.end,
            period=args.period,
            entity=args.entity,
            by=args.by or None,
            grain=args.grain,
            columns=columns,
            engine=args.engine,
        )
    except DataError as e:
        located = checked if args.engine == "pandas" else None
        raise DataError(locate_data_error(str(e), args.data, located)) from None
    if args.format == "table":
        print(as_text(frame))
        print()
        print(_wrap(reading(frame, reg[args.id].name), ""))
    else:
        _print_frame(frame, args.format)
    for note in frame.attrs.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"give a whole number of 1 or more, not {text!r}")
    return value


def _column(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give a column name")
    return text


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
        type=_column,
        metavar="COL",
        help="period column (dates, 2024-01, 2024Q1, ...)",
    )
    p.add_argument(
        "--entity", type=_column, metavar="COL", help="entity column (customer, account, ...)"
    )
    p.add_argument(
        "--by",
        action="append",
        type=_column,
        metavar="COL",
        help="group by this column (repeatable)",
    )
    p.add_argument(
        "--grain",
        choices=["day", "week", "month", "quarter", "year"],
        help="coarsen periods to this grain",
    )
    p.add_argument("--column", action="append", metavar="DATAPOINT=COL", help=column_help)
    p.set_defaults(check_request=check_request_arguments)


def check_request_arguments(args: argparse.Namespace) -> None:
    """The period, entity and group columns of one request name different columns (main()
    calls this for every command with these arguments, before the command runs): the
    engines' own rule (evaluation.check_request), worded as options by _CLI_WORDING."""
    check_request(Request(period=args.period, entity=args.entity, by=list(args.by or [])))


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--function", help="only KPIs of this business function, e.g. finance")
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
    p.add_argument("--limit", type=_positive, default=20, help="at most this many results")
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
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help=".csv (also .tsv, .txt, .csv.gz) or .parquet file; with --engine duckdb a glob too",
    )
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
        "explain",
        help="attribute a KPI's change between two periods to its drivers",
        description="Split the change of a KPI between --from and --to exactly among the "
        "KPIs and datapoints of its formula (and among segments with --by).",
    )
    p.add_argument("id", metavar="ID", help="KPI id")
    p.add_argument("--data", required=True, metavar="FILE", help="as for kpi eval")
    p.add_argument("--from", dest="start", required=True, metavar="PERIOD", help="e.g. 2024-01")
    p.add_argument("--to", dest="end", required=True, metavar="PERIOD", help="e.g. 2024-02")
    add_request_arguments(p, period_required=True)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--engine", choices=["pandas", "duckdb"], default="pandas")
    add_path_argument(p)
    p.set_defaults(func=cmd_explain)

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


#: Python API wording in engine messages, as a command-line user writes it.
_CLI_WORDING = (
    (re.compile(r"^by column '([^']*)' is given twice"), r"--by \1 is given twice"),
    (re.compile(r"^by column '([^']*)' is the period"), r"--by \1: '\1' is the period"),
    (re.compile(r"^entity column '([^']*)' is the period"), r"--entity \1: '\1' is the period"),
    (re.compile(r"pass entity='your_entity_column'"), "give the entity column with --entity COL"),
    (
        re.compile(r"pass period='your_period_column' \(kpi eval: --period COL\)"),
        "give the period column with --period COL",
    ),
    (
        re.compile(r"Map it with columns=\{'([^']*)': 'your_column'\}"),
        r"Map it with --column \1=COL",
    ),
)


def cli_message(message: str) -> str:
    for pattern, wording in _CLI_WORDING:
        message = pattern.sub(wording, message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while the feature modules are imported
        return 130


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        if check := getattr(args, "check_request", None):
            check(args)
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
    except UnknownKPIError as e:
        reg = getattr(args, "registry", None)
        near = near_kpis(reg, e.kpi_id, e.suggestions) if reg is not None else e.suggestions
        hint = f"; did you mean {_or_list(near)}?" if near else ""
        print(f"error: unknown KPI id {e.kpi_id!r}{hint}", file=sys.stderr)
        return EXIT_ERRORS
    except KPIError as e:
        print(f"error: {cli_message(str(e))}", file=sys.stderr)
        return EXIT_ERRORS
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:  # a folder that cannot be written, a disk that is full: not a bug
        if e.errno is None or os.environ.get("KPI_DEBUG"):
            return _internal_error(e)
        where = f"{e.filename}: " if e.filename is not None else ""
        reason = e.strerror
        if isinstance(e, FileExistsError) and Path(e.filename).is_file():
            reason = "is a file, where a folder is needed"  # mkdir(parents=True) on a file
        print(f"error: {where}{reason}", file=sys.stderr)
        return EXIT_ERRORS
    except Exception as e:  # a bug of ours, not bad input: say so, keep the trace on request
        return _internal_error(e)


def _internal_error(e: Exception) -> int:
    if os.environ.get("KPI_DEBUG"):
        raise e
    print(
        f"internal error: {type(e).__name__}: {e}\n(this is a bug in kpi-registry; "
        "run again with KPI_DEBUG=1 to see the traceback and please report it)",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
