"""Small SVG charts drawn at build time: no chart library, no script, nothing to download.

Text in a chart (labels, titles) is XML-escaped here; colours for text and axes follow the
page's text colour (``currentColor``) so the charts read in light and dark themes. What is the
same in every chart (grid strokes, text alignment, the colour of each series) is styled by the
kc-* classes in kpi.css, and coordinates are written without a trailing ".0", which keeps a KPI
page small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from .numbers import format_value, short_number

SERIES = 6  # colours kc-s0 … kc-s5 in kpi.css; a chart draws at most this many series
WIDTH = 640
BANDS = 4  # a chart draws at most this many benchmark bands; the page's table lists them all


@dataclass(frozen=True)
class Band:
    """A published reference range (or a single value: low == high) in the chart's own unit."""

    low: float
    high: float
    label: str


def _span(values: Sequence[float], bands: Sequence[Band]) -> list[float]:
    """Axis ticks covering the values, zero and every band drawn, so no band is cut off."""
    edges = [e for b in bands[:BANDS] for e in (b.low, b.high)]
    everything = [0.0, *values, *edges]
    return _ticks(min(everything), max(everything))


def _bands(bands: Sequence[Band], y, left: int, right: int) -> tuple[list[str], list[str]]:
    """Benchmark bands as (shapes, labels): light bands (a single value is a dashed line).

    The shapes go behind the data and the labels on top of it (with a halo from the stylesheet,
    so a bar or a line under a label leaves it readable). Labels sit at the right end of their
    band, from the highest band down, each moved below the one above when they would overlap.
    """
    if not bands:
        return [], []
    shapes: list[str] = []
    labels: list[str] = []
    last_label_y = -1e9
    for band in sorted(bands[:BANDS], key=lambda b: -max(b.low, b.high)):
        lo, hi = sorted((band.low, band.high))
        y_top, y_bottom = y(hi), y(lo)
        if hi > lo:
            shapes.append(
                f'<rect x="{left}" y="{_n(y_top)}" width="{right - left}" '
                f'height="{_n(max(1.0, y_bottom - y_top))}"/>'
            )
            # inside the band when it is tall enough for a line of text, else just above it
            label_y = y_top + 12 if y_bottom - y_top >= 16 else y_top - 4
        else:
            shapes.append(f'<path d="M{left} {_n(y_top)}H{right}"/>')
            label_y = y_top - 4
        label_y = max(label_y, last_label_y + 12)
        last_label_y = label_y
        labels.append(
            f'<text x="{right - 4}" y="{_n(label_y)}">{escape(shorten(band.label, 48))}</text>'
        )
    return (
        ['<g class="kc-bench">' + "".join(shapes) + "</g>"],
        ['<g class="kc-blabel">' + "".join(labels) + "</g>"],
    )


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    """Round tick values spanning [lo, hi]."""
    if hi == lo:
        hi = lo + (abs(lo) or 1)
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    ticks = [round(math.floor(lo / step) * step, 10)]
    while ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _n(v: float) -> str:
    """A coordinate with at most one decimal, "224" rather than "224.0"."""
    text = f"{v:.1f}"
    return text[:-2] if text.endswith(".0") else text


def shorten(text: str, n: int) -> str:
    """Text cut to ``n`` characters with an ellipsis: labels in a picture of fixed width."""
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def _frame(title: str, height: int, body: list[str]) -> str:
    # The <title> is the picture's accessible name (role="img"); no aria-label repeats it.
    return (
        f'<svg class="kpi-chart" viewBox="0 0 {WIDTH} {height}" role="img">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _axis(ticks: list[float], y, left: int, right: int) -> list[str]:
    """Grid lines (one path; the zero line stronger) and the value labels on the left."""
    grid = "".join(f"M{left} {_n(y(t))}H{right}" for t in ticks if t != 0)
    zero = "".join(f"M{left} {_n(y(t))}H{right}" for t in ticks if t == 0)
    labels = "".join(
        f'<text x="{left - 6}" y="{_n(y(t) + 4)}">{short_number(t)}</text>' for t in ticks
    )
    out = [f'<path class="kc-grid" d="{grid}"/>'] if grid else []
    if zero:
        out.append(f'<path class="kc-zero" d="{zero}"/>')
    out.append(f'<g class="kc-y">{labels}</g>')
    return out


def line_chart(
    x: list[str],
    series: list[tuple[str, list[float | None]]],
    *,
    unit: str = "",
    title: str = "",
    bands: Sequence[Band] = (),
) -> str:
    """One line per series over the x categories; gaps where a value is missing.

    ``bands`` are benchmark ranges in the same unit as the series, drawn behind the lines.
    """
    values = [v for _, vs in series for v in vs if v is not None]
    if not values:
        return _empty(title)
    legend = len(series) > 1
    top, bottom, left, right = 28, 36 + (20 if legend else 0), 56, WIDTH - 16
    height = 260 + (20 if legend else 0)
    ticks = _span(values, bands)
    lo, hi = ticks[0], ticks[-1]

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (height - top - bottom)

    step = (right - left) / max(1, len(x))

    def xpos(i: int) -> float:
        return left + step * (i + 0.5)

    shapes, labels = _bands(bands, y, left, right)
    body = _axis(ticks, y, left, right) + shapes
    for i, label in enumerate(x):
        body.append(
            f'<text x="{_n(xpos(i))}" y="{height - bottom + 18}">'
            f"{escape(shorten(label, 14))}</text>"
        )
    label_points = len(x) * len(series) <= 16
    for s, (name, vs) in enumerate(series[:SERIES]):
        body.append(f'<g class="kc-s{s}">')
        segments: list[list[str]] = [[]]
        for i, v in enumerate(vs):
            if v is None:
                segments.append([])
            else:
                segments[-1].append(f"{_n(xpos(i))},{_n(y(v))}")
        for seg in segments:
            if len(seg) > 1:
                body.append(f'<polyline points="{" ".join(seg)}"/>')
        for i, v in enumerate(vs):
            if v is None:
                continue
            # A point whose value is printed beside it needs no tooltip saying it again.
            tip = "" if label_points else escape(f"{name}, {x[i]}: {format_value(v, unit)}")
            body.append(
                f'<circle cx="{_n(xpos(i))}" cy="{_n(y(v))}" r="4"><title>{tip}</title></circle>'
                if tip
                else f'<circle cx="{_n(xpos(i))}" cy="{_n(y(v))}" r="4"/>'
            )
            if label_points:
                body.append(
                    f'<text x="{_n(xpos(i))}" y="{_n(y(v) - 9)}">'
                    f"{escape(format_value(v, unit))}</text>"
                )
        if legend:
            lx = left + s * 150
            body.append(
                f'<rect x="{lx}" y="{height - 16}" width="12" height="12"/>'
                f'<text class="kc-start" x="{lx + 16}" y="{height - 6}">'
                f"{escape(shorten(name, 20))}</text>"
            )
        body.append("</g>")
    for i, v in enumerate(series[0][1] if series else []):
        if v is None and not legend:
            body.append(
                f'<text class="kc-none" x="{_n(xpos(i))}" y="{_n(y(0) - 9)}">no value</text>'
            )
    return _frame(title, height, body + labels)


def bar_chart(
    labels: list[str],
    values: list[float | None],
    *,
    unit: str = "",
    title: str = "",
    bands: Sequence[Band] = (),
) -> str:
    """A bar per label, from zero; a missing value leaves its slot empty.

    ``bands`` are benchmark ranges in the bars' unit, drawn behind the bars.
    """
    known = [v for v in values if v is not None]
    if not known:
        return _empty(title)
    height, top, bottom, left, right = 260, 28, 36, 56, WIDTH - 16
    ticks = _span(known, bands)
    lo, hi = ticks[0], ticks[-1]

    def y(v: float) -> float:
        return top + (hi - v) / (hi - lo) * (height - top - bottom)

    step = (right - left) / max(1, len(labels))
    width = min(64.0, step * 0.6)
    shapes, band_labels = _bands(bands, y, left, right)
    body = _axis(ticks, y, left, right) + shapes
    for i, (label, v) in enumerate(zip(labels, values)):
        cx = left + step * (i + 0.5)
        short = shorten(label, max(6, int(step / 7)))
        full = f"<title>{escape(label)}</title>" if short != label else ""
        body.append(f'<text x="{_n(cx)}" y="{height - bottom + 18}">{escape(short)}{full}</text>')
        if v is None:
            continue
        y0, y1 = sorted((y(0), y(v)))
        text = escape(format_value(v, unit))
        # The value is printed above its bar and the label under it: no tooltip repeats them.
        body.append(
            f'<rect x="{_n(cx - width / 2)}" y="{_n(y0)}" width="{_n(width)}" '
            f'height="{_n(max(1.0, y1 - y0))}"/><text x="{_n(cx)}" y="{_n(y0 - 6)}">{text}</text>'
        )
    return _frame(title, height, body + band_labels)


def _empty(title: str) -> str:
    return _frame(
        title,
        60,
        [
            '<text class="kc-start" x="16" y="36">'
            "No value to draw: every period of the example is missing.</text>"
        ],
    )
