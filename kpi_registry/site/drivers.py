"""A KPI page's driver tree, with the waterfall of its worked example's last change beside it.

One SVG, drawn at build time from the formula and the engine (``kpi_registry.attribution``), so
it cannot drift from the definition. On the left the tree: the KPI, the KPIs and aggregates it
is computed from, recursively (datapoints are named on their aggregate's row). On the right, when
a worked example has two periods with a value, a horizontal waterfall aligned with the rows: the
KPI's own row is a bar from its start to its end value, and every driver's row is a bar of its
exact share, floating where its siblings before it left off, so the bars of a node's children
span exactly the node's own bar. One picture instead of two keeps a KPI page within its budget.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import pandas as pd

from ..attribution import Driver, ExplainError, Explanation, explanation, reading
from ..errors import KPIError
from ..evaluation import Table, compute
from ..model import KPI
from ..worked_examples import example_request, example_rows
from .charts import WIDTH, shorten
from .numbers import format_value

MAX_ROWS = 12  # a deeper or wider tree says how many rows are left out
ROW = 22
BARS = (372, WIDTH - 60)  # the x range of the waterfall


@dataclass
class Change:
    """The attribution of a worked example's last change, for the picture and its caption."""

    explanation: Explanation
    kpi_name: str = ""

    @functools.cached_property
    def rows(self) -> list[tuple[int, str, str, float]]:
        """(depth, driver, kind, contribution) per row."""
        return [
            (r["depth"], r["driver"], r["kind"], float(r["contribution"]))
            for r in self.explanation.records
        ]

    @property
    def attrs(self) -> dict[str, Any]:
        return self.explanation.attrs

    @property
    def reading(self) -> str:
        """The change in words (the page does not show it: made only when asked for)."""
        return reading(self.explanation.to_frame(), self.kpi_name)


@dataclass
class _Line:
    depth: int
    name: str
    note: str
    url: str | None
    key: tuple[str, ...]


def last_change(
    kpis: Mapping[str, KPI], kpi: KPI, results: Sequence[Any] | None = None
) -> Change | None:
    """The last change in the first worked example with two periods where the KPI has a value
    (over the whole example: a ``by`` is left out).

    ``results``, when given, holds the engine's result of each example for its own request (as
    the page's worked examples computed them): an example without a ``by`` is then not
    evaluated again to find its periods.
    """
    for i, example in enumerate(kpi.examples):
        request = example_request(example)
        if request.period is None or not isinstance(example.data, list):
            continue
        known = results[i] if results is not None and not request.by else None
        request = dataclasses.replace(request, by=[])
        data = example_rows(example)  # the rows as lists: the engine reads them without pandas
        try:
            if not isinstance(known, Table):
                known = compute(kpis, [kpi.id], data, request)
            # as a DataFrame column would give them (Period, Timestamp or text)
            labels = pd.Series(known.columns[request.period])
            periods = labels[pd.notna(known.columns[kpi.id])].tolist()
            if len(periods) < 2:
                continue
            explained = explanation(kpis, kpi.id, data, request, start=periods[-2], end=periods[-1])
        except (ExplainError, KPIError):
            continue
        return Change(explained, kpi.name)
    return None


def _lines(tree: Driver, change: Change | None, url_of) -> list[_Line]:
    """The rows: tree nodes (datapoints folded into their parent's note), plus the revenue
    bridge's movements where the attribution has them."""
    movements: dict[tuple, list[str]] = {}
    if change is not None:
        path: list[str] = []
        for depth, driver, kind, _ in change.rows:
            del path[depth - 1 :]
            path.append(driver)
            if kind == "movement":
                movements.setdefault(tuple(path[:-1]), []).append(driver)
    out: list[_Line] = []

    def add(node: Driver, depth: int, key: tuple[str, ...]) -> None:
        points = [c.name for c in node.children if c.kind == "datapoint"]
        note = node.operation if node.kind != "aggregate" else ""
        if points and (node.kind == "kpi" and node.operation.endswith("over rows")):
            note = note.replace(" over rows", "") + " of " + ", ".join(points)
        url = url_of(node.name) if node.kind == "kpi" and depth else None
        out.append(_Line(depth, node.name, note, url, key))
        for child in node.children:
            if child.kind != "datapoint":
                add(child, depth + 1, (*key, child.name))
        for m in movements.get(key if key else (), []):
            out.append(_Line(depth + 1, m, "", None, (*key, m)))

    add(tree, 0, ())
    if not tree.children or all(c.kind == "datapoint" for c in tree.children):
        # a KPI that is one aggregate: its bridge hangs under its own row in the frame
        leaf = [r[1] for r in change.rows if r[0] == 1][:1] if change is not None else []
        for m in movements.get(tuple(leaf), []):
            out.append(_Line(1, m, "", None, (*leaf, m)))
    return out


def _shares(change: Change) -> dict[tuple[str, ...], float]:
    path: list[str] = []
    out: dict[tuple[str, ...], float] = {}
    for depth, driver, _, c in change.rows:
        del path[depth - 1 :]
        path.append(driver)
        out[tuple(path)] = float(c)
    return out


def driver_figure(
    tree: Driver, url_of: Callable[[str], str | None], change: Change | None, unit: str
) -> str:
    """The tree (and the waterfall, given a change) as one SVG."""
    lines = _lines(tree, change, url_of)
    shown, hidden = lines[:MAX_ROWS], max(0, len(lines) - MAX_ROWS)
    height = ROW * (len(shown) + (1 if hidden else 0)) + 8
    text_rows, tree_path, bars = [], [], []
    last: dict[int, int] = {}
    for i, line in enumerate(shown):
        x, y = 8 + line.depth * 18, 16 + i * ROW
        if line.depth:
            p = last[line.depth - 1]
            tree_path.append(f"M{x - 14} {16 + p * ROW + 5}V{y - 4}H{x - 3}")
        last[line.depth] = i
        label = escape(shorten(line.name.replace("_", " "), 46 - 2 * line.depth))
        note = f'<tspan class="o"> {escape(line.note)}</tspan>' if line.note else ""
        row = f'<text x="{x}" y="{y}">{label}{note}</text>'
        text_rows.append(f'<a href="{escape(line.url)}">{row}</a>' if line.url else row)
    if change is not None:
        bars = _waterfall(shown, change, unit)
    if hidden:
        text_rows.append(
            f'<text x="8" y="{16 + len(shown) * ROW}">+ {hidden} more rows (kpi show lists '
            "the whole tree)</text>"
        )
    title = f"Driver tree of {tree.name}"
    return (
        f'<svg class="kpi-driver-tree" viewBox="0 0 {WIDTH} {height}" role="img">'
        f"<title>{escape(title)}</title>"
        f'<path class="dt-line" d="{"".join(tree_path)}"/>' + "".join(text_rows + bars) + "</svg>"
    )


def _waterfall(shown: list[_Line], change: Change, unit: str) -> list[str]:
    """Bars right of the rows: the KPI from start to end, each driver its share from where the
    siblings before it ended."""
    a = change.attrs
    shares = _shares(change)
    begin: dict[tuple[str, ...], float] = {(): a["start_value"]}
    spans: list[tuple[int, float, float, str]] = []
    cursor: dict[tuple[str, ...], float] = {}
    for i, line in enumerate(shown):
        if not line.key:
            spans.append((i, a["start_value"], a["end_value"], "kc-s0"))
            continue
        parent = line.key[:-1]
        share = shares.get(line.key)
        if parent not in begin and len(parent) == 1:  # the bridge of a one-aggregate KPI
            begin[parent] = a["start_value"]
        if share is None or parent not in begin:
            continue
        lo = cursor.get(parent, begin[parent])
        cursor[parent] = lo + share
        begin[line.key] = lo
        spans.append((i, lo, lo + share, "kc-s2" if share >= 0 else "kc-s3"))
    ends = [v for _, lo, hi, _ in spans for v in (lo, hi) if math.isfinite(v)]
    if not ends:
        return []
    lo_v, hi_v = min(ends), max(ends)
    if hi_v == lo_v:
        hi_v = lo_v + (abs(lo_v) or 1.0)

    def x(v: float) -> float:
        return BARS[0] + (v - lo_v) / (hi_v - lo_v) * (BARS[1] - BARS[0])

    groups: dict[str, list[str]] = {}
    labels = []
    for i, v0, v1, kind in spans:
        y = 16 + i * ROW - 12
        left, right = sorted((x(v0), x(v1)))
        groups.setdefault(kind, []).append(
            f'<rect x="{left:.0f}" y="{y}" width="{max(1.0, right - left):.0f}" height="14"/>'
        )
        if kind == "kc-s0":
            text = f"{_value(v0, unit)} \u2192 {_value(v1, unit)}"
        else:
            text = ("+" if v1 >= v0 else "\u2212") + _value(abs(v1 - v0), unit, share=True)
        if right + 4 + 6.5 * len(text) <= WIDTH:
            labels.append(f'<text x="{right + 4:.0f}" y="{y + 11}">{escape(text)}</text>')
        else:  # no room on the right: the label ends where the bar starts
            labels.append(f'<text class="l" x="{left - 4:.0f}" y="{y + 11}">{escape(text)}</text>')
    bars = [f'<g class="{k}">' + "".join(rects) + "</g>" for k, rects in groups.items()]
    return [*bars, '<g class="dt-v">' + "".join(labels) + "</g>"]


def _between(attrs: Mapping[str, Any]) -> str:
    return f"from {attrs['start']} to {attrs['end']}"


def _value(v: float, unit: str, share: bool = False) -> str:
    if share and unit == "percent":
        return f"{v:,.2f}"  # a change of a percentage is in points, not a percentage
    return format_value(v, unit)


def figure_context(
    reg: Any,
    kpi: KPI,
    url_of: Callable[[str], str | None],
    results: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """What the KPI page template needs: the SVG and the caption of the change, if any.
    ``results``: the engine's result of each worked example, as last_change takes them."""
    if kpi.expression is None:
        return {"driver_tree": "", "last_change": ""}
    tree = reg.drivers(kpi.id)
    if not tree.children:
        return {"driver_tree": "", "last_change": ""}
    change = last_change(reg.kpis, kpi, results)
    return {
        "driver_tree": driver_figure(tree, url_of, change, kpi.unit),
        "last_change": _between(change.attrs) if change else "",
    }
