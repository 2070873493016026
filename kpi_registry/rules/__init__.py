"""Validation rules: what a definition and the library must satisfy, one class a rule.

``RULES`` is the list ``registry.collect`` applies, in this order (the order of the report):
FILE rules as each file is read, then KPI and LIBRARY rules once every file is read. A new
rule is a class in the module of its area (or a new module) plus its line here, and its
tests in tests/test_rules.py.
"""

from __future__ import annotations

from .base import (
    KPIRule,
    Library,
    LibraryRule,
    Rule,
    Scope,
    check_file,
    check_library,
    issue,
    issue_at_value,
)
from .datapoints import DatapointsConsistent
from .examples import WorkedExamplesHold
from .fields import (
    FiniteNumbers,
    IdMatchesFileName,
    MatchesSchema,
    NothingUnfinished,
    RequiredAttributes,
    SafeLinks,
    TextsNotBlank,
    link_problem,
)
from .formulas import FormulasBind, FunctionsComputable, NoFormulaCycles
from .references import KnownCategories, KnownReferences, references

RULES: tuple[Rule, ...] = (
    # FILE: as each file is read
    MatchesSchema(),
    IdMatchesFileName(),
    TextsNotBlank(),
    FiniteNumbers(),
    SafeLinks(),
    # KPI and LIBRARY: once every file is read
    NothingUnfinished(),
    KnownCategories(),
    KnownReferences(),
    RequiredAttributes(),
    DatapointsConsistent(),
    FormulasBind(),
    NoFormulaCycles(),
    FunctionsComputable(),
    WorkedExamplesHold(),
)

__all__ = [
    "RULES",
    "DatapointsConsistent",
    "FiniteNumbers",
    "FormulasBind",
    "FunctionsComputable",
    "IdMatchesFileName",
    "KPIRule",
    "KnownCategories",
    "KnownReferences",
    "Library",
    "LibraryRule",
    "MatchesSchema",
    "NoFormulaCycles",
    "NothingUnfinished",
    "RequiredAttributes",
    "Rule",
    "SafeLinks",
    "Scope",
    "TextsNotBlank",
    "WorkedExamplesHold",
    "check_file",
    "check_library",
    "issue",
    "issue_at_value",
    "link_problem",
    "references",
]
