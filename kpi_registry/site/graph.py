"""Groups of closely related KPIs in the relation graph, one site page each.

A connected component is no grouping at all once a library cross-links its functions (the
bundled one was a single component of every KPI), so groups are communities: the partition
that maximises modularity (more links inside groups than chance would give), found with the
Louvain method. Every step visits nodes and candidate groups in sorted order, so the same
library always gives the same groups, whatever order its files load in.

Relations themselves (leading, lagging, influences, used in...) come from the Registry, which
answers them from one reverse index built on first use.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from ..registry import Registry

#: Above 1, modularity prefers smaller groups than plain modularity would: at 1 the bundled
#: library splits into 9 groups of up to 53 KPIs mixing whole functions; at 2 into 15 of 6-26
#: KPIs that read as topics (working capital, hiring and attrition, the MRR bridge...).
RESOLUTION = 2.0
#: Fewer KPIs than this are no group: such a community joins the group it has most links to.
MIN_GROUP = 3


@dataclass
class RelationGroup:
    """KPIs more linked to each other than to the rest (relations and formulas, either way)."""

    hub: str  # the member with most links inside the group; names the group and its page
    members: list[str]
    edges: int  # links between two members


def relation_groups(registry: Registry) -> list[RelationGroup]:
    """Communities of the relation graph, largest first; KPIs with no relation are left out."""
    neighbours = {k: registry.neighbours(k) for k in sorted(registry.kpis)}
    out = []
    for members in communities(neighbours):
        inside = set(members)
        degree = {m: len(neighbours[m] & inside) for m in members}
        hub = min(members, key=lambda k: (-degree[k], k))
        out.append(RelationGroup(hub, members, sum(degree.values()) // 2))
    out.sort(key=lambda g: (-len(g.members), g.hub))
    return out


def communities(neighbours: dict[str, set[str]], resolution: float = RESOLUTION) -> list[list[str]]:
    """Louvain: move each node to the neighbouring group that raises modularity most, until
    none moves (revisiting only the neighbours of a node that moved); then treat each group
    as one node and repeat, until a level changes nothing. Nodes without neighbours are left
    out. Deterministic: sorted visits, ties keep the first."""
    nodes: dict[str, list[str]] = {k: [k] for k in sorted(neighbours) if neighbours[k]}
    # plain dicts, not Counters: this loop runs for every KPI, several times at 20,000
    weight: dict[str, dict[str, int]] = {k: dict.fromkeys(neighbours[k], 1) for k in nodes}
    twice_edges = sum(sum(w.values()) for w in weight.values())
    while True:
        degree = {a: sum(weight[a].values()) for a in nodes}  # a group's links count twice
        group = {a: a for a in nodes}
        total = dict(degree)
        moved_at_level = False
        queue, queued = deque(nodes), set(nodes)  # a node is revisited when a neighbour moved
        while queue:
            a = queue.popleft()
            queued.discard(a)
            links: dict[str, int] = {}
            for b, w in weight[a].items():
                if b != a:
                    g = group[b]
                    links[g] = links.get(g, 0) + w
            current, degree_a = group[a], degree[a]
            total[current] -= degree_a
            scale = resolution * degree_a / twice_edges
            best = current
            best_gain = links.get(best, 0) - scale * total[best]
            for g in sorted(links):
                if (gain := links[g] - scale * total[g]) > best_gain + 1e-12:
                    best, best_gain = g, gain
            total[best] += degree_a
            if best != current:
                group[a] = best
                moved_at_level = True
                for b in sorted(weight[a]):
                    if b not in queued and b != a and group[b] != best:
                        queue.append(b)
                        queued.add(b)
        if not moved_at_level:
            break
        merged: dict[str, list[str]] = {}
        merged_weight: dict[str, dict[str, int]] = {}
        for a in nodes:
            merged.setdefault(group[a], []).extend(nodes[a])
            into = merged_weight.setdefault(group[a], {})
            for b, w in weight[a].items():
                g = group[b]
                into[g] = into.get(g, 0) + w
        nodes = {g: merged[g] for g in sorted(merged)}
        weight = merged_weight
    return _absorb_small([sorted(members) for members in nodes.values()], neighbours)


def _absorb_small(groups: list[list[str]], neighbours: dict[str, set[str]]) -> list[list[str]]:
    """Merge each group under MIN_GROUP KPIs, smallest first, into the neighbouring group it
    has most links to (ties: the smaller group, then the first member's id). A small library
    otherwise shatters: at the resolution that splits hundreds of KPIs by topic, five linked
    KPIs come apart into ones and twos."""
    groups = sorted(groups, key=lambda g: (len(g), g[0]))
    while True:
        where = {m: i for i, g in enumerate(groups) for m in g}
        small = next(
            (
                i
                for i, g in enumerate(groups)
                if len(g) < MIN_GROUP and _links(g, where, neighbours)
            ),
            None,
        )
        if small is None:
            return groups
        links = _links(groups[small], where, neighbours)
        target = min(links, key=lambda i: (-links[i], len(groups[i]), groups[i][0]))
        merged = sorted(groups[small] + groups[target])
        groups = [g for i, g in enumerate(groups) if i not in (small, target)] + [merged]
        groups.sort(key=lambda g: (len(g), g[0]))


def _links(group: list[str], where: dict[str, int], neighbours: dict[str, set[str]]) -> Counter:
    """Links from a group's members to each other group, by the other group's index."""
    inside = where[group[0]]
    return Counter(where[n] for m in group for n in neighbours[m] if where[n] != inside)
