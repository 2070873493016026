"""A Python-Markdown extension that passes the generator's HTML blocks through untouched.

The generated pages are mostly HTML written (and escaped) by our templates. Markdown and
MkDocs would otherwise run two HTML parsers over every such block, most of a KPI page's build
time. The templates put each block between ``<!--kpi-html-->`` and ``<!--/kpi-html-->`` lines;
this extension stores the block as raw HTML before those parsers run, and gives the paragraph
that stands in for it an atomic text, so Markdown's inline patterns (some twenty regular
expressions per paragraph) skip it as well.

It only makes the build faster: without it, the markers are plain HTML comments and the same
blocks are parsed as ordinary raw HTML, with the same result. It is a Markdown extension (named
in mkdocs.yml's markdown_extensions), not an MkDocs plugin.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as etree
from dataclasses import dataclass

from markdown import Markdown
from markdown.blockprocessors import BlockProcessor
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from markdown.util import AtomicString

START, END = "<!--kpi-html-->", "<!--/kpi-html-->"


class _RawBlocks(Preprocessor):
    def __init__(self, md: Markdown, placeholders: set[str]):
        super().__init__(md)
        self.placeholders = placeholders

    def run(self, lines: list[str]) -> list[str]:
        self.placeholders.clear()
        out: list[str] = []
        block: list[str] | None = None
        for line in lines:
            if block is None:
                if line == START:
                    block = []
                else:
                    out.append(line)
            elif line == END:
                placeholder = self.md.htmlStash.store("\n".join(block))
                self.placeholders.add(placeholder)
                out.extend(["", placeholder, ""])
                block = None
            else:
                block.append(line)
        if block is not None:  # no end marker: leave the text for the usual parsers
            out.extend([START, *block])
        return out


class _RawBlockParagraph(BlockProcessor):
    """The paragraph holding one of our placeholders, with text no inline pattern touches.

    Markdown's raw-HTML postprocessor then swaps ``<p>placeholder</p>`` for the block, as it
    does for the paragraph Markdown itself would have made.
    """

    def __init__(self, parser, placeholders: set[str]):
        super().__init__(parser)
        self.placeholders = placeholders

    def test(self, parent: etree.Element, block: str) -> bool:
        return block in self.placeholders

    def run(self, parent: etree.Element, blocks: list[str]) -> None:
        etree.SubElement(parent, "p").text = AtomicString(blocks.pop(0))


class RawBlocksExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 - Markdown's API name
        placeholders: set[str] = set()
        # Before MkDocs' raw-HTML scan (21) and Markdown's html_block (20).
        md.preprocessors.register(_RawBlocks(md, placeholders), "kpi_raw_blocks", 25)
        # Before every block processor but the one for empty blocks (100).
        md.parser.blockprocessors.register(
            _RawBlockParagraph(md.parser, placeholders), "kpi_raw_paragraph", 99
        )


def makeExtension(**kwargs) -> RawBlocksExtension:  # noqa: N802 - Markdown's API name
    return RawBlocksExtension(**kwargs)


# -- Generated pages without the parsers ----------------------------------------------------------
#
# A KPI page is nothing but headings and blocks between the markers. For such a page the HTML,
# the table of contents and the anchors Markdown would give are known without running it: the
# blocks come out as written, each heading as the line says. ``convert_generated`` gives them
# for a page written only of those (and of headings whose text no inline pattern changes), and
# None for any other page, which then goes through Markdown as usual. tests/test_site_build.py
# holds the two to the same output for every page of the bundled library.

#: A heading line as the templates write it: level, text, id, whether search skips it.
_HEADING = re.compile(
    r"(?P<level>#{1,6}) (?P<text>\S(?:.*\S)?) \{ #(?P<id>[A-Za-z0-9-]+)"
    r"(?P<exclude> data-search-exclude)? \}"
)
#: Text that Markdown's inline patterns leave as written: no backslash escapes, none of the
#: characters of Markdown or HTML syntax, no white space but spaces, ``&`` only in the
#: entities html.escape writes; the h1 may end with the abbreviations' <small>.
_PLAIN = r"(?:[^\\`*_{}\[\]<>#!|~=^&\x00-\x1f\x7f\s]|&(?:amp|lt|gt);| )*"
_HEADING_TEXT = re.compile(rf'{_PLAIN}(?: <small class="kpi-abbr">{_PLAIN}</small>)?')
#: What Markdown's first preprocessor would change (tabs, carriage returns, lines of spaces,
#: its own placeholder characters): such a page goes through Markdown.
_NORMALIZED = re.compile(r"[\t\r\x02\x03]|^ +$", re.M)


#: What Markdown runs on a page with the extensions site/mkdocs.yml names (and MkDocs' own
#: processors). Any other (a smarty or abbr extension added to the config, say) may change
#: the headings or the blocks, so a page then goes through Markdown.
_KNOWN = {
    "preprocessors": {
        "normalize_whitespace", "kpi_raw_blocks", "html_block", "fenced_code_block",
        "mkdocs_raw_html",
    },
    "treeprocessors": {
        "inline", "prettify", "unescape", "toc", "attr_list", "indent-highlight",
        "mkdocs_extract_anchors", "relpath", "mkdocs_extract_title",
    },
    "postprocessors": {"raw_html", "amp_substitute"},
    "inlinePatterns": {
        "autolink", "automail", "backtick", "em_strong", "entity", "escape", "html",
        "image_link", "image_reference", "linebreak", "link", "reference", "short_image_ref",
        "short_reference",
    },
    "blockprocessors": {
        "admonition", "code", "details", "empty", "hashheader", "hr", "indent",
        "kpi_raw_paragraph", "olist", "paragraph", "quote", "reference", "setextheader",
        "table", "ulist",
    },
}  # fmt: skip


def _known_processors(md: Markdown) -> bool:
    for kind, names in _KNOWN.items():
        registry = md.parser.blockprocessors if kind == "blockprocessors" else getattr(md, kind)
        if sum(name in registry for name in names) != len(registry):  # one not in the list
            return False
    return all(name in md.treeprocessors for name in ("toc", "attr_list")) and (
        "raw_html" in md.postprocessors
    )


@dataclass
class GeneratedPage:
    html: str
    toc_tokens: list[dict]  # nested, as the toc extension leaves them in md.toc_tokens
    anchors: set[str]  # the ids MkDocs finds in the page
    title: str | None  # the text of a first-line h1, as MkDocs reads it for the title


def convert_generated(md: Markdown, text: str) -> GeneratedPage | None:
    """What ``md.convert(text)`` gives for a page written only of headings and marked blocks;
    None for any other page (or a configuration of the toc extension this does not follow)."""
    from markdown.extensions.toc import nest_toc_tokens, strip_tags

    if not _known_processors(md):
        return None
    toc = md.treeprocessors["toc"]
    if (
        toc.base_level != 0
        or toc.use_anchors
        or toc.use_permalinks not in (False, None)
        or _NORMALIZED.search(text)
    ):
        return None
    block_level = md.postprocessors["raw_html"].isblocklevel
    parts: list[str] = []
    tokens: list[dict] = []
    anchors: set[str] = set()
    title = None
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        if line == START:
            try:
                end = lines.index(END, i + 1)
            except ValueError:
                return None
            block = "\n".join(lines[i + 1 : end])
            if not block.strip():
                return None
            parts.append(block if block_level(block) else f"<p>{block}</p>")
            i = end + 1
            continue
        m = _HEADING.fullmatch(line)
        if m is None or not _HEADING_TEXT.fullmatch(m["text"]):
            return None
        level, inner, anchor = len(m["level"]), m["text"], m["id"]
        attributes = f' data-search-exclude id="{anchor}"' if m["exclude"] else f' id="{anchor}"'
        parts.append(f"<h{level}{attributes}>{inner}</h{level}>")
        anchors.add(anchor)
        if toc.toc_top <= level <= toc.toc_bottom:
            tokens.append(
                {
                    "level": level,
                    "id": anchor,
                    "name": strip_tags(inner),
                    "html": inner,
                    "data-toc-label": "",
                }
            )
        if level == 1 and len(parts) == 1:
            title = strip_tags(inner)
        i += 1
    if not parts:
        return None
    return GeneratedPage("\n".join(parts), nest_toc_tokens(tokens), anchors, title)
