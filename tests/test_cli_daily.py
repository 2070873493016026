"""The CLI for daily use (issue #19): listings that explain their filters and export the
catalog."""

from __future__ import annotations

import csv
import io
import json

import kpi_registry
from kpi_registry.cli import LIST_COLUMNS, main


def test_a_category_filter_shows_why_each_kpi_matched(capsys):
    assert main(["list", "--category", "revenue_retention"]) == 0
    lines = capsys.readouterr().out.splitlines()
    reg = kpi_registry.load()
    assert len(lines) == len(reg.filter(category="revenue_retention"))
    for line in lines:
        kpi = reg[line.split()[0]]
        if kpi.category == "revenue_retention":
            assert line.endswith("/ revenue_retention]")
        else:  # matched through a further category: the line says so
            assert line.endswith(f"/ {kpi.category}, also revenue_retention]")
    assert any("also revenue_retention" in line for line in lines)


def test_list_exports_the_catalog_as_csv_and_json(capsys):
    reg = kpi_registry.load()
    assert main(["list", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(reg) and tuple(rows[0]) == LIST_COLUMNS
    nrr = next(r for r in rows if r["id"] == "net_revenue_retention")
    assert nrr["function"] == "customer_success" and nrr["unit"] == "percent"
    assert "NRR" in nrr["abbreviations"].split() and nrr["owner"] == "Finance"
    assert main(["list", "--format", "json", "--function", "sales"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in records} == {k.id for k in reg.filter(function="sales")}
    assert all(r["function"] == "sales" for r in records)


def test_every_missing_column_is_named_at_once_with_its_meaning(tmp_path, capsys):
    import pandas as pd
    import pytest

    from kpi_registry.errors import MissingColumnsError

    reg = kpi_registry.load()
    assert [dp.name for dp in reg.inputs("customer_lifetime_value")] == [
        "revenue",
        "revenue_recognized",
        "cost_of_revenue",
    ]
    frame = pd.DataFrame({"customer": ["a"], "month": ["2024-01"], "mrr": [1.0]})
    request = {"period": "month", "entity": "customer", "columns": {"revenue": "mrr"}}
    for engine in ("pandas", "duckdb"):
        with pytest.raises(MissingColumnsError) as info:
            reg.evaluate("customer_lifetime_value", frame, engine=engine, **request)
        assert [m.datapoint for m in info.value.missing] == [
            "revenue_recognized",
            "cost_of_revenue",
        ]
    # A KPI given as a column of its own needs none of its inputs: no error, a result.
    frame["gross_margin"] = 70.0
    assert len(reg.evaluate("customer_lifetime_value", frame, **request)) == 1

    data = tmp_path / "mrr.csv"
    frame.drop(columns="gross_margin").to_csv(data, index=False)
    args = ["eval", "CLV", "--data", str(data), "--period", "month", "--entity", "customer"]
    assert main([*args, "--column", "revenue=mrr"]) == 1
    err = capsys.readouterr().err
    assert "'revenue_recognized', 'cost_of_revenue'" in err
    assert "--column revenue_recognized=COL --column cost_of_revenue=COL" in err
    assert "Direct cost of delivering" in err  # what the column means
    assert main(["show", "customer_lifetime_value"]) == 0
    shown = capsys.readouterr().out
    assert "Data columns it needs" in shown and "- cost_of_revenue (currency):" in shown


def test_kpi_new_guesses_unit_and_direction_from_the_name(tmp_path, capsys):
    import pytest  # noqa: F401

    from kpi_registry.scaffold import guess_direction, guess_unit

    assert guess_unit("Support Cost per Ticket") == ("currency", "cost")
    assert guess_direction("Support Cost per Ticket") == ("lower_is_better", "cost")
    assert guess_unit("Revenue Churn Rate")[0] == "percent"
    assert guess_unit("Burn Rate")[0] == "currency"
    assert guess_unit("Time to Hire")[0] == "duration"
    assert guess_direction("Employee NPS") is None and guess_unit("Employee NPS")[0] == "score"
    assert guess_unit("Widget Foo") is None and guess_direction("Widget Foo") is None

    folder = tmp_path / "kpis"
    assert (
        main(["new", "Support Cost per Ticket", "--category", "sales", "--dir", str(folder)]) == 0
    )
    out = capsys.readouterr().out
    assert "guessed unit: currency (from 'cost' in the name)" in out
    assert "direction: lower_is_better (from 'cost' in the name)" in out
    text = (folder / "support_cost_per_ticket.yaml").read_text()
    assert "\nunit: currency\n" in text and "\ndirection: lower_is_better\n" in text
    args = ["new", "Widget Foo", "--category", "sales", "--dir", str(folder), "--unit", "ratio"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "direction: higher_is_better (not clear from the name)" in out and "unit:" not in out


def test_validate_warns_of_todos_and_strict_makes_them_errors(tmp_path, capsys):
    folder = tmp_path / "kpis"
    assert (
        main(["new", "Support Cost per Ticket", "--category", "sales", "--dir", str(folder)]) == 0
    )
    capsys.readouterr()
    assert main(["validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "summary: still says TODO: fill it in [warning]" in out
    assert "formula.expression: is still the placeholder kpi new wrote" in out
    assert out.rstrip().endswith("warnings (errors with --strict)")
    assert main(["validate", "--strict", str(folder)]) == 1
    assert "0 errors" in capsys.readouterr().out  # the warnings alone fail it
