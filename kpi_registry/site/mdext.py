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

import xml.etree.ElementTree as etree

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
