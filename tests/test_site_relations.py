"""Relation counts on KPI pages agree with each other and with the Registry (issue 19): the
map's "+ N more" per side, the lists' "… and N more", and Registry.leading and the rest."""

from __future__ import annotations

import re

import pytest
from site_helpers import bundled_site, read

import kpi_registry
from kpi_registry.site.relation_map import PER_BOTTOM, PER_SIDE


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


def _sides(reg, kpi_id: str) -> dict[str, int]:
    """Distinct neighbours per side of the map, as the Registry has them (first kind wins)."""
    own_lagging = {r["kpi"] for r in reg[kpi_id].relations("lagging")}
    kinds = [
        ("left", [r["kpi"] for r in reg.leading(kpi_id)]),
        ("left", reg.dependencies(kpi_id)),
        ("right", [r["kpi"] for r in reg[kpi_id].relations("lagging")]),
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
        own_lagging = {r["kpi"] for r in kpi.relations("lagging")}
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
