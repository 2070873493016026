"""Rules that bind each formula to the library: names resolve, inputs are used, no cycles.

Binding is where a KPI gets its parsed formula: ``FormulasBind`` replaces each KPI of the
library by its bound copy and records the dependency graph that ``NoFormulaCycles`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ..errors import Diagnostic, FormulaError, UnknownNameError, did_you_mean
from ..formula import Name, Node, analyse, parse
from ..loading import position_of, value_position
from .base import KPIRule, Library, LibraryRule, issue, issue_at_value

if TYPE_CHECKING:
    from ..formula.analysis import Analysis
    from ..model import KPI, Datapoint


class FormulasBind(LibraryRule):
    """Each formula (and each ``at_grain`` formula) parses and names only KPIs and the
    datapoints its file declares; every declared datapoint is used, directly or through the
    KPIs the formula references."""

    name = "formulas-bind"

    def check(self, library: Library) -> list[Diagnostic]:
        kpis = library.kpis
        out: list[Diagnostic] = []
        for kpi in list(kpis.values()):
            text = kpi.formula_text
            if not isinstance(text, str) or not text.strip():
                continue  # the schema reports a missing expression
            declared = kpi.datapoints
            try:
                node, result = _analysed(text, kpis, declared)
            except FormulaError as e:
                if isinstance(e, UnknownNameError):
                    hint = did_you_mean(e.name, kpis, declared)
                    e = FormulaError(
                        f"unknown name {e.name!r}: neither a KPI id nor a datapoint declared in "
                        f"this file{hint}",
                        e.expression,
                        e.position,
                    )
                line, col = _formula_position(kpi, e)
                out.append(Diagnostic(str(kpi.path), line, col, "formula.expression", e.render()))
                continue
            graph = library.graph[kpi.id] = set(result.kpis)
            grain_expressions: dict[str, Node] = {}
            for grain, other in kpi.at_grain_texts.items():
                try:
                    alt, found = _analysed(other, kpis, declared)
                except FormulaError as e:
                    where = ("formula", "at_grain", grain)
                    out.append(issue_at_value(kpi, where, f"formula.at_grain.{grain}", e.render()))
                    continue
                grain_expressions[grain] = alt
                graph |= found.kpis
                result.datapoints |= found.datapoints
            kpis[kpi.id] = replace(kpi, expression=node, grain_expressions=grain_expressions)
            below, replaced = _datapoints_below(result.kpis, kpis)
            if replaced:
                continue  # an override below may use other inputs; this file is not at fault
            unused = set(declared) - result.datapoints - below
            for name in sorted(unused):
                i = next(i for i, dp in kpi.declared_datapoints if dp.name == name)
                out.append(
                    issue(
                        kpi,
                        ("datapoints", i, "name"),
                        f"datapoints[{i}].name",
                        f"datapoint {name!r} is declared but the formula never uses it "
                        "(directly or through the KPIs it references)",
                    )
                )
        return out


def _analysed(
    text: str, kpis: Mapping[str, KPI], declared: Mapping[str, Datapoint]
) -> tuple[Node, Analysis]:
    """A formula parsed and checked against the names it may use (raises FormulaError)."""
    node = parse(text.strip())
    found = analyse(
        node,
        is_kpi=kpis.__contains__,
        is_datapoint=declared.__contains__,
        expression=text.strip(),
    )
    return node, found


def _formula_position(kpi: KPI, error: FormulaError) -> tuple[int, int]:
    """The file position of a formula error: the offending token when the formula is on one
    line, else the first line of its text."""
    line, col = value_position(kpi.data, ("formula", "expression"))
    text = kpi.formula_text
    if error.position is not None and "\n" not in text.strip() and text == text.lstrip():
        key_line, _ = position_of(kpi.data, ("formula", "expression"))
        if line == key_line:
            return line, col + error.position
    return line, col


def _datapoints_below(ids: set[str], kpis: Mapping[str, KPI]) -> tuple[set[str], bool]:
    """Datapoints of every KPI these depend on, and whether any of them is an override."""
    out: set[str] = set()
    replaced = False
    stack, seen = list(ids), set()
    while stack:
        kpi_id = stack.pop()
        if kpi_id in seen or kpi_id not in kpis:
            continue
        seen.add(kpi_id)
        out |= set(kpis[kpi_id].datapoints)
        replaced = replaced or bool(kpis[kpi_id].overridden)
        stack.extend(_names_in(kpis[kpi_id], kpis))
    return out, replaced


def _names_in(kpi: KPI, kpis: Mapping[str, KPI]) -> set[str]:
    try:
        node = kpi.expression or parse(kpi.formula_text)
    except FormulaError:
        return set()
    return {n.name for n in node.walk() if isinstance(n, Name) and n.name in kpis}


class NoFormulaCycles(LibraryRule):
    """No formula reaches itself through the KPIs it references; each cycle is reported
    once, naming every KPI on it, and its KPIs are left unbound (they cannot be evaluated)."""

    name = "no-formula-cycles"

    def check(self, library: Library) -> list[Diagnostic]:
        graph, kpis = library.graph, library.kpis
        state: dict[str, int] = {}  # 1 = on the stack, 2 = done
        reported: set[frozenset[str]] = set()
        out: list[Diagnostic] = []

        def visit(node: str, stack: list[str]) -> None:
            state[node] = 1
            stack.append(node)
            for dep in sorted(graph.get(node, ())):
                if state.get(dep) == 1:
                    cycle = stack[stack.index(dep) :] + [dep]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        out.append(
                            issue(
                                kpis[cycle[0]],
                                ("formula", "expression"),
                                "formula.expression",
                                "formula dependency cycle: " + " -> ".join(cycle),
                            )
                        )
                elif dep in graph and state.get(dep) is None:
                    visit(dep, stack)
            stack.pop()
            state[node] = 2

        for node in sorted(graph):
            if state.get(node) is None:
                visit(node, [])
        for kpi_id in {k for cycle in reported for k in cycle}:
            kpis[kpi_id] = replace(kpis[kpi_id], expression=None)  # a cycle cannot be evaluated
        return out


class FunctionsComputable(KPIRule):
    """Every function a formula calls is computed by the engine and drawn by the text,
    LaTeX and MathML outputs (``backends.unsupported_functions``): found when the library is
    validated, not when someone first evaluates the KPI. Loads the engine, so it runs with
    the worked examples."""

    name = "functions-computable"
    runs_examples = True

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        from ..backends import unsupported_functions

        return [
            issue_at_value(
                kpi,
                ("formula", "expression"),
                "formula.expression",
                f"{gap.function}() cannot be computed by the {gap.backend}: {gap.reason}",
            )
            for gap in unsupported_functions(kpi)
        ]
