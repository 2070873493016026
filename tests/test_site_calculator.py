"""Which KPIs get a calculator, and what its inputs mean (issue 19)."""

from __future__ import annotations

import pandas as pd
import pytest

import kpi_registry
from kpi_registry.errors import InvalidRowsError
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


def test_a_negative_total_is_outside_the_cost_per_lead_calculators_range(reg):
    """Issue 19: inputs outside a datapoint's valid range warn instead of giving a number.
    Spend and lead counts cannot be negative, so Cost per Lead's inputs say so (min="0";
    calculator.js warns below it); before, neither declared a range and -50 leads gave a
    confident negative cost per lead."""
    fields = {f.name: f for f in calculator_for(reg, reg["cost_per_lead"]).fields}
    assert fields["marketing_spend"].minimum == 0
    assert fields["leads"].minimum == 0


def test_nrr_starting_revenue_cannot_be_negative(reg):
    """Issue 19: a negative starting revenue gave NRR 130%. One customer's MRR in a month is
    never negative (``valid: {min: 0, per: entity_period}``; its invoice lines may be), so the
    sums the calculator asks for are bounded too: Starting Revenue gets min="0" and
    calculator.js warns below it. Differences such as expansion stay unbounded."""
    assert lower_bound(reg, "starting_revenue") == 0
    assert lower_bound(reg, "monthly_recurring_revenue") == 0
    fields = {f.name: f for f in calculator_for(reg, reg["net_revenue_retention"]).fields}
    assert fields["starting_revenue"].minimum == 0
    assert fields["churned_revenue"].minimum == 0
    assert fields["expansion_revenue"].minimum is None
    assert fields["contraction_revenue"].minimum is None


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_both_engines_report_a_negative_lead_count_row(reg, engine):
    rows = pd.DataFrame(
        {
            "month": ["2024-01", "2024-01", "2024-02"],
            "marketing_spend": [1000.0, 500.0, 900.0],
            "leads": [10.0, -5.0, 30.0],
        },
        index=[10, 11, 12],
    )
    with pytest.raises(InvalidRowsError) as error:
        reg.evaluate("cost_per_lead", rows, period="month", engine=engine)
    assert (error.value.datapoint, error.value.rows, error.value.values) == ("leads", [11], [-5])
    assert error.value.minimum == 0
    kept = reg.evaluate("cost_per_lead", rows, period="month", engine=engine, drop_invalid=True)
    assert kept["cost_per_lead"].tolist() == pytest.approx([150.0, 30.0])


def test_a_datapoint_has_one_range_wherever_it_is_declared(reg):
    """The same datapoint name carries the same range in every definition that declares it
    (a KPI's calculator and engines must not disagree with its neighbour's). MRR's rows may be
    invoice lines, credits among them, that add up per customer and month
    (test_semantics_audit), so its range holds for that sum (per entity_period), not per row:
    a row range would refuse legitimate exports."""
    ranges: dict[str, set] = {}
    for kpi in reg:
        for name, dp in kpi.datapoints.items():
            ranges.setdefault(name, set()).add((dp.minimum, dp.maximum, dp.valid_per))
    assert {n: r for n, r in ranges.items() if len(r) > 1} == {}
    assert ranges["leads"] == {(0, None, "row")}
    assert ranges["revenue"] == {(0, None, "entity_period")}
    assert ranges["revenue_recognized"] == {(None, None, "row")}  # credit notes are negative rows
