"""days_in_period() and business_days_in_period(): calendar facts per period, the same in the
pandas engine, the DuckDB engine, the SQL in PostgreSQL, the calculator and the exports."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from sql_helpers import POSTGRES_DSN, assert_same, pg_evaluate

import kpi_registry
from kpi_registry.errors import DataError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.export.metricflow import NotMappable, expression_sql
from kpi_registry.formula import parse, to_js
from kpi_registry.sql import compile_many, evaluate_duckdb

MAP = {"revenue": "mrr", "usage": "mrr"}


USAGE = {"name": "usage", "description": "Units used.", "unit": "count", "time": "flow"}


def _registry(library):
    library.add("days", "sum(usage * 0) + days_in_period()", datapoints=[USAGE])
    library.add("weekdays", "sum(usage * 0) + business_days_in_period()", datapoints=[USAGE])
    library.add("per_day", "sum(usage / days_in_period())", datapoints=[USAGE])
    library.add("per_weekday", "sum(usage) / business_days_in_period()", datapoints=[USAGE])
    return kpi_registry.load(library.root, include_bundled=False)


IDS = ["days", "weekdays", "per_day", "per_weekday"]


def _daily_rows(first: str, last: str) -> pd.DataFrame:
    days = pd.date_range(first, last, freq="D")
    return pd.DataFrame(
        {"customer": "a", "day": days.strftime("%Y-%m-%d"), "mrr": 1.0, "n": range(len(days))}
    )


@pytest.mark.parametrize(
    "grain, days, weekdays",
    [
        ("month", [31, 29, 31], [23, 21, 21]),
        ("quarter", [91], [65]),
        ("year", [366], [262]),
        ("week", [7, 7], [5, 5]),
    ],
)
def test_calendar_counts_per_period(library, grain, days, weekdays):
    reg = _registry(library)
    data = _daily_rows("2024-01-01", "2024-03-31")
    out = reg.evaluate_many(IDS, data, period="day", entity="customer", grain=grain, columns=MAP)
    assert out["days"].tolist()[: len(days)] == days
    assert out["weekdays"].tolist()[: len(weekdays)] == weekdays
    # a flow of 1 a day over the period's days: 1 where the data covers the period; the year
    # 2024 has rows in its first 91 days only, and still counts its 366
    covered = [91 / 366] if grain == "year" else [1.0] * len(days)
    assert out["per_day"].tolist()[: len(days)] == pytest.approx(covered)


def test_a_partial_period_counts_its_whole_calendar(library):
    reg = _registry(library)
    data = _daily_rows("2024-04-01", "2024-04-10")  # the data ends inside the quarter
    out = reg.evaluate_many(IDS, data, period="day", grain="quarter", columns=MAP)
    assert out["days"].tolist() == [91]


def test_weekend_days_have_no_business_day(library):
    reg = _registry(library)
    data = _daily_rows("2024-01-05", "2024-01-08")  # Friday to Monday
    out = reg.evaluate_many(IDS, data, period="day", entity="customer", columns=MAP)
    assert out["weekdays"].tolist() == [1, 0, 0, 1]
    assert out["per_weekday"].isna().tolist() == [False, True, True, False]  # x / 0 is missing


def test_monthly_rows_read_each_months_own_length(library):
    reg = _registry(library)
    data = pd.DataFrame(
        {"month": ["2023-02", "2024-02", "2024-03", "2024-04"], "mrr": [28.0, 29.0, 31.0, 30.0]}
    )
    out = reg.evaluate_many(IDS, data, period="month", columns=MAP)
    assert out["days"].tolist() == [28, 29, 31, 30]
    assert out["per_day"].tolist() == [1.0, 1.0, 1.0, 1.0]
    assert out["weekdays"].tolist() == [20, 21, 21, 22]


def test_without_a_period_the_calendar_functions_say_what_they_need(library):
    reg = _registry(library)
    with pytest.raises(DataError, match="counts the days of each period: pass period="):
        reg.evaluate("days", pd.DataFrame({"mrr": [1.0]}), columns=MAP)
    with pytest.raises(DataError, match="mapping have no periods"):
        reg.evaluate("weekdays", {"usage": 1.0})
    with pytest.raises(DataError, match="counts the days of each period"):
        compile_many(reg.kpis, ["days"], "t", Request(None, None, [], None, MAP))


@pytest.mark.parametrize(
    "period, rows, grain",
    [
        ("month", ["2023-11", "2023-12", "2024-01", "2024-02", "2024-03", "2024-05"], None),
        ("month", ["2023-11", "2023-12", "2024-01", "2024-02", "2024-03", "2024-05"], "quarter"),
        ("month", ["2023-11", "2023-12", "2024-01", "2024-02", "2024-03", "2024-05"], "year"),
        ("day", ["2024-02-27", "2024-02-28", "2024-03-01", "2024-03-02", "2024-03-04"], None),
        ("day", ["2024-02-27", "2024-02-28", "2024-03-01", "2024-03-02", "2024-03-04"], "week"),
        ("day", ["2024-02-27", "2024-02-28", "2024-03-01", "2024-03-02", "2024-03-04"], "month"),
    ],
)
@pytest.mark.parametrize("entity", [None, "customer"])
def test_duckdb_and_postgres_count_the_same_days(library, period, rows, grain, entity):
    reg = _registry(library)
    data = pd.DataFrame(
        {
            "customer": ["a", "b"] * (len(rows) // 2) + ["a"] * (len(rows) % 2),
            period: rows,
            "mrr": [10.0 * (i + 1) for i in range(len(rows))],
        }
    )
    request = Request(period, entity, [], grain, MAP)
    want = evaluate_many(reg.kpis, IDS, data, request)
    assert want["days"].notna().all()
    assert_same(want, evaluate_duckdb(reg.kpis, IDS, data, request))
    dsn = os.environ.get(POSTGRES_DSN)
    if dsn:
        import psycopg

        with psycopg.connect(dsn) as conn:
            got = pg_evaluate(conn, reg.kpis, IDS, data, request)
            assert_same(want, got, strict=False)


def test_calculator_uses_an_average_month_and_metricflow_says_why_not():
    assert to_js(parse("a / days_in_period()")) == 'K.div(v["a"], 30.436875)'
    assert to_js(parse("a / business_days_in_period()")) == 'K.div(v["a"], 21.740625)'
    with pytest.raises(NotMappable, match="counts the days of each period"):
        expression_sql(parse("x / days_in_period()"), lambda name: name)
