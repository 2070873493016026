"""Shared by the site tests: site builds made once per test session, and an HTML scanner.

The whole-library build is expensive, so ``bundled_site()`` is cached at module level (a module
is imported once per session) and used by both tests/test_site.py and the browser test.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from kpi_registry.site.build import BuildReport, build_site, default_layout
from kpi_registry.site.progress import Progress

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "site"
LIB = FIXTURES / "lib"
XSS = FIXTURES / "xss"


def _tmp() -> Path:
    path = Path(tempfile.mkdtemp(prefix="kpi-site-test-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def build(
    paths=(), *, include_bundled: bool = False, jobs: int = 1, root: Path | None = None
) -> tuple[Path, BuildReport]:
    """Build a site strictly into a fresh folder; returns (html folder, report)."""
    root = root or _tmp()
    layout = default_layout(root / "build", root / "docs")
    report = build_site(
        list(paths),
        layout=layout,
        include_bundled=include_bundled,
        strict=True,
        progress=Progress(enabled=False),
        jobs=jobs,
    )
    return layout.out, report


@functools.cache
def bundled_site() -> tuple[Path, BuildReport]:
    """The bundled library, built once per session (strict: a broken link fails it)."""
    return build(include_bundled=True)


@functools.cache
def fixture_site() -> tuple[Path, BuildReport]:
    return build([LIB])


@functools.cache
def xss_site() -> tuple[Path, BuildReport]:
    return build([XSS])


class Page(HTMLParser):
    """Tags, attributes, scripts and text of one HTML page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self._script: list[str] | None = None
        self._script_attrs: dict[str, str | None] = {}
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script, self._script_attrs = [], dict(attrs)

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script_attrs, "".join(self._script)))
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self._script.append(data)
        else:
            self.text.append(data)

    def links(self) -> list[str]:
        return [
            v
            for _, attrs in self.tags
            for k, v in attrs.items()
            if k in ("href", "src", "data") and v
        ]


def read(site: Path, url_path: str) -> str:
    """The HTML of a page by its URL path (kpi/x/ -> kpi/x/index.html)."""
    path = site / url_path
    if url_path.endswith("/") or not url_path:
        path = path / "index.html"
    return path.read_text("utf-8")
