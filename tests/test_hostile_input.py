"""Hostile and odd definitions (issue 13): non-finite numbers, links that are not http(s),
and thousands of broken references, each refused at its file:line:col, quickly."""

from __future__ import annotations

import pytest

from kpi_registry.cli import main
from kpi_registry.registry import collect


def messages(folder) -> list[str]:
    return [str(d) for d in collect([folder], include_bundled=False).report.diagnostics]


HEAD = """id: a
name: A
summary: Test KPI a.
category: revenue_retention
unit: currency
direction: higher_is_better
status: draft
definition: The a used in tests.
datapoints:
  - name: revenue
    description: Revenue.
    unit: currency
    rows: sum
    time: stock
    missing: zero
"""


def test_a_formula_number_beyond_a_double_is_refused_at_its_column(library):
    path = library.write("a.yaml", HEAD + "formula:\n  expression: sum(revenue) * 1e999\n")
    (msg,) = messages(library.root)
    assert msg.startswith(f"{path}:17:30: formula.expression: number 1e999 is too large")


@pytest.mark.parametrize(
    "command", [["sql", "a", "--table", "t", "--period", "month"], ["export"], ["validate"]]
)
def test_commands_refuse_an_infinite_formula_number_instead_of_crashing(
    library, command, capsys, tmp_path
):
    path = library.write("a.yaml", HEAD + "formula:\n  expression: sum(revenue) * 1e999\n")
    if command == ["export"]:
        command = ["export", "--out", str(tmp_path / "catalog.json")]
    folder = [str(library.root)] if command == ["validate"] else ["--path", str(library.root)]
    code = main([*command, *folder])
    out = capsys.readouterr()
    err = out.err + out.out  # kpi validate reports on standard output
    assert code == 1, err
    assert f"{path}:17:30" in err and "Traceback" not in err


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", ".NaN", "1e999"])
def test_a_non_finite_example_input_is_refused_at_its_line(library, text):
    example = (
        "formula:\n  expression: sum(revenue)\n"
        "examples:\n"
        "  - title: t\n"
        "    data:\n"
        f"      - {{month: 2024-01, revenue: {text}}}\n"
        "    parameters: {period: month}\n"
        "    expected:\n"
        "      - {month: 2024-01, a: 1}\n"
    )
    path = library.write("a.yaml", HEAD + example)
    found = [m for m in messages(library.root) if "not a finite number" in m]
    assert len(found) == 1, messages(library.root)
    assert found[0].startswith(f"{path}:21:35")
    assert "examples[0].data[0].revenue:" in found[0]


def test_a_non_finite_benchmark_is_refused(library):
    bench = {
        "value": float("inf"),
        "segment": "all",
        "source": {"title": "T", "url": "https://e.org"},
    }
    library.add("a", benchmarks=[bench])
    (msg,) = messages(library.root)
    assert "benchmarks[0].value: inf is not a finite number" in msg


BAD_LINKS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "java\tscript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/x",
    "https://",
    "http:///path",
]


@pytest.mark.parametrize("url", BAD_LINKS)
@pytest.mark.parametrize("where", ["sources", "benchmarks"])
def test_only_http_and_relative_links_are_valid(library, url, where, tmp_path, capsys):
    if where == "sources":
        fields = {"sources": [{"title": "T", "url": url}]}
        field = "sources[0].url"
    else:
        source = {"title": "T", "url": url}
        fields = {"benchmarks": [{"value": 1, "segment": "all", "source": source}]}
        field = "benchmarks[0].source.url"
    path = library.add("a", **fields)
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "url:" in text)
    (msg,) = messages(library.root)
    assert msg.startswith(f"{path}:{line}:") and f" {field}: " in msg
    out = tmp_path / "catalog.json"
    assert main(["export", "--out", str(out), "--path", str(library.root)]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "url",
    ["https://example.org/report?x=1#y", "http://example.org", "../guides/x.md", "notes.html"],
)
def test_http_and_relative_links_are_valid(library, url):
    library.add("a", sources=[{"title": "T", "url": url}])
    assert messages(library.root) == []
