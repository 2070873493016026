"""Connected groups of KPIs in the relation graph, one site page each.

Relations themselves (leading, lagging, influences, used in...) come from the Registry, which
answers them from one reverse index built on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry


@dataclass
class Component:
    """A connected group of KPIs in the relation graph (relations and formulas, either way)."""

    hub: str  # the best-connected member; names the group and its page
    members: list[str]
    edges: int


def components(registry: Registry) -> list[Component]:
    """Connected groups, largest first; KPIs with no relation at all are left out."""
    neighbours = {k: registry.neighbours(k) for k in registry.kpis}
    seen: set[str] = set()
    out: list[Component] = []
    for start in sorted(registry.kpis):
        if start in seen or not neighbours[start]:
            continue
        members, stack = [], [start]
        seen.add(start)
        while stack:
            node = stack.pop()
            members.append(node)
            for other in neighbours[node]:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        members.sort()
        hub = min(members, key=lambda k: (-len(neighbours[k]), k))
        edges = sum(len(neighbours[m]) for m in members) // 2
        out.append(Component(hub, members, edges))
    out.sort(key=lambda c: (-len(c.members), c.hub))
    return out
