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
