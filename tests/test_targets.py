"""Targets and status (issue #17): the team's own targets, checked like definitions, and a
status per result row decided by the KPI's direction, the same in both engines."""

from __future__ import annotations

import datetime as dt
import math
import re

import pandas as pd
import pytest

import kpi_registry
from kpi_registry.cli import main
from kpi_registry.registry import collect
from kpi_registry.targets import Target, period_bounds

MRR = pd.DataFrame(
    [
        # customer, month, segment, mrr: SMB shrinks, ENT grows; Q1 and Q2 both present
        ("a", "2024-01", "SMB", 100),
        ("b", "2024-01", "ENT", 1000),
        ("a", "2024-02", "SMB", 80),
        ("b", "2024-02", "ENT", 1100),
        ("a", "2024-03", "SMB", 70),
        ("b", "2024-03", "ENT", 1200),
        ("a", "2024-04", "SMB", 70),
        ("b", "2024-04", "ENT", 1300),
    ],
    columns=["customer", "month", "segment", "mrr"],
)
REQUEST = {"period": "month", "entity": "customer", "columns": {"revenue": "mrr"}}


@pytest.mark.parametrize(
    "direction, target, at_risk, tolerance, value, status",
    [
        ("higher_is_better", 100, 90, 0, 100, "on_track"),  # at the target: on track
        ("higher_is_better", 100, 90, 0, 95, "at_risk"),
        ("higher_is_better", 100, 90, 0, 90, "at_risk"),  # the threshold is inclusive
        ("higher_is_better", 100, 90, 0, 89.9, "off_track"),
        ("higher_is_better", 100, None, 0, 99, "off_track"),  # no band: two states only
        ("lower_is_better", 5, 8, 0, 5, "on_track"),
        ("lower_is_better", 5, 8, 0, 7, "at_risk"),
        ("lower_is_better", 5, 8, 0, 8.5, "off_track"),
        ("on_target", 50, 10, 2, 52, "on_track"),
        ("on_target", 50, 10, 2, 47.5, "at_risk"),
        ("on_target", 50, 10, 2, 61, "off_track"),
        ("on_target", 50, None, 0, 50, "on_track"),
        ("higher_is_better", 100, 90, 0, math.nan, "no_data"),
    ],
)
def test_status_at_every_direction(direction, target, at_risk, tolerance, value, status):
    t = Target("k", float(target), None if at_risk is None else float(at_risk), float(tolerance))
    assert t.status(direction, value) == status


def test_period_labels_become_days():
    assert period_bounds("2024-02") == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    assert period_bounds("2024Q2") == (dt.date(2024, 4, 1), dt.date(2024, 6, 30))
    assert period_bounds("2024") == (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert period_bounds("2024-03-05") == (dt.date(2024, 3, 5), dt.date(2024, 3, 5))
    assert period_bounds("SMB") is None


def _targets(library, text: str):
    (library.root / "_targets.yaml").write_text(text, "utf-8")


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_targets_per_segment_and_period_range_in_both_engines(library, engine):
    _targets(
        library,
        "targets:\n"
        "  - kpi: net_revenue_retention\n    target: 100\n    at_risk: 95\n    owner: CFO\n"
        "  - kpi: net_revenue_retention\n    segment: {segment: SMB}\n    target: 90\n"
        "    at_risk: 85\n    from: 2024-01\n    to: 2024Q1\n",
    )
    reg = kpi_registry.load(library.root)
    out = reg.evaluate(
        "net_revenue_retention", MRR, by="segment", engine=engine, with_targets=True, **REQUEST
    )
    rows = {(r.month, r.segment): r for r in out.itertuples(index=False)}
    # SMB Feb: 80% against its own 90/85 band -> off track; SMB Mar: 87.5% -> at risk.
    assert rows[("2024-02", "SMB")].net_revenue_retention_target == 90
    assert rows[("2024-02", "SMB")].net_revenue_retention_status == "off_track"
    assert rows[("2024-03", "SMB")].net_revenue_retention_status == "at_risk"
    # April is past the SMB target's range: the company-wide one applies (70/70 = 100%).
    assert rows[("2024-04", "SMB")].net_revenue_retention_target == 100
    assert rows[("2024-04", "SMB")].net_revenue_retention_status == "on_track"
    # ENT has only the company-wide target; January has no previous month: no data.
    assert rows[("2024-02", "ENT")].net_revenue_retention_status == "on_track"
    assert rows[("2024-01", "ENT")].net_revenue_retention_status == "no_data"
    assert list(out.columns) == [
        "month",
        "segment",
        "net_revenue_retention",
        "net_revenue_retention_target",
        "net_revenue_retention_status",
    ]


def test_both_engines_give_the_same_status_at_quarter_grain(library):
    _targets(
        library, "targets:\n  - kpi: net_revenue_retention\n    target: 100\n    at_risk: 99\n"
    )
    reg = kpi_registry.load(library.root)
    frames = [
        reg.evaluate(
            "net_revenue_retention", MRR, grain="quarter", engine=e, with_targets=True, **REQUEST
        )
        for e in ("pandas", "duckdb")
    ]
    pd.testing.assert_frame_equal(frames[0], frames[1], check_dtype=False)
    assert list(frames[0]["net_revenue_retention_status"]) == ["no_data", "on_track"]


def test_a_target_in_the_kpis_own_file(library):
    library.add(
        "booked",
        "sum(revenue)",
        direction="higher_is_better",
        targets=[{"target": 1200, "at_risk": 1150, "note": "Plan"}],
    )
    reg = kpi_registry.load(library.root)
    out = reg.evaluate("booked", MRR, with_targets=True, **REQUEST)
    # 1100, 1180, 1270, 1370 against 1200 (at risk from 1150)
    assert list(out["booked_status"]) == ["off_track", "at_risk", "on_track", "on_track"]


def test_bad_targets_are_reported_at_their_lines(library):
    _targets(
        library,
        "targets:\n"
        "  - kpi: net_revenue_retentin\n    target: 100\n"  # line 2: unknown KPI
        "  - kpi: churned_revenue\n    target: 100\n    at_risk: 50\n"  # line 4: contradicts
        "  - kpi: net_revenue_retention\n    target: 100\n    from: 2024-01\n    to: 2024-06\n"
        "  - kpi: net_revenue_retention\n    target: 105\n    from: 2024Q2\n"  # line 11: overlaps
        "  - kpi: net_revenue_retention\n    segment: {segment: SMB}\n    target: 1\n"  # fine
        "  - kpi: quick_ratio\n    target: high\n"  # line 17: not a number
        "  - kpi: quick_ratio\n    target: 4\n    from: 2024-06\n    to: 2024-01\n",  # line 19
    )
    result = collect([library.root], examples=False)
    found = sorted((d.line, d.field) for d in result.report.errors)
    assert found == [
        (2, "targets[0].kpi"),
        (4, "targets[1].at_risk"),
        (11, "targets[3]"),
        (18, "targets[5].target"),
        (22, "targets[6].to"),
    ]
    messages = " ".join(d.message for d in result.report.errors)
    assert "did you mean 'net_revenue_retention'" in messages
    assert "lower is better" in messages and "overlaps" in messages


def test_targets_need_periods_of_results(library):
    _targets(library, "targets:\n  - kpi: expansion_revenue_rate\n    target: 5\n")
    reg = kpi_registry.load(library.root)
    with pytest.raises(kpi_registry.KPIError, match="targets apply to results per period"):
        reg.evaluate(
            "expansion_revenue_rate",
            {"expansion_revenue": 1, "starting_revenue": 10},
            with_targets=True,
        )


def test_kpi_eval_targets_and_scorecard(library, tmp_path, capsys):
    _targets(
        library,
        "targets:\n  - kpi: net_revenue_retention\n    target: 108\n    at_risk: 100\n",
    )
    data = tmp_path / "mrr.csv"
    MRR.to_csv(data, index=False)
    common = ["--data", str(data), "--period", "month", "--entity", "customer"]
    common += ["--column", "revenue=mrr", "--path", str(library.root)]
    assert main(["eval", "net_revenue_retention", *common, "--targets", "--format", "csv"]) == 0
    out = capsys.readouterr().out.splitlines()
    kpi = "net_revenue_retention"
    assert out[0] == f"month,{kpi},{kpi}_target,{kpi}_status"
    # Feb: (1100 + 100 expansion - 20 contraction) / 1100 = 107.27%: below 108, above 100.
    assert out[2].startswith("2024-02,107.27") and out[2].endswith(",108.0,at_risk")

    page = tmp_path / "out" / "score.html"
    page.parent.mkdir()
    page.write_text("earlier")
    ids = [kpi, "gross_revenue_retention"]
    assert main(["scorecard", *ids, *common, "--html", str(page), "--title", "Board pack"]) == 0
    table = capsys.readouterr().out
    # April: (1270 + 100) / 1270 = 107.87%: at risk; GRR has no target.
    assert "Net Revenue Retention" in table and "2024-04" in table and "107.87%" in table
    assert "at risk" in table and "no target" in table
    html = page.read_text()
    assert "<title>Board pack</title>" in html and html.count("<svg") == 2
    assert not re.search(r"(src|href)=|https?://|<script", html)  # self-contained
    assert main(["scorecard", *ids, "--data", str(data), "--entity", "customer"]) == 1
    assert "--period" in capsys.readouterr().err
