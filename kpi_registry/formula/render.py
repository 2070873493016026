"""Outputs of the AST other than evaluation: plain text, LaTeX and JavaScript.

One small visitor per output, as in sqlglot: each dispatches on the same node types through
its own table and only decides how to spell them (see ``dispatch``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .dispatch import each, function_table, method_table, node_table
from .functions import AGGREGATES, AVERAGE_MONTH, FUNCTIONS
from .nodes import Binary, Call, Name, Node, Number, Unary

#: Binding strength, loosest first; used to add only the parentheses that are needed (by
#: every output that writes operators: text, LaTeX, MathML and the site's line breaking).
PRECEDENCE = {
    "or": 1,
    "and": 2,
    "not": 3,
    "=": 4,
    "!=": 4,
    "<": 4,
    "<=": 4,
    ">": 4,
    ">=": 4,
    "+": 5,
    "-": 5,
    "*": 6,
    "/": 6,
    "neg": 7,
    "^": 8,
}
ATOM = 9

_PRECEDENCE_OF = node_table(
    {
        Number: lambda n: PRECEDENCE["neg"] if n.value < 0 else ATOM,
        Name: lambda n: ATOM,
        Unary: lambda n: PRECEDENCE["not" if n.op == "not" else "neg"],
        Binary: lambda n: PRECEDENCE[n.op],
        Call: lambda n: ATOM,
    }
)


def precedence(node: Node) -> int:
    """How strongly a node binds as an operand (a negative number as a unary minus)."""
    return _PRECEDENCE_OF[type(node)](node)


def format_number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def needs_parens(child: Node, parent_op: str, right: bool) -> bool:
    """Whether ``child``, written as the left or right operand of ``parent_op``, needs
    parentheses to parse back into the same tree."""
    p, c = PRECEDENCE[parent_op], precedence(child)
    if c < p:
        return True
    if c == p:
        # a - (b - c), a / (b / c): left-associative ops need parens on the right;
        # ^ is right-associative and needs them on the left.
        return (
            (right and parent_op not in ("+", "*", "and", "or")) if parent_op != "^" else not right
        )
    return False


def is_fraction(n: Node) -> bool:
    """A division, which LaTeX and MathML draw as a fraction (no parentheses needed)."""
    return isinstance(n, Binary) and n.op == "/"


def to_text(node: Node) -> str:
    """Canonical formula text; parsing it again gives the same AST."""
    return _TEXT_NODES[type(node)](node)


def _text_unary(node: Unary) -> str:
    inner = to_text(node.operand)
    if precedence(node.operand) < precedence(node):
        inner = f"({inner})"
    return f"not {inner}" if node.op == "not" else f"-{inner}"


def _text_binary(node: Binary) -> str:
    left, right = to_text(node.left), to_text(node.right)
    if needs_parens(node.left, node.op, False):
        left = f"({left})"
    if needs_parens(node.right, node.op, True):
        right = f"({right})"
    return f"{left} {node.op} {right}"


def _text_call(node: Call) -> str:
    return TEXT_FUNCTIONS[node.func](node)


def _text_function(node: Call) -> str:
    return f"{node.func}({', '.join(to_text(a) for a in node.args)})"


_TEXT_NODES = node_table(
    {
        Number: lambda n: format_number(n.value),
        Name: lambda n: n.name,
        Unary: _text_unary,
        Binary: _text_binary,
        Call: _text_call,
    }
)
#: Plain text writes every function the same way: its name and its arguments.
TEXT_FUNCTIONS = function_table(each(FUNCTIONS, _text_function))
TEXT_UNSUPPORTED_FUNCTIONS: dict[str, str] = {}


_LATEX_OPS = {
    "*": r" \times ",
    "-": " - ",
    "+": " + ",
    "=": " = ",
    "!=": r" \neq ",
    "<": " < ",
    "<=": r" \leq ",
    ">": " > ",
    ">=": r" \geq ",
    "and": r" \land ",
    "or": r" \lor ",
}


def latex_name(name: str) -> str:
    return r"\mathrm{" + name.replace("_", r"\_") + "}"


def to_latex(node: Node, label: Callable[[str], str] | None = None) -> str:
    """LaTeX for the site. ``label`` may turn a name into display text (e.g. a KPI's name)."""
    return _Latex(label).go(node)


class _Latex:
    def __init__(self, label: Callable[[str], str] | None):
        self.label = label

    def go(self, n: Node) -> str:
        return _LATEX_NODES[type(n)](self, n)

    def number(self, n: Number) -> str:
        return format_number(n.value)

    def name(self, n: Name) -> str:
        if self.label:
            text = self.label(n.name)
            if text and text != n.name:
                escaped = "".join("\\" + ch if ch in "#$%&_{}" else ch for ch in text)
                return r"\text{" + escaped + "}"
        return latex_name(n.name)

    def unary(self, n: Unary) -> str:
        inner = self.go(n.operand)
        if precedence(n.operand) < precedence(n):
            inner = rf"\left({inner}\right)"
        return (r"\lnot " if n.op == "not" else "-") + inner

    def binary(self, n: Binary) -> str:
        if n.op == "/":
            return rf"\frac{{{self.go(n.left)}}}{{{self.go(n.right)}}}"
        left, right = self.go(n.left), self.go(n.right)
        if n.op == "^":
            if precedence(n.left) <= PRECEDENCE["^"]:
                left = rf"\left({left}\right)"
            return f"{{{left}}}^{{{right}}}"
        if needs_parens(n.left, n.op, False) and not is_fraction(n.left):
            left = rf"\left({left}\right)"
        if needs_parens(n.right, n.op, True) and not is_fraction(n.right):
            right = rf"\left({right}\right)"
        return f"{left}{_LATEX_OPS[n.op]}{right}"

    def call(self, n: Call) -> str:
        return LATEX_FUNCTIONS[n.func](self, n)

    def function(self, n: Call) -> str:
        args = ", ".join(self.go(a) for a in n.args)
        func = n.func.replace("_", r"\_")
        return rf"\operatorname{{{func}}}\left({args}\right)"

    def abs(self, n: Call) -> str:
        return rf"\left|{self.go(n.args[0])}\right|"


_LATEX_NODES = method_table(_Latex)
#: LaTeX writes a function as an operator name with its arguments; abs() between bars.
LATEX_FUNCTIONS = function_table({**each(FUNCTIONS, _Latex.function), "abs": _Latex.abs})
LATEX_UNSUPPORTED_FUNCTIONS: dict[str, str] = {}


_JS_BINARY = {
    "+": "({l} + {r})",
    "-": "({l} - {r})",
    "*": "({l} * {r})",
    "/": "K.div({l}, {r})",
    "^": "K.pow({l}, {r})",
    "=": "({l} === {r})",
    "!=": "K.ne({l}, {r})",
    "<": "({l} < {r})",
    "<=": "({l} <= {r})",
    ">": "({l} > {r})",
    ">=": "({l} >= {r})",
    "and": "({l} && {r})",
    "or": "({l} || {r})",
}
_JS_CALL = {
    "abs": "Math.abs",
    "greatest": "K.greatest",
    "least": "K.least",
    "coalesce": "K.coalesce",
}

#: Runtime helpers the generated JavaScript calls. They follow the engines' rule for missing
#: values (see MISSING_VALUES in functions.py): NaN is the missing value; an input or a result
#: that is not a finite number is missing; x / 0, 0 ^ -1 and (-8) ^ 0.5 are missing; missing
#: in, missing out, also for ^ (Math.pow(NaN, 0) is 1); a comparison with a missing value is
#: false, also != (NaN !== x is true in JavaScript); and Math.pow(1, Infinity), NaN in
#: JavaScript, is 1 as in C, numpy and SQL.
JS_RUNTIME = """const K = {
  num: (x) => (typeof x === "number" && Number.isFinite(x) ? x : NaN),
  inputs: (v) => {
    const out = Object.create(null);
    for (const k of Object.keys(v)) out[k] = K.num(v[k]);
    return out;
  },
  div: (a, b) => (b === 0 || Number.isNaN(b) ? NaN : a / b),
  pow: (a, b) => {
    if (Number.isNaN(a) || Number.isNaN(b) || (a === 0 && b < 0)) return NaN;
    if (a < 0 && b !== Math.floor(b)) return NaN;
    if ((a === 1 || a === -1) && !Number.isFinite(b)) return 1;
    return Math.pow(a, b);
  },
  ne: (a, b) => !Number.isNaN(a) && !Number.isNaN(b) && a !== b,
  known: (xs) => xs.filter((x) => !Number.isNaN(x)),
  greatest: (...xs) => (K.known(xs).length ? Math.max(...K.known(xs)) : NaN),
  least: (...xs) => (K.known(xs).length ? Math.min(...K.known(xs)) : NaN),
  coalesce: (...xs) => { for (const x of xs) { if (!Number.isNaN(x)) return x; } return NaN; },
};"""


class NotScalar(ValueError):
    """The formula needs rows or periods (aggregates, previous) and has no scalar form: the
    function (``func``) and why (``reason``, from JS_UNSUPPORTED_FUNCTIONS) are fields."""

    def __init__(self, func: str, reason: str):
        self.func = func
        self.reason = reason
        super().__init__(f"{func}() needs rows or periods")


def to_js(node: Node) -> str:
    """A JavaScript expression over an object ``v`` of named inputs (for the calculator).

    Only formulas made of arithmetic, comparisons and scalar functions have one; the output
    contains no user text except names, which are emitted as JSON string keys.
    """
    return _JS_NODES[type(node)](node)


def _js_call(n: Call) -> str:
    handler = JS_FUNCTIONS.get(n.func)
    if handler is not None:
        return handler(n)
    if n.func in JS_UNSUPPORTED_FUNCTIONS:
        raise NotScalar(n.func, JS_UNSUPPORTED_FUNCTIONS[n.func])
    # A function the calculator neither computes nor declines would drop its pages' calculators
    # without a word; tests/test_backend_coverage.py fails first.
    raise NotImplementedError(f"no JavaScript for {n.func}(): add it to render.JS_FUNCTIONS")


def _js_runtime_call(n: Call) -> str:
    return f"{_JS_CALL[n.func]}({', '.join(to_js(a) for a in n.args)})"


def _js_if(n: Call) -> str:
    c, a, b = (to_js(x) for x in n.args)
    return f"({c} ? {a} : {b})"


_JS_NODES = node_table(
    {
        Number: lambda n: format_number(n.value),
        Name: lambda n: f"v[{json.dumps(n.name)}]",
        Unary: lambda n: f"(!{to_js(n.operand)})" if n.op == "not" else f"(-{to_js(n.operand)})",
        Binary: lambda n: _JS_BINARY[n.op].format(l=to_js(n.left), r=to_js(n.right)),
        Call: _js_call,
    }
)
#: What the calculator cannot compute from one period's figures, and why: its page then has
#: no calculator (site/calculator.py first turns sum() and mean() of a linear expression into
#: that expression over the period's totals or averages, so those still get one).
JS_UNSUPPORTED_FUNCTIONS: dict[str, str] = {
    **each(AGGREGATES, "an aggregate needs the period's rows; the calculator has one figure each"),
    "previous": "needs the period before; the calculator shows a single period",
    "ever_before": "needs the entity's earlier periods; the calculator shows a single period",
}
JS_FUNCTIONS: dict[str, Callable[[Call], str]] = function_table(
    {
        "if": _js_if,
        **each(_JS_CALL, _js_runtime_call),
        # The calculator's inputs are monthly figures: one month, of average length.
        "months_in_period": lambda n: "1",
        **each(AVERAGE_MONTH, lambda n: format_number(AVERAGE_MONTH[n.func])),
    },
    JS_UNSUPPORTED_FUNCTIONS,
)


def to_js_function(node: Node) -> str:
    """A JavaScript function of the named inputs giving the formula's value as the engines
    do: inputs and the result that are not finite numbers are missing (NaN)."""
    return f"function (v) {{ v = K.inputs(v); return K.num({to_js(node)}); }}"
