"""The bundled library: complete, consistent, executable, original, and findable."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

import kpi_registry
from kpi_registry.cli import main
from kpi_registry.model import ATTRIBUTES
from kpi_registry.registry import collect

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT.parent / "shared" / "seeds"

CONTRACT_IDS = """expansion_revenue expansion_revenue_rate expansion_revenue_growth_rate
net_revenue_retention gross_revenue_retention quick_ratio monthly_recurring_revenue
annual_recurring_revenue average_revenue_per_account customer_churn_rate revenue_churn_rate
customer_lifetime_value customer_acquisition_cost cac_payback_period upsell_conversion_rate
cross_sell_conversion_rate activation_rate net_promoter_score starting_revenue
contraction_revenue churned_revenue new_revenue reactivation_revenue""".split()

TEXT_MINIMUMS = {
    "definition": 200,
    "business_insights": 200,
    "measurement_approach": 200,
    "trend_analysis": 200,
}
LIST_MINIMUMS = {
    "diagnostics": 4,
    "tips": 4,
    "risk_warnings": 3,
    "visualization": 2,
    "tools_and_technologies": 3,
    "integration_points": 3,
}


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


def test_whole_library_validates_with_examples():
    result = collect(examples=True)
    assert [str(d) for d in result.report.diagnostics] == []
    assert len(result.kpis) >= 60


def test_contract_ids_exist(reg):
    assert [i for i in CONTRACT_IDS if i not in reg] == []


def test_every_definition_is_reviewed_and_complete(reg):
    for kpi in reg:
        assert kpi.status in ("reviewed", "certified"), kpi.id
        for attr in ATTRIBUTES:
            assert kpi.data.get(attr), f"{kpi.id}: {attr}"
        for field, n in TEXT_MINIMUMS.items():
            assert len(" ".join(kpi.data[field].split())) >= n, f"{kpi.id}.{field} too short"
        assert len(kpi.data["change_impact"]["summary"]) >= 60, kpi.id
        for field, n in LIST_MINIMUMS.items():
            assert len(kpi.data[field]) >= n, f"{kpi.id}.{field} has fewer than {n} items"
        relations = sum(len(kpi.relations(k)) for k in ("leading", "lagging", "related"))
        assert relations + len(reg.influences(kpi.id)) + len(reg.related(kpi.id)) >= 2, kpi.id
        assert kpi.unit and kpi.direction and kpi.indicator_type and kpi.industries, kpi.id
        assert kpi.datapoints or reg.dependencies(kpi.id), f"{kpi.id} has no inputs"


def test_every_kpi_has_a_readable_worked_example(reg):
    for kpi in reg:
        assert kpi.examples, kpi.id
        for example in kpi.examples:
            if isinstance(example.data, list):
                assert 2 <= len(example.data) <= 30, f"{kpi.id}: {example.title}"


def test_composite_kpis_show_their_intermediates(reg):
    for kpi_id in ("net_revenue_retention", "gross_revenue_retention", "customer_lifetime_value"):
        shown = [s for ex in reg[kpi_id].examples for s in ex.show]
        assert shown, f"{kpi_id} examples show no intermediate values"


def test_no_relation_is_written_from_both_sides(reg):
    """Reverse links are computed; declaring them twice lets the two drift apart."""
    declared = set()
    for kpi in reg:
        for kind in ("leading", "lagging", "related"):
            for r in kpi.relations(kind):
                declared.add((kpi.id, kind, r.kpi))
    mirror = {"leading": "lagging", "lagging": "leading", "related": "related"}
    both = sorted((a, k, b) for a, k, b in declared if (b, mirror[k], a) in declared and a < b)
    assert both == []


def test_leading_indicators_show_up_as_influences(reg):
    for kpi in reg:
        for r in kpi.relations("leading"):
            assert kpi.id in [i["kpi"] for i in reg.influences(r.kpi)]
            assert kpi.id in [i["kpi"] for i in reg.lagging(r.kpi)]


def test_taxonomy_has_no_empty_category(reg):
    used = {c for kpi in reg for c in kpi.categories}
    assert sorted(set(reg.taxonomy) - used) == []


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return [p.lower().strip(" .!?") for p in parts if len(p) >= 40]


def _texts(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            # a benchmark's source and coverage (stage, industry) are citations and labels, not
            # prose: two KPIs may cite the same survey of the same companies
            if k not in (
                "data",
                "expected",
                "expression",
                "parameters",
                "source",
                "stage",
                "industry",
            ):
                yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


def test_no_two_definitions_share_a_sentence(reg):
    where = defaultdict(set)
    for kpi in reg:
        for text in _texts(kpi.data):
            for sentence in _sentences(text):
                where[sentence].add(kpi.id)
    shared = {s: sorted(ids) for s, ids in where.items() if len(ids) > 1}
    assert shared == {}


@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared/seeds not beside the checkout")
def test_no_sentence_is_copied_from_the_seed_pages(reg):
    seed_sentences = set()
    for path in SEEDS.glob("*.txt"):
        seed_sentences.update(_sentences(path.read_text("utf-8", errors="replace")))
    copied = sorted(
        (kpi.id, s)
        for kpi in reg
        for t in _texts(kpi.data)
        for s in _sentences(t)
        if s in seed_sentences
    )
    assert copied == []


@pytest.mark.parametrize(
    "query, expected",
    [
        ("NRR", "net_revenue_retention"),
        ("NDR", "net_revenue_retention"),
        ("net dollar retention", "net_revenue_retention"),
        ("GRR", "gross_revenue_retention"),
        ("LTV", "customer_lifetime_value"),
        ("CLV", "customer_lifetime_value"),
        ("ARR", "annual_recurring_revenue"),
        ("ARPA", "average_revenue_per_account"),
        ("CAC", "customer_acquisition_cost"),
        ("MRR", "monthly_recurring_revenue"),
        ("NPS", "net_promoter_score"),
        ("PQL", "product_qualified_leads"),
        ("expansion revenue", "expansion_revenue"),
        ("Expansion MRR", "expansion_revenue"),
        ("quick ratio", "quick_ratio"),
    ],
)
def test_search_puts_the_right_kpi_first(reg, query, expected, capsys):
    assert reg.search(query)[0].id == expected
    assert main(["search", query]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.split()[0] == expected


def test_search_filters(reg):
    hits = reg.search("revenue", category="unit_economics")
    assert hits and all("unit_economics" in k.categories for k in hits)
    assert reg.search("zzzz-no-such-word") == []


def test_every_kpi_is_found_by_its_id_name_and_each_alias(reg):
    # The id and the name find the KPI first. An alias finds it first too, unless several KPIs
    # share that alias (e.g. "MTTR"): then it is among them, ahead of every KPI that does not.
    alias_owners = defaultdict(set)
    for kpi in reg:
        for alias in kpi.aliases:
            alias_owners[" ".join(re.findall(r"[a-z0-9]+", alias.lower()))].add(kpi.id)
    misses = []
    for kpi in reg:
        for query in (kpi.id.replace("_", " "), kpi.name):
            if reg.search(query)[:1] != [kpi]:
                misses.append((kpi.id, query))
        for alias in kpi.aliases:
            owners = alias_owners[" ".join(re.findall(r"[a-z0-9]+", alias.lower()))]
            top = [k.id for k in reg.search(alias)[: len(owners)]]
            if kpi.id not in top:
                misses.append((kpi.id, alias))
    assert misses == []


def test_no_two_definitions_share_a_paragraph(reg):
    where = defaultdict(set)
    for kpi in reg:
        for text in _texts(kpi.data):
            for paragraph in re.split(r"\n\s*\n", text):
                normal = " ".join(paragraph.lower().split())
                if len(normal) >= 40:
                    where[normal].add(kpi.id)
    assert {p: sorted(ids) for p, ids in where.items() if len(ids) > 1} == {}
