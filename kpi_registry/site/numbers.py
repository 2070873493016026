"""How values are written on the site, by unit. The calculator's JavaScript mirrors this."""

from __future__ import annotations

import math
from typing import Any

UNIT_LABELS = {
    "currency": "currency",
    "percent": "percent (%)",
    "ratio": "ratio",
    "count": "count",
    "duration": "duration",
    "score": "score",
    "flag": "flag (0 or 1)",
}

NO_VALUE = "\u2014"  # an em dash: the engine gives no value (first period, division by zero)


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_value(value: Any, unit: str) -> str:
    """A KPI value in its unit: 1,234.50 (currency), 22.00% (percent), 1,234 (whole counts)."""
    if is_missing(value):
        return NO_VALUE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    v = float(value)
    if unit == "percent":
        return f"{v:,.2f}%"
    if unit == "currency":
        return f"{v:,.2f}"
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.2f}"


def format_input(value: Any) -> str:
    """A cell of an example's input data, as written in the definition."""
    if is_missing(value):
        return NO_VALUE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    if isinstance(value, (int, float)):
        return f"{value:,}"
    return str(value)


def short_number(v: float) -> str:
    """Axis labels: 1.2k, 3M, 0.25."""
    a = abs(v)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            text = f"{v / div:.1f}".rstrip("0").rstrip(".")
            return text + suffix
    if a == int(a):
        return str(int(v))
    return f"{v:.2f}".rstrip("0").rstrip(".")
