"""Links between generated pages, checked as they are made.

Every page is registered before any is written; asking for a link to a page that will not
exist is a bug in the generator and stops the build at once, before mkdocs is even started.
Markdown links (``[x](y.md)``) are checked again by mkdocs in strict mode; links inside HTML
(the relation map, the summary card) are only checked here.
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import KPIError


class BrokenLink(KPIError):
    pass


class Links:
    def __init__(self) -> None:
        self.pages: set[str] = set()
        self.files: set[str] = set()

    def add(self, path: str) -> str:
        self.pages.add(path)
        return path

    def add_file(self, path: str) -> str:
        self.files.add(path)
        return path

    def _check(self, source: str, target: str) -> None:
        if target not in self.pages and target not in self.files:
            raise BrokenLink(f"page {source} links to {target}, which is not generated")

    def md(self, source: str, target: str) -> str:
        """Relative path from one Markdown page to another (or to a file), for [x](...)."""
        self._check(source, target)
        return relative(target, _folder(source))

    def url(self, source: str, target: str) -> str:
        """Relative URL between built pages (directory URLs: kpi/x.md is served at kpi/x/)."""
        self._check(source, target)
        if target in self.pages:
            rel = relative(_url(target), _url(source))
            return "./" if rel == "." else rel + "/"
        return relative(target, _url(source))


def _folder(path: str) -> str:
    return path.rpartition("/")[0]


def _url(page: str) -> str:
    """The folder a page is served from, "" for the site root: kpi/x.md -> kpi/x."""
    stem = page[:-3] if page.endswith(".md") else page
    if stem == "index":
        return ""
    return stem[: -len("/index")] if stem.endswith("/index") else stem


@lru_cache(maxsize=65536)
def relative(target: str, base: str) -> str:
    """posixpath.relpath for clean relative paths ("" is the root), without touching the disk."""
    t = target.split("/") if target else []
    b = base.split("/") if base else []
    common = 0
    while common < min(len(t), len(b)) and t[common] == b[common]:
        common += 1
    parts = [".."] * (len(b) - common) + t[common:]
    return "/".join(parts) or "."
