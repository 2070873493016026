"""Outputs of the AST other than evaluation: plain text, LaTeX and JavaScript.

One small visitor per output, as in sqlglot: each walks the same nodes and only decides how
to spell them.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .functions import AVERAGE_MONTH
from .nodes import Binary, Call, Name, Node, Number, Unary

# Binding strength, loosest first; used to add only the parentheses that are needed.
_PRECEDENCE = {
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
_ATOM = 9


def _prec(node: Node) -> int:
    if isinstance(node, Binary):
        return _PRECEDENCE[node.op]
    if isinstance(node, Unary):
        return _PRECEDENCE["not" if node.op == "not" else "neg"]
    if isinstance(node, Number) and node.value < 0:
        return _PRECEDENCE["neg"]
    return _ATOM


def format_number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _needs_parens(child: Node, parent_op: str, right: bool) -> bool:
    p, c = _PRECEDENCE[parent_op], _prec(child)
    if c < p:
        return True
    if c == p:
        # a - (b - c), a / (b / c): left-associative ops need parens on the right;
        # ^ is right-associative and needs them on the left.
        return (
            (right and parent_op not in ("+", "*", "and", "or")) if parent_op != "^" else not right
        )
    return False


def to_text(node: Node) -> str:
    """Canonical formula text; parsing it again gives the same AST."""
    if isinstance(node, Number):
        return format_number(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Unary):
        inner = to_text(node.operand)
        if _prec(node.operand) < _prec(node):
            inner = f"({inner})"
        return f"not {inner}" if node.op == "not" else f"-{inner}"
    if isinstance(node, Binary):
        left, right = to_text(node.left), to_text(node.right)
        if _needs_parens(node.left, node.op, False):
            left = f"({left})"
        if _needs_parens(node.right, node.op, True):
            right = f"({right})"
        return f"{left} {node.op} {right}"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(to_text(a) for a in node.args)})"
    raise TypeError(type(node).__name__)


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

    def name(n: str) -> str:
        if label:
            text = label(n)
            if text and text != n:
                escaped = "".join("\\" + ch if ch in "#$%&_{}" else ch for ch in text)
                return r"\text{" + escaped + "}"
        return latex_name(n)

    def go(n: Node) -> str:
        if isinstance(n, Number):
            return format_number(n.value)
        if isinstance(n, Name):
            return name(n.name)
        if isinstance(n, Unary):
            inner = go(n.operand)
            if _prec(n.operand) < _prec(n):
                inner = rf"\left({inner}\right)"
            return (r"\lnot " if n.op == "not" else "-") + inner
        if isinstance(n, Binary):
            if n.op == "/":
                return rf"\frac{{{go(n.left)}}}{{{go(n.right)}}}"
            left, right = go(n.left), go(n.right)
            if n.op == "^":
                if _prec(n.left) <= _PRECEDENCE["^"]:
                    left = rf"\left({left}\right)"
                return f"{{{left}}}^{{{right}}}"
            if _needs_parens(n.left, n.op, False) and not _is_frac(n.left):
                left = rf"\left({left}\right)"
            if _needs_parens(n.right, n.op, True) and not _is_frac(n.right):
                right = rf"\left({right}\right)"
            return f"{left}{_LATEX_OPS[n.op]}{right}"
        if isinstance(n, Call):
            if n.func == "abs":
                return rf"\left|{go(n.args[0])}\right|"
            args = ", ".join(go(a) for a in n.args)
            func = n.func.replace("_", r"\_")
            return rf"\operatorname{{{func}}}\left({args}\right)"
        raise TypeError(type(n).__name__)

    return go(node)


def _is_frac(n: Node) -> bool:
    return isinstance(n, Binary) and n.op == "/"


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
    """The formula needs rows or periods (aggregates, previous) and has no scalar form."""


def to_js(node: Node) -> str:
    """A JavaScript expression over an object ``v`` of named inputs (for the calculator).

    Only formulas made of arithmetic, comparisons and scalar functions have one; the output
    contains no user text except names, which are emitted as JSON string keys.
    """

    def go(n: Node) -> str:
        if isinstance(n, Number):
            return format_number(n.value)
        if isinstance(n, Name):
            return f"v[{json.dumps(n.name)}]"
        if isinstance(n, Unary):
            return f"(!{go(n.operand)})" if n.op == "not" else f"(-{go(n.operand)})"
        if isinstance(n, Binary):
            return _JS_BINARY[n.op].format(l=go(n.left), r=go(n.right))
        if isinstance(n, Call):
            if n.func == "if":
                c, a, b = (go(x) for x in n.args)
                return f"({c} ? {a} : {b})"
            if n.func == "months_in_period":
                return "1"  # the calculator's inputs are monthly figures
            if n.func in AVERAGE_MONTH:
                return format_number(AVERAGE_MONTH[n.func])  # an average month, likewise
            if n.func in _JS_CALL:
                return f"{_JS_CALL[n.func]}({', '.join(go(a) for a in n.args)})"
            raise NotScalar(f"{n.func}() needs rows or periods")
        raise TypeError(type(n).__name__)

    return go(node)


def to_js_function(node: Node) -> str:
    """A JavaScript function of the named inputs giving the formula's value as the engines
    do: inputs and the result that are not finite numbers are missing (NaN)."""
    return f"function (v) {{ v = K.inputs(v); return K.num({to_js(node)}); }}"
