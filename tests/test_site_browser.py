"""The built site in a real browser (Debian's Chromium, driven by Playwright).

Serves the bundled library's site on 127.0.0.1 and uses it as a newcomer would: search, read a
KPI page, use a calculator, follow relation links. Any console error, or any request that leaves
127.0.0.1, fails the test. Screenshots go to tests/artifacts/.

Runs wherever /usr/bin/chromium exists and always under CI (CI=true), where a missing browser is
a failure, not a skip.
"""

from __future__ import annotations

import http.server
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from site_helpers import ROOT, bundled_site, xss_site

import kpi_registry
from kpi_registry.site.serve import make_server

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(
        f"{CHROMIUM} is not installed (apt-get install chromium); CI installs it and runs this",
        allow_module_level=True,
    )

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """The site as ``kpi site serve`` serves it: its security headers and Content-Security-
    Policy (a header and each page's <meta>) apply, so a script they block is a console error."""
    server = make_server(root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class Watch:
    """Console errors, uncaught exceptions, dialogs and requests that leave the site."""

    def __init__(self, page: Page, base: str):
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self._request(r.url, base))

        def dialog(d):
            self.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", dialog)

    def _request(self, url: str, base: str) -> None:
        if not url.startswith((base + "/", "data:", "blob:", "about:")):
            self.outside.append(url)

    def check(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], self.outside
        assert self.dialogs == [], self.dialogs


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    site, _ = bundled_site()
    server, base = _serve(site)
    yield base
    server.shutdown()


def _search(page: Page, text: str) -> None:
    page.keyboard.press("Escape")
    page.locator("label.md-search__icon, .md-search__input").first.click()
    box = page.locator("input.md-search__input")
    box.fill(text)
    box.press("End")  # the theme searches on key events, which fill() does not send
    expect(page.locator(".md-search-result__item").first).to_be_visible(timeout=10_000)


# The theme's search (lunr) drops English stop words from the query, "like" and "other" among them,
# so a name such as "Like-for-Like Sales Growth" is highlighted as "sales growth" only.
_LUNR_STOP_WORDS = frozenset(
    """able about across after almost also among because been cannot could dear does either else
    ever every from have hers however into just least like likely might most must neither often
    only other rather said says should since some than that their them then there these they twas
    wants were what when where which while whom will with would your""".split()
)


def _first_hit(page: Page, text: str) -> str:
    """The path of the first search result (without the highlight query)."""
    _search(page, text)
    first = page.locator(".md-search-result__item > a.md-search-result__link").first
    # Results update asynchronously: wait until the highlight query in the first link is this
    # query's (stop words such as "to" are dropped from it, so only longer words must be there).
    words = set(re.findall(r"\w+", text.lower()))
    deadline = time.monotonic() + 10
    while True:
        href = first.get_attribute("href") or ""
        shown = set(parse_qs(urlsplit(href).query).get("h", [""])[0].split())
        required = {w for w in words if len(w) >= 4 and w not in _LUNR_STOP_WORDS}
        if shown <= words and required <= shown:
            return urlsplit(href).path
        assert time.monotonic() < deadline, (text, href)
        time.sleep(0.05)


def test_newcomer_finds_understands_and_uses_a_kpi(browser, served):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page, served)

    page.goto(served + "/")
    expect(page.locator("h1")).to_have_text("KPI Registry")
    expect(page.locator("#categories + .kpi-scroll > table")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "site-home.png"), full_page=True)

    # Search "upsell" and follow the result to Expansion Revenue.
    _search(page, "upsell")
    page.locator('.md-search-result__link[href*="kpi/expansion_revenue/"]').first.click()
    expect(page.locator("h1")).to_have_text("Expansion Revenue")
    assert urlsplit(page.url).path == "/kpi/expansion_revenue/"

    # The formula (MathML), the example's tables and its chart are visible.
    expect(page.locator(".kpi-formula .kpi-math > math:visible").first).to_be_visible()
    expect(page.locator(".kpi-example table").first).to_be_visible()
    expect(page.locator(".kpi-result td").first).to_be_visible()
    expect(page.locator("svg.kpi-chart").first).to_be_visible()
    assert page.locator(".kpi-formula .kpi-math > math:visible").first.bounding_box()["height"] > 10
    result = page.locator(".kpi-result").first.inner_text()
    assert re.search(r"2024-03\s+140\.00", result), result
    page.screenshot(path=str(ARTIFACTS / "site-kpi-expansion_revenue.png"), full_page=True)

    # Follow a leading-indicator link.
    leading = page.locator("#leading-indicators ~ ul.kpi-list").first.locator("a").first
    name = leading.inner_text()
    leading.click()
    expect(page.locator("h1")).to_contain_text(name)
    assert urlsplit(page.url).path.startswith("/kpi/")
    assert urlsplit(page.url).path != "/kpi/expansion_revenue/"

    # Use a calculator: Net Revenue Retention takes the KPIs it is built from.
    page.goto(served + "/kpi/net_revenue_retention/")
    form = page.locator("form.kpi-calculator")
    out = form.locator("output.kpi-calc-result")
    values = {
        "starting_revenue": "200000",
        "expansion_revenue": "30000",
        "contraction_revenue": "8000",
        "churned_revenue": "12000",
    }
    for key, value in values.items():
        form.locator(f'input[data-name="{key}"]').fill(value)
    expect(out).to_have_text("105.00%")
    form.locator('input[data-name="expansion_revenue"]').fill("50000")
    expect(out).to_have_text("115.00%")
    form.locator('input[data-name="starting_revenue"]').fill("0")
    expect(out).to_have_text("\u2014")  # division by zero: no value, as in the engine
    watch.check()
    page.close()


def test_search_finds_exact_names_first_and_aliases(browser, served):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page, served)
    page.goto(served + "/")
    wrong = {}
    for kpi in kpi_registry.load():
        href = _first_hit(page, kpi.name)
        if href != f"/kpi/{kpi.id}/":
            wrong[kpi.name] = href
    assert wrong == {}
    assert _first_hit(page, "NDR") == "/kpi/net_revenue_retention/"
    assert _first_hit(page, "LTV") == "/kpi/customer_lifetime_value/"
    assert _first_hit(page, "net dollar retention") == "/kpi/net_revenue_retention/"
    watch.check()
    page.close()


def test_injected_markup_in_a_definition_does_not_run(browser):
    site, _ = xss_site()
    server, base = _serve(site)
    try:
        page = browser.new_page()
        watch = Watch(page, base)
        page.goto(base + "/kpi/evil_kpi/")
        expect(page.locator("h1")).to_contain_text("<script>")  # shown as text
        page.goto(base + "/categories/evil/")
        page.goto(base + "/")
        watch.check()  # no alert() dialog, no error, no outside request
        page.close()
    finally:
        server.shutdown()


def test_catalog_table_sorts_and_filters(browser, served):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    watch = Watch(page, served)
    page.goto(served + "/browse/catalog/")
    rows = page.locator("table.kpi-sortable tbody tr")
    total = rows.count()
    assert total == len(kpi_registry.load())
    names = lambda: [n.strip() for n in rows.locator("td:first-child").all_inner_texts()]  # noqa: E731
    assert names() == sorted(names(), key=str.casefold)  # by name until a header is clicked

    page.fill("input.kpi-filter", "retention percent")
    visible = page.locator("table.kpi-sortable tbody tr:not([hidden])")
    kept = visible.count()
    assert 0 < kept < total
    for text in visible.all_inner_texts():
        assert "retention" in text.lower() and "percent" in text.lower()
    expect(page.locator(".kpi-count")).to_have_text(f"{kept} of {total} KPIs")

    page.fill("input.kpi-filter", "")
    header = page.locator("table.kpi-sortable th", has_text="Function")
    header.click()
    column = header.evaluate("th => th.cellIndex")
    functions = rows.evaluate_all(f"rs => rs.map(r => r.cells[{column}].textContent.trim())")
    assert functions == sorted(functions, key=str.casefold)
    header.click()
    again = rows.evaluate_all(f"rs => rs.map(r => r.cells[{column}].textContent.trim())")
    assert again == sorted(functions, key=str.casefold, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"
    watch.check()
    page.close()


def test_scorecard_page_renders_in_a_browser(browser, tmp_path):
    import pandas as pd

    from kpi_registry.cli import main

    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "_targets.yaml").write_text(
        "targets:\n  - kpi: net_revenue_retention\n    target: 100\n    at_risk: 95\n"
    )
    rows = [("a", "2024-01", 100), ("b", "2024-01", 50), ("a", "2024-02", 90)]
    rows += [("b", "2024-02", 60), ("a", "2024-03", 95), ("b", "2024-03", 40)]
    pd.DataFrame(rows, columns=["customer", "month", "mrr"]).to_csv(tmp_path / "m.csv", index=False)
    out = tmp_path / "scorecard.html"
    args = ["scorecard", "net_revenue_retention", "monthly_recurring_revenue"]
    args += ["--data", str(tmp_path / "m.csv"), "--period", "month", "--entity", "customer"]
    args += ["--column", "revenue=mrr", "--path", str(tmp_path / "defs"), "--html", str(out)]
    assert main(args) == 0
    server, base = _serve(tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1000, "height": 600})
        watch = Watch(page, base)
        page.goto(base + "/scorecard.html")
        expect(page.locator("tbody tr")).to_have_count(2)
        status = page.locator("span.status").first
        expect(status).to_have_text("off track")  # March NRR: (150 + 5 - 20) / 150 = 90%
        assert status.evaluate("e => getComputedStyle(e).backgroundColor") != "rgba(0, 0, 0, 0)"
        box = page.locator("svg.spark").first.bounding_box()
        assert box and box["width"] > 50 and box["height"] > 10
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "scorecard.png"))
        watch.check()
        page.close()
    finally:
        server.shutdown()
