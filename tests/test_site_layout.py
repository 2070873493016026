"""The built site's layout in a real browser (Chromium): formulas that fit, pages that fit a
phone, legible pictures, calculator warnings, the reader's dark-mode preference (issue 19).

Runs wherever /usr/bin/chromium exists and always under CI (CI=true).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from site_helpers import bundled_site

from kpi_registry.site.serve import make_server

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Path, str]]:
    site, _ = bundled_site()
    server = make_server(site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield site, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


_FORMULA_BOX = re.compile(r'<div class="kpi-math">.*?</div>', re.S)

#: For each formula box's markup: put it in the page's own formula box (same column, same
#: styles) and report the shown formulas that stick out of it or make it scroll.
_MEASURE = """(boxes) => {
  const box = document.querySelector('.kpi-math');
  const out = [];
  boxes.forEach(([id, html]) => {
    box.outerHTML = html;
    const now = document.querySelector('.kpi-math');
    const frame = now.getBoundingClientRect();
    const shown = [...now.querySelectorAll(':scope > math')]
      .filter(m => getComputedStyle(m).display !== 'none');
    const wide = shown.some(m => {
      const r = m.getBoundingClientRect();
      const inner = [...m.querySelectorAll('*')].map(e => e.getBoundingClientRect().right);
      return Math.max(r.right, ...inner) > frame.right + 0.5;
    });
    if (shown.length === 0 || shown.length > 2 || wide || now.scrollWidth > now.clientWidth + 1)
      out.push([id, shown.length, now.scrollWidth, now.clientWidth]);
  });
  return out;
}"""


@pytest.mark.parametrize("width", [1400, 400, 360])
def test_no_formula_overflows_its_box(browser, served, width):
    """Every bundled KPI's formula, in a KPI page's formula box at this window width."""
    site, base = served
    boxes = []
    for page in sorted((site / "kpi").glob("*/index.html")):
        found = _FORMULA_BOX.search(page.read_text("utf-8"))
        if found:
            boxes.append((page.parent.name, found.group(0)))
    assert len(boxes) >= 200
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(base + "/kpi/net_revenue_retention/")
    assert page.evaluate(_MEASURE, boxes) == []
    page.close()


def test_long_formula_is_broken_into_lines_not_clipped(browser, served):
    _, base = served
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(base + "/kpi/net_revenue_retention/")
    text = page.evaluate(
        "() => [...document.querySelectorAll('.kpi-math > math')]"
        ".filter(m => getComputedStyle(m).display !== 'none').map(m => m.textContent).join(' ')"
    )
    assert "Contraction Revenue" in text and "100" in text
    box = page.locator(".kpi-math").first
    assert box.evaluate("b => b.scrollWidth <= b.clientWidth")
    page.close()


def _first(site: Path, folder: str) -> str:
    """The URL of the first page in a folder of the built site (a page of that type)."""
    return (
        "/"
        + min(p.parent for p in (site / folder).glob("*/index.html")).relative_to(site).as_posix()
        + "/"
    )


#: What a page may not do on a phone: stick out sideways, break a table header mid-word, or
#: draw chart or map text smaller than ~11 px.
_PHONE = """() => {
  const w = document.documentElement.clientWidth;
  const broken = [];
  for (const th of document.querySelectorAll('.md-typeset th')) {
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (lines.size > 1) broken.push(m[0]);
      }
    }
  }
  const tiny = [];
  for (const t of document.querySelectorAll('svg.kpi-chart text, svg.kpi-relation-map text')) {
    const svg = t.ownerSVGElement;
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    const px = parseFloat(getComputedStyle(t).fontSize) * scale;
    if (px < 10.9) tiny.push(t.textContent + ' ' + px.toFixed(1));
  }
  return {scroll: document.documentElement.scrollWidth - w, broken, tiny: tiny.slice(0, 5)};
}"""


@pytest.mark.parametrize("width", [360, 400])
def test_no_page_type_overflows_a_phone(browser, served, width):
    site, base = served
    pages = [
        "/",
        "/functions/",
        _first(site, "functions"),
        "/browse/catalog/",
        "/categories/",
        _first(site, "categories"),
        "/kpi/net_revenue_retention/",
        "/kpi/expansion_revenue/",
        "/kpi/customer_lifetime_value/",
        "/guides/adding-kpis/",
        "/reference/formula-language/",
        "/reference/definition-format/",
        "/browse/a-z/",
        "/browse/groups/",
        _first(site, "group"),
        _first(site, "industry"),
        _first(site, "tag"),
    ]
    page = browser.new_page(viewport={"width": width, "height": 800})
    bad = {}
    for url in pages:
        page.goto(base + url)
        found = page.evaluate(_PHONE)
        if found["scroll"] > 0 or found["broken"] or found["tiny"]:
            bad[url] = found
    page.close()
    assert bad == {}


def test_colour_scheme_follows_the_system_until_the_reader_toggles(browser, served):
    _, base = served
    context = browser.new_context(color_scheme="light")
    page = context.new_page()
    scheme = lambda: page.evaluate("() => document.body.dataset.mdColorScheme")  # noqa: E731
    page.goto(base + "/")
    assert scheme() == "default"
    # The system turns dark: the open page follows, and so does the next one (the theme had
    # kept the light palette it stored on the first visit).
    page.emulate_media(color_scheme="dark")
    expect(page.locator("body")).to_have_attribute("data-md-color-scheme", "slate")
    page.goto(base + "/browse/catalog/")
    assert scheme() == "slate"
    page.emulate_media(color_scheme="light")
    page.goto(base + "/")
    assert scheme() == "default"
    # The reader chooses dark with the toggle: that choice stays, whatever the system says.
    page.locator("label.md-header__button[for^=__palette]:visible").first.click()
    expect(page.locator("body")).to_have_attribute("data-md-color-scheme", "slate")
    page.emulate_media(color_scheme="light")
    page.goto(base + "/kpi/net_revenue_retention/")
    assert scheme() == "slate"
    context.close()


def test_calculator_warns_about_an_input_outside_its_valid_range(browser, served):
    """Customer Effort Score averages ratings declared valid from 1 to 7: a 9 is a typo, and
    the calculator says so instead of showing a score no survey can give."""
    _, base = served
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(base + "/kpi/customer_effort_score/")
    form = page.locator("form.kpi-calculator")
    out = form.locator("output.kpi-calc-result")
    warning = form.locator(".kpi-calc-warning")
    rating = form.locator('input[data-name="ease_rating"]')
    rating.fill("5.5")
    expect(out).to_have_text("5.50")
    expect(warning).to_be_hidden()
    rating.fill("9")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("between 1 and 7")
    expect(out).to_have_text("\u2014")
    rating.fill("0.5")
    expect(warning).to_be_visible()
    rating.fill("7")
    expect(warning).to_be_hidden()
    expect(out).to_have_text("7")
    page.close()


def _negative_input_warns(browser, served, kpi_id, inputs, negative, shown):
    """Fill a KPI's calculator with ``inputs`` and expect ``shown`` and no warning; then make
    the ``negative`` input below 0 and expect the warning and no number."""
    _, base = served
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(base + f"/kpi/{kpi_id}/")
    form = page.locator("form.kpi-calculator")
    out = form.locator("output.kpi-calc-result")
    warning = form.locator(".kpi-calc-warning")
    for name, value in inputs.items():
        form.locator(f'input[data-name="{name}"]').fill(value)
    expect(out).to_contain_text(shown)
    expect(warning).to_be_hidden()
    form.locator(f'input[data-name="{negative}"]').fill("-" + inputs[negative])
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("cannot be below 0")
    expect(out).to_have_text("\u2014")
    page.close()


def test_cost_per_lead_calculator_warns_about_a_negative_lead_count(browser, served):
    """Issue 19: Cost per Lead's totals come from spend and lead counts declared valid from
    0, so a negative count warns and no number is shown."""
    inputs = {"marketing_spend": "1000", "leads": "40"}
    _negative_input_warns(browser, served, "cost_per_lead", inputs, "leads", "25")


def test_nrr_calculator_warns_about_a_negative_starting_revenue(browser, served):
    """Issue 19: a negative Starting Revenue gave NRR 130%. One customer's MRR in a month is
    never negative (its invoice lines may be), so the starting revenue, a sum of them, is not:
    the page warns and shows no number."""
    inputs = {
        "starting_revenue": "100000",
        "expansion_revenue": "10000",
        "contraction_revenue": "5000",
        "churned_revenue": "5000",
    }
    _negative_input_warns(
        browser, served, "net_revenue_retention", inputs, "starting_revenue", "100"
    )
