"""Formulas that fit their column: MathML broken at operators, one layout per width tier.

Browsers do not break MathML lines, so a long formula would run out of its box (issue 19: Net
Revenue Retention's numerator cut at "Contraction Revenu"). Each formula is laid out here for
a few column widths (TIERS, in em of the formula's font): where a part is wider than the
width, a sum, product or chain of conditions is split into lines starting with their operator,
a fraction's numerator and denominator are split on their own, and a function's arguments go
one per line between stretching parentheses. Widths are estimated from the text (generously,
for a wide font such as DejaVu); identical layouts are written once, and kpi.css shows the one
for the column's width with container queries. A part that still does not fit scrolls in its
own box (.kpi-math), never clipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape

from ..formula.dispatch import node_table
from ..formula.mathml import to_mathml
from ..formula.nodes import Binary, Call, Name, Node, Number, Unary
from ..formula.render import format_number, needs_parens, precedence

#: Column widths (em of the formula's font) a layout is made for, widest first; kpi.css's
#: container queries show kpi-t0 in a wide column (a desktop's), kpi-t1 in a narrower one
#: (down to a 360 px phone). A layout good for both has no class.
TIERS = (34.0, 15.5)

CHAR = 0.52  # em per character of a name or number (DejaVu Sans averages about 0.47)
OP = 1.25  # an operator with its spacing
INDENT = 1.0  # continuation lines start this far in
_CHAIN = {"+", "-", "*", "and", "or"}
_OPS = {"+": "+", "-": "\u2212", "*": "\u00d7", "and": "and", "or": "or"}


def _inner(node: Node, label: Callable[[str], str]) -> str:
    """The elements to_mathml writes for a node (siblings, to be spliced into a row)."""
    html = to_mathml(node, label, display="inline")
    return html[html.index(">") + 1 : -len("</math>")]


_TAG = re.compile(r"<(/?)[a-z]+[^>]*?(/?)>")


def _one(items: str) -> str:
    """One element for a place that takes exactly one (a fraction's part): a row if needed."""
    depth = tops = 0
    for m in _TAG.finditer(items):
        closing, empty = m.group(1), m.group(2)
        if closing:
            depth -= 1
        else:
            tops += depth == 0
            depth += not empty
    return items if tops == 1 else f"<mrow>{items}</mrow>"


def width(node: Node, label: Callable[[str], str]) -> float:
    """The estimated width of a node written on one line, in em."""
    return _WIDTH[type(node)](node, label)


def _number_width(node: Number, label: Callable[[str], str]) -> float:
    return CHAR * len(format_number(node.value)) + (0.8 if node.value < 0 else 0)


def _unary_width(node: Unary, label: Callable[[str], str]) -> float:
    extra = 1.6 if node.op == "not" else 0.8
    paren = 0.8 if precedence(node.operand) < precedence(node) else 0
    return extra + paren + width(node.operand, label)


def _binary_width(node: Binary, label: Callable[[str], str]) -> float:
    if node.op == "/":
        return max(width(node.left, label), width(node.right, label)) + 0.4
    left, right = width(node.left, label), width(node.right, label)
    if node.op == "^":
        return left + 0.75 * right + 0.2
    paren = 0.8 * (
        needs_parens(node.left, node.op, False) + needs_parens(node.right, node.op, True)
    )
    return left + right + paren + OP * (2 if node.op in ("and", "or") else 1)


def _call_width(node: Call, label: Callable[[str], str]) -> float:
    """Every function is drawn as its name and its arguments (abs() as bars, no narrower)."""
    args = sum(width(a, label) for a in node.args) + 0.6 * max(0, len(node.args) - 1)
    return CHAR * len(node.func) + 1.0 + args


_WIDTH = node_table(
    {
        Number: _number_width,
        Name: lambda node, label: CHAR * len(label(node.name)),
        Unary: _unary_width,
        Binary: _binary_width,
        Call: _call_width,
    }
)


def _chain(node: Node) -> tuple[list[Node], list[str]]:
    """A run of one precedence level, flattened: a − b + c -> [a, b, c], [−, +]."""
    if not (isinstance(node, Binary) and node.op in _CHAIN):
        return [node], []
    level = precedence(node)
    terms: list[Node] = []
    ops: list[str] = []

    def walk(n: Node, right: bool, op: str | None) -> None:
        if (
            isinstance(n, Binary)
            and n.op in _CHAIN
            and precedence(n) == level
            and not (op and needs_parens(n, op, right))
        ):
            walk(n.left, False, n.op)
            ops.append(n.op)
            walk(n.right, True, n.op)
        else:
            terms.append(n)

    walk(node, False, None)
    return terms, ops


def _table(rows: list[str], indent: bool = False) -> str:
    """Rows, left-aligned (kpi.css); an indented table (class i) indents all rows but the first."""
    return (
        ("<mtable class=i>" if indent else "<mtable>")
        + "".join(f"<mtr><mtd>{r}</mtd></mtr>" for r in rows)
        + "</mtable>"
    )


def _fence(inner: str) -> str:
    return f"<mrow><mo>(</mo>{inner}<mo>)</mo></mrow>"


def fit(node: Node, room: float, label: Callable[[str], str]) -> tuple[str, float]:
    """(one MathML element, its estimated width) for a node laid out within ``room`` em."""
    own = width(node, label)
    if own <= room:
        return _inner(node, label), own
    if isinstance(node, Binary) and node.op == "/":
        top, wt = fit(node.left, room - 0.4, label)
        bottom, wb = fit(node.right, room - 0.4, label)
        return f"<mfrac>{_one(top)}{_one(bottom)}</mfrac>", max(wt, wb) + 0.4
    if isinstance(node, Binary) and node.op in _CHAIN:
        terms, ops = _chain(node)
        if len(terms) > 1:
            return _lines(node, terms, ops, room, label)
    if isinstance(node, Call) and node.args and node.func != "abs":
        head = CHAR * len(node.func) + 1.0
        rows, widest = [], 0.0
        for i, arg in enumerate(node.args):
            item, w = fit(arg, room - head - 0.6, label)
            rows.append(item + ("<mo>,</mo>" if i < len(node.args) - 1 else ""))
            widest = max(widest, w + 0.6)
        name = f"<mi>{escape(node.func)}</mi><mo>\u2061</mo>"
        inside = rows[0] if len(rows) == 1 else _table(rows)
        return f"<mrow>{name}{_fence(inside)}</mrow>", head + widest
    return _inner(node, label), own  # nothing to break at: scrolls in its box if too wide


def _lines(node, terms, ops, room, label) -> tuple[str, float]:
    """A chain split into lines; each continuation line starts with its operator."""
    pieces: list[tuple[str | None, str, float]] = []
    for i, term in enumerate(terms):
        op = ops[i - 1] if i else None
        level = precedence(node)
        wrap = precedence(term) < level or (
            precedence(term) == level and isinstance(term, Binary) and term.op in _CHAIN
        )
        inner, w = fit(term, room - INDENT - OP - (0.8 if wrap else 0), label)
        if wrap:
            inner, w = _fence(inner), w + 0.8
        pieces.append((op, inner, w))
    rows: list[str] = []
    widths: list[float] = []
    line, used = "", 0.0
    for op, inner, w in pieces:
        step = (OP + w) if op else w
        if line and used + step > room:
            rows.append(line)
            widths.append(used)
            line, used = "", INDENT
        if op:
            # at the start of a line an operator would be a prefix one (no space after it)
            line += f'<mo form="infix">{_OPS[op]}</mo>' if not line else f"<mo>{_OPS[op]}</mo>"
        line += inner
        used += step
    rows.append(line)
    widths.append(used)
    if len(rows) == 1:
        return line, used
    return _table(rows, indent=True), max(widths)


def fitted(node: Node, label: Callable[[str], str], name: str | None = None) -> str:
    """The formula's <math> elements, one per distinct layout, each classed with its tiers.

    Where "Name =" stands on a line of its own it is written once, for all those tiers, and
    the formula under it is indented (class kpi-in)."""
    layouts: dict[tuple[bool, str], list[int]] = {}
    for tier, room in enumerate(TIERS):
        layouts.setdefault(_layout(node, label, name, room), []).append(tier)
    out = []
    own_head = [t for (own, _), tiers in layouts.items() if own for t in tiers]
    if own_head and name:
        head = f'<mi>{escape(label(name))}</mi><mo form="infix">=</mo>'
        out.append(_math(_classes(own_head), head))
    for (own, body), tiers in layouts.items():
        out.append(_math(" ".join(filter(None, [_classes(tiers), "kpi-in" * own])), body))
    return "".join(out)


def _math(classes: str, body: str) -> str:
    attr = f' class="{classes}"' if classes else ""
    return f'<math display="block"{attr}>{body}</math>'


def _classes(tiers: list[int]) -> str:
    return "" if len(tiers) == len(TIERS) else " ".join(f"kpi-t{t}" for t in sorted(tiers))


def _layout(
    node: Node, label: Callable[[str], str], name: str | None, room: float
) -> tuple[bool, str]:
    """(whether "Name =" stands on its own line above, the formula) for one width."""
    head = f"<mi>{escape(label(name))}</mi><mo>=</mo>" if name else ""
    head_w = CHAR * len(label(name)) + OP if name else 0.0
    if head_w + width(node, label) <= room:
        return False, head + _inner(node, label)
    if not head or head_w < room / 3:
        body, _ = fit(node, room - head_w, label)
        return False, head + body
    body, _ = fit(node, room - INDENT, label)
    return True, body
