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
