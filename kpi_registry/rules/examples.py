"""The rule that every worked example still computes what it says."""

from __future__ import annotations

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
        for example in kpi.examples:
            field = f"examples[{example.index}]"
            try:
                result = example_result(library.kpis, kpi, example)
            except (DataError, KPIError) as e:
                out.append(issue(kpi, ("examples", example.index), field, f"cannot evaluate: {e}"))
                continue
            for problem, where in compare_expected(kpi.id, result, example):
                where = ("examples", example.index, "expected", *where)
                out.append(issue(kpi, where, f"{field}.expected", problem))
        return out
