"""The rule that every worked example still computes what it says."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import DataError, Diagnostic, KPIError
from ..worked_examples import compare_expected, example_result
from .base import KPIRule, Library, issue

if TYPE_CHECKING:
    from ..model import KPI


class WorkedExamplesHold(KPIRule):
    """Each worked example evaluates, and the engine gives exactly the rows and values it
    expects (to its ``decimals``)."""

    name = "worked-examples-hold"
    runs_examples = True

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        if kpi.expression is None:
            return []
        out = []
        for i, example in enumerate(kpi.examples):
            if not isinstance(example, Mapping):
                continue
            field = f"examples[{i}]"
            try:
                result = example_result(library.kpis, kpi, example)
            except (DataError, KPIError) as e:
                out.append(issue(kpi, ("examples", i), field, f"cannot evaluate: {e}"))
                continue
            expected = example.get("expected")
            decimals = int(example.get("decimals", 2))
            for problem, where in compare_expected(kpi.id, result, expected, example, decimals):
                out.append(
                    issue(kpi, ("examples", i, "expected", *where), f"{field}.expected", problem)
                )
        return out
