"""`kpi fmt`: canonical field order and layout, comments kept, data never changed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from kpi_registry import cli
from kpi_registry.errors import DefinitionError
from kpi_registry.formatting import canonical_order, files_to_format, format_file, format_text
from kpi_registry.loading import parse_text, to_plain
from kpi_registry.registry import bundled_dir, collect

FIXTURES = Path(__file__).parent / "fixtures" / "extend"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def comments(text: str) -> list[str]:
    return [line.split("#", 1)[1].strip() for line in text.splitlines() if "#" in line]


def top_keys(text: str) -> list[str]:
    return [line.split(":")[0] for line in text.splitlines() if line[:1].isalpha()]


def test_messy_file_matches_the_golden_output():
    messy = (FIXTURES / "fmt" / "messy_kpi.yaml").read_text()
    out = format_text(messy)
    assert out == (FIXTURES / "fmt" / "messy_kpi.formatted").read_text()
    assert to_plain(parse_text(out)) == to_plain(parse_text(messy))  # same data
    assert sorted(comments(out)) == sorted(comments(messy))  # every comment kept
    order = [k for k in top_keys(out) if k in canonical_order()]
    assert order == sorted(order, key=canonical_order().index)
    assert top_keys(out)[-1] == "x_team_note"  # unknown fields go last, not away


def test_comments_travel_with_their_field():
    text = (
        "id: a\n"
        "# about the formula\n"
        "formula:\n"
        "  display: Plain words\n"
        "  # about the expression\n"
        "  expression: sum(x)  # trailing remark\n"
        "name: A\n"
    )
    out = format_text(text)
    lines = out.splitlines()
    assert lines[lines.index("formula:") - 1] == "# about the formula"
    at = next(i for i, line in enumerate(lines) if line.startswith("  expression:"))
    assert lines[at - 1] == "  # about the expression"
    assert lines[at] == "  expression: sum(x)  # trailing remark"
    assert lines[:2] == ["id: a", "name: A"]


def test_block_scalars_keep_their_blank_lines_and_spaces():
    text = "id: a\nname: A\ndefinition: |\n  one\n\n\n  two  \n    indented\n"
    out = format_text(text)
    assert parse_text(out)["definition"] == "one\n\n\ntwo  \n  indented\n"
    # A |+ block keeps its trailing blank lines even when the field moves.
    kept = format_text("id: a\ndefinition: |+\n  keep\n\n\nname: A\n")
    assert parse_text(kept)["definition"] == "keep\n\n\n"
    assert kept.startswith("id: a\nname: A\n\ndefinition: |+\n")


def test_windows_line_endings_and_byte_order_mark():
    text = "\ufeffname: A\r\nid: a\r\n"
    assert format_text(text) == "id: a\nname: A\n"


def test_malformed_yaml_is_reported_with_its_line():
    with pytest.raises(DefinitionError) as info:
        format_text("id: a\nname: [unclosed\nsummary: x\n", "bad.yaml")
    diag = info.value.diagnostics[0]
    assert diag.path == "bad.yaml" and diag.line >= 2


def test_anchors_that_would_break_are_refused_clearly():
    moved = "id: a\nx_base: &b\n  expression: sum(y)\nformula:\n  <<: *b\nname: A\n"
    with pytest.raises(DefinitionError) as info:
        format_text(moved, "anchors.yaml")
    diag = info.value.diagnostics[0]
    assert (diag.path, diag.line, diag.column) == ("anchors.yaml", 2, 9)  # the anchor
    assert diag.message.startswith("anchors and aliases are not supported in definitions")


def test_check_lists_files_and_changes_nothing(tmp_path, capsys):
    messy = tmp_path / "messy_kpi.yaml"
    shutil.copy(FIXTURES / "fmt" / "messy_kpi.yaml", messy)
    tidy = tmp_path / "total_revenue.yaml"
    shutil.copy(FIXTURES / "library" / "total_revenue.yaml", tidy)
    before = messy.read_text()

    code, out, _ = run(capsys, "fmt", "--check", str(tmp_path))
    assert code == 1
    assert f"would reformat {messy}" in out and str(tidy) not in out
    assert "1 file would be reformatted, 1 unchanged" in out
    assert messy.read_text() == before

    code, out, _ = run(capsys, "fmt", "--check", "--diff", str(messy))
    assert "-name:   Messy KPI" in out and "+name: Messy KPI" in out

    code, out, _ = run(capsys, "fmt", str(tmp_path))
    assert code == 0 and f"reformatted {messy}" in out
    assert messy.read_text() == (FIXTURES / "fmt" / "messy_kpi.formatted").read_text()
    assert run(capsys, "fmt", "--check", str(tmp_path))[0] == 0


def test_other_yaml_is_left_alone(tmp_path, capsys):
    workflow = tmp_path / "ci.yaml"
    workflow.write_text("on:   push\njobs:\n    test: {runs-on: ubuntu}\n")
    code, out, _ = run(capsys, "fmt", str(workflow))
    assert code == 0 and "skipped" in out and "not a KPI definition" in out
    assert workflow.read_text() == "on:   push\njobs:\n    test: {runs-on: ubuntu}\n"


def test_taxonomy_files_get_layout_only(tmp_path):
    taxonomy = tmp_path / "_taxonomy.yaml"
    taxonomy.write_text(
        "categories:\n    zeta:\n        name: Z\n        description: Last.\n"
        "    alpha:\n        name: A\n        description: First.\n"
    )
    assert format_file(taxonomy).changed
    assert taxonomy.read_text() == (
        "categories:\n  zeta:\n    name: Z\n    description: Last.\n"
        "  alpha:\n    name: A\n    description: First.\n"
    )
    assert taxonomy in files_to_format([tmp_path])


def test_unreadable_file_fails_the_run_but_not_the_others(tmp_path, capsys):
    (tmp_path / "broken.yaml").write_text("id: broken\nformula: [\n")
    good = tmp_path / "messy_kpi.yaml"
    shutil.copy(FIXTURES / "fmt" / "messy_kpi.yaml", good)
    code, out, err = run(capsys, "fmt", str(tmp_path))
    assert code == 1
    assert "broken.yaml:" in err and "malformed YAML" in err
    assert f"reformatted {good}" in out and "1 could not be read" in out


def test_fixture_library_is_canonical_and_still_valid():
    folder = FIXTURES / "library"
    for path in files_to_format([folder]):
        text = path.read_text()
        assert format_text(text, path, schema=None if path.name.startswith("_") else "kpi") == text
    assert collect([folder], include_bundled=False).report.errors == []


def test_formatting_the_bundled_library_is_idempotent(tmp_path):
    """Every bundled definition, formatted twice (in a copy): the second pass changes
    nothing, data is never changed, and the copy still validates."""
    copy = tmp_path / "definitions"
    shutil.copytree(bundled_dir("definitions"), copy)
    files = files_to_format([copy])
    assert len(files) > 10
    for path in files:
        before = path.read_text()
        first = format_file(path)
        again = format_file(path)
        assert not again.changed, f"{path.name}: a second kpi fmt changed it again"
        assert to_plain(parse_text(first.new)) == to_plain(parse_text(before))
        assert sorted(comments(first.new)) == sorted(comments(before))
    result = collect([copy], include_bundled=False, examples=False)
    assert [str(d) for d in result.report.errors] == []


def _anchored_definition(folder: Path) -> Path:
    """A bundled definition under a new id, its owner anchored and used as a tip by alias, in
    block style, with its name moved after the owner (so kpi fmt has fields to reorder)."""
    source = (bundled_dir("definitions") / "account_view_through_rate.yaml").read_text()
    text = source.replace("account_view_through_rate", "avtr_copy")
    name = re.search(r"^name: .*\n", text, re.M).group(0)
    text = text.replace(name, "", 1)
    text = re.sub(
        r"^owner: (.*)$",
        lambda m: f"owner: &o {m.group(1)}\n{name.strip()}",
        text,
        count=1,
        flags=re.M,
    )
    text = text.replace("tips:\n", "tips:\n  - *o\n", 1)
    path = folder / "avtr_copy.yaml"
    path.write_text(text)
    return path


def test_a_file_with_an_anchor_and_aliases_is_formatted_and_validates(tmp_path, capsys):
    """An alias has its anchor's position in ruamel's tree: the collection holding it is left
    as written instead of copying the anchor's line into it (a false 'duplicate key'); kpi
    validate and kpi fmt both accept the file."""
    path = _anchored_definition(tmp_path)
    before = parse_text(path.read_text())
    code, out, err = run(capsys, "validate", str(path))
    assert code == 0 and out.endswith(" 0 errors\n"), out + err
    code, _, err = run(capsys, "fmt", str(path))
    assert code == 0 and err == ""
    out = path.read_text()
    assert parse_text(out) == before
    assert re.search(r"^owner: &o .*\nversion:", out, re.M)  # name went back to its place
    assert "\ntips:\n  - *o\n  - " in out
    code, _, _ = run(capsys, "fmt", "--check", str(path))
    assert code == 0
    code, out, err = run(capsys, "validate", str(path))
    assert code == 0 and out.endswith(" 0 errors\n"), out + err


def test_an_aliased_block_mapping_is_formatted():
    text = (
        "id: a\nname: A\nformula:\n  expression: sum(x)\ndatapoints:\n  x: &dp\n"
        "    unit: currency\n    description: X.\n  y: *dp\n"
    )
    out = format_text(text, "a.yaml")
    assert parse_text(out) == parse_text(text)
    assert "  y: *dp\n" in out and "duplicate" not in out


def test_comments_around_a_document_end_marker_are_kept():
    text = (
        "name: A\nid: a\nformula: {expression: sum(x)}\n# before the end\n...\n"
        "# after  \n\n# two\n\n"
    )
    assert format_text(text, "a.yaml") == (
        "id: a\nname: A\n\nformula: {expression: sum(x)}\n# before the end\n...\n# after\n\n# two\n"
    )
