"""The DuckDB engine reads the data once: the period-format probe rides in the main query.

The format is guessed from the column's type and checked against the distinct periods the
same query returns; a wrong guess falls back to reading the format first, with the same
numbers and errors as before."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from sql_helpers import FIXTURES, REVENUE_FAMILY, assert_same, messy_frame

import kpi_registry
from kpi_registry.errors import DataError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.sql import duckdb_engine, evaluate_duckdb

MAP = {"revenue": "mrr"}
IDS = [*REVENUE_FAMILY, "order_count"]


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load(FIXTURES, include_bundled=False)


@pytest.fixture
def queries(monkeypatch):
    """The statements the engine runs on the data, in order."""
    seen: list[str] = []
    run = duckdb_engine._Input.query

    def counted(self, select):
        seen.append(select.sql("duckdb"))
        return run(self, select)

    monkeypatch.setattr(duckdb_engine._Input, "query", counted)
    return seen


def _months(frame: pd.DataFrame) -> pd.PeriodIndex:
    return pd.PeriodIndex(frame["month"], freq="M")


GUESSED = {  # period columns whose format the column's type tells
    "month_text": lambda f: f,
    "month_start_timestamps": lambda f: f.assign(month=_months(f).to_timestamp()),
    "pandas_periods": lambda f: f.assign(month=_months(f)),
    "year_integers": lambda f: f.assign(month=_months(f).year),
}


@pytest.mark.parametrize("variant", sorted(GUESSED))
@pytest.mark.parametrize("by", [[], ["segment"]])
def test_one_query_per_call(reg, queries, variant, by):
    frame = GUESSED[variant](messy_frame())
    request = Request("month", "customer", by, None, MAP)
    got = evaluate_duckdb(reg.kpis, IDS, frame, request)
    assert len(queries) == 1
    assert_same(evaluate_many(reg.kpis, IDS, frame, request), got)


def test_one_query_from_parquet_dates_and_a_table(reg, queries, tmp_path):
    frame = messy_frame()
    frame["month"] = _months(frame).to_timestamp().date  # a DATE column in Parquet
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    request = Request("month", "customer", ["segment"], None, MAP)
    want = evaluate_many(reg.kpis, IDS, pd.read_parquet(path), request)
    assert_same(want, evaluate_duckdb(reg.kpis, IDS, str(path), request))
    assert len(queries) == 1
    con = duckdb.connect()
    con.execute(f"CREATE TABLE rows AS SELECT * FROM read_parquet('{path}')")
    assert_same(want, evaluate_duckdb(reg.kpis, IDS, (con, "rows"), request))
    assert len(queries) == 2


def test_a_wrong_guess_runs_the_statement_for_the_format_read(reg, queries):
    """Billing days (the 3rd, the 17th) are not month starts: the guessed statement is set
    aside and the one for the format read from the data gives the pandas engine's numbers."""
    frame = messy_frame()
    days = np.random.default_rng(5).integers(0, 27, len(frame))
    frame["month"] = _months(frame).to_timestamp() + pd.to_timedelta(days, "D")
    request = Request("month", "customer", ["segment"], None, MAP)
    got = evaluate_duckdb(reg.kpis, IDS, frame, request)
    assert_same(evaluate_many(reg.kpis, IDS, frame, request), got)
    assert len(queries) > 1
    assert queries[-1] != queries[0]  # the last statement is not the guessed one


@pytest.mark.parametrize("column", ["customer", "month"])
def test_rows_without_entity_or_period_are_refused_in_one_query(reg, queries, column):
    frame = messy_frame()
    frame.loc[frame.index[3], column] = None
    request = Request("month", "customer", [], None, MAP)
    with pytest.raises(DataError) as pandas_error:
        evaluate_many(reg.kpis, IDS, frame, request)
    queries.clear()
    with pytest.raises(DataError, match=f"column {column!r} is empty") as duckdb_error:
        evaluate_duckdb(reg.kpis, IDS, frame, request)
    assert type(duckdb_error.value) is type(pandas_error.value)
    assert len(queries) == 1


def test_clean_rows_cost_no_query_of_their_own_when_a_datapoint_has_a_range(queries):
    """The bundled MRR may not be negative per customer and month: the statement checks it
    itself, and only when that check fails are the rows fetched, to word the error as the
    pandas engine does."""
    from kpi_registry.errors import InvalidCellsError

    bundled = kpi_registry.load()
    ids = ["net_revenue_retention", "monthly_recurring_revenue"]
    frame = messy_frame().assign(mrr=lambda f: f["mrr"].abs())
    request = Request("month", "customer", [], None, MAP)
    got = evaluate_duckdb(bundled.kpis, ids, frame, request)
    assert len(queries) == 1
    assert_same(evaluate_many(bundled.kpis, ids, frame, request), got)
    frame.loc[frame.index[5], "mrr"] = -1e9  # one customer-month far below zero
    queries.clear()
    with pytest.raises(InvalidCellsError) as pandas_error:
        evaluate_many(bundled.kpis, ids, frame, request)
    with pytest.raises(InvalidCellsError) as duckdb_error:
        evaluate_duckdb(bundled.kpis, ids, frame, request)
    assert str(duckdb_error.value) == str(pandas_error.value)
    assert any("_kpi_label" in q for q in queries)  # the failing rows were fetched


def test_credit_lines_in_a_positive_customer_month_cost_no_second_query(queries):
    """A credit line is a negative row, but its customer-month stays at or above zero: the
    statement's own row check passes, so no row is fetched to be checked again."""
    bundled = kpi_registry.load()
    ids = ["net_revenue_retention", "monthly_recurring_revenue"]
    frame = messy_frame().assign(mrr=lambda f: f["mrr"].abs() + 10.0)
    credit = frame.iloc[[5]].assign(mrr=-4.0)  # half of the smallest possible charge
    frame = pd.concat([frame, credit], ignore_index=True)
    request = Request("month", "customer", [], None, MAP)
    got = evaluate_duckdb(bundled.kpis, ids, frame, request)
    assert len(queries) == 1
    assert not any("_kpi_label" in q for q in queries)
    want = evaluate_many(bundled.kpis, ids, frame, request)
    assert_same(want, got)
    without = evaluate_many(bundled.kpis, ids, frame.iloc[:-1], request)
    assert not want["monthly_recurring_revenue"].equals(without["monthly_recurring_revenue"])
