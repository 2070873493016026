"""Reading files: safe YAML with positions, and every way a file can be unreadable."""

from __future__ import annotations

import re
import resource
import time

import pytest

from kpi_registry.errors import DefinitionError
from kpi_registry.loading import parse_text, read_file


def one_error(fn, *args) -> str:
    with pytest.raises(DefinitionError) as info:
        fn(*args)
    assert len(info.value.diagnostics) == 1
    return str(info.value.diagnostics[0])


def test_positions_of_keys_and_items_are_kept():
    data = parse_text("a: 1\nb:\n  - x\n  - {c: 2}\n")
    assert data.key_pos["b"] == (2, 1)
    assert data["b"].item_pos == [(3, 5), (4, 5)]
    assert data["b"][1].key_pos["c"] == (4, 6)


def test_dates_stay_text():
    assert parse_text("month: 2024-01-31\n")["month"] == "2024-01-31"


def test_duplicate_key_names_both_lines():
    msg = one_error(parse_text, "id: a\nname: x\nid: b\n", "f.yaml")
    assert msg == "f.yaml:3:1: id: duplicate key 'id' (first defined at line 1)"


def test_nested_duplicate_key():
    msg = one_error(parse_text, "formula:\n  expression: a\n  expression: b\n", "f.yaml")
    assert msg.startswith("f.yaml:3:3: expression: duplicate key")


def test_malformed_yaml_points_at_line():
    msg = one_error(parse_text, "id: a\nname: [unclosed\nsummary: x\n", "f.yaml")
    assert msg.startswith("f.yaml:3:")
    assert "malformed YAML" in msg


def test_python_tags_are_refused():
    msg = one_error(parse_text, "id: !!python/object/apply:os.system ['echo hi']\n", "f.yaml")
    assert "not allowed" in msg and "python" in msg


def test_empty_and_whitespace_files():
    assert "file is empty" in one_error(parse_text, "", "f.yaml")
    assert "file is empty" in one_error(parse_text, "   \n# only a comment\n", "f.yaml")


def test_top_level_must_be_a_mapping():
    assert "found a list" in one_error(parse_text, "- a\n- b\n", "f.yaml")
    assert "found a str" in one_error(parse_text, "just text\n", "f.yaml")


def test_non_utf8_file_names_line_and_byte(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("id: a\nname: Caf\xe9\n".encode("latin-1"))
    msg = one_error(read_file, path)
    assert msg.startswith(f"{path}:2:10:")
    assert "not valid UTF-8" in msg and "0xe9" in msg


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfid: a\n")
    assert read_file(path).data["id"] == "a"


def test_alias_bomb_is_refused_fast_with_bounded_memory():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    text = "\n".join(lines) + "\n"
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    msg = one_error(parse_text, text, "bomb.yaml")
    assert time.perf_counter() - start < 2.0
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 100_000  # 9^9 expanded strings would need gigabytes
    assert "alias bomb" in msg


def test_modest_aliases_are_fine():
    data = parse_text("base: &b {x: 1}\nuse: *b\n")
    assert data["use"] == {"x": 1}


@pytest.mark.parametrize(
    "nested",
    [
        "[" * 50_000 + "]" * 50_000,  # flow sequences
        "{a: " * 30_000 + "1" + "}" * 30_000,  # flow mappings
        "\n  " + "- " * 50_000 + "x",  # block sequences on one line
    ],
    ids=["flow-seq", "flow-map", "block-seq"],
)
def test_nesting_that_would_crash_the_yaml_library_is_refused_at_its_line(tmp_path, nested):
    # PyYAML's C composer recurses per level: tens of thousands of levels were a segmentation
    # fault (exit 139, no message). A separate process, so a regression cannot take pytest down.
    import subprocess
    import sys

    path = tmp_path / "deep.yaml"
    path.write_text(f"id: deep\nname: {nested}\n")
    done = subprocess.run(
        [sys.executable, "-m", "kpi_registry.cli", "validate", "--no-bundled", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Our contract, not the wording: whichever answers first (our depth check, or libyaml's own
    # limit since PyYAML 6.0.4) the file is refused at its line and column, as one error.
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    assert re.search(rf"^{re.escape(str(path))}:[23]:\d+: \S", output, re.M), output
    assert "0 definitions, 1 error" in output


def test_merge_keys_and_equals_keys_read_as_before():
    """Mappings are flattened only when the text could need it: merge keys, the '=' key and
    an explicit !!merge still read as PyYAML's safe loader reads them."""
    merged = parse_text("base: &b {x: 1, y: 2}\nchild:\n  <<: *b\n  z: 3\n")
    assert dict(merged["child"]) == {"x": 1, "y": 2, "z": 3}
    explicit = parse_text("base: &b {x: 1}\nchild:\n  ? !!merge <<\n  : *b\n")
    assert dict(explicit["child"]) == {"x": 1}
    assert parse_text("=: 1\n")["="] == 1
    plain = parse_text("a:\n  b: 1\n  c: [x, y]\n")
    assert plain["a"].key_pos == {"b": (2, 3), "c": (3, 3)}


@pytest.mark.parametrize(
    "scalar",
    [
        "1",
        "-0x1F",
        "1_000",
        "+1",
        "0.",
        "1.5e3",
        ".inf",
        "-.Inf",
        ".NaN",
        "~",
        "null",
        "Null",
        "",
        "yes",
        "No",
        "off",
        "True",
        "FALSE",
        "'1'",
        '"true"',
        "three",
        "0o17",
        "=x",
        "<<x",
        "1e999",
        "12:30:00",
        "190:20:30",
        "[1, '2']",
        "{x: y}",
        "!!str 1",
        "!!int '3'",
    ],
)
def test_plain_scalars_read_as_pyyaml_reads_them(scalar):
    """The loader's own tag resolution (a shortcut on the hot path) agrees with PyYAML's."""
    import yaml

    from kpi_registry.loading import to_plain

    text = f"a: {scalar}\n"
    assert to_plain(parse_text(text)) == yaml.safe_load(text)


def test_timestamps_stay_text_too():
    assert parse_text("b: 2024-01-31T10:00:00\n") == {"b": "2024-01-31T10:00:00"}
