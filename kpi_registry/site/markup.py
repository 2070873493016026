"""Escaping and the Jinja2 environment for the site's templates.

Text from a definition is data, never markup. Templates autoescape everything for HTML; where a
template writes Markdown (headings, link lists) it uses the ``md`` filter, which also neutralises
every Markdown construct, so a definition cannot add a link, an image or raw HTML to the site.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from .numbers import format_input, format_value

#: Markdown syntax that can start anywhere in a line: code, emphasis, links and images (an
#: escaped "[" cannot open one), attribute lists, table cells, headings' closing hashes.
_INLINE = re.compile(r"([\\`*_{}\[\]#|])")
#: Syntax that only counts at the start of a line: list items ("- ", "+ ", "1. ").
_LINE_START = re.compile(r"^(?:([-+])|(\d+)([.)]))")

_SPACE = re.compile(r"\s+")


def md_inline(text: Any) -> Markup:
    """Arbitrary text as literal Markdown on one line: HTML-escaped, syntax backslashed."""
    s = html.escape(_SPACE.sub(" ", str(text)).strip(), quote=False)
    s = _INLINE.sub(r"\\\1", s)
    s = _LINE_START.sub(_escape_start, s, count=1)
    return Markup(s)


def text(value: Any) -> Markup:
    """Text for HTML written by a template, as Markdown would write it from md_inline(value):
    white space collapsed, <, > and & escaped (quotes are left as they are in text)."""
    return Markup(html.escape(_SPACE.sub(" ", str(value)).strip(), quote=False))


def _escape_start(m: re.Match[str]) -> str:
    return "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3)


def paragraphs(text: Any) -> list[str]:
    """Paragraphs of a text field: split on blank lines, whitespace inside each collapsed."""
    parts = re.split(r"\n\s*\n", str(text).strip())
    return [_SPACE.sub(" ", p).strip() for p in parts if p.strip()]


def anchor(text: str) -> str:
    """A stable, ASCII-only fragment id."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "x"


def text_block(value: Any, cls: str | None = None) -> Markup:
    """A text field as HTML paragraphs, wrapped in a <div> only when a class is asked for.
    A filter, not a template macro: a KPI page has a dozen, and a macro call cost more than
    what it writes."""
    body = "".join(f"<p>{escape(p)}</p>\n" for p in paragraphs(value))
    return Markup(f'<div class="{escape(cls)}">\n{body}</div>\n' if cls else body)


def bullet_block(items: Any) -> Markup:
    """A list field as an HTML list (see text_block)."""
    body = "".join(f"<li>{escape(item)}</li>\n" for item in items)
    return Markup(f'<ul class="kpi-list">\n{body}</ul>\n')


def environment(template_dir: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        autoescape=True,  # every {{ }} is HTML-escaped unless a filter returns Markup
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the build, loudly
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # one environment per build: no stat of each template per page
    )
    env.filters["md"] = md_inline
    env.filters["text"] = text
    env.filters["paragraphs"] = paragraphs
    env.filters["text_block"] = text_block
    env.filters["bullet_block"] = bullet_block
    env.filters["value"] = format_value
    env.filters["cell"] = format_input
    env.filters["anchor"] = anchor
    env.filters["yaml_str"] = yaml_str
    env.filters["safe_url"] = safe_url
    from .examples import table_html

    env.globals["table_html"] = table_html
    return env


def safe_url(url: Any) -> str:
    """An outside address only if it is plain http(s): never javascript:, data: and the like."""
    from urllib.parse import urlsplit

    if not isinstance(url, str):
        return ""
    text = url.strip()
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    if any(ord(c) < 33 for c in text):
        return ""
    return text


def yaml_str(text: Any) -> Markup:
    """A YAML front-matter scalar holding HTML-escaped text.

    The theme prints front-matter titles without escaping, so they are escaped here; JSON string
    syntax is valid YAML and quotes everything else.
    """
    import json

    return Markup(json.dumps(html.escape(str(text), quote=False)))
