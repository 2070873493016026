"""`kpi eval` output a person reads: the period column named after the grain, partial periods
flagged (also in the frame, the same for both engines), a dash for a missing value and the
number of undefined cells."""

from __future__ import annotations

import pandas as pd
import pytest

import kpi_registry
from kpi_registry.cli import main

# Two customers from January to May: the second quarter is covered only in April and May.
ROWS = {
    "month": ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"] * 2,
    "customer": ["a"] * 5 + ["b"] * 5,
    "revenue": [100, 110, 120, 0, 0, 50, 50, 50, 60, 60],
}


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


@pytest.fixture
def data_csv(tmp_path):
    path = tmp_path / "mrr.csv"
    pd.DataFrame(ROWS).sample(frac=1, random_state=3).to_csv(path, index=False)  # any order
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
@pytest.mark.parametrize(
    ("grain", "partial"),
    [("quarter", ["2024Q2"]), ("year", ["2024"]), ("month", []), (None, [])],
)
def test_partial_periods_in_the_frame(reg, engine, grain, partial):
    frame = reg.evaluate(
        "net_revenue_retention",
        pd.DataFrame(ROWS),
        period="month",
        entity="customer",
        grain=grain,
        engine=engine,
    )
    assert [str(p) for p in frame.attrs["partial_periods"]] == partial
    assert "month" in frame.columns  # the API keeps the caller's column name


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_period_covered_in_full_is_not_partial(reg, engine):
    rows = pd.DataFrame(ROWS)
    rows = rows[rows["month"] <= "2024-03"]  # exactly the first quarter
    frame = reg.evaluate(
        "net_revenue_retention",
        rows,
        period="month",
        entity="customer",
        grain="quarter",
        engine=engine,
    )
    assert frame.attrs["partial_periods"] == []


def test_period_labels_of_partial_periods_match_the_column(reg):
    """Timestamps in, timestamps out: the flagged labels are values of the period column."""
    rows = pd.DataFrame(ROWS).assign(month=lambda f: pd.to_datetime(f["month"]))
    frame = reg.evaluate(
        "net_revenue_retention", rows, period="month", entity="customer", grain="quarter"
    )
    assert list(frame.attrs["partial_periods"]) == [frame["month"].iloc[-1]]


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_eval_table_is_readable(capsys, data_csv, engine):
    code, out, _ = run(
        capsys,
        "eval",
        "NRR",
        "customer_churn_rate",
        "--data",
        str(data_csv),
        "--period",
        "month",
        "--entity",
        "customer",
        "--grain",
        "quarter",
        "--engine",
        engine,
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["quarter", "net_revenue_retention", "customer_churn_rate"]
    assert lines[1].split() == ["2024Q1", "-", "-"]  # no previous quarter: a dash, not NaN
    assert lines[2].split() == ["2024Q2", "*", "35.29", "50.00"]
    assert "NaN" not in out and "nan" not in out
    assert lines[3].startswith("* partial quarter") and "2024Q2" in lines[3]
    assert lines[4].startswith("- 2 undefined cells")
    assert "net_revenue_retention 1" in lines[4] and "customer_churn_rate 1" in lines[4]


def test_eval_table_without_grain_or_gaps_has_no_notes(capsys, data_csv):
    code, out, _ = run(
        capsys,
        "eval",
        "churned_revenue",
        "--data",
        str(data_csv),
        "--period",
        "month",
        "--entity",
        "customer",
    )
    assert code == 0
    assert out.splitlines()[0].split()[0] == "month"
    assert "partial" not in out


def test_eval_csv_headed_by_grain(capsys, data_csv):
    code, out, _ = run(
        capsys,
        "eval",
        "NRR",
        "--data",
        str(data_csv),
        "--period",
        "month",
        "--entity",
        "customer",
        "--grain",
        "year",
        "--format",
        "csv",
    )
    assert code == 0
    assert out.splitlines() == ["year,net_revenue_retention", "2024,"]
