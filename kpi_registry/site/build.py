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
    """Counts pages as mkdocs reads and writes them, and keeps its warnings for the report.

    ``built``, when given, is a counter shared between processes: the KPI pages written.
    """

    def __init__(self, progress: Progress, total: int, built=None):
        super().__init__(logging.DEBUG)
        self.progress, self.total, self.shared = progress, total, built
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
            if self.shared is not None and msg.startswith("Building page kpi/"):
                with self.shared.get_lock():
                    self.shared.value += 1


def _speedups():
    """What this pipeline adds to mkdocs for speed and memory; never named in mkdocs.yml.

    The result is the same site a plain ``mkdocs build`` of the docs folder makes (a test
    compares the two), only built faster and in less memory:

    * The theme's search plugin re-parses the HTML of every page to index it. On a KPI page
      every section after the definition is ``data-search-exclude`` (the template marks the
      spot with SEARCH_END), so the plugin is handed only the part before it: the same search
      entries from a twentieth of the parsing.
    * MkDocs keeps every page's Markdown and HTML until its build ends. Neither is read again
      once the page is converted and written (links and anchors are checked from lists mkdocs
      keeps apart), so both are dropped as soon as they are done with.

    Without this (a plain ``mkdocs build``, or another builder reading mkdocs.yml) the docs
    folder builds as it is, the theme indexing each whole page.
    """
    from mkdocs.plugins import BasePlugin, event_priority

    class _Head:
        """A page as the search plugin sees it: its HTML up to SEARCH_END."""

        def __init__(self, page, content: str):
            self._page, self.content = page, content

        def __getattr__(self, name: str):
            return getattr(self._page, name)

    class Speedups(BasePlugin):
        @event_priority(-100)  # after the search plugin has made its index
        def on_config(self, config):
            for plugin in config.plugins.values():
                index = getattr(plugin, "search_index", None)
                add = getattr(index, "add_entry_from_context", None)
                if callable(add):

                    def add_entry(page, add=add):
                        cut = (page.content or "").find(SEARCH_END)
                        add(_Head(page, page.content[:cut]) if cut >= 0 else page)

                    index.add_entry_from_context = add_entry
            return config

        @event_priority(-100)
        def on_page_content(self, html, page, config, files):
            page.markdown = ""  # not None: mkdocs reads that as "not read yet" (no title)
            return html

        @event_priority(-100)
        def on_post_page(self, output, page, config):
            page.content = ""
            return output

    return Speedups()


#: Libraries at least this large are built by two processes (when the machine has the cores).
PARALLEL_FROM = 1000

#: At most this many KPI pages per mkdocs process. MkDocs keeps the HTML of every page it
#: builds until its build ends, so a large library is built in several shards, ``jobs`` of
#: them at a time, each a fresh process that holds only its own pages.
SHARD_PAGES = 5000

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

#: Written by kpi.md.j2 after the last section of a KPI page that search indexes.
SEARCH_END = "<!--kpi-search-end-->"


def default_jobs(n_kpis: int) -> int:
    return 2 if n_kpis >= PARALLEL_FROM and (os.cpu_count() or 1) >= 2 else 1


def _can_fork() -> bool:
    import multiprocessing

    return "fork" in multiprocessing.get_all_start_methods()


def build_site(
    paths: Sequence[str | Path] = (),
    *,
    layout: Layout | None = None,
    include_bundled: bool = True,
    strict: bool = True,
    progress: Progress | None = None,
    jobs: int | None = None,
) -> BuildReport:
    """Load, check and render the registry, then build the HTML; swap both in on success.

    Loading and rendering happen in a forked process (where the platform can fork), so the
    memory the definitions take is handed back to the system before mkdocs starts, not kept by
    this process for the rest of the build.
    """
    layout = layout or default_layout()
    progress = progress or Progress()
    report = BuildReport()
    clock = time.perf_counter()

    work_docs = Path(tempfile.mkdtemp(prefix=".build-docs-", dir=_ready(layout.docs.parent)))
    work_html = Path(tempfile.mkdtemp(prefix=".build-html-", dir=_ready(layout.out.parent)))
    try:
        args = (list(paths), include_bundled, layout, work_docs, progress, jobs)
        done = _in_child(_render, *args) if _can_fork() else _render(*args)
        for key in ("kpis", "pages", "calculators", "examples"):
            setattr(report, key, done[key])
        report.seconds.update(done["seconds"])
        t = time.perf_counter()
        if len(done["shards"]) == 1:
            report.warnings = _mkdocs(layout, work_docs, work_html, strict, progress, report.pages)
        else:
            report.warnings = _build_shards(
                layout, work_docs, work_html, strict, progress, done["jobs"], done["shards"], report
            )
        report.seconds["mkdocs"] = time.perf_counter() - t
        t = time.perf_counter()
        compact_html(work_html)
        report.seconds["compact"] = time.perf_counter() - t
        progress.end()
        _swap(work_docs, layout.docs)
        _swap(work_html, layout.out)
    except BaseException:
        progress.end()
        shutil.rmtree(work_docs, ignore_errors=True)
        shutil.rmtree(work_html, ignore_errors=True)
        raise
    report.seconds["total"] = time.perf_counter() - clock
    return report


def _in_child(func, *args):
    """Run func(*args) in a forked process and return its (picklable) result; its errors are
    raised here as they would have been there (a definition error keeps its diagnostics)."""
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    receive, send = fork.Pipe(duplex=False)
    proc = fork.Process(target=_child_main, args=(send, func, args))
    proc.start()
    send.close()
    try:
        message = _receive(receive)
        proc.join()
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()
    _raise(message)
    return message[1]


def _child_main(send, func, args) -> None:
    try:
        send.send(("ok", func(*args)))
    except BaseException as e:  # noqa: BLE001 - every failure is reported to the parent
        send.send(_failure(e))
    finally:
        send.close()


def _render(paths, include_bundled, layout, docs, progress, jobs) -> dict:
    """Load and check the definitions and write the docs folder.

    Returns the counts, the seconds taken, the number of processes to use and the shards of
    KPI pages for the HTML build (as last characters of their ids, see shard_chars).
    """
    from .pages import SiteGenerator

    clock = time.perf_counter()
    progress.phase("loading definitions")
    registry = load(*paths, include_bundled=include_bundled)
    seconds = {"load": time.perf_counter() - clock}
    n_kpis = len(registry)
    # The definitions live until the pages are written: keep the garbage collector from
    # walking them again and again (and from touching every page a forked renderer shares).
    gc.freeze()
    jobs = max(1, jobs or default_jobs(n_kpis)) if _can_fork() else 1
    t = time.perf_counter()
    generator = SiteGenerator(registry, docs, site_dir=layout.project)
    del registry  # the generator holds it
    counts = {}
    if jobs == 1:
        bar = progress.phase("rendering pages", n_kpis)
        generator.generate(bar.update)
        shards = [""]
    else:
        ids = generator.registry.ids
        n_shards = max(jobs, -(-n_kpis // SHARD_PAGES))
        # The first shard also builds the listing pages; one (up to 400 links) costs about
        # two KPI pages.
        head_start = min(2 * (len(generator.links.pages) - len(ids)), n_kpis // n_shards)
        shards = [c for c in shard_chars(ids, n_shards, head_start) if c]
        counts = _render_shares(generator, progress, jobs)
    s = generator.summary
    for key in ("kpis", "examples", "calculators"):
        counts[key] = getattr(s, key) + counts.get(key, 0)
    seconds["render"] = time.perf_counter() - t
    if not _can_fork():  # rendering ran in this process: free what the build no longer needs
        generator.release()
    progress.end()
    return {
        **counts,
        "pages": len(generator.links.pages),
        "seconds": seconds,
        "jobs": jobs,
        "shards": shards,
    }


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


#: KPI pages a rendering process takes at a time.
RENDER_CHUNK = 250


def _render_shares(generator, progress, jobs) -> dict[str, int]:
    """Write the docs folder in ``jobs`` processes that share out the work as they go.

    The work is a list of tasks: the listing pages, the catalog, and the KPI pages in chunks.
    Forked processes share the loaded registry and the list; each takes the next task until
    none is left (a shared counter), so a slow task never leaves a process idle. Every page
    exists (as an empty stub) before any process starts, so nothing depends on timing. A KPI
    whose worked example fails does not stop the others: every failure is reported at once.
    Returns the counts of the forked processes (this one's are in generator.summary).
    """
    import multiprocessing

    ids = generator.registry.ids
    tasks: list = ["listing", "catalog"]
    tasks += [ids[i : i + RENDER_CHUNK] for i in range(0, len(ids), RENDER_CHUNK)]
    generator.write_stubs()
    generator.nav_pages()
    fork = multiprocessing.get_context("fork")
    taken = fork.Value("i", 0, lock=True)  # tasks handed out so far
    done = fork.Value("i", 0, lock=True)  # KPI pages written so far, by every process
    renders = []
    counts = {"kpis": 0, "examples": 0, "calculators": 0}
    failed = []
    try:
        for _ in range(jobs - 1):
            receive, send = fork.Pipe(duplex=False)
            proc = fork.Process(target=_render_worker, args=(send, generator, tasks, taken, done))
            proc.start()
            send.close()
            renders.append((proc, receive))
        bar = progress.phase("rendering pages", len(ids))
        failed += _take_tasks(generator, tasks, taken, done, lambda: bar.update(done.value))
        for proc, receive in renders:
            message = _receive(receive)
            proc.join()
            if message[0] == "definitions":
                failed += message[1]
                continue
            _raise(message)
            for key in counts:
                counts[key] += message[1][key]
    finally:
        for proc, _ in renders:
            if proc.is_alive():
                proc.terminate()
            proc.join()
    if failed:
        from ..errors import DefinitionError

        raise DefinitionError(sorted(failed, key=lambda d: (d.path, d.line)))
    return counts


def _take_tasks(generator, tasks, taken, done, tick=None) -> list:
    """Do tasks from the shared list until none is left; returns the definition failures."""
    from ..errors import DefinitionError

    failed = []
    while True:
        with taken.get_lock():
            k = taken.value
            taken.value += 1
        if k >= len(tasks):
            return failed
        task = tasks[k]
        if task == "listing":
            generator.listing_pages()
        elif task == "catalog":
            generator.write_catalog()
        else:
            try:
                generator.kpi_pages(task)
            except DefinitionError as e:
                failed.extend(e.diagnostics)
            with done.get_lock():
                done.value += len(task)
            if tick:
                tick()


def _build_shards(layout, docs, html, strict, progress, jobs, shards, report) -> list[str]:
    """Build the HTML in shards, ``jobs`` fresh processes (no copy of the registry) at a time.

    A shard builds its KPI pages plus the pages of the navigation, excluding the rest; links
    to excluded pages resolve as usual (mkdocs logs them at INFO, never as warnings). The first
    shard builds everything else, and the other outputs are merged into it.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    spawn = multiprocessing.get_context("spawn")
    built = spawn.Value("i", 0, lock=True)  # KPI pages written so far, by every process
    bar = progress.phase("building HTML", report.kpis)
    outs = [html] + [html.with_name(f"{html.name}-{k}") for k in range(1, len(shards))]
    pending = list(range(len(shards)))  # the first shard has the most other pages: start it
    running: dict = {}
    warnings: list[str] = []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                k = pending.pop(0)
                others = "".join(c for j, c in enumerate(shards) if j != k)
                exclude = ([] if k == 0 else _NOT_IN_NAV) + [f"/kpi/*[{others}].md"]
                receive, send = spawn.Pipe(duplex=False)
                proc = spawn.Process(
                    target=_mkdocs_worker,
                    args=(send, layout, docs, outs[k], strict, exclude, built),
                )
                proc.start()
                send.close()
                running[receive] = proc
            for receive in wait(list(running), timeout=0.2):
                proc = running.pop(receive)
                message = _receive(receive)
                proc.join()
                _raise(message)
                warnings += message[1]
            bar.update(built.value)
        _merge(outs[1:], html)
    finally:
        for proc in running.values():
            if proc.is_alive():
                proc.terminate()
            proc.join()
        for out in outs[1:]:
            shutil.rmtree(out, ignore_errors=True)
    return warnings


def _render_worker(send, generator, tasks, taken, done) -> None:
    """In a forked process: do rendering tasks and report the counts (or the errors)."""
    try:
        failed = _take_tasks(generator, tasks, taken, done)
        if failed:
            send.send(("definitions", failed))
        else:
            s = generator.summary
            counts = {"kpis": s.kpis, "examples": s.examples, "calculators": s.calculators}
            send.send(("ok", counts))
    except BaseException as e:  # noqa: BLE001 - every failure is reported to the parent
        send.send(_failure(e))
    finally:
        send.close()


def _mkdocs_worker(send, layout, docs, html, strict, exclude, built) -> None:
    """In a fresh process: build one shard of the site with mkdocs."""
    try:
        progress = Progress(enabled=False)
        send.send(("ok", _mkdocs(layout, docs, html, strict, progress, 0, exclude, built)))
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


def _merge(parts: list[Path], into: Path) -> None:
    """Move the shards' KPI pages into the main output; join search indexes and sitemaps."""
    import gzip
    import json

    if not parts:
        return
    index_path = into / "search" / "search_index.json"
    index = json.loads(index_path.read_text("utf-8"))
    sitemap = into / "sitemap.xml"
    extra_urls = []
    for part in parts:
        for page in (part / "kpi").iterdir():
            target = into / "kpi" / page.name
            if not target.exists():
                os.replace(page, target)
        extra = json.loads((part / "search" / "search_index.json").read_text("utf-8"))
        index["docs"].extend(d for d in extra["docs"] if d["location"].startswith("kpi/"))
        del extra
        if sitemap.is_file() and (part / "sitemap.xml").is_file():
            urls = re.findall(r"<url>.*?</url>", (part / "sitemap.xml").read_text("utf-8"), re.S)
            extra_urls.extend(u for u in urls if "/kpi/" in u)
    index_path.write_text(json.dumps(index, separators=(",", ":")), "utf-8")
    if sitemap.is_file():
        text = sitemap.read_text("utf-8").replace("</urlset>", "".join(extra_urls) + "</urlset>")
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
    built=None,
    speedups: bool = True,
) -> list[str]:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config
    from mkdocs.exceptions import Abort, ConfigurationError, MkDocsException

    handler = _MkdocsLog(progress, pages, built)
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
        if speedups:
            config.plugins["kpi-registry-build"] = _speedups()
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
