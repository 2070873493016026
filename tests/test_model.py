"""The definition model: worked examples and relations as typed, frozen objects read once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from conftest import Library, definition

from kpi_registry.loading import parse_text
from kpi_registry.model import KPI, Example, Relation
from kpi_registry.registry import collect

ROWS = [{"month": "2024-01", "cust": "a", "mrr": 5}, {"month": "2024-02", "cust": "a", "mrr": 7}]


def kpi_of(**fields) -> KPI:
    text = yaml.safe_dump(definition("a", **fields), sort_keys=False)
    return KPI("a", parse_text(text, "a.yaml"), Path("a.yaml"))


def test_an_example_reads_its_parameters_into_fields_with_the_defaults_in_one_place():
    kpi = kpi_of(
        examples=[
            {
                "title": "Two months",
                "data": ROWS,
                "parameters": {"period": "month", "entity": "cust", "by": "region"},
                "expected": [{"month": "2024-02", "a": 7}],
            },
            {"title": "Scalar", "data": {"revenue": 5}, "expected": 5, "decimals": 0},
        ]
    )
    rows, scalar = kpi.examples
    assert isinstance(rows, Example) and rows.index == 0
    assert (rows.title, rows.period, rows.entity, rows.by, rows.grain) == (
        "Two months",
        "month",
        "cust",
        ("region",),  # one group column written as text
        None,
    )
    assert rows.data == ROWS and rows.expected == [{"month": "2024-02", "a": 7}]
    assert (rows.decimals, rows.show, rows.columns, rows.description) == (2, (), {}, "")
    assert (scalar.index, scalar.decimals, scalar.period, scalar.by) == (1, 0, None, ())
    assert kpi.examples is kpi.examples  # built once, not on every access
    with pytest.raises(dataclasses.FrozenInstanceError):
        rows.title = "changed"  # type: ignore[misc]


def test_an_example_keeps_its_index_in_the_file_when_an_earlier_item_is_not_a_mapping():
    kpi = kpi_of(examples=["just text", {"title": "t", "data": {"revenue": 5}, "expected": 5}])
    assert [e.index for e in kpi.examples] == [1]


def test_relations_are_typed_links_that_keep_their_place_in_the_list():
    kpi = kpi_of(
        relations={
            "leading": [{"kpi": "b", "why": "Moves first."}],
            "related": ["not a link", {"kpi": "c", "why": "Read together."}],
        }
    )
    assert kpi.relations("leading") == (Relation("leading", "b", "Moves first.", 0),)
    (related,) = kpi.relations("related")
    assert (related.kind, related.kpi, related.why, related.index) == (
        "related",
        "c",
        "Read together.",
        1,
    )
    assert related.as_dict() == {"kpi": "c", "why": "Read together."}
    assert kpi.relations("lagging") == ()


def test_a_malformed_example_is_reported_not_a_crash(tmp_path):
    """``decimals: x`` made validation raise ValueError inside the worked-example rule."""
    library = Library(tmp_path)
    example = {"title": "t", "data": {"revenue": 5}, "expected": 6, "decimals": "x"}
    library.add("a", examples=["just text", example])
    found = [(d.field, d.message) for d in collect([tmp_path], include_bundled=False).report.errors]
    assert ("examples[1].decimals", "expected a whole number, found text") in found
    assert ("examples[0]", "expected a mapping, found text") in found
    # the example is still checked, with the default decimals, at its own index
    assert ("examples[1].expected", "the engine computes 5, the example expects 6") in found


def test_the_registry_gives_declared_and_reverse_relations_as_plain_mappings(tmp_path):
    library = Library(tmp_path)
    library.add("a", relations={"leading": [{"kpi": "b", "why": "A moves first."}]})
    library.add("b", relations={"related": [{"kpi": "a", "why": "Read together."}]})
    from kpi_registry.registry import load

    reg = load(tmp_path, include_bundled=False)
    assert reg.leading("a") == [{"kpi": "b", "why": "A moves first."}]
    assert reg.lagging("b") == [{"kpi": "a", "why": "A moves first.", "declared_in": "a"}]
    assert reg.related("a") == [{"kpi": "b", "why": "Read together.", "declared_in": "b"}]
