"""A small SVG picture of a KPI and its neighbours, drawn at build time.

What drives the KPI (its leading indicators and formula inputs) stands on the left with arrows
into it, what it drives (lagging indicators, KPIs it influences or feeds) on the right, related
KPIs below. Each box links to that KPI's page. The map is capped, so a page stays the same size
however large the library grows.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

WIDTH = 640
BOX_W, BOX_H, ROW = 180, 30, 40
#: Boxes drawn per side; "+ N more" counts the side's other neighbours (every one, as the
#: Registry answers: the lists under the map show the same totals, some as "… and N more").
PER_SIDE, PER_BOTTOM = 4, 3

KINDS = {
    # kind: (side, legend); colours and dashes come from the rm-<kind> classes in kpi.css
    "leading": ("left", "leading indicator"),
    "uses": ("left", "formula input"),
    "lagging": ("right", "lagging indicator / influences"),
    "used_in": ("right", "used in the formula of"),
    "related": ("bottom", "related"),
}


@dataclass(frozen=True)
class Neighbour:
    kpi_id: str
    name: str
    url: str
    kind: str


def _cut(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _box(x: float, y: float, n: Neighbour) -> str:
    short = _cut(n.name)
    title = f"<title>{escape(n.name)}</title>" if short != n.name else ""
    return (
        f'<a href="{escape(n.url)}">{title}<use href="#rm-box" x="{x:.0f}" y="{y:.0f}"/>'
        f'<text x="{x + BOX_W / 2:.0f}" y="{y + 19:.0f}">{escape(short)}</text></a>'
    )


def _by_kind(parts: dict[str, list[str]], attrs: dict[str, str] | None = None) -> list[str]:
    """One group per kind: its class (colour, dashes) and arrowhead are set once, not per part."""
    return [
        f'<g class="rm-{kind}"{(attrs or {}).get(kind, "")}>' + "".join(items) + "</g>"
        for kind, items in parts.items()
        if items
    ]


def relation_map(center_name: str, neighbours: list[Neighbour]) -> str:
    """SVG markup, or "" when the KPI has no neighbours.

    The markup is kept lean (it is drawn on every KPI page): lines and boxes are grouped by
    kind, arrowheads are inherited from the group, and boxes reuse one rectangle.
    """
    seen: set[str] = set()
    sides: dict[str, list[Neighbour]] = {"left": [], "right": [], "bottom": []}
    for n in neighbours:  # the first kind listed for a KPI wins
        if n.kpi_id in seen:
            continue
        seen.add(n.kpi_id)
        sides[KINDS[n.kind][0]].append(n)
    if not seen:
        return ""
    limits = {"left": PER_SIDE, "right": PER_SIDE, "bottom": PER_BOTTOM}
    more = {s: max(0, len(items) - limits[s]) for s, items in sides.items()}
    sides = {s: items[: limits[s]] for s, items in sides.items()}
    rows = max(len(sides["left"]), len(sides["right"]), 1) + (1 if any(more.values()) else 0)
    mid_h = rows * ROW
    height = 20 + mid_h + (ROW + 20 + (16 if more["bottom"] else 0) if sides["bottom"] else 0) + 34
    cx, cy = WIDTH / 2, 20 + mid_h / 2
    shown = {n.kind for items in sides.values() for n in items}
    used = [kind for kind in KINDS if kind in shown]
    arrowed = [kind for kind in used if KINDS[kind][0] != "bottom"]
    body = [
        f'<defs><rect id="rm-box" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
        + "".join(
            f'<marker id="rm-{kind}" class="rm-{kind}" viewBox="0 0 10 10" refX="10" refY="5" '
            'markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z"/></marker>'
            for kind in arrowed
        )
        + "</defs>"
    ]
    lines: dict[str, list[str]] = {kind: [] for kind in used}
    boxes: dict[str, list[str]] = {kind: [] for kind in used}
    centre_w = 200
    for side, items in sides.items():
        for i, n in enumerate(items):
            if side == "bottom":
                x = WIDTH / 2 + (i - (len(items) - 1) / 2) * (BOX_W + 16) - BOX_W / 2
                y = 20 + mid_h + 20
                line = (x + BOX_W / 2, y, cx, cy + BOX_H / 2)
            else:
                top = cy - len(items) * ROW / 2
                y = top + i * ROW + (ROW - BOX_H) / 2
                if side == "left":
                    x = 8
                    line = (x + BOX_W, y + BOX_H / 2, cx - centre_w / 2, cy)
                else:
                    x = WIDTH - 8 - BOX_W
                    line = (cx + centre_w / 2, cy, x, y + BOX_H / 2)
            lines[n.kind].append(
                f'<line x1="{line[0]:.0f}" y1="{line[1]:.0f}" '
                f'x2="{line[2]:.0f}" y2="{line[3]:.0f}"/>'
            )
            boxes[n.kind].append(_box(x, y, n))
    body.extend(_by_kind(lines, {k: f' marker-end="url(#rm-{k})"' for k in arrowed}))
    body.extend(_by_kind(boxes))
    for side, count in more.items():
        if count:
            x = {"left": 8 + BOX_W / 2, "right": WIDTH - 8 - BOX_W / 2, "bottom": WIDTH / 2}[side]
            y = 20 + mid_h - 8 if side != "bottom" else 20 + mid_h + 20 + BOX_H + 14
            body.append(f'<text class="rm-more" x="{x:.0f}" y="{y:.0f}">+ {count} more</text>')
    body.append(
        f'<g class="rm-centre"><rect x="{cx - centre_w / 2:.0f}" y="{cy - 22:.0f}" '
        f'width="{centre_w}" height="44" rx="8"/><text x="{cx:.0f}" y="{cy + 5:.0f}">'
        f"{escape(_cut(center_name, 26))}</text></g>"
    )
    lx = 8
    for kind in used:
        label = KINDS[kind][1]
        body.append(
            f'<g class="rm-legend rm-{kind}"><line x1="{lx}" x2="{lx + 22}" '
            f'y1="{height - 12}" y2="{height - 12}"/><text x="{lx + 27}" y="{height - 8}">'
            f"{escape(label)}</text></g>"
        )
        lx += 34 + 6 * len(label)
    # The <title> names the picture for screen readers (role="img"), so no aria-label repeats it.
    title = escape(f"Relation map of {center_name}")
    return (
        f'<svg class="kpi-relation-map" viewBox="0 0 {WIDTH} {height}" role="img">'
        f"<title>{title}</title>" + "".join(body) + "</svg>"
    )
