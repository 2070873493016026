"""Run KPI formulas where the data lives: compile them to SQL, or run them in embedded DuckDB.

The SQL is built as a sqlglot syntax tree (never by pasting strings) and computes exactly the
frame the pandas engine returns: the same dense entity x period grid (a customer missing from
an export is 0 or NULL there, as its datapoint declares), the same carried-forward groups, the
same "no previous period" gaps and the same two-valued logic for conditions. Where the
formulas provably ignore the grid's empty cells, it skips them (``sparse.py``) and gets the
same numbers from the rows and the period after each.

Public entry points (sqlglot and duckdb are imported only when one is used)::

    compile_many(kpis, ids, table, request, dialect="duckdb")  # -> SQL text
    evaluate_duckdb(kpis, ids, data, request)                  # -> pandas DataFrame
    duckdb_sql(kpis, ids, data, request)                       # -> the SQL it runs there

``Registry.to_sql``, ``Registry.to_sql_many`` and ``Registry.evaluate(..., engine="duckdb")``
call these; ``kpi sql`` is the command line twin.
"""

from __future__ import annotations

from typing import Any

from .spec import DIALECTS, PERIOD_TYPES, UNSUPPORTED, PeriodFormat, SQLCompileError

__all__ = [
    "DIALECTS",
    "PERIOD_TYPES",
    "UNSUPPORTED",
    "PeriodFormat",
    "SQLCompileError",
    "compile_many",
    "duckdb_sql",
    "evaluate_duckdb",
]


def __getattr__(name: str) -> Any:
    # Lazy so that `kpi --help` does not pay for importing sqlglot and duckdb.
    if name == "compile_many":
        from .compiler import compile_many

        return compile_many
    if name == "evaluate_duckdb":
        from .duckdb_engine import evaluate_duckdb

        return evaluate_duckdb
    if name == "duckdb_sql":
        from .duckdb_engine import duckdb_sql

        return duckdb_sql
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
