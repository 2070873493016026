"""Static checks on a parsed formula: names, levels, types and the 'no previous period' depth.

A formula mixes two levels. Row level: datapoints, one value per entity and period.
Period level: aggregates and KPI references, one value per period (and group). Aggregates
turn the first into the second; nothing turns it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import FormulaError, UnknownNameError
from .functions import FUNCTIONS
from .nodes import COMPARISON, LOGICAL, Binary, Call, Name, Node, Number, Unary

CONST, ROW, PERIOD = "constant", "row", "period"
NUMBER, BOOL = "number", "condition"


@dataclass
class Analysis:
    """What a bound formula needs and how it behaves."""

    kpis: set[str] = field(default_factory=set)
    datapoints: set[str] = field(default_factory=set)
    level: str = CONST
    type: str = NUMBER


def names(node: Node) -> list[Name]:
    return [n for n in node.walk() if isinstance(n, Name)]


def analyse(
    node: Node,
    is_kpi: Callable[[str], bool],
    is_datapoint: Callable[[str], bool],
    expression: str = "",
) -> Analysis:
    """Check a formula against the names it may use; raise FormulaError at the first problem.

    ``is_kpi``/``is_datapoint`` decide what a bare name means. A name that is both is a KPI.
    """
    result = Analysis()

    def fail(message: str, at: Node) -> FormulaError:
        return FormulaError(message, expression, at.pos)

    def visit(n: Node, in_aggregate: bool) -> tuple[str, str]:  # (level, type)
        if isinstance(n, Number):
            return CONST, NUMBER
        if isinstance(n, Name):
            if is_kpi(n.name):
                if in_aggregate:
                    raise fail(
                        f"KPI {n.name!r} is one value per period and cannot be used inside an "
                        "aggregate; aggregate its datapoints instead",
                        n,
                    )
                result.kpis.add(n.name)
                return PERIOD, NUMBER
            if is_datapoint(n.name):
                result.datapoints.add(n.name)
                return ROW, NUMBER
            raise UnknownNameError(n.name, expression, n.pos)  # callers add suggestions
        if isinstance(n, Unary):
            level, typ = visit(n.operand, in_aggregate)
            want = BOOL if n.op == "not" else NUMBER
            if typ != want:
                raise fail(f"'{n.op}' needs a {want}, not a {typ}", n)
            return level, typ
        if isinstance(n, Binary):
            left_level, left_type = visit(n.left, in_aggregate)
            right_level, right_type = visit(n.right, in_aggregate)
            want = BOOL if n.op in LOGICAL else NUMBER
            for side, typ in ((n.left, left_type), (n.right, right_type)):
                if typ != want:
                    raise fail(f"'{n.op}' needs a {want} on each side, not a {typ}", side)
            level = _join(left_level, right_level, n, fail)
            return level, (BOOL if n.op in COMPARISON or n.op in LOGICAL else NUMBER)
        if isinstance(n, Call):
            spec = FUNCTIONS[n.func]
            if spec.kind == "aggregate":
                if in_aggregate:
                    raise fail(f"{n.func}() cannot be nested inside another aggregate", n)
                for i, arg in enumerate(n.args):
                    level, typ = visit(arg, True)
                    want = BOOL if i in spec.boolean_args else NUMBER
                    if typ != want:
                        what = "filter" if i else "value"
                        hint = (
                            f"; to count rows where a condition holds write {n.func}(x, condition)"
                            if typ == BOOL
                            else ""
                        )
                        raise fail(f"the {what} of {n.func}() must be a {want}{hint}", arg)
                return PERIOD, NUMBER
            levels, types = [], []
            for i, arg in enumerate(n.args):
                level, typ = visit(arg, in_aggregate)
                want = BOOL if i in spec.boolean_args else NUMBER
                if typ != want:
                    raise fail(f"argument {i + 1} of {n.func}() must be a {want}", arg)
                levels.append(level)
                types.append(typ)
            if n.func == "ever_before" and levels[0] != ROW:
                raise fail("ever_before() looks back over an entity's rows: give it datapoints", n)
            level = CONST
            for arg, lv in zip(n.args, levels):
                level = _join(level, lv, arg, fail)
            return level, (BOOL if n.func == "ever_before" else NUMBER)
        raise fail(f"unsupported node {type(n).__name__}", n)  # pragma: no cover

    level, typ = visit(node, False)
    if level == ROW:
        raise fail(
            "a KPI is one value per period: wrap the datapoints in an aggregate such as sum()",
            next(n for n in node.walk() if isinstance(n, Name) and is_datapoint(n.name)),
        )
    if typ != NUMBER:
        raise fail("a KPI formula must give a number, not a condition", node)
    result.level, result.type = level, typ
    return result


def _join(a: str, b: str, at: Node, fail) -> str:
    if a == CONST:
        return b
    if b == CONST or a == b:
        return a
    raise fail(
        "this mixes per-row datapoints with per-period values; aggregate the datapoints first",
        at,
    )


def gap_depth(node: Node) -> int:
    """How many leading periods a row-level expression is undefined for (one per previous()).

    Aggregates use it to report a missing value, not 0, where their input needs a period
    before the data starts. coalesce() closes the gap. (KPI references cannot appear inside an
    aggregate, so only datapoints matter here.)
    """
    if isinstance(node, Call):
        if node.func == "previous":
            return gap_depth(node.args[0]) + 1
        if node.func == "ever_before":
            return 0
        if node.func == "coalesce":
            return min(gap_depth(a) for a in node.args)
    return max((gap_depth(c) for c in node.children()), default=0)
