"""The SQL backend covers every formula function in every dialect, or says why not.

Each function of ``formula.FUNCTIONS`` has a handler in ``sql.translate.FUNCTIONS`` and
compiles in each dialect, unless that dialect's record lists it as unsupported with a reason;
then compiling it is an ``UnsupportedFunctionError`` carrying the KPI, the function, the dialect
and the reason. A function added to the language without either is a failing test here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sqlglot
from sql_helpers import assert_same, messy_frame

from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.formula import FUNCTIONS, parse
from kpi_registry.model import KPI
from kpi_registry.sql import DIALECTS, compile_many, evaluate_duckdb
from kpi_registry.sql.dialects import RECORDS
from kpi_registry.sql.spec import UnsupportedFunctionError
from kpi_registry.sql.translate import FUNCTIONS as SQL_FUNCTIONS
from kpi_registry.sql.translate import UNSUPPORTED_FUNCTIONS

DATAPOINTS = [
    {"name": "revenue", "rows": "sum", "time": "stock", "missing": "zero"},
    {"name": "discount", "rows": "mean", "time": "stock", "missing": "null"},
]
GRID = Request("month", "customer", [], None, {"revenue": "mrr"})

#: One formula per function that uses it where it belongs (inside or outside an aggregate).
USES = {
    "if": "sum(if(revenue > 100, revenue, 0))",
    "abs": "sum(abs(revenue - 200))",
    "greatest": "sum(greatest(discount, revenue / 1000))",
    "least": "sum(least(discount, revenue / 1000))",
    "coalesce": "sum(coalesce(discount, 0.5))",
    "months_in_period": "sum(revenue) * months_in_period()",
    "days_in_period": "sum(revenue) / days_in_period()",
    "business_days_in_period": "sum(revenue) / business_days_in_period()",
    "previous": "sum(revenue - previous(revenue))",
    "ever_before": "count(revenue, revenue > 0 and ever_before(revenue > 500))",
    "sum": "sum(revenue)",
    "count": "count(revenue, revenue > 0)",
    "count_distinct": "count_distinct(revenue)",
    "mean": "mean(revenue)",
    "median": "median(revenue)",
    "min": "min(revenue)",
    "max": "max(revenue)",
}


def _kpis(expression: str) -> dict[str, KPI]:
    return {"x": KPI("x", {"datapoints": DATAPOINTS}, Path("x.yaml"), expression=parse(expression))}


def test_every_function_has_a_use_here():
    assert set(USES) == set(FUNCTIONS)


@pytest.mark.parametrize("func", sorted(FUNCTIONS))
def test_every_function_has_a_sql_handler_or_a_reason_in_every_dialect(func):
    missing = [
        d for d in DIALECTS if func not in SQL_FUNCTIONS and func not in RECORDS[d].unsupported
    ]
    assert not missing, f"{func}() has no SQL handler and no reason it is unsupported in {missing}"
    for d in DIALECTS:
        assert RECORDS[d].unsupported.get(func, "x").strip(), f"{func} in {d}: empty reason"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("func", sorted(FUNCTIONS))
def test_function_compiles_or_is_a_typed_refusal(func, dialect):
    kpis = _kpis(USES[func])
    reason = UNSUPPORTED_FUNCTIONS[dialect].get(func)
    if reason is None:
        sql = compile_many(kpis, ["x"], "t", GRID, dialect)
        assert sqlglot.parse_one(sql, read=dialect) is not None
        return
    with pytest.raises(UnsupportedFunctionError) as caught:
        compile_many(kpis, ["x"], "t", GRID, dialect)
    error = caught.value
    assert (error.kpi_id, error.function, error.dialect, error.reason) == (
        "x",
        func,
        dialect,
        reason,
    )
    assert dialect not in error.supported_in and "duckdb" in error.supported_in


@pytest.fixture(scope="module")
def data():
    frame = messy_frame()
    frame["discount"] = np.where(np.arange(len(frame)) % 3 == 0, np.nan, 0.1)
    return frame


@pytest.mark.parametrize("func", sorted(FUNCTIONS))
def test_each_function_gives_the_pandas_numbers_in_duckdb(data, func):
    kpis = _kpis(USES[func])
    want = evaluate_many(kpis, ["x"], data, GRID)
    got = evaluate_duckdb(kpis, ["x"], data, GRID)
    assert_same(want, got)
    assert want["x"].notna().any()
