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
from typing import TYPE_CHECKING, Any

from .errors import (
    DataError,
    DefinitionError,
    InvalidRowsError,
    KPIError,
    MissingColumnsError,
    RowsError,
    UnknownKPIError,
    _or_list,
    did_you_mean,
)

if TYPE_CHECKING:
    from .model import KPI
    from .registry import Registry

EXIT_OK, EXIT_ERRORS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 70


def registry_from_args(args: argparse.Namespace) -> Registry:
    """The bundled library plus the folders given with --path (shared by feature commands).
    Loaded once per command: main() reuses it to suggest KPIs for an unknown id."""
    reg = getattr(args, "registry", None)
    if reg is None:
        from .registry import load_cached

        reg = load_cached(*getattr(args, "path", []) or [])
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
    from .registry import collect

    paths = args.paths or []
    result = collect(paths, include_bundled=not args.no_bundled, examples=not args.no_examples)
    if args.against:
        from .history import check_against

        files = [k.path for k in result.kpis.values() if k.origin != "bundled" or not paths]
        check_against(files, args.against, result.report)
    for diag in result.report.diagnostics:
        print(diag)
    errors, warnings = len(result.report.errors), len(result.report.warnings)
    n = len(result.kpis)
    summary = f"{n} definition{'s' * (n != 1)}, {errors} error{'s' * (errors != 1)}"
    if warnings:
        summary += f", {warnings} warning{'s' * (warnings != 1)}"
        summary += " (errors with --strict)" if not args.strict else ""
    print(summary)
    return EXIT_ERRORS if errors or (args.strict and warnings) else EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from .history import diff_libraries, library_at, library_now
    from .registry import bundled_dir

    folders = [Path(f) for f in args.path or []] or [bundled_dir("definitions")]
    changes = []
    for folder in folders:
        if not folder.is_dir():
            raise KPIError(f"{folder}: no such folder")
        old = library_at(folder, args.old)
        new = library_at(folder, args.new) if args.new else library_now(folder)
        changes.extend(diff_libraries(old, new))
    if args.format == "json":
        print(json.dumps([vars(c) for c in changes], indent=2))
        return EXIT_OK
    if not changes:
        print(f"no changes to definitions between {args.old} and {args.new or 'the files now'}")
        return EXIT_OK
    current = None
    for change in changes:
        if change.kpi != current:
            current = change.kpi
            print(change.kpi)
        print(f"  {change.summary}")
    return EXIT_OK


# -- list / search / show -------------------------------------------------------------------
def _table(reg: Registry, kpis: Sequence[KPI], category: str | None = None) -> None:
    """One line per KPI: id, name, [function / categories]. With a category filter the matched
    category is shown even where it is not the KPI's main one (marked 'also')."""
    if not kpis:
        print("no KPIs match")
        return
    width = max(len(k.id) for k in kpis)
    for k in kpis:
        where = k.category
        if category is not None and category != k.category:
            where = f"{k.category}, also {category}"
        print(f"{k.id:<{width}}  {k.name}  [{reg.function_of(k.id).id} / {where}]")


#: The columns of `kpi list --format csv|json`: the catalog a spreadsheet or a script wants.
LIST_COLUMNS = (
    "id",
    "name",
    "abbreviations",
    "function",
    "category",
    "categories",
    "unit",
    "direction",
    "indicator_type",
    "status",
    "owner",
    "version",
)


def _catalog_rows(reg: Registry, kpis: Sequence[KPI]) -> list[dict[str, str]]:
    return [
        {
            "id": k.id,
            "name": k.name,
            "abbreviations": " ".join(a for a in k.aliases if a.isupper() and " " not in a),
            "function": reg.function_of(k.id).id,
            "category": k.category,
            "categories": " ".join(k.categories),
            "unit": k.unit,
            "direction": k.direction,
            "indicator_type": k.indicator_type,
            "status": k.status,
            "owner": str(k.data.get("owner") or ""),
            "version": str(k.data.get("version") or ""),
        }
        for k in kpis
    ]


def cmd_list(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    _check_filter(reg, args)
    kpis = reg.filter(
        category=args.category, industry=args.industry, tag=args.tag, function=args.function
    )
    if args.format == "json":
        print(json.dumps(_catalog_rows(reg, kpis), indent=2, ensure_ascii=False))
    elif args.format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=LIST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_catalog_rows(reg, kpis))
    else:
        _table(reg, kpis, args.category)
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
    _table(reg, hits, args.category)
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
    from .model import ATTRIBUTE_TITLES, ATTRIBUTES

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
    needed = reg.inputs(kpi.id)
    if needed and [dp.name for dp in needed] != list(kpi.datapoints):
        print("\nData columns it needs (with the KPIs it is built from)")
        print("-" * 54)
        print(_bullets([f"{dp.name} ({dp.unit}): {dp.description}" for dp in needed]))
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
        from .drivertree import tree_text

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
            from .request import shown_columns

            datapoints = sorted(name for name in inputs if name not in reg)
            raise KPIError(
                f"--column {key}={column}: {', '.join(ids)} read{'s' * (len(ids) == 1)} "
                f"no datapoint {key!r}"
                f"{did_you_mean(key, inputs)}; the datapoints are {shown_columns(datapoints)}"
            )


def cmd_eval(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    result = _evaluate_args(reg, args, with_targets=args.targets)
    shown = _grain_heading(result, args.period, args.grain)
    if args.format == "table":
        period_col = next((c for c in (args.grain, args.period) if c in shown.columns), None)
        _print_readable(shown, period_col, args.grain or "period", result.attrs)
    else:
        _print_frame(shown, args.format)
    _print_warnings(result)
    return EXIT_OK


def _grain_heading(frame, period: str | None, grain: str | None):
    """The result as `kpi eval` shows it: the period column headed by the grain asked for
    ("quarter" for 2024Q2, not the data's "month"). Only the command line renames it: the API
    frame keeps the caller's column name, which code downstream selects by."""
    if not (period and grain) or grain == period or period not in frame.columns:
        return frame
    if grain in frame.columns:  # a group or KPI column of that name: keep both distinct
        return frame
    return frame.rename(columns={period: grain})


def _print_readable(frame, period_col: str | None, grain: str, attrs: dict) -> None:
    """A table for people: numbers with separators, a dash where a KPI has no value (as on the
    site), partial periods marked, and how many cells are undefined."""
    import math

    if not len(frame):
        print("(no rows)")
        return
    partial = {str(p) for p in attrs.get("partial_periods", [])}
    cells: dict[str, list[str]] = {}
    for col in frame.columns:
        texts = []
        for value in frame[col]:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                texts.append("-")
            elif isinstance(value, float):
                texts.append(f"{value:,.2f}")
            else:
                text = str(value)
                if text in ("NaT", "<NA>", "nan"):
                    text = "-"
                if col == period_col and partial:
                    text += " *" if str(value) in partial else "  "
                texts.append(text)
        cells[str(col)] = texts
    numeric = {str(c) for c in frame.columns if frame[c].dtype.kind in "fiu"}
    widths = {c: max(len(c), *(len(t) for t in texts)) for c, texts in cells.items()}

    def cell(col: str, text: str) -> str:
        return text.rjust(widths[col]) if col in numeric else text.ljust(widths[col])

    print("  ".join(cell(c, c) for c in cells).rstrip())
    for i in range(len(frame)):
        print("  ".join(cell(c, cells[c][i]) for c in cells).rstrip())
    if partial:
        labels = ", ".join(sorted(partial))
        print(f"* partial {grain}: the data covers only part of {labels}")
    undefined = {k: n for k, n in attrs.get("undefined", {}).items() if n}
    if undefined:
        total = sum(undefined.values())
        per_kpi = ", ".join(f"{k} {n}" for k, n in undefined.items())
        print(f"- {total} undefined cell{'s' * (total != 1)} (no value): {per_kpi}")


def _read_data_args(args: argparse.Namespace):
    """(checked files, data for the engine, row counts per file) from --data and --engine.
    A glob is expanded once, so both engines read the same list; DuckDB reads the files
    itself, without going through pandas."""
    from .datafiles import check_inputs, read_all

    checked = check_inputs(args.data)
    if args.engine == "duckdb":
        return checked, ([str(c.path) for c in checked] if len(checked) > 1 else args.data), []
    data, sizes = read_all(checked)
    return checked, data, sizes


def _evaluate_args(reg: Registry, args: argparse.Namespace, *, with_targets: bool):
    """The frame `kpi eval` (and `kpi scorecard`) compute from --data and the request options."""
    from .datafiles import _csv_line as csv_line
    from .datafiles import (
        date_message,
        file_of_row,
        find_not_utf8,
        locate_data_error,
    )
    from .periods import AmbiguousDateError, DateFormatError

    for kpi_id in args.ids:
        reg[kpi_id]
    columns = parse_columns(args.column)
    check_column_keys(reg, args.ids, columns)
    checked, data, sizes = _read_data_args(args)
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
            date_format=args.date_format,
            with_targets=with_targets,
            drop_invalid=args.drop_invalid,
        )
    except MissingColumnsError:
        raise  # names every missing column itself; main() words it for the command line
    except (AmbiguousDateError, DateFormatError) as e:
        raise DataError(date_message(e, checked, args.data)) from None
    except RowsError as e:  # rows named by their facts: as CSV lines when the file is CSV
        if len(checked) == 1 and checked[0].kind == "csv":
            lines = [csv_line(checked[0], r) if isinstance(r, int) else None for r in e.rows]
            if all(line is not None for line in lines):
                what = "line" if isinstance(e, InvalidRowsError) else "lines"
                raise DataError(f"{args.data}: {e.render(lines, what)}") from None
        raise DataError(f"{args.data}: {e}") from None
    except DataError as e:
        message = str(e)
        if args.engine == "duckdb" and len(checked) == 1 and checked[0].kind == "csv":
            if "CSV Error" in message:
                found = find_not_utf8(checked[0])  # DuckDB says only "CSV Error on Line: 3"
                if not found.startswith("cannot read"):
                    raise DataError(found) from None
        located, where = None, args.data
        if args.engine == "pandas":
            located, message = file_of_row(checked, sizes, message)
            where = str(located.path) if len(checked) > 1 else args.data
        raise DataError(locate_data_error(message, where, located)) from None
    if len(checked) > 1:
        print(f"read {len(checked)} files matching {args.data}:", file=sys.stderr)
        for c in checked:
            print(f"  {c.path}", file=sys.stderr)
    if args.engine == "pandas" and not len(data):
        result.attrs.setdefault("warnings", []).append(f"{args.data} has no data rows")
    return result


def _print_warnings(result) -> None:
    for note in result.attrs.get("warnings", []):
        print(f"warning: {note}", file=sys.stderr)


def cmd_scorecard(args: argparse.Namespace) -> int:
    from .files import replace_text
    from .scorecard import html_page, scorecard_lines, text_table

    if not args.period:
        raise KPIError("a scorecard compares periods: give the period column with --period COL")
    reg = registry_from_args(args)
    result = _evaluate_args(reg, args, with_targets=True)
    lines = scorecard_lines(result, [reg[i] for i in args.ids], args.period, list(args.by or []))
    if not lines:
        print("(no rows)")
        return EXIT_OK
    print(text_table(lines))
    if args.html:
        note = (
            f"Computed by kpi-registry from {Path(args.data).name}, latest period "
            f"{lines[0].period}; status from each KPI's targets and direction."
        )
        replace_text(Path(args.html), html_page(lines, args.title, note))
        print(f"wrote {args.html}", file=sys.stderr)
    _print_warnings(result)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Why a KPI moved between --from and --to: its drivers' shares and a reading."""
    from .attribution import as_text, reading
    from .datafiles import locate_data_error

    reg = registry_from_args(args)
    reg[args.id]
    columns = parse_columns(args.column)
    check_column_keys(reg, [args.id], columns)
    checked, data, _ = _read_data_args(args)  # as kpi eval reads it
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
            date_format=args.date_format,
        )
    except MissingColumnsError:
        raise  # names every missing column itself; main() words it for the command line
    except DataError as e:
        located = checked[0] if args.engine == "pandas" and len(checked) == 1 else None
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
    from .request import Request, check_request

    check_request(Request(period=args.period, entity=args.entity, by=list(args.by or [])))


def _add_drop_invalid_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--drop-invalid",
        action="store_true",
        help="compute on the rows left after leaving out those outside a datapoint's valid "
        "range or contradicting each other (they are listed as a warning); without it they "
        "are an error",
    )


def _add_engine_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--engine",
        choices=["pandas", "duckdb"],
        default="pandas",
        help="pandas (default) or embedded DuckDB, which reads the file directly",
    )
    p.add_argument(
        "--date-format",
        metavar="FORMAT",
        help="how text dates in the period column are written, e.g. %%d/%%m/%%Y or %%m/%%d/%%Y "
        "(strptime codes); needed for dates that start with the day or the month",
    )


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
    p.add_argument(
        "--strict",
        action="store_true",
        help="warnings (a TODO or placeholder left in a draft) are errors too",
    )
    p.add_argument(
        "--against",
        metavar="REV",
        help="also compare with git revision REV (e.g. HEAD, main): a definition whose formula, "
        "datapoints or unit changed needs a new version, and a certified one is no longer "
        "certified",
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "diff",
        help="what changed in the library between two git revisions",
        description="List the changes to definitions between two git revisions, KPI by KPI: "
        "formulas, datapoints, units, directions, relations, examples, added and removed KPIs. "
        "With one revision, compares it with the files on disk.",
    )
    p.add_argument("old", metavar="REV", help="the earlier revision, e.g. v1.2 or HEAD~5")
    p.add_argument("new", metavar="REV", nargs="?", help="the later one (default: the files now)")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument(
        "--path",
        action="append",
        metavar="DIR",
        help="a definition folder to compare (repeatable; default: the bundled library's)",
    )
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("list", help="list KPIs", description="List KPIs, optionally filtered.")
    _add_filters(p)
    p.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table (default), or the catalog as CSV or JSON: id, name, abbreviations, "
        "function, categories, unit, direction, indicator type, status, owner, version",
    )
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
        help=".csv (also .tsv, .txt, .csv.gz) or .parquet file, or a glob of such files "
        "(hidden files, named .*, are not matched)",
    )
    add_request_arguments(p, period_required=False)
    _add_drop_invalid_argument(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    _add_engine_argument(p)
    p.add_argument(
        "--targets",
        action="store_true",
        help="add each KPI's target and status (on_track, at_risk, off_track, no_data) from "
        "the targets loaded with the definitions (_targets.yaml, or targets: in a KPI's file)",
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
    _add_engine_argument(p)
    add_path_argument(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "scorecard",
        help="the latest period of several KPIs against their targets",
        description="Evaluate KPIs on a data file and show, for the latest period, each "
        "KPI's value, the period before, its target and status; --html writes the same as "
        "one self-contained page with a trend line per KPI.",
    )
    p.add_argument("ids", nargs="+", metavar="ID", help="KPI ids")
    p.add_argument("--data", required=True, metavar="FILE", help="as for kpi eval")
    add_request_arguments(p, period_required=False)
    _add_engine_argument(p)
    _add_drop_invalid_argument(p)
    p.add_argument("--html", metavar="FILE", help="also write the scorecard as an HTML page")
    p.add_argument("--title", default="KPI scorecard", help="title of the HTML page")
    add_path_argument(p)
    p.set_defaults(func=cmd_scorecard)

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
FEATURE_MODULES: tuple[str, ...] = (
    "site",
    "sql",
    "scaffold",
    "formatting",
    "export",
    "mcp_server",
)


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


def main(argv: Sequence[str] | None = None, *, registry: Registry | None = None) -> int:
    """Run one command; ``registry`` (already loaded) spares a long-running caller such as
    ``kpi mcp`` loading the library again for every command it runs."""
    try:
        return _main(argv, registry)
    except KeyboardInterrupt:  # also while the feature modules are imported
        return 130


def _main(argv: Sequence[str] | None, registry: Registry | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if registry is not None:
        args.registry = registry
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
    except MissingColumnsError as e:
        print(f"error: {_missing_columns_message(e, getattr(args, 'data', None))}", file=sys.stderr)
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


def _missing_columns_message(e: MissingColumnsError, data: str | None) -> str:
    plural = len(e.missing) > 1
    names = ", ".join(
        f"{m.datapoint!r}" + (f" (--column {m.datapoint}={m.mapped_to})" if m.mapped_to else "")
        for m in e.missing
    )
    shown = ", ".join(repr(c) for c in e.columns[:12]) + (" ..." if len(e.columns) > 12 else "")
    options = " ".join(f"--column {m.datapoint}=COL" for m in e.missing)
    text = (
        f"{data + ': ' if data else ''}the data has no column for datapoint{'s' * plural} "
        f"{names}; columns are {shown}. Map {'each' if plural else 'it'} with {options}"
    )
    return text + "".join(f"\n  {m.datapoint}: {m.description} ({m.unit})" for m in e.missing)


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
