"""`kpi fmt`: put definition fields in the canonical order and normalise layout, keeping comments.

The canonical order is the order of properties in ``kpi.schema.json`` (nested objects too:
``formula``, datapoints, relations, examples...). Formatting runs in three passes:

1. *Reorder* block mappings as blocks of text. A key moves together with the comment lines
   directly above it and everything below it, so a comment stays next to the field it
   describes. (Reordering ruamel's tree instead would leave such comments behind: ruamel
   attaches a comment line to the value *before* it.)
2. *Re-emit* with ruamel.yaml in round-trip mode: 2-space indentation, list dashes indented by
   2, quotes and block-scalar styles as written, long lines never re-wrapped, ``null`` spelled
   out.
3. *Space*: no blank lines except one before each top-level field from ``definition`` on
   (the layout every bundled definition uses) and between paragraphs of comments; comments
   aligned with the line they precede; no trailing whitespace.

The result is parsed again and compared with the input: formatting never changes data. If it
would, the file is left alone and the problem reported.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import DefinitionError, Diagnostic, KPIError
from .files import replace_text
from .loading import parse_text, to_plain
from .registry import TAXONOMY_FILE, bundled_dir
from .schema import kpi_schema

#: Top-level fields from this one on get a blank line before them (the attributes and all
#: later sections); the identity header above it stays compact.
FIRST_BODY_FIELD = "definition"

_BLOCK_SCALAR_HEADER = re.compile(r"[|>][-+0-9]*\s*(#.*)?$")


def _yaml():
    """A round-trip ruamel.yaml instance configured for the canonical layout."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never re-wrap: authors break long text with >- themselves
    yaml.preserve_quotes = True
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


@cache
def canonical_order() -> tuple[str, ...]:
    """Top-level field order: the order of properties in the JSON Schema."""
    return tuple(kpi_schema()["properties"])


# -- public API -----------------------------------------------------------------------------
def format_text(text: str, path: str | Path = "<string>", *, schema: Any = "kpi") -> str:
    """The canonical form of one definition file's text.

    ``schema`` gives the field order ("kpi": the definition schema; None: keep the order, only
    normalise layout, as for _taxonomy.yaml). Raises DefinitionError for unreadable YAML and
    KPIError if formatting would change the data.
    """
    path = str(path)
    if text.startswith("\ufeff"):
        text = text[1:]
    if schema == "kpi":
        schema = kpi_schema()
    before = to_plain(parse_text(text, path))  # also refuses unsafe or malformed YAML
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text, end = _split_at_document_end(text)
    return _format_document(text, path, schema, before) + end


def _split_at_document_end(text: str) -> tuple[str, str]:
    """The document, and from its ``...`` end marker on, the lines after it (comments), which
    ruamel would drop: they are kept as written, less trailing spaces and blank lines."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.DocumentEndEvent) and event.explicit:
            lines = text.split("\n")
            at = event.start_mark.line
            tail = [line.rstrip() for line in lines[at:]]
            while tail and not tail[-1]:
                tail.pop()
            return "\n".join(lines[:at]) + "\n", "\n".join(tail) + "\n"
    return text, ""


def _format_document(text: str, path: str, schema: Any, before: Any) -> str:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    tree = _load(text, path)
    keep = _protected(text)  # lines inside multi-line scalars never move on their own
    reordered = "\n".join(_block(lines, keep, tree, schema, 0, len(lines), top=True)) + "\n"
    if reordered != text:
        try:
            tree = _load(reordered, path)  # positions changed; ruamel needs to read it again
        except DefinitionError as e:
            if "alias" not in str(e):
                raise
            line, column = _first_anchor(text)
            message = (
                "anchors and aliases are not supported in definitions whose fields kpi fmt "
                "puts in order: an alias (*name) would come before its anchor (&name); write "
                "the value out in full"
            )
            raise DefinitionError([Diagnostic(path, line, column, "", message)]) from None
    _reorder_flow(tree, schema)
    out = io.StringIO()
    _yaml().dump(tree, out)
    result = _space(out.getvalue(), schema)
    after = to_plain(parse_text(result, path))
    if after != before:
        raise KPIError(
            f"{path}: formatting would change the data, so the file was left as it is; "
            "please report this with the file attached"
        )
    return result


class WriteError(KPIError):
    """A formatted file could not be written; the file on disk is as it was."""


@dataclass
class FormatResult:
    path: Path
    changed: bool
    old: str
    new: str
    skipped: str = ""  # why the file was left alone, if it was


def is_definition(data: Any) -> bool:
    """Only KPI definitions are formatted, so a broad pre-commit ``files`` pattern cannot
    touch other YAML (CI workflows, dbt models)."""
    return isinstance(data, dict) and "id" in data and "formula" in data


def format_file(path: str | Path, *, write: bool = True) -> FormatResult:
    """Format one file in place (unless ``write`` is false); say whether it changed."""
    path = Path(path)
    try:
        old = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise DefinitionError(
            [Diagnostic(str(path), 1, 1, "", "file is not valid UTF-8; save it as UTF-8")]
        ) from None
    except OSError as e:
        raise KPIError(f"cannot read {path}: {e.strerror}") from None
    if path.name == TAXONOMY_FILE:
        schema = None
    elif not is_definition(parse_text(old, path)):
        return FormatResult(path, False, old, old, "not a KPI definition (no id and formula)")
    else:
        schema = "kpi"
    new = format_text(old, path, schema=schema)
    changed = new != old
    if changed and write:
        try:
            replace_text(path, new)
        except OSError as e:
            raise WriteError(
                f"cannot write {path}: {e.strerror}; the file was left as it was"
            ) from None
    return FormatResult(path, changed, old, new)


def files_to_format(paths: Iterable[str | Path]) -> list[Path]:
    """Definition files named directly or found (recursively) in the folders given."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            out.extend(
                f
                for f in sorted(p.rglob("*"))
                if f.suffix in (".yaml", ".yml")
                and f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
                and (not f.name.startswith("_") or f.name == TAXONOMY_FILE)
            )
        else:
            raise KPIError(f"{p}: no such file or folder")
    seen: set[Path] = set()
    return [f for f in out if not (f.resolve() in seen or seen.add(f.resolve()))]


def _first_anchor(text: str) -> tuple[int, int]:
    """Line and column (1-based) of the first anchor (&name) in a document, else 1, 1."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for event in yaml.parse(text, Loader=loader):
        if getattr(event, "anchor", None) and not isinstance(event, yaml.AliasEvent):
            return event.start_mark.line + 1, event.start_mark.column + 1
    return 1, 1


# -- pass 1: reorder block mappings as text -------------------------------------------------
def _protected(text: str) -> set[int]:
    """Lines inside multi-line scalars: their blank lines and spaces are part of the value,
    so pass 1 never moves them apart and pass 3 never touches them."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    lines = text.split("\n")
    out: set[int] = set()
    for event in yaml.parse(text, Loader=loader):
        if not isinstance(event, yaml.ScalarEvent):
            continue
        start, end = event.start_mark.line, event.end_mark.line
        if event.style in ("|", ">"):
            last = end - 1
            keep = "+" in lines[start][event.start_mark.column :].split("#")[0]
            while not keep and last > start and not lines[last].strip():
                last -= 1
            out.update(range(start + 1, last + 1))
        elif end > start:
            out.update(range(start + 1, end + 1))
    return out


def _load(text: str, path: str) -> Any:
    from ruamel.yaml.error import YAMLError

    try:
        with warnings.catch_warnings():  # a redefined anchor is valid YAML; ruamel would warn
            warnings.simplefilter("ignore")
            return _yaml().load(text)
    except YAMLError as e:  # parse_text accepted it, so this is a ruamel-only edge case
        mark = getattr(e, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise DefinitionError([Diagnostic(path, line, col, "", f"cannot format: {e}")]) from None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _is_block(node: Any) -> bool:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    return isinstance(node, CommentedMap | CommentedSeq) and bool(node) and not node.fa.flow_style()


def _block(lines, keep, node: Any, schema: Any, lo: int, hi: int, top: bool = False):
    """Lines [lo, hi) with the block collection they hold in canonical order."""
    from ruamel.yaml.comments import CommentedMap

    if not _is_block(node) or not isinstance(schema, dict):
        return lines[lo:hi]
    try:
        if isinstance(node, CommentedMap):
            return _mapping(lines, keep, node, schema, lo, hi, top)
        return _sequence(lines, keep, node, schema, lo, hi)
    except (KeyError, IndexError, AttributeError, TypeError):
        return lines[lo:hi]  # no positions for it (e.g. merged keys): leave it where it is


def _lead_start(lines, keep, line: int, col: int, floor: int, blanks: bool, top: bool):
    """First line of the comments directly above ``line`` that belong to it."""
    start = line
    while start - 1 >= floor:
        above = lines[start - 1]
        if start - 1 in keep:
            break  # part of the value above (e.g. the kept blank lines of a |+ block)
        if above.strip() == "":
            if not blanks:
                break
        elif not (_is_comment(above) and _indent(above) <= col):
            break
        elif top and "yaml-language-server" in above:
            break  # the editor modeline stays the first line of the file
        start -= 1
    return start


def _mapping(lines, keep, node, schema, lo, hi, top):
    keys = list(node.keys())
    where = [node.lc.key(k) for k in keys]
    _check_inside([line for line, _ in where], lo, hi)
    col = where[0][1]
    first = where[0][0]
    dash = lines[first][:col] if lines[first][:col].strip() else ""  # "  - name: x"
    lines = list(lines)
    if dash:
        lines[first] = " " * col + lines[first][col:]
    starts = [
        _lead_start(
            lines,
            keep,
            line,
            col,
            lo if i == 0 else where[i - 1][0] + 1,
            blanks=not (top and i == 0),
            top=top,
        )
        for i, (line, _) in enumerate(where)
    ]
    tail = hi  # comments after the last field stay at the end, whatever moves
    while (
        tail - 1 > where[-1][0]
        and tail - 1 not in keep
        and (
            not lines[tail - 1].strip()
            or (_is_comment(lines[tail - 1]) and _indent(lines[tail - 1]) <= col)
        )
    ):
        tail -= 1
    spans: list[list[str]] = []
    for i, key in enumerate(keys):
        end = starts[i + 1] if i + 1 < len(keys) else tail
        value = node[key]
        sub = schema.get("properties", {}).get(key)
        if _is_block(value) and isinstance(sub, dict):
            key_line = where[i][0]
            spans.append(
                lines[starts[i] : key_line + 1] + _block(lines, keep, value, sub, key_line + 1, end)
            )
        else:
            spans.append(lines[starts[i] : end])
    props = list(schema.get("properties", {}))
    order = sorted(
        range(len(keys)),
        key=lambda i: (props.index(keys[i]) if keys[i] in props else len(props), i),
    )
    out = lines[lo : starts[0]]
    for rank, i in enumerate(order):
        span = list(spans[i])
        if dash and rank == 0:
            at = where[i][0] - starts[i]  # the key line, after its own comments
            span[at] = dash + span[at][col:]
        out.extend(span)
    return out + lines[tail:hi]


def _check_inside(starts: list[int], lo: int, hi: int) -> None:
    """Items written, in order, within the lines of their collection. An alias (*name) has
    the position of its anchor, elsewhere in the file: such a collection is left as it is
    (IndexError: see _block)."""
    if any(not lo <= line < hi for line in starts) or starts != sorted(set(starts)):
        raise IndexError("an item is not written inside its collection")


def _dash_line(lines: list[str], line: int, col: int) -> int:
    """The line holding the '-' of a sequence item whose value starts at (line, col)."""
    if "-" in lines[line][:col]:
        return line
    up = line - 1
    while up > 0 and (not lines[up].strip() or _is_comment(lines[up])):
        up -= 1
    return up if lines[up].lstrip().startswith("-") else line


def _sequence(lines, keep, node, schema, lo, hi):
    item_schema = schema.get("items")
    _check_inside([node.lc.item(i)[0] for i in range(len(node))], lo, hi)
    dashes = [_dash_line(lines, *node.lc.item(i)) for i in range(len(node))]
    _check_inside(dashes, lo, hi)
    dash_col = _indent(lines[dashes[0]])
    heads = [
        dashes[0],
        *(
            _lead_start(lines, keep, d, dash_col, dashes[i], True, False)
            for i, d in enumerate(dashes[1:])
        ),
    ]
    out = lines[lo : heads[0]]
    for i, item in enumerate(node):
        end = heads[i + 1] if i + 1 < len(node) else hi
        out.extend(lines[heads[i] : dashes[i]])
        out.extend(_block(lines, keep, item, item_schema, dashes[i], end))
    return out


# -- pass 2: flow mappings are reordered in the tree (they hold no comment lines) -----------
def _reorder_flow(node: Any, schema: Any) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if not isinstance(schema, dict):
        return
    if isinstance(node, CommentedMap):
        props = list(schema.get("properties", {}))
        if props and node.fa.flow_style():
            for key in sorted(node, key=lambda k: props.index(k) if k in props else len(props)):
                node.move_to_end(key)
        for key, value in node.items():
            _reorder_flow(value, schema.get("properties", {}).get(key))
    elif isinstance(node, CommentedSeq):
        for item in node:
            _reorder_flow(item, schema.get("items"))


# -- pass 3: blank lines, comment indentation, trailing whitespace -------------------------
_TOP_KEY = re.compile(r"([^\s#'\"\-?:][^:#]*?|'[^']*'|\"[^\"]*\")\s*:(\s|$)")


def _space(text: str, schema: Any) -> str:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    protected = _protected(text)
    body_lines: set[int] = set()  # top-level keys that get a blank line above them
    if isinstance(schema, dict):
        props = list(schema.get("properties", {}))
        first_body = props.index(FIRST_BODY_FIELD) if FIRST_BODY_FIELD in props else 0
        for n, line in enumerate(lines):
            match = _TOP_KEY.match(line) if n not in protected else None
            if match:
                key = match.group(1).strip("'\"")
                if key not in props or props.index(key) >= first_body:
                    body_lines.add(n)

    def is_content(n: int) -> bool:
        return n in protected or bool(lines[n].strip()) and not _is_comment(lines[n])

    out: list[str] = []
    spaced: set[int] = set()  # section lines whose blank line already went above comments
    last_content = ""  # the last data line written, for aligning the comments below it
    i = 0
    while i < len(lines):
        if is_content(i):
            if i in body_lines and out and out[-1] != "" and i not in spaced:
                out.append("")
            out.append(lines[i] if i in protected else lines[i].rstrip())
            last_content = lines[i]
            i += 1
            continue
        # A run of blank and comment lines: keep the comments, one blank between paragraphs,
        # each comment aligned with the line it precedes (or with the one it follows).
        j = i
        while j < len(lines) and not is_content(j):
            j += 1
        target = _indent(lines[j]) if j < len(lines) else 0
        run: list[str] = []
        for line in lines[i:j]:
            if not line.strip():
                if run and run[-1] != "":
                    run.append("")
                continue
            own = _indent(line)
            keep = own == target or (last_content and own == _indent(last_content))
            run.append(" " * (own if keep else target) + line.strip())
        while run and run[-1] == "":
            run.pop()
        if run and j in body_lines and out:
            # The section's blank line goes above its own comments, after any comments that
            # still belong to the field before it (those are indented deeper).
            split = 0
            for n, line in enumerate(run):
                if line and _indent(line) <= target:
                    break
                if line:
                    split = n + 1
            head, rest = run[:split], run[split:]
            while rest and rest[0] == "":
                rest.pop(0)
            run = [*head, "", *rest]
            spaced.add(j)
        out.extend(run)
        i = j
    return "\n".join(out).rstrip("\n") + "\n"


def default_paths() -> list[Path]:
    """What `kpi fmt` formats when given no paths: ./definitions, never the bundled copy."""
    here = Path("definitions")
    if here.is_dir():
        return [here]
    bundled = bundled_dir("definitions")
    raise KPIError(
        "give the files or folders to format, e.g. 'kpi fmt my_kpis/' "
        f"(with no paths, kpi fmt formats ./definitions; the bundled library is in {bundled})"
    )
