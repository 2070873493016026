"""`kpi new`: a complete draft that validates at once, with editor support, never overwriting."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from kpi_registry import cli
from kpi_registry.errors import KPIError
from kpi_registry.formatting import format_text
from kpi_registry.loading import parse_text
from kpi_registry.registry import collect
from kpi_registry.scaffold import SCHEMA_COPY, new_kpi, schema_reference, snake_case
from kpi_registry.schema import kpi_schema

FIXTURES = Path(__file__).parent / "fixtures" / "extend"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def team_dir(tmp_path: Path) -> Path:
    """An empty folder of the team's own KPIs with its own category 'finance_ops'."""
    folder = tmp_path / "my_kpis"
    folder.mkdir()
    (folder / "_taxonomy.yaml").write_text(
        "categories:\n  finance_ops:\n    name: Finance Ops\n    description: Our own.\n"
    )
    return folder


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Gross Margin", "gross_margin"),
        ("  Net  Revenue Retention ", "net_revenue_retention"),
        ("LTV:CAC Ratio", "ltv_cac_ratio"),
        ("Gross Margin %", "gross_margin_percent"),
        ("R&D Spend", "r_and_d_spend"),
        ("Café Visits", "cafe_visits"),
        ("30-day Retention", "kpi_30_day_retention"),
    ],
)
def test_snake_case_ids(name, expected):
    assert snake_case(name) == expected


def test_new_file_is_complete_and_validates_as_draft(team_dir, capsys):
    code, out, _ = run(
        capsys, "new", "Widget Margin", "--category", "finance_ops", "--dir", str(team_dir)
    )
    assert code == 0
    path = team_dir / "widget_margin.yaml"
    assert f"wrote {path} (status: draft)" in out
    text = path.read_text()
    data = parse_text(text)
    assert data["id"] == "widget_margin" and data["name"] == "Widget Margin"
    assert data["status"] == "draft" and data["category"] == "finance_ops"

    # Every schema field is there, as a field or as a commented-out field to fill in,
    # and every field line has a one-line comment above it saying what goes there.
    lines = text.splitlines()
    for field in kpi_schema()["properties"]:
        at = [i for i, line in enumerate(lines) if re.match(rf"^(# )?{field}:", line)]
        assert at, f"{field} missing from the scaffold"
        above = lines[at[0] - 1]
        assert above.startswith("# ") and len(above) > 10, f"{field} has no comment above it"
    # The comments are the schema's own descriptions, so they cannot drift from the contract.
    assert f"# {kpi_schema()['properties']['business_insights']['description']}" in lines

    # Validates with no bundled library at all (only the folder's own taxonomy), worked
    # example re-computed: the placeholder formula really evaluates.
    result = collect([team_dir], include_bundled=False, examples=True)
    assert [str(d) for d in result.report.errors] == []  # TODOs are warnings (#19)
    assert result.kpis["widget_margin"].expression is not None
    # And it is already in the layout `kpi fmt` writes.
    assert format_text(text) == text


def test_new_file_validates_with_the_bundled_library(team_dir, capsys):
    """`kpi validate <dir>` loads the bundled library too; the draft still passes. The folder
    is created if needed, and a bundled category works without a taxonomy of one's own."""
    folder = team_dir.parent / "new" / "kpis"
    code, _, err = run(
        capsys, "new", "Widget Throughput", "--category", "sales", "--dir", str(folder)
    )
    assert code == 0, err
    assert (folder / "widget_throughput.yaml").is_file()
    code, out, _ = run(capsys, "validate", str(folder))
    assert code == 0, out
    assert ", 0 errors, " in out.strip().splitlines()[-1]  # and the draft's TODO warnings


def test_refuses_to_overwrite(team_dir, capsys):
    target = team_dir / "widget_margin.yaml"
    target.write_text("id: gross_margin\n# my work\n")
    code, _, err = run(
        capsys, "new", "Widget Margin", "--category", "finance_ops", "--dir", str(team_dir)
    )
    assert code == 1
    assert f"{target} already exists; kpi new never overwrites a file" in err
    assert target.read_text() == "id: gross_margin\n# my work\n"


def test_unknown_category_lists_categories_and_says_how_to_add_one(team_dir, capsys):
    code, _, err = run(
        capsys, "new", "Gross Margin", "--category", "finance", "--dir", str(team_dir)
    )
    assert code == 1
    assert "unknown category 'finance'" in err
    assert "finance_ops" in err and "Finance Ops" in err  # the folder's own categories
    assert "sales " in err  # and the bundled ones
    assert f"create {team_dir / '_taxonomy.yaml'}" in err
    assert "categories:\n  finance:\n    name: Finance\n    description:" in err
    assert not (team_dir / "widget_margin.yaml").exists()


def test_existing_id_needs_overrides(tmp_path, capsys):
    folder = tmp_path / "team"
    shutil.copytree(FIXTURES / "library", tmp_path / "library")
    folder.mkdir()
    env_path = str(tmp_path / "library")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KPI_REGISTRY_PATH", env_path)
        code, _, err = run(
            capsys, "new", "Total Revenue", "--category", "finance", "--dir", str(folder)
        )
        assert code == 1
        assert "a KPI with id 'total_revenue' already exists in" in err
        assert "library/total_revenue.yaml" in err and "--overrides" in err

        code, _, err = run(
            capsys,
            "new",
            "Total Revenue",
            "--category",
            "finance",
            "--dir",
            str(folder),
            "--overrides",
        )
        assert code == 0, err
        assert parse_text((folder / "total_revenue.yaml").read_text())["overrides"] is True
        result = collect([folder], include_bundled=False, examples=True)
        new_file = str(folder / "total_revenue.yaml")
        assert [str(d) for d in result.report.errors if d.path == new_file] == []
        assert result.kpis["total_revenue"].path == folder / "total_revenue.yaml"
        assert result.kpis["total_revenue"].overridden == [
            tmp_path / "library" / "total_revenue.yaml"
        ]

        code, _, err = run(
            capsys, "new", "Brand New", "--category", "finance", "--dir", str(folder), "--overrides"
        )
        assert code == 1 and "there is no KPI 'brand_new' to override" in err


def test_id_option_and_bad_ids(team_dir):
    made = new_kpi("Widget Margin", "finance_ops", folder=team_dir, kpi_id="saas_gm")
    assert made.path == team_dir / "saas_gm.yaml"
    assert parse_text(made.text)["id"] == "saas_gm"
    with pytest.raises(KPIError, match="'Bad-Id' is not a valid id"):
        new_kpi("X", "finance_ops", folder=team_dir, kpi_id="Bad-Id")
    with pytest.raises(KPIError, match="cannot make an id from the name"):
        new_kpi("!!!", "finance_ops", folder=team_dir)
    with pytest.raises(KPIError, match="--unit 'euros': choose one of currency"):
        new_kpi("Y", "finance_ops", folder=team_dir, unit="euros")


def test_names_that_need_quoting_stay_text(team_dir):
    made = new_kpi("Yes: Rate #1", "finance_ops", folder=team_dir)
    assert parse_text(made.text)["name"] == "Yes: Rate #1"
    made = new_kpi("On", "finance_ops", folder=team_dir, kpi_id="on_rate")
    assert parse_text(made.text)["name"] == "On"  # not the YAML 1.1 boolean


def test_schema_copy_outside_the_repo(team_dir):
    made = new_kpi("Widget Margin", "finance_ops", folder=team_dir)
    assert made.text.splitlines()[0] == f"# yaml-language-server: $schema=./{SCHEMA_COPY}"
    copy = team_dir / SCHEMA_COPY
    assert made.schema_copy == copy
    assert json.loads(copy.read_text()) == kpi_schema()
    # Written once: a second file reuses it...
    assert new_kpi("Net Margin", "finance_ops", folder=team_dir).schema_copy is None
    # ...and a stale copy (an older package's schema) is brought up to date.
    copy.write_text("{}")
    assert new_kpi("Other Margin", "finance_ops", folder=team_dir).schema_copy == copy
    assert json.loads(copy.read_text()) == kpi_schema()
    # The copy is not mistaken for a definition.
    assert collect([team_dir], include_bundled=False).report.errors == []


def test_schema_reference_inside_the_repo_is_relative():
    ref, copy = schema_reference(REPO / "definitions")
    assert copy is None
    assert ref == "../kpi_registry/schema/kpi.schema.json"  # what the bundled files use
    assert json.loads((REPO / "definitions" / ref).read_text()) == kpi_schema()
    assert not (REPO / "definitions" / SCHEMA_COPY).exists()


def test_default_folder_is_the_first_registry_path(tmp_path, team_dir, monkeypatch):
    other = tmp_path / "other"
    monkeypatch.setenv("KPI_REGISTRY_PATH", f"{team_dir}{__import__('os').pathsep}{other}")
    made = new_kpi("Widget Margin", "finance_ops")
    assert made.path == team_dir / "widget_margin.yaml"
