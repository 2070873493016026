"""Your own definition folders (load(), --path, KPI_REGISTRY_PATH), `kpi show` origins,
`kpi schema`, and the pre-commit hooks other repositories use."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import kpi_registry
from kpi_registry import cli
from kpi_registry.errors import DefinitionError
from kpi_registry.schema import kpi_schema

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "extend"
LIBRARY = FIXTURES / "library"
TEAM = FIXTURES / "team_kpis"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_folder_adds_categories_and_references_the_folders_before_it():
    registry = kpi_registry.load(LIBRARY, TEAM, include_bundled=False)
    assert "team_goals" in registry.taxonomy and "finance" in registry.taxonomy
    target = registry["revenue_target"]
    assert target.category == "team_goals"
    assert registry.dependencies("revenue_target") == ["total_revenue"]
    assert registry.evaluate("revenue_target", {"total_revenue": 1000}) == pytest.approx(1100)
    # Without the library folder, the categories the team's files use are not there.
    with pytest.raises(DefinitionError, match="unknown category 'finance'"):
        kpi_registry.load(TEAM, include_bundled=False)


def test_duplicate_id_names_both_files():
    with pytest.raises(DefinitionError) as info:
        kpi_registry.load(LIBRARY, FIXTURES / "duplicate", include_bundled=False)
    [diag] = info.value.diagnostics
    assert diag.path.endswith("duplicate/total_revenue.yaml") and diag.field == "id"
    assert "duplicate id 'total_revenue'" in diag.message
    assert "library/total_revenue.yaml" in diag.message and "overrides: true" in diag.message


def test_a_file_reached_twice_is_read_once_through_links_and_a_folder_given_again(tmp_path):
    """A file given on its own, its folder given again under another name (a link), and a
    link to the file: one file, read once, no duplicate id."""
    library = tmp_path / "library"
    shutil.copytree(LIBRARY, library)
    (tmp_path / "alias").symlink_to(library, target_is_directory=True)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "total_revenue.yaml").symlink_to(library / "total_revenue.yaml")
    shutil.copy(library / "_taxonomy.yaml", extra / "_taxonomy.yaml")
    from kpi_registry.registry import collect

    once = collect([library], include_bundled=False)
    again = collect(
        [library / "total_revenue.yaml", library, tmp_path / "alias", extra],
        include_bundled=False,
    )
    assert not once.report and not again.report, again.report.errors
    assert again.files == once.files and set(again.kpis) == set(once.kpis)


def test_override_replaces_and_remembers_what_it_replaced():
    registry = kpi_registry.load(LIBRARY, TEAM, include_bundled=False)
    total = registry["total_revenue"]
    assert total.name == "Total Revenue (team definition)"
    assert total.path == TEAM / "total_revenue.yaml"
    assert total.overridden == [LIBRARY / "total_revenue.yaml"]
    # KPIs of the library now build on the team's definition.
    assert "total_revenue" in registry.dependencies("revenue_per_account")


def test_registry_path_environment_variable(monkeypatch):
    monkeypatch.setenv("KPI_REGISTRY_PATH", f"{LIBRARY}{os.pathsep}{TEAM}")
    registry = kpi_registry.load(include_bundled=False)
    assert "revenue_target" in registry and "annual_revenue" in registry
    assert registry["total_revenue"].origin == str(TEAM)


def test_load_adds_folders_to_the_bundled_library():
    registry = kpi_registry.load(LIBRARY, TEAM)
    assert "net_revenue_retention" in registry  # bundled
    assert registry["revenue_target"].origin == str(TEAM)
    assert registry["net_revenue_retention"].origin == "bundled"


def test_show_says_where_each_kpi_came_from(capsys):
    code, out, _ = run(capsys, "show", "total_revenue", "--path", str(LIBRARY), "--path", str(TEAM))
    assert code == 0
    assert re.search(r"^Source file: .*team_kpis/total_revenue\.yaml$", out, re.M)
    origin = re.search(r"^Origin: +(.*)$", out, re.M).group(1)
    assert origin.startswith(str(TEAM)) and "overrides" in origin
    assert "library/total_revenue.yaml" in origin

    code, out, _ = run(capsys, "show", "expansion_revenue")
    assert code == 0 and re.search(r"^Origin: +bundled$", out, re.M)


def test_validate_a_folder_on_its_own_or_with_the_bundled_library(tmp_path, capsys):
    team = tmp_path / "team"
    shutil.copytree(LIBRARY, team)
    code, out, _ = run(capsys, "validate", str(team), "--no-bundled")
    assert code == 0 and out.strip() == "12 definitions, 0 errors"
    code, out, _ = run(capsys, "validate", str(team))
    assert code == 0 and out.strip().endswith(", 0 errors")
    assert int(out.split()[0]) > 12  # the bundled library was checked too
    (team / "annual_revenue.yaml").write_text(
        (team / "annual_revenue.yaml")
        .read_text()
        .replace("total_revenue * 12", "total_revenu * 12")
    )
    code, out, _ = run(capsys, "validate", str(team), "--no-bundled")
    assert code == 1
    assert "annual_revenue.yaml:" in out and "did you mean 'total_revenue'" in out


def test_schema_command_prints_the_contract(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0 and json.loads(out) == kpi_schema()


# -- pre-commit -----------------------------------------------------------------------------
HOOKS = REPO / ".pre-commit-hooks.yaml"


def test_pre_commit_manifest_is_valid_for_pre_commit():
    from pre_commit.clientlib import load_manifest

    hooks = {h["id"]: h for h in load_manifest(str(HOOKS))}
    assert set(hooks) == {"kpi-validate", "kpi-fmt"}
    validate = hooks["kpi-validate"]
    assert validate["language"] == "python"
    assert validate["pass_filenames"] is False  # the folders come from args, all files at once
    assert re.search(validate["files"], "kpis/gross_margin.yaml")
    assert re.search(hooks["kpi-fmt"]["files"], "kpis/gross_margin.yml")


def test_pre_commit_entries_are_real_commands(tmp_path, capsys):
    """Run each hook's entry as pre-commit would (args, then file names for kpi-fmt)."""
    team = tmp_path / "kpis"
    shutil.copytree(LIBRARY, team)
    # pre-commit runs hooks in a git repository, and kpi-validate compares with HEAD.
    git = ["git", "-c", "user.name=T", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "kpis"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True, capture_output=True)
    hooks = {h["id"]: h for h in yaml.safe_load(HOOKS.read_text())}
    entry = shlex.split(hooks["kpi-validate"]["entry"])
    assert entry[0] == "kpi"
    code, out, _ = run(capsys, *entry[1:], str(team))  # args: [kpis/]
    assert code == 0 and out.strip().endswith(", 0 errors")

    messy = team / "messy_kpi.yaml"
    shutil.copy(FIXTURES / "fmt" / "messy_kpi.yaml", messy)
    entry = shlex.split(hooks["kpi-fmt"]["entry"])
    code, out, _ = run(capsys, *entry[1:], str(messy), str(team / "total_revenue.yaml"))
    assert code == 0 and f"reformatted {messy}" in out
    assert messy.read_text() == (FIXTURES / "fmt" / "messy_kpi.formatted").read_text()


# -- the guide ------------------------------------------------------------------------------
GUIDE = REPO / "docs" / "guides" / "adding-kpis.md"


def test_every_command_in_the_guide_parses():
    """The guide's `kpi ...` lines are real commands with real options (no drift)."""
    parser = cli.build_parser()
    commands = [
        line.strip().removeprefix("$ ")
        for line in GUIDE.read_text().splitlines()
        if line.strip().removeprefix("$ ").startswith("kpi ")
    ]
    assert len(commands) >= 10
    for command in commands:
        words = shlex.split(command.split(" #")[0])[1:]
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"the guide shows a command the CLI rejects: {command}")
