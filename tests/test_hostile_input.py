"""Hostile and odd definitions (issue 13): non-finite numbers, links that are not http(s),
and thousands of broken references, each refused at its file:line:col, quickly."""

from __future__ import annotations

import pytest

from kpi_registry.cli import main
from kpi_registry.registry import collect


def messages(folder) -> list[str]:
    return [str(d) for d in collect([folder], include_bundled=False).report.diagnostics]


HEAD = """id: a
name: A
summary: Test KPI a.
category: revenue_retention
unit: currency
direction: higher_is_better
status: draft
definition: The a used in tests.
datapoints:
  - name: revenue
    description: Revenue.
    unit: currency
    rows: sum
    time: stock
    missing: zero
"""


def test_a_formula_number_beyond_a_double_is_refused_at_its_column(library):
    path = library.write("a.yaml", HEAD + "formula:\n  expression: sum(revenue) * 1e999\n")
    (msg,) = messages(library.root)
    assert msg.startswith(f"{path}:17:30: formula.expression: number 1e999 is too large")


@pytest.mark.parametrize(
    "command", [["sql", "a", "--table", "t", "--period", "month"], ["export"], ["validate"]]
)
def test_commands_refuse_an_infinite_formula_number_instead_of_crashing(
    library, command, capsys, tmp_path
):
    path = library.write("a.yaml", HEAD + "formula:\n  expression: sum(revenue) * 1e999\n")
    if command == ["export"]:
        command = ["export", "--out", str(tmp_path / "catalog.json")]
    folder = [str(library.root)] if command == ["validate"] else ["--path", str(library.root)]
    code = main([*command, *folder])
    out = capsys.readouterr()
    err = out.err + out.out  # kpi validate reports on standard output
    assert code == 1, err
    assert f"{path}:17:30" in err and "Traceback" not in err


@pytest.mark.parametrize("text", [".inf", "-.inf", ".nan", ".NaN", "1e999"])
def test_a_non_finite_example_input_is_refused_at_its_line(library, text):
    example = (
        "formula:\n  expression: sum(revenue)\n"
        "examples:\n"
        "  - title: t\n"
        "    data:\n"
        f"      - {{month: 2024-01, revenue: {text}}}\n"
        "    parameters: {period: month}\n"
        "    expected:\n"
        "      - {month: 2024-01, a: 1}\n"
    )
    path = library.write("a.yaml", HEAD + example)
    found = [m for m in messages(library.root) if "not a finite number" in m]
    assert len(found) == 1, messages(library.root)
    assert found[0].startswith(f"{path}:21:35")
    assert "examples[0].data[0].revenue:" in found[0]


def test_a_non_finite_benchmark_is_refused(library):
    bench = {
        "value": float("inf"),
        "segment": "all",
        "source": {"publisher": "P", "title": "T", "url": "https://e.org", "year": 2024},
    }
    library.add("a", benchmarks=[bench])
    (msg,) = messages(library.root)
    assert "benchmarks[0].value: inf is not a finite number" in msg


BAD_LINKS = [
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "java\tscript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/x",
    "https://",
    "http:///path",
]


@pytest.mark.parametrize("url", BAD_LINKS)
@pytest.mark.parametrize("where", ["sources", "benchmarks"])
def test_only_http_and_relative_links_are_valid(library, url, where, tmp_path, capsys):
    if where == "sources":
        fields = {"sources": [{"title": "T", "url": url}]}
        field = "sources[0].url"
    else:
        source = {"publisher": "P", "title": "T", "url": url, "year": 2024}
        fields = {"benchmarks": [{"value": 1, "segment": "all", "source": source}]}
        field = "benchmarks[0].source.url"
    path = library.add("a", **fields)
    lines = path.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "url:" in text)
    (msg,) = messages(library.root)
    assert msg.startswith(f"{path}:{line}:") and f" {field}: " in msg
    out = tmp_path / "catalog.json"
    assert main(["export", "--out", str(out), "--path", str(library.root)]) == 1
    assert "Traceback" not in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "url",
    ["https://example.org/report?x=1#y", "http://example.org", "../guides/x.md", "notes.html"],
)
def test_http_and_relative_links_are_valid(library, url):
    library.add("a", sources=[{"title": "T", "url": url}])
    assert messages(library.root) == []


# -- did you mean, at scale ----------------------------------------------------------------

WORDS = (
    "account active acquisition activation ad adoption annual arpu average backlog balance "
    "bounce budget burn cart cash churn click close cohort contract contraction conversion cost "
    "coverage customer daily days debt deal demand deploy discount downtime effort employee "
    "engagement equity error expansion expense feature first flow forecast freight gross growth "
    "headcount hire incident inventory invoice lead length lifetime loss margin market monthly "
    "net new onboarding open operating order outstanding page paid payable payback pipeline "
    "price product profit quota rate ratio reactivation receivable recurring referral refund "
    "renewal resolution response retention return revenue runway sales satisfaction seat "
    "session share signup spend stock subscription support ticket time trial turnover uptime "
    "usage users utilization value velocity views visit weekly win yield"
).split()


def _typo(rng, word: str) -> str:
    i = rng.randrange(len(word))
    kind = rng.random()
    if kind < 0.33:
        return word[:i] + word[i + 1 :]
    if kind < 0.66:
        return word[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[i + 1 :]
    return word[:i] + word[i : i + 2][::-1] + word[i + 2 :]


def _synthetic_ids(rng, n: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < n:
        ids.add("_".join(rng.sample(WORDS, rng.randint(2, 4))))
    return sorted(ids)


def test_did_you_mean_matches_difflib_for_typical_typos():
    """The index gives difflib's own suggestions: over every bundled id, and a typo's best
    suggestion in a library of thousands."""
    import difflib
    import random

    import kpi_registry
    from kpi_registry.errors import suggest

    def plain(word, known):  # the previous implementation: difflib against every id
        found = difflib.get_close_matches(word, known, n=3, cutoff=0.6)
        return found or [k for k in known if word and (k.startswith(word) or word in k)][:3]

    rng = random.Random(13)
    bundled = list(kpi_registry.load().kpis)
    for kpi_id in bundled:
        # The best suggestion is difflib's; the others are close matches difflib also accepts
        # (its 2nd and 3rd may differ among equally poor matches, now that the library is
        # large enough to be read through the index).
        word = _typo(rng, kpi_id)
        got, want = suggest(word, bundled), plain(word, bundled)
        assert got[:1] == want[:1], word
        close = difflib.get_close_matches(word, bundled, n=len(bundled), cutoff=0.6)
        assert set(got) <= set(close or want), word
    for word in ("revenue", "churn", "xyz", "", "net_revenue"):
        assert suggest(word, bundled) == plain(word, bundled), word
    large = _synthetic_ids(rng, 1500)
    for kpi_id in rng.sample(large, 40):
        word = _typo(rng, kpi_id)
        assert suggest(word, large)[:1] == plain(word, large)[:1], word


def test_thousands_of_broken_references_validate_in_seconds():
    """2,000+ unknown KPI ids in a library of 3,000 (each looked up with difflib against
    every id, this took minutes)."""
    import random
    from pathlib import Path

    from kpi_registry.errors import Report
    from kpi_registry.model import KPI
    from kpi_registry.rules import KnownReferences, Library

    rng = random.Random(7)
    ids = _synthetic_ids(rng, 3000)
    known = {i: KPI(i, {"id": i}, Path(f"{i}.yaml")) for i in ids}
    broken = [_typo(rng, rng.choice(ids)) for _ in range(2100)] + [f"zz_{i}" for i in range(100)]
    broken = [b for b in broken if b not in known]
    related = [{"kpi": b, "why": "w"} for b in broken]
    kpi = KPI("x", {"id": "x", "relations": {"related": related}}, Path("x.yaml"))
    report = Report()
    # The work is counted, not timed (a loaded machine makes any time limit flaky): each
    # look-up computes a bounded number of difflib ratios, so the total is linear in the
    # number of broken references instead of references x ids (6.3 million here).
    import difflib

    calls = 0
    real_ratio = difflib.SequenceMatcher.ratio

    def counted(self):
        nonlocal calls
        calls += 1
        return real_ratio(self)

    difflib.SequenceMatcher.ratio = counted
    try:
        report.extend(KnownReferences().check(kpi, Library(known)))
    finally:
        difflib.SequenceMatcher.ratio = real_ratio
    assert len(report.errors) == len(broken) >= 2000
    assert sum("did you mean" in d.message for d in report.errors) >= 2000
    assert calls <= 12 * len(broken), calls  # about 10 per look-up, never len(ids)
