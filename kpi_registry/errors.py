"""Diagnostics shared by every layer.

Every problem a user can cause is reported as a :class:`Diagnostic` that points at a file,
a line and column, and a field path, so the message reads ``path:line:col: field: message``
and can be acted on without reading our code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field


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
        hint = f"; did you mean {_or_list(self.suggestions)}?" if self.suggestions else ""
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
            f"{_or_list(self.candidates)}; give the id"
        )

    def __str__(self) -> str:
        return self.args[0]


class DataError(KPIError):
    """The data given to an evaluation does not fit the definition (column, type, period)."""


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


def suggest(word: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Near matches for a misspelt name, best first."""
    known = list(known)
    found = difflib.get_close_matches(word, known, n=n, cutoff=0.6)
    if not found:
        # prefix or substring hits help with abbreviations such as "expansion" -> expansion_*
        found = [k for k in known if word and (k.startswith(word) or word in k)][:n]
    return found


def did_you_mean(word: str, known: Iterable[str]) -> str:
    hits = suggest(word, known)
    return f" (did you mean {_or_list(hits)}?)" if hits else ""


def _or_list(items: list[str]) -> str:
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
