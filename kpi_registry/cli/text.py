"""Plain text for a terminal: paragraphs and bullet lists wrapped to its width (at most 100)."""

from __future__ import annotations

import textwrap
from typing import Any


def width() -> int:
    import shutil

    return min(100, shutil.get_terminal_size((100, 20)).columns)


def wrap(text: str, indent: str = "  ") -> str:
    columns = width()
    paragraphs = [p for p in str(text).strip().split("\n\n")]
    return "\n".join(
        textwrap.fill(" ".join(p.split()), columns, initial_indent=indent, subsequent_indent=indent)
        for p in paragraphs
    )


def bullets(items: list[Any]) -> str:
    columns = width()
    lines = []
    for item in items:
        text = item if isinstance(item, str) else " - ".join(str(v) for v in item.values())
        lines.append(
            textwrap.fill(
                " ".join(str(text).split()),
                columns,
                initial_indent="  - ",
                subsequent_indent="    ",
            )
        )
    return "\n".join(lines)
