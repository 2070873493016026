"""The public API: load(), Registry as a collection, and the relation graph."""

from __future__ import annotations

import os

import pytest

import kpi_registry
from kpi_registry import KPI, Registry, UnknownKPIError


@pytest.fixture(scope="module")
def reg() -> Registry:
    return kpi_registry.load()


def test_collection_protocol(reg):
    assert isinstance(reg, Registry) and len(reg) >= 60
    assert "expansion_revenue" in reg and "no_such_kpi" not in reg
    kpi = reg["expansion_revenue"]
    assert isinstance(kpi, KPI) and kpi.name == "Expansion Revenue"
    ids = [k.id for k in reg]
    assert ids == sorted(ids)


def test_unknown_id_suggests_near_names(reg):
    with pytest.raises(UnknownKPIError) as info:
        reg["net_revenue_retension"]
    assert "did you mean 'net_revenue_retention'" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_filters(reg):
    saas = reg.filter(industry="saas")
    assert saas and all("saas" in k.industries for k in saas)
    some_tag = next(t for k in reg for t in k.tags)
    assert all(some_tag in k.tags for k in reg.filter(tag=some_tag))
    assert reg.filter(category="no_such_category") == []


def test_formula_graph_both_ways(reg):
    assert reg.dependencies("net_revenue_retention") == [
        "churned_revenue",
        "contraction_revenue",
        "expansion_revenue",
        "starting_revenue",
    ]
    assert "net_revenue_retention" in reg.used_in("expansion_revenue")
    assert reg.dependencies("expansion_revenue") == []


def test_relation_graph_reverse_links(reg):
    # expansion_revenue names product_qualified_leads as leading; the reverse is computed.
    leads = [r["kpi"] for r in reg.leading("expansion_revenue")]
    assert "product_qualified_leads" in leads
    assert "expansion_revenue" in [r["kpi"] for r in reg.lagging("product_qualified_leads")]
    assert "expansion_revenue" in [r["kpi"] for r in reg.influences("product_qualified_leads")]
    assert "product_qualified_leads" in reg.neighbours("expansion_revenue")


def test_load_adds_user_folders_and_env_path(library, monkeypatch):
    library.add("my_metric", "expansion_revenue * 2", datapoints=None)
    reg = kpi_registry.load(library.root)
    assert "my_metric" in reg and "expansion_revenue" in reg
    assert reg["my_metric"].origin == str(library.root)
    monkeypatch.setenv("KPI_REGISTRY_PATH", os.pathsep.join([str(library.root), "/nonexistent"]))
    with pytest.raises(kpi_registry.DefinitionError, match="no such file or folder"):
        kpi_registry.load()
    monkeypatch.setenv("KPI_REGISTRY_PATH", str(library.root))
    assert "my_metric" in kpi_registry.load()


def test_user_folder_may_add_categories(library):
    import yaml

    (library.root / "_taxonomy.yaml").write_text(
        yaml.safe_dump(
            {"categories": {"logistics": {"name": "Logistics", "description": "Moving things."}}}
        )
    )
    library.add("on_time_delivery", category="logistics")
    reg = kpi_registry.load(library.root)
    assert "logistics" in reg.taxonomy and "revenue_retention" in reg.taxonomy
    assert reg.filter(category="logistics")[0].id == "on_time_delivery"


def test_conflicting_category_names_both_files(library):
    import yaml

    (library.root / "_taxonomy.yaml").write_text(
        yaml.safe_dump({"categories": {"sales": {"name": "Selling", "description": "Different."}}})
    )
    with pytest.raises(kpi_registry.DefinitionError) as info:
        kpi_registry.load(library.root)
    message = str(info.value)
    assert "category 'sales' is already defined in" in message
    assert "definitions/_taxonomy.yaml" in message and str(library.root) in message


def test_a_category_id_that_cannot_name_a_page_is_reported_at_its_line(library):
    (library.root / "_taxonomy.yaml").write_text(
        "categories:\n  Field Ops:\n    name: Field operations\n    description: Vans.\n"
    )
    from kpi_registry.cli import main

    report = kpi_registry.registry.collect([library.root])
    assert [(d.line, d.column, d.field) for d in report.report.errors] == [
        (2, 3, "categories.Field Ops")
    ]
    assert "lower-case letters, digits and _" in report.report.errors[0].message
    assert main(["validate", str(library.root)]) == 1  # kpi validate catches it, not only the site


def test_override_of_nothing_is_an_error(library):
    library.add("expansion_revenu", overrides=True)
    with pytest.raises(kpi_registry.DefinitionError) as info:
        kpi_registry.load(library.root)
    assert "overrides: true, but no KPI 'expansion_revenu' was loaded before this file" in str(
        info.value
    )
    assert "did you mean 'expansion_revenue'" in str(info.value)


def test_overriding_a_building_block_does_not_break_bundled_kpis(library):
    """NRR declares `revenue` and reaches it through expansion_revenue; an override of
    expansion_revenue reading other inputs must not make NRR's file invalid."""
    bookings = {"name": "expansion_bookings", "description": "b", "unit": "currency"}
    library.add(
        "expansion_revenue", "sum(expansion_bookings)", datapoints=[bookings], overrides=True
    )
    reg = kpi_registry.load(library.root)
    assert reg["expansion_revenue"].overridden
    assert "net_revenue_retention" in reg
