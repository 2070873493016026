"""``kpi sql``: print the SQL for one or more KPIs in a chosen dialect."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .spec import DIALECTS, LAYOUTS, PERIOD_TYPES, UNSUPPORTED


def add_commands(sub: Any) -> None:
    from ..cli import add_path_argument, add_request_arguments

    functions = sorted({f for f, _ in UNSUPPORTED})
    gaps = "; ".join(
        f"{f}() not in {', '.join(d for g, d in UNSUPPORTED if g == f)}" for f in functions
    )
    types = "\n".join(f"  {name:<9} {text}" for name, (_, text) in PERIOD_TYPES.items())
    p = sub.add_parser(
        "sql",
        help="print the SQL that computes KPIs in a warehouse",
        description="Print one SQL statement that computes the KPIs per period (and group) "
        "with the same numbers as 'kpi eval'. Every function compiles to every dialect "
        f"except: {gaps}.",
        epilog=f"period types (--period-type):\n{types}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    add_path_argument(p)
    p.set_defaults(func=cmd_sql)


def cmd_sql(args: argparse.Namespace) -> int:
    from ..cli import check_column_keys, parse_columns, registry_from_args
    from ..errors import KPIError, TableNameError
    from ..registry import _request
    from .compiler import compile_many
    from .sqlbuild import table_name

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
    request = _request(args.period, args.entity, args.by, args.grain, columns)
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
    return 0
