"""SQL at a coarser grain: ever_before() sees every earlier base period, and
months_in_period() is the grain's length, exactly as in the pandas engine."""

from __future__ import annotations

import pandas as pd
import pytest
from sql_helpers import assert_same

import kpi_registry
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.sql import SQLCompileError, compile_many, evaluate_duckdb

MAP = {"revenue": "mrr"}


def frame(*rows):
    return pd.DataFrame(rows, columns=["customer", "month", "mrr"])


# b pays in February only, never at a quarter end, and comes back in Q3
RETURNING = frame(
    ("a", "2024-01", 100.0),
    ("b", "2024-02", 40.0),
    ("a", "2024-03", 100.0),
    ("a", "2024-06", 100.0),
    ("b", "2024-09", 60.0),
    ("a", "2024-09", 100.0),
    ("c", "2024-09", 30.0),
)


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_a_customer_paying_between_quarter_ends_returns_as_reactivation(family, layout):
    ids = ["new_revenue", "reactivation_revenue", "churned_revenue", "starting_revenue"]
    request = Request("month", "customer", [], "quarter", MAP)
    want = evaluate_many(family.kpis, ids, RETURNING, request)
    got = evaluate_duckdb(family.kpis, ids, RETURNING, request, layout=layout)
    assert_same(want, got)
    q3 = got.set_index("month").loc["2024Q3"]
    assert (q3["new_revenue"], q3["reactivation_revenue"]) == (30.0, 60.0)


def test_coarse_ever_before_of_segments_matches_pandas(family):
    data = RETURNING.assign(segment=["x", "y", "x", "x", "x", "x", "y"])
    ids = ["new_revenue", "reactivation_revenue"]
    for grain in ("quarter", "year"):
        request = Request("month", "customer", ["segment"], grain, MAP)
        want = evaluate_many(family.kpis, ids, data, request)
        for layout in ("dense", "sparse"):
            assert_same(want, evaluate_duckdb(family.kpis, ids, data, request, layout=layout))


@pytest.mark.parametrize(
    "expression, message",
    [
        ("sum(revenue, ever_before(previous(revenue) > 0))", "uses previous()"),
        ("sum(revenue, revenue > 0 and ever_before(revenue = 0))", "no rows"),
    ],
)
def test_coarse_ever_before_that_sql_cannot_see_is_refused(library, expression, message):
    library.add("odd", expression)
    reg = kpi_registry.load(library.root, include_bundled=False)
    quarterly = Request("month", "customer", [], "quarter", MAP)
    with pytest.raises(SQLCompileError, match=message) as error:
        compile_many(reg.kpis, ["odd"], "t", quarterly)
    assert "pandas engine" in str(error.value)
    monthly = Request("month", "customer", [], None, MAP)  # at the data's grain it compiles
    data = RETURNING
    assert_same(
        evaluate_many(reg.kpis, ["odd"], data, monthly),
        evaluate_duckdb(reg.kpis, ["odd"], data, monthly),
    )


@pytest.mark.parametrize("grain", [None, "quarter", "year"])
def test_months_in_period_is_the_grain_in_sql(library, grain):
    library.add("per_period", "sum(revenue) * months_in_period()")
    library.add("lifetime", "months_in_period() / (sum(revenue, revenue > 0) / 1000)")
    reg = kpi_registry.load(library.root, include_bundled=False)
    request = Request("month", "customer", [], grain, MAP)
    ids = ["per_period", "lifetime"]
    want = evaluate_many(reg.kpis, ids, RETURNING, request)
    assert_same(want, evaluate_duckdb(reg.kpis, ids, RETURNING, request))
    months = {None: "1", "quarter": "3", "year": "12"}[grain]
    assert f"* {months}" in compile_many(reg.kpis, ["per_period"], "t", request)


def test_bundled_lifetime_value_at_quarter_grain_matches_pandas():
    reg = kpi_registry.load()
    ids = ["customer_lifetime_value", "average_customer_lifetime"]
    rows = []
    for c in range(60):
        for m in range(12):
            if m < 2 or c % 12 != m:  # one customer in twelve leaves each month
                month = str(pd.Period("2024-01", "M") + m)
                rows.append((f"c{c}", month, 100.0 + c, 120.0 + c, 40.0))
    data = pd.DataFrame(
        rows, columns=["customer", "month", "mrr", "revenue_recognized", "cost_of_revenue"]
    )
    request = Request("month", "customer", [], "quarter", {"revenue": "mrr"})
    want = evaluate_many(reg.kpis, ids, data, request)
    assert want["customer_lifetime_value"].notna().sum() >= 3
    assert_same(want, evaluate_duckdb(reg.kpis, ids, data, request))


def test_rows_without_an_entity_are_left_out_alike_in_both_layouts(family):
    """Run outside our engine (which refuses such data, as pandas does), the statement drops
    rows with a NULL entity in the dense and the sparse layout alike."""
    import duckdb

    data = pd.concat([RETURNING, frame((None, "2024-02", 500.0))], ignore_index=True)
    ids = ["churned_revenue", "new_revenue", "reactivation_revenue"]
    request = Request("month", "customer", [], None, MAP)
    want = evaluate_many(family.kpis, ids, RETURNING, request)
    con = duckdb.connect()
    con.register("t", data)
    for layout in ("dense", "sparse"):
        sql = compile_many(family.kpis, ids, "t", request, layout=layout)
        got = con.execute(sql).df()
        for kpi_id in ids:
            assert got[kpi_id].tolist() == pytest.approx(want[kpi_id].tolist(), nan_ok=True)
    with pytest.raises(Exception, match="entity column 'customer' is empty"):
        evaluate_duckdb(family.kpis, ids, data, request)
