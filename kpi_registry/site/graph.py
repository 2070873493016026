"""Every relation of every KPI, computed in one pass for the whole site.

The Registry answers ``leading``, ``used_in`` and friends by scanning all KPIs, which is right
for one question and quadratic for a site that asks it of each of 20,000 KPIs. This index gives
the same answers (tests compare them) from reverse maps built once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ..formula import Name
from ..model import RELATION_KINDS
from ..registry import Registry


@dataclass
class Component:
    """A connected group of KPIs in the relation graph (relations and formulas, either way)."""

    hub: str  # the best-connected member; names the group and its page
    members: list[str]
    edges: int


@dataclass
class RelationIndex:
    registry: Registry
    dependencies: dict[str, list[str]] = field(default_factory=dict)
    used_in: dict[str, list[str]] = field(default_factory=dict)
    _reverse: dict[tuple[str, str], list[dict[str, str]]] = field(default_factory=dict)
    neighbours: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, registry: Registry) -> RelationIndex:
        index = cls(registry)
        used_in: dict[str, list[str]] = defaultdict(list)
        reverse: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
        neighbours: dict[str, set[str]] = defaultdict(set)
        for kpi in registry:  # sorted by id, as the Registry iterates
            node = kpi.expression
            deps = (
                sorted({n.name for n in node.walk() if isinstance(n, Name) and n.name in registry})
                if node is not None
                else []
            )
            index.dependencies[kpi.id] = deps
            for dep in deps:
                used_in[dep].append(kpi.id)
                neighbours[kpi.id].add(dep)
                neighbours[dep].add(kpi.id)
            for kind in RELATION_KINDS:
                for r in kpi.relations(kind):
                    reverse[(kind, r["kpi"])].append({"kpi": kpi.id, "why": r["why"]})
                    neighbours[kpi.id].add(r["kpi"])
                    neighbours[r["kpi"]].add(kpi.id)
        for kpi_id in registry.kpis:
            neighbours[kpi_id].discard(kpi_id)
        index.used_in = {k: used_in.get(k, []) for k in registry.kpis}
        index._reverse = dict(reverse)
        index.neighbours = {k: neighbours.get(k, set()) for k in registry.kpis}
        return index

    def _merged(self, kpi_id: str, own_kind: str, reverse_kind: str) -> list[dict[str, str]]:
        own = self.registry[kpi_id].relations(own_kind)
        named = {r["kpi"] for r in own}
        reverse = [
            {"kpi": r["kpi"], "why": r["why"], "declared_in": r["kpi"]}
            for r in self._reverse.get((reverse_kind, kpi_id), [])
            if r["kpi"] not in named
        ]
        return [*own, *reverse]

    def leading(self, kpi_id: str) -> list[dict[str, str]]:
        """Own 'leading' list plus KPIs that name this one as lagging (Registry.leading)."""
        return self._merged(kpi_id, "leading", "lagging")

    def lagging(self, kpi_id: str) -> list[dict[str, str]]:
        """Own 'lagging' list plus KPIs that name this one as leading (Registry.lagging)."""
        return self._merged(kpi_id, "lagging", "leading")

    def related(self, kpi_id: str) -> list[dict[str, str]]:
        return self._merged(kpi_id, "related", "related")

    def influences(self, kpi_id: str) -> list[dict[str, str]]:
        """KPIs that name this one as a leading indicator (Registry.influences)."""
        return [dict(r) for r in self._reverse.get(("leading", kpi_id), [])]

    def components(self) -> list[Component]:
        """Connected groups, largest first; KPIs with no relation at all are left out."""
        seen: set[str] = set()
        out: list[Component] = []
        for start in sorted(self.registry.kpis):
            if start in seen or not self.neighbours[start]:
                continue
            members, stack = [], [start]
            seen.add(start)
            while stack:
                node = stack.pop()
                members.append(node)
                for other in self.neighbours[node]:
                    if other not in seen:
                        seen.add(other)
                        stack.append(other)
            members.sort()
            hub = min(members, key=lambda k: (-len(self.neighbours[k]), k))
            edges = sum(len(self.neighbours[m]) for m in members) // 2
            out.append(Component(hub, members, edges))
        out.sort(key=lambda c: (-len(c.members), c.hub))
        return out
