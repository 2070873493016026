"""Static checks on a parsed formula: names, levels, types and the 'no previous period' depth.

A formula mixes two levels. Row level: datapoints, one value per entity and period.
Period level: aggregates and KPI references, one value per period (and group). Aggregates
turn the first into the second; nothing turns it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import FormulaError, UnknownNameError
from .dispatch import each, function_table, method_table
from .functions import AGGREGATES, FUNCTIONS
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
    return _Analyser(is_kpi, is_datapoint, expression).run(node)


class _Analyser:
    def __init__(
        self,
        is_kpi: Callable[[str], bool],
        is_datapoint: Callable[[str], bool],
        expression: str,
    ):
        self.is_kpi, self.is_datapoint, self.expression = is_kpi, is_datapoint, expression
        self.result = Analysis()

    def fail(self, message: str, at: Node) -> FormulaError:
        return FormulaError(message, self.expression, at.pos)

    def run(self, node: Node) -> Analysis:
        level, typ = self.visit(node, False)
        if level == ROW:
            raise self.fail(
                "a KPI is one value per period: wrap the datapoints in an aggregate such as sum()",
                next(n for n in node.walk() if isinstance(n, Name) and self.is_datapoint(n.name)),
            )
        if typ != NUMBER:
            raise self.fail("a KPI formula must give a number, not a condition", node)
        self.result.level, self.result.type = level, typ
        return self.result

    def visit(self, n: Node, in_aggregate: bool) -> tuple[str, str]:  # (level, type)
        return _NODES[type(n)](self, n, in_aggregate)

    def number(self, n: Number, in_aggregate: bool) -> tuple[str, str]:
        return CONST, NUMBER

    def name(self, n: Name, in_aggregate: bool) -> tuple[str, str]:
        if self.is_kpi(n.name):
            if in_aggregate:
                raise self.fail(
                    f"KPI {n.name!r} is one value per period and cannot be used inside an "
                    "aggregate; aggregate its datapoints instead",
                    n,
                )
            self.result.kpis.add(n.name)
            return PERIOD, NUMBER
        if self.is_datapoint(n.name):
            self.result.datapoints.add(n.name)
            return ROW, NUMBER
        raise UnknownNameError(n.name, self.expression, n.pos)  # callers add suggestions

    def unary(self, n: Unary, in_aggregate: bool) -> tuple[str, str]:
        level, typ = self.visit(n.operand, in_aggregate)
        want = BOOL if n.op == "not" else NUMBER
        if typ != want:
            raise self.fail(f"'{n.op}' needs a {want}, not a {typ}", n)
        return level, typ

    def binary(self, n: Binary, in_aggregate: bool) -> tuple[str, str]:
        left_level, left_type = self.visit(n.left, in_aggregate)
        right_level, right_type = self.visit(n.right, in_aggregate)
        want = BOOL if n.op in LOGICAL else NUMBER
        for side, typ in ((n.left, left_type), (n.right, right_type)):
            if typ != want:
                raise self.fail(f"'{n.op}' needs a {want} on each side, not a {typ}", side)
        level = _join(left_level, right_level, n, self.fail)
        return level, (BOOL if n.op in COMPARISON or n.op in LOGICAL else NUMBER)

    def call(self, n: Call, in_aggregate: bool) -> tuple[str, str]:
        return ANALYSIS_FUNCTIONS[n.func](self, n, in_aggregate)

    def aggregate(self, n: Call, in_aggregate: bool) -> tuple[str, str]:
        spec = FUNCTIONS[n.func]
        if in_aggregate:
            raise self.fail(f"{n.func}() cannot be nested inside another aggregate", n)
        for i, arg in enumerate(n.args):
            level, typ = self.visit(arg, True)
            want = BOOL if i in spec.boolean_args else NUMBER
            if typ != want:
                what = "filter" if i else "value"
                hint = (
                    f"; to count rows where a condition holds write {n.func}(x, condition)"
                    if typ == BOOL
                    else ""
                )
                raise self.fail(f"the {what} of {n.func}() must be a {want}{hint}", arg)
        return PERIOD, NUMBER

    def arguments(self, n: Call, in_aggregate: bool) -> list[str]:
        """The levels of a function's arguments, each checked to be of the type it takes."""
        spec = FUNCTIONS[n.func]
        levels = []
        for i, arg in enumerate(n.args):
            level, typ = self.visit(arg, in_aggregate)
            want = BOOL if i in spec.boolean_args else NUMBER
            if typ != want:
                raise self.fail(f"argument {i + 1} of {n.func}() must be a {want}", arg)
            levels.append(level)
        return levels

    def joined(self, n: Call, levels: list[str]) -> str:
        level = CONST
        for arg, lv in zip(n.args, levels):
            level = _join(level, lv, arg, self.fail)
        return level

    def function(self, n: Call, in_aggregate: bool) -> tuple[str, str]:
        return self.joined(n, self.arguments(n, in_aggregate)), NUMBER

    def ever_before(self, n: Call, in_aggregate: bool) -> tuple[str, str]:
        levels = self.arguments(n, in_aggregate)
        if levels[0] != ROW:
            raise self.fail("ever_before() looks back over an entity's rows: give it datapoints", n)
        return self.joined(n, levels), BOOL


_NODES = method_table(_Analyser)
#: Aggregates turn rows into periods; every other function keeps its arguments' level and
#: gives a number, except ever_before(), a condition on an entity's earlier rows.
ANALYSIS_FUNCTIONS = function_table(
    {
        **each(FUNCTIONS, _Analyser.function),
        **each(AGGREGATES, _Analyser.aggregate),
        "ever_before": _Analyser.ever_before,
    }
)


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
    if isinstance(node, Call) and node.func in _GAP_DEPTH:
        return _GAP_DEPTH[node.func](node)
    return max((gap_depth(c) for c in node.children()), default=0)


# The functions that change the gap; every other node has its deepest operand's.
_GAP_DEPTH: dict[str, Callable[[Call], int]] = {
    "previous": lambda n: gap_depth(n.args[0]) + 1,
    "ever_before": lambda n: 0,
    "coalesce": lambda n: min(gap_depth(a) for a in n.args),
}
