"""``kpi site build``: definitions -> Markdown docs folder -> mkdocs-material HTML.

Both the docs folder and the HTML are built in temporary folders next to their targets and
swapped in only when everything succeeded, so a failed build (a broken definition, an example
the engine cannot compute, a broken link in strict mode) leaves the previous site as it was.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KPIError
from ..registry import bundled_dir, load
from .progress import Progress


class SiteBuildError(KPIError):
    """The HTML build failed; the message lists what mkdocs reported."""


@dataclass
class Layout:
    """Where the mkdocs project, the generated docs folder and the HTML live."""

    project: Path  # holds mkdocs.yml, overrides/, assets/
    docs: Path
    out: Path

    @property
    def config(self) -> Path:
        return self.project / "mkdocs.yml"


def default_layout(out: str | Path | None = None, docs: str | Path | None = None) -> Layout:
    project = bundled_dir("site")
    if "_bundled" in project.parts:  # an installed package: never write into site-packages
        base = Path.cwd() / "kpi-site"
    else:
        base = project
    return Layout(
        project,
        Path(docs).resolve() if docs else base / "docs",
        Path(out).resolve() if out else base / "build",
    )


@dataclass
class BuildReport:
    kpis: int = 0
    pages: int = 0
    calculators: int = 0
    examples: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class _MkdocsLog(logging.Handler):
    """Counts pages as mkdocs reads and writes them, and keeps its warnings for the report."""

    def __init__(self, progress: Progress, total: int):
        super().__init__(logging.DEBUG)
        self.progress, self.total = progress, total
        self.read = self.built = 0
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if record.levelno >= logging.WARNING:
            self.warnings.append(f"{record.levelname.lower()}: {msg}")
        elif msg.startswith("Reading: "):
            self.read += 1
            if self.read == 1:
                self.progress.phase("mkdocs: reading", self.total)
            self.progress.update(self.read)
        elif msg.startswith("Building page "):
            self.built += 1
            if self.built == 1:
                self.progress.phase("mkdocs: writing", self.total)
            self.progress.update(self.built)


#: Libraries at least this large are built by two processes (when the machine has the cores).
PARALLEL_FROM = 1000

#: What a shard other than the first leaves out: every page it does not write (it still builds
#: the pages of the navigation, so that its pages show the same menu).
_NOT_IN_NAV = [
    "/categories/*.md",
    "!/categories/index.md",
    "/industry/",
    "/tag/",
    "/group/",
    "/list/",
    "/assets/",
    "/schema/",
    "/catalog.json",
]


def default_jobs(n_kpis: int) -> int:
    return 2 if n_kpis >= PARALLEL_FROM and (os.cpu_count() or 1) >= 2 else 1


def build_site(
    paths: Sequence[str | Path] = (),
    *,
    layout: Layout | None = None,
    include_bundled: bool = True,
    strict: bool = True,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> BuildReport:
    """Load, check and render the registry, then build the HTML; swap both in on success."""
    from .pages import SiteGenerator

    layout = layout or default_layout()
    progress = progress or Progress()
    report = BuildReport()
    clock = time.perf_counter()

    progress.phase("loading definitions")
    registry = load(*paths, include_bundled=include_bundled)
    report.seconds["load"] = time.perf_counter() - clock
    n_kpis = len(registry)
    # The definitions live until the HTML build: keep the garbage collector from walking them
    # again and again (and from touching every page a forked renderer shares).
    gc.freeze()
    jobs = max(1, jobs or default_jobs(n_kpis))

    work_docs = Path(tempfile.mkdtemp(prefix=".build-docs-", dir=_ready(layout.docs.parent)))
    work_html = Path(tempfile.mkdtemp(prefix=".build-html-", dir=_ready(layout.out.parent)))
    try:
        t = time.perf_counter()
        generator = SiteGenerator(registry, work_docs, site_dir=layout.project)
        del registry  # the generator holds it, and releases it before the HTML build
        if jobs == 1:
            bar = progress.phase("rendering pages", n_kpis)
            generator.generate(bar.update)
            _count(report, generator)
            report.seconds["render"] = time.perf_counter() - t
            generator.release()  # the HTML build below needs the memory the definitions used
            t = time.perf_counter()
            report.warnings = _mkdocs(layout, work_docs, work_html, strict, progress, report.pages)
        else:
            report.warnings = _sharded(
                generator, layout, work_docs, work_html, strict, progress, jobs, report
            )
        del generator
        report.seconds["mkdocs"] = time.perf_counter() - t
        t = time.perf_counter()
        compact_html(work_html)
        report.seconds["compact"] = time.perf_counter() - t
        progress.end()
        _swap(work_docs, layout.docs)
        _swap(work_html, layout.out)
    except BaseException:
        gc.unfreeze()
        progress.end()
        shutil.rmtree(work_docs, ignore_errors=True)
        shutil.rmtree(work_html, ignore_errors=True)
        raise
    report.seconds["total"] = time.perf_counter() - clock
    return report


def _count(report: BuildReport, generator) -> None:
    s = generator.summary
    report.kpis, report.calculators, report.examples = s.kpis, s.calculators, s.examples
    report.pages = len(generator.links.pages)


def shard_chars(ids: Sequence[str], n: int, head_start: int = 0) -> list[str]:
    """Split KPI pages into n shards by the last character of their id, as evenly as it goes.

    A shard is then one short ``exclude_docs`` pattern (``/kpi/*[ab1].md``), whatever the size
    of the library. ``head_start`` counts work the first shard has besides its KPI pages (it
    also writes and builds the listing pages), in KPI pages' worth.
    """
    counts: dict[str, int] = {}
    for i in ids:
        counts[i[-1]] = counts.get(i[-1], 0) + 1
    shards = [""] * n
    load_ = [head_start] + [0] * (n - 1)
    for char, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        k = load_.index(min(load_))
        shards[k] += char
        load_[k] += count
    return shards


def _sharded(generator, layout, docs, html, strict, progress, jobs, report) -> list[str]:
    """Render and build in ``jobs`` processes, each with its share of the KPI pages.

    Rendering: forked processes share the loaded registry and each writes its KPI pages; the
    first process also writes every other page. Every page exists (as an empty stub) before any
    process starts, so nothing depends on timing.

    HTML: once the registry is released, fresh processes (no copy of the registry) each build
    their KPI pages plus the pages of the navigation, excluding the rest; links to excluded
    pages resolve as usual (mkdocs logs them at INFO, never as warnings). The first process
    builds everything else, and the other outputs are merged into it.
    """
    import multiprocessing

    start = time.perf_counter()
    ids = generator.registry.ids
    # A listing page (up to 400 links) costs about two KPI pages to write and to build.
    head_start = min(2 * (len(generator.links.pages) - len(ids)), len(ids) // jobs)
    chars = shard_chars(ids, jobs, head_start)
    chars = [c for c in chars if c]
    shards = [[i for i in ids if i[-1] in c] for c in chars]
    generator.write_stubs()
    generator.nav_pages()  # every shard builds these, so they must be final first
    fork = multiprocessing.get_context("fork")
    renders = []
    for own in shards[1:]:
        receive, send = fork.Pipe(duplex=False)
        proc = fork.Process(target=_render_worker, args=(send, generator, own))
        proc.start()
        send.close()
        renders.append((proc, receive))
    try:
        bar = progress.phase("rendering pages", len(shards[0]))
        generator.kpi_pages(shards[0], bar.update)
        generator.listing_pages()
        _count(report, generator)
        for proc, receive in renders:
            message = _receive(receive)
            proc.join()
            _raise(message)
            for key in ("kpis", "examples", "calculators"):
                setattr(report, key, getattr(report, key) + message[1][key])
    finally:
        for proc, _ in renders:
            if proc.is_alive():
                proc.terminate()
            proc.join()
    report.seconds["render"] = time.perf_counter() - start
    generator.release()  # the HTML build below needs the memory the definitions used

    spawn = multiprocessing.get_context("spawn")
    builds = []
    try:
        for k in range(1, len(chars)):
            others = "".join(c for j, c in enumerate(chars) if j != k)
            out = html.with_name(f"{html.name}-{k}")
            receive, send = spawn.Pipe(duplex=False)
            proc = spawn.Process(
                target=_mkdocs_worker,
                args=(send, layout, docs, out, strict, [*_NOT_IN_NAV, f"/kpi/*[{others}].md"]),
            )
            proc.start()
            send.close()
            builds.append((proc, receive, out))
        others = "".join(chars[1:])
        exclude = [f"/kpi/*[{others}].md"] if others else []
        warnings = _mkdocs(layout, docs, html, strict, progress, report.pages, exclude)
        for proc, receive, out in builds:
            message = _receive(receive)
            proc.join()
            _raise(message)
            warnings += message[1]
            _merge(out, html)
    finally:
        for proc, _, out in builds:
            if proc.is_alive():
                proc.terminate()
            proc.join()
            shutil.rmtree(out, ignore_errors=True)
    return warnings


def _render_worker(send, generator, own) -> None:
    """In a forked process: write these KPI pages and report the counts (or the errors)."""
    try:
        generator.kpi_pages(own)
        s = generator.summary
        send.send(("ok", {"kpis": s.kpis, "examples": s.examples, "calculators": s.calculators}))
    except BaseException as e:  # noqa: BLE001 - every failure is reported to the parent
        send.send(_failure(e))
    finally:
        send.close()


def _mkdocs_worker(send, layout, docs, html, strict, exclude) -> None:
    """In a fresh process: build one shard of the site with mkdocs."""
    try:
        send.send(("ok", _mkdocs(layout, docs, html, strict, Progress(enabled=False), 0, exclude)))
    except BaseException as e:  # noqa: BLE001 - every failure is reported to the parent
        send.send(_failure(e))
    finally:
        send.close()


def _failure(e: BaseException) -> tuple[str, object]:
    from ..errors import DefinitionError

    if isinstance(e, DefinitionError):
        return ("definitions", e.diagnostics)
    if isinstance(e, KPIError):
        return ("error", str(e))
    return ("error", f"{type(e).__name__}: {e}")


def _receive(receive):
    try:
        return receive.recv()
    except EOFError:
        return ("error", "a build process ended without reporting (out of memory?)")


def _raise(message) -> None:
    from ..errors import DefinitionError

    kind, payload = message
    if kind == "definitions":
        raise DefinitionError(payload)
    if kind == "error":
        raise SiteBuildError(payload)


def _merge(part: Path, into: Path) -> None:
    """Move a shard's KPI pages into the main output; join search indexes and sitemaps."""
    import gzip
    import json

    for page in (part / "kpi").iterdir():
        target = into / "kpi" / page.name
        if not target.exists():
            os.replace(page, target)
    index_path = into / "search" / "search_index.json"
    index = json.loads(index_path.read_text("utf-8"))
    extra = json.loads((part / "search" / "search_index.json").read_text("utf-8"))
    index["docs"].extend(d for d in extra["docs"] if d["location"].startswith("kpi/"))
    index_path.write_text(json.dumps(index, separators=(",", ":")), "utf-8")
    sitemap = into / "sitemap.xml"
    if sitemap.is_file() and (part / "sitemap.xml").is_file():
        urls = re.findall(r"<url>.*?</url>", (part / "sitemap.xml").read_text("utf-8"), re.S)
        extra_urls = "".join(u for u in urls if "/kpi/" in u)
        text = sitemap.read_text("utf-8").replace("</urlset>", extra_urls + "</urlset>")
        sitemap.write_text(text, "utf-8")
        with gzip.open(into / "sitemap.xml.gz", "wb") as f:
            f.write(text.encode("utf-8"))


def _ready(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _mkdocs(
    layout: Layout,
    docs: Path,
    html: Path,
    strict: bool,
    progress: Progress,
    pages: int,
    exclude: list[str] | None = None,
) -> list[str]:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort, ConfigurationError, MkDocsException

    handler = _MkdocsLog(progress, pages)
    logger = logging.getLogger("mkdocs")
    build_logger = logging.getLogger("mkdocs.commands.build")
    old_level, old_build_level = logger.level, build_logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    build_logger.setLevel(logging.DEBUG)  # "Reading:" / "Building page" drive the progress bar
    try:
        overrides = {"docs_dir": str(docs), "site_dir": str(html), "strict": strict}
        if exclude:
            overrides["exclude_docs"] = "\n".join(exclude)
        config = load_config(str(layout.config), **overrides)
        config.plugins.on_startup(command="build", dirty=False)
        try:
            build(config)
        finally:
            config.plugins.on_shutdown()
    except (Abort, ConfigurationError, MkDocsException) as e:
        details = "\n".join(f"  {w}" for w in handler.warnings)
        message = f"mkdocs build failed: {e}" + (f"\n{details}" if details else "")
        raise SiteBuildError(message) from None
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        build_logger.setLevel(old_build_level)
    return handler.warnings


_KEEP = re.compile(rb"(<(pre|script|textarea)\b.*?</\2>)", re.S | re.I)
_GAP = re.compile(rb">\s{2,}<")


def compact_html(root: Path) -> None:
    """Collapse the theme's indentation between tags (a sixth of a page) to one newline.

    Whitespace between tags renders the same whether it is one character or forty; text inside
    <pre>, <script> and <textarea> is left exactly as it is.
    """
    for path in root.rglob("*.html"):
        raw = path.read_bytes()
        chunks = _KEEP.split(raw)
        # split() with two groups yields: text, whole match, tag name, text, ...
        out = b"".join(
            _GAP.sub(b">\n<", chunk) if i % 3 == 0 else chunk
            for i, chunk in enumerate(chunks)
            if i % 3 != 2
        )
        if len(out) != len(raw):
            path.write_bytes(out)


def _swap(new: Path, target: Path) -> None:
    """Put a finished folder in place of the old one, then delete the old one."""
    old = target.parent / f".build-old-{target.name}-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
