"""Datapoint time rules without an entity (issue 14's "no-entity limits"): each engine gives
the same right number or the same clear error.

Without ``entity=`` each row is a cell of its own. Then ``rows: distinct`` cannot count an
entity's values, and ``time: average`` with ``missing: null`` cannot average over the months an
entity has a value: both are errors at a coarser grain. An average with ``missing: zero`` is
each row's share of the months, and an event flag counts once per row.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from sql_helpers import assert_same

from kpi_registry.errors import DataError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.formula import parse
from kpi_registry.model import KPI
from kpi_registry.sql import compile_many, evaluate_duckdb

QUARTER = Request("month", None, [], "quarter", {})
MONTHS = pd.DataFrame({"month": ["2024-01", "2024-02", "2024-03"], "h": [10.0, 10.0, 10.0]})


def _kpis(datapoint: dict, formula: str) -> dict[str, KPI]:
    return {"x": KPI("x", {"datapoints": [datapoint]}, Path("x.yaml"), expression=parse(formula))}


def _sql_in_duckdb(kpis, frame, request) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("t", frame)
    return con.execute(compile_many(kpis, ["x"], "t", request, columns=list(frame.columns))).df()


def _engines(kpis, frame, request):
    return {
        "pandas": lambda: evaluate_many(kpis, ["x"], frame, request),
        "duckdb": lambda: evaluate_duckdb(kpis, ["x"], frame, request),
        "sql": lambda: _sql_in_duckdb(kpis, frame, request),
    }


@pytest.mark.parametrize("engine", ["pandas", "duckdb", "sql"])
def test_an_average_of_known_months_needs_an_entity_at_a_coarser_grain(engine):
    kpis = _kpis({"name": "h", "time": "average", "missing": "null"}, "sum(h)")
    with pytest.raises(DataError, match=r"'h'.*time: average.*entity="):
        _engines(kpis, MONTHS, QUARTER)[engine]()
    # at the data's own grain, and with an entity, it is defined
    monthly = Request("month", None, [], None, {})
    assert list(_engines(kpis, MONTHS, monthly)[engine]()["x"]) == [10.0, 10.0, 10.0]
    with_entity = MONTHS.assign(team="a")
    by_team = Request("month", "team", [], "quarter", {})
    assert list(_engines(kpis, with_entity, by_team)[engine]()["x"]) == [10.0]


def test_an_average_filled_with_zero_is_each_rows_share_in_every_engine():
    kpis = _kpis({"name": "h", "time": "average", "missing": "zero"}, "sum(h)")
    results = {name: run() for name, run in _engines(kpis, MONTHS, QUARTER).items()}
    assert list(results["pandas"]["x"]) == [10.0]
    for name in ("duckdb", "sql"):
        assert_same(results["pandas"], results[name], strict=False)


def test_an_event_flag_counts_once_per_row_in_every_engine():
    frame = pd.DataFrame({"month": ["2024-01", "2024-02"], "w": [1.0, 1.0]})
    kpis = _kpis({"name": "w", "rows": "max", "time": "event"}, "sum(w)")
    results = {name: run() for name, run in _engines(kpis, frame, QUARTER).items()}
    assert list(results["pandas"]["x"]) == [2.0]
    for name in ("duckdb", "sql"):
        assert_same(results["pandas"], results[name], strict=False)


@pytest.mark.parametrize("engine", ["pandas", "duckdb", "sql"])
def test_distinct_values_need_an_entity(engine):
    frame = pd.DataFrame({"month": ["2024-01", "2024-01"], "u": [1.0, 2.0]})
    kpis = _kpis({"name": "u", "rows": "distinct", "time": "distinct"}, "sum(u)")
    for request in (QUARTER, Request("month", None, [], None, {})):
        with pytest.raises(DataError, match=r"'u'.*rows: distinct.*entity="):
            _engines(kpis, frame, request)[engine]()
