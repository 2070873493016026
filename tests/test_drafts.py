"""The TODO and placeholder warnings of a draft, wherever in the definition they sit."""

from __future__ import annotations

from types import SimpleNamespace

from kpi_registry.drafts import check_unfinished
from kpi_registry.errors import Report
from kpi_registry.loading import parse_text


def _warnings(text: str) -> list[tuple[int, str]]:
    kpi = SimpleNamespace(id="demo", path="demo.yaml", data=parse_text(text))
    report = Report()
    check_unfinished(kpi, report)
    return [(d.line, d.field) for d in report.diagnostics]


def test_a_todo_deep_in_a_list_is_reported_at_its_line():
    text = "id: demo\nexamples:\n  - name: ok\n    notes: [fine, 'TODO: say why']\n"
    assert _warnings(text) == [(4, "examples[0].notes[1]")]


def test_placeholders_are_reported_and_finished_texts_are_not():
    text = "id: demo\nformula:\n  expression: placeholder_demo\nsummary: Placeholder.\nx: TODOS\n"
    assert _warnings(text) == [(3, "formula.expression"), (4, "summary")]
