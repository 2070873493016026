"""Each validation rule on its own: a definition it passes and one it reports."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REVENUE, TAXONOMY, definition

from kpi_registry.loading import parse_text
from kpi_registry.model import KPI, Category
from kpi_registry.rules import (
    RULES,
    DatapointsConsistent,
    FiniteNumbers,
    FormulasBind,
    FunctionsComputable,
    IdMatchesFileName,
    KnownCategories,
    KnownReferences,
    Library,
    LibraryRule,
    MatchesSchema,
    NoFormulaCycles,
    NothingUnfinished,
    RequiredAttributes,
    Rule,
    SafeLinks,
    Scope,
    TextsNotBlank,
    WorkedExamplesHold,
)


def library_of(*definitions: dict[str, Any]) -> Library:
    """Definitions as loading reads them (positioned YAML); ``file`` names one's file."""
    kpis = {}
    for d in definitions:
        d = dict(d)
        path = Path(d.pop("file", f"{d['id']}.yaml"))
        data = parse_text(yaml.safe_dump(d, sort_keys=False), path)
        kpis[d["id"]] = KPI(d["id"], data, path)
    categories = {
        cat_id: Category(cat_id, body["name"], body["description"])
        for cat_id, body in TAXONOMY["categories"].items()
    }
    return Library(kpis, categories)


def found_by(rule: Rule, library: Library) -> list[str]:
    """What the rule reports, after binding the formulas when it reads them bound."""
    if RULES.index(rule_of(type(rule))) > RULES.index(rule_of(FormulasBind)):
        FormulasBind().check(library)
    if isinstance(rule, LibraryRule):
        diagnostics = rule.check(library)
    else:
        diagnostics = [d for kpi in library.kpis.values() for d in rule.check(kpi, library)]
    return [f"{d.line}:{d.column}: {d.field}: {d.message}" for d in diagnostics]


def rule_of(cls: type) -> Rule:
    return next(r for r in RULES if type(r) is cls)


def _revenue(**changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(REVENUE), **changes}


SCALAR_EXAMPLE = {"title": "One month", "data": {"revenue": 5}, "expected": 5}

#: rule -> (a library it passes, a library it reports, what it reports)
CASES: dict[type, tuple[list[dict], list[dict], str]] = {
    MatchesSchema: (
        [definition("a")],
        [definition("a", unit="percentage")],
        "unit: 'percentage' is not allowed (did you mean 'percent'?)",
    ),
    IdMatchesFileName: (
        [definition("a")],
        [{**definition("a"), "file": "b.yaml"}],
        "1:1: id: id 'a' does not match the file name; rename the file to 'a.yaml' or set id: b",
    ),
    TextsNotBlank: (
        [definition("a")],
        [definition("a", summary="   ")],
        "3:1: summary: must not be empty",
    ),
    FiniteNumbers: (
        [definition("a", datapoints=[_revenue(valid={"min": 0})])],
        [definition("a", datapoints=[_revenue(valid={"min": float("-inf")})])],
        "datapoints[0].valid.min: -inf is not a finite number; write null where there is no value",
    ),
    SafeLinks: (
        [definition("a", sources=[{"title": "t", "url": "https://example.com/r"}])],
        [definition("a", sources=[{"title": "t", "url": "javascript:alert(1)"}])],
        "sources[0].url: javascript: links are not allowed; use an https:// or http:// URL",
    ),
    NothingUnfinished: (
        [definition("a")],
        [definition("a", definition="TODO say what it is")],
        "definition: still says TODO: fill it in",
    ),
    KnownCategories: (
        [definition("a")],
        [definition("a", category="revenue_retentoin")],
        "category: unknown category 'revenue_retentoin' (did you mean 'revenue_retention'?)",
    ),
    KnownReferences: (
        [definition("a"), definition("b", relations={"related": [{"kpi": "a", "why": "w"}]})],
        [definition("a"), definition("b", relations={"related": [{"kpi": "b", "why": "w"}]})],
        "relations.related[0].kpi: a KPI cannot relate to itself",
    ),
    RequiredAttributes: (
        [definition("a", status="reviewed", tips=["Look at it monthly."])],
        [definition("a", status="reviewed", tips=[])],
        "tips: a reviewed KPI must fill this attribute",
    ),
    DatapointsConsistent: (
        [definition("a"), definition("b")],
        [definition("a"), definition("b", datapoints=[_revenue(time="flow")])],
        "datapoints[0].name: datapoint 'revenue' is declared as rows=sum, time=flow, "
        "missing=zero, valid=[0.0, None] per entity_period here but rows=sum, time=stock, "
        "missing=zero, valid=[0.0, None] per entity_period in a.yaml",
    ),
    FormulasBind: (
        [definition("a", "sum(revenue) / 2")],
        [definition("a", "sum(revenu) / 2")],
        "formula.expression: unknown name 'revenu': neither a KPI id nor a datapoint declared "
        "in this file (did you mean 'revenue'?)",
    ),
    NoFormulaCycles: (
        [definition("a"), definition("b", "a * 2", datapoints=None)],
        [definition("a", "b + sum(revenue)"), definition("b", "a * 2", datapoints=None)],
        "formula.expression: formula dependency cycle: a -> b -> a",
    ),
    FunctionsComputable: (
        [definition("a", "median(revenue)")],
        [definition("a", "median(revenue)")],  # with the engine's median taken away (BROKEN)
        "formula.expression: median() cannot be computed by the pandas engine: it has no "
        "handler for it",
    ),
    WorkedExamplesHold: (
        [definition("a", examples=[SCALAR_EXAMPLE])],
        [definition("a", examples=[{**SCALAR_EXAMPLE, "expected": 6}])],
        "examples[0].expected: the engine computes 5, the example expects 6",
    ),
}


def test_every_rule_has_its_cases_and_a_name_of_its_own():
    assert {type(r) for r in RULES} == set(CASES)
    assert len({r.name for r in RULES}) == len(RULES)
    assert all(isinstance(r.scope, Scope) for r in RULES)


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_a_rule_passes_a_good_definition(cls):
    good, _, _ = CASES[cls]
    assert found_by(rule_of(cls), library_of(*good)) == []


def _without_median(monkeypatch: pytest.MonkeyPatch) -> None:
    from kpi_registry import evaluation

    table = {k: v for k, v in evaluation.ENGINE_FUNCTIONS.items() if k != "median"}
    monkeypatch.setattr(evaluation, "ENGINE_FUNCTIONS", table)


#: rule -> what breaks the code for its bad case (no definition can call a missing function)
BROKEN = {FunctionsComputable: _without_median}


@pytest.mark.parametrize("cls", list(CASES), ids=lambda c: c.__name__)
def test_a_rule_reports_a_bad_one(cls, monkeypatch):
    _, bad, expected = CASES[cls]
    if cls in BROKEN:
        BROKEN[cls](monkeypatch)
    found = found_by(rule_of(cls), library_of(*bad))
    assert len(found) == 1, found
    assert expected in found[0], found[0]


def test_binding_replaces_each_kpi_by_its_bound_copy_and_records_the_graph():
    library = library_of(definition("a"), definition("b", "a * 2", datapoints=None))
    unbound = library.kpis["b"]
    assert FormulasBind().check(library) == []
    assert unbound.expression is None  # KPIs are frozen: the library holds a new one
    assert library.kpis["b"].expression is not None
    assert library.kpis["b"].spec is unbound.spec  # typed fields not rebuilt
    assert library.graph == {"a": set(), "b": {"a"}}


def test_a_cycle_leaves_its_kpis_unbound():
    library = library_of(definition("a", "b + sum(revenue)"), definition("b", "a * 2"))
    FormulasBind().check(library)
    NoFormulaCycles().check(library)
    assert library.kpis["a"].expression is None and library.kpis["b"].expression is None


def test_each_missing_required_field_is_reported_once_with_the_status_hint():
    """The names come from the schema error's fields, not its message."""
    from kpi_registry import schema

    data = definition("a", status="reviewed")
    del data["formula"], data["unit"]
    text = yaml.safe_dump(data, sort_keys=False)
    found = schema.check(parse_text(text, "a.yaml"), "a.yaml")
    fields = [d.field for d in found if d.message.startswith("missing required field")]
    assert sorted(fields) == sorted(set(fields)) and {"formula", "unit"} <= set(fields)
    hinted = [d for d in found if d.field == "tips"]
    assert hinted and all(
        d.message == "missing required field 'tips' (a reviewed KPI must fill all 12 "
        "attributes; or set status: draft)"
        for d in hinted
    )
    assert all("(a reviewed KPI" not in d.message for d in found if d.field == "formula")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"examples": [{"title": "t", "data": [{"revenue": "1e999"}], "expected": []}]},
            "examples[0].data[0].revenue: 1e999 is not a finite number",
        ),
        (
            {"examples": [{"title": "t", "data": {"revenue": "-inf"}, "expected": 1}]},
            "examples[0].data.revenue: -inf is not a finite number",
        ),
        (
            {"benchmarks": [{"value": [1, {"deep": float("nan")}]}]},
            "benchmarks[0].value[1].deep: nan is not a finite number",
        ),
        (
            {"examples": [{"title": "t", "data": [{"revenue": "1" + "0" * 400}], "expected": []}]},
            "examples[0].data[0].revenue: 1000",  # 400 digits, no exponent: too large
        ),
        (
            {"examples": [{"title": "t", "data": {"revenue": " NaN "}, "expected": 1}]},
            "examples[0].data.revenue:  NaN  is not a finite number",
        ),
        ({"summary": "1e999"}, None),  # text outside an example's data is text
    ],
)
def test_non_finite_values_are_found_wherever_they_are(changes, expected):
    found = found_by(rule_of(FiniteNumbers), library_of(definition("a", **changes)))
    if expected is None:
        assert found == []
    else:
        assert len(found) == 1 and expected in found[0], found


def test_a_datapoint_named_by_a_number_is_left_to_the_schema():
    """``name: 5`` is a schema error; the datapoint rule neither crashes nor reports it."""
    numbered = {**copy.deepcopy(REVENUE), "name": 5, "valid": [0, 1]}
    library = library_of(definition("a", datapoints=[copy.deepcopy(REVENUE), numbered]))
    assert found_by(rule_of(DatapointsConsistent), library) == []
    assert set(library.kpis["a"].datapoints) == {"revenue", 5}


#: Files whose shortcuts must not hide anything: escapes that spell TODO or a placeholder,
#: non-finite floats written every way YAML reads one (aliases and merge keys among them).
TRICKY = {
    "escaped TODO": 'notes: "still T\\x4FDO"\n',
    "escaped placeholder": 'notes: "Pl\\u0061ceholder text"\n',
    "infinity": "notes: [1, .inf]\n",
    "overflowing float": "notes: {big: 1.0e+999}\n",
    "aliased NaN": "notes: {a: &n .nan, b: *n}\n",
    "merged infinity": "base: &b {x: -.Inf}\nnotes: {<<: *b}\n",
    "tagged float": 'notes: !!float "inf"\n',
    "text that is not a number": "notes: 1e999\n",
}


@pytest.mark.parametrize("extra", list(TRICKY.values()), ids=list(TRICKY))
def test_what_the_loader_noticed_skips_no_problem(tmp_path, extra):
    """FiniteNumbers and NothingUnfinished report the same with the loader's facts (which let
    them skip walking a clean file) as without them."""
    from kpi_registry.loading import read_file

    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(definition("a"), sort_keys=False) + extra, "utf-8")
    doc = read_file(path)
    with_facts = KPI("a", doc.data, path, facts=doc.facts)
    without = KPI("a", doc.data, path)
    library = Library({"a": with_facts})
    found = []
    for rule in (rule_of(FiniteNumbers), rule_of(NothingUnfinished)):
        found += rule.check(with_facts, library)
        assert rule.check(with_facts, library) == rule.check(without, library)
    assert bool(found) == (extra != TRICKY["text that is not a number"]), found


def test_a_clean_file_is_noticed_as_clean_so_its_walks_are_skipped(tmp_path):
    from kpi_registry.loading import NOTHING_NOTICED, read_file

    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump(definition("a", examples=[SCALAR_EXAMPLE])), "utf-8")
    assert read_file(path).facts is NOTHING_NOTICED
    path.write_text(yaml.safe_dump(definition("a", summary="TODO")), "utf-8")
    assert read_file(path).facts.may_be_unfinished
    assert not read_file(path).facts.non_finite_float
