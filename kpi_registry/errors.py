"""Diagnostics shared by every layer.

Every problem a user can cause is reported as a :class:`Diagnostic` that points at a file,
a line and column, and a field path, so the message reads ``path:line:col: field: message``
and can be acted on without reading our code.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem found in a definition or in input data."""

    path: str = ""
    line: int = 0
    column: int = 0
    field: str = ""
    message: str = ""
    severity: str = "error"

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.line:
            where += f":{self.line}:{self.column or 1}"
        field_part = f" {self.field}:" if self.field else ""
        text = f"{where}:{field_part} {self.message}"
        return text if self.severity == "error" else f"{text} [{self.severity}]"


class KPIError(Exception):
    """Base class for every error this package raises on purpose."""


class DefinitionError(KPIError):
    """One or more definitions are invalid; carries all diagnostics, not only the first."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics: list[Diagnostic] = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class UnknownKPIError(KPIError, KeyError):
    """An id that is not in the registry; the message suggests near names."""

    def __init__(self, kpi_id: str, known: Iterable[str]):
        self.kpi_id = kpi_id
        self.suggestions = suggest(kpi_id, known)
        hint = f"; did you mean {or_list(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown KPI id {kpi_id!r}{hint}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class AmbiguousKPIError(KPIError, KeyError):
    """A name that is an alias of several KPIs: the caller must say which."""

    def __init__(self, name: str, candidates: Iterable[str]):
        self.name = name
        self.candidates = sorted(candidates)
        super().__init__(
            f"{name!r} is an alias of {len(self.candidates)} KPIs: "
            f"{or_list(self.candidates)}; give the id"
        )

    def __str__(self) -> str:
        return self.args[0]


class DataError(KPIError):
    """The data given to an evaluation does not fit the definition (column, type, period)."""


def shown_columns(columns: Iterable[object]) -> str:
    """A data set's columns as error messages list them (the first thirty)."""
    names = [str(c) for c in columns]
    return ", ".join(repr(n) for n in names[:30]) + (" ..." if len(names) > 30 else "")


class RequestColumnsError(DataError):
    """One column given in two roles of a request: a group column twice, or the period column
    again as a group or as the entity column. ``role`` is the request field ("by" or
    "entity"), ``clash`` "twice" or "period"; each front end names the field its own way
    (``by=`` in Python, ``--by`` on the command line)."""

    def __init__(self, role: str, column: str, clash: str):
        self.role, self.column, self.clash = role, column, clash
        super().__init__(f"{role} column {column!r} {self.problem}; {self.remedy}")

    @property
    def problem(self) -> str:
        return "is given twice" if self.clash == "twice" else "is the period column"

    @property
    def remedy(self) -> str:
        if self.clash == "twice":
            return "give each column once"
        if self.role == "by":
            return "results are per period"
        return "the entity column says whose row it is (customer, account...)"


class ColumnNotGivenError(DataError):
    """A formula needs a request column that was not given: ``parameter`` is "period"
    (previous(), days_in_period()...) or "entity" (a datapoint counted per entity...).
    ``reason`` says which KPI needs it and why, ``consequence`` what happens without it (if
    anything); each front end words how to give it."""

    def __init__(self, parameter: str, reason: str, consequence: str = ""):
        self.parameter, self.reason, self.consequence = parameter, reason, consequence
        remedy = f"pass {parameter}='your_{parameter}_column'"
        if parameter == "period":
            remedy += " (kpi eval: --period COL)"
        super().__init__(self.worded(remedy))

    def worded(self, remedy: str) -> str:
        """The message with ``remedy`` saying how to give the column."""
        return f"{self.reason}: {remedy}" + (f"; {self.consequence}" if self.consequence else "")


class MissingDatapointError(DataError):
    """The data has no column for a datapoint a formula reads (``mapped_to``: the column the
    request mapped it to, if any); ``columns`` are the data's. Front ends word the mapping."""

    def __init__(self, datapoint: str, mapped_to: str | None, columns: Iterable[object]):
        self.datapoint, self.mapped_to = datapoint, mapped_to
        self.columns = [str(c) for c in columns]
        super().__init__(self.worded(f"columns={{{datapoint!r}: 'your_column'}}"))

    def worded(self, mapping: str) -> str:
        """The message with ``mapping`` saying how to map the datapoint to a column."""
        mapped = f" (mapped to {self.mapped_to!r})" if self.mapped_to is not None else ""
        return (
            f"the data has no column for datapoint {self.datapoint!r}{mapped}; columns are "
            f"{shown_columns(self.columns)}. Map it with {mapping}"
        )


@dataclass(frozen=True)
class MissingColumn:
    """A datapoint a request reads that the data has no column for."""

    datapoint: str
    description: str
    unit: str
    mapped_to: str | None = None  # the column the request mapped it to, if any


class MissingColumnsError(DataError):
    """Every column a request needs and the data lacks, at once (not one per attempt)."""

    def __init__(self, missing: list[MissingColumn], columns: Iterable[str]):
        self.missing = list(missing)
        self.columns = [str(c) for c in columns]
        names = ", ".join(
            f"{m.datapoint!r}" + (f" (mapped to {m.mapped_to!r})" if m.mapped_to else "")
            for m in self.missing
        )
        plural = len(self.missing) > 1
        mapping = ", ".join(f"{m.datapoint!r}: 'your_column'" for m in self.missing)
        super().__init__(
            f"the data has no column for datapoint{'s' * plural} {names}; columns are "
            f"{_shown(self.columns)}. Map {'each' if plural else 'it'} with columns={{{mapping}}}"
            + "".join(f"\n  {m.datapoint}: {m.description} ({m.unit})" for m in self.missing)
        )


def _shown(columns: list[str], limit: int = 12) -> str:
    shown = ", ".join(repr(c) for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


class CellError(DataError):
    """One cell of the data that an engine cannot read as its column needs.

    ``column`` is the data's column, ``row`` the row label the engine saw (a DataFrame's
    index: for files read by pandas, the row's position from 0 in file order; None when the
    engine did not see rows), ``value`` the cell's content (None for an empty cell) and
    ``problem`` what is wrong with it: "empty", "not_numeric", "ends_before_start" (a
    subscription's end before its start; ``column`` is the end), "unparsable_period", or
    "month_out_of_range" (text such as 2024-13). ``role`` is the request role of the column
    ("entity", "period") or "". Front ends place the row (a CSV line, a file among several)
    and call :meth:`render` to word the rest; str() names the row as the engine saw it."""

    def __init__(self, column: str, row, value, problem: str, role: str = ""):
        self.column, self.problem, self.role = column, problem, role
        self.row, self.value = _plain(row), _plain(value)  # 11, not np.int64(11), in messages
        super().__init__(self.render(self.row))

    def render(self, row=None) -> str:
        """The message naming ``row`` (a label, or a row number counted by a front end), or
        no row at all when None: the front end has said where the cell is."""
        at = f" at row {row!r}" if row is not None else ""
        column = f"{self.role} column" if self.role else "column"
        if self.problem == "empty":
            return f"{column} {self.column!r} is empty{at}"
        if self.problem == "not_numeric":
            which = f"row {row!r}" if row is not None else "it"
            return f"column {self.column!r} must be numeric; {which} has {self.value!r}"
        if self.problem == "ends_before_start":
            return f"subscription{at} ends before it starts"
        if self.problem == "unparsable_period":
            return (
                f"{column} {self.column!r} has an unparsable period {self.value!r}{at}; "
                "use dates, pandas Periods, or text such as 2024-01, 2024Q1 or 2024"
            )
        if self.problem == "month_out_of_range":
            return f"{column} {self.column!r} has an unparsable period {self.value!r}{at}"
        raise ValueError(f"unknown cell problem {self.problem!r}")  # pragma: no cover


def _plain(value):
    """A NumPy number as the Python number it holds; anything else as it is (a datetime64
    would become an integer of nanoseconds)."""
    numpy_number = type(value).__module__ == "numpy" and getattr(value, "dtype", None) is not None
    return value.item() if numpy_number and value.dtype.kind in "biuf" else value


class ConversionError(DataError):
    """An engine that runs SQL (DuckDB) could not convert a value of the data to a number
    or a period. ``value`` is the text it could not convert when the engine names it (else
    None), ``detail`` the engine's own first line."""

    def __init__(self, detail: str, value: str | None = None):
        self.detail, self.value = detail, value
        super().__init__(f"a column could not be read as numbers or periods: {detail}")


class RowsError(DataError):
    """A data error about particular rows, carried as ``rows`` (the data's row labels);
    ``render(labels, what)`` words it with other labels, such as CSV lines."""

    rows: list

    def render(
        self, rows: list | None = None, what: str = "row", dropped: bool = False
    ) -> str:  # pragma: no cover
        raise NotImplementedError


class InvalidRowsError(RowsError):
    """Rows whose value of a datapoint lies outside its valid range (``valid: {min, max}``).

    ``rows`` are the data's row labels (a DataFrame's index; front ends turn them into CSV
    lines), ``values`` the values found there."""

    def __init__(
        self,
        datapoint: str,
        column: str,
        rows: list,
        values: list[float],
        minimum: float | None,
        maximum: float | None,
    ):
        self.datapoint, self.column = datapoint, column
        self.rows, self.values = rows, values
        self.minimum, self.maximum = minimum, maximum
        super().__init__(self.render())

    def render(self, rows: list | None = None, what: str = "row", dropped: bool = False) -> str:
        shown = rows if rows is not None else self.rows
        valid = range_text(self.minimum, self.maximum)
        listed = ", ".join(
            f"{what} {r} has {_num(v)}" for r, v in zip(shown[:10], self.values[:10], strict=False)
        )
        more = f" and {len(shown) - 10} more" if len(shown) > 10 else ""
        column = f" (column {self.column!r})" if self.column != self.datapoint else ""
        return f"datapoint {self.datapoint!r}{column} must be {valid}: {listed}{more}" + (
            "; those rows were left out, as asked"
            if dropped
            else ". Correct those rows, or compute on the others (drop_invalid=True; kpi eval "
            "--drop-invalid)"
        )


class InvalidCellsError(RowsError):
    """Entity-periods whose combined value of a datapoint lies outside its valid range
    (``valid: {per: entity_period}``): a customer's MRR summed from invoice lines below 0.

    ``cells`` are (entity, period) pairs, first in period then entity order, ``values`` their
    combined values, ``rows`` the data's row labels of the first of them."""

    def __init__(
        self,
        datapoint: str,
        column: str,
        cells: list[tuple],
        rows: list,
        values: list[float],
        minimum: float | None,
        maximum: float | None,
    ):
        self.datapoint, self.column = datapoint, column
        self.cells, self.rows, self.values = cells, rows, values
        self.minimum, self.maximum = minimum, maximum
        super().__init__(self.render())

    def render(self, rows: list | None = None, what: str = "rows", dropped: bool = False) -> str:
        shown = ", ".join(str(r) for r in (rows if rows is not None else self.rows)[:10])
        entity, period = self.cells[0]
        column = f" (column {self.column!r})" if self.column != self.datapoint else ""
        more = f" ({len(self.cells)} entity-periods in all)" if len(self.cells) > 1 else ""
        valid = range_text(self.minimum, self.maximum)
        head = (
            f"datapoint {self.datapoint!r}{column} must be {valid}"
            f" per entity and period: entity {entity!r} has {_num(self.values[0])} in {period}"
            f" ({what} {shown}){more}"
        )
        if dropped:
            return f"{head}; those entity-periods were read as having no rows, as asked"
        return (
            f"{head}. Correct those rows, or compute without them (drop_invalid=True; kpi eval "
            "--drop-invalid)"
        )


def range_text(minimum: float | None, maximum: float | None) -> str:
    """A valid range in words ("at least 0"), as every message about one says it."""
    if minimum is not None and maximum is not None:
        return f"between {_num(minimum)} and {_num(maximum)}"
    return f"at least {_num(minimum)}" if minimum is not None else f"at most {_num(maximum)}"


class UnorderedRowsError(RowsError):
    """Several rows of one entity in one period that a ``rows: last``/``first`` datapoint
    cannot choose between: no order column, or tied on it, with different values."""

    def __init__(
        self,
        datapoint: str,
        rule: str,
        order_by: str | None,
        order_column: str | None,
        entity,
        period: str,
        rows: list,
    ):
        self.datapoint, self.rule, self.order_by = datapoint, rule, order_by
        self.order_column, self.entity, self.period, self.rows = order_column, entity, period, rows
        super().__init__(self.render())

    def render(self, rows: list | None = None, what: str = "rows") -> str:
        shown = ", ".join(str(r) for r in (rows if rows is not None else self.rows)[:10])
        which = "latest" if self.rule == "last" else "earliest"
        head = (
            f"datapoint {self.datapoint!r} keeps each entity's {which} row in a period "
            f"(rows: {self.rule}), but entity {self.entity!r} has several rows in {self.period} "
            f"with different values ({what} {shown})"
        )
        if self.order_column is not None:
            return f"{head} and the same {self.order_column!r}: make that column tell them apart"
        if self.order_by:
            return f"{head} and the data has no column {self.order_by!r} to order them (order_by)"
        return f"{head} and its definition names no order_by column to order them"


class ContradictoryRowsError(RowsError):
    """One entity in one period with two flags set that its definition says exclude each
    other (``excludes``): a deal both won and lost."""

    def __init__(self, datapoint: str, other: str, entity, period: str, rows: list, cells: int):
        self.datapoint, self.other, self.entity, self.period = datapoint, other, entity, period
        self.rows, self.cells = rows, cells
        super().__init__(self.render())

    def render(self, rows: list | None = None, what: str = "rows", dropped: bool = False) -> str:
        shown = ", ".join(str(r) for r in (rows if rows is not None else self.rows)[:10])
        more = f" ({self.cells} entity-periods in all)" if self.cells > 1 else ""
        who = f"entity {self.entity!r} has" if self.entity is not None else "a row has"
        head = (
            f"{self.datapoint!r} and {self.other!r} exclude each other, but {who} both in "
            f"{self.period} ({what} {shown}){more}"
        )
        if dropped:
            return f"{head}; both were left out there, as asked"
        return (
            f"{head}. Correct those rows, or compute without them (drop_invalid=True; kpi eval "
            "--drop-invalid)"
        )


class GrainError(DataError):
    """A KPI asked for at a grain its formula does not hold at (``formula.grains``)."""

    def __init__(self, kpi_id: str, grain: str, grains, reason: str, asked_for: list[str]):
        self.kpi_id, self.grain, self.grains = kpi_id, grain, tuple(grains)
        self.reason, self.asked_for = reason, asked_for
        via = f" (used by {asked_for[0]!r})" if len(asked_for) > 1 else ""
        why = f": {reason}" if reason else ""
        why += f"; a definition can add a formula that is right per {grain} (formula.at_grain)"
        super().__init__(
            f"KPI {kpi_id!r}{via} is defined per {' or '.join(self.grains)}, not per {grain}{why}"
        )


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class TableNameError(DataError):
    """A table to read that is not [catalog.][schema.]table (a call, a subquery, a bad quote)."""

    EXAMPLE = 'give [catalog.][schema.]table, e.g. analytics.mrr or "My Schema"."Monthly MRR"'

    def __init__(self, table: str, reason: str):
        self.table = table
        self.reason = reason
        super().__init__(f"table {table!r} is not a table name: {reason}; {self.EXAMPLE}")


class FormulaError(KPIError):
    """A formula that cannot be parsed or does not make sense; points at the position."""

    def __init__(self, message: str, expression: str = "", position: int | None = None):
        self.message = message
        self.expression = expression
        self.position = position
        super().__init__(self.render())

    def render(self) -> str:
        if self.position is None or not self.expression:
            return self.message
        caret = " " * self.position + "^"
        return f"{self.message}\n    {self.expression}\n    {caret}"


class UnknownNameError(FormulaError):
    """A formula names something that is neither a KPI nor a datapoint it may use; ``name``
    is that name, for callers that suggest the one meant."""

    def __init__(self, name: str, expression: str = "", position: int | None = None):
        self.name = name
        super().__init__(f"unknown name {name!r}", expression, position)


def suggest(word: str, known: Iterable[str], *more: Iterable[str], n: int = 3) -> list[str]:
    """Near matches for a misspelt name among ``known`` (and ``more`` lists), best first.

    The ranking is difflib's (``get_close_matches``, cutoff 0.6); a large list is read
    through an index (see :class:`_Index`) so that thousands of broken references in a
    library of thousands of ids take seconds, not minutes."""
    lists = [_names(k) for k in (known, *more)]
    scored: list[tuple[float, str]] = []
    for names in lists:
        if len(names) <= _MOST_RATIOS:
            scored += _close(word, names, n)
        else:
            scored += _index(names).close(word, n)
    found = [name for _, name in heapq.nlargest(n, scored)]
    if not found and word:
        # prefix or substring hits help with abbreviations such as "expansion" -> expansion_*
        for names in lists:
            found += (
                [k for k in names if word in k]
                if len(names) <= _MOST_RATIOS
                else (_index(names).containing(word, n))
            )
        found = found[:n]
    return found


def did_you_mean(word: str, known: Iterable[str], *more: Iterable[str]) -> str:
    hits = suggest(word, known, *more)
    return f" (did you mean {or_list(hits)}?)" if hits else ""


_CUTOFF = 0.6  # difflib.get_close_matches's default
_FIRST = 6  # candidates read first: those sharing the most letter pairs with the word
_MOST_RATIOS = 10  # difflib ratios computed per look-up in a large list, at most


def _names(known: Iterable[str]) -> tuple[str, ...]:
    return known if isinstance(known, tuple) else tuple(known)


def _close(word: str, names: Sequence[str], n: int) -> list[tuple[float, str]]:
    """(ratio, name) of the n best names with a ratio of at least the cutoff, as
    difflib.get_close_matches ranks them."""
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(word)
    scored = []
    for name in names:
        matcher.set_seq1(name)
        if matcher.real_quick_ratio() >= _CUTOFF and matcher.quick_ratio() >= _CUTOFF:
            ratio = matcher.ratio()
            if ratio >= _CUTOFF:
                scored.append((ratio, name))
    return heapq.nlargest(n, scored)


def _pairs(word: str) -> set[str]:
    padded = f"\x02{word}\x03"
    return {padded[i : i + 2] for i in range(len(padded) - 1)}


class _Index:
    """Names prepared for many look-ups: letter counts (an upper bound on difflib's ratio,
    its own quick_ratio, for every name in one numpy step), the names holding each pair of
    letters, and the names joined for substring search.

    A look-up computes the exact ratio of the names sharing the most letter pairs with the
    word (a typo keeps most of them), then of the others in order of their upper bound,
    until no remaining name can beat the third best or a fixed number of ratios is spent.
    So a look-up costs a few numpy passes over the names plus at most 10 ratios: a typo
    finds what difflib over every name finds; only among many equally poor matches can
    the second or third suggestion differ."""

    def __init__(self, names: tuple[str, ...]):
        import numpy as np

        self.names = names
        self.column = {c: i for i, c in enumerate(sorted({c for name in names for c in name}))}
        counts = np.zeros((len(names), len(self.column)), dtype=np.int32)
        postings: dict[str, list[int]] = {}
        for row, name in enumerate(names):
            for c in name:
                counts[row, self.column[c]] += 1
            for pair in _pairs(name):
                postings.setdefault(pair, []).append(row)
        self.counts = counts
        self.lengths = np.array([len(name) for name in names], dtype=np.float64)
        self.postings = {pair: np.array(rows, dtype=np.int64) for pair, rows in postings.items()}
        self.joined = "\x00".join(names)
        self.starts = np.cumsum([0] + [len(name) + 1 for name in names[:-1]])

    def close(self, word: str, n: int) -> list[tuple[float, str]]:
        import numpy as np

        letters = np.zeros(len(self.column), dtype=np.int32)
        for c in word:
            if c in self.column:
                letters[self.column[c]] += 1
        total = self.lengths + len(word)
        with np.errstate(invalid="ignore", divide="ignore"):
            bound = np.minimum(
                2.0 * np.minimum(self.lengths, len(word)) / total,
                2.0 * np.minimum(self.counts, letters).sum(axis=1) / total,
            )
        bound = np.nan_to_num(bound, nan=1.0)  # two empty strings: difflib says 1.0
        rows = [self.postings[p] for p in _pairs(word) if p in self.postings]
        shared = np.bincount(np.concatenate(rows), minlength=len(self.names)) if rows else None
        order = _top(-bound, _FIRST + _MOST_RATIOS)  # enough for the loop below
        first: list[int] = []
        if shared is not None:
            shared = np.where(bound >= _CUTOFF, shared, -1)
            first = [i for i in _top(-shared, _FIRST) if shared[i] > 0]
        matcher = difflib.SequenceMatcher()
        matcher.set_seq2(word)
        best: list[tuple[float, str]] = []  # a heap of the n best so far
        done: set[int] = set()

        def read(row: int) -> None:
            done.add(row)
            matcher.set_seq1(self.names[row])
            ratio = matcher.ratio()
            if ratio >= _CUTOFF:
                item = (ratio, self.names[row])
                if len(best) < n:
                    heapq.heappush(best, item)
                else:
                    heapq.heappushpop(best, item)

        for row in first:
            read(row)
        for row in order:  # by upper bound: stop where none left can make the n best
            if len(done) >= _MOST_RATIOS or bound[row] < _CUTOFF:
                break
            if len(best) == n and bound[row] < best[0][0]:
                break
            if row not in done:
                read(row)
        return best

    def containing(self, word: str, n: int) -> list[str]:
        """The first n names that contain the word, in their order."""
        import numpy as np

        found: list[str] = []
        if "\x00" in word:
            return found
        at = self.joined.find(word)
        while at >= 0 and len(found) < n:
            row = int(np.searchsorted(self.starts, at, side="right")) - 1
            end = self.starts[row] + len(self.names[row])
            if at + len(word) <= end:
                found.append(self.names[row])
                at = self.joined.find(word, end + 1)
            else:
                at = self.joined.find(word, at + 1)
        return found


def _top(keys, k: int):
    """The rows of the k smallest keys, smallest first (ties in row order)."""
    import numpy as np

    if len(keys) > k:
        rows = np.argpartition(keys, k)[:k]
        return rows[np.lexsort((rows, keys[rows]))]
    return np.argsort(keys, kind="stable")


@lru_cache(maxsize=8)
def _index(names: tuple[str, ...]) -> _Index:
    return _Index(names)


def or_list(items: list[str]) -> str:
    quoted = [f"'{i}'" for i in items]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


@dataclass
class Report:
    """Collects diagnostics across many files so validation never stops at the first."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def add(self, path: str, line: int, column: int, field_path: str, message: str) -> None:
        self.diagnostics.append(Diagnostic(str(path), line, column, field_path, message))

    def warn(self, path: str, line: int, column: int, field_path: str, message: str) -> None:
        """Something to finish rather than a mistake (an error under ``kpi validate --strict``)."""
        self.diagnostics.append(
            Diagnostic(str(path), line, column, field_path, message, severity="warning")
        )

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "warning"]

    def extend(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics.extend(diagnostics)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def __bool__(self) -> bool:
        return bool(self.errors)
