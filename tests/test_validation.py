"""Validation reports every problem, in every file, as path:line:col: field: message."""

from __future__ import annotations

import pytest

import kpi_registry
from kpi_registry.errors import DefinitionError
from kpi_registry.registry import collect


def messages(folder) -> list[str]:
    return [str(d) for d in collect([folder], include_bundled=False).report.diagnostics]


def only(folder) -> str:
    found = messages(folder)
    assert len(found) == 1, found
    return found[0]


def test_a_valid_library_loads(library):
    library.add("monthly_recurring_revenue")
    reg = kpi_registry.load(library.root, include_bundled=False)
    assert "monthly_recurring_revenue" in reg and len(reg) == 1


def test_missing_required_field(library):
    path = library.write(
        "a.yaml",
        "id: a\nname: A\nsummary: s\ncategory: finance\nunit: count\n"
        "direction: on_target\nstatus: draft\ndefinition: d\n",
    )
    assert only(library.root) == f"{path}:1:1: formula: missing required field 'formula'"


def test_empty_required_text(library):
    path = library.add("a", summary="   ")
    assert only(library.root) == f"{path}:3:1: summary: must not be empty"


def test_unknown_field_suggests_the_right_one(library):
    path = library.add("a", defintion="typo")
    msg = only(library.root)
    assert msg.startswith(f"{path}:")
    assert "defintion: unknown field (did you mean 'definition'?)" in msg


def test_unknown_nested_field(library):
    path = library.add("a", formula={"expression": "sum(revenue)", "dispaly": "x"})
    assert "formula.dispaly: unknown field (did you mean 'display'?)" in only(library.root)
    assert only(library.root).startswith(f"{path}:")


def test_wrong_type(library):
    library.add("a", tips="do this")
    assert "tips: expected a list, found text" in only(library.root)


def test_bad_enum_suggests(library):
    library.add("a", unit="percentage")
    msg = only(library.root)
    assert "unit: 'percentage' is not allowed (did you mean 'percent'?)" in msg


def test_id_must_match_file_name(library):
    path = library.add("a")
    path.rename(library.root / "b.yaml")
    msg = only(library.root)
    assert msg.startswith(f"{library.root / 'b.yaml'}:1:1: id: id 'a' does not match the file name")


def test_duplicate_id_across_files_names_both(library, tmp_path):
    first = library.add("a")
    other = tmp_path / "other"
    other.mkdir()
    second = other / "a.yaml"
    second.write_text(first.read_text())
    found = [str(d) for d in collect([library.root, other], include_bundled=False).report.errors]
    assert len(found) == 1
    assert found[0].startswith(f"{second}:1:1: id: duplicate id 'a': also defined in {first}")


def test_override_replaces_on_purpose(library, tmp_path):
    library.add("a")
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.yaml").write_text(
        (library.root / "a.yaml").read_text().replace("name: A", "name: Mine") + "overrides: true\n"
    )
    reg = kpi_registry.load(library.root, other, include_bundled=False)
    assert reg["a"].name == "Mine"
    assert reg["a"].overridden == [library.root / "a.yaml"]


def test_unknown_relation_target_with_suggestion(library):
    library.add("expansion_revenue")
    path = library.add("b", relations={"leading": [{"kpi": "expansion_revenu", "why": "because"}]})
    msg = only(library.root)
    assert msg.startswith(f"{path}:")
    assert "relations.leading[0].kpi: unknown KPI 'expansion_revenu'" in msg
    assert "did you mean 'expansion_revenue'?" in msg


def test_unknown_category(library):
    library.add("a", category="financ")
    assert "unknown category 'financ' (did you mean 'finance'?)" in only(library.root)


def test_reviewed_needs_all_twelve_attributes(library):
    library.add("a", status="reviewed")
    found = messages(library.root)
    missing = {m.split("'")[1] for m in found}
    assert missing == {
        "business_insights",
        "measurement_approach",
        "trend_analysis",
        "diagnostics",
        "tips",
        "visualization",
        "risk_warnings",
        "tools_and_technologies",
        "integration_points",
        "change_impact",
    }
    assert all("must fill all 12 attributes" in m for m in found)


def test_formula_syntax_error_points_at_the_token(library):
    path = library.add("a", "sum(revenue) + * 2")
    msg = only(library.root)
    assert msg.startswith(f"{path}:")
    assert "formula.expression: expected a number, a name or '(', found '*'" in msg
    assert "sum(revenue) + * 2\n                   ^" in msg


def test_formula_unknown_name_suggests(library):
    library.add("a", "sum(revnue)")
    msg = only(library.root)
    assert "unknown name 'revnue'" in msg and "did you mean 'revenue'?" in msg


def test_formula_level_errors(library):
    library.add("a", "revenue * 2")
    assert "wrap the datapoints in an aggregate" in only(library.root)


def test_dependency_cycle_is_named(library):
    library.add("a", "b + 1", datapoints=None)
    library.add("b", "c * 2", datapoints=None)
    library.add("c", "a - 1", datapoints=None)
    library.add("d", "a + sum(revenue)")
    found = messages(library.root)
    assert len(found) == 1
    assert "formula dependency cycle: a -> b -> c -> a" in found[0]


def test_unused_datapoint_is_reported(library):
    library.add("a", "2 * 3")
    assert "datapoint 'revenue' is declared but the formula never uses it" in only(library.root)


def test_conflicting_datapoint_semantics(library):
    library.add("a")
    flow = {"name": "revenue", "description": "x", "unit": "currency", "time": "flow"}
    library.add("b", datapoints=[flow])
    msg = only(library.root)
    assert "one name must mean one thing" in msg and "a.yaml" in msg


def test_example_that_does_not_reproduce(library):
    path = library.add(
        "a",
        examples=[
            {
                "title": "t",
                "data": [
                    {"c": "x", "m": "2024-01", "revenue": 10},
                    {"c": "y", "m": "2024-01", "revenue": 5},
                ],
                "parameters": {"period": "m", "entity": "c"},
                "expected": [{"m": "2024-01", "a": 16}],
            }
        ],
    )
    msg = only(library.root)
    assert msg.startswith(f"{path}:")
    assert "examples[0].expected: m=2024-01: the engine computes a = 15" in msg
    assert "expects 16" in msg


def test_all_errors_in_all_files_in_one_run(library):
    library.add("a", unit="percentage")
    library.add("b", "sum(")
    library.write("c.yaml", "id: c\nid: c\n")
    library.write("d.yaml", b"\xff\xfe")
    found = messages(library.root)
    assert len(found) == 4
    assert {m.split(":")[0].rsplit("/", 1)[-1] for m in found} == {
        "a.yaml",
        "b.yaml",
        "c.yaml",
        "d.yaml",
    }


def test_load_raises_with_every_diagnostic(library):
    library.add("a", unit="percentage")
    library.add("b", "sum(")
    with pytest.raises(DefinitionError) as info:
        kpi_registry.load(library.root, include_bundled=False)
    assert len(info.value.diagnostics) == 2


def test_formula_error_in_a_block_or_quoted_scalar_points_at_its_text(library):
    path = library.write(
        "a.yaml",
        "id: a\nname: A\nsummary: s\ncategory: finance\nunit: count\ndirection: on_target\n"
        "status: draft\ndefinition: d\nformula:\n  expression: >-\n    sum(revnue)\n"
        "datapoints:\n  - {name: revenue, description: r, unit: currency}\n",
    )
    msg = only(library.root)
    assert msg.startswith(f"{path}:11:5: formula.expression: unknown name 'revnue'")
    path.write_text(
        path.read_text().replace("expression: >-\n    sum(revnue)", 'expression: "sum(revnue)"')
    )
    assert only(library.root).startswith(f"{path}:10:20: formula.expression")
