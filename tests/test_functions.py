"""Business functions: the level above categories (issue #15). Every KPI has exactly one
function, through its primary category; the API, the CLI and the site show it."""

from __future__ import annotations

import re

import pytest
import yaml
from site_helpers import bundled_site, read

import kpi_registry
from kpi_registry.cli import main
from kpi_registry.registry import collect


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


def test_every_bundled_category_names_a_defined_function(reg):
    assert reg.taxonomy, "the bundled taxonomy is empty"
    for cat in reg.taxonomy.values():
        assert cat.function in reg.functions, cat.id
    assert "other" not in reg.functions  # nothing bundled falls back to "Other"


def test_every_kpi_has_the_function_of_its_primary_category(reg):
    for kpi in reg:
        function = reg.function_of(kpi.id)
        assert function.id == reg.taxonomy[kpi.category].function
        assert kpi in reg.filter(function=function.id)
    assert sum(len(reg.filter(function=f)) for f in reg.functions) == len(reg)


def _taxonomy(folder, data):
    (folder / "_taxonomy.yaml").write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")


def test_a_team_may_add_a_function_and_categories_under_it(library):
    _taxonomy(
        library.root,
        {
            "functions": {"legal": {"name": "Legal", "description": "Contracts and counsel."}},
            "categories": {
                "contracts": {"function": "legal", "name": "Contracts", "description": "Deals."},
                "logistics": {
                    "function": "supply_chain",
                    "name": "Logistics",
                    "description": "Vans.",
                },
            },
        },
    )
    library.add("contract_cycle_time", category="contracts")
    library.add("van_utilization", category="logistics")
    reg = kpi_registry.load(library.root)
    assert reg.function_of("contract_cycle_time").name == "Legal"
    assert reg.function_of("van_utilization").id == "supply_chain"  # a bundled function
    assert [k.id for k in reg.filter(function="legal")] == ["contract_cycle_time"]


def test_a_category_without_a_function_sits_under_other(library):
    _taxonomy(library.root, {"categories": {"misc": {"name": "Misc", "description": "Odds."}}})
    library.add("odd_metric", category="misc")
    reg = kpi_registry.load(library.root)
    assert reg.function_of("odd_metric").id == "other"
    assert "other" in reg.functions


def test_an_unknown_function_is_reported_at_its_line(library):
    (library.root / "_taxonomy.yaml").write_text(
        "categories:\n  contracts:\n    name: Contracts\n    description: Deals.\n"
        "    function: finanse\n"
    )
    result = collect([library.root])
    [error] = [d for d in result.report.errors if d.field.endswith(".function")]
    assert (error.line, error.column, error.field) == (5, 5, "categories.contracts.function")
    assert "unknown function 'finanse'" in error.message and "'finance'" in error.message


def test_a_function_needs_a_name_and_a_description(library):
    (library.root / "_taxonomy.yaml").write_text(
        "functions:\n  legal:\n    name: Legal\ncategories: {}\n"
    )
    result = collect([library.root])
    assert [(d.line, d.field) for d in result.report.errors] == [(2, "functions.legal")]


def test_cli_lists_filters_and_shows_the_function(capsys):
    assert main(["list", "--function", "customer_success"]) == 0
    out = capsys.readouterr().out
    assert "net_revenue_retention" in out and "[customer_success / revenue_retention]" in out
    assert "win_rate" not in out
    assert main(["show", "net_revenue_retention"]) == 0
    assert re.search(r"^Function:\s+Customer Success \(customer_success\)$",
                     capsys.readouterr().out, re.M)  # fmt: skip
    assert main(["list", "--function", "financ"]) == 1
    assert "unknown function 'financ' (did you mean 'finance'?)" in capsys.readouterr().err


def test_each_function_page_lists_all_its_kpis_and_the_catalog_lists_every_kpi(reg):
    site, _ = bundled_site()
    functions_index = read(site, "functions/index.html")
    catalog = read(site, "browse/catalog/index.html")
    for function_id in reg.functions:
        members = reg.filter(function=function_id)
        if not members:
            continue
        assert f'href="{function_id}/"' in functions_index
        page = read(site, f"functions/{function_id}/index.html")
        linked = set(re.findall(r'href="../../kpi/([a-z0-9_]+)/"', page))
        assert linked == {k.id for k in members}, function_id
        assert 'class="kpi-table kpi-sortable"' in page
    assert set(re.findall(r'href="../../kpi/([a-z0-9_]+)/"', catalog)) == set(reg.ids)


def test_every_kpi_page_names_its_function(reg):
    site, _ = bundled_site()
    for kpi in list(reg)[:: max(1, len(reg) // 25)]:
        page = read(site, f"kpi/{kpi.id}/index.html")
        function = reg.function_of(kpi.id)
        assert f'<a href="../../functions/{function.id}/">{function.name}</a>' in page.replace(
            "&amp;", "&"
        )


def test_the_site_search_index_holds_every_kpi_name_and_alias(reg):
    import json

    site, _ = bundled_site()
    docs = json.loads((site / "search" / "search_index.json").read_text("utf-8"))["docs"]
    text: dict[str, str] = {}
    for doc in docs:
        m = re.match(r"kpi/([a-z0-9_]+)/", doc["location"])
        if m:
            text[m[1]] = text.get(m[1], "") + " " + doc["title"] + " " + doc["text"]
    assert set(text) == set(reg.ids)
    missing = [
        (kpi.id, word)
        for kpi in reg
        for word in (kpi.name, *kpi.aliases)
        if word.lower().replace("&", "&amp;") not in text[kpi.id].lower()
    ]
    assert missing == []
