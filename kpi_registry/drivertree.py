"""A KPI's driver tree: the KPIs, aggregates and datapoints its formula is built from.

Apart from ``attribution`` (which splits a change among these drivers with pandas) so that
`kpi show` and the site's structure need no dataframe library."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .formula import (
    AGGREGATES,
    CALENDAR_FUNCTIONS,
    SCALARS,
    TIME_FUNCTIONS,
    Binary,
    Call,
    Name,
    Node,
    Number,
    Unary,
    to_text,
)
from .formula.dispatch import each, function_table, node_table
from .model import KPI

# --------------------------------------------------------------------------------------
# The driver tree


@dataclass
class Driver:
    """One node of a KPI's driver tree: a KPI, an aggregate over rows, or a datapoint."""

    name: str  # KPI id, datapoint name, or the formula text of an aggregate
    kind: str  # "kpi" | "aggregate" | "previous" | "datapoint" | "column"
    operation: str = ""  # how the node combines its children ("ratio", "sum", "sum over rows")
    expression: str = ""
    children: list[Driver] = field(default_factory=list)

    def walk(self, depth: int = 0) -> Iterator[tuple[int, Driver]]:
        """(depth, driver) for this node and every node below it, parents first."""
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "operation": self.operation,
            "expression": self.expression,
            "children": [c.to_dict() for c in self.children],
        }


_OPERATION_WORDS = {"+": "sum", "-": "difference", "*": "product", "/": "ratio", "^": "power"}


def operation_of(node: Node) -> str:
    """A word for what a formula does at its top: ratio, product, sum, difference, a function."""
    return _OPERATION[type(node)](node)


def _binary_operation(node: Binary) -> str:
    if node.op in ("*", "/"):
        factors = product_factors(node, 1)
        if any(e < 0 for _, e in factors):
            return "ratio"
        moving = [f for f, _ in factors if not is_constant(f)]
        return operation_of(moving[0]) if len(moving) == 1 else "product"
    if node.op in ("+", "-"):
        return "sum" if all(s > 0 for _, s in sum_terms(node, 1)) else "difference"
    return _OPERATION_WORDS.get(node.op, node.op)


_OPERATION = node_table(
    {
        Number: lambda n: "constant",
        Name: lambda n: "reference",
        Unary: lambda n: "negation",
        Binary: _binary_operation,
        Call: lambda n: DRIVER_FUNCTIONS[n.func](n),
    }
)

#: Every function has a word, ever_before() too (it stands only inside an aggregate).
UNSUPPORTED_FUNCTIONS: dict[str, str] = {}
#: The word for what each function does as a node of the tree. Aggregates, previous() and the
#: period's calendar facts are leaves (LEAF_FUNCTIONS); the scalar functions are inner nodes
#: whose arguments are drivers.
DRIVER_FUNCTIONS = function_table(
    {
        **each(AGGREGATES, lambda n: f"{n.func} over rows"),
        **each([*SCALARS, *TIME_FUNCTIONS], lambda n: n.func),
    },
    UNSUPPORTED_FUNCTIONS,
)
LEAF_FUNCTIONS = frozenset([*AGGREGATES, "previous", "months_in_period", *CALENDAR_FUNCTIONS])


def driver_tree(kpis: Mapping[str, KPI], kpi_id: str) -> Driver:
    """The KPIs, aggregates and datapoints a KPI is built from, recursively."""
    kpi = kpis[kpi_id]
    if kpi.expression is None:
        return Driver(kpi_id, "kpi", "", kpi.formula_text)
    node = kpi.expression
    children: list[Driver] = []
    seen: set[str] = set()
    for leaf in period_inputs(node, kpis):
        if is_constant(leaf):  # months_in_period(): fixed within a grain
            continue
        child = _driver_of(leaf, kpis)
        if child.name not in seen:
            seen.add(child.name)
            children.append(child)
    if len(children) == 1 and children[0].expression == to_text(node):
        children = children[0].children  # sum(revenue): the KPI is its own aggregate
    return Driver(kpi_id, "kpi", operation_of(node), to_text(node), children)


def _driver_of(node: Node, kpis: Mapping[str, KPI]) -> Driver:
    if isinstance(node, Name):
        if node.name in kpis:
            return driver_tree(kpis, node.name)
        return Driver(node.name, "datapoint")
    text = to_text(node)
    if isinstance(node, Call) and node.func == "previous":
        inner = _driver_of(node.args[0], kpis) if not is_constant(node.args[0]) else None
        return Driver(text, "previous", "previous period", text, [inner] if inner else [])
    names = sorted({n.name for n in node.walk() if isinstance(n, Name)})
    return Driver(
        text, "aggregate", operation_of(node), text, [Driver(n, "datapoint") for n in names]
    )


def period_inputs(node: Node, kpis: Mapping[str, KPI]) -> list[Node]:
    """The KPI references and leaves of a period-level formula, in order of appearance."""
    if isinstance(node, Name) or is_leaf_call(node):
        return [node]
    out: list[Node] = []
    for child in node.children():
        out.extend(period_inputs(child, kpis))
    return out


def is_leaf_call(node: Node) -> bool:
    return isinstance(node, Call) and node.func in LEAF_FUNCTIONS


def is_constant(node: Node) -> bool:
    """No data below: a number, or arithmetic on numbers and months_in_period(). The days and
    business days of a period change from one month to the next, so they are drivers."""
    return not any(
        isinstance(n, Name) or (isinstance(n, Call) and n.func in CALENDAR_FUNCTIONS)
        for n in node.walk()
    )


def sum_terms(node: Node, sign: int) -> list[tuple[Node, int]]:
    """A chain of + and - as signed terms (one n-ary sum, however it is bracketed)."""
    if isinstance(node, Binary) and node.op in ("+", "-"):
        right = sign if node.op == "+" else -sign
        return [*sum_terms(node.left, sign), *sum_terms(node.right, right)]
    if isinstance(node, Unary) and node.op == "-":
        return sum_terms(node.operand, -sign)
    return [(node, sign)]


def product_factors(node: Node, power: int) -> list[tuple[Node, int]]:
    """A chain of * and / as factors with exponent +1 or -1 (one n-ary product)."""
    if isinstance(node, Binary) and node.op in ("*", "/"):
        right = power if node.op == "*" else -power
        return [*product_factors(node.left, power), *product_factors(node.right, right)]
    return [(node, power)]


def tree_text(tree: Driver) -> str:
    """The driver tree as indented lines: name, then what the node does."""
    lines = []
    for depth, d in tree.walk():
        what = d.operation or d.kind
        lines.append(f"{'  ' * (depth + 1)}{d.name}" + (f"  [{what}]" if what else ""))
    return "\n".join(lines)
