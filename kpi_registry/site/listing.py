"""Long listings split into pages, so no page grows with the size of the library.

A listing of up to ``LIMIT`` entries is shown whole. A longer one is split by first letter,
and a letter with more than ``LIMIT`` entries into numbered parts of that size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

LIMIT = 400


@dataclass
class Part(Generic[T]):
    label: str  # "A", "A (2 of 3)", "0-9"; "" for an unsplit listing
    slug: str  # used in the part page's path
    items: list[T]


def letter(text: str) -> str:
    c = text[:1].upper()
    if "A" <= c <= "Z":
        return c
    return "0-9" if c.isdigit() else "#"


def split(items: Sequence[T], key: Callable[[T], str], limit: int = LIMIT) -> list[Part[T]]:
    """Items sorted by key, in one part, or in parts by letter (and number) when too many."""
    ordered = sorted(items, key=lambda i: (key(i).casefold(), key(i)))
    if len(ordered) <= limit:
        return [Part("", "all", ordered)]
    by_letter: dict[str, list[T]] = {}
    for item in ordered:
        by_letter.setdefault(letter(key(item)), []).append(item)
    parts: list[Part[T]] = []
    for label, group in by_letter.items():
        slug = {"#": "other", "0-9": "0-9"}.get(label, label.lower())
        chunks = [group[i : i + limit] for i in range(0, len(group), limit)]
        for n, chunk in enumerate(chunks, 1):
            if len(chunks) == 1:
                parts.append(Part(label, slug, chunk))
            else:
                parts.append(Part(f"{label} ({n} of {len(chunks)})", f"{slug}-{n}", chunk))
    return parts
