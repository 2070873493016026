"""What a validation rule is, the library it reads, and the runner that applies a list of them.

In the manner of dbt-semantic-interfaces' ``validations`` package: each rule is a small class
with a name and a scope, and its ``check`` returns the problems it finds as diagnostics
instead of raising, so one run reports every problem in every file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, ClassVar

from ..errors import Diagnostic, Report
from ..loading import position_of, value_position

if TYPE_CHECKING:
    from ..model import KPI, Category


class Scope(Enum):
    """When a rule runs and what it sees."""

    #: one definition, as its file is read (also a file later dropped as a duplicate id)
    FILE = "file"
    #: one definition, once every file is read (it may look the others up in the library)
    KPI = "kpi"
    #: the whole library at once
    LIBRARY = "library"


@dataclass
class Library:
    """What the rules read: the loaded KPIs, the taxonomy, and the formula dependency graph
    (filled in by the rule that binds the formulas, read by the rules after it)."""

    kpis: dict[str, KPI]
    categories: dict[str, Category] = field(default_factory=dict)
    graph: dict[str, set[str]] = field(default_factory=dict)


class Rule(ABC):
    """A validation rule: ``name`` (kebab-case, stable), ``scope``, and ``check``."""

    name: ClassVar[str]
    scope: ClassVar[Scope]
    #: re-computes worked examples (loads the engine): runs only when examples are asked for
    runs_examples: ClassVar[bool] = False

    def __repr__(self) -> str:
        return f"<rule {self.name}>"


class KPIRule(Rule):
    """A rule about one definition at a time."""

    scope: ClassVar[Scope] = Scope.KPI

    @abstractmethod
    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        """The problems of this definition."""


class LibraryRule(Rule):
    """A rule about the library as a whole (names that must mean one thing, formula cycles)."""

    scope: ClassVar[Scope] = Scope.LIBRARY

    @abstractmethod
    def check(self, library: Library) -> list[Diagnostic]:
        """The problems across the library."""


def issue(kpi: KPI, where: tuple, field_path: str, message: str) -> Diagnostic:
    """A diagnostic at the key of a field of a definition (``where`` as a path of keys)."""
    line, col = position_of(kpi.data, where)
    return Diagnostic(str(kpi.path), line, col, field_path, message)


def issue_at_value(kpi: KPI, where: tuple, field_path: str, message: str) -> Diagnostic:
    """A diagnostic where the value of a field starts (inside a formula, a link...)."""
    line, col = value_position(kpi.data, where)
    return Diagnostic(str(kpi.path), line, col, field_path, message)


def check_file(rules: Iterable[Rule], kpi: KPI, library: Library, report: Report) -> None:
    """Apply the FILE rules to a definition just read."""
    for rule in rules:
        if rule.scope is Scope.FILE:
            report.extend(rule.check(kpi, library))  # type: ignore[attr-defined]


def check_library(
    rules: Sequence[Rule], library: Library, report: Report, *, examples: bool
) -> None:
    """Apply the KPI and LIBRARY rules in their order. Consecutive KPI rules run together,
    KPI by KPI, so a definition's problems stay together in the report."""
    todo = [r for r in rules if r.scope is not Scope.FILE and (examples or not r.runs_examples)]
    i = 0
    while i < len(todo):
        rule = todo[i]
        if isinstance(rule, LibraryRule):
            report.extend(rule.check(library))
            i += 1
            continue
        group: list[KPIRule] = []
        while i < len(todo) and isinstance(todo[i], KPIRule):
            group.append(todo[i])  # type: ignore[arg-type]
            i += 1
        for kpi in library.kpis.values():
            for each in group:
                report.extend(each.check(kpi, library))
