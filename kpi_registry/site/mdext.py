"""A Python-Markdown extension that passes the generator's HTML blocks through untouched.

The generated pages are mostly HTML written (and escaped) by our templates. Markdown and
MkDocs would otherwise run two HTML parsers over every such block, most of a KPI page's build
time. The templates put each block between ``<!--kpi-html-->`` and ``<!--/kpi-html-->`` lines;
this extension stores the block as raw HTML before those parsers run.

It only makes the build faster: without it, the markers are plain HTML comments and the same
blocks are parsed as ordinary raw HTML, with the same result. It is a Markdown extension (named
in mkdocs.yml's markdown_extensions), not an MkDocs plugin.
"""

from __future__ import annotations

from markdown import Markdown
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor

START, END = "<!--kpi-html-->", "<!--/kpi-html-->"


class _RawBlocks(Preprocessor):
    def run(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        block: list[str] | None = None
        for line in lines:
            if block is None:
                if line == START:
                    block = []
                else:
                    out.append(line)
            elif line == END:
                out.extend(["", self.md.htmlStash.store("\n".join(block)), ""])
                block = None
            else:
                block.append(line)
        if block is not None:  # no end marker: leave the text for the usual parsers
            out.extend([START, *block])
        return out


class RawBlocksExtension(Extension):
    def extendMarkdown(self, md: Markdown) -> None:  # noqa: N802 - Markdown's API name
        # Before MkDocs' raw-HTML scan (21) and Markdown's html_block (20).
        md.preprocessors.register(_RawBlocks(md), "kpi_raw_blocks", 25)


def makeExtension(**kwargs) -> RawBlocksExtension:  # noqa: N802 - Markdown's API name
    return RawBlocksExtension(**kwargs)
