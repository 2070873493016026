"""Errors about one cell carry the cell's facts as fields (column, row, value, problem), so
that each front end words and places them without reading the message (issue 20)."""

from __future__ import annotations

import pandas as pd
import pytest

import kpi_registry
from kpi_registry.billing import subscriptions_to_months
from kpi_registry.errors import CellError


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


def _eval(reg, frame: pd.DataFrame):
    return reg.evaluate(
        "net_revenue_retention",
        frame,
        period="month",
        entity="customer",
        columns={"revenue": "mrr"},
    )


@pytest.mark.parametrize(
    "cells, column, problem, value, role",
    [
        ({"mrr": [100, "1,000", 5]}, "mrr", "not_numeric", "1,000", ""),
        ({"customer": ["a", None, "c"]}, "customer", "empty", None, "entity"),
        ({"month": ["2024-01", None, "2024-02"]}, "month", "empty", None, "period"),
    ],
)
def test_a_bad_cell_is_an_error_with_its_facts(reg, cells, column, problem, value, role):
    frame = pd.DataFrame(
        {"customer": ["a", "b", "c"], "month": ["2024-01", "2024-01", "2024-02"], "mrr": [1, 2, 3]},
        index=["x", "y", "z"],
    ).assign(**cells)
    with pytest.raises(CellError) as caught:
        _eval(reg, frame)
    error = caught.value
    assert (error.column, error.row, error.value, error.problem, error.role) == (
        column,
        "y",  # the frame's own row label
        value,
        problem,
        role,
    )
    assert "row 'y'" in str(error)  # the Python API names the row as the frame labels it
    assert "row" not in error.render(None)  # a front end that placed the row leaves it out
    assert "row 2" in error.render(2)


def test_an_unparsable_period_carries_its_value(reg):
    frame = pd.DataFrame({"customer": ["a"], "month": ["45366"], "mrr": [1]})
    with pytest.raises(CellError) as caught:
        _eval(reg, frame)
    assert (caught.value.problem, caught.value.value, caught.value.column) == (
        "unparsable_period",
        "45366",
        "month",
    )


def test_a_subscription_ending_before_its_start_names_its_row_and_end():
    subs = pd.DataFrame(
        {"c": ["a", "b"], "start": ["2024-01-01", "2024-05-01"], "end": [None, "2024-03-01"]}
        | {"amt": [1, 2]},
        index=[10, 11],
    )
    with pytest.raises(CellError) as caught:
        subscriptions_to_months(subs, entity="c", start="start", end="end", amount="amt")
    error = caught.value
    assert (error.problem, error.row, error.column, error.value) == (
        "ends_before_start",
        11,
        "end",
        "2024-03-01",
    )
    assert str(error) == "subscription at row 11 ends before it starts"
