"""Definitions that carry their history (issue #17): kpi validate --against, kpi diff and the
History section of a KPI page, each on a throwaway git repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kpi_registry.cli import main
from kpi_registry.history import file_histories, semantic_changes
from kpi_registry.model import ATTRIBUTES

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")


def git(root, *args):
    subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(library):
    """A git repository holding one folder of definitions, with a first commit."""
    git(library.root, "init", "-q", "-b", "main")
    # A certified definition fills the twelve attributes: borrow a bundled KPI's texts.
    texts = yaml.safe_load((ROOT / "definitions" / "win_rate.yaml").read_text())
    attributes = {a: texts[a] for a in ATTRIBUTES if a not in ("formula", "definition")}
    library.add("booked", "sum(revenue)", version="1.0", status="certified", **attributes)
    library.add("spare", "sum(revenue) * 2", version="1.0")
    git(library.root, "add", "-A")
    git(library.root, "commit", "-qm", "first")
    return library


def edit(library, kpi_id, **fields):
    path = library.root / f"{kpi_id}.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(fields)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_formula_change_without_a_version_bump_is_an_error(repo, capsys):
    edit(repo, "spare", formula={"expression": "sum(revenue) * 3"})
    code = main(["validate", "--no-examples", "--against", "HEAD", str(repo.root)])
    out = capsys.readouterr().out
    assert code == 1
    assert "spare.yaml" in out and "version:" in out and "sum(revenue) * 3" in out
    assert "bump it" in out
    edit(repo, "spare", version="1.1")
    assert main(["validate", "--no-examples", "--against", "HEAD", str(repo.root)]) == 0
    capsys.readouterr()


def test_texts_alone_need_no_bump(repo, capsys):
    edit(repo, "spare", definition="A clearer wording of the same thing.")
    assert main(["validate", "--no-examples", "--against", "HEAD", str(repo.root)]) == 0
    capsys.readouterr()


def test_a_certified_definition_whose_numbers_changed_is_no_longer_certified(repo, capsys):
    edit(repo, "booked", formula={"expression": "sum(revenue) / 2"}, version="2.0")
    assert main(["validate", "--no-examples", "--against", "HEAD", str(repo.root)]) == 1
    out = capsys.readouterr().out
    assert "booked.yaml" in out and "status:" in out and "certified at HEAD" in out
    assert "version:" not in out  # it was bumped
    edit(repo, "booked", status="reviewed")
    assert main(["validate", "--no-examples", "--against", "HEAD", str(repo.root)]) == 0
    capsys.readouterr()


def test_an_unknown_revision_is_a_clear_error(repo, capsys):
    assert main(["validate", "--no-examples", "--against", "v9", str(repo.root)]) == 1
    assert "no git revision 'v9'" in capsys.readouterr().err


def test_kpi_diff_lists_semantic_changes_between_revisions(repo, capsys):
    edit(repo, "spare", formula={"expression": "sum(revenue) * 3"}, version="1.1", unit="count")
    path = edit(repo, "booked", relations={"related": [{"kpi": "spare", "why": "Twice as big."}]})
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-qm", "second")
    repo.add("fresh", "sum(revenue)")
    (repo.root / "booked.yaml").unlink()
    assert main(["diff", "HEAD~1", "HEAD", "--path", str(repo.root)]) == 0
    out = capsys.readouterr().out
    assert "spare\n  formula: sum(revenue) * 2 -> sum(revenue) * 3\n" in out
    assert "  unit: 'currency' -> 'count'\n" in out and "  version 1.0 -> 1.1\n" in out
    assert "booked\n  related relation to spare added\n" in out
    assert main(["diff", "HEAD", "--path", str(repo.root), "--format", "json"]) == 0
    changes = json.loads(capsys.readouterr().out)
    assert {"kpi": "fresh", "field": "kpi", "summary": "added"} in changes
    assert {"kpi": "booked", "field": "kpi", "summary": "removed"} in changes
    assert not path.exists()


def test_datapoint_changes_are_named():
    old = {"id": "k", "datapoints": [{"name": "a", "time": "flow"}, {"name": "b"}]}
    new = {"id": "k", "datapoints": [{"name": "a", "time": "stock"}, {"name": "c"}]}
    summaries = [c.summary for c in semantic_changes("k", old, new)]
    assert summaries == [
        "datapoint a: time 'flow' -> 'stock'",
        "datapoint b removed",
        "datapoint c added",
    ]


def test_history_per_file_newest_first_and_none_outside_git(repo, tmp_path):
    edit(repo, "spare", formula={"expression": "sum(revenue) * 3"}, version="1.1")
    git(repo.root, "commit", "-qam", "triple")
    history = file_histories([repo.root / "spare.yaml", repo.root / "booked.yaml"])
    spare = history[repo.root / "spare.yaml"]
    assert [e.subject for e in spare] == ["triple", "first"]
    assert [c.summary for c in spare[1].changes] == ["added"]
    assert "formula: sum(revenue) * 2 -> sum(revenue) * 3" in [c.summary for c in spare[0].changes]
    outside = tmp_path / "outside"
    shutil.copytree(repo.root, outside, ignore=shutil.ignore_patterns(".git"))
    assert file_histories([outside / "spare.yaml"]) == {}


def test_a_kpi_page_shows_its_history_from_git_and_none_outside(repo, tmp_path):
    from site_helpers import build, read

    edit(repo, "spare", formula={"expression": "sum(revenue) * 3"}, version="1.1")
    (repo.root / "booked.yaml").unlink()  # it links bundled KPIs; this site is built alone
    git(repo.root, "commit", "-qam", "triple")
    site, _ = build([repo.root])
    page = read(site, "kpi/spare/index.html")
    assert 'id="history"' in page
    assert "formula: sum(revenue) * 2 -&gt; sum(revenue) * 3; version 1.0 -&gt; 1.1" in page
    outside = tmp_path / "outside"
    shutil.copytree(repo.root, outside, ignore=shutil.ignore_patterns(".git"))
    site, _ = build([outside])
    assert 'id="history"' not in read(site, "kpi/spare/index.html")
