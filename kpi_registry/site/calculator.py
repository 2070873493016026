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


def calculator_for(registry: Registry, kpi: KPI) -> Calculator | None:
    node = kpi.expression
    if node is None:
        return None
    try:
        function = to_js_function(node)
    except NotScalar:
        return None
    names = list(dict.fromkeys(n.name for n in node.walk() if isinstance(n, Name)))
    if not names:
        return None
    defaults = _defaults(kpi, names)
    datapoints = kpi.datapoints
    fields = []
    for name in names:
        if name in registry:
            other = registry[name]
            fields.append(
                Field(name, other.name, other.summary, other.unit, defaults.get(name, ""), name)
            )
        else:
            dp = datapoints.get(name)
            fields.append(
                Field(
                    name,
                    name.replace("_", " "),
                    dp.description if dp else "",
                    dp.unit if dp else "",
                    defaults.get(name, ""),
                    None,
                )
            )
    return Calculator(fields, _script(kpi, function))


def _defaults(kpi: KPI, names: list[str]) -> dict[str, str]:
    for example in kpi.examples:
        data = example.get("data")
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
