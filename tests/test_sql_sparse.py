"""The sparse layout: rows plus the period after each instead of the whole entity x period grid.

It must give exactly the dense grid's numbers (and so the pandas engine's), and be chosen only
for formulas where the cells it skips provably change nothing.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sql_helpers import (
    DENSE_FIXTURES,
    FIXTURES,
    REVENUE_FAMILY,
    assert_same,
    messy_frame,
    messy_variants,
)
from test_sql_duckdb import needs_period

import kpi_registry
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.formula import parse
from kpi_registry.sql import SQLCompileError, compile_many, evaluate_duckdb

MAP = {"revenue": "mrr"}


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load(FIXTURES, include_bundled=False)


def _layout(sql: str) -> tuple[str, str]:
    found = re.findall(r"/\* (dense|sparse): [^;]*; (.*?) \*/", sql)
    assert len(found) == 1, found
    return found[0]


def _sparse_ids(reg) -> list[str]:
    return [k for k in reg.ids if k not in DENSE_FIXTURES]


# -- which formulas may skip empty cells ---------------------------------------------------------
_YAML = """id: {id}
name: {id}
summary: Test KPI for the sparse layout.
category: testing
unit: ratio
direction: higher_is_better
status: draft
definition: Computes {id} for the sparse layout tests.
formula:
  expression: "{formula}"
datapoints:
{datapoints}
"""
_DATAPOINTS = {
    "revenue": "zero",  # 0 where a customer has no row
    "score": "null",  # missing where a customer has no row
}

FORMULAS = {
    # the revenue family's shapes
    "sum(previous(revenue))": "sparse",
    "sum(revenue - previous(revenue), previous(revenue) > 0 and revenue > previous(revenue))": (
        "sparse"
    ),
    "sum(previous(revenue), previous(revenue) > 0 and revenue = 0)": "sparse",
    "sum(revenue, previous(revenue) = 0 and revenue > 0 and not ever_before(revenue > 0))": (
        "sparse"
    ),
    "sum(revenue, previous(revenue) = 0 and revenue > 0 and ever_before(revenue > 0))": "sparse",
    # counting customers who pay, or values that are missing where there is no row
    "count(revenue, revenue > 0)": "sparse",
    "count(score)": "sparse",
    "mean(score) + max(score) + median(score)": "sparse",
    "count_distinct(score, revenue > 0)": "sparse",
    # a filter true at zero that only adds zeros
    "sum(revenue, revenue >= 0)": "sparse",
    # previous() closed by coalesce(), at 0 in the first period too
    "sum(coalesce(previous(revenue), 0) + revenue)": "sparse",
    # over all customers: an empty cell counts
    "count(revenue)": "count() in k counts cells without rows",
    "mean(revenue)": "mean() in k counts cells without rows",
    "min(revenue)": "min() in k counts cells without rows",
    "count_distinct(revenue)": "count_distinct() in k counts cells without rows",
    # a filter true at zero
    "count(revenue, revenue >= 0)": "count() in k counts cells without rows",
    "sum(1, revenue = 0)": "sum() in k counts cells without rows",
    "sum(revenue + 1)": "sum() in k counts cells without rows",
    "sum(previous(revenue) + 1)": "sum() in k counts cells without rows",
    # two periods back: a row reaches past the period after it
    "sum(previous(previous(revenue)))": "previous() of previous() looks back more than one period",
    "sum(previous(revenue) - previous(previous(revenue)))": (
        "previous() of previous() looks back more than one period"
    ),
    "sum(revenue, previous(if(ever_before(revenue > 0), 1, 0)) = 1)": (
        "previous() of ever_before() looks back more than one period"
    ),
    # 1 in an empty cell of the first period only, where previous() is missing
    "sum(coalesce(previous(revenue), 1))": "sum() in k counts cells without rows",
    # previous() of a constant is that constant, in the first period too
    "sum(1, coalesce(previous(revenue), 7) = 7 and coalesce(previous(3), 0) = 3)": (
        "sum() in k counts cells without rows"
    ),
    "count(score, previous(1) = 1)": "sparse",
    # ever_before() may be true in an empty cell
    "sum(revenue, ever_before(revenue = 0))": (
        "an ever_before() condition holds in cells without rows"
    ),
    "count(score, ever_before(revenue > 0))": "sparse",
    # ever_before() of previous(): a second layer of windows, over rows and following periods
    "sum(revenue, ever_before(previous(revenue) > 0))": "sparse",
    "count(score, not ever_before(previous(revenue) > 50) and previous(score) > 2)": "sparse",
    # ever_before() of ever_before(): the inner one may be true in an empty cell
    "sum(revenue, ever_before(ever_before(revenue > 0)))": (
        "an ever_before() condition holds in cells without rows"
    ),
    "count(revenue, ever_before(revenue > 0))": "count() in k counts cells without rows",
}


def _registry(tmp_path, formula: str):
    used = {n.name for n in parse(formula).walk() if hasattr(n, "name") and n.name}
    lines = []
    for name, missing in _DATAPOINTS.items():
        if name in used:
            lines.append(
                f"  - name: {name}\n    description: {name} of one customer.\n"
                f"    unit: currency\n    rows: sum\n    time: stock\n    missing: {missing}"
                # as the bundled library declares MRR, which `kpi sql` loads beside it
                + ("\n    valid: {min: 0, per: entity_period}" if name == "revenue" else "")
            )
    (tmp_path / "k.yaml").write_text(
        _YAML.format(id="k", formula=formula.replace('"', '\\"'), datapoints="\n".join(lines))
    )
    (tmp_path / "_taxonomy.yaml").write_text((FIXTURES / "_taxonomy.yaml").read_text())
    return kpi_registry.load(tmp_path, include_bundled=False)


@pytest.mark.parametrize("formula", sorted(FORMULAS))
def test_layout_is_chosen_from_the_formula(tmp_path, formula):
    """Formulas that pick up something from an empty cell keep the dense grid, with the reason
    in the SQL; the others skip empty cells. Both match the pandas engine on messy data."""
    reg = _registry(tmp_path, formula)
    request = Request("month", "customer", ["segment"], None, {"revenue": "mrr"})
    sql = compile_many(reg.kpis, ["k"], "t", request)
    kind, reason = _layout(sql)
    expected = FORMULAS[formula]
    if expected == "sparse":
        assert kind == "sparse", reason
    else:
        assert (kind, reason) == ("dense", expected)
        with pytest.raises(SQLCompileError, match="layout='sparse' would not give"):
            compile_many(reg.kpis, ["k"], "t", request, layout="sparse")
    data = messy_frame(seed=5)
    want = evaluate_many(reg.kpis, ["k"], data, request)
    for layout in ("auto", "dense"):
        assert_same(want, evaluate_duckdb(reg.kpis, ["k"], data, request, layout=layout))


def test_one_dense_formula_makes_the_whole_query_dense(reg):
    request = Request("month", "customer", [], None, MAP)
    assert _layout(compile_many(reg.kpis, REVENUE_FAMILY, "t", request))[0] == "sparse"
    both = compile_many(reg.kpis, [*REVENUE_FAMILY, "steady_customers"], "t", request)
    assert _layout(both) == ("dense", DENSE_FIXTURES["steady_customers"])
    forced = compile_many(reg.kpis, REVENUE_FAMILY, "t", request, layout="dense")
    assert _layout(forced) == ("dense", "asked for (layout='dense')")
    assert "CROSS JOIN periods AS p" in forced and "CROSS JOIN periods AS p" not in (
        compile_many(reg.kpis, REVENUE_FAMILY, "t", request)
    )


def test_fixture_kpis_layouts(reg):
    request = Request("month", "customer", ["segment"], None, MAP)
    for kpi_id in reg.ids:
        sql = compile_many(reg.kpis, [kpi_id], "t", request, order="loaded_at")
        kind, reason = _layout(sql)
        if kpi_id in DENSE_FIXTURES:
            assert (kind, reason) == ("dense", DENSE_FIXTURES[kpi_id])
        else:
            assert kind == "sparse", (kpi_id, reason)


def test_layout_errors(reg):
    with pytest.raises(SQLCompileError, match="unknown layout 'thin'"):
        compile_many(reg.kpis, ["total_revenue"], "t", Request("month", "c"), layout="thin")
    with pytest.raises(SQLCompileError, match="needs an entity"):
        compile_many(reg.kpis, ["total_revenue"], "t", Request("month"), layout="sparse")
    # without an entity there is no grid and nothing to say about it
    assert "/*" not in compile_many(reg.kpis, ["total_revenue"], "t", Request("month"))


# -- sparse and dense give the pandas engine's numbers -----------------------------------------
VARIANTS = messy_variants()

REQUESTS = {
    "grid": Request("month", "customer", [], None, MAP),
    "by_segment": Request("month", "customer", ["segment"], None, MAP),
    "by_two": Request("month", "customer", ["segment", "plan"], None, MAP),
    "quarter": Request("month", "customer", [], "quarter", MAP),
    "by_segment_quarter": Request("month", "customer", ["segment"], "quarter", MAP),
    "by_plan_year": Request("month", "customer", ["plan"], "year", MAP),
    "no_period": Request(None, "customer", ["segment"], None, MAP),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_sparse_and_dense_match_pandas(reg, variant, name):
    """Churn without a zero row, comebacks after gaps, reactivation vs new, months with no
    rows at all, split invoice lines, segment changes (also within a month), data starting
    and ending mid-quarter, coarser grains, groups."""
    data, request = VARIANTS[variant], REQUESTS[name]
    ids = _sparse_ids(reg)
    if request.period is None:  # previous() and ever_before() need one: an error
        ids = [k for k in ids if not needs_period(reg, k)]
    sql = compile_many(reg.kpis, ids, "t", request, order="loaded_at")
    assert _layout(sql)[0] == "sparse"
    want = evaluate_many(reg.kpis, ids, data, request)
    for layout in ("sparse", "dense"):
        got = evaluate_duckdb(reg.kpis, ids, data, request, layout=layout)
        # mean_discount_or_zero subtracts nearly equal numbers: its 0 comes out as +-3e-17
        # depending on the order the mean adds its values in
        assert_same(want, got, atol=1e-12)
        assert got.attrs == want.attrs


def test_hand_checked_churn_groups_and_empty_month(reg):
    """Numbers checked by hand, and the (period, segment) rows the dense grid has even where
    every cell is empty: a segment whose only customer churned stays, and so does a segment
    before its first customer's first row."""
    rows = [
        ("a", "2024-01", "x", 100.0),
        ("a", "2024-02", "y", 100.0),  # moves to segment y
        ("b", "2024-01", "z", 50.0),  # leaves in February without a zero row
        ("c", "2024-03", "w", 70.0),  # new in March; in segment w from January on
        ("c", "2024-03", "w", 5.0),  # a second invoice line
        # 2024-04: no rows at all; a (churned in March) comes back in May
        ("a", "2024-05", "y", 80.0),
        ("c", "2024-05", "w", 75.0),
    ]
    data = pd.DataFrame(rows, columns=["customer", "month", "segment", "mrr"])
    request = Request("month", "customer", ["segment"], None, MAP)
    ids = ["churned_revenue", "new_revenue", "reactivation_revenue", "starting_revenue"]
    want = evaluate_many(reg.kpis, ids, data, request)
    got = evaluate_duckdb(reg.kpis, ids, data, request, layout="sparse")
    assert_same(want, got)
    table = got.set_index(["month", "segment"])
    # (month, segment) rows: x only in January (a moved), z throughout, w from January
    assert [(str(m), s) for m, s in table.index] == [
        ("2024-01", "w"),
        ("2024-01", "x"),
        ("2024-01", "z"),
        *[(m, s) for m in ("2024-02", "2024-03", "2024-04", "2024-05") for s in "wyz"],
    ]
    value = table.loc
    assert value[("2024-02", "z"), "churned_revenue"] == 50.0
    assert value[("2024-03", "y"), "churned_revenue"] == 100.0
    assert value[("2024-03", "w"), "new_revenue"] == 75.0
    assert value[("2024-04", "w"), "churned_revenue"] == 75.0  # the empty month
    assert value[("2024-05", "y"), "reactivation_revenue"] == 80.0
    assert value[("2024-05", "w"), "reactivation_revenue"] == 75.0
    assert value[("2024-05", "y"), "new_revenue"] == 0.0
    assert np.isnan(value[("2024-01", "z"), "churned_revenue"])  # no period before


def test_group_change_inside_the_first_coarse_period(reg):
    """At a quarter grain an entity is, before its first quarter with rows, in the group of
    its first month; it leaves that group in its first quarter if the quarter ends in
    another. Here x holds only customer a's first month: x is in Q1 and gone from Q2 on."""
    rows = [
        ("b", "2024-01", "z", 50.0),
        ("a", "2024-04", "x", 100.0),  # a's first month, in segment x
        ("a", "2024-05", "y", 100.0),  # moves to y inside its first quarter
        ("a", "2024-06", "y", 100.0),
        ("a", "2024-07", "y", 90.0),
    ]
    data = pd.DataFrame(rows, columns=["customer", "month", "segment", "mrr"])
    request = Request("month", "customer", ["segment"], "quarter", MAP)
    ids = ["churned_revenue", "new_revenue", "starting_revenue"]
    want = evaluate_many(reg.kpis, ids, data, request)
    pairs = [
        ("2024Q1", "x"),
        ("2024Q1", "z"),
        *[(q, s) for q in ("2024Q2", "2024Q3") for s in "yz"],
    ]
    assert [(str(m), s) for m, s in zip(want["month"], want["segment"])] == pairs
    assert want.set_index(["month", "segment"]).loc[("2024Q2", "y"), "new_revenue"] == 100.0
    for layout in ("sparse", "dense"):
        assert_same(want, evaluate_duckdb(reg.kpis, ids, data, request, layout=layout))


def test_sparse_sql_skips_the_grid(reg):
    """What a reader checks: no cross product, previous() only where the row before is the
    period before, the period after each row added for churn, groups carried into it."""
    request = Request("month", "customer_id", ["segment"], None, MAP)
    sql = compile_many(reg.kpis, REVENUE_FAMILY, "analytics.mrr", request)
    assert "CROSS JOIN periods" not in sql and "entities" not in sql and "grid AS" not in sql
    assert "CROSS JOIN group_keys" in sql  # only the (segment, period) pairs
    assert "LAG(_period) OVER (PARTITION BY _entity ORDER BY _period) = _period - 1" in sql
    assert "LEAD(_period) OVER (PARTITION BY _entity ORDER BY _period) AS _next_period" in sql
    assert "r._period + 1 AS _period" in sql and "r.segment" in sql
    assert "0 AS revenue" in sql and "r.revenue AS previous_revenue" in sql


def test_sparse_window_carries_no_span_columns(reg):
    """The window sorts present_cells: the data's first and last period are read from the
    one-row span after it, not joined onto every cell before it (two columns fewer through
    the sort and the materialised present_rows)."""
    import sqlglot
    from sqlglot import exp

    request = Request("month", "customer_id", ["segment"], None, MAP)
    sql = compile_many(reg.kpis, REVENUE_FAMILY, "analytics.mrr", request)
    ctes = {c.alias: c.this for c in sqlglot.parse_one(sql, read="duckdb").find_all(exp.CTE)}
    present_cells = ctes["present_cells"]
    assert not present_cells.args.get("joins")
    assert not {"_first_period", "_last_period"} & set(present_cells.named_selects)
    span_reads = [
        s for s in ctes["present_rows"].find_all(exp.Subquery) if "span" in s.sql("duckdb")
    ]
    assert span_reads  # the first period, for previous() in the first period


def test_kpi_sql_command_layout(tmp_path, capsys):
    from kpi_registry.cli import main

    _registry(tmp_path, "count(revenue)")
    args = ["sql", "churned_revenue", "--table", "mrr", "--period", "month", "--entity", "c"]
    assert main(args) == 0
    assert "/* sparse: " in capsys.readouterr().out
    assert main([*args, "--layout", "dense"]) == 0
    assert "/* dense: every entity in every period; asked for" in capsys.readouterr().out
    assert main(["sql", "k", *args[2:], "--path", str(tmp_path), "--layout", "sparse"]) == 1
    err = capsys.readouterr().err
    assert "layout='sparse' would not give the dense grid's numbers: count() in k" in err
    assert main(["sql", "k", *args[2:], "--path", str(tmp_path)]) == 0
    assert "/* dense: every entity in every period; count() in k" in capsys.readouterr().out
