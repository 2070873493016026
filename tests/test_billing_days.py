"""Monthly rows dated on a billing day: read as months, not as days on which everyone churns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import kpi_registry
from kpi_registry import periods

REVENUE = {"revenue": "mrr"}


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


def billing_export(as_text: bool = False) -> pd.DataFrame:
    """Each customer billed once a month on its own day; b churns after February, c is new in
    March, a expands in March."""
    rows = [
        ("a", "2024-01-15", 100.0),
        ("b", "2024-01-03", 50.0),
        ("a", "2024-02-15", 100.0),
        ("b", "2024-02-03", 50.0),
        ("a", "2024-03-15", 120.0),
        ("c", "2024-03-28", 30.0),
    ]
    frame = pd.DataFrame(rows, columns=["customer", "billed", "mrr"])
    if not as_text:
        frame["billed"] = pd.to_datetime(frame["billed"])
    return frame


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
@pytest.mark.parametrize("as_text", [False, True], ids=["datetimes", "text"])
def test_monthly_rows_dated_on_a_billing_day_are_months(reg, engine, as_text):
    ids = ["monthly_recurring_revenue", "churned_revenue", "new_revenue", "expansion_revenue"]
    out = reg.evaluate_many(
        ids, billing_export(as_text), period="billed", entity="customer", columns=REVENUE,
        engine=engine,
    )  # fmt: skip
    assert len(out) == 3  # January to March, not one row per day
    assert list(out["monthly_recurring_revenue"]) == [150.0, 150.0, 150.0]
    assert list(out["churned_revenue"])[1:] == [0.0, 50.0]
    assert list(out["new_revenue"])[1:] == [0.0, 30.0]
    assert list(out["expansion_revenue"])[1:] == [0.0, 20.0]
    assert out.attrs["warnings"] == []  # no "no rows at all" days
    quarterly = reg.evaluate(
        "monthly_recurring_revenue", billing_export(as_text), period="billed", entity="customer",
        columns=REVENUE, grain="quarter", engine=engine,
    )  # fmt: skip
    assert list(quarterly["monthly_recurring_revenue"]) == [150.0]  # March's, not 0 on the 31st


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_days_stay_days_when_asked_for_or_when_a_customer_has_two_in_a_month(reg, engine):
    data = billing_export()
    daily = reg.evaluate(
        "monthly_recurring_revenue", data, period="billed", entity="customer", columns=REVENUE,
        grain="day", engine=engine,
    )  # fmt: skip
    assert len(daily) > 70  # every day from 3 January to 28 March
    snapshots = pd.concat([data, data.assign(billed=data["billed"] + pd.Timedelta(days=1))])
    out = reg.evaluate(
        "monthly_recurring_revenue", snapshots, period="billed", entity="customer",
        columns=REVENUE, engine=engine,
    )  # fmt: skip
    assert len(out) > 70  # two snapshot days in a month: daily data, read as days


def test_monthly_rows_rule():
    days = pd.Series(pd.to_datetime(["2024-01-15", "2024-01-03", "2024-02-15", "2024-02-03"]))
    axis = periods.parse(days, "d")
    assert axis.base == "D"
    months = periods.monthly_rows(axis, np.array([0, 1, 0, 1]), None)
    assert months.base == "M" and list(months.codes) == [0, 0, 1, 1] and months.count == 2
    assert periods.monthly_rows(axis, None, None) is None  # without an entity: two days a month
    assert periods.monthly_rows(axis, np.array([0, 0, 0, 1]), None) is None
    assert periods.monthly_rows(axis, np.array([0, 1, 0, 1]), "day") is None
    assert periods.monthly_rows(axis, np.array([0, 1, 0, 1]), "week") is None
    one_month = periods.parse(pd.Series(pd.to_datetime(["2024-01-15", "2024-01-03"])), "d")
    assert periods.monthly_rows(one_month, np.array([0, 1]), None) is None  # one month: unsure
