"""The in-page calculator: input fields for a formula's names, JavaScript from its AST.

The script is generated from the parsed formula by ``render.to_js`` (the same AST the engine
evaluates), never from text a visitor types: the page only reads numbers from the fields. A
formula that needs rows or periods (``sum``, ``previous`` ...) has no scalar form and so no
calculator; one made of KPI references, such as Net Revenue Retention, asks for those KPIs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from ..formula import JS_RUNTIME, Name, NotScalar, to_js_function
from ..formula.dispatch import node_table
from ..formula.nodes import Binary, Call, Node, Number, Unary
from ..model import KPI
from ..registry import Registry


@dataclass
class Field:
    name: str  # the formula name, also the key in the script's input object
    label: str
    hint: str
    unit: str
    default: str  # pre-filled from a scalar worked example, so a result shows at once
    kpi_id: str | None  # set when the input is another KPI (the label links to it)
    minimum: float | None = None  # the valid range: outside it the result is a warning
    maximum: float | None = None


@dataclass
class Calculator:
    fields: list[Field]
    script: str  # one inline <script> body registering this KPI's function

    @property
    def csp_hash(self) -> str:
        """The script's source for the page's Content-Security-Policy ('sha256-...'), so that
        the policy allows this one inline script and no other."""
        digest = hashlib.sha256(self.script.encode("utf-8")).digest()
        return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


#: Aggregates whose one argument, when it is linear in datapoints, the calculator can take as
#: the period's figures: sum(a - b) is (total a) - (total b), mean(0.5 * a + 0.5 * b) is
#: 0.5 * (average a) + 0.5 * (average b). Filters, counts, medians and time functions need rows.
_AGGREGATES = {"sum": "total", "mean": "average"}


def _linear(node: Node, datapoints) -> bool:
    """Whether a node is a linear combination of datapoints (constants may scale it)."""
    return _LINEAR[type(node)](node, datapoints)


def _linear_binary(node: Binary, datapoints) -> bool:
    if node.op in ("+", "-"):
        return _linear(node.left, datapoints) and _linear(node.right, datapoints)
    if node.op == "*":
        return (_constant(node.left) and _linear(node.right, datapoints)) or (
            _constant(node.right) and _linear(node.left, datapoints)
        )
    if node.op == "/":
        return _constant(node.right) and _linear(node.left, datapoints)
    return False


_LINEAR = node_table(
    {
        Number: lambda node, datapoints: True,
        Name: lambda node, datapoints: node.name in datapoints,
        Unary: lambda node, datapoints: node.op == "-" and _linear(node.operand, datapoints),
        Binary: _linear_binary,
        Call: lambda node, datapoints: False,
    }
)


def _constant(node: Node) -> bool:
    return not any(isinstance(n, Name) for n in node.walk())


def scalar_form(kpi: KPI) -> tuple[Node, dict[str, str]] | None:
    """The formula with each sum()/mean() of a linear expression replaced by that expression
    over the period's totals or averages, and each such name's role; None if it needs rows."""
    roles: dict[str, str] = {}
    clash = False

    def call(n: Call) -> Node:
        nonlocal clash
        if n.func in _AGGREGATES and len(n.args) == 1:
            if _linear(n.args[0], kpi.datapoints):
                for name in (m.name for m in n.args[0].walk() if isinstance(m, Name)):
                    clash |= roles.setdefault(name, _AGGREGATES[n.func]) != _AGGREGATES[n.func]
                return n.args[0]
            return n
        return Call(func=n.func, args=tuple(go(a) for a in n.args))

    def name(n: Name) -> Node:
        nonlocal clash
        clash |= roles.setdefault(n.name, "value") != "value"
        return n

    rewrite = node_table(
        {
            Number: lambda n: n,
            Name: name,
            Unary: lambda n: Unary(op=n.op, operand=go(n.operand)),
            Binary: lambda n: Binary(op=n.op, left=go(n.left), right=go(n.right)),
            Call: call,
        }
    )

    def go(n: Node) -> Node:
        return rewrite[type(n)](n)

    node = go(kpi.expression)
    return None if clash else (node, roles)


#: The functions whose value cannot be negative when their first ``n`` arguments cannot be
#: (0: always; None: all of them).
_NONNEGATIVE: dict[str, int | None] = {
    "count": 0,
    "abs": 0,
    "months_in_period": 0,
    "sum": 1,
    "mean": 1,
    "median": 1,
    "previous": 1,
    "greatest": None,
    "least": None,
}


def lower_bound(
    registry: Registry, kpi_id: str, seen: frozenset[str] = frozenset()
) -> float | None:
    """0 when a KPI cannot be negative: its formula adds, multiplies, divides or aggregates
    values that cannot be (datapoints declared valid from 0 up, counts, constants >= 0)."""
    if kpi_id in seen:
        return None
    kpi = registry[kpi_id]

    def name(n: Name) -> bool:
        if n.name in kpi.datapoints:
            low = kpi.datapoints[n.name].minimum
            return low is not None and low >= 0
        return n.name in registry and lower_bound(registry, n.name, seen | {kpi_id}) == 0

    def call(n: Call) -> bool:
        if n.func not in _NONNEGATIVE:
            return False  # a sign this check does not follow (if(), coalesce(), min()...)
        values = _NONNEGATIVE[n.func]
        return all(nonneg(a) for a in (n.args if values is None else n.args[:values]))

    table = node_table(
        {
            Number: lambda n: n.value >= 0,
            Name: name,
            Unary: lambda n: False,
            Binary: lambda n: n.op in ("+", "*", "/") and nonneg(n.left) and nonneg(n.right),
            Call: call,
        }
    )

    def nonneg(n: Node) -> bool:
        return table[type(n)](n)

    return 0.0 if kpi.expression is not None and nonneg(kpi.expression) else None


def calculator_for(registry: Registry, kpi: KPI) -> Calculator | None:
    if kpi.expression is None:
        return None
    scalar = scalar_form(kpi)
    if scalar is None:
        return None
    node, roles = scalar
    try:
        function = to_js_function(node)
    except NotScalar:
        return None
    names = list(dict.fromkeys(n.name for n in node.walk() if isinstance(n, Name)))
    if not names:
        return None
    defaults = _defaults(kpi, names) if all(roles.get(n) == "value" for n in names) else {}
    datapoints = kpi.datapoints
    fields = []
    for name in names:
        if name in registry:
            other = registry[name]
            fields.append(
                Field(
                    name,
                    other.name,
                    other.summary,
                    other.unit,
                    defaults.get(name, ""),
                    name,
                    minimum=lower_bound(registry, name),
                )
            )
        else:
            dp = datapoints.get(name)
            role = roles.get(name, "value")
            label = name.replace("_", " ")
            low, high = (dp.minimum, dp.maximum) if dp else (None, None)
            if role == "total":
                # a total of values from `low` up is at least `low` when low >= 0; no upper bound
                label, high = f"total {label} in the period", None
                low = low if low is not None and low >= 0 else None
            elif role == "average":
                label = f"average {label} per row"
            fields.append(
                Field(
                    name,
                    label,
                    dp.description if dp else "",
                    dp.unit if dp else "",
                    defaults.get(name, ""),
                    None,
                    minimum=low,
                    maximum=high,
                )
            )
    return Calculator(fields, _script(kpi, function))


def _defaults(kpi: KPI, names: list[str]) -> dict[str, str]:
    for example in kpi.examples:
        data = example.data
        if isinstance(data, dict) and all(isinstance(data.get(n), (int, float)) for n in names):
            return {n: _number(data[n]) for n in names}
    return {}


def _number(v: float) -> str:
    return str(int(v)) if float(v) == int(v) else repr(float(v))


def _script(kpi: KPI, function: str) -> str:
    """``kpiCalculators[id] = {unit, f}``; the site's calculator.js wires up the form."""
    if "</" in function or "<!--" in function:  # cannot happen: names are identifiers
        raise ValueError(f"unexpected markup in generated script for {kpi.id}")
    key = json.dumps(kpi.id).replace("<", "\\u003c")
    unit = json.dumps(kpi.unit).replace("<", "\\u003c")
    return (
        "(window.kpiCalculators = window.kpiCalculators || {})"
        f"[{key}] = {{unit: {unit}, f: {function}}};"
    )


def runtime_script() -> str:
    """The helpers generated code calls: the engines' rule for missing values in JavaScript
    (see ``formula.render.JS_RUNTIME``)."""
    return JS_RUNTIME + "\n"
