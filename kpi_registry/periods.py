"""The time axis: parsing period columns and mapping fine periods onto a coarser grain.

Periods become integer ordinals of a pandas frequency (month 2024-01 -> 648), so the engine
works on small integers and only the unique values are ever parsed.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import CellError, DataError
from .formula.functions import CALENDAR_FUNCTIONS  # noqa: F401 - the formula catalog's list

GRAINS = {"day": "D", "week": "W", "month": "M", "quarter": "Q", "year": "Y"}
_ORDER = {"D": 0, "W": 1, "M": 2, "Q": 3, "Y": 4}
_MONTH_TEXT = re.compile(r"^\d{4}-\d{2}$")
#: Text dates that start with the day or the month (03/04/2024, 3.4.24, 03-04-2024 10:00):
#: pandas would read them month-first without a word, so they need a stated format.
_DAY_OR_MONTH_FIRST = re.compile(r"^\s*\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2}(?:\d{2})?(?:[ T].*)?$")


def is_day_or_month_first(text: str) -> bool:
    return bool(_DAY_OR_MONTH_FIRST.match(text))


def matches_date_format(text: str, date_format: str) -> bool:
    try:
        datetime.datetime.strptime(text.strip(), date_format)
    except ValueError:
        return False
    return True


class AmbiguousDateError(CellError):
    """A period written day-first or month-first, with no format given to say which.

    ``row``: the row label where the value first appears, when the rows were at hand."""

    def __init__(self, column: str, value: str, row=None):
        super().__init__(column, row, value, "ambiguous_date", "period")

    def render(self, row=None) -> str:
        at = f" at row {row!r}" if row is not None else ""
        return (
            f"period column {self.column!r} has {self.value!r}{at}: a date written day-first "
            "or month-first is ambiguous (03/04/2024 is 3 April or March 4); give its format, "
            "e.g. date_format='%d/%m/%Y'"
        )


class DateFormatError(CellError):
    """A period that does not match the date format given for it."""

    def __init__(self, column: str, value: str, date_format: str, row=None):
        self.date_format = date_format
        super().__init__(column, row, value, "date_format", "period")

    def render(self, row=None) -> str:
        at = f" at row {row!r}" if row is not None else ""
        return (
            f"period column {self.column!r} has {self.value!r}{at}, which does not match the "
            f"date format {self.date_format!r}"
        )


def freq_code(freq) -> str:
    name = getattr(freq, "freqstr", str(freq)).upper()
    for code in ("W", "M", "Q", "Y", "D"):
        if name.startswith(code) or (code == "Y" and name.startswith("A")):
            return code
    raise DataError(f"unsupported period frequency {name!r}; use day, week, month, quarter or year")


@dataclass
class TimeAxis:
    """Per-row period codes, plus the labels of every period in the calendar range."""

    codes: np.ndarray  # int64 per row: index into labels (at the base frequency)
    base: str  # base frequency code of the data
    first: int  # ordinal of the first period
    count: int  # number of periods from first to last, gaps included
    kind: str  # "text", "period" or "timestamp": how labels are returned
    present: np.ndarray  # bool per period: does any row fall in it

    def labels(self) -> pd.PeriodIndex:
        ords = np.arange(self.first, self.first + self.count)
        return pd.PeriodIndex.from_ordinals(ords, freq=self.base)


def parse(
    series: pd.Series, column: str, date_format: str | None = None, rows: bool = True
) -> TimeAxis:
    """Parse a period column of datetimes, pandas Periods or text such as 2024-01.

    ``date_format``: how text dates are written (``strptime`` codes such as ``%d/%m/%Y``);
    needed for dates that start with the day or the month, refused without it. ``rows``:
    whether the series' labels are the data's rows (not for a list of distinct values), for
    messages."""
    if len(series) == 0:
        return TimeAxis(np.zeros(0, np.int64), "M", 0, 0, "text", np.zeros(0, bool))
    if series.isna().any():
        row = series.index[series.isna().to_numpy()][0]
        raise CellError(column, row, None, "empty", "period")
    dtype = series.dtype
    if dtype.kind == "O" and isinstance(series.iloc[0], datetime.date):
        # datetime.date objects (what Parquet DATE columns read as) are dates, not text
        try:
            series = pd.Series(pd.to_datetime(series), index=series.index)
        except (ValueError, TypeError):
            pass  # mixed content: the text path below names the offending value
        dtype = series.dtype
    if pd.api.types.is_datetime64_dtype(dtype):
        return _parse_datetimes(series.to_numpy())
    if isinstance(dtype, pd.PeriodDtype):
        base = freq_code(dtype.freq)
        ordinals = series.array.asi8.astype(np.int64)
        kind = "period"
    else:
        codes, uniques = pd.factorize(series, sort=False)
        kind = "timestamp" if pd.api.types.is_datetime64_any_dtype(dtype) else "text"

        def row_of(unique: int):  # the first row with that value, for a message
            return series.index[int(np.flatnonzero(codes == unique)[0])] if rows else None

        uniq_ordinals, base = _parse_uniques(pd.Index(uniques), column, kind, date_format, row_of)
        ordinals = uniq_ordinals[codes]
    return _axis(ordinals, base, kind)


def monthly_rows(axis: TimeAxis, entities: np.ndarray | None, grain: str | None) -> TimeAxis | None:
    """Days that are monthly rows dated on a billing or snapshot day: the axis in months.

    A billing export dates each customer's monthly row on its billing day (the 3rd, the
    15th). Read as days, a stock such as MRR is taken on each month's last day, where no
    such row is, so every customer reads 0 and churns. So when no entity has two different
    days in one month (without an entity: no month has two days) and the rows span two
    months or more, they are months, unless days or weeks were asked for. None otherwise.
    ``entities``: a code per row (small integers), or None.
    """
    if axis.base != "D" or axis.kind == "period" or not len(axis.codes):
        return None
    if grain is not None and GRAINS.get(grain) in ("D", "W"):
        return None
    monthly = to_months(axis)
    n_months = int(monthly.present.sum())
    if n_months < 2:
        return None
    if entities is None:
        if int(axis.present.sum()) != n_months:  # some month has two days
            return None
    else:
        ent = entities.astype(np.int64) * (axis.count + 1)
        if len(np.unique(ent + axis.codes)) != len(np.unique(ent + monthly.codes)):
            return None
    return monthly


def to_months(axis: TimeAxis) -> TimeAxis:
    """A daily axis as months: each row in the month of its day."""
    day_month = pd.PeriodIndex.from_ordinals(
        np.arange(axis.first, axis.first + axis.count), freq="D"
    ).asfreq("M")
    return _axis(day_month.asi8[axis.codes], "M", axis.kind)


def parse_month_texts(values: list) -> TimeAxis | None:
    """The axis of a list of month texts such as 2024-01, without pandas; None when the
    values are anything else (``parse`` then handles them, errors included)."""
    months: dict[str, int] = {}
    for v in values:
        if v not in months:
            if v.__class__ is not str or not _MONTH_TEXT.match(v) or not 1 <= int(v[5:7]) <= 12:
                return None
            months[v] = _month_ordinal(v)
    if not months:
        return None
    ordinals = np.fromiter((months[v] for v in values), np.int64, len(values))
    return _axis(ordinals, "M", "text")


def _month_ordinal(text: str) -> int:
    """2024-01 -> its monthly Period ordinal (months since 1970-01); the text is checked."""
    return (int(text[:4]) - 1970) * 12 + int(text[5:7]) - 1


def month_texts(first: int, count: int) -> pd.Index | None:
    """Labels 2024-01 ... for ``count`` month ordinals from ``first`` (what str() of a
    monthly Period gives), or None outside years 1000-9999."""
    if not (1000 <= 1970 + first // 12 and 1970 + (first + count) // 12 <= 9999):
        return None
    texts = [f"{1970 + o // 12}-{o % 12 + 1:02d}" for o in range(first, first + count)]
    return pd.Index(texts, dtype=object)  # as present_labels gives them


def _axis(ordinals: np.ndarray, base: str, kind: str) -> TimeAxis:
    first = int(ordinals.min())
    count = int(ordinals.max()) - first + 1
    row_codes = ordinals - first
    present = np.bincount(row_codes, minlength=count) > 0
    return TimeAxis(row_codes, base, first, count, kind, present)


#: Rows per chunk where a pass over millions of rows is split so that what it makes of each
#: chunk stays in the CPU cache (1 MB of int64)
ROW_CHUNK = 1 << 17


def _parse_datetimes(values: np.ndarray) -> TimeAxis:
    """Month ordinals when every timestamp is a month start (or every one a month end) at
    midnight, else day ordinals. Calendar maths runs on the few distinct days only. The rows
    are turned into day numbers chunk by chunk (range and midnight check while the chunk is
    in cache), and the day numbers into period codes in place."""
    chunks = [slice(start, start + ROW_CHUNK) for start in range(0, len(values), ROW_CHUNK)]
    codes = np.empty(len(values), dtype=np.int64)  # day numbers first, then the codes
    lo, hi, midnight = None, None, True
    for chunk in chunks:
        days = values[chunk].astype("datetime64[D]")
        midnight = midnight and bool((values[chunk] == days).all())
        numbers = days.view(np.int64)
        low, high = int(numbers.min()), int(numbers.max())
        lo = low if lo is None else min(lo, low)
        hi = high if hi is None else max(hi, high)
        codes[chunk] = numbers
    seen = np.zeros(hi - lo + 1, dtype=bool)
    for chunk in chunks:
        seen[codes[chunk] - lo] = True
    used = np.flatnonzero(seen)
    distinct = (used + lo).astype("datetime64[D]")
    months = distinct.astype("datetime64[M]")
    starts = (months.astype("datetime64[D]") == distinct).all()
    ends = ((distinct + np.timedelta64(1, "D")).astype("datetime64[M]") != months).all()
    if midnight and (starts or ends):
        base, ordinals = "M", months.view(np.int64)  # months since 1970-01 = Period[M] ordinals
    else:
        base, ordinals = "D", distinct.view(np.int64)
    first = int(ordinals.min())
    count = int(ordinals.max()) - first + 1
    present = np.zeros(count, dtype=bool)
    present[ordinals - first] = True
    table = np.zeros(hi - lo + 1, dtype=np.int64)
    table[used] = ordinals - first
    for chunk in chunks:
        codes[chunk] = table[codes[chunk] - lo]
    return TimeAxis(codes, base, first, count, "timestamp", present)


def _parse_dates(
    values: list[str], column: str, date_format: str, row_of
) -> tuple[np.ndarray, str]:
    """Text dates read with the format given for them, by the rule for datetimes: months when
    every one is a month start (or every one a month end) at midnight, else days."""
    stamps = []
    for n, text in enumerate(values):
        try:
            stamps.append(datetime.datetime.strptime(text.strip(), date_format))
        except ValueError:
            raise DateFormatError(column, text, date_format, row_of(n)) from None
    days = [pd.Period(stamp.date(), freq="D") for stamp in stamps]
    midnight = all(stamp.time() == datetime.time() for stamp in stamps)
    base = "M" if midnight and _month_dates(days) else "D"
    return np.array([p.asfreq(base).ordinal for p in days], dtype=np.int64), base


def _no_row(unique: int) -> None:
    return None


def _parse_uniques(
    uniques: pd.Index,
    column: str,
    kind: str,
    date_format: str | None = None,
    row_of=_no_row,
) -> tuple[np.ndarray, str]:
    """Ordinals (at the inferred base frequency) of the distinct values of a period column."""
    if kind == "timestamp":
        stamps = pd.DatetimeIndex(uniques)
        if stamps.tz is not None:
            stamps = stamps.tz_localize(None)
        month_start = (stamps.day == 1).all()
        month_end = stamps.is_month_end.all()
        midnight = (stamps.normalize() == stamps).all()
        base = "M" if midnight and (month_start or month_end) else "D"
        return stamps.to_period(base).asi8, base
    values = [v if isinstance(v, str) else str(v) for v in uniques]
    if date_format is not None:
        return _parse_dates(values, column, date_format, row_of)
    ambiguous = [n for n, text in enumerate(values) if _DAY_OR_MONTH_FIRST.match(text)]
    if ambiguous:
        n = min(ambiguous, key=lambda n: values[n])  # one value, whatever order values came in
        raise AmbiguousDateError(column, values[n], row_of(n))
    if all(_MONTH_TEXT.match(v) for v in values):  # the common case, without pandas parsing
        months = [_month_ordinal(v) for v in values]
        bad = [v for v in values if not 1 <= int(v[5:7]) <= 12]
        if bad:
            raise CellError(column, None, bad[0], "month_out_of_range", "period")
        return np.array(months, dtype=np.int64), "M"
    parsed: list[pd.Period] = []
    for v in values:
        try:
            p = pd.Period(v.strip())
        except (ValueError, TypeError):
            p = None
        if p is None or pd.isna(p):
            raise CellError(column, None, v, "unparsable_period", "period") from None
        parsed.append(p)
    codes = {freq_code(p.freq) for p in parsed}
    if len(codes) > 1:
        raise DataError(
            f"period column {column!r} mixes period lengths ({', '.join(sorted(codes))})"
        )
    base = codes.pop()
    if base == "D" and _month_dates(parsed):
        # Dates written as text (what read_csv leaves them as) are read as the same dates
        # would be as datetimes: monthly rows dated 2024-01-01 are months, not days.
        base = "M"
    return np.array([p.asfreq(base).ordinal for p in parsed], dtype=np.int64), base


def _month_dates(days: list[pd.Period]) -> bool:
    """Every day a month start, or every one a month end (the rule for datetimes)."""
    return all(p.day == 1 for p in days) or all(p.day == p.days_in_month for p in days)


#: Months in one period of each frequency (a mean Gregorian month is 30.436875 days).
MONTHS_IN = {"D": 1 / 30.436875, "W": 7 / 30.436875, "M": 1.0, "Q": 3.0, "Y": 12.0}


def months_in(code: str) -> float:
    return MONTHS_IN[code]


def calendar_days(labels: pd.PeriodIndex, func: str) -> np.ndarray:
    """Days (``days_in_period``) or Monday-Friday days (``business_days_in_period``) in each
    period, counted over its whole calendar span, as floats."""
    if not len(labels):
        return np.zeros(0)
    start = labels.asfreq("D", how="start").asi8  # days since 1970-01-01
    end = labels.asfreq("D", how="end").asi8 + 1
    if func == "days_in_period":
        return (end - start).astype(float)
    if func != "business_days_in_period":
        raise ValueError(func)
    return (_weekdays_before(end) - _weekdays_before(start)).astype(float)


def _weekdays_before(day: np.ndarray) -> np.ndarray:
    """Monday-Friday days from Monday 1969-12-29 (day -3) up to ``day``, exclusive: the same
    integer arithmetic the SQL compiler writes (sqlbuild.calendar_days)."""
    shifted = day + 3
    weeks, rest = np.floor_divide(shifted, 7), np.mod(shifted, 7)
    return weeks * 5 + np.minimum(rest, 5)


def grain_code(grain: str | None, base: str) -> str:
    if grain is None:
        return base
    if grain not in GRAINS:
        raise DataError(f"unknown grain {grain!r}; use one of {', '.join(GRAINS)}")
    code = GRAINS[grain]
    if _ORDER[code] < _ORDER[base]:
        raise DataError(f"grain {grain!r} is finer than the data's periods; choose a coarser grain")
    return code


@dataclass
class Coarsening:
    """How base periods map onto the output grain."""

    to_coarse: np.ndarray  # int64 per base period: index of its coarse period
    last_base: np.ndarray  # int64 per coarse period: the base period a stock is read at
    labels: pd.PeriodIndex  # one label per coarse period

    @property
    def first_base(self) -> np.ndarray:
        """int64 per coarse period: its first base period in the data's range."""
        return np.searchsorted(self.to_coarse, np.arange(len(self.last_base))).astype(np.int64)


def coarsen(axis: TimeAxis, grain: str) -> Coarsening:
    """Map base periods to the grain. A stock is read at a coarse period's last base period,
    or at the data's last period if the data ends inside it (a quarter to date)."""
    base_labels = axis.labels()
    coarse = base_labels.asfreq(grain) if grain != axis.base else base_labels
    ords = coarse.asi8
    to_coarse = (ords - ords[0]).astype(np.int64)
    n = int(to_coarse[-1]) + 1 if len(to_coarse) else 0
    last_base = np.zeros(n, dtype=np.int64)
    last_base[to_coarse] = np.arange(len(to_coarse))  # later base periods overwrite earlier
    labels = (
        pd.PeriodIndex.from_ordinals(np.arange(ords[0], ords[0] + n), freq=grain) if n else coarse
    )
    return Coarsening(to_coarse, last_base, labels)


def partial_periods(axis: TimeAxis | None, grain: str, kind: str) -> list:
    """The output periods the data covers only partly: the first and last period at ``grain``
    when the data's own first or last base period falls inside it (Apr-May of 2024Q2). Labels
    in the kind the result's period column has (``present_labels``). Both engines call this, so
    ``attrs["partial_periods"]`` agrees between them."""
    if axis is None or not axis.count or grain == axis.base:
        return []
    base = axis.labels()
    first, last = base[0], base[-1]
    partial = []
    for period in dict.fromkeys([first.asfreq(grain), last.asfreq(grain)]):
        if period.start_time < first.start_time or period.end_time > last.end_time:
            partial.append(period)
    if not partial:
        return []
    return list(present_labels(pd.PeriodIndex(partial, freq=grain), kind))


def present_labels(labels: pd.PeriodIndex, kind: str) -> pd.Index:
    """Return period labels in the same kind the caller gave: text, Period or Timestamp."""
    if kind == "text":
        return pd.Index([str(p) for p in labels], dtype=object)
    if kind == "timestamp":
        return pd.Index(labels.to_timestamp())
    return pd.Index(labels)
