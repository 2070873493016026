"""What the SQL compiler supports: dialects, the functions some dialects lack, and how a period
column can be written. Plain data only, so the CLI and the docs can read it without sqlglot."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import KPIError
from .dialects import RECORDS

#: Query layouts (see sparse.py); here so `kpi sql`'s options need not import the engine.
DENSE, SPARSE = "dense", "sparse"
LAYOUTS = ("auto", DENSE, SPARSE)

#: Dialects the compiler writes, by their sqlglot names (one record each in dialects.py).
DIALECTS: tuple[str, ...] = tuple(RECORDS)

#: (function, dialect) -> why it does not compile there, from the dialect records.
#: Everything else compiles everywhere.
UNSUPPORTED: dict[tuple[str, str], str] = {
    (func, d.name): why for d in RECORDS.values() for func, why in d.unsupported.items()
}


class SQLCompileError(KPIError):
    """A formula or request that cannot be expressed in the chosen SQL dialect."""


class UnsupportedFunctionError(SQLCompileError):
    """A KPI's formula calls a function its dialect has no exact form of (``UNSUPPORTED``);
    raised before any SQL is built."""

    def __init__(self, kpi_id: str, function: str, dialect: str, reason: str):
        self.kpi_id, self.function, self.dialect, self.reason = kpi_id, function, dialect, reason
        self.supported_in = [d for d in DIALECTS if (function, d) not in UNSUPPORTED]
        super().__init__(
            f"KPI {kpi_id!r}: {function}() does not compile to {dialect}: {reason}. "
            f"It compiles to {', '.join(self.supported_in)}; or evaluate with the pandas engine"
        )


def check_dialect(dialect: str) -> str:
    name = (dialect or "").lower()
    if name not in DIALECTS:
        raise SQLCompileError(f"unknown SQL dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
    return name


def unsupported(func: str, dialect: str, kpi_id: str) -> UnsupportedFunctionError:
    return UnsupportedFunctionError(kpi_id, func, dialect, UNSUPPORTED[(func, dialect)])


@dataclass(frozen=True)
class PeriodFormat:
    """How the period column is written, which tells the SQL how to read it.

    ``kind``: ``text`` (e.g. '2024-01'), ``date`` (DATE or TIMESTAMP), ``ordinal`` (integer
    period numbers as pandas counts them: months since 1970-01 and so on) or ``mapping``
    (arbitrary text, translated through an inline table of the values seen).
    ``base``: the frequency of one period: D, W, M, Q or Y.
    ``labels``: how output periods are written: ``text`` like the input, or ``timestamp``
    (the period's first day), matching what the pandas engine returns.
    """

    kind: str
    base: str
    labels: str
    mapping: tuple[tuple[str, int], ...] = ()


#: Names accepted by ``period_type=`` and ``kpi sql --period-type``.
PERIOD_TYPES: dict[str, tuple[PeriodFormat, str]] = {
    "month": (
        PeriodFormat("text", "M", "text"),
        "text such as 2024-01 (dates are read as their month); labels like 2024-01",
    ),
    "quarter": (PeriodFormat("text", "Q", "text"), "text such as 2024Q1; labels like 2024Q1"),
    "year": (PeriodFormat("text", "Y", "text"), "text or integers such as 2024"),
    "day": (
        PeriodFormat("text", "D", "text"),
        "text such as 2024-01-31 (dates are read as their day); labels like 2024-01-31",
    ),
    "date": (
        PeriodFormat("date", "M", "timestamp"),
        "DATE or TIMESTAMP on the first (or last) day of each month; labels are month starts",
    ),
    "date-day": (
        PeriodFormat("date", "D", "timestamp"),
        "DATE or TIMESTAMP, one period per day; labels are the days as timestamps",
    ),
}
DEFAULT_PERIOD_TYPE = "month"


def period_format(name: str | PeriodFormat | None) -> PeriodFormat:
    if isinstance(name, PeriodFormat):
        return name
    key = DEFAULT_PERIOD_TYPE if name is None else str(name)
    if key not in PERIOD_TYPES:
        raise SQLCompileError(f"unknown period type {name!r}; use one of {', '.join(PERIOD_TYPES)}")
    return PERIOD_TYPES[key][0]


_CANONICAL = {
    "M": re.compile(r"^\d{4}-\d{2}$"),
    "Q": re.compile(r"^\d{4}Q[1-4]$"),
    "Y": re.compile(r"^\d{4}$"),
    "D": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
}


def infer_period_format(
    values: Any, column: str, date_format: str | None = None
) -> tuple[Any, PeriodFormat]:
    """(time axis, format) of a period column, inferred from its distinct values exactly as the
    pandas engine infers it. Text the SQL cannot parse itself (such as 2024-Q1 or 2024/01) is
    translated through a table of the values seen."""
    import pandas as pd

    from .. import periods

    values = pd.Series(values).reset_index(drop=True)
    # reads datetime.date (a DATE column) as dates too; the values are distinct, not rows
    axis = periods.parse(values, column, date_format, rows=False)
    if axis.kind == "timestamp":
        return axis, PeriodFormat("date", axis.base, "timestamp")
    texts = [v if isinstance(v, str) else str(v) for v in values]
    pattern = _CANONICAL.get(axis.base)
    if pattern is not None and all(pattern.match(t) for t in texts):
        return axis, PeriodFormat("text", axis.base, "text")
    ordinals = axis.codes + axis.first
    mapping = tuple((t, int(o)) for t, o in zip(texts, ordinals))
    return axis, PeriodFormat("mapping", axis.base, "text", mapping)
