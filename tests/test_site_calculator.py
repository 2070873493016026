"""Which KPIs get a calculator, and what its inputs mean (issue 19)."""

from __future__ import annotations

import pytest

import kpi_registry
from kpi_registry.site.calculator import calculator_for, lower_bound, scalar_form


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


def test_totals_and_averages_of_the_period_make_a_calculator(reg):
    gross = calculator_for(reg, reg["gross_margin"])  # (sum(rev) - sum(cost)) / sum(rev) * 100
    assert gross is not None
    assert [f.label for f in gross.fields] == [
        "total revenue recognized in the period",
        "total cost of revenue in the period",
    ]
    effort = calculator_for(reg, reg["customer_effort_score"])  # mean(ease_rating)
    (field,) = effort.fields
    assert field.label.startswith("average ") and (field.minimum, field.maximum) == (1, 7)
    made = sum(calculator_for(reg, k) is not None for k in reg)
    assert made >= len(reg) // 2  # 15 of 238 before: only formulas without any aggregate


def test_no_calculator_where_the_period_figures_do_not_give_the_value(reg):
    kpi_registry_formulas = {
        # a filter, a count, an aggregate of a product or of a time function need rows
        "sum(a, a > 0)": None,
        "count(a)": None,
        "sum(a * b)": None,
        "mean(a / b)": None,
        "sum(a - previous(a))": None,
        # linear: the period's totals give the value
        "sum(a - 2 * b) / sum(b)": {"a": "total", "b": "total"},
        # one name as a total and as an average: no single input can be both
        "sum(a) / mean(a)": None,
    }
    from kpi_registry.formula import parse

    for text, roles in kpi_registry_formulas.items():

        class Fake:
            expression = parse(text)
            datapoints = {"a": None, "b": None}

        found = scalar_form(Fake)
        got = found[1] if found and calculator_can_run(found[0]) else None
        assert got == roles, text


def calculator_can_run(node) -> bool:
    from kpi_registry.formula import NotScalar, to_js

    try:
        to_js(node)
    except NotScalar:
        return False
    return True


def test_a_kpi_that_cannot_be_negative_bounds_its_calculator_input(reg):
    assert lower_bound(reg, "customer_churn_rate") == 0  # counts
    clv = calculator_for(reg, reg["customer_lifetime_value"])
    bounds = {f.name: f.minimum for f in clv.fields}
    assert bounds["customer_churn_rate"] == 0
    assert lower_bound(reg, "expansion_revenue") is None  # a difference may be negative
