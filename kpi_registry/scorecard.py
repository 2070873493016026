"""The scorecard: where a list of KPIs stands in the latest period, against their targets.

Built from one ``evaluate_many(..., with_targets=True)`` result, so its numbers are the
engine's. The HTML form is one self-contained file (inline CSS and SVG, no script, no request
outside itself) that a team can mail or drop on a share without a server.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .model import KPI
from .targets import AT_RISK, NO_DATA, OFF_TRACK, ON_TRACK

STATUS_LABELS = {
    ON_TRACK: "on track",
    AT_RISK: "at risk",
    OFF_TRACK: "off track",
    NO_DATA: "no data",
    None: "no target",
}


@dataclass(frozen=True)
class Line:
    """One KPI (in one group) in the scorecard."""

    kpi: KPI
    group: tuple[tuple[str, str], ...]
    period: str
    value: float
    previous: float
    target: float
    status: str | None
    history: tuple[float, ...]  # every period's value, oldest first

    @property
    def change(self) -> float:
        return self.value - self.previous


def scorecard_lines(
    frame: pd.DataFrame, kpis: list[KPI], period: str | None, by: list[str]
) -> list[Line]:
    """One line per KPI and group: its latest period, the one before, target and status."""
    if period is None or period not in frame.columns:
        raise ValueError("a scorecard needs results per period")
    groups = [((), frame)] if not by else list(frame.groupby(by, sort=True, dropna=False))
    lines = []
    for key, part in groups:
        part = part.sort_values(period, kind="stable")
        if part.empty:
            continue
        key = key if isinstance(key, tuple) else (key,)
        group = tuple(zip(by, (str(k) for k in key)))
        last, before = part.iloc[-1], part.iloc[-2] if len(part) > 1 else None
        for kpi in kpis:
            status = last.get(f"{kpi.id}_status")
            lines.append(
                Line(
                    kpi=kpi,
                    group=group,
                    period=str(last[period]),
                    value=_float(last[kpi.id]),
                    previous=_float(before[kpi.id]) if before is not None else math.nan,
                    target=_float(last.get(f"{kpi.id}_target", math.nan)),
                    status=None if _missing(status) else str(status),
                    history=tuple(_float(v) for v in part[kpi.id]),
                )
            )
    return lines


def _float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "–"
    text = f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) < 1e15 else f"{value:.3g}"
    return f"{text}%" if unit == "percent" else text


def text_table(lines: list[Line]) -> str:
    """The scorecard for a terminal: a fixed-width table, one line per KPI and group."""
    headers = ["KPI", "group", "period", "value", "previous", "target", "status"]
    rows = [
        [
            line.kpi.name,
            ", ".join(f"{k}={v}" for k, v in line.group) or "all",
            line.period,
            format_number(line.value, line.kpi.unit),
            format_number(line.previous, line.kpi.unit),
            format_number(line.target, line.kpi.unit),
            STATUS_LABELS.get(line.status, line.status or ""),
        ]
        for line in lines
    ]
    if not any(line.group for line in lines):
        headers.pop(1)
        for row in rows:
            row.pop(1)
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows)]
    numeric = {"value", "previous", "target"}

    def fmt(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if h in numeric else c.ljust(w) for c, w, h in zip(cells, widths, headers)
        ).rstrip()

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def sparkline(values: tuple[float, ...], width: int = 120, height: int = 28) -> str:
    """An inline SVG line of the values (gaps where a value is missing), last point marked."""
    points = [(i, v) for i, v in enumerate(values) if not math.isnan(v)]
    if not points:
        return ""
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (high - low) or 1.0
    step = (width - 6) / max(len(values) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return 3 + i * step, height - 3 - (v - low) / span * (height - 6)

    segments, current = [], []
    for i, v in enumerate(values):
        if math.isnan(v):
            if current:
                segments.append(current)
            current = []
        else:
            current.append(xy(i, v))
    if current:
        segments.append(current)
    paths = "".join(
        '<polyline points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in seg) + '"/>'
        for seg in segments
    )
    last_x, last_y = xy(*points[-1])
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="trend over {len(values)} periods">{paths}'
        f'<circle cx="{last_x:.1f}" cy="{last_y:.1f}" r="2.5"/></svg>'
    )


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:72rem;padding:0 1rem;color:#1d1d1f;background:#fff}
h1{font-size:1.5rem;margin:0 0 .25rem}p.meta{color:#555;margin:0 0 1.25rem}
.wrap{overflow-x:auto}table{border-collapse:collapse;width:100%}
th,td{padding:.45rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}
th{font-size:.8rem;text-transform:uppercase;letter-spacing:.03em;color:#555}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.spark polyline{fill:none;stroke:#3f51b5;stroke-width:1.6}.spark circle{fill:#3f51b5}
.status{display:inline-block;padding:.1rem .55rem;border-radius:1rem;font-size:.85rem;
white-space:nowrap}
.on_track{background:#dff3e4;color:#14532d}.at_risk{background:#fff1d6;color:#7a4b00}
.off_track{background:#fde2e1;color:#7f1d1d}.no_data,.none{background:#eee;color:#444}
@media (prefers-color-scheme:dark){body{background:#161618;color:#eee}th,p.meta{color:#aaa}
th,td{border-color:#333}.spark polyline{stroke:#8c9eff}.spark circle{fill:#8c9eff}}
"""


def html_page(lines: list[Line], title: str, note: str = "") -> str:
    """The scorecard as one self-contained HTML document."""
    grouped = any(line.group for line in lines)
    head = ["KPI", *(["Group"] if grouped else []), "Period", "Value", "Previous", "Change"]
    head += ["Target", "Status", "Trend"]
    rows = []
    for line in lines:
        unit = line.kpi.unit
        change = format_number(line.change, "") if not math.isnan(line.change) else "–"
        if change not in ("–",) and line.change > 0:
            change = "+" + change
        status = line.status or "none"
        cells = [
            f"<td>{html.escape(line.kpi.name)}</td>",
            *(
                [f"<td>{html.escape(', '.join(f'{k} = {v}' for k, v in line.group))}</td>"]
                if grouped
                else []
            ),
            f"<td>{html.escape(line.period)}</td>",
            f'<td class="n">{html.escape(format_number(line.value, unit))}</td>',
            f'<td class="n">{html.escape(format_number(line.previous, unit))}</td>',
            f'<td class="n">{html.escape(change)}</td>',
            f'<td class="n">{html.escape(format_number(line.target, unit))}</td>',
            f'<td><span class="status {status}">'
            f"{html.escape(STATUS_LABELS.get(line.status, status))}</span></td>",
            f"<td>{sparkline(line.history)}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f'<p class="meta">{html.escape(note)}</p>'
        '<div class="wrap"><table><thead><tr>'
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div></body></html>\n"
    )
