"""``kpi site build``: definitions -> Markdown docs folder -> mkdocs-material HTML.

Both the docs folder and the HTML are built in temporary folders next to their targets and
swapped in only when everything succeeded, so a failed build (a broken definition, an example
the engine cannot compute, a broken link in strict mode) leaves the previous site as it was.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import KPIError
from ..files import umask
from ..registry import bundled_dir, load
from .progress import Progress

try:
    import fcntl
except ImportError:  # Windows: killed builds' folders are not cleared
    fcntl = None


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
    warnings: list[str] = field(default_factory=list)  # mkdocs' own (strict builds fail on them)
    oversized: dict[str, int] = field(default_factory=dict)  # KPI id -> bytes, see KPI_PAGE_BUDGET


#: What a KPI page's HTML aims to stay under, whatever the size of the library (issue 5). The
#: generated parts are capped to fit (relation lists and map, example rows); a page over it got
#: there through its own definition's texts or examples, and the build names it.
KPI_PAGE_BUDGET = 40 * 1024


def oversized_pages(site: Path, budget: int = KPI_PAGE_BUDGET) -> dict[str, int]:
    """The KPI pages of a built site whose HTML exceeds the budget, largest first."""
    sizes = {}
    with os.scandir(site / "kpi") as entries:
        for entry in entries:
            page = Path(entry.path) / "index.html"
            if entry.is_dir() and page.is_file() and (size := page.stat().st_size) > budget:
                sizes[entry.name] = size
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


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
      spot with SEARCH_END), so the plugin is handed only the part before it, less the list of
      facts (FACTS, excluded as a whole): the same search entries from a fiftieth of the
      parsing.
    * The navigation menu of pages outside the navigation is the same for all of them at a
      given depth: overrides/partials/nav.html renders it once when kpi_nav_cache is given.
      So is the rest of a KPI page's frame (the header but for the title, the footer, the
      config and scripts): overrides/main.html renders it once too, a tenth of mkdocs' time
      per KPI page.
    * MkDocs keeps every page's Markdown and HTML until its build ends. Neither is read again
      once the page is converted and written (links and anchors are checked from lists mkdocs
      keeps apart), so both are dropped as soon as they are done with.
    * Each page is compact()ed as it is written, in the process that builds it.
    * A page written only of headings and the templates' marked HTML blocks (every KPI page)
      is not parsed at all: its HTML, table of contents and anchors are known from its lines
      (mdext.convert_generated), the same as Markdown gives. MkDocs renders every other page
      as usual (``_render``).

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
            self.markdown = {}  # the instance _render reads the Markdown configuration from
            for plugin in config.plugins.values():
                index = getattr(plugin, "search_index", None)
                add = getattr(index, "add_entry_from_context", None)
                if callable(add):

                    def add_entry(page, add=add):
                        cut = (page.content or "").find(SEARCH_END)
                        if cut < 0:
                            return add(page)
                        head = page.content[:cut]
                        start = head.find(FACTS)
                        end = head.find("</dl>", start)
                        if start >= 0 and end >= 0:  # excluded as a whole: nothing to parse
                            head = head[:start] + head[end + len("</dl>") :]
                        add(_Head(page, head))

                    index.add_entry_from_context = add_entry
            return config

        def on_pre_page(self, page, config, files):
            page.render = functools.partial(_render, page, self.markdown)
            return page

        def on_env(self, env, config, files):
            cache: dict = {}  # see overrides/partials/nav.html and overrides/main.html
            env.globals["kpi_nav_cache"] = cache
            env.globals["kpi_frame"] = functools.partial(_frame_part, cache)
            return env

        @event_priority(-100)
        def on_page_content(self, html, page, config, files):
            page.markdown = ""  # not None: mkdocs reads that as "not read yet" (no title)
            return html

        @event_priority(-100)
        def on_post_page(self, output, page, config):
            page.content = ""
            return compact(output)

        @event_priority(-100)
        def on_post_template(self, output_content, template_name, config):
            return compact(output_content) if template_name.endswith(".html") else output_content

    return Speedups()


def _frame_part(cache: dict, key: str, render: Callable[[], str], title: str | None = None):
    """A part of a KPI page's frame (overrides/main.html), rendered by ``render`` once per key
    and reused. Given the page's title, the part is cut around it and filled in with each
    page's; while the title occurs in it other than once, it is rendered for every page."""
    if title is None:
        if key not in cache:
            cache[key] = render()
        return cache[key]
    if key in cache:
        before, after = cache[key]
        return before + title + after
    rendered = render()
    parts = rendered.split(title) if title else []
    if len(parts) == 2:
        cache[key] = parts
    return rendered


def _render(page, reused: dict, config, files) -> None:
    """MkDocs' ``Page.render``, but a page written only of our headings and marked HTML blocks
    is not parsed: its HTML, table of contents, anchors and title are known from its lines
    (mdext.convert_generated, which reads the build's Markdown configuration from one
    instance made for the purpose). Any other page is rendered by MkDocs itself."""
    import markdown
    from mkdocs.structure import pages

    from .mdext import convert_generated

    md = reused.get("md")
    if md is None:
        md = reused["md"] = markdown.Markdown(
            extensions=config["markdown_extensions"],
            extension_configs=config["mdx_configs"] or {},
        )
    generated = convert_generated(md, page.markdown)
    if generated is None:
        type(page).render(page, config, files)
        return
    page.content = generated.html
    page.toc = pages.get_toc(generated.toc_tokens)
    page._title_from_render = generated.title
    page.present_anchor_ids = generated.anchors
    if pages.log.getEffectiveLevel() > logging.DEBUG:
        page.links_to_anchors = {}


#: Libraries at least this large are built by two processes (when the machine has the cores).
PARALLEL_FROM = 1000

#: At most this many KPI pages per mkdocs process. MkDocs keeps the HTML of every page it
#: builds until its build ends, so a large library is built in shards, each a fresh process
#: that holds only its own pages.
SHARD_PAGES = 2500

#: The machine-readable catalog in the docs folder (SiteGenerator.write_catalog).
CATALOG = "/catalog.json"

#: What a shard of KPI pages leaves out besides the other KPI pages: every page the "rest"
#: shard builds but the navigation (every shard builds the pages of the navigation, so that
#: its pages show the same menu).
_NOT_IN_NAV = [
    "/categories/*.md",
    "!/categories/index.md",
    "/functions/*.md",
    "!/functions/index.md",
    "/industry/",
    "/tag/",
    "/group/",
    "/list/",
    "/assets/",
    "/schema/",
    CATALOG,
]

#: Written by kpi.md.j2 after the last section of a KPI page that search indexes.
SEARCH_END = "<!--kpi-search-end-->"
#: How kpi.md.j2 opens a KPI page's list of facts (unit, category, ...), which search skips.
FACTS = '<dl class="kpi-facts" data-search-exclude>'


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

    Where the platform can fork, one forked process loads the definitions and writes the docs
    folder, shard after shard, while mkdocs builds the shards already written in fresh
    processes (see _pipeline); no process but that one ever holds the definitions.
    """
    layout = layout or default_layout()
    progress = progress or Progress()
    report = BuildReport()
    clock = time.perf_counter()
    _check_targets(layout)

    clear_leftovers(layout.docs.parent)
    clear_leftovers(layout.out.parent)
    work_docs = _work_folder(".build-docs-", layout.docs.parent)
    work_html = _work_folder(".build-html-", layout.out.parent)
    try:
        args = (list(paths), include_bundled, layout, work_docs, work_html, strict, progress)
        if _can_fork():
            report.warnings = _pipeline(*args, jobs, report)
        else:
            report.warnings = _in_process(*args, report)
        progress.end()
        if (work_html / "kpi").is_dir():
            report.oversized = oversized_pages(work_html)
        for work in (work_docs, work_html):
            (work / MARKER).write_text(_MARKER_TEXT, "utf-8")
        _swap(work_docs, layout.docs)
        _swap(work_html, layout.out)
    except BaseException:
        progress.end()
        shutil.rmtree(work_docs, ignore_errors=True)
        shutil.rmtree(work_html, ignore_errors=True)
        raise
    finally:
        for work in (work_docs, work_html):
            _release(work)
    report.seconds["total"] = time.perf_counter() - clock
    return report


def _in_process(paths, include_bundled, layout, docs, html, strict, progress, report):
    """Everything in this process, one step after the other (where fork is not available)."""
    from .pages import SiteGenerator

    t = time.perf_counter()
    progress.phase("loading definitions")
    registry = load(*paths, include_bundled=include_bundled)
    report.seconds["load"] = time.perf_counter() - t
    t = time.perf_counter()
    gc.freeze()  # the definitions stay alive while rendering: no need to walk them again
    try:
        generator = SiteGenerator(registry, docs, site_dir=layout.project)
        del registry  # the generator holds it, and releases it before the HTML build
        bar = progress.phase("rendering pages", len(generator.registry))
        generator.generate(bar.update)
        _take_counts(report, asdict(generator.summary))
        report.pages = len(generator.links.pages)
        report.seconds["render"] = time.perf_counter() - t
        generator.release()
    finally:  # also when a page fails: the caller's process may go on
        gc.unfreeze()
        gc.collect()
    t = time.perf_counter()
    warnings = _mkdocs(layout, docs, html, strict, progress, report.pages)
    report.seconds["mkdocs"] = time.perf_counter() - t
    return warnings


def _take_counts(report: BuildReport, counts: dict[str, int]) -> None:
    """The renderer's counts (a Summary as a dict, as it crosses the pipe) into the report."""
    for key in ("kpis", "examples", "calculators"):
        setattr(report, key, counts[key])


def shard_chars(ids: Sequence[str], n: int, head_start: int = 0) -> list[str]:
    """Split KPI pages into n shards by the last character of their id, as evenly as it goes.

    A shard is then one short ``exclude_docs`` pattern (``/kpi/*[ab1].md``), whatever the size
    of the library. ``head_start`` counts work the first shard has besides its KPI pages, in
    KPI pages' worth.
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


def _plan_shards(ids: list[str], jobs: int) -> list[tuple[str, list[str], list[str]]]:
    """(name, exclude_docs patterns, KPI ids it renders) for each shard, in rendering order.

    With one process, one shard holds everything. Otherwise the first shard ("rest") builds
    every page but the KPI pages (listings, navigation, static files), and each other shard
    builds its share of the KPI pages plus the pages of the navigation.
    """
    if jobs == 1:
        return [("all", [], ids)]
    n = max(jobs, -(-len(ids) // SHARD_PAGES))
    chars = [c for c in shard_chars(ids, n) if c]
    plan = [("rest", ["/kpi/", CATALOG], [])]
    for k, own in enumerate(chars, 1):
        others = "".join(c for c in chars if c != own)
        exclude = [*_NOT_IN_NAV, f"/kpi/*[{others}].md"] if others else list(_NOT_IN_NAV)
        plan.append((f"kpi-{k}", exclude, [i for i in ids if i[-1] in own]))
    return plan


def _renderer(send, paths, include_bundled, layout, docs, jobs, rendered) -> None:
    """In the forked process: load, then write the docs folder shard by shard.

    Messages to the parent: ("loaded", plan), ("ready", shard) as each shard's pages are
    written, then ("done", counts); or a failure. A KPI whose worked example fails does not
    stop the others: every failure is reported at once, at the end.
    """
    from ..errors import DefinitionError
    from .pages import SiteGenerator

    try:
        t = time.perf_counter()
        registry = load(*paths, include_bundled=include_bundled)
        seconds = time.perf_counter() - t
        # The definitions live until this process ends: keep the garbage collector from
        # walking them again and again.
        gc.freeze()
        jobs = max(1, jobs or default_jobs(len(registry)))
        generator = SiteGenerator(registry, docs, site_dir=layout.project)
        del registry
        plan = _plan_shards(generator.registry.ids, jobs)
        send.send(
            (
                "loaded",
                {
                    "load": seconds,
                    "kpis": len(generator.registry),
                    "pages": len(generator.links.pages),
                    "jobs": jobs,
                    "shards": [(name, exclude) for name, exclude, _ in plan],
                },
            )
        )

        def tick(_n: int) -> None:
            rendered.value += 1  # only this process writes it

        generator.write_stubs()  # every page exists before any shard is built
        generator.nav_pages()
        failed: list = []
        for name, _, own in plan:
            if name in ("rest", "all"):
                generator.listing_pages()
            try:
                generator.kpi_pages(own, tick)
            except DefinitionError as e:
                failed.extend(e.diagnostics)
            send.send(("ready", name))
        if failed:
            send.send(("definitions", failed))
        else:
            # Last, while mkdocs builds the last shards: no shard reads it (the parent copies
            # it into the site once every shard is built; one process builds after this).
            generator.write_catalog()
            send.send(("done", asdict(generator.summary)))
    except BaseException as e:  # noqa: BLE001 - every failure is reported to the parent
        send.send(_failure(e))
    finally:
        send.close()


def _pipeline(paths, include_bundled, layout, docs, html, strict, progress, jobs, report):
    """Render in one forked process while fresh processes build the shards already written.

    The forked process is the only one that ever holds the definitions; it renders while up
    to ``jobs - 1`` mkdocs processes build (``jobs`` once rendering is over), each shard as
    soon as its pages are written. A shard builds its pages plus the pages of the navigation,
    excluding the rest; links to excluded pages resolve as usual (mkdocs logs them at INFO,
    never as warnings). The "rest" shard's output is the site; the KPI pages of the others,
    their search entries and sitemap entries are merged into it (_merge).
    """
    import multiprocessing
    from multiprocessing.connection import wait

    fork = multiprocessing.get_context("fork")
    spawn = _fresh_processes()
    rendered = fork.Value("i", 0, lock=False)  # KPI pages written (by the renderer only)
    built = spawn.Value("i", 0, lock=True)  # KPI pages turned into HTML, by every process
    receive, send = fork.Pipe(duplex=False)
    renderer = fork.Process(
        target=_renderer, args=(send, paths, include_bundled, layout, docs, jobs, rendered)
    )
    progress.phase("loading definitions")
    start = time.perf_counter()
    renderer.start()
    send.close()
    excludes: dict[str, list[str]] = {}
    outs: dict[str, Path] = {}
    ready: list[str] = []
    running: dict = {}  # connection -> process
    warnings: list[str] = []
    rendering, bar, total = True, progress, 0
    try:
        while rendering or ready or running:
            for conn in wait([*running, *([receive] if rendering else [])], timeout=0.2):
                message = _receive(conn)
                if conn is not receive:
                    running.pop(conn).join()
                    _raise(message)
                    warnings += message[1]
                elif message[0] == "loaded":
                    plan = message[1]
                    report.seconds["load"] = plan["load"]
                    report.kpis, report.pages, jobs = plan["kpis"], plan["pages"], plan["jobs"]
                    excludes = dict(plan["shards"])
                    start = time.perf_counter()
                    total = report.kpis * (2 if jobs > 1 else 1)
                    bar = progress.phase("rendering pages" if jobs == 1 else "pages", total)
                elif message[0] == "ready":
                    ready.append(message[1])
                elif message[0] == "done":
                    _take_counts(report, message[1])
                    report.seconds["render"] = time.perf_counter() - start
                    start = time.perf_counter()
                    rendering = False
                    renderer.join()
                else:
                    _raise(message)
            if ready == ["all"] and not rendering:  # one process: build here, no new process
                ready = []
                warnings += _mkdocs(layout, docs, html, strict, progress, report.pages)
            limit = max(1, (jobs or 1) - 1) if rendering else jobs or 1
            while ready and ready != ["all"] and len(running) < limit:
                name = ready.pop(0)
                outs[name] = html if name == "rest" else html.with_name(f"{html.name}-{name}")
                conn, child_send = spawn.Pipe(duplex=False)
                proc = spawn.Process(
                    target=_mkdocs_worker,
                    args=(child_send, layout, docs, outs[name], strict, excludes[name], built),
                )
                proc.start()
                child_send.close()
                running[conn] = proc
            if total:
                bar.update(rendered.value + built.value)
        if "rest" in outs:  # written last, and left out of every shard (see _renderer)
            shutil.copyfile(docs / CATALOG.lstrip("/"), html / CATALOG.lstrip("/"))
        _merge([out for name, out in outs.items() if name != "rest"], html)
        report.seconds["mkdocs"] = time.perf_counter() - start
    finally:
        for proc in [renderer, *running.values()]:
            if proc.is_alive():
                proc.terminate()
            proc.join()
        for name, out in outs.items():
            if name != "rest":
                shutil.rmtree(out, ignore_errors=True)
    return warnings


#: What an mkdocs process needs, imported once by the fork server instead of by every shard.
_PRELOAD = [
    "kpi_registry.site.build",
    "kpi_registry.site.mdext",
    "mkdocs.commands.build",
    "mkdocs.config",
    "material.plugins.search.plugin",
    "pymdownx.superfences",
    "pymdownx.highlight",
    "pymdownx.details",
    "markdown.extensions.toc",
]


def _fresh_processes():
    """Processes without a copy of this one: forked from a fork server (a fresh interpreter
    that has imported mkdocs once) where the platform has one, else spawned."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


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
    """Move the shards' KPI pages into the main output; join search indexes and sitemaps.

    This, the copy of the catalog (written last, see _renderer) and the speed-ups (_speedups)
    are the only steps of our own around mkdocs; a plain ``mkdocs build`` of the docs folder
    makes the same site in one go.
    """
    import gzip
    import json

    if not parts:
        return
    (into / "kpi").mkdir(exist_ok=True)
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


#: Left in the docs and HTML folders a build writes: the next build may replace them whole.
MARKER = ".kpi-site"
_MARKER_TEXT = "Written by kpi site build, which replaces this whole folder on its next build.\n"


def _made_by_us(folder: Path) -> bool:
    """A folder a build may replace: marked by one, or a site or docs folder built before the
    marker existed (a search index, or generated KPI pages beside a home page)."""
    if (folder / MARKER).is_file():
        return True
    return (folder / "search" / "search_index.json").is_file() or (
        (folder / "index.md").is_file() and (folder / "kpi").is_dir()
    )


def _check_targets(layout: Layout) -> None:
    """Refuse, before any work, to replace a folder the build did not make.

    The build swaps its output in whole, so an --out or --docs-dir naming a folder of the
    user's own would delete everything in it.
    """
    docs, out = layout.docs.resolve(), layout.out.resolve()
    if docs == out or docs in out.parents or out in docs.parents:
        raise SiteBuildError(
            f"--out {layout.out} and --docs-dir {layout.docs} must be separate folders, "
            "neither inside the other"
        )
    for option, target in (("--docs-dir", layout.docs), ("--out", layout.out)):
        if target.is_symlink():
            raise SiteBuildError(
                f"{option} {target}: a symbolic link; the build replaces the folder whole, so "
                f"name the folder it points to ({target.resolve()})"
            )
        if target.exists() and not target.is_dir():
            raise SiteBuildError(f"{option} {target}: a file, not a folder")
        if target.is_dir() and any(target.iterdir()) and not _made_by_us(target):
            raise SiteBuildError(
                f"{option} {target}: the folder is not empty and was not written by kpi site "
                "build, which replaces the whole folder; choose an empty or new folder"
            )


#: Beside each work folder while its build runs: ``<folder>.lock``, locked by the build. A
#: build killed outright (SIGKILL, power loss) leaves its folders; the kernel drops its lock,
#: and the next build in the same place clears them (``clear_leftovers``).
_LOCK_SUFFIX = ".lock"
_WORK_PREFIXES = (".build-docs-", ".build-html-")
_held: dict[Path, int] = {}  # work folder -> the descriptor holding its lock


def _work_folder(prefix: str, parent: Path) -> Path:
    """A temporary folder beside the target, readable as the target would be (mkdtemp makes
    it private, and it becomes the published site), and its lock, held until the build ends."""
    parent = _ready(parent)
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    work.chmod(0o777 & ~umask())
    if fcntl is not None:
        # locked before it takes its name, so no other build ever sees it unlocked
        fd, temporary = tempfile.mkstemp(prefix=".build-lock-", dir=parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.replace(temporary, _lock_of(work))
        _held[work] = fd
    return work


def _lock_of(work: Path) -> Path:
    return work.with_name(work.name + _LOCK_SUFFIX)


def _old_of(work: Path) -> Path:
    """Where the previous site waits while ``work`` takes its place, under the same lock."""
    return work.with_name(work.name + ".old")


def _release(work: Path) -> None:
    fd = _held.pop(work, None)
    if fd is not None:
        _lock_of(work).unlink(missing_ok=True)
        os.close(fd)


def clear_leftovers(parent: Path) -> list[Path]:
    """Remove the work folders of builds that were killed in ``parent``; the removed paths.

    Only what a build names as its own (``.build-docs-*`` or ``.build-html-*``, with its
    ``.old`` sibling) beside a lock file of ours that no live build holds: a build still
    running keeps its lock, and the lock is taken here before anything is removed, so two
    builds never clear each other's folders. Without ``fcntl`` (Windows) nothing is cleared.
    """
    removed: list[Path] = []
    if fcntl is None or not parent.is_dir():
        return removed
    for lock in sorted(parent.iterdir()):
        name = lock.name
        if name.startswith(".build-lock-"):
            _clear_unnamed_lock(lock)
            continue
        if not (name.startswith(_WORK_PREFIXES) and name.endswith(_LOCK_SUFFIX)):
            continue
        work = lock.with_name(name.removesuffix(_LOCK_SUFFIX))
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue  # gone meanwhile (its build ended), or not ours to open
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live build holds it
            if not os.path.samestat(os.fstat(fd), os.stat(lock)):
                continue  # replaced since we opened it: not the lock we took
            for folder in (work, _old_of(work)):
                if folder.is_dir() and not folder.is_symlink():
                    shutil.rmtree(folder, ignore_errors=True)
                    removed.append(folder)
            lock.unlink(missing_ok=True)
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _clear_unnamed_lock(lock: Path) -> None:
    """A lock a build was killed holding before it gave it its name (``_work_folder``): no
    folder goes with it. Removed once nobody holds it and it is a minute old (a live build
    holds it a moment after creating it)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if time.time() - os.fstat(fd).st_mtime > 60 and os.path.samestat(
            os.fstat(fd), os.stat(lock)
        ):
            lock.unlink(missing_ok=True)
    except OSError:
        pass
    finally:
        os.close(fd)


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


_KEEP = re.compile(r"(<(pre|code|kbd|script|style|textarea)\b.*?</\2>)", re.S | re.I)
_WHITE = " \t\r\f\v"  # ASCII white space: a no-break space is text, never collapsed


def _collapse(text: str) -> str:
    """Each run of white space that holds a line break, as one line break."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    inner = [line.strip(_WHITE) for line in lines[1:-1]]
    return "\n".join(
        [lines[0].rstrip(_WHITE), *(line for line in inner if line), lines[-1].lstrip(_WHITE)]
    )


def compact(html: str) -> str:
    """Collapse the theme's indentation (a sixth of a page) to one line break per run.

    A run of white space renders the same whether it is one character or forty, and no
    attribute of ours or of the theme spans lines; text inside <pre>, <code>, <kbd>, <script>,
    <style> and <textarea> is left exactly as it is.
    """
    chunks = _KEEP.split(html)
    # split() with two groups yields: text, whole match, tag name, text, ...
    return "".join(
        _collapse(chunk) if i % 3 == 0 else chunk for i, chunk in enumerate(chunks) if i % 3 != 2
    )


def compact_html(root: Path) -> None:
    """compact() every HTML file under root (the build does it as it writes each page)."""
    for path in root.rglob("*.html"):
        raw = path.read_text("utf-8")
        out = compact(raw)
        if len(out) != len(raw):
            path.write_text(out, "utf-8")


def _swap(new: Path, target: Path) -> None:
    """Put a finished folder in place of the old one, then delete the old one (beside the
    work folder's lock, so a kill midway leaves it to ``clear_leftovers``)."""
    old = _old_of(new)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)
