"""No result depends on row order: every worked example of the bundled library, and the test
data of every bundled KPI, give the same numbers (or the same error) with their rows shuffled."""

from __future__ import annotations

import functools

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
    ids = [kpi_id, *[s for s in example.show if s != kpi_id]]
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


def _outcomes(ids, data, request, alone=frozenset()) -> dict:
    """Each KPI's outcome, as ``_outcome`` gives it for that KPI alone, but computed for many
    KPIs in one evaluation: the columns of one ``evaluate_many`` over every KPI that computes
    (its period and group columns, the KPI's column, the evaluation's warnings). A KPI in
    ``alone``, or one whose batch fails, is split off until its own error is found."""
    out = {k: _outcome(BUNDLED.kpis, [k], data, request) for k in ids if k in alone}
    batch = [k for k in ids if k not in alone]
    if not batch:
        return out
    try:
        frame = evaluate_many(BUNDLED.kpis, batch, data, request)
    except KPIError:
        if len(batch) == 1:
            return {**out, batch[0]: _outcome(BUNDLED.kpis, batch, data, request)}
        half = len(batch) // 2
        return {
            **out,
            **_outcomes(batch[:half], data, request),
            **_outcomes(batch[half:], data, request),
        }
    keep = [c for c in frame.columns if c not in set(batch)]
    warnings = list(frame.attrs.get("warnings", []))
    for k in batch:
        out[k] = frame[[*keep, k]], warnings
    return out


@functools.cache
def _test_data_outcomes(request_name: str, seed: int | None) -> dict:
    """Every bundled KPI's outcome on the test data (shuffled with ``seed``); the KPIs that
    fail unshuffled are evaluated alone in the shuffled runs too."""
    data = TEST_DATA if seed is None else TEST_DATA.sample(frac=1, random_state=seed)
    ids = sorted(BUNDLED.ids)
    if seed is None:
        return _outcomes(ids, data, REQUESTS[request_name])
    want = _test_data_outcomes(request_name, None)
    failing = frozenset(k for k, o in want.items() if isinstance(o[0], str))
    return _outcomes(ids, data, REQUESTS[request_name], alone=failing)


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
@pytest.mark.parametrize("kpi_id", sorted(BUNDLED.ids) if BUNDLED is not None else [])
def test_shuffled_test_data_gives_the_same_result(kpi_id, request_name):
    want = _test_data_outcomes(request_name, None)[kpi_id]
    for seed in SEEDS[:2]:
        _assert_same_outcome(want, _test_data_outcomes(request_name, seed)[kpi_id])


@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_a_kpi_computed_with_others_equals_the_kpi_alone(request_name):
    """The batches above share work between KPIs; a sample of KPIs evaluated alone gives the
    same column, so the shuffle test speaks for the KPI as users evaluate it."""
    outcomes = _test_data_outcomes(request_name, None)
    for kpi_id in sorted(BUNDLED.ids)[::25]:
        alone = _outcome(BUNDLED.kpis, [kpi_id], TEST_DATA, REQUESTS[request_name])
        batched = outcomes[kpi_id]
        if isinstance(alone[0], str):
            assert batched == alone
        else:
            pd.testing.assert_frame_equal(batched[0], alone[0], check_exact=True)
