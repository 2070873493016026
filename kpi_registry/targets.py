"""Targets and status: the user's own "compared with what" for a KPI.

A target is a value to reach (and optionally a threshold below which a result is off track
rather than at risk), for one KPI, optionally for one segment (values of the ``by`` columns) and
for a range of periods, with an owner and a note on where it came from. Targets live with the
user's definitions: in a ``_targets.yaml`` in a definitions folder, or under ``targets:`` in the
KPI's own file. They are checked like definitions (errors at file:line:col).

The status of a result is decided by the KPI's ``direction``:

* ``higher_is_better``: on track at or above the target; at risk at or above ``at_risk``;
  otherwise off track.
* ``lower_is_better``: the mirror image (on track at or below the target, at risk at or below
  ``at_risk``).
* ``on_target``: on track within ``tolerance`` of the target either way; at risk within
  ``at_risk`` of it; otherwise off track.

Without ``at_risk`` a result is either on track or off track. A missing result is ``no_data``;
a row no target covers has no status. The rule runs on the result frame after evaluation, so it
is the same whichever engine computed the numbers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pandas loads when targets are applied or read, not with the library
    import pandas as pd

from .errors import DefinitionError, KPIError, Report, did_you_mean
from .loading import position_of, read_file

TARGETS_FILE = "_targets.yaml"

ON_TRACK, AT_RISK, OFF_TRACK, NO_DATA = "on_track", "at_risk", "off_track", "no_data"
STATUSES = (ON_TRACK, AT_RISK, OFF_TRACK, NO_DATA)

_FIELDS = {"kpi", "target", "at_risk", "tolerance", "segment", "from", "to", "owner", "note"}


@dataclass(frozen=True)
class Target:
    kpi: str
    target: float
    at_risk: float | None = None
    tolerance: float = 0.0
    segment: tuple[tuple[str, str], ...] = ()  # (by column, value), sorted
    start: dt.date | None = None  # first day covered
    end: dt.date | None = None  # last day covered
    owner: str = ""
    note: str = ""
    path: str = ""
    line: int = 0
    column: int = 0
    field_path: str = "targets"  # e.g. targets[2], for diagnostics

    def covers(self, period_start: dt.date | None, period_end: dt.date | None) -> bool:
        """Whether a period lies wholly inside this target's range of periods."""
        if self.start is None and self.end is None:
            return True
        if period_start is None or period_end is None:
            return False  # a result without periods only meets targets for all time
        return (self.start is None or period_start >= self.start) and (
            self.end is None or period_end <= self.end
        )

    def status(self, direction: str, value: float) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return NO_DATA
        if direction == "lower_is_better":
            if value <= self.target:
                return ON_TRACK
            return AT_RISK if self.at_risk is not None and value <= self.at_risk else OFF_TRACK
        if direction == "on_target":
            distance = abs(value - self.target)
            if distance <= self.tolerance:
                return ON_TRACK
            return AT_RISK if self.at_risk is not None and distance <= self.at_risk else OFF_TRACK
        if value >= self.target:
            return ON_TRACK
        return AT_RISK if self.at_risk is not None and value >= self.at_risk else OFF_TRACK


# -- reading -------------------------------------------------------------------------------------
def read_targets_file(path: Path, report: Report) -> list[Target]:
    """Every target in a _targets.yaml (``targets:`` a list of entries, each naming its kpi)."""
    try:
        doc = read_file(path)
    except DefinitionError as e:
        report.extend(e.diagnostics)
        return []
    entries = doc.data.get("targets")
    if not isinstance(entries, list):
        line, col = position_of(doc.data, ("targets",))
        report.add(path, line, col, "targets", "expected a list of targets, each with a kpi")
        return []
    return [
        t
        for i, entry in enumerate(entries)
        if (t := _target(doc.data, ("targets", i), entry, None, str(path), report)) is not None
    ]


def targets_in_definition(data: Mapping, kpi_id: str, path: str, report: Report) -> list[Target]:
    """The ``targets:`` of a KPI's own file (entries without a kpi, or naming this one). Their
    shape is the JSON Schema's to report; what it cannot see (dates, ranges) is reported here."""
    entries = data.get("targets") or []
    if not isinstance(entries, list):
        return []
    return [
        t
        for i, entry in enumerate(entries)
        if (t := _target(data, ("targets", i), entry, kpi_id, path, report, False)) is not None
    ]


def _target(
    doc: Any,
    where: tuple,
    entry: Any,
    kpi_id: str | None,
    path: str,
    report: Report,
    report_shape: bool = True,
) -> Target | None:
    line, col = position_of(doc, where)
    field_name = f"targets[{where[1]}]"
    shape_report = report if report_shape else Report()  # else the schema reports the shape

    def fail(key: str | None, message: str, into: Report = shape_report) -> None:
        at = position_of(doc, (*where, key)) if key else (line, col)
        into.add(path, at[0], at[1], f"{field_name}.{key}" if key else field_name, message)

    if not isinstance(entry, Mapping):
        fail(None, "expected a mapping with at least kpi and target")
        return None
    unknown = sorted(set(entry) - _FIELDS)
    for key in unknown:
        fail(key, f"unknown field {key!r}{did_you_mean(key, _FIELDS)}")
    kpi = entry.get("kpi", kpi_id)
    if kpi_id is not None and kpi not in (None, kpi_id):
        fail("kpi", f"a target in {kpi_id}'s own file is for {kpi_id}, not {kpi!r}", report)
        return None
    if not isinstance(kpi, str) or not kpi:
        fail(None, "needs the kpi it is for")
        return None
    numbers: dict[str, float | None] = {}
    for key in ("target", "at_risk", "tolerance"):
        value = entry.get(key)
        if value is None:
            numbers[key] = None
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(key, f"expected a number, got {value!r}")
            return None
        elif not math.isfinite(value):
            fail(key, "must be a finite number")
            return None
        else:
            numbers[key] = float(value)
    if numbers["target"] is None:
        fail(None, "needs a target value")
        return None
    if numbers["tolerance"] is not None and numbers["tolerance"] < 0:
        fail("tolerance", "a tolerance is a distance and cannot be negative")
        return None
    segment = entry.get("segment") or {}
    if not isinstance(segment, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in segment.items()
    ):
        fail("segment", "expected a mapping of by column to value, e.g. {segment: SMB}")
        return None
    dates = {}
    for key in ("from", "to"):
        value = entry.get(key)
        try:
            dates[key] = _period_bound(value, end=key == "to")
        except ValueError:
            message = f"expected a date or a period such as 2024-01, 2024Q1 or 2024, got {value!r}"
            fail(key, message, report)
            return None
    if dates["from"] and dates["to"] and dates["from"] > dates["to"]:
        fail("to", f"ends ({dates['to']}) before it starts ({dates['from']})", report)
        return None
    return Target(
        kpi=kpi,
        target=numbers["target"],
        at_risk=numbers["at_risk"],
        tolerance=numbers["tolerance"] or 0.0,
        segment=tuple(sorted((str(k), str(v)) for k, v in segment.items())),
        start=dates["from"],
        end=dates["to"],
        owner=str(entry.get("owner") or ""),
        note=str(entry.get("note") or ""),
        path=path,
        line=line,
        column=col,
        field_path=field_name,
    )


def _period_bound(value: Any, *, end: bool) -> dt.date | None:
    """A ``from``/``to`` as a day: a date, or a period (2024-03, 2024Q1, 2024) whose first day
    (``from``) or last day (``to``) it means."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    bounds = period_bounds(str(value))
    if bounds is None:
        raise ValueError(value)
    return bounds[1] if end else bounds[0]


def period_bounds(label: Any) -> tuple[dt.date, dt.date] | None:
    """First and last day of a period label as ``evaluate`` writes it (2024-03-05, 2024-03,
    2024Q1, 2024, or a week's Monday), or None when the label is not a period."""
    import pandas as pd

    text = str(label).strip()
    for freq in ("D", "M", "Q", "Y"):
        if _looks_like(text, freq):
            try:
                period = pd.Period(text, freq=freq)
            except (ValueError, TypeError):
                return None
            return period.start_time.date(), period.end_time.date()
    return None


def _looks_like(text: str, freq: str) -> bool:
    digits = text.replace("-", "")
    if freq == "D":
        return len(text) == 10 and text[4] == "-" and text[7] == "-" and digits.isdigit()
    if freq == "M":
        return len(text) == 7 and text[4] == "-" and digits.isdigit()
    if freq == "Q":
        return len(text) == 6 and text[4] in "Qq" and text[:4].isdigit() and text[5] in "1234"
    return len(text) == 4 and text.isdigit()


# -- checking ------------------------------------------------------------------------------------
@dataclass
class TargetBook:
    """Every loaded target, by KPI."""

    by_kpi: dict[str, list[Target]] = field(default_factory=dict)

    def add(self, targets: Iterable[Target]) -> None:
        for t in targets:
            self.by_kpi.setdefault(t.kpi, []).append(t)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_kpi.values())

    def for_kpi(self, kpi_id: str) -> list[Target]:
        return self.by_kpi.get(kpi_id, [])


def check(book: TargetBook, directions: Mapping[str, str], report: Report) -> None:
    """Unknown KPIs, bands that contradict the KPI's direction, and overlapping targets (the
    same KPI and segment with period ranges that share a day: a result would have two)."""
    for kpi_id, targets in sorted(book.by_kpi.items()):
        if kpi_id not in directions:
            for t in targets:
                report.add(
                    t.path,
                    t.line,
                    t.column,
                    f"{t.field_path}.kpi",
                    f"unknown KPI id {kpi_id!r}{did_you_mean(kpi_id, directions)}",
                )
            continue
        direction = directions[kpi_id]
        for t in targets:
            problem = _contradiction(direction, t)
            if problem:
                report.add(t.path, t.line, t.column, f"{t.field_path}.at_risk", problem)
        for i, a in enumerate(targets):
            for b in targets[i + 1 :]:
                if a.segment == b.segment and _overlap(a, b):
                    report.add(
                        b.path,
                        b.line,
                        b.column,
                        b.field_path,
                        f"overlaps the target for {kpi_id} at {a.path}:{a.line} (same segment, "
                        "periods that share a day): a result would have two targets",
                    )


def _contradiction(direction: str, t: Target) -> str | None:
    if t.at_risk is None:
        return None
    if direction == "higher_is_better" and t.at_risk > t.target:
        return (
            f"at_risk {t.at_risk:g} is above the target {t.target:g}, but higher is better for "
            "this KPI: the at-risk threshold lies below the target"
        )
    if direction == "lower_is_better" and t.at_risk < t.target:
        return (
            f"at_risk {t.at_risk:g} is below the target {t.target:g}, but lower is better for "
            "this KPI: the at-risk threshold lies above the target"
        )
    if direction == "on_target" and t.at_risk < t.tolerance:
        return (
            f"at_risk {t.at_risk:g} is narrower than the tolerance {t.tolerance:g}: for an "
            "on-target KPI both are distances from the target, and at risk lies outside on track"
        )
    return None


def _overlap(a: Target, b: Target) -> bool:
    low_a, high_a = a.start or dt.date.min, a.end or dt.date.max
    low_b, high_b = b.start or dt.date.min, b.end or dt.date.max
    return low_a <= high_b and low_b <= high_a


# -- applying ------------------------------------------------------------------------------------
def add_status(
    frame: pd.DataFrame,
    kpi_ids: Iterable[str],
    directions: Mapping[str, str],
    book: TargetBook,
    period: str | None,
    by: list[str],
) -> pd.DataFrame:
    """The frame with ``<kpi>_target`` and ``<kpi>_status`` after each KPI's column. A row takes
    the most specific target that covers it: one for its segment before one for everybody."""
    import pandas as pd

    out = frame.copy()
    if period is not None and period in out.columns:
        bounds = [period_bounds(p) or (None, None) for p in out[period]]
    else:
        bounds = [(None, None)] * len(out)
    group_values = [
        {col: str(v) for col, v in zip(by, row)}
        for row in (out[by].itertuples(index=False) if by else [()] * len(out))
    ]
    for kpi_id in kpi_ids:
        direction = directions[kpi_id]
        candidates = sorted(book.for_kpi(kpi_id), key=lambda t: -len(t.segment))
        targets, statuses = [], []
        for value, (start, end), groups in zip(out[kpi_id], bounds, group_values):
            chosen = next(
                (
                    t
                    for t in candidates
                    if all(groups.get(col) == want for col, want in t.segment)
                    and t.covers(start, end)
                ),
                None,
            )
            targets.append(chosen.target if chosen else float("nan"))
            statuses.append(chosen.status(direction, value) if chosen else None)
        at = out.columns.get_loc(kpi_id) + 1
        out.insert(at, f"{kpi_id}_target", pd.array(targets, dtype="float64"))
        out.insert(at + 1, f"{kpi_id}_status", pd.array(statuses, dtype="object"))
    out.attrs = dict(frame.attrs)
    return out


def require_frame(result: Any) -> pd.DataFrame:
    import pandas as pd

    if not isinstance(result, pd.DataFrame):
        raise KPIError(
            "targets apply to results per period: give row data and a period, not scalar inputs"
        )
    return result
