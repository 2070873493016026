"""Rules about one definition's own fields: its id, its texts, its numbers and links."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from .. import schema
from ..drafts import check_unfinished
from ..errors import Diagnostic, Report
from ..loading import field_name
from ..model import ATTRIBUTES
from .base import KPIRule, Library, Scope, issue, issue_at_value

if TYPE_CHECKING:
    from ..model import KPI

#: Texts that may be left out but, when written, must say something.
TEXT_FIELDS = (
    "name",
    "summary",
    "definition",
    "business_insights",
    "measurement_approach",
    "trend_analysis",
)


class MatchesSchema(KPIRule):
    """The file has the shape kpi.schema.json describes (fields, types, allowed values)."""

    name = "matches-schema"
    scope: ClassVar[Scope] = Scope.FILE

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        return schema.check(kpi.data, str(kpi.path))


class IdMatchesFileName(KPIRule):
    """``id`` is the file's name: a KPI is found by its file, and its file by its id."""

    name = "id-matches-file-name"
    scope: ClassVar[Scope] = Scope.FILE

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        stem, written = kpi.path.stem, kpi.data.get("id")
        if written == stem:
            return []
        return [
            issue(
                kpi,
                ("id",),
                "id",
                f"id {written!r} does not match the file name; rename the file to "
                f"'{written}.yaml' or set id: {stem}",
            )
        ]


class TextsNotBlank(KPIRule):
    """A text field, when written, is not only white space."""

    name = "texts-not-blank"
    scope: ClassVar[Scope] = Scope.FILE

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        return [
            issue(kpi, (name,), name, "must not be empty")
            for name in TEXT_FIELDS
            if isinstance(kpi.data.get(name), str) and not kpi.data[name].strip()
        ]


class FiniteNumbers(KPIRule):
    """Every number is finite: YAML reads ``.inf``, ``.nan`` and ``1e999`` as numbers that
    JSON, SQL and the site cannot write (they crashed ``kpi sql``, ``kpi export`` and ``kpi
    site build``); a missing value is ``null``."""

    name = "finite-numbers"
    scope: ClassVar[Scope] = Scope.FILE

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        floats = kpi.facts is None or kpi.facts.non_finite_float
        if not _any_non_finite(kpi.data, floats):
            return []  # nearly always: no paths to build
        out = []
        stack: list[tuple[tuple, Any]] = [((), kpi.data)]
        while stack:
            path, value = stack.pop()
            if isinstance(value, Mapping):
                stack.extend(((*path, k), v) for k, v in value.items())
            elif isinstance(value, list):
                stack.extend(((*path, i), v) for i, v in enumerate(value))
            elif _non_finite(
                value, in_data=len(path) > 2 and path[0] == "examples" and path[2] == "data"
            ):
                out.append(
                    issue_at_value(
                        kpi,
                        path,
                        field_name(path),
                        f"{value} is not a finite number; write null where there is no value",
                    )
                )
        return out


def _any_non_finite(data: Mapping[str, Any], floats: bool = True) -> bool:
    """Whether the walk above would find anything, without building a path per value: a
    non-finite float anywhere (x - x is NaN for those alone), or text in an example's data
    that reads as one. ``floats=False``: the loader saw no such float, only the examples'
    data is walked."""
    stack: list[Any] = [data] if floats else []
    texts: list[Any] = []  # everything under examples[*].data, where text counts too
    examples = data.get("examples")
    for example in examples.values() if isinstance(examples, Mapping) else _list(examples):
        if isinstance(example, Mapping) and "data" in example:
            texts.append(example["data"])
    for values, in_data in ((stack, False), (texts, True)):
        pop, extend = values.pop, values.extend
        while values:
            value = pop()
            cls = value.__class__
            if cls is str:  # most values: one class test, no isinstance
                if in_data and _non_finite(value, in_data=True):
                    return True
            elif cls is float:
                if value - value != 0:
                    return True
            elif isinstance(value, dict):
                extend(value.values())
            elif isinstance(value, list):
                extend(value)
    return False


def _non_finite(value: Any, in_data: bool) -> bool:
    """A float that is infinite or NaN; in an example's data also text that reads as one
    (YAML reads ``1e999`` without a dot as text, the engine then as infinity)."""
    if isinstance(value, str) and in_data:
        if not _may_overflow(value):
            return False  # most texts (names, periods): no float() raising ValueError
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float) and not math.isfinite(value)


def _may_overflow(text: str) -> bool:
    """Whether float(text) may be infinite or NaN: it spells inf or nan, or is a number too
    large for a float, which takes an exponent or more than 308 digits."""
    lower = text.lower()
    return "inf" in lower or "nan" in lower or "e" in lower or len(text) > 308


class SafeLinks(KPIRule):
    """Every link is http(s) or relative to the site: a ``javascript:`` or ``data:`` link
    would run or show anything on the site and in the exported catalog."""

    name = "safe-links"
    scope: ClassVar[Scope] = Scope.FILE

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        out = []
        for path, url in _links(kpi):
            problem = link_problem(url)
            if problem:
                out.append(issue_at_value(kpi, path, field_name(path), problem))
        return out


def _links(kpi: KPI) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    for i, source in enumerate(_list(kpi.data.get("sources"))):
        if isinstance(source, Mapping) and isinstance(source.get("url"), str):
            out.append((("sources", i, "url"), source["url"]))
    for i, bench in enumerate(_list(kpi.data.get("benchmarks"))):
        source = bench.get("source") if isinstance(bench, Mapping) else None
        if isinstance(source, Mapping) and isinstance(source.get("url"), str):
            out.append((("benchmarks", i, "source", "url"), source["url"]))
    return out


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def link_problem(url: str) -> str | None:
    """Why a link may not be used, or None: only http(s) URLs with a host, and links
    relative to the site (no scheme, not ``//host``), without spaces or control characters
    (browsers drop some of them, so a tab inside ``javascript:`` would still run)."""
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "a link must not be empty or contain spaces or control characters"
    scheme = _SCHEME.match(url)
    if scheme is None:
        if url.startswith(("//", "\\", "/\\")):
            return "a link to another host must start with https:// or http://"
        return None  # relative to the page
    if scheme.group(1).lower() not in ("http", "https"):
        return f"{scheme.group(1)}: links are not allowed; use an https:// or http:// URL"
    if not urlsplit(url).hostname:
        return "an http(s) URL needs a host name, e.g. https://example.com/report"
    return None


class NothingUnfinished(KPIRule):
    """A warning for every TODO and every placeholder ``kpi new`` wrote (an error under
    ``kpi validate --strict``)."""

    name = "nothing-unfinished"

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        if kpi.facts is not None and not kpi.facts.may_be_unfinished:
            return []  # no TODO or placeholder anywhere in the file's text
        found = Report()
        check_unfinished(kpi, found)
        return found.diagnostics


class RequiredAttributes(KPIRule):
    """A reviewed or certified KPI fills all 12 attributes (with more than white space)."""

    name = "required-attributes"

    def check(self, kpi: KPI, library: Library) -> list[Diagnostic]:
        if kpi.status not in ("reviewed", "certified"):
            return []
        out = []
        for attr in ATTRIBUTES:
            value = kpi.data.get(attr)
            if isinstance(value, str) and not value.strip() or value in ([], {}):
                out.append(
                    issue(kpi, (attr,), attr, f"a {kpi.status} KPI must fill this attribute")
                )
        return out
