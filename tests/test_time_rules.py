"""The time rules of the datapoint vocabulary (closing, opening, average, event, latest) and
rows: first/last by order_by: the same numbers in the pandas engine, DuckDB and PostgreSQL, with
and without an entity, by group, on messy data; and what they are for (attrition over average
headcount, inventory turnover)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from sql_helpers import POSTGRES_DSN, assert_same, messy_variants, pg_evaluate

import kpi_registry
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.sql import evaluate_duckdb

RULES = ("flow", "closing", "opening", "average", "event", "latest")


def _datapoint(name: str, time: str, missing: str, **extra) -> dict:
    return {
        "name": name,
        "description": f"A value read with time: {time}.",
        "unit": "count",
        "rows": extra.pop("rows", "sum"),
        "time": time,
        "missing": missing,
        **extra,
    }


@pytest.fixture(scope="module")
def rules_registry(tmp_path_factory):
    from conftest import Library

    library = Library(tmp_path_factory.mktemp("rules") / "defs")
    for rule in RULES:
        for missing in ("zero", "null"):
            dp = f"{rule}_{missing}"
            declared = [_datapoint(dp, rule, missing)]
            library.add(f"sum_{dp}", f"sum({dp})", datapoints=declared)
            library.add(f"mean_{dp}", f"mean({dp})", datapoints=declared)
            library.add(f"count_{dp}", f"count({dp}, {dp} > 100)", datapoints=declared)
    last = _datapoint("answer", "latest", "null", rows="last", order_by="answered_at")
    first = _datapoint("first_answer", "opening", "null", rows="first", order_by="answered_at")
    library.add("mean_answer", "mean(answer)", datapoints=[last])
    library.add("mean_first_answer", "mean(first_answer)", datapoints=[first])
    return kpi_registry.load(library.root, include_bundled=False)


def _data(frame: pd.DataFrame) -> pd.DataFrame:
    """Every rule's column reads the mrr of the messy frame; answers get distinct times."""
    rng = np.random.default_rng(5)
    out = frame.copy()
    for rule in RULES:
        for missing in ("zero", "null"):
            out[f"{rule}_{missing}"] = out["mrr"]
    out["answer"] = out["score"]
    out["first_answer"] = out["score"]
    minutes = pd.to_timedelta(rng.permutation(len(out)), unit="min")
    out["answered_at"] = (pd.Timestamp("2021-01-01") + minutes).strftime("%Y-%m-%d %H:%M:%S")
    return out


REQUESTS = {
    "entity_quarter": Request("month", "customer", [], "quarter"),
    "entity_year_by_segment": Request("month", "customer", ["segment"], "year"),
    "rows_quarter": Request("month", None, [], "quarter"),
    "rows_year_by_plan": Request("month", None, ["plan"], "year"),
    "entity_month": Request("month", "customer"),
}


@pytest.mark.parametrize("variant", ["messy", "mid_quarter", "empty_months"])
@pytest.mark.parametrize("request_name", sorted(REQUESTS))
def test_time_rules_agree_in_every_engine(rules_registry, variant, request_name):
    reg = rules_registry
    data = _data(messy_variants()[variant])
    request = REQUESTS[request_name]
    # without an entity: rows: last/first have no entity-periods to order, and an average of
    # the months an entity has a value (average_null) is an error at a coarser grain
    # (tests/test_sql_no_entity.py)
    ids = [
        k
        for k in reg.ids
        if request.entity or ("answer" not in k and not k.endswith("average_null"))
    ]
    want = evaluate_many(reg.kpis, ids, data, request)
    assert_same(want, evaluate_duckdb(reg.kpis, ids, data, request))
    dsn = os.environ.get(POSTGRES_DSN)
    if dsn:
        import psycopg

        with psycopg.connect(dsn) as conn:
            got = pg_evaluate(conn, reg.kpis, ids, data, request)
            assert_same(want, got, strict=False, atol=1e-9)


def test_what_each_rule_reads_over_a_quarter(rules_registry):
    data = pd.DataFrame(
        {
            "customer": ["a", "a", "a", "b"],
            "month": ["2024-01", "2024-02", "2024-03", "2024-02"],
            "mrr": [10.0, 20.0, 60.0, 30.0],
            "score": [1.0, 2.0, 3.0, 4.0],
        }
    )
    out = evaluate_many(
        rules_registry.kpis,
        [f"sum_{r}_zero" for r in RULES] + ["sum_average_null"],
        _data(data),
        Request("month", "customer", [], "quarter"),
    )
    row = out.iloc[0]
    assert row["sum_flow_zero"] == 120.0
    assert row["sum_closing_zero"] == 60.0  # b has no March row: 0
    assert row["sum_opening_zero"] == 10.0  # b has no January row: 0
    assert row["sum_average_zero"] == pytest.approx(30.0 + 10.0)  # a: 90/3, b: 30/3
    assert row["sum_average_null"] == pytest.approx(30.0 + 30.0)  # b: its one known month
    assert row["sum_event_zero"] == 60.0 + 30.0  # the largest month of each
    assert row["sum_latest_zero"] == 60.0 + 30.0  # a's March, b's February


def test_first_and_last_answers_follow_their_time_not_the_rows(rules_registry):
    data = pd.DataFrame(
        {
            "customer": ["a", "a", "a"],
            "month": ["2024-01"] * 3,
            "mrr": [1.0] * 3,
            "score": [7.0, 3.0, 9.0],
        }
    )
    data = _data(data)
    data["answered_at"] = ["2024-01-05", "2024-01-09", "2024-01-02"]
    for frame in (data, data.iloc[[2, 0, 1]]):
        out = evaluate_many(
            rules_registry.kpis,
            ["mean_answer", "mean_first_answer"],
            frame,
            Request("month", "customer"),
        )
        assert out.iloc[0][["mean_answer", "mean_first_answer"]].tolist() == [3.0, 9.0]


def test_attrition_over_average_headcount(library):
    """An HR KPI the vocabulary can state: leavers (a flow) over average headcount."""
    leavers = {
        "name": "leavers",
        "description": "People who left.",
        "unit": "count",
        "time": "flow",
        "missing": "zero",
    }
    headcount = {
        "name": "headcount",
        "description": "People employed at month end.",
        "unit": "count",
        "time": "average",
        "missing": "null",
        "valid": {"min": 0},
    }
    library.add(
        "attrition_rate",
        "sum(leavers) / sum(headcount) * 100",
        datapoints=[leavers, headcount],
    )
    reg = kpi_registry.load(library.root, include_bundled=False)
    data = pd.DataFrame(
        {
            "department": ["sales"] * 3 + ["support"] * 3,
            "month": ["2024-01", "2024-02", "2024-03"] * 2,
            "leavers": [1, 0, 2, 0, 1, 0],
            "headcount": [100, 90, 80, 40, 40, 40],
        }
    )
    request = Request("month", "department", [], "quarter")
    out = evaluate_many(reg.kpis, ["attrition_rate"], data, request)
    assert out["attrition_rate"].tolist() == pytest.approx([4 / (90 + 40) * 100])
    assert_same(out, evaluate_duckdb(reg.kpis, ["attrition_rate"], data, request))


def _tickets_registry(library):
    tickets = {
        "name": "ticket_id",
        "description": "The id of a ticket the agent worked on (one row per update).",
        "unit": "count",
        "rows": "distinct",
        "time": "distinct",
        "missing": "zero",
    }
    library.add("tickets_handled", "sum(ticket_id)", datapoints=[tickets])
    library.add("busy_agents", "count(ticket_id, ticket_id > 2)", datapoints=[tickets])
    return kpi_registry.load(library.root, include_bundled=False)


def test_distinct_tickets_count_once_over_a_quarter(library):
    reg = _tickets_registry(library)
    data = pd.DataFrame(
        {
            "agent": ["x", "x", "x", "x", "y"],
            "month": ["2024-01", "2024-01", "2024-02", "2024-03", "2024-03"],
            "ticket_id": [101, 101, 101, 102, 101],  # 101 updated in January and February
        }
    )
    monthly = evaluate_many(reg.kpis, ["tickets_handled"], data, Request("month", "agent"))
    assert monthly["tickets_handled"].tolist() == [1.0, 1.0, 2.0]
    quarter = Request("month", "agent", [], "quarter")
    out = evaluate_many(reg.kpis, ["tickets_handled"], data, quarter)
    assert out["tickets_handled"].tolist() == [3.0]  # x: 101 and 102, y: 101
    with pytest.raises(Exception, match="rows: distinct"):
        evaluate_many(reg.kpis, ["tickets_handled"], data, Request("month"))


@pytest.mark.parametrize("grain", [None, "quarter", "year"])
def test_distinct_counts_agree_in_every_engine(library, grain):
    reg = _tickets_registry(library)
    data = messy_variants()["messy"].assign(ticket_id=lambda f: f["orders"])
    request = Request("month", "customer", ["segment"], grain)
    ids = ["tickets_handled", "busy_agents"]
    want = evaluate_many(reg.kpis, ids, data, request)
    assert_same(want, evaluate_duckdb(reg.kpis, ids, data, request))
    dsn = os.environ.get(POSTGRES_DSN)
    if dsn:
        import psycopg

        with psycopg.connect(dsn) as conn:
            assert_same(want, pg_evaluate(conn, reg.kpis, ids, data, request), strict=False)


def test_a_formula_defined_per_month_refuses_a_quarter_unless_it_has_one_for_it(library):
    active = {
        "name": "active_days",
        "description": "Days the user was active.",
        "unit": "count",
        "time": "flow",
        "missing": "zero",
    }
    library.add(
        "stickiness",
        "mean(active_days / days_in_period(), active_days > 0) * 100",
        datapoints=[active],
        formula={
            "expression": "mean(active_days / days_in_period(), active_days > 0) * 100",
            "grains": ["month"],
            "grain_reason": "a quarter has no single MAU",
        },
    )
    library.add(
        "stickiness_any",
        "mean(active_days / days_in_period(), active_days > 0) * 100",
        datapoints=[active],
        formula={
            "expression": "mean(active_days / days_in_period(), active_days > 0) * 100",
            "grains": ["month"],
            "at_grain": {"quarter": "sum(active_days) / days_in_period() / 3 * 100"},
        },
    )
    library.add("uses_stickiness", "stickiness * 2", datapoints=[])
    reg = kpi_registry.load(library.root, include_bundled=False)
    data = pd.DataFrame(
        {"user": ["u"] * 3, "month": ["2024-01", "2024-02", "2024-03"], "active_days": [20] * 3}
    )
    quarter = Request("month", "user", [], "quarter")
    from kpi_registry.errors import GrainError

    with pytest.raises(GrainError, match="no single MAU") as error:
        evaluate_many(reg.kpis, ["uses_stickiness"], data, quarter)
    assert (error.value.kpi_id, error.value.asked_for) == (
        "stickiness",
        ["uses_stickiness", "stickiness"],
    )
    with pytest.raises(GrainError):
        evaluate_duckdb(reg.kpis, ["stickiness"], data, quarter)
    out = evaluate_many(reg.kpis, ["stickiness_any"], data, quarter)
    assert out["stickiness_any"].tolist() == pytest.approx([60 / 91 / 3 * 100])
    assert_same(out, evaluate_duckdb(reg.kpis, ["stickiness_any"], data, quarter))
    monthly = evaluate_many(reg.kpis, ["stickiness_any"], data, Request("month", "user"))
    assert monthly["stickiness_any"].tolist() == pytest.approx([2000 / 31, 2000 / 29, 2000 / 31])


def test_a_broken_at_grain_formula_is_reported_at_its_field(library):
    from kpi_registry.errors import DefinitionError

    library.add(
        "odd",
        "sum(revenue)",
        formula={
            "expression": "sum(revenue)",
            "grains": ["month"],
            "at_grain": {"quarter": "sum(revenu)"},
        },
    )
    with pytest.raises(DefinitionError, match=r"formula\.at_grain\.quarter: unknown name"):
        kpi_registry.load(library.root, include_bundled=False)
