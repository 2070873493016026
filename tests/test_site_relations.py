"""Relation counts on KPI pages agree with each other and with the Registry (issue 19): the
map's "+ N more" per side, the lists' "… and N more", and Registry.leading and the rest; and
the relation groups are topics, not one group of every KPI."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest
from site_helpers import bundled_site, read

import kpi_registry
from kpi_registry.site.graph import MIN_GROUP, communities, relation_groups
from kpi_registry.site.relation_map import PER_BOTTOM, PER_SIDE


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


def _sides(reg, kpi_id: str) -> dict[str, int]:
    """Distinct neighbours per side of the map, as the Registry has them (first kind wins)."""
    own_lagging = {r.kpi for r in reg[kpi_id].relations("lagging")}
    kinds = [
        ("left", [r["kpi"] for r in reg.leading(kpi_id)]),
        ("left", reg.dependencies(kpi_id)),
        ("right", [r.kpi for r in reg[kpi_id].relations("lagging")]),
        ("right", [r["kpi"] for r in reg.influences(kpi_id) if r["kpi"] not in own_lagging]),
        ("right", reg.used_in(kpi_id)),
        ("bottom", [r["kpi"] for r in reg.related(kpi_id)]),
    ]
    seen: set[str] = set()
    count = {"left": 0, "right": 0, "bottom": 0}
    for side, ids in kinds:
        for i in ids:
            if i not in seen:
                seen.add(i)
                count[side] += 1
    return count


def _section(html: str, anchor: str) -> str:
    start = html.find(f'id="{anchor}"')
    if start < 0:
        return ""
    end = html.find("<h3", start + 1)
    return html[start : end if end > 0 else len(html)]


def test_relation_counts_agree_with_the_registry(reg):
    site, _ = bundled_site()
    checked = 0
    for kpi in reg:
        html = read(site, f"kpi/{kpi.id}/")
        own_lagging = {r.kpi for r in kpi.relations("lagging")}
        expected = {
            "leading-indicators": len(reg.leading(kpi.id)),
            "lagging-indicators": len(own_lagging),
            "influences": len([r for r in reg.influences(kpi.id) if r["kpi"] not in own_lagging]),
            "related": len(reg.related(kpi.id)),
            "used-in-the-formula-of": len(reg.used_in(kpi.id)),
        }
        for anchor, total in expected.items():
            part = _section(html, anchor)
            if not total:
                assert part == "", (kpi.id, anchor)
                continue
            listed = part.count("<li")
            more = re.search(r"… and (\d+) more", part)
            assert listed + (int(more[1]) if more else 0) == total, (kpi.id, anchor)
        figure = re.search(r'<svg class="kpi-relation-map".*?</svg>', html, re.S)
        sides = _sides(reg, kpi.id)
        if not figure:
            assert sum(sides.values()) == 0, kpi.id
            continue
        svg = figure.group(0)
        drawn = {
            side: min(n, PER_BOTTOM if side == "bottom" else PER_SIDE) for side, n in sides.items()
        }
        shown_more = sorted(int(n) for n in re.findall(r"\+ (\d+) more", svg))
        wanted_more = sorted(n - drawn[s] for s, n in sides.items() if n > drawn[s])
        assert shown_more == wanted_more, (kpi.id, sides)
        assert svg.count("<use ") == sum(drawn.values()), kpi.id
        checked += bool(wanted_more)
    assert checked >= 5  # the check saw maps that do not draw every neighbour


# -- relation groups -------------------------------------------------------------------------


def _modularity(neighbours: dict[str, set[str]], groups: list[list[str]]) -> float:
    twice_edges = sum(len(n) for n in neighbours.values())
    q = 0.0
    for members in groups:
        inside = set(members)
        links_inside = sum(len(neighbours[m] & inside) for m in members)
        degree = sum(len(neighbours[m]) for m in members)
        q += links_inside / twice_edges - (degree / twice_edges) ** 2
    return q


def test_relation_groups_are_topics_not_the_whole_library(reg):
    """Issue 19: the one connected component held every KPI. Groups must partition the
    related KPIs into topics: bounded sizes, mostly one business function each, and far
    denser inside than chance (modularity; a single group of everything scores 0)."""
    groups = relation_groups(reg)
    related = [k for k in reg.ids if reg.neighbours(k)]
    members = [m for g in groups for m in g.members]
    assert sorted(members) == sorted(related)  # every related KPI in exactly one group
    assert len(groups) >= 8
    assert all(MIN_GROUP <= len(g.members) <= 40 for g in groups), [len(g.members) for g in groups]
    shares = []
    for g in groups:
        functions = Counter(reg.function_of(m).id for m in g.members)
        main_share = functions.most_common(1)[0][1] / len(g.members)
        assert main_share >= 1 / 3, (g.hub, functions)
        shares.append(main_share * len(g.members))
    assert sum(shares) / len(members) >= 0.7  # most KPIs sit with their own function
    neighbours = {k: reg.neighbours(k) for k in related}
    assert _modularity(neighbours, [g.members for g in groups]) >= 0.5
    group_of = {m: g.hub for g in groups for m in g.members}
    for a, b in [
        ("net_revenue_retention", "gross_revenue_retention"),
        ("employee_attrition_rate", "voluntary_attrition_rate"),
        ("overall_equipment_effectiveness", "equipment_availability"),
        ("deployment_frequency", "change_failure_rate"),
    ]:
        assert group_of[a] == group_of[b], (a, b)
    assert group_of["net_revenue_retention"] != group_of["employee_attrition_rate"]
    for g in groups:
        inside = set(g.members)
        assert g.edges == sum(len(neighbours[m] & inside) for m in g.members) // 2
        assert len(neighbours[g.hub] & inside) == max(len(neighbours[m] & inside) for m in inside)


def test_relation_groups_do_not_depend_on_load_order(reg):
    neighbours = {k: reg.neighbours(k) for k in reg.ids}
    expected = communities(neighbours)
    rng = random.Random(19)
    for _ in range(3):
        keys = list(neighbours)
        rng.shuffle(keys)
        shuffled = {}
        for k in keys:
            others = list(neighbours[k])
            rng.shuffle(others)
            shuffled[k] = set(others)
        assert communities(shuffled) == expected


def test_a_small_group_joins_its_best_linked_neighbour():
    """At the resolution that splits hundreds of KPIs by topic, a handful of linked KPIs would
    come apart into ones and twos; those join the group they have most links to."""
    ring = {"a": {"b", "e"}, "b": {"a", "c"}, "c": {"b", "d"}, "d": {"c", "e"}, "e": {"d", "a"}}
    assert communities(ring) == [["a", "b", "c", "d", "e"]]
    pair = {"x": {"y"}, "y": {"x"}, "alone": set()}
    assert communities(pair) == [["x", "y"]]  # nothing to join: a pair stays a group


def test_capped_relation_lists_send_the_reader_to_a_group_that_lists_them(reg):
    """A KPI page shows the first few relations other KPIs declare about it and counts the
    rest; its "… and N more in its relation group" must lead to a page that has them all,
    also those declared by KPIs of another group."""
    site, _ = bundled_site()
    checked = 0
    for kpi in reg:
        html = read(site, f"kpi/{kpi.id}/")
        notes = re.findall(r'… and \d+ more in its <a href="([^"]+)"', html)
        if not notes:
            continue
        assert len(set(notes)) == 1, kpi.id
        hub = re.search(r"group/(\w+)/", notes[0])[1]
        group = read(site, f"group/{hub}/")
        rows = [
            set(re.findall(r'kpi/(\w+)/"', row))
            for row in re.findall(r"<tr>(.*?)</tr>", group, re.S)
        ]
        others = {
            r["kpi"]
            for kind in ("leading", "lagging", "influences", "related")
            for r in getattr(reg, kind)(kpi.id)
        } | set(reg.used_in(kpi.id))
        for other in others:
            assert any({kpi.id, other} <= row for row in rows), (kpi.id, other, hub)
        checked += 1
    assert checked >= 5
