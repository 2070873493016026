"""The formula language: parsing, static checks and the non-evaluating outputs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kpi_registry.errors import FormulaError
from kpi_registry.formula import (
    Binary,
    Call,
    Name,
    Number,
    analyse,
    gap_depth,
    parse,
    to_js,
    to_latex,
    to_text,
)
from kpi_registry.formula.render import NotScalar


@pytest.mark.parametrize(
    "text, canonical",
    [
        ("a + b * c", "a + b * c"),
        ("(a + b) * c", "(a + b) * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("a / (b / c)", "a / (b / c)"),
        ("2 ^ 3 ^ 2", "2 ^ 3 ^ 2"),
        ("(2 ^ 3) ^ 2", "(2 ^ 3) ^ 2"),
        ("-x ^ 2", "-x ^ 2"),
        ("a == b", "a = b"),
        ("a <> b", "a != b"),
        ("not a > 1 or b < 2 and c = 3", "not a > 1 or b < 2 and c = 3"),
        ("NOT (a > 1 OR b < 2)", "not (a > 1 or b < 2)"),
        ("IF(x > 0, 1, 0)", "if(x > 0, 1, 0)"),
        ("1.5e3 + .5", "1500 + 0.5"),
    ],
)
def test_round_trip_through_text(text, canonical):
    node = parse(text)
    assert to_text(node) == canonical
    assert parse(to_text(node)) == node


def test_precedence_builds_the_expected_tree():
    node = parse("a + b * c ^ 2")
    assert node == Binary(
        op="+",
        left=Name(name="a"),
        right=Binary(
            op="*",
            left=Name(name="b"),
            right=Binary(op="^", left=Name(name="c"), right=Number(value=2.0)),
        ),
    )


def test_structural_equality_ignores_position():
    assert parse("sum(previous(revenue))") == parse("sum( previous( revenue ) )")
    assert hash(parse("previous(x)")) == hash(parse("  previous(x)"))


@pytest.mark.parametrize(
    "text, message, column",
    [
        ("sum(revenue", "expected ',' or ')' in the call to sum(), found end of formula", 11),
        ("a + * b", "expected a number, a name or '(', found '*'", 4),
        ("summ(x)", "unknown function 'summ' (did you mean 'sum'?)", 0),
        ("a < b < c", "comparisons cannot be chained", 6),
        ("", "formula is empty", 0),
        ("a $ b", "unexpected character '$'", 2),
        ("if(a, b)", "if() takes 3 arguments, got 2", 0),
        ("months_in_period(1)", "months_in_period() takes 0 arguments, got 1", 0),
        ("(a + b", "expected ')' to close the '('", 6),
        ("a b", "unexpected 'b' after a complete expression", 2),
    ],
)
def test_syntax_errors_point_at_the_position(text, message, column):
    with pytest.raises(FormulaError) as info:
        parse(text)
    assert message in info.value.message
    assert info.value.position == column
    if text:
        caret_line = str(info.value).splitlines()[-1]
        assert caret_line == "    " + " " * column + "^"


def test_deep_nesting_is_refused_not_crashing():
    with pytest.raises(FormulaError, match="nested too deeply"):
        parse("(" * 500 + "1" + ")" * 500)


def check(text, kpis=(), datapoints=("revenue", "seats")):
    return analyse(parse(text), kpis.__contains__, datapoints.__contains__, text)


def test_analysis_collects_names():
    result = check("expansion / sum(revenue, seats > 0) * 100", kpis=("expansion",))
    assert result.kpis == {"expansion"} and result.datapoints == {"revenue", "seats"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("revenue + 1", "wrap the datapoints in an aggregate"),
        ("sum(expansion)", "cannot be used inside an aggregate"),
        ("sum(sum(revenue))", "cannot be nested inside another aggregate"),
        ("sum(revenue) + revenue", "mixes per-row datapoints with per-period values"),
        ("count(revenue > 0)", "write count(x, condition)"),
        ("sum(revenue, revenue)", "the filter of sum() must be a condition"),
        ("sum(revenue) > 0", "must give a number, not a condition"),
        ("if(sum(revenue), 1, 0)", "argument 1 of if() must be a condition"),
        ("sum(revenue) and 1", "'and' needs a condition on each side"),
        ("ever_before(expansion > 0)", "ever_before() looks back over an entity's rows"),
        ("unknown + 1", "unknown name 'unknown'"),
    ],
)
def test_analysis_errors(text, message):
    with pytest.raises(FormulaError) as info:
        check(text, kpis=("expansion",))
    assert message in info.value.message


def test_gap_depth_counts_previous_and_coalesce_closes_it():
    assert gap_depth(parse("revenue")) == 0
    assert gap_depth(parse("revenue - previous(revenue)")) == 1
    assert gap_depth(parse("previous(previous(revenue))")) == 2
    assert gap_depth(parse("coalesce(previous(revenue), 0)")) == 0
    assert gap_depth(parse("ever_before(revenue > 0)")) == 0


def test_latex_uses_fractions_and_labels():
    tex = to_latex(parse("(a - b) / a * 100"), label={"a": "Start $"}.get)
    assert tex == r"\frac{\text{Start \$} - \mathrm{b}}{\text{Start \$}} \times 100"


def test_js_is_generated_from_the_ast_only():
    js = to_js(parse("if(a > 0, (a - b) / a * 100, 0)"))
    assert js == '((v["a"] > 0) ? (K.div((v["a"] - v["b"]), v["a"]) * 100) : 0)'
    with pytest.raises(NotScalar):
        to_js(parse("sum(revenue)"))
    # the calculator's inputs are monthly figures
    assert to_js(parse("a * months_in_period()")) == '(v["a"] * 1)'


def test_js_names_are_json_escaped():
    node = Call(func="abs", args=(Name(name='x"];alert(1);//'),))
    assert 'v["x\\"];alert(1);//"]' in to_js(node)


def test_package_never_calls_eval_or_exec():
    root = Path(__file__).resolve().parents[1] / "kpi_registry"
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("eval", "exec", "compile"), f"{path}:{node.lineno}"


@pytest.mark.parametrize(
    "text", ["- " * 3000 + "1", "not " * 2000 + "a > 1", "+".join(["a"] * 3000), "2^" * 2000 + "2"]
)
def test_long_chains_are_refused_not_crashing(text):
    with pytest.raises(FormulaError, match="nested too deeply"):
        parse(text)
