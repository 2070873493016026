"""Evaluating KPIs on data: `kpi eval`, `kpi explain`, `kpi scorecard`, and their SQL twin
`kpi sql`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .args import (
    EXIT_OK,
    add_drop_invalid_argument,
    add_engine_argument,
    add_path_argument,
    add_request_arguments,
    check_column_keys,
    parse_columns,
    registry_from_args,
)
from .text import wrap

if TYPE_CHECKING:
    from ..registry import Registry


# -- eval -------------------------------------------------------------------------------------
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
    """(checked files, data for the engine, row counts per file) from --data and --engine."""
    from ..datafiles import read_for_engine

    return read_for_engine(args.data, args.engine)


def _evaluate_args(reg: Registry, args: argparse.Namespace, *, with_targets: bool):
    """The frame `kpi eval` (and `kpi scorecard`) compute from --data and the request options."""
    from ..datafiles import cell_message, csv_line, date_message, value_hint
    from ..errors import CellError, DataError, InvalidRowsError, MissingColumnsError, RowsError
    from ..periods import AmbiguousDateError, DateFormatError
    from .wording import error_text

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
    except CellError as e:  # rows as pandas counts them: placed in the files it read
        seen = checked if args.engine == "pandas" else []
        raise DataError(cell_message(e, seen, sizes, args.data)) from None
    except DataError as e:
        if args.engine == "duckdb" and len(checked) == 1 and checked[0].kind == "csv":
            not_utf8 = _duckdb_csv_not_utf8(e, checked[0])
            if not_utf8:
                raise DataError(not_utf8) from None
        raise DataError(f"{args.data}: {error_text(e)}{value_hint(e)}") from None
    if len(checked) > 1:
        print(f"read {len(checked)} files matching {args.data}:", file=sys.stderr)
        for c in checked:
            print(f"  {c.path}", file=sys.stderr)
    if args.engine == "pandas" and not len(data):
        result.attrs.setdefault("warnings", []).append(f"{args.data} has no data rows")
    return result


def _duckdb_csv_not_utf8(error: Exception, data) -> str | None:
    """The line of a CSV file that is not UTF-8, when DuckDB stopped on it.

    This reads a third party's message, not ours: DuckDB raises an InvalidInputException
    with no field saying why it stopped (DuckDB 2.0), and says only "CSV Error on Line: 3"
    (its count, without the byte). So its text is looked at here, in this one place, and
    the file is read again to find the line and the byte ourselves."""
    from ..datafiles import find_not_utf8

    if "CSV Error" not in str(error):
        return None
    found = find_not_utf8(data)
    return None if found.startswith("cannot read") else found


def _print_warnings(result) -> None:
    for note in result.attrs.get("warnings", []):
        print(f"warning: {note}", file=sys.stderr)


def cmd_scorecard(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import KPIError
    from ..files import replace_text
    from ..scorecard import html_page, scorecard_lines, text_table

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
    from ..attribution import as_text, reading
    from ..datafiles import cell_message, value_hint
    from ..errors import CellError, DataError, MissingColumnsError
    from .wording import error_text

    reg = registry_from_args(args)
    reg[args.id]
    columns = parse_columns(args.column)
    check_column_keys(reg, [args.id], columns)
    checked, data, sizes = _read_data_args(args)  # as kpi eval reads it
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
    except CellError as e:  # rows as pandas counts them: placed in the files it read
        seen = checked if args.engine == "pandas" else []
        raise DataError(cell_message(e, seen, sizes, args.data)) from None
    except DataError as e:
        raise DataError(f"{args.data}: {error_text(e)}{value_hint(e)}") from None
    if args.format == "table":
        print(as_text(frame))
        print()
        print(wrap(reading(frame, reg[args.id].name), ""))
    else:
        _print_frame(frame, args.format)
    for note in frame.attrs.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    return EXIT_OK


def _print_frame(frame, fmt: str) -> None:
    if fmt == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif fmt == "json":
        import json

        records = json.loads(frame.to_json(orient="records", date_format="iso"))
        print(json.dumps(records, indent=2))
    else:
        print(
            frame.to_string(index=False, float_format=lambda v: f"{v:,.2f}")
            if len(frame)
            else "(no rows)"
        )


# -- sql --------------------------------------------------------------------------------------
def cmd_sql(args: argparse.Namespace) -> int:
    from ..errors import KPIError, TableNameError
    from ..registry import build_request
    from ..sql.compiler import compile_many
    from ..sql.sqlbuild import table_name

    try:
        table_name(args.table)  # refused before the definitions are read
    except TableNameError as e:
        raise KPIError(
            f"--table {e.table!r} is not a table name: {e.reason}; {TableNameError.EXAMPLE}"
        ) from None
    reg = registry_from_args(args)
    ids = [reg.resolve(i) for i in args.ids]  # ids or aliases
    columns = parse_columns(args.column)
    check_column_keys(reg, ids, columns)  # a misspelt --column would be ignored silently
    request = build_request(
        args.period, args.entity, args.by, args.grain, columns, drop_invalid=args.drop_invalid
    )
    sql = compile_many(
        reg.kpis,
        ids,
        args.table,
        request,
        dialect=args.dialect,
        period_type=args.period_type,
        order=args.order,
        layout=args.layout,
    )
    sys.stdout.write(sql + ";\n")
    return EXIT_OK


# -- registration -----------------------------------------------------------------------------
def add_eval(sub) -> None:
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
    add_drop_invalid_argument(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    add_engine_argument(p)
    p.add_argument(
        "--targets",
        action="store_true",
        help="add each KPI's target and status (on_track, at_risk, off_track, no_data) from "
        "the targets loaded with the definitions (_targets.yaml, or targets: in a KPI's file)",
    )
    add_path_argument(p)
    p.set_defaults(func=cmd_eval)


def add_explain(sub) -> None:
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
    add_engine_argument(p)
    add_path_argument(p)
    p.set_defaults(func=cmd_explain)


def add_scorecard(sub) -> None:
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
    add_engine_argument(p)
    add_drop_invalid_argument(p)
    p.add_argument("--html", metavar="FILE", help="also write the scorecard as an HTML page")
    p.add_argument("--title", default="KPI scorecard", help="title of the HTML page")
    add_path_argument(p)
    p.set_defaults(func=cmd_scorecard)


def add_sql(sub) -> None:
    p = sub.add_parser("sql", help="print the SQL that computes KPIs in a warehouse")
    p.later(_sql_arguments)  # the dialects and period types come from sql.spec


def _sql_arguments(p: argparse.ArgumentParser) -> None:
    from ..sql.spec import DIALECTS, LAYOUTS, PERIOD_TYPES, UNSUPPORTED

    functions = sorted({f for f, _ in UNSUPPORTED})
    gaps = "; ".join(
        f"{f}() not in {', '.join(d for g, d in UNSUPPORTED if g == f)}" for f in functions
    )
    types = "\n".join(f"  {name:<9} {text}" for name, (_, text) in PERIOD_TYPES.items())
    p.description = (
        "Print one SQL statement that computes the KPIs per period (and group) "
        "with the same numbers as 'kpi eval'. Every function compiles to every dialect "
        f"except: {gaps}."
    )
    p.epilog = f"period types (--period-type):\n{types}"
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("ids", nargs="+", metavar="ID", help="KPI ids")
    p.add_argument("--table", required=True, metavar="T", help="table to read, e.g. analytics.mrr")
    add_request_arguments(
        p,
        period_required=True,
        column_help="read a datapoint (or a KPI given as data) from this column (repeatable)",
    )
    p.add_argument("--dialect", choices=DIALECTS, default="duckdb", help="SQL dialect")
    p.add_argument(
        "--period-type",
        choices=list(PERIOD_TYPES),
        default="month",
        help="how the period column is written (default: month, text such as 2024-01)",
    )
    p.add_argument(
        "--order",
        metavar="COL",
        help="column that orders rows (e.g. a load timestamp): needed for datapoints that keep "
        "the last row of an entity-period; with --by it also picks the group when one entity's "
        "rows in a period disagree (else the largest value is taken)",
    )
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="auto",
        help="with --entity: 'dense' builds every entity in every period, 'sparse' only the "
        "periods with rows and the one after each (exact only for some formulas), 'auto' "
        "(default) sparse where that provably gives the same numbers; a comment in the SQL "
        "says which and why",
    )
    add_drop_invalid_argument(p)
    add_path_argument(p)
    p.set_defaults(func=cmd_sql)
