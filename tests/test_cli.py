"""The kpi command: every command answers bad input with a message and an exit code."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from kpi_registry.cli import build_parser, main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_validate_bundled_library(capsys):
    code, out, _ = run(capsys, "validate", "--no-examples")
    assert code == 0
    assert out.strip().splitlines()[-1].endswith("definitions, 0 errors")


def test_validate_reports_every_error_and_exits_1(capsys, library):
    library.add("a", unit="percentage")
    library.write("b.yaml", "id: b\n  bad: [\n")
    code, out, err = run(capsys, "validate", "--no-bundled", str(library.root))
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[-1] == "1 definition, 2 errors"
    assert any(line.startswith(str(library.root / "a.yaml") + ":") for line in lines)
    assert any(line.startswith(str(library.root / "b.yaml") + ":") for line in lines)
    assert "Traceback" not in out + err


def test_validate_user_folder_against_bundled_library(capsys, library):
    library.add(
        "my_kpi",
        "expansion_revenue * 2",
        datapoints=None,
        relations={"leading": [{"kpi": "net_revenue_retention", "why": "x"}]},
    )
    code, out, _ = run(capsys, "validate", "--no-examples", str(library.root))
    assert code == 0, out
    assert out.strip().endswith("0 errors")


def test_list_with_filters(capsys):
    code, out, _ = run(capsys, "list", "--category", "revenue_retention")
    assert code == 0
    ids = [line.split()[0] for line in out.splitlines()]
    assert "expansion_revenue" in ids and "net_promoter_score" not in ids
    code, _, err = run(capsys, "list", "--category", "revenue_retentio")
    assert code == 1 and "did you mean 'revenue_retention'" in err


def test_show_prints_every_attribute(capsys):
    code, out, _ = run(capsys, "show", "expansion_revenue")
    assert code == 0
    for title in (
        "Definition",
        "Business insights",
        "Measurement approach",
        "Standard formula",
        "Trend analysis",
        "Diagnostics",
        "Tips",
        "Visualization",
        "Risk warnings",
        "Tools & technologies",
        "Integration points",
        "Change impact",
        "Leading indicators",
        "Source file",
    ):
        assert f"\n{title}" in out, title


def test_show_unknown_id_suggests(capsys):
    code, _, err = run(capsys, "show", "expansion_revnue")
    assert code == 1
    assert (
        err.strip() == "error: unknown KPI id 'expansion_revnue'; did you mean 'expansion_revenue'?"
        or "did you mean 'expansion_revenue'" in err
    )


def test_every_command_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"validate", "list", "search", "show", "eval", "schema"} <= set(sub.choices)
    for name, command in sub.choices.items():
        assert command.format_help().startswith("usage: kpi " + name), name


@pytest.fixture
def mrr_csv(tmp_path):
    frame = pd.DataFrame(
        {
            "customer": ["a", "b", "a", "c", "a"],
            "month": ["2024-01", "2024-01", "2024-02", "2024-02", "2024-03"],
            "segment": ["smb", "ent", "smb", "ent", "smb"],
            "mrr": [100, 50, 150, 20, 150],
        }
    )
    path = tmp_path / "mrr.csv"
    frame.to_csv(path, index=False)
    frame.to_parquet(tmp_path / "mrr.parquet")
    return path


def test_eval_csv_json(capsys, mrr_csv):
    code, out, _ = run(
        capsys,
        "eval",
        "expansion_revenue",
        "churned_revenue",
        "--data",
        str(mrr_csv),
        "--period",
        "month",
        "--entity",
        "customer",
        "--column",
        "revenue=mrr",
        "--format",
        "json",
    )
    assert code == 0
    rows = json.loads(out)
    assert rows[1] == {"month": "2024-02", "expansion_revenue": 50.0, "churned_revenue": 50.0}
    assert rows[0]["expansion_revenue"] is None


def test_eval_parquet_by_segment_csv_output(capsys, mrr_csv):
    code, out, _ = run(
        capsys,
        "eval",
        "net_revenue_retention",
        "--data",
        str(mrr_csv.with_suffix(".parquet")),
        "--period",
        "month",
        "--entity",
        "customer",
        "--by",
        "segment",
        "--grain",
        "quarter",
        "--column",
        "revenue=mrr",
        "--format",
        "csv",
    )
    assert code == 0
    assert out.splitlines()[0] == "quarter,segment,net_revenue_retention"  # headed by the grain


def test_eval_bad_inputs_have_messages(capsys, mrr_csv, tmp_path):
    code, _, err = run(
        capsys, "eval", "expansion_revenue", "--data", str(tmp_path / "no.csv"), "--period", "month"
    )
    assert code == 1 and "not found" in err
    code, _, err = run(
        capsys,
        "eval",
        "expansion_revenue",
        "--data",
        str(mrr_csv),
        "--period",
        "month",
        "--entity",
        "customer",
    )
    assert code == 1 and "datapoint 'revenue'" in err and "'mrr'" in err
    code, _, err = run(
        capsys,
        "eval",
        "expansion_revenue",
        "--data",
        str(mrr_csv),
        "--period",
        "month",
        "--column",
        "revenue",
    )
    assert code == 1 and "--column takes datapoint=column" in err


def test_schema_is_json(capsys):
    code, out, _ = run(capsys, "schema")
    assert code == 0
    assert json.loads(out)["title"] == "KPI definition"


def test_console_script_has_no_traceback_on_bad_definition(tmp_path):
    bad = tmp_path / "defs"
    bad.mkdir()
    (bad / "x.yaml").write_bytes(b"\x00\xff garbage")
    proc = subprocess.run(
        [sys.executable, "-m", "kpi_registry.cli", "validate", "--no-bundled", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "not valid UTF-8" in proc.stdout
