"""The build pipeline at scale: the same site from every way of building it, in less work.

The build adds speed-ups of its own to mkdocs (a shorter parse for search, pages freed once
written) and splits large libraries into shards built in fresh processes. Each is checked here
against what a plain ``mkdocs build`` of the same docs folder makes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from site_helpers import LIB, build, bundled_site, xss_site

import kpi_registry
from kpi_registry.site import build as site_build
from kpi_registry.site.build import (
    MARKER,
    SEARCH_END,
    _mkdocs,
    _plan_shards,
    compact_html,
    default_layout,
)
from kpi_registry.site.pages import SiteGenerator
from kpi_registry.site.progress import Progress


def _index(root: Path) -> list[str]:
    docs = json.loads((root / "search" / "search_index.json").read_text())["docs"]
    return sorted(json.dumps(d, sort_keys=True) for d in docs)


def _files(root: Path) -> list[str]:
    """Every file of a site, less the marker our build leaves (build.MARKER)."""
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != MARKER
    )


def test_the_pipeline_builds_the_same_site_as_plain_mkdocs(tmp_path):
    """Same pages and same search index as the theme indexing every whole page itself."""
    site, _ = bundled_site()
    docs = site.parent / "docs"
    plain = tmp_path / "plain"
    layout = default_layout(plain, docs)
    warnings = _mkdocs(layout, docs, plain, True, Progress(enabled=False), 0, speedups=False)
    assert warnings == []
    compact_html(plain)
    assert _files(plain) == _files(site)
    plain_index, index = _index(plain), _index(site)
    assert len([d for d in index if '"kpi/' in d]) > 62  # KPI pages are really in it
    assert plain_index == index
    for page in sorted(plain.rglob("*.html")):
        assert page.read_text() == (site / page.relative_to(plain)).read_text(), page


def test_only_excluded_sections_follow_the_search_end_marker(lib_docs):
    """What the build leaves out of the theme's parse must be what the theme leaves out."""
    for path in sorted((lib_docs / "kpi").glob("*.md")):
        text = path.read_text()
        assert text.count(SEARCH_END) == 1, path
        after = text.split(SEARCH_END, 1)[1]
        headings = re.findall(r"^#{1,6} .*$", after, re.M)
        assert headings, path
        for heading in headings:
            assert "data-search-exclude" in heading, (path, heading)
        # and nothing after it is a searched heading written as HTML
        for tag in re.findall(r"<h[1-6]\b[^>]*>", after):
            assert "data-search-exclude" in tag, (path, tag)


@pytest.fixture(scope="module")
def lib_docs(tmp_path_factory):
    docs = tmp_path_factory.mktemp("docs")
    SiteGenerator(kpi_registry.load(LIB, include_bundled=False), docs).generate()
    return docs


def test_shards_split_the_kpi_pages_and_leave_the_rest_to_one(monkeypatch):
    ids = kpi_registry.load().ids
    assert _plan_shards(ids, 1) == [("all", [], ids)]
    monkeypatch.setattr(site_build, "SHARD_PAGES", 20)
    plan = _plan_shards(ids, 2)
    assert plan[0] == ("rest", ["/kpi/", "/catalog.json"], [])  # the catalog comes last
    assert len(plan) >= 4  # 62 KPIs, at most 20 a shard: more shards than processes
    owned = [i for _, _, own in plan for i in own]
    assert sorted(owned) == sorted(ids)  # every KPI page in exactly one shard
    for _, exclude, own in plan[1:]:
        pattern = exclude[-1]
        excluded = pattern[len("/kpi/*[") : pattern.index("]")]
        assert pattern.startswith("/kpi/*[") and all(i[-1] not in excluded for i in own)


def test_more_shards_than_processes_give_the_same_site(monkeypatch):
    single, _ = bundled_site()
    monkeypatch.setattr(site_build, "SHARD_PAGES", 20)  # 62+ KPIs: at least four shards
    sharded, report = build(include_bundled=True, jobs=2)
    assert report.kpis == len(kpi_registry.load()) and report.warnings == []
    assert _files(single) == _files(sharded)
    for page in sorted(p.relative_to(single) for p in single.rglob("*.html")):
        assert (single / page).read_text() == (sharded / page).read_text(), page
    assert _index(single) == _index(sharded)
    # written after the shards started, copied in at the end
    assert (single / "catalog.json").read_bytes() == (sharded / "catalog.json").read_bytes()
    assert (sharded / "sitemap.xml").read_text().count("<loc>") == (
        (single / "sitemap.xml").read_text().count("<loc>")
    )
    assert not [p for p in sharded.parent.iterdir() if p.name.startswith(".build-")]


def test_the_definitions_are_loaded_in_a_child_process(monkeypatch):
    """The process that runs mkdocs never holds the registry (its memory would stay taken)."""
    parent = os.getpid()
    real = site_build.load

    def load(*args, **kwargs):
        assert os.getpid() != parent, "definitions loaded in the building process"
        return real(*args, **kwargs)

    monkeypatch.setattr(site_build, "load", load)
    site, report = build([LIB])
    assert report.kpis == 6 and (site / "kpi" / "win_rate" / "index.html").is_file()


def test_a_broken_link_in_a_shard_fails_the_build_and_keeps_the_previous_site(
    tmp_path, monkeypatch
):
    site, _ = build([LIB], root=tmp_path / "site", jobs=2)
    before = (site / "kpi" / "win_rate" / "index.html").read_text()
    monkeypatch.setattr(site_build, "SHARD_PAGES", 2)
    write = SiteGenerator.write

    def broken(self, path, template, **context):  # runs in the forked renderers too
        write(self, path, template, **context)
        if path == "kpi/win_rate.md":
            with (self.docs / path).open("a") as f:
                f.write("\n[gone](missing_kpi.md)\n")

    monkeypatch.setattr(SiteGenerator, "write", broken)
    with pytest.raises(site_build.SiteBuildError, match="missing_kpi.md"):
        build([LIB], root=tmp_path / "site", jobs=2)
    assert (site / "kpi" / "win_rate" / "index.html").read_text() == before
    assert not [p for p in (tmp_path / "site").iterdir() if p.name.startswith(".build-")]


def test_the_catalog_is_written_as_one_json_dumps_would_write_it(tmp_path):
    from kpi_registry.export import catalog_json

    reg = kpi_registry.load()
    SiteGenerator(reg, tmp_path).write_catalog()
    text = (tmp_path / "catalog.json").read_text("utf-8")
    assert text == json.dumps(catalog_json(reg), separators=(",", ":"), ensure_ascii=False)


def test_kpi_pages_share_one_rendering_of_the_menu(monkeypatch, tmp_path):
    """The menu cache (overrides/partials/nav.html) is really used, once per depth."""
    site, _ = bundled_site()
    docs = site.parent / "docs"
    envs = []
    real = site_build._speedups

    def spy():
        plugin = real()
        on_env = plugin.on_env

        def keep(env, config, files):
            envs.append(on_env(env, config=config, files=files))
            return envs[-1]

        plugin.on_env = keep
        return plugin

    monkeypatch.setattr(site_build, "_speedups", spy)
    out = tmp_path / "html"
    _mkdocs(default_layout(out, docs), docs, out, True, Progress(enabled=False), 0)
    cache = envs[0].globals["kpi_nav_cache"]
    # every KPI page: one menu, and one header (cut around the title), footer, config, scripts
    assert set(cache) == {"../..", "header ../..", "footer ../..", "config ../..", "scripts ../.."}
    assert len(cache["header ../.."]) == 2


def test_the_frame_of_kpi_pages_is_the_themes_with_any_title(tmp_path):
    """The cached header, footer, config and scripts give each KPI page the very HTML the theme
    renders for it: with titles that HTML escapes, and with titles that also occur elsewhere in
    the header (the site's name, the search box's label), where the header cannot be cut."""
    site, _ = xss_site()
    docs = tmp_path / "docs"
    shutil.copytree(site.parent / "docs", docs)
    original = sorted((docs / "kpi").glob("*.md"))[0].read_text("utf-8")
    titles = ["KPI Registry", "Search", "'R&D <b>\"spend\"</b>'", "Plain", "Plain & simple"]
    for i, title in enumerate(titles):  # built in this order, before the fixture's own pages
        text = re.sub(r"^title: .*$", f"title: {title}", original, count=1, flags=re.M)
        (docs / "kpi" / f"aa-{i}.md").write_text(text, "utf-8")
    pages = sorted((docs / "kpi").glob("*.md"))
    ours, plain = tmp_path / "ours", tmp_path / "plain"
    for out, fast in ((ours, True), (plain, False)):
        _mkdocs(default_layout(out, docs), docs, out, True, Progress(enabled=False), 0,
                speedups=fast)  # fmt: skip
    compact_html(plain)
    kpi_pages = sorted((plain / "kpi").glob("*/index.html"))
    assert len(kpi_pages) == len(pages)
    for page in kpi_pages:
        assert page.read_text() == (ours / page.relative_to(plain)).read_text(), page
    assert "<title>Search - KPI Registry</title>" in "".join(p.read_text() for p in kpi_pages)


def test_kpi_pages_are_not_converted_by_markdown(monkeypatch, tmp_path):
    """A KPI page's HTML is known from its lines, so the build never hands one to Markdown;
    MkDocs converts every other page as usual (the site stays the same:
    test_the_pipeline_builds_the_same_site_as_plain_mkdocs)."""
    import markdown

    site, _ = bundled_site()
    docs = site.parent / "docs"
    converted: list[str] = []
    real_convert = markdown.Markdown.convert

    def counted(self, source):
        converted.append(source)
        return real_convert(self, source)

    monkeypatch.setattr(markdown.Markdown, "convert", counted)
    kpi_card = '<div class="kpi-card">'
    out = tmp_path / "html"
    _mkdocs(default_layout(out, docs), docs, out, True, Progress(enabled=False), 0)
    kpi_pages = len(list((out / "kpi").glob("*/index.html")))
    assert kpi_pages > 200
    assert not [text for text in converted if kpi_card in text]
    others = len(converted)
    assert others > 100  # listings, categories, the reference pages...
    converted.clear()
    plain = tmp_path / "plain"
    _mkdocs(default_layout(plain, docs), docs, plain, True, Progress(enabled=False), 0,
            speedups=False)  # fmt: skip
    assert sum(kpi_card in text for text in converted) == kpi_pages
    assert len(converted) == others + kpi_pages


def test_compact_collapses_only_white_space_runs_with_a_line_break():
    import random

    from kpi_registry.site.build import compact

    gap = re.compile(r"[ \t\r\f\v]*\n[ \t\r\n\f\v]*")  # the rule, as one regular expression
    rng = random.Random(3)
    pieces = ["a", " ", "\n", "\t", "\r", "\u00a0", "<b>", "<pre>", "</pre>", "<code>", "</code>"]
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 40)))
        kept = re.split(r"(<(pre|code)\b.*?</\2>)", text, flags=re.S)  # text, kept, name, ...
        expected = "".join(
            p if i % 3 else gap.sub("\n", p) for i, p in enumerate(kept) if i % 3 != 2
        )
        assert compact(text) == expected, repr(text)
    assert compact("1\u00a0\n  %") == "1\u00a0\n%"  # a no-break space is text
    assert compact("<pre>a\n   b</pre>\n   <p>") == "<pre>a\n   b</pre>\n<p>"


def test_chart_groups_rows_as_pandas_would_and_skips_missing_groups():
    import pandas as pd

    from kpi_registry.site.examples import _chart

    kpi = kpi_registry.load(LIB, include_bundled=False)["win_rate"]
    periods = [pd.Period("2024-01", "M"), pd.Period("2024-02", "M")]
    records = [
        {"month": p, "segment": s, "win_rate": v}
        for p in periods
        for s, v in (("smb", 40.0), ("ent", float("nan")), (None, 99.0))
    ]
    svg = _chart(kpi, records, ["month", "segment", "win_rate"], "month", ["segment"])
    frame = pd.DataFrame(records)
    names = [str(k[0] if isinstance(k, tuple) else k) for k, _ in frame.groupby(["segment"])]
    assert sorted(names) == ["ent", "smb"]  # pandas has no group for the missing key either
    assert "smb" in svg and "ent" in svg and "None" not in svg and "99" not in svg
    assert svg.count("<polyline") == 1  # ent has no value: no line, and no point


def test_without_fork_the_build_runs_in_this_process_and_leaves_the_collector_as_it_was(
    tmp_path, monkeypatch
):
    """Where fork is unavailable everything runs here, also inside a long `kpi site serve`:
    a failed build must not leave the definitions frozen out of garbage collection."""
    import gc
    import shutil

    from kpi_registry.errors import DefinitionError

    monkeypatch.setattr(site_build, "_can_fork", lambda: False)
    defs = tmp_path / "defs"
    shutil.copytree(LIB, defs)
    site, report = build([defs], root=tmp_path / "site")
    assert report.kpis == len(kpi_registry.load(defs, include_bundled=False))
    assert (site / "kpi" / "win_rate" / "index.html").is_file()
    assert gc.get_freeze_count() == 0
    path = defs / "win_rate.yaml"
    path.write_text(path.read_text().replace("expected: 75", "expected: 80"))
    with pytest.raises(DefinitionError, match="win_rate.yaml"):
        build([defs], root=tmp_path / "site")
    assert gc.get_freeze_count() == 0


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".build-"))


def _killed_build(root: Path, *, group: bool) -> None:
    """Start ``kpi site build`` and SIGKILL it once it has its work folders (all its processes
    with ``group``, else only the main one, whose children then find their parent gone)."""
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    argv = [sys.executable, "-m", "kpi_registry.cli", "site", "build", "--no-bundled"]
    argv += [str(LIB), "--out", str(root / "build"), "--docs-dir", str(root / "docs")]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while len([n for n in _leftovers(root) if not n.endswith(".lock")]) < 2:
            assert proc.poll() is None, "the build ended before it could be killed"
            assert time.monotonic() < deadline, "the build never made its work folders"
            time.sleep(0.01)
        time.sleep(0.05)  # into the build (on a fast machine a small library is done in moments)
    finally:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(timeout=30)
    # Its forked children end too (killed with the group, or noticing their parent gone):
    # wait for them, since a dying child still holds its lock until it has exited (bounded).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("group", [True, False], ids=["every-process", "main-process"])
def test_the_next_build_clears_the_folders_of_a_killed_build(tmp_path, group):
    site, _ = build([LIB], root=tmp_path)
    before = (site / "kpi" / "win_rate" / "index.html").read_text()
    for _ in range(2):
        _killed_build(tmp_path, group=group)
    left = _leftovers(tmp_path)
    assert any(n.startswith(".build-html-") for n in left), left  # what the kill leaves
    assert (site / "kpi" / "win_rate" / "index.html").read_text() == before
    build([LIB], root=tmp_path)
    assert _leftovers(tmp_path) == []
    assert (site / "kpi" / "win_rate" / "index.html").read_text() == before


def test_a_running_build_s_folders_are_not_cleared(tmp_path):
    """Another build's work folders, locked by it, and anything we did not name stay."""
    from kpi_registry.site.build import _release, _work_folder, clear_leftovers

    if site_build.fcntl is None:
        pytest.skip("no fcntl: killed builds' folders are not cleared on this platform")
    running = _work_folder(".build-html-", tmp_path)
    (running / "page.html").write_text("in progress")
    mine = tmp_path / ".build-html-mine"  # no lock beside it: not recognised as a build's
    mine.mkdir()
    try:
        assert clear_leftovers(tmp_path) == []
        assert (running / "page.html").is_file() and mine.is_dir()
    finally:
        _release(running)
        shutil.rmtree(running)


def test_a_lock_left_before_it_was_named_is_cleared_once_old(tmp_path):
    from kpi_registry.site.build import clear_leftovers

    if site_build.fcntl is None:
        pytest.skip("no fcntl: killed builds' folders are not cleared on this platform")
    stray = tmp_path / ".build-lock-abc123"
    stray.write_text("")
    clear_leftovers(tmp_path)
    assert stray.exists()  # it may be a build's, a moment before it names it
    os.utime(stray, (0, 0))
    clear_leftovers(tmp_path)
    assert not stray.exists()


def test_the_driver_figure_reuses_the_worked_example_s_result(monkeypatch):
    """A row example without a ``by`` is evaluated once for the page: the driver figure finds
    its periods in the worked example's result, and draws the same change either way."""
    from kpi_registry.site import drivers
    from kpi_registry.site.examples import example_views

    reg = kpi_registry.load()
    kpi = reg["net_revenue_retention"]
    views = example_views(reg.kpis, kpi)
    alone = drivers.last_change(reg.kpis, kpi)
    calls = []
    original = drivers.compute
    monkeypatch.setattr(drivers, "compute", lambda *a, **k: calls.append(a) or original(*a, **k))
    reused = drivers.last_change(reg.kpis, kpi, [v.result_values for v in views])
    assert calls == []
    assert reused is not None and alone is not None
    assert (reused.attrs["start"], reused.attrs["end"]) == (
        alone.attrs["start"],
        alone.attrs["end"],
    )
    assert reused.explanation.to_frame().equals(alone.explanation.to_frame())


def test_the_driver_figure_reads_the_same_rows_as_the_explain_frame():
    """The figure reads an explanation's records; they are the rows of the frame that
    ``Registry.explain`` returns, in its order and with its types."""
    from kpi_registry.site import drivers

    reg = kpi_registry.load()
    seen = 0
    for kpi in reg:
        change = drivers.last_change(reg.kpis, kpi)
        if change is None:
            continue
        frame = change.explanation.to_frame()
        columns = ("depth", "driver", "kind", "contribution")
        assert change.rows == list(zip(*(frame[c].tolist() for c in columns), strict=True))
        assert change.attrs == frame.attrs
        seen += 1
    assert seen > 50


def _site_config():
    """site/mkdocs.yml, read with the bundled site's docs folder (a fresh clone has none of
    its own, and mkdocs refuses a config whose docs folder is missing)."""
    from mkdocs.config import load_config

    docs = bundled_site()[0].parent / "docs"
    return load_config(str(default_layout().config), docs_dir=str(docs))


def _by_markdown(config, text: str):
    """What MkDocs makes of a page's Markdown: HTML, table of contents, anchors, title."""
    import markdown
    from mkdocs.structure import pages

    md = markdown.Markdown(
        extensions=config["markdown_extensions"], extension_configs=config["mdx_configs"] or {}
    )
    raw_html = pages._RawHTMLPreprocessor()
    raw_html._register(md)
    anchors = pages._ExtractAnchorsTreeprocessor(None, None, config)
    anchors._register(md)
    title = pages._ExtractTitleTreeprocessor()
    title._register(md)
    html = md.convert(text)
    found = anchors.present_anchor_ids | raw_html.present_anchor_ids
    return html, md.toc_tokens, found, title.title, md


def _generated(md, text: str):
    from kpi_registry.site.mdext import convert_generated

    page = convert_generated(md, text)
    return None if page is None else (page.html, page.toc_tokens, page.anchors, page.title)


def _page_texts(docs: Path) -> dict[str, str]:
    from mkdocs.utils import meta

    return {p.name: meta.get_data(p.read_text("utf-8"))[0] for p in (docs / "kpi").glob("*.md")}


def test_kpi_pages_are_converted_without_markdown_exactly_as_markdown_converts_them():
    """Every KPI page of the bundled library, and of a library whose names are full of HTML
    and Markdown syntax, gives the same HTML, table of contents, anchors and title without
    Markdown as with it; a page the shortcut does not follow is left to Markdown (None)."""
    config = _site_config()
    fast = 0
    for site in (bundled_site()[0], xss_site()[0]):
        for name, text in sorted(_page_texts(site.parent / "docs").items()):
            *expected, md = _by_markdown(config, text)
            got = _generated(md, text)
            assert got is None or list(got) == expected, name
            fast += got is not None
    assert fast > 250  # the bundled library's pages, at least, take the shortcut


@pytest.mark.parametrize(
    "text",
    [
        "# Plain name { #a }\n\n<!--kpi-html-->\n<p>x</p>\n<!--/kpi-html-->",
        '# A &amp; B &lt;C&gt; <small class="kpi-abbr">AB · C</small> { #a }',
        "## Not first { #b data-search-exclude }\n\n# Late h1 { #c }\n### Deep { #d }",
        "<!--kpi-html-->\nno tag at the start\n<!--/kpi-html-->\n## After { #e }",
        "<!--kpi-html-->\n<span>inline</span>\n<!--/kpi-html-->",
        "<!--kpi-html-->\n<!-- a comment -->\n<div>\n\n</div>\n<!--/kpi-html-->",
        "# Stars *in* it { #a }",
        "# Under_score { #a }",
        "# Back\\\\slash { #a }",
        "# Amp & alone { #a }",
        "# Tag <b>bold</b> { #a }",
        "# Non\u00a0breaking { #a }",
        "# Name { #a }\nA paragraph line",
        "# Name { #a }\n\ttabbed",
        "# Name { #a }\n<!--kpi-html-->\n<p>never closed</p>",
        "<!--kpi-html-->\n   \n<!--/kpi-html-->",
        "<!--kpi-html-->\n<p>a</p>\n  \n<p>b</p>\n<!--/kpi-html-->",
        "# Name { #a .cls }",
        "Setext\n======",
        "",
    ],
)
def test_a_page_is_converted_without_markdown_only_where_the_result_is_the_same(text):
    config = _site_config()
    *expected, md = _by_markdown(config, text)
    got = _generated(md, text)
    assert got is None or list(got) == expected
    plain = text.startswith(("# Plain", "# A &amp;", "## Not first", "<!--kpi-html-->\nno tag"))
    assert (got is not None) == (plain or "<span>" in text or "<!-- a comment" in text)


@pytest.mark.parametrize(
    "extra", [["smarty"], ["abbr"], [], ["toc_permalink"], ["no_attr_list"]], ids=str
)
def test_a_config_with_other_extensions_sends_every_page_through_markdown(extra):
    """The shortcut knows what the extensions of site/mkdocs.yml do to a page; another one
    (smarty turns the apostrophe below into a curly quote) or other toc settings, and the
    page is converted by Markdown."""
    import markdown

    from kpi_registry.site.mdext import convert_generated

    config = _site_config()
    names = [e for e in config["markdown_extensions"] if not (extra == ["no_attr_list"] and
                                                               e == "attr_list")]  # fmt: skip
    configs = {k: dict(v) for k, v in (config["mdx_configs"] or {}).items()}
    if extra == ["toc_permalink"]:
        configs["toc"]["permalink"] = True
    names += [e for e in extra if e in ("smarty", "abbr")]
    md = markdown.Markdown(extensions=names, extension_configs=configs)
    text = "# The customer's share { #a }\n\n<!--kpi-html-->\n<p>x</p>\n<!--/kpi-html-->"
    page = convert_generated(md, text)
    assert (page is None) == bool(extra)
    if page is not None:
        assert page.html == md.convert(text)
    elif extra == ["smarty"]:
        assert "&rsquo;" in md.convert(text)  # what the shortcut would have got wrong
