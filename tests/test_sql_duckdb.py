"""The DuckDB engine gives the pandas engine's frames: same rows, order, labels and numbers."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from sql_helpers import FIXTURES, REVENUE_FAMILY, TIME_KPIS, assert_same, messy_frame

import kpi_registry
from kpi_registry.errors import DataError, KPIError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.formula import Call, Name
from kpi_registry.sql import evaluate_duckdb

MAP = {"revenue": "mrr"}


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load(FIXTURES, include_bundled=False)


@pytest.fixture(scope="module")
def data():
    return messy_frame()


def both(reg, ids, data, request):
    """(pandas result or error, duckdb result or error)."""
    out = []
    for engine in (evaluate_many, evaluate_duckdb):
        try:
            out.append(engine(reg.kpis, ids, data, request))
        except KPIError as e:
            out.append(e)
    return out


REQUESTS = {
    "grid": Request("month", "customer", [], None, MAP),
    "grid_by_segment": Request("month", "customer", ["segment"], None, MAP),
    "grid_by_two": Request("month", "customer", ["segment", "plan"], None, MAP),
    "grid_quarter": Request("month", "customer", [], "quarter", MAP),
    "grid_by_segment_quarter": Request("month", "customer", ["segment"], "quarter", MAP),
    "grid_by_plan_year": Request("month", "customer", ["plan"], "year", MAP),
    "grid_no_period": Request(None, "customer", ["segment"], None, MAP),
    "rows": Request("month", None, [], None, MAP),
    "rows_by_segment_quarter": Request("month", None, ["segment"], "quarter", MAP),
    "rows_no_period": Request(None, None, [], None, MAP),
}


def needs_period(reg, kpi_id: str, seen: frozenset[str] = frozenset()) -> bool:
    """Does the KPI's formula, or one it reads, call previous() or ever_before()?"""
    expression = reg.kpis[kpi_id].expression
    for node in expression.walk() if expression is not None else []:
        if isinstance(node, Call) and node.func in ("previous", "ever_before"):
            return True
        name = node.name if isinstance(node, Name) else None
        if name in reg.kpis and name not in seen and needs_period(reg, name, seen | {kpi_id}):
            return True
    return False


@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_every_fixture_kpi_matches_pandas(reg, data, name):
    """All fixture KPIs at once (sharing work), on messy data, in every request shape (without
    a period, those that compare periods are errors: see the next test)."""
    request = REQUESTS[name]
    ids = [k for k in reg.ids if request.entity or k not in TIME_KPIS]
    ids = [k for k in ids if request.period or not needs_period(reg, k)]
    want, got = both(reg, ids, data, request)
    assert not isinstance(want, Exception), want
    assert_same(want, got)
    assert got.attrs == want.attrs  # undefined counts and warnings (the empty month)


@pytest.mark.parametrize("entity", ["customer", None])
def test_time_functions_without_period_fail_the_same_way(reg, data, entity):
    """previous() and ever_before() need a period column: both engines say so, naming the KPI,
    rather than giving NaN for every previous() and false for every ever_before()."""
    timed = [k for k in reg.ids if needs_period(reg, k)]
    assert len(timed) > len(TIME_KPIS)  # also previous() of KPIs, which needs no entity
    for kpi_id in timed:
        want, got = both(reg, [kpi_id], data, Request(None, entity, [], None, MAP))
        assert isinstance(want, DataError) and isinstance(got, DataError), kpi_id
        assert str(got) == str(want)
        assert str(want).startswith(f"KPI {kpi_id!r} uses ")
        assert "pass period='your_period_column'" in str(want)


@pytest.mark.parametrize("kpi_id", sorted(TIME_KPIS))
def test_time_functions_without_entity_fail_the_same_way(reg, data, kpi_id):
    want, got = both(reg, [kpi_id], data, Request("month", None, [], None, MAP))
    assert isinstance(want, DataError) and isinstance(got, DataError)
    assert str(got) == str(want)


def _month_variants(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    months = pd.PeriodIndex(frame["month"], freq="M")
    rng = np.random.default_rng(3)
    days = months.to_timestamp() + pd.to_timedelta(rng.integers(0, 27, len(frame)), "D")
    return {
        "month_start_timestamps": frame.assign(month=months.to_timestamp()),
        "month_end_dates": frame.assign(month=months.to_timestamp(how="end").normalize()),
        "month_starts_in_berlin": frame.assign(
            month=months.to_timestamp().tz_localize("Europe/Berlin")
        ),
        "pandas_periods": frame.assign(month=months),
        "quarter_text": frame.assign(month=[str(q) for q in months.asfreq("Q")]),
        "quarter_text_dashed": frame.assign(month=[f"{q.year}-Q{q.quarter}" for q in months]),
        "year_integers": frame.assign(month=months.year),
        "month_text_slashes": frame.assign(month=[f"{m.year}/{m.month:02d}" for m in months]),
        "days": frame.assign(month=days),
        "day_text": frame.assign(month=[d.strftime("%Y-%m-%d") for d in days]),
        "weekly_periods": frame.assign(month=pd.PeriodIndex(days, freq="W")),
    }


VARIANT_GRAINS = {
    "days": [None, "week", "month", "quarter"],
    "day_text": [None, "month", "year"],
    "weekly_periods": [None, "month", "quarter"],
}


@pytest.mark.parametrize(
    "variant",
    sorted(_month_variants(pd.DataFrame({"month": ["2024-01"]}))),
)
def test_period_formats_and_grains(reg, data, variant):
    """Dates, month ends, pandas Periods, text the SQL parses and text it maps, weeks, days."""
    frame = _month_variants(data)[variant]
    ids = [*REVENUE_FAMILY, "seat_utilization", "order_count", "mean_order_value"]
    for grain in VARIANT_GRAINS.get(variant, [None, "quarter", "year"]):
        for by in ([], ["segment"]):
            request = Request("month", "customer", by, grain, MAP)
            want, got = both(reg, ids, frame, request)
            if isinstance(want, Exception):
                assert str(got) == str(want)
                continue
            assert_same(want, got)


def test_churn_without_a_zero_row_is_counted(reg):
    """The pitfall: Beta vanishes from the export in February with no zero row. A LAG over
    raw rows would compare Beta's March row with January and miss the churn."""
    frame = pd.DataFrame(
        {
            "customer": ["acme", "beta", "acme", "acme", "beta"],
            "month": ["2024-01", "2024-01", "2024-02", "2024-03", "2024-03"],
            "mrr": [100.0, 200.0, 100.0, 100.0, 200.0],
        }
    )
    request = Request("month", "customer", [], None, MAP)
    ids = ["churned_revenue", "reactivation_revenue", "new_revenue"]
    got = evaluate_duckdb(reg.kpis, ids, frame, request)
    assert got["churned_revenue"].tolist()[1:] == [200.0, 0.0]
    assert got["reactivation_revenue"].tolist()[1:] == [0.0, 200.0]
    assert_same(evaluate_many(reg.kpis, ids, frame, request), got)
    naive = duckdb.sql(
        "SELECT month, SUM(CASE WHEN prev > 0 AND mrr = 0 THEN prev ELSE 0 END) AS churned "
        "FROM (SELECT *, LAG(mrr) OVER (PARTITION BY customer ORDER BY month) AS prev "
        "FROM frame) GROUP BY month ORDER BY month"
    ).fetchall()
    assert [c for _, c in naive] == [0.0, 0.0, 0.0]  # what the generated SQL avoids


def test_division_by_zero_is_missing_never_infinite(reg):
    frame = pd.DataFrame(
        {
            "customer": ["a", "a", "b", "b"],
            "month": ["2024-01", "2024-02", "2024-01", "2024-02"],
            "mrr": [0.0, 50.0, 0.0, 0.0],
            "discount": [0.0, 0.5, 0.0, 0.0],  # 0 ^ -1 is infinite in numpy
        }
    )
    request = Request("month", "customer", [], None, MAP)
    ids = ["net_revenue_retention", "quick_ratio", "expansion_revenue_rate", "discount_power"]
    want, got = both(reg, ids, frame, request)
    assert_same(want, got)
    assert np.isnan(got[ids[:3]].to_numpy()).all()  # starting revenue 0, no churn
    # 0 ^ -1 is missing, as 1 / 0 is, so sum() skips it (once it made the sum infinite);
    # (50 - 100) ^ 0.5 is missing too: 0 + 0 + 0 in January, 0 + 1 / 0.5 + 50 ^ 2 / 1000 after
    assert got["discount_power"].tolist() == [0.0, 4.5]


def test_supplied_kpi_columns(reg, data):
    """A KPI id present as a column is used as given, one value per period and group."""
    request = Request("month", "customer", ["segment"], None, MAP)
    parts = ["starting_revenue", "expansion_revenue", "contraction_revenue", "churned_revenue"]
    summary = evaluate_many(reg.kpis, parts, data, request)
    given = Request("month", None, ["segment"], None, {})
    want, got = both(reg, ["net_revenue_retention", "gross_revenue_retention"], summary, given)
    assert_same(want, got)
    # the same column twice in one period and group with different values is an error
    clash = Request("month", "customer", ["segment"], None, {**MAP, "total_revenue": "mrr"})
    want, got = both(reg, ["total_revenue"], data, clash)
    assert isinstance(got, DataError)
    assert str(got).startswith("column 'mrr' supplies KPI 'total_revenue' but has different")
    assert str(got).endswith("give one value per period and group")


def test_data_sources(reg, data, tmp_path):
    """Parquet and CSV paths (read by DuckDB itself), a glob, a relation, a connection table."""
    ids = [*REVENUE_FAMILY, "promoter_score", "mean_order_value"]
    request = Request("month", "customer", ["segment"], "quarter", MAP)
    want = evaluate_many(reg.kpis, ids, data, request)
    data.to_parquet(tmp_path / "all.parquet")
    data.to_csv(tmp_path / "all.csv", index=False, na_rep="NA")  # pandas reads NA as missing
    for i, (_, part) in enumerate(data.groupby(data.index // 200)):
        part.to_parquet(tmp_path / f"part-{i:02d}.parquet")
    for source in ("all.parquet", "all.csv", "part-*.parquet"):
        got = evaluate_duckdb(reg.kpis, ids, str(tmp_path / source), request)
        assert_same(want, got)
    con = duckdb.connect()
    con.register("frame_view", data)
    con.execute("CREATE TABLE billing AS SELECT * FROM frame_view")
    assert_same(want, evaluate_duckdb(reg.kpis, ids, (con, "billing"), request))
    # a relation has no row order: fine for every KPI here except 'last' datapoints
    plain = [*REVENUE_FAMILY, "mean_order_value"]
    relation = con.sql("SELECT * FROM billing")
    assert_same(
        evaluate_many(reg.kpis, plain, data, Request("month", "customer", [], "quarter", MAP)),
        evaluate_duckdb(
            reg.kpis, plain, relation, Request("month", "customer", [], "quarter", MAP)
        ),
    )


def test_registry_and_cli_use_the_duckdb_engine(reg, data, tmp_path, capsys):
    path = tmp_path / "mrr.parquet"
    data.to_parquet(path)
    frame = reg.evaluate(
        "net_revenue_retention",
        str(path),
        period="month",
        entity="customer",
        by="segment",
        columns=MAP,
        engine="duckdb",
    )
    want = reg.evaluate(
        "net_revenue_retention",
        data,
        period="month",
        entity="customer",
        by="segment",
        columns=MAP,
    )
    assert_same(want, frame)

    from kpi_registry.cli import main

    args = ["eval", "expansion_revenue", "--data", str(path), "--period", "month"]
    args += ["--entity", "customer", "--column", "revenue=mrr", "--format", "csv"]
    assert main([*args, "--engine", "duckdb"]) == 0
    duck = capsys.readouterr()
    assert main(args) == 0
    assert duck.out == capsys.readouterr().out
    assert "no rows at all in period(s) 2023-08" in duck.err  # the empty month is reported


def test_clear_errors(reg, data, tmp_path):
    request = Request("month", "customer", [], None, MAP)
    with pytest.raises(DataError, match="mapping of single numbers .* pandas engine only"):
        evaluate_duckdb(reg.kpis, ["total_revenue"], {"revenue": 3.0}, Request())
    want, got = both(reg, ["total_revenue"], data, Request("month", "client", [], None, MAP))
    assert isinstance(got, DataError) and str(got) == str(want)
    want, got = both(reg, ["total_revenue"], data, Request("month", "customer", [], None, {}))
    assert isinstance(got, DataError) and str(got) == str(want)  # no column for 'revenue'
    bad = data.assign(mrr=data["mrr"].astype(object))
    bad.loc[3, "mrr"] = "n/a"
    with pytest.raises(DataError, match="could not be read as numbers"):
        evaluate_duckdb(reg.kpis, ["total_revenue"], bad, request)
    holes = data.assign(customer=data["customer"].where(data.index != 5, None))
    with pytest.raises(DataError, match="entity column 'customer' is empty"):
        evaluate_duckdb(reg.kpis, ["total_revenue"], holes, request)
    with pytest.raises(DataError, match="not found"):
        evaluate_duckdb(reg.kpis, ["total_revenue"], str(tmp_path / "nope.parquet"), request)
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(DataError, match="use .parquet or .csv"):
        evaluate_duckdb(reg.kpis, ["total_revenue"], str(tmp_path / "data.json"), request)
    with pytest.raises(DataError, match="not list"):
        evaluate_duckdb(reg.kpis, ["total_revenue"], [1, 2], request)


def test_empty_data_gives_an_empty_frame(reg, data):
    empty = data.iloc[0:0]
    # (with an entity *and* by, the pandas engine itself fails on empty data: numpy argmax)
    for request in (
        Request("month", "customer", [], None, MAP),
        Request("month", None, ["plan"], None, MAP),
    ):
        ids = ["total_revenue", "order_count"]
        want, got = both(reg, ids, empty, request)
        assert list(got.columns) == list(want.columns) and len(got) == len(want) == 0
