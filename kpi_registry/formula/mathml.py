"""MathML for the docs site: formulas drawn by the browser itself, with no script or font.

A visitor over the same AST as render.py's to_latex. Browsers render MathML Core natively, so
the site needs no math library at view time and makes no request for one. Every piece of text
that reaches the output (names, labels) is XML-escaped here.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from .nodes import Binary, Call, Name, Node, Number, Unary
from .render import _PRECEDENCE, _needs_parens, _prec, format_number

_OPS = {
    "+": "+",
    "-": "\u2212",  # minus sign
    "*": "\u00d7",  # multiplication sign
    "=": "=",
    "!=": "\u2260",
    "<": "&lt;",
    "<=": "\u2264",
    ">": "&gt;",
    ">=": "\u2265",
    "and": "and",
    "or": "or",
}
_APPLY = "<mo>&#x2061;</mo>"  # invisible "function application"


def _fenced(inner: str, left: str = "(", right: str = ")") -> str:
    return f"<mrow><mo>{left}</mo>{inner}<mo>{right}</mo></mrow>"


def _number(value: float) -> str:
    text = format_number(value)
    if text.startswith("-"):
        return f"<mrow><mo>\u2212</mo><mn>{text[1:]}</mn></mrow>"
    return f"<mn>{text}</mn>"


def to_mathml(
    node: Node,
    label: Callable[[str], str] | None = None,
    *,
    display: str = "block",
    name: str | None = None,
) -> str:
    """A ``<math>`` element for a formula.

    ``label`` may turn a name into display text (e.g. a KPI id into its name). ``name``, if
    given, is put on the left: ``name = formula``.
    """

    def ident(n: str) -> str:
        # Upright identifiers, words included: Chromium spaces operators around <mi> but not
        # around <mtext>, so labels are <mi> too.
        # An <mi> of two or more characters is upright by default; a single letter needs
        # mathvariant="normal" (it would be italic otherwise).
        text = label(n) if label else n
        if len(text) > 1:
            return f"<mi>{escape(text)}</mi>"
        return f'<mi mathvariant="normal">{escape(text)}</mi>'

    def go(n: Node) -> str:
        if isinstance(n, Number):
            return _number(n.value)
        if isinstance(n, Name):
            return ident(n.name)
        if isinstance(n, Unary):
            inner = go(n.operand)
            if _prec(n.operand) < _prec(n):
                inner = _fenced(inner)
            op = "<mo>not</mo>" if n.op == "not" else "<mo>\u2212</mo>"
            return f"<mrow>{op}{inner}</mrow>"
        if isinstance(n, Binary):
            if n.op == "/":
                return f"<mfrac><mrow>{go(n.left)}</mrow><mrow>{go(n.right)}</mrow></mfrac>"
            left, right = go(n.left), go(n.right)
            if n.op == "^":
                if _prec(n.left) <= _PRECEDENCE["^"]:
                    left = _fenced(left)
                return f"<msup><mrow>{left}</mrow><mrow>{right}</mrow></msup>"
            if _needs_parens(n.left, n.op, False) and not _is_frac(n.left):
                left = _fenced(left)
            if _needs_parens(n.right, n.op, True) and not _is_frac(n.right):
                right = _fenced(right)
            return f"<mrow>{left}<mo>{_OPS[n.op]}</mo>{right}</mrow>"
        if isinstance(n, Call):
            if n.func == "abs":
                return _fenced(go(n.args[0]), "|", "|")
            args = "<mo>,</mo>".join(go(a) for a in n.args)
            return f"<mrow><mi>{escape(n.func)}</mi>{_APPLY}{_fenced(args)}</mrow>"
        raise TypeError(type(n).__name__)

    body = go(node)
    if name is not None:
        body = f"<mrow>{ident(name)}<mo>=</mo>{body}</mrow>"
    return f'<math display="{display}">{body}</math>'


def _is_frac(n: Node) -> bool:
    return isinstance(n, Binary) and n.op == "/"
