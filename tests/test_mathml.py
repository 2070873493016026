"""The shape of the MathML: an <mrow> only where it changes the drawing (MathML Core).

The rows that matter: a fenced group (its fences stretch to their own row), a unary minus / not
(an <mo> is a prefix operator only as the first child of its row), and a child of <mfrac> or
<msup> that is more than one element. Everything else is spliced into the parent row, and
<math> is the top-level row. Old and new markup were compared in headless Chromium when this
was introduced; these tests pin the rules that made the screenshots identical.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

import kpi_registry
from kpi_registry.formula import FUNCTIONS, Node, Number, Unary, parse
from kpi_registry.formula.mathml import to_mathml

MINUS, TIMES, APPLY = "\u2212", "\u00d7", "\u2061"


def xml(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def shape(e: ET.Element):
    """A compact picture of the tree: a token is its text, a row or layout is (tag, children)."""
    if len(e):
        return (e.tag, [shape(c) for c in e])
    return e.text


def _formulas() -> list[tuple[str, Node, str]]:
    """(what, formula, markup) for every bundled KPI, drawn as its page draws it, and every
    function example, plus a few with unary operators in awkward places."""
    reg = kpi_registry.load()
    kpis = reg.kpis.values() if isinstance(reg.kpis, dict) else reg.kpis

    def label(n: str) -> str:
        return reg[n].name if n in reg else n

    out = [(k.id, k.expression, to_mathml(k.expression, label, name=k.id)) for k in kpis]
    out += [(f, parse(fn.example), to_mathml(parse(fn.example))) for f, fn in FUNCTIONS.items()]
    for text in ("a * -b + -(c - d) - -sum(x)", "not a and not (b or c)", "-x ^ 2 / (-2 * -y)"):
        out.append((text, parse(text), to_mathml(parse(text))))
    return [f for f in out if f[1] is not None]


FORMULAS = _formulas()


def test_binary_chains_are_spliced_into_one_row_and_math_is_the_top_level_row():
    m = xml(to_mathml(parse("a + b * c - d")))
    assert shape(m) == ("math", ["a", "+", "b", TIMES, "c", MINUS, "d"])
    named = xml(to_mathml(parse("a * b"), name="x"))
    assert shape(named) == ("math", ["x", "=", "a", TIMES, "b"])


def test_a_unary_minus_or_not_keeps_its_own_row_so_it_stays_a_prefix_operator():
    assert shape(xml(to_mathml(parse("a * -b")))) == (
        "math",
        ["a", TIMES, ("mrow", [MINUS, "b"])],
    )
    assert shape(xml(to_mathml(parse("x * -5")))) == ("math", ["x", TIMES, ("mrow", [MINUS, "5"])])
    assert shape(xml(to_mathml(parse("a and not b")))) == (
        "math",
        ["a", "and", ("mrow", ["not", "b"])],
    )
    # A minus of a minus: the inner one is first in a row of its own too.
    assert shape(xml(to_mathml(parse("- -a")))) == (
        "math",
        [("mrow", [MINUS, ("mrow", [MINUS, "a"])])],
    )


def test_fenced_groups_keep_their_row_and_their_content_is_spliced_into_it():
    assert shape(xml(to_mathml(parse("(a + b * c) * d")))) == (
        "math",
        [("mrow", ["(", "a", "+", "b", TIMES, "c", ")"]), TIMES, "d"],
    )
    assert shape(xml(to_mathml(parse("abs(a - b)")))) == (
        "math",
        [("mrow", ["|", "a", MINUS, "b", "|"])],
    )


def test_a_call_is_spliced_into_its_row_and_its_arguments_into_the_fenced_row():
    assert shape(xml(to_mathml(parse("sum(a, b + c) * 2")))) == (
        "math",
        ["sum", APPLY, ("mrow", ["(", "a", ",", "b", "+", "c", ")"]), TIMES, "2"],
    )


def test_fraction_and_power_children_are_one_element_wrapped_only_when_needed():
    assert shape(xml(to_mathml(parse("(a + b) / c")))) == (
        "math",
        [("mfrac", [("mrow", ["a", "+", "b"]), "c"])],
    )
    assert shape(xml(to_mathml(parse("2 ^ (a + b)")))) == (
        "math",
        [("msup", ["2", ("mrow", ["a", "+", "b"])])],
    )
    # Already one element (a fenced group, a unary row): not wrapped again.
    assert shape(xml(to_mathml(parse("(a - b) ^ 2 / -c")))) == (
        "math",
        [
            (
                "mfrac",
                [("msup", [("mrow", ["(", "a", MINUS, "b", ")"]), "2"]), ("mrow", [MINUS, "c"])],
            )
        ],
    )
    # A call is three elements, so it gets a row where one element is required.
    assert shape(xml(to_mathml(parse("sum(x) / n")))) == (
        "math",
        [("mfrac", [("mrow", ["sum", APPLY, ("mrow", ["(", "x", ")"])]), "n"])],
    )


def test_function_application_is_the_raw_character():
    m = to_mathml(parse("sum(x)"))
    assert f"<mo>{APPLY}</mo>" in m and "&#x" not in m


@pytest.mark.parametrize("what,node,markup", FORMULAS, ids=[f[0] for f in FORMULAS])
def test_every_formula_has_only_the_rows_that_matter(what, node, markup):
    tree = xml(markup)
    for row in tree.iter("mrow"):
        assert len(row) > 1, "an <mrow> with one child"
    for e in (*tree.iter("mfrac"), *tree.iter("msup")):
        assert len(e) == 2, f"<{e.tag}> takes exactly two children"
    # An operator is first in a row only as a fence or a prefix operator, and every unary
    # operator (negative numbers included) is first in a row of its own.
    firsts = [r[0].text for r in tree.iter("mrow") if r[0].tag == "mo"]
    assert set(firsts) <= {"(", "|", MINUS, "not"}
    unary = sum(
        isinstance(n, Unary) or (isinstance(n, Number) and n.value < 0) for n in node.walk()
    )
    assert firsts.count(MINUS) + firsts.count("not") == unary
    assert tree[0].tag != "mo"  # <math> is a row too: nothing there may turn prefix
