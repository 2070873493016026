"""MathML for the docs site: formulas drawn by the browser itself, with no script or font.

A visitor over the same AST as render.py's to_latex. Browsers render MathML Core natively, so
the site needs no math library at view time and makes no request for one. Every piece of text
that reaches the output (names, labels) is XML-escaped here.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from .dispatch import each, function_table, method_table
from .functions import FUNCTIONS
from .nodes import Binary, Call, Name, Node, Number, Unary
from .render import PRECEDENCE, format_number, is_fraction, needs_parens, precedence

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
_APPLY = "<mo>\u2061</mo>"  # invisible "function application", as the raw character (UTF-8 pages)

# How lean the markup can be. An <mrow> is kept only where it changes the drawing:
# - a fenced group: stretchy fences grow to the content of their own row;
# - a unary minus / not (negative numbers too): an <mo> is a prefix operator only as the first
#   child of its row, so in "a × −b" the "−b" must be a row of its own;
# - an <mfrac>/<msup> child that would otherwise be several elements (each child is one element).
# Everywhere else rows are spliced into their parent, and <math> itself is the top-level row.


def _row(items: list[str]) -> str:
    """One element for a place that takes exactly one: the item itself, or a row of them."""
    return items[0] if len(items) == 1 else f"<mrow>{''.join(items)}</mrow>"


def _fenced(items: list[str], left: str = "(", right: str = ")") -> str:
    """A parenthesised group: always its own row, so the fences stretch to just its content."""
    return f"<mrow><mo>{left}</mo>{''.join(items)}<mo>{right}</mo></mrow>"


def _number(value: float) -> str:
    text = format_number(value)
    if text.startswith("-"):
        # Its own row, so the minus is a prefix operator wherever the number stands.
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

    writer = _MathML(label)
    body = writer.go(node)
    if name is not None:
        body = [writer.ident(name), "<mo>=</mo>", *body]
    return f'<math display="{display}">{"".join(body)}</math>'


class _MathML:
    def __init__(self, label: Callable[[str], str] | None):
        self.label = label

    def ident(self, n: str) -> str:
        # Upright identifiers, words included: Chromium spaces operators around <mi> but not
        # around <mtext>, so labels are <mi> too.
        # An <mi> of two or more characters is upright by default; a single letter needs
        # mathvariant="normal" (it would be italic otherwise).
        text = self.label(n) if self.label else n
        if len(text) > 1:
            return f"<mi>{escape(text)}</mi>"
        return f'<mi mathvariant="normal">{escape(text)}</mi>'

    def go(self, n: Node) -> list[str]:
        """The sibling elements for ``n``, to be spliced into the caller's row.

        No list starts or ends with a bare <mo> (unary operators come wrapped), so splicing
        never changes an operator's form (prefix / infix / postfix) and so its spacing.
        """
        return _NODES[type(n)](self, n)

    def number(self, n: Number) -> list[str]:
        return [_number(n.value)]

    def name(self, n: Name) -> list[str]:
        return [self.ident(n.name)]

    def unary(self, n: Unary) -> list[str]:
        inner = self.go(n.operand)
        if precedence(n.operand) < precedence(n):
            inner = [_fenced(inner)]
        op = "<mo>not</mo>" if n.op == "not" else "<mo>\u2212</mo>"
        return [f"<mrow>{op}{''.join(inner)}</mrow>"]

    def binary(self, n: Binary) -> list[str]:
        if n.op == "/":
            return [f"<mfrac>{_row(self.go(n.left))}{_row(self.go(n.right))}</mfrac>"]
        left, right = self.go(n.left), self.go(n.right)
        if n.op == "^":
            if precedence(n.left) <= PRECEDENCE["^"]:
                left = [_fenced(left)]
            return [f"<msup>{_row(left)}{_row(right)}</msup>"]
        if needs_parens(n.left, n.op, False) and not is_fraction(n.left):
            left = [_fenced(left)]
        if needs_parens(n.right, n.op, True) and not is_fraction(n.right):
            right = [_fenced(right)]
        return [*left, f"<mo>{_OPS[n.op]}</mo>", *right]

    def call(self, n: Call) -> list[str]:
        return MATHML_FUNCTIONS[n.func](self, n)

    def function(self, n: Call) -> list[str]:
        args: list[str] = []
        for a in n.args:
            if args:
                args.append("<mo>,</mo>")
            args += self.go(a)
        return [f"<mi>{escape(n.func)}</mi>", _APPLY, _fenced(args)]

    def abs(self, n: Call) -> list[str]:
        return [_fenced(self.go(n.args[0]), "|", "|")]


_NODES = method_table(_MathML)
#: MathML writes a function as its name applied to its arguments; abs() between bars.
MATHML_FUNCTIONS = function_table({**each(FUNCTIONS, _MathML.function), "abs": _MathML.abs})
UNSUPPORTED_FUNCTIONS: dict[str, str] = {}
