"""Rules about what a definition points at: its categories and the other KPIs it names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Diagnostic, did_you_mean
from ..loading import field_name
from .base import KPIRule, Library, issue

if TYPE_CHECKING:
    from ..model import KPI


class KnownCategories(KPIRule):
    """``category`` and ``categories`` name categories some ``_taxonomy.yaml`` defines."""

    name = "known-categories"

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        taxonomy = library.categories
        out = []
        for i, cat in enumerate([kpi.data.get("category"), *kpi.data.get("categories", [])]):
            if isinstance(cat, str) and cat not in taxonomy:
                where = ("category",) if i == 0 else ("categories", i - 1)
                out.append(
                    issue(
                        kpi,
                        where,
                        ".".join(map(str, where)).replace(".", "[", 1) + "]" * (i > 0),
                        f"unknown category {cat!r}{did_you_mean(cat, taxonomy)}; categories are "
                        "defined in _taxonomy.yaml",
                    )
                )
        return out


def references(kpi: KPI) -> list[tuple[tuple, str]]:
    """Every (field path, KPI id) the definition points at outside its formula."""
    out: list[tuple[tuple, str]] = []
    for kind, relations in kpi.spec.relations.items():
        out.extend((("relations", kind, r.index, "kpi"), r.kpi) for r in relations)
    effects = (kpi.data.get("change_impact") or {}).get("effects") or []
    for i, item in enumerate(effects):
        if isinstance(item, dict) and isinstance(item.get("kpi"), str):
            out.append((("change_impact", "effects", i, "kpi"), item["kpi"]))
    influences = kpi.data.get("influences") or {}
    for kind, items in influences.items() if isinstance(influences, dict) else []:
        for i, item in enumerate(items or []):
            if isinstance(item, dict) and isinstance(item.get("kpi"), str):
                out.append((("influences", kind, i, "kpi"), item["kpi"]))
    for example in kpi.examples:
        for j, shown in enumerate(example.show):
            out.append((("examples", example.index, "show", j), shown))
    return out


class KnownReferences(KPIRule):
    """Relations, effects, influences and the intermediates an example shows name loaded
    KPIs, and no relation points back at its own KPI."""

    name = "known-references"

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        known = library.kpis
        out = []
        for path, target in references(kpi):
            if target not in known:
                out.append(
                    issue(
                        kpi,
                        path,
                        field_name(path),
                        f"unknown KPI {target!r}{did_you_mean(target, known)}",
                    )
                )
            elif target == kpi.id and path[0] != "examples":
                out.append(issue(kpi, path, field_name(path), "a KPI cannot relate to itself"))
        return out
