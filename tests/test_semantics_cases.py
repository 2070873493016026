"""Issue 14's seven cases: numbers that depended on row order or came out wrong at a coarser
grain, each now the right number or an error naming the rows, the same in the pandas engine,
the DuckDB engine and (where the SQL can say it) the SQL run in PostgreSQL."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from sql_helpers import POSTGRES_DSN, assert_same, pg_evaluate

import kpi_registry
from kpi_registry.errors import (
    ContradictoryRowsError,
    GrainError,
    InvalidCellsError,
    InvalidRowsError,
    UnorderedRowsError,
)
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.sql import compile_many


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


def _engines(reg, ids, data, request: Request, postgres: bool = True) -> pd.DataFrame:
    """The pandas engine's frame, checked against DuckDB and, when a server is given, the SQL
    run in PostgreSQL; returns it."""
    want = evaluate_many(reg.kpis, ids, data, request)
    from kpi_registry.sql import evaluate_duckdb

    assert_same(want, evaluate_duckdb(reg.kpis, ids, data, request))
    dsn = os.environ.get(POSTGRES_DSN)
    if dsn and postgres:
        import psycopg

        with psycopg.connect(dsn) as conn:
            assert_same(want, pg_evaluate(conn, reg.kpis, ids, data, request), strict=False)
    return want


def _both_raise(reg, ids, data, request, error):
    from kpi_registry.sql import evaluate_duckdb

    with pytest.raises(error) as pandas_error:
        evaluate_many(reg.kpis, ids, data, request)
    with pytest.raises(error) as duckdb_error:
        evaluate_duckdb(reg.kpis, ids, data, request)
    assert str(pandas_error.value) == str(duckdb_error.value)
    return pandas_error.value


# -- 1. row order ------------------------------------------------------------------------------
NPS_ROWS = pd.DataFrame(
    {
        "respondent": ["r1", "r1"],
        "month": ["2024-01", "2024-01"],
        "score": [0, 10],
        "responded_at": ["2024-01-02 10:00", "2024-01-01 09:00"],
    }
)


@pytest.mark.parametrize("reverse", [False, True])
def test_a_respondent_answering_twice_counts_with_the_latest_answer(reg, reverse):
    data = NPS_ROWS.iloc[::-1].reset_index(drop=True) if reverse else NPS_ROWS
    request = Request("month", "respondent")
    out = _engines(reg, ["net_promoter_score"], data, request)
    assert out["net_promoter_score"].tolist() == [-100.0]  # 0 on the 2nd is the answer


@pytest.mark.parametrize("kpi_id, column", [("net_promoter_score", "score")])
def test_answers_that_nothing_orders_are_an_error_naming_entity_and_period(reg, kpi_id, column):
    data = NPS_ROWS.drop(columns="responded_at")
    error = _both_raise(reg, [kpi_id], data, Request("month", "respondent"), UnorderedRowsError)
    assert (error.datapoint, error.entity, error.period, error.rows) == (
        column,
        "r1",
        "2024-01",
        [0, 1],
    )
    assert error.order_by == "responded_at" and error.order_column is None
    same_time = NPS_ROWS.assign(responded_at="2024-01-02 10:00")
    request = Request("month", "respondent")
    error = _both_raise(reg, [kpi_id], same_time, request, UnorderedRowsError)
    assert error.order_column == "responded_at"


def test_csat_and_the_pql_usage_score_take_the_latest_row_too(reg):
    data = pd.DataFrame(
        {
            "respondent": ["a", "a", "b"],
            "month": ["2024-01"] * 3,
            "csat_rating": [5, 2, 4],
            "responded_at": ["2024-01-20", "2024-01-05", "2024-01-09"],
        }
    )
    for frame in (data, data.iloc[::-1].reset_index(drop=True)):
        out = _engines(reg, ["customer_satisfaction_score"], frame, Request("month", "respondent"))
        assert out["customer_satisfaction_score"].tolist() == [100.0]


# -- 2. DAU/MAU at quarter grain ---------------------------------------------------------------
def test_dau_mau_reads_each_months_days_and_refuses_a_quarter(reg):
    data = pd.DataFrame(
        {"user": ["u1"] * 3, "month": ["2024-01", "2024-02", "2024-03"], "active_days": [20] * 3}
    )
    out = _engines(reg, ["dau_mau_ratio"], data, Request("month", "user"))
    assert out["dau_mau_ratio"].tolist() == pytest.approx([2000 / 31, 2000 / 29, 2000 / 31])
    quarter = Request("month", "user", [], "quarter")
    error = _both_raise(reg, ["dau_mau_ratio"], data, quarter, GrainError)
    assert (error.kpi_id, error.grain, error.grains) == ("dau_mau_ratio", "quarter", ("month",))
    assert "no single MAU" in error.reason
    with pytest.raises(GrainError):
        compile_many(reg.kpis, ["dau_mau_ratio"], "t", quarter)


# -- 3. flags over time ------------------------------------------------------------------------
DEALS = pd.DataFrame(
    {
        "deal": ["d1", "d1", "d2"],
        "month": ["2024-01", "2024-02", "2024-03"],
        "is_won": [1, 1, 0],
        "is_lost": [0, 0, 1],
        "deal_amount": [100.0, 10.0, 50.0],
        "days_to_close": [30, 30, 45],
    }
)


def test_a_deal_is_won_once_whatever_its_rows(reg):
    ids = ["average_deal_size", "sales_cycle_length", "win_rate"]
    out = _engines(reg, ids, DEALS, Request("month", "deal", [], "quarter"))
    assert out[ids].iloc[0].tolist() == [110.0, 30.0, 50.0]


# -- 4. opening snapshots ----------------------------------------------------------------------
def test_pipeline_coverage_reads_the_start_of_quarter_snapshot(reg):
    data = pd.DataFrame(
        {
            "rep": ["r1"] * 3,
            "month": ["2024-04", "2024-05", "2024-06"],
            "pipeline_amount": [300000.0, 150000.0, 20000.0],
            "quota": [100000.0, None, None],
        }
    )
    out = _engines(reg, ["pipeline_coverage_ratio"], data, Request("month", "rep", [], "quarter"))
    assert out["pipeline_coverage_ratio"].tolist() == [3.0]
    monthly = _engines(reg, ["pipeline_coverage_ratio"], data, Request("month", "rep"))
    assert monthly["pipeline_coverage_ratio"].tolist()[0] == 3.0


# -- 5. values outside their range -------------------------------------------------------------
CONTRACTS = pd.DataFrame(
    {"contract": ["c1", "c2", "c3"], "month": ["2024-01"] * 3, "contract_value": [12000, -2000, 0]}
)


def test_a_negative_contract_value_is_reported_with_its_row(reg):
    request = Request("month", "contract")
    error = _both_raise(reg, ["average_contract_value"], CONTRACTS, request, InvalidRowsError)
    assert (error.datapoint, error.rows, error.values, error.minimum) == (
        "contract_value",
        [1],
        [-2000.0],
        0.0,
    )
    asked = Request("month", "contract", drop_invalid=True)
    out = _engines(reg, ["average_contract_value"], CONTRACTS, asked)
    assert out["average_contract_value"].tolist() == [12000.0]
    assert any("contract_value" in w and "row 1" in w for w in out.attrs["warnings"])


def test_reported_rows_are_the_frames_own_labels(reg):
    data = CONTRACTS.set_axis([10, 20, 30])
    with pytest.raises(InvalidRowsError) as error:
        reg.evaluate("average_contract_value", data, period="month", entity="contract")
    assert error.value.rows == [20]
    with pytest.raises(InvalidRowsError) as error:
        reg.evaluate(
            "average_contract_value", data, period="month", entity="contract", engine="duckdb"
        )
    assert error.value.rows == [20]


# -- 5b. a range on what the rows add up to -----------------------------------------------------
def _mrr_lines(a_january_credit: float) -> pd.DataFrame:
    """Invoice lines in cents-exact amounts: a credit note is a negative line, so only one
    customer's MRR in a month (the lines summed) can be held to be at least 0. Customer c
    vanishes after January; b's February line comes twice."""
    return pd.DataFrame(
        {
            "customer": ["a", "b", "a", "c", "a", "a", "b", "b", "a"],
            "month": ["2024-01"] * 4 + ["2024-02"] * 4 + ["2024-03"],
            "revenue": [100.10, 50.0, a_january_credit, 20.0, 100.10, -0.10, 25.0, 25.0, 100.0],
        }
    )


def test_credit_lines_that_leave_a_positive_mrr_are_accepted_by_every_engine(reg):
    revenue = reg.kpis["net_revenue_retention"].datapoints["revenue"]
    assert (revenue.minimum, revenue.valid_per) == (0.0, "entity_period")  # a line may be < 0
    ids = ["net_revenue_retention", "monthly_recurring_revenue"]
    for data in (_mrr_lines(-30.05), _mrr_lines(-30.05).iloc[::-1]):
        out = _engines(reg, ids, data, Request("month", "customer"))
        assert out["monthly_recurring_revenue"].tolist() == pytest.approx([140.05, 150.0, 100.0])
        # February keeps a at 100 (from 70.05) and b at 50; c churned 20: 150 / 140.05
        assert out["net_revenue_retention"].tolist()[1] == pytest.approx(15000 / 140.05)
        assert not out.attrs["warnings"]


def test_credit_lines_that_leave_a_negative_mrr_are_reported_with_entity_period_and_rows(reg):
    data = _mrr_lines(-130.10)  # a's January: 100.10 - 130.10 = -30
    request = Request("month", "customer")
    error = _both_raise(reg, ["net_revenue_retention"], data, request, InvalidCellsError)
    assert (error.datapoint, error.cells, error.rows, error.values, error.minimum) == (
        "revenue",
        [("a", "2024-01")],
        [0, 2],
        [-30.0],
        0.0,
    )
    reverse = data.iloc[::-1]  # the rows keep their labels; the report does not change
    again = _both_raise(reg, ["net_revenue_retention"], reverse, request, InvalidCellsError)
    assert str(again) == str(error)
    # at quarter grain the month is still what is checked: a's March alone would hide it
    quarter = Request("month", "customer", [], "quarter")
    _both_raise(reg, ["monthly_recurring_revenue"], data, quarter, InvalidCellsError)


def test_drop_invalid_reads_a_negative_mrr_as_a_month_without_rows(reg):
    asked = Request("month", "customer", drop_invalid=True)
    ids = ["net_revenue_retention", "monthly_recurring_revenue"]
    out = _engines(reg, ids, _mrr_lines(-130.10), asked)
    # a's January left out (missing: zero): January MRR is b and c, 70; February's start too
    assert out["monthly_recurring_revenue"].tolist() == pytest.approx([70.0, 150.0, 100.0])
    assert out["net_revenue_retention"].tolist()[1] == pytest.approx(5000 / 70)
    assert any("'revenue'" in w and "'a'" in w and "2024-01" in w for w in out.attrs["warnings"])


def test_a_coupon_line_lowers_its_order_but_an_order_below_zero_is_reported(reg):
    """Average order value's lines add up per order; a coupon on the whole order may come as
    a negative line (refused per row before), an order worth less than nothing may not."""
    data = pd.DataFrame(
        {
            "order": ["A1", "A1", "A2", "A3", "A3"],
            "month": ["2024-01"] * 5,
            "order_net_value": [100.0, -20.0, 60.0, 30.0, -40.0],
        }
    )
    request = Request("month", "order")
    error = _both_raise(reg, ["average_order_value"], data, request, InvalidCellsError)
    assert (error.cells, error.rows, error.values) == ([("A3", "2024-01")], [3, 4], [-10.0])
    out = _engines(reg, ["average_order_value"], data.iloc[:3], request)
    assert out["average_order_value"].tolist() == [70.0]  # (80 + 60) / 2


def test_without_an_entity_each_row_is_held_to_the_range(reg):
    data = _mrr_lines(-130.10)
    with pytest.raises(InvalidCellsError):  # not a per-row error: the entity is known
        evaluate_many(reg.kpis, ["monthly_recurring_revenue"], data, Request("month", "customer"))
    # without one, each row is a cell (as everywhere in the engines): every negative line is
    # reported, the credit of 0.10 too; naming the entity column is the way to sum them first
    error = _both_raise(
        reg, ["monthly_recurring_revenue"], data, Request("month"), InvalidRowsError
    )
    assert error.rows == [2, 5]


# -- 6. contradictory rows ---------------------------------------------------------------------
def test_a_deal_won_and_lost_is_reported(reg):
    data = pd.DataFrame(
        {
            "deal": ["d1", "d2", "d3", "d4"],
            "month": ["2024-01"] * 4,
            "is_won": [1, 0, 1, 1],
            "is_lost": [1, 1, 0, 0],
        }
    )  # counted on both sides, d1 made the win rate 3 / (3 + 2) = 60%
    error = _both_raise(reg, ["win_rate"], data, Request("month", "deal"), ContradictoryRowsError)
    assert (error.datapoint, error.other, error.entity, error.period, error.rows) == (
        "is_won",
        "is_lost",
        "d1",
        "2024-01",
        [0],
    )
    asked = Request("month", "deal", drop_invalid=True)
    out = _engines(reg, ["win_rate", "average_deal_size"], data.assign(deal_amount=10.0), asked)
    assert out["win_rate"].tolist() == pytest.approx([200 / 3])  # d3, d4 won; d2 lost
    assert any("exclude each other" in w for w in out.attrs["warnings"])
    rows = _engines(reg, ["win_rate"], data, Request("month", drop_invalid=True))
    assert rows["win_rate"].tolist() == pytest.approx([200 / 3])  # without an entity: the row


def test_won_in_one_month_and_lost_in_the_next_contradict_at_quarter_grain(reg):
    data = pd.DataFrame(
        {"deal": ["d1", "d1"], "month": ["2024-01", "2024-02"], "is_won": [1, 0], "is_lost": [0, 1]}
    )
    evaluate_many(reg.kpis, ["win_rate"], data, Request("month", "deal"))  # per month: fine
    error = _both_raise(
        reg, ["win_rate"], data, Request("month", "deal", [], "quarter"), ContradictoryRowsError
    )
    assert (error.period, error.rows) == ("2024Q1", [0, 1])


# -- the SQL says what it cannot order ----------------------------------------------------------
def test_sql_orders_the_latest_answer_by_the_order_by_column(reg):
    sql = compile_many(reg.kpis, ["net_promoter_score"], "t", Request("month", "respondent"))
    assert "responded_at" in sql
    # a table without the order_by column: the rows of an entity-period must agree, as in the
    # pandas engine, and the statement fails where they do not (tests/test_sql_row_checks.py)
    unordered = compile_many(
        reg.kpis,
        ["net_promoter_score"],
        "t",
        Request("month", "respondent"),
        columns=["respondent", "month", "score"],
    )
    assert "responded_at" in unordered and "row_checks" in unordered


# -- 7. the last churn ---------------------------------------------------------------------------
def test_the_last_months_churn_is_in_every_engine(reg):
    from kpi_registry.billing import subscriptions_to_months

    subs = pd.DataFrame(
        {
            "c": ["a", "b"],
            "start": ["2024-01-01", "2024-01-01"],
            "end": ["2024-03-01", "2024-03-10"],
            "amt": [100, 50],
        }
    )
    months = subscriptions_to_months(subs, entity="c", start="start", end="end", amount="amt")
    months["month"] = months["month"].astype(str)
    out = _engines(reg, ["churned_revenue"], months, Request("month", "c"))
    assert out["churned_revenue"].tolist()[1:] == [0.0, 150.0]
