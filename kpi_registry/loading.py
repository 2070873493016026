"""Reading definition files: safe YAML that remembers where every value came from.

Parsing is kept apart from validation (as in dbt-semantic-interfaces): this module only turns
bytes into plain dicts and lists, refusing anything unsafe or ambiguous, and records the line
and column of every key and item so later layers can point at them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from sys import intern
from typing import Any

import yaml

from .errors import DefinitionError, Diagnostic

try:  # the C parser is several times faster; constructing stays in Python either way
    _BaseLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

#: A document whose aliases would expand to more nodes than this is refused (billion laughs).
MAX_EXPANDED_NODES = 200_000


#: Below this length no line or column (1-based, plus the 2 a block value adds) reaches
#: _pack's 24-bit limit, even were a column counted in UTF-8 bytes (up to 4 a character).
_SHORT_TEXT = (0xFFFFFF - 4) // 4


def _pack(line: int, column: int) -> int:
    if line < 0xFFFFFF and column < 0xFFFFFF:  # always, but for absurd files: no min() calls
        return (line << 24) | column
    return (min(line, 0xFFFFFF) << 24) | min(column, 0xFFFFFF)


def _unpack(packed: int) -> tuple[int, int]:
    return (packed >> 24, packed & 0xFFFFFF)


class YAMLMapping(dict):
    """A dict that knows the (line, column) of each key and of each value, 1-based.

    Positions are packed into one int per key (keys interned): a 20,000-file library keeps
    millions of them in memory at once.
    """

    __slots__ = ("_marks", "pos")

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._marks: dict[str, int] = {}  # key -> key position << 48 | value position
        self.pos: tuple[int, int] = (0, 0)

    @property
    def key_pos(self) -> dict[str, tuple[int, int]]:
        return {k: _unpack(m >> 48) for k, m in self._marks.items()}

    @property
    def value_pos(self) -> dict[str, tuple[int, int]]:
        return {k: _unpack(m & 0xFFFFFFFFFFFF) for k, m in self._marks.items()}

    def key_position(self, key: str) -> tuple[int, int] | None:
        mark = self._marks.get(key)
        return None if mark is None else _unpack(mark >> 48)

    def value_position(self, key: str) -> tuple[int, int] | None:
        mark = self._marks.get(key)
        return None if mark is None else _unpack(mark & 0xFFFFFFFFFFFF)


class YAMLSequence(list):
    """A list that knows the (line, column) of each item, 1-based."""

    __slots__ = ("_marks", "pos")

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._marks: list[int] = []
        self.pos: tuple[int, int] = (0, 0)

    @property
    def item_pos(self) -> list[tuple[int, int]]:
        return [_unpack(m) for m in self._marks]

    def item_position(self, index: int) -> tuple[int, int] | None:
        return _unpack(self._marks[index]) if 0 <= index < len(self._marks) else None


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Problem(Exception):
    def __init__(self, line: int, column: int, message: str, field: str = ""):
        super().__init__(message)
        self.line, self.column, self.message, self.field = line, column, message, field


_MAP, _SEQ, _STR = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:str")
_Scalar, _MapNode, _SeqNode = yaml.ScalarNode, yaml.MappingNode, yaml.SequenceNode
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float"))


class _PositionLoader(_BaseLoader):
    """Safe loader that keeps positions, rejects duplicate keys and bounds alias expansion.

    Nodes are turned into data by one direct walk (`_build`) rather than PyYAML's generic,
    generator-based constructor: it is the hot path when thousands of files are validated.
    """

    may_have_aliases = True
    may_merge = True  # False when the text has no "<<", "=" or "!": nothing to flatten
    #: set when a float read is infinite or NaN (see ReadFacts)
    non_finite_float = False
    #: the text is too short for a line or column to reach _pack's limit: marks are packed
    #: without its checks
    short_text = False

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        if self.may_have_aliases:
            _check_expansion(node)
        return self._build(node)

    def _build(self, node: yaml.Node) -> Any:
        cls = node.__class__
        if cls is _Scalar:
            if node.tag == _STR:
                return node.value
            if node.tag not in _SCALAR_TAGS:
                raise _Problem(*_pos(node), _tag_message(node.tag))
            value = self.yaml_constructors[node.tag](self, node)
            if value.__class__ is float and value - value != 0:  # x - x is NaN for inf and nan
                self.non_finite_float = True
            return value
        if node.tag != (_MAP if cls is _MapNode else _SEQ):
            raise _Problem(*_pos(node), _tag_message(node.tag))
        build = self._build
        short = self.short_text
        if cls is _SeqNode:
            items = node.value
            result = YAMLSequence(
                [c.value if c.__class__ is _Scalar and c.tag == _STR else build(c) for c in items]
            )
            starts = [c.start_mark for c in items]
            result._marks = (
                [(m.line + 1) << 24 | (m.column + 1) for m in starts]
                if short
                else [_pack(m.line + 1, m.column + 1) for m in starts]
            )
            result.pos = _pos(node)
            return result
        if self.may_merge:  # resolves YAML merge keys (<<) safely, and '=' keys to text
            self.flatten_mapping(node)
        result = YAMLMapping()
        result.pos = _pos(node)
        marks = result._marks
        for key_node, value_node in node.value:
            if key_node.__class__ is _Scalar and key_node.tag == _STR:
                key = key_node.value
            else:
                key = build(key_node)
                if key.__class__ is not str:
                    key = str(key)  # keys such as 2024 or true are read as their text
            if key in result:
                first = _unpack(marks[key] >> 48)[0]
                raise _Problem(
                    *_pos(key_node),
                    f"duplicate key {key!r} (first defined at line {first})",
                    field=key,
                )
            key = intern(key)
            # where the value's text begins: after an opening quote, or on the line after a
            # block indicator (| or >), so errors inside a formula point at the right column
            key_mark, mark = key_node.start_mark, value_node.start_mark
            line, column = mark.line + 1, mark.column + 1
            if value_node.__class__ is _Scalar:
                result[key] = value_node.value if value_node.tag == _STR else build(value_node)
                style = value_node.style
                if style is None:  # plain: most values
                    pass
                elif style == '"' or style == "'":
                    column += 1
                elif style == "|" or style == ">":
                    line, column = line + 1, key_mark.column + 3
            else:
                result[key] = build(value_node)
            if short:
                marks[key] = ((key_mark.line + 1) << 24 | (key_mark.column + 1)) << 48 | (
                    line << 24 | column
                )
            else:
                marks[key] = _pack(key_mark.line + 1, key_mark.column + 1) << 48 | _pack(
                    line, column
                )
        return result


def _tag_message(tag: str) -> str:
    return f"tag {tag!r} is not allowed: definitions are plain data (no !!python tags)"


# Dates stay text: periods such as 2024-01-31 are parsed by the engine, not by YAML.
_PositionLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
#: first character of a plain scalar -> the (tag, pattern) pairs to try, in PyYAML's order
#: (those keyed by its first character, then those for any first character)
_IMPLICIT: dict[str, tuple] = {
    first: (*resolvers, *_PositionLoader.yaml_implicit_resolvers.get(None, ()))
    for first, resolvers in _PositionLoader.yaml_implicit_resolvers.items()
    if first is not None
}
_ANY_FIRST = tuple(_PositionLoader.yaml_implicit_resolvers.get(None, ()))


def _resolve(self: Any, kind: type, value: Any, implicit: Any) -> str:
    """PyYAML's ``Resolver.resolve`` for a loader without path resolvers, in fewer steps: the
    parser calls it for every node, which made it a tenth of loading a library."""
    if kind is _Scalar:
        if implicit[0]:
            for tag, pattern in _IMPLICIT.get(value[:1], _ANY_FIRST):
                if pattern.match(value):
                    return tag
        return _STR
    return _SEQ if kind is _SeqNode else _MAP


if not _PositionLoader.yaml_path_resolvers:  # none are registered: the shortcut is exact
    _PositionLoader.resolve = _resolve  # type: ignore[method-assign]


def _check_expansion(root: yaml.Node) -> None:
    """Count nodes as if every alias were expanded, in time linear in the distinct nodes."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not children_done and id(node) in open_nodes:
            raise _Problem(*_pos(node), "a YAML alias refers to itself (recursive structure)")
        if children_done or not children:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[id(node)] > MAX_EXPANDED_NODES:
                raise _Problem(
                    *_pos(node),
                    f"YAML aliases expand to more than {MAX_EXPANDED_NODES:,} values; "
                    "refusing to load (is this an alias bomb?)",
                )
            continue
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


@dataclass(frozen=True)
class ReadFacts:
    """What the loader noticed while reading a file, so a rule can skip a walk of the whole
    definition that would find nothing. Each flag means "may be": True, the rule walks and
    sees; False is certain."""

    #: the text has "TODO", "laceholder" (placeholder_<id>, Placeholder...) or a backslash
    #: (a double-quoted escape can spell any text): a value may still be unfinished
    may_be_unfinished: bool = True
    #: a number read is infinite or NaN (.inf, .nan, 1.0e+999)
    non_finite_float: bool = True


#: The facts of nearly every file, shared rather than one object a file.
NOTHING_NOTICED = ReadFacts(may_be_unfinished=False, non_finite_float=False)


def _unfinished_markers(text: str) -> bool:
    """Whether a value of this text may say TODO or hold a placeholder. Without escapes (no
    backslash) a value is made of the text's own characters, its line breaks folded into
    spaces or kept: a word in a value is a word in the text."""
    return "TODO" in text or "laceholder" in text or "\\" in text


@dataclass
class Document:
    """One parsed file: the data plus where it came from and what reading it noticed."""

    path: Path
    data: YAMLMapping
    facts: ReadFacts = field(default_factory=ReadFacts)


#: Deeper nesting is refused before the document is built: PyYAML's C composer recurses once
#: per level and crashes the interpreter (a segmentation fault, no error) some 30,000 levels
#: down. A definition needs fewer than ten.
MAX_DEPTH = 100
#: Each level takes at least one character, and up to 20,000 levels the composer is safe
#: (deeper than Python's recursion limit, our own walk then says "nested too deeply"): shorter
#: texts, every real definition among them, are not scanned at all.
_SAFE_LENGTH = 16_000


def _may_nest_deeply(text: str) -> bool:
    """A cheap bound: each level costs a bracket, a "- " or "? " indicator, or more indentation."""
    if len(text) <= _SAFE_LENGTH:
        return False
    openers = text.count("[") + text.count("{") + text.count("- ") + text.count("? ")
    return openers > 10 * MAX_DEPTH or "\n" + " " * MAX_DEPTH in text


def _check_depth(text: str) -> None:
    """Walk the parser's events (libyaml keeps its own stack: no recursion) to the first level
    past MAX_DEPTH."""
    depth = 0
    starts = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
    ends = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, starts):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise _Problem(
                    mark.line + 1,
                    mark.column + 1,
                    f"YAML nested more than {MAX_DEPTH} levels deep; a definition needs a few",
                )
        elif isinstance(event, ends):
            depth -= 1


def parse_text(text: str, path: str | Path = "<string>") -> YAMLMapping:
    """Parse one YAML document into a positioned Mapping, or raise DefinitionError."""
    return _parse(text, path)[0]


def _parse(text: str, path: str | Path) -> tuple[YAMLMapping, ReadFacts]:
    path = str(path)
    if not text.strip():
        raise DefinitionError([Diagnostic(path, 1, 1, "", "file is empty")])
    try:
        if _may_nest_deeply(text):
            _check_depth(text)
        loader = _PositionLoader(text)
        loader.may_have_aliases = "&" in text and "*" in text  # no anchor, no alias, no bomb
        loader.may_merge = "<<" in text or "=" in text or "!" in text  # !!merge, !!value
        loader.short_text = len(text) < _SHORT_TEXT
        try:
            data = loader.get_single_data()
            non_finite = loader.non_finite_float
        finally:
            loader.dispose()
    except _Problem as p:
        raise DefinitionError([Diagnostic(path, p.line, p.column, p.field, p.message)]) from None
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        # _build refuses unknown tags itself: what reaches here is a bad merge key (<<)
        problem = e.problem or "cannot construct value"
        raise DefinitionError([Diagnostic(path, line, col, "", problem)]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        problem = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context", None)
        message = f"malformed YAML: {problem}" + (f" ({context})" if context else "")
        raise DefinitionError([Diagnostic(path, line, col, "", message)]) from None
    except RecursionError:
        raise DefinitionError([Diagnostic(path, 1, 1, "", "YAML nested too deeply")]) from None
    if data is None:
        raise DefinitionError([Diagnostic(path, 1, 1, "", "file is empty")])
    if not isinstance(data, YAMLMapping):
        kind = "list" if isinstance(data, list) else type(data).__name__
        raise DefinitionError(
            [Diagnostic(path, 1, 1, "", f"top level must be a mapping of fields, found a {kind}")]
        )
    unfinished = _unfinished_markers(text)
    if not unfinished and not non_finite:
        return data, NOTHING_NOTICED
    return data, ReadFacts(may_be_unfinished=unfinished, non_finite_float=non_finite)


def read_file(path: str | Path) -> Document:
    """Read and parse one definition file (UTF-8 only)."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise DefinitionError(
            [
                Diagnostic(
                    str(path),
                    line,
                    column,
                    "",
                    f"file is not valid UTF-8 (byte 0x{raw[e.start]:02x}); save it as UTF-8",
                )
            ]
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return Document(path, *_parse(text, path))


def position_of(data: Any, field_path: tuple) -> tuple[int, int]:
    """The best-known (line, column) for a field path such as ("formula", "expression")."""
    best = getattr(data, "pos", (1, 1)) or (1, 1)
    node = data
    for part in field_path:
        if isinstance(node, YAMLMapping) and part in node:
            best = node.key_position(part) or best
            node = node[part]
        elif isinstance(node, YAMLSequence) and isinstance(part, int) and 0 <= part < len(node):
            best = node.item_position(part) or best
            node = node[part]
        else:
            break
    return best


def field_name(path: tuple) -> str:
    """A field path as messages write it: ``examples[0].expected``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def value_position(data: Any, field_path: tuple) -> tuple[int, int]:
    """Where a field's value starts (for pointing inside a formula string)."""
    *parents, last = field_path
    node = data
    for part in parents:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return position_of(data, field_path)
    if isinstance(node, YAMLMapping) and last in node:
        return node.value_position(last) or position_of(data, field_path)
    return position_of(data, field_path)


def to_plain(value: Any) -> Any:
    """Strip position bookkeeping (for JSON export and equality in tests)."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value
