"""The generated SQL runs in a real PostgreSQL server with the pandas engine's numbers.

Needs KPI_TEST_POSTGRES_DSN (``.ci/run`` starts a server on 127.0.0.1 and sets it). Without
it these tests are skipped on a developer machine, and fail under CI, where they must run.
"""

from __future__ import annotations

import pandas as pd
import pytest
from sql_helpers import (
    BUNDLED,
    DENSE_FIXTURES,
    FIXTURES,
    REVENUE_FAMILY,
    TIME_KPIS,
    assert_same,
    bundled_table_examples,
    datapoint_frame,
    messy_frame,
    messy_variants,
    pg_connection,
    pg_evaluate,
)

import kpi_registry
from kpi_registry.errors import GrainError, KPIError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.worked_examples import example_data, example_request

pytestmark = pytest.mark.postgres

MAP = {"revenue": "mrr"}


@pytest.fixture(scope="module")
def pg():
    yield from pg_connection()


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load(FIXTURES, include_bundled=False)


def _months(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    if kind == "text":
        return frame
    return frame.assign(month=pd.PeriodIndex(frame["month"], freq="M").to_timestamp())


SHAPES = {
    "grid": Request("month", "customer", [], None, MAP),
    "grid_by_segment": Request("month", "customer", ["segment"], None, MAP),
    "grid_by_two_quarter": Request("month", "customer", ["segment", "plan"], "quarter", MAP),
    "grid_by_plan_year": Request("month", "customer", ["plan"], "year", MAP),
    "rows_by_segment_quarter": Request("month", None, ["segment"], "quarter", MAP),
    "rows": Request("month", None, [], None, MAP),
}


@pytest.mark.parametrize("kind", ["text", "timestamp"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_fixture_kpis_match_pandas(pg, reg, shape, kind):
    request = SHAPES[shape]
    frame = _months(messy_frame(), kind)
    ids = [k for k in reg.ids if request.entity or k not in TIME_KPIS]
    want = evaluate_many(reg.kpis, ids, frame, request)
    assert_same(want, pg_evaluate(pg, reg.kpis, ids, frame, request), strict=False)


@pytest.mark.parametrize("variant", sorted(messy_variants()))
def test_sparse_and_dense_layouts_match_pandas(pg, reg, variant):
    """Skipping the grid's empty cells gives the same numbers in PostgreSQL too."""
    frame = messy_variants()[variant]
    ids = [k for k in reg.ids if k not in DENSE_FIXTURES]
    for shape in ("grid", "grid_by_segment", "grid_by_two_quarter", "grid_by_plan_year"):
        request = SHAPES[shape]
        want = evaluate_many(reg.kpis, ids, frame, request)
        for layout in ("sparse", "dense"):
            got = pg_evaluate(pg, reg.kpis, ids, frame, request, layout=layout)
            assert_same(want, got, strict=False, atol=1e-12)


def test_daily_dates_to_weeks_and_months(pg, reg):
    frame = messy_frame()
    days = pd.PeriodIndex(frame["month"], freq="M").to_timestamp() + pd.to_timedelta(
        frame.index % 27, "D"
    )
    frame = frame.assign(month=days)
    ids = [*REVENUE_FAMILY, "seat_utilization", "order_count"]
    for grain in ("week", "month"):
        request = Request("month", "customer", ["segment"], grain, MAP)
        want = evaluate_many(reg.kpis, ids, frame, request)
        assert_same(want, pg_evaluate(pg, reg.kpis, ids, frame, request), strict=False)


@pytest.mark.parametrize(("kpi_id", "index"), bundled_table_examples())
def test_bundled_worked_example(pg, kpi_id, index):
    example = BUNDLED[kpi_id].examples[index]
    ids = [kpi_id, *[s for s in example.show if s != kpi_id]]
    data, request = example_data(example), example_request(example)
    want = evaluate_many(BUNDLED.kpis, ids, data, request)
    assert_same(want, pg_evaluate(pg, BUNDLED.kpis, ids, data, request), strict=False)


@pytest.mark.parametrize("kpi_id", [] if BUNDLED is None else BUNDLED.ids)
def test_bundled_generated_table(pg, kpi_id):
    frame = datapoint_frame(BUNDLED.kpis)
    request = Request("month", "customer", ["segment"], None, {})
    try:
        want = evaluate_many(BUNDLED.kpis, [kpi_id], frame, request)
    except GrainError as e:  # defined at other grains only (rule_of_40: per year): use one
        request = Request("month", "customer", ["segment"], e.grains[0], {})
        want = evaluate_many(BUNDLED.kpis, [kpi_id], frame, request)
    except KPIError as e:  # pragma: no cover - every bundled KPI evaluates on this table
        pytest.fail(str(e))
    got = pg_evaluate(pg, BUNDLED.kpis, [kpi_id], frame, request, table="bundled_data")
    assert_same(want, got, strict=False)


@pytest.mark.parametrize("grain", [None, "quarter", "year"])
def test_invoice_lines_add_up_to_the_same_doubles(pg, tmp_path, grain):
    """Rows summed per customer-month (and months summed into quarters and years, for a flow)
    are rounded to their decimal total by the same arithmetic in PostgreSQL as in pandas: the
    same doubles, not only close ones (see tests/test_evaluation_decimal.py)."""
    from conftest import Library
    from test_evaluation_decimal import invoice_lines

    library = Library(tmp_path / "defs").family()
    bookings = {"name": "booked_amount", "description": "b", "unit": "currency", "time": "flow"}
    library.add("total_bookings", "sum(booked_amount)", datapoints=[bookings])
    kpis = kpi_registry.load(library.root, include_bundled=False).kpis
    frame = invoice_lines(6, large=10**12).assign(booked_amount=lambda f: f["amount"])
    ids = ["monthly_recurring_revenue", "total_bookings", *REVENUE_FAMILY]
    request = Request("month", "customer", ["customer"], grain, {"revenue": "amount"})
    want = evaluate_many(kpis, ids, frame, request)
    got = pg_evaluate(pg, kpis, ids, frame, request, table="invoice_lines")
    for kpi_id in ["monthly_recurring_revenue", "total_bookings"]:
        assert got[kpi_id].astype(float).tolist() == want[kpi_id].tolist(), kpi_id
    assert_same(want, got, strict=False)
