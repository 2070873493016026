"""Every bundled KPI that compiles gives the pandas engine's numbers in DuckDB: on its worked
examples and on a larger generated table with churn, gaps, duplicates and an empty month."""

from __future__ import annotations

import pytest
from sql_helpers import (
    BUNDLED,
    BUNDLED_ERROR,
    assert_same,
    bundled_table_examples,
    datapoint_frame,
)

from kpi_registry.errors import KPIError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.sql import evaluate_duckdb
from kpi_registry.worked_examples import example_data, example_request


def _ids():
    return [] if BUNDLED is None else BUNDLED.ids


def test_bundled_library_loads():
    assert BUNDLED_ERROR is None, f"the bundled library does not load:\n{BUNDLED_ERROR}"
    assert len(bundled_table_examples()) >= 20


@pytest.mark.parametrize(("kpi_id", "index"), bundled_table_examples())
def test_worked_example(kpi_id, index):
    kpi = BUNDLED[kpi_id]
    example = kpi.examples[index]
    ids = [kpi_id, *[s for s in example.show if s != kpi_id]]
    data, request = example_data(example), example_request(example)
    want = evaluate_many(BUNDLED.kpis, ids, data, request)
    assert_same(want, evaluate_duckdb(BUNDLED.kpis, ids, data, request))


@pytest.fixture(scope="module")
def generated():
    return datapoint_frame(BUNDLED.kpis)


SHAPES = {
    "by_segment": Request("month", "customer", ["segment"], None, {}),
    "quarter": Request("month", "customer", [], "quarter", {}),
    "rows_by_plan": Request("month", None, ["plan"], None, {}),
}


@pytest.mark.parametrize("kpi_id", _ids())
def test_generated_table(kpi_id, generated):
    for name, request in SHAPES.items():
        results = []
        for engine in (evaluate_many, evaluate_duckdb):
            try:
                results.append(engine(BUNDLED.kpis, [kpi_id], generated, request))
            except KPIError as e:
                results.append(e)
        want, got = results
        if isinstance(want, Exception):  # e.g. previous() without an entity
            assert type(got) is type(want) and str(got) == str(want), name
        else:
            assert not isinstance(got, Exception), f"{name}: {got}"
            assert_same(want, got)
