"""The generated SQL itself refuses rows the pandas engine refuses (issue 14's SQL item).

Run in a warehouse, ``kpi sql``'s statement has no Python around it to check the rows first
(as ``evaluate(engine="duckdb")`` does): it fails with a message naming the datapoint, the rule
and an entity and period where a value lies outside its valid range, where a ``rows: last``
rule cannot order an entity-period's differing rows, and where flags that exclude each other
are both set. With ``drop_invalid`` it computes what ``evaluate(..., drop_invalid=True)`` does.
Each case runs in DuckDB and, where ``KPI_TEST_POSTGRES_DSN`` is set, in PostgreSQL.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from sql_helpers import assert_same, pg_connection, pg_load

import kpi_registry
from kpi_registry.errors import RowsError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.sql import DIALECTS, compile_many


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


@pytest.fixture(scope="module")
def pg():
    yield from pg_connection()


CONTRACTS = pd.DataFrame(
    {
        "month": ["2024-01", "2024-01", "2024-01", "2024-02"],
        "contract": ["a", "b", "c", "a"],
        "contract_value": [12000.0, -2000.0, 0.0, 500.0],
    }
)
DEALS = pd.DataFrame(
    {
        "month": ["2024-01", "2024-01", "2024-01", "2024-01", "2024-02"],
        "deal": ["d1", "d2", "d3", "d2", "d4"],
        "is_won": [1, 1, 0, 0, 1],
        "is_lost": [0, 0, 1, 1, 0],
    }
)
SURVEYS = pd.DataFrame(
    {
        "month": ["2024-01", "2024-01", "2024-01", "2024-02"],
        "respondent": ["r1", "r1", "r2", "r1"],
        "score": [0.0, 10.0, 9.0, 7.0],
    }
)
# invoice lines with credits: customer a's January sums to -30, an MRR no customer can have
MRR_LINES = pd.DataFrame(
    {
        "month": ["2024-01", "2024-01", "2024-01", "2024-02", "2024-02", "2024-02"],
        "customer": ["a", "a", "b", "a", "a", "b"],
        "revenue": [100.0, -130.0, 50.0, 100.0, -40.0, 50.0],
    }
)

# (KPI, data, entity, what the message names)
CASES = {
    "negative_contract": (
        "average_contract_value",
        CONTRACTS,
        "contract",
        ["'contract_value'", "at least 0", "entity 'b'", "2024-01", "drop_invalid"],
    ),
    "won_and_lost": (
        "win_rate",
        DEALS,
        "deal",
        ["'is_won' and 'is_lost'", "exclude each other", "entity 'd2'", "2024-01"],
    ),
    "negative_mrr": (
        "net_revenue_retention",
        MRR_LINES,
        "customer",
        ["'revenue'", "at least 0 per entity and period", "entity 'a'", "2024-01", "-30"],
    ),
    "two_answers_no_order": (
        "net_promoter_score",
        SURVEYS,
        "respondent",
        ["'score'", "rows: last", "entity 'r1'", "2024-01", "'responded_at'"],
    ),
}


def _sql(reg, case: str, dialect: str, drop_invalid: bool = False) -> str:
    kpi_id, frame, entity, _ = CASES[case]
    request = Request("month", entity, [], None, {}, drop_invalid)
    return compile_many(reg.kpis, [kpi_id], "t", request, dialect, columns=list(frame.columns))


def _duckdb(sql: str, frame: pd.DataFrame) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("t", frame)
    return con.execute(sql).df()


def _pandas(reg, case: str, drop_invalid: bool) -> pd.DataFrame:
    kpi_id, frame, entity, _ = CASES[case]
    request = Request("month", entity, [], None, {}, drop_invalid)
    return evaluate_many(reg.kpis, [kpi_id], frame, request)


def _postgres(pg, sql: str, frame: pd.DataFrame) -> pd.DataFrame:
    pg_load(pg, "t", frame)
    try:
        with pg.cursor() as cur:
            cur.execute(sql)
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
    finally:
        pg.rollback()
    return pd.DataFrame(rows, columns=names)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pandas_refuses_these_rows(reg, case):
    with pytest.raises(RowsError):
        _pandas(reg, case, drop_invalid=False)


@pytest.mark.parametrize("case", sorted(CASES))
def test_duckdb_sql_fails_naming_datapoint_rule_entity_and_period(reg, case):
    _, frame, _, named = CASES[case]
    with pytest.raises(duckdb.Error) as caught:
        _duckdb(_sql(reg, case, "duckdb"), frame)
    for part in named:
        assert part in str(caught.value)


@pytest.mark.parametrize("case", sorted(CASES))
def test_postgres_sql_fails_naming_datapoint_rule_entity_and_period(pg, reg, case):
    import psycopg

    _, frame, _, named = CASES[case]
    with pytest.raises(psycopg.Error) as caught:
        _postgres(pg, _sql(reg, case, "postgres"), frame)
    for part in named:
        assert part in str(caught.value)


DROPPABLE = ["negative_contract", "negative_mrr", "won_and_lost"]


@pytest.mark.parametrize("case", DROPPABLE)
def test_drop_invalid_gives_the_pandas_numbers_in_duckdb(reg, case):
    want = _pandas(reg, case, drop_invalid=True)
    got = _duckdb(_sql(reg, case, "duckdb", drop_invalid=True), CASES[case][1])
    assert_same(want, got, strict=False)
    assert want.iloc[:, 1].notna().any()


@pytest.mark.parametrize("case", DROPPABLE)
def test_drop_invalid_gives_the_pandas_numbers_in_postgres(pg, reg, case):
    want = _pandas(reg, case, drop_invalid=True)
    got = _postgres(pg, _sql(reg, case, "postgres", drop_invalid=True), CASES[case][1])
    assert_same(want, got, strict=False)


def test_unordered_rows_stay_an_error_with_drop_invalid(reg):
    """drop_invalid leaves bad values out; it does not choose between rows (pandas neither)."""
    with pytest.raises(RowsError):
        _pandas(reg, "two_answers_no_order", drop_invalid=True)
    with pytest.raises(duckdb.Error, match="rows: last"):
        _duckdb(_sql(reg, "two_answers_no_order", "duckdb", drop_invalid=True), SURVEYS)


def test_valid_rows_give_the_pandas_numbers(reg):
    """The checks change nothing where the rows are fine, agreeing rows without an order
    column included."""
    fixes = {
        "negative_contract": CONTRACTS.assign(contract_value=[12000.0, 2000.0, 0.0, 500.0]),
        "won_and_lost": DEALS.assign(deal=["d1", "d2", "d3", "d5", "d4"]),
        "two_answers_no_order": SURVEYS.assign(score=[10.0, 10.0, 9.0, 7.0]),
    }
    for case, frame in fixes.items():
        kpi_id, _, entity, _ = CASES[case]
        request = Request("month", entity, [], None, {})
        want = evaluate_many(reg.kpis, [kpi_id], frame, request)
        sql = compile_many(reg.kpis, [kpi_id], "t", request, columns=list(frame.columns))
        assert_same(want, _duckdb(sql, frame), strict=False)


def test_ties_on_the_order_column_fail(reg):
    frame = SURVEYS.assign(responded_at=["2024-01-05", "2024-01-05", "2024-01-09", "2024-02-01"])
    request = Request("month", "respondent", [], None, {})
    with pytest.raises(RowsError):
        evaluate_many(reg.kpis, ["net_promoter_score"], frame, request)
    sql = compile_many(reg.kpis, ["net_promoter_score"], "t", request)
    with pytest.raises(duckdb.Error, match="the same 'responded_at'"):
        _duckdb(sql, frame)
    ordered = frame.assign(responded_at=["2024-01-05", "2024-01-06", "2024-01-09", "2024-02-01"])
    want = evaluate_many(reg.kpis, ["net_promoter_score"], ordered, request)
    assert_same(want, _duckdb(sql, ordered), strict=False)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_dialect_writes_one_check_cte(reg, dialect):
    sql = _sql(reg, "won_and_lost", dialect)
    assert sql.count("row_checks AS (") == 1
    assert "_row_problem" in sql
    assert "row_checks" not in _sql(reg, "won_and_lost", dialect, drop_invalid=True)


@pytest.mark.parametrize("table", ["source", "row_checks"])
def test_a_table_named_like_a_cte_is_checked_too(reg, table):
    request = Request("month", "contract", [], None, {})
    sql = compile_many(
        reg.kpis, ["average_contract_value"], table, request, columns=list(CONTRACTS.columns)
    )
    con = duckdb.connect()
    con.register(table, CONTRACTS)
    with pytest.raises(duckdb.Error, match="'contract_value' must be at least 0: entity 'b'"):
        con.execute(sql).df()
