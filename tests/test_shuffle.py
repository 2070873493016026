"""No result depends on row order: every worked example of the bundled library, and the test
data of every bundled KPI, give the same numbers (or the same error) with their rows shuffled."""

from __future__ import annotations

import pandas as pd
import pytest
from sql_helpers import BUNDLED, bundled_table_examples, datapoint_frame

from kpi_registry.errors import KPIError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.worked_examples import example_data, example_request

SEEDS = (1, 2, 3)


def _outcome(kpis, ids, data, request):
    """The frame and its warnings, or the error's type and message."""
    try:
        frame = evaluate_many(kpis, ids, data, request)
    except KPIError as e:
        return type(e).__name__, str(e)
    return frame, list(frame.attrs.get("warnings", []))


def _assert_same_outcome(want, got):
    if isinstance(want[0], str):
        assert got == want
        return
    assert not isinstance(got[0], str), got
    pd.testing.assert_frame_equal(got[0], want[0], check_exact=True)
    assert got[1] == want[1]


@pytest.mark.parametrize("kpi_id, index", bundled_table_examples())
def test_shuffled_example_rows_give_the_same_result(kpi_id, index):
    kpi = BUNDLED[kpi_id]
    example = kpi.examples[index]
    data = example_data(example)
    request = example_request(example)
    ids = [kpi_id, *[s for s in example.get("show", []) if s != kpi_id]]
    want = _outcome(BUNDLED.kpis, ids, data, request)
    assert not isinstance(want[0], str), want  # the examples are checked to compute
    for seed in SEEDS:
        shuffled = data.sample(frac=1, random_state=seed)  # row labels travel with the rows
        _assert_same_outcome(want, _outcome(BUNDLED.kpis, ids, shuffled, request))


TEST_DATA = datapoint_frame(BUNDLED.kpis) if BUNDLED is not None else None
REQUESTS = {
    "month": Request("month", "customer"),
    "quarter": Request("month", "customer", [], "quarter"),
    "segment_quarter": Request("month", "customer", ["segment"], "quarter"),
    "rows": Request("month"),
}


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
@pytest.mark.parametrize("kpi_id", sorted(BUNDLED.ids) if BUNDLED is not None else [])
def test_shuffled_test_data_gives_the_same_result(kpi_id, request_name):
    request = REQUESTS[request_name]
    want = _outcome(BUNDLED.kpis, [kpi_id], TEST_DATA, request)
    for seed in SEEDS[:2]:
        shuffled = TEST_DATA.sample(frac=1, random_state=seed)
        _assert_same_outcome(want, _outcome(BUNDLED.kpis, [kpi_id], shuffled, request))
