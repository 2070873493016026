"""Chained ``^`` compiles to SQL that grows linearly with the formula, and gives the pandas
engine's numbers (issue 13: nine levels of ``a ^ b ^ ...`` never finished compiling)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sql_helpers import assert_same, messy_frame

from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.formula import parse
from kpi_registry.formula.parser import MAX_DEPTH
from kpi_registry.model import KPI
from kpi_registry.sql import DIALECTS, SQLCompileError, compile_many, evaluate_duckdb

DATAPOINTS = [
    {"name": "revenue", "rows": "sum", "time": "stock", "missing": "zero"},
    {"name": "discount", "rows": "mean", "time": "stock", "missing": "null"},
]
GRID = Request("month", "customer", [], None, {"revenue": "mrr"})

# Formulas of n levels of ^, at the row level (inside an aggregate), at the period level,
# of constants, through previous(), and greatest() (which BigQuery and Trino expand).
SHAPES = {
    "rows": lambda n: "sum(" + " ^ ".join(["(revenue / 100 + 1)"] * n) + ")",
    "periods": lambda n: " ^ ".join(["(sum(revenue) / 1000)"] * n),
    "constants": lambda n: "sum(revenue) * " + " ^ ".join(["1.01"] * n),
    "previous": lambda n: "sum(previous(" + " ^ ".join(["(revenue / 100)"] * n) + "))",
    "greatest": lambda n: "sum(" + "greatest(discount, " * n + "revenue" + ")" * n + ")",
}


def _kpis(expression: str, **more: str) -> dict[str, KPI]:
    formulas = {"x": expression, **more}
    return {
        k: KPI(k, {"datapoints": DATAPOINTS}, Path(f"{k}.yaml"), expression=parse(f))
        for k, f in formulas.items()
    }


def _sql(expression: str, dialect: str) -> str:
    return compile_many(_kpis(expression), ["x"], "t", GRID, dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_sql_grows_linearly_with_chained_powers(shape, dialect):
    sizes = {n: len(_sql(SHAPES[shape](n), dialect)) for n in (2, 4, 8, 16)}
    steps = [sizes[4] - sizes[2], sizes[8] - sizes[4], sizes[16] - sizes[8]]
    # each doubling of the levels adds about twice what the previous doubling added
    assert steps[2] <= 2.5 * max(steps[1], 1) + 200, sizes
    assert steps[1] <= 2.5 * max(steps[0], 1) + 200, sizes
    assert sizes[16] < 60_000, sizes


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_deepest_chain_that_parses_compiles_in_well_under_a_second(dialect):
    levels = MAX_DEPTH - 5  # the parser's own limit on nesting
    for shape in ("rows", "periods"):
        expression = SHAPES[shape](levels)
        parse(expression)  # it is a formula the library accepts
        took = []
        for _ in range(2):  # the faster of two runs: the machine may be busy
            start = time.perf_counter()
            sql = _sql(expression, dialect)
            took.append(time.perf_counter() - start)
        assert min(took) < 1.0, took
        assert len(sql) < 200_000


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    frame = messy_frame()
    frame["discount"] = np.where(np.arange(len(frame)) % 4 == 0, np.nan, 0.1)
    return frame


@pytest.mark.parametrize("layout", ["auto", "dense"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_chained_powers_give_the_pandas_numbers_in_duckdb(data, shape, layout):
    kpis = _kpis(SHAPES[shape](3), y="x ^ 0.5 ^ 2 + previous(x) ^ 2")
    request = GRID if shape != "greatest" else Request("month", "customer", [], None, {})
    if shape == "greatest":
        data = data.rename(columns={"mrr": "revenue"})
    want = evaluate_many(kpis, ["x", "y"], data, request)
    got = evaluate_duckdb(kpis, ["x", "y"], data, request, layout=layout)
    assert_same(want, got)
    assert want["x"].notna().any()


def test_previous_of_a_power_is_computed_on_the_dense_grid():
    """The sparse layout rewrites previous() in its first layer only; a power computed in a
    column of its own sits later, so such a formula gets the dense grid, and says why."""
    sql = _sql("sum(previous((revenue * 2) ^ 2))", "duckdb")
    assert "dense: every entity in every period; previous() of a value computed" in sql
    with pytest.raises(SQLCompileError, match="layout='sparse'"):
        compile_many(_kpis("sum(previous((revenue * 2) ^ 2))"), ["x"], "t", GRID, layout="sparse")


def test_ever_before_of_a_power_at_a_coarser_grain_is_a_clear_error():
    quarterly = Request("month", "customer", [], "quarter", {"revenue": "mrr"})
    kpis = _kpis("count(revenue, ever_before((revenue - 1) ^ 2 > 4))")
    with pytest.raises(SQLCompileError, match=r"ever_before\(.*\^.*pandas engine"):
        compile_many(kpis, ["x"], "t", quarterly)
