"""The generated Spark SQL runs on Apache Spark itself (pyspark, local mode) with the pandas
engine's numbers, and ``engine="spark"`` evaluates a Spark DataFrame or table in place.

One SparkSession serves the whole run (``conftest.spark``). Spark pays seconds per statement
whatever its size, so many KPIs share one statement: every bundled KPI on a generated table
per grain, ``by`` and layout, and the worked examples stacked per request shape with the
example as a group. Without Java these tests are skipped; under CI they must run.
"""

from __future__ import annotations

import pandas as pd
import pytest
from sql_helpers import (
    BUNDLED,
    FIXTURES,
    TIME_KPIS,
    assert_same,
    datapoint_frame,
    messy_frame,
)

import kpi_registry
from kpi_registry.errors import DataError, KPIError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.sql.compiler import compile_tree
from kpi_registry.sql.spark_engine import evaluate_spark, spark_sql
from kpi_registry.sql.spec import SQLCompileError, infer_period_format
from kpi_registry.validation import example_data, example_request

pytestmark = pytest.mark.spark

MAP = {"revenue": "mrr"}
EXAMPLE = "_example"


def _ids():
    return [] if BUNDLED is None else BUNDLED.ids


def _sparse_ids(kpis, ids, request) -> list[str]:
    """The KPIs whose SQL can skip the grid's empty cells for this request."""
    out = []
    for kpi_id in ids:
        try:
            compile_tree(kpis, [kpi_id], "t", request, "spark", layout="sparse")
        except SQLCompileError:
            continue
        out.append(kpi_id)
    return out


# -- the fixture library on messy data ---------------------------------------------------------
@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load(FIXTURES, include_bundled=False)


FIXTURE_SHAPES = {
    "grid_by_segment_text": (Request("month", "customer", ["segment"], None, MAP), "text"),
    "grid_by_two_quarter_dates": (
        Request("month", "customer", ["segment", "plan"], "quarter", MAP),
        "timestamp",
    ),
    "rows_by_segment_quarter_text": (Request("month", None, ["segment"], "quarter", MAP), "text"),
}


@pytest.mark.parametrize("shape", sorted(FIXTURE_SHAPES))
def test_fixture_kpis_match_pandas(spark, reg, shape):
    """Churn without a zero row, gaps, duplicate rows, segment moves within a month."""
    request, kind = FIXTURE_SHAPES[shape]
    frame = messy_frame()
    if kind == "timestamp":
        frame = frame.assign(month=pd.PeriodIndex(frame["month"], freq="M").to_timestamp())
    ids = [k for k in reg.ids if request.entity or k not in TIME_KPIS]
    want = evaluate_many(reg.kpis, ids, frame, request)
    assert_same(want, evaluate_spark(reg.kpis, ids, frame, request, spark=spark))


# -- every bundled KPI on one generated table ---------------------------------------------------
@pytest.fixture(scope="module")
def generated(spark):
    """The generated table as a Spark DataFrame, with a column keeping the rows' order."""
    from kpi_registry.sql.spark_engine import _from_pandas

    frame = datapoint_frame(BUNDLED.kpis)
    ordered = frame.assign(_kpi_row=range(len(frame)))
    return frame, _from_pandas(spark, ordered).cache()


@pytest.mark.parametrize("layout", ["dense", "sparse"])
@pytest.mark.parametrize("by", [[], ["segment"]], ids=["all", "by_segment"])
@pytest.mark.parametrize("grain", [None, "quarter"], ids=["month", "quarter"])
def test_bundled_generated_table(spark, generated, grain, by, layout):
    """All bundled KPIs (those that can skip empty cells, for the sparse layout) in one
    statement, from a Spark DataFrame."""
    frame, data = generated
    request = Request("month", "customer", by, grain, {})
    ids = BUNDLED.ids if layout == "dense" else _sparse_ids(BUNDLED.kpis, BUNDLED.ids, request)
    assert len(ids) >= (200 if layout == "dense" else 100), len(ids)
    want = evaluate_many(BUNDLED.kpis, ids, frame, request)
    got = evaluate_spark(BUNDLED.kpis, ids, data, request, order="_kpi_row", layout=layout)
    assert_same(want, got, atol=1e-12)


# -- the worked examples, stacked -----------------------------------------------------------------
def _example_groups() -> dict[tuple, list[tuple[str, int]]]:
    """Row-data worked examples by request and period format: those stack into one table."""
    groups: dict[tuple, list[tuple[str, int]]] = {}
    if BUNDLED is None:
        return groups
    for kpi in BUNDLED:
        for i, example in enumerate(kpi.examples):
            if isinstance(example.get("data"), dict):
                continue
            r = example_request(example)
            data = example_data(example)
            fmt = None
            if r.period is not None:
                _, fmt = infer_period_format(data[r.period].drop_duplicates(), r.period)
                fmt = (fmt.kind, fmt.base)
            key = (r.period, r.entity, tuple(r.by), r.grain, tuple(sorted(r.columns.items())), fmt)
            groups.setdefault(key, []).append((kpi.id, i))
    return groups


def _stacked(members: list[tuple[str, int]]):
    """One table of the examples' rows, each example a group (and its entities its own)."""
    frames, ids = [], []
    request = None
    for n, (kpi_id, i) in enumerate(members):
        example = BUNDLED[kpi_id].examples[i]
        request = example_request(example)
        data = example_data(example).assign(**{EXAMPLE: f"{n:03d}:{kpi_id}"})
        if request.entity is not None:
            data[request.entity] = [f"{n}/{v}" for v in data[request.entity]]
        frames.append(data)
        ids += [k for k in [kpi_id, *example.get("show", [])] if k not in ids]
    stacked = pd.concat(frames, ignore_index=True)
    by = [EXAMPLE, *request.by]
    return stacked, ids, Request(request.period, request.entity, by, request.grain, request.columns)


EXAMPLE_GROUPS = _example_groups()


def test_every_row_example_is_stacked():
    members = [m for group in EXAMPLE_GROUPS.values() for m in group]
    assert len(members) >= 20
    assert len(set(members)) == len(members)


@pytest.mark.parametrize(
    "key", sorted(EXAMPLE_GROUPS, key=str), ids=lambda k: "-".join(str(p) for p in k if p)
)
def test_bundled_worked_examples(spark, key):
    """Every bundled worked example with row data, its KPI and the intermediates it shows."""
    frame, ids, request = _stacked(EXAMPLE_GROUPS[key])
    want = evaluate_many(BUNDLED.kpis, ids, frame, request)
    assert_same(want, evaluate_spark(BUNDLED.kpis, ids, frame, request, spark=spark))


# -- the engine's inputs and errors -------------------------------------------------------------
TINY = pd.DataFrame(
    {
        "month": ["2024-01", "2024-01", "2024-02", "2024-02", "2024-03"],
        "customer": ["a", "b", "a", "a", "b"],
        "mrr": [100.0, 50.0, 120.0, 5.0, 60.0],
    }
)


def test_registry_evaluates_a_table_in_a_session(spark):
    from kpi_registry.sql.spark_engine import _from_pandas

    _from_pandas(spark, TINY).createOrReplaceTempView("kpi_tiny_mrr")
    registry = kpi_registry.load(FIXTURES, include_bundled=False)
    options = {"period": "month", "entity": "customer", "columns": MAP}
    want = registry.evaluate_many(["monthly_recurring_revenue", "churned_revenue"], TINY, **options)
    got = registry.evaluate_many(
        ["monthly_recurring_revenue", "churned_revenue"],
        "kpi_tiny_mrr",
        engine="spark",
        spark=spark,
        **options,
    )
    assert_same(want, got)
    assert got.attrs == want.attrs
    assert got["monthly_recurring_revenue"].tolist() == [150.0, 125.0, 60.0]
    # a Spark DataFrame needs no session argument: it carries its own
    frame = spark.table("kpi_tiny_mrr")
    one = registry.evaluate("monthly_recurring_revenue", frame, engine="spark", **options)
    assert_same(want[["month", "monthly_recurring_revenue"]], one)


def test_spark_errors_are_the_engines(spark, reg):
    request = Request("month", "customer", [], None, MAP)
    with pytest.raises(DataError) as missing_table:
        evaluate_spark(reg.kpis, ["churned_revenue"], "no_such_table_here", request, spark=spark)
    assert "no_such_table_here" in str(missing_table.value)
    with pytest.raises(DataError):
        evaluate_spark(reg.kpis, ["churned_revenue"], {"mrr": 1.0}, request, spark=spark)
    with pytest.raises(DataError):
        evaluate_spark(reg.kpis, ["churned_revenue"], [1, 2], request, spark=spark)
    with pytest.raises(DataError):
        evaluate_spark(reg.kpis, ["churned_revenue"], TINY, request, spark=spark, order="nope")
    with pytest.raises(KPIError):  # a column the KPI needs is not in the data
        evaluate_spark(
            reg.kpis, ["churned_revenue"], TINY.drop(columns="mrr"), request, spark=spark
        )
    with pytest.raises(KPIError):  # spark= belongs to the spark engine
        reg_obj = kpi_registry.load(FIXTURES, include_bundled=False)
        reg_obj.evaluate("churned_revenue", TINY, period="month", spark=spark)


def test_spark_sql_reads_the_period_format(spark, reg):
    request = Request("month", "customer", [], None, MAP)
    dates = TINY.assign(month=pd.to_datetime(TINY["month"]))
    text = spark_sql(reg.kpis, ["churned_revenue"], TINY, request, spark=spark)
    stamped = spark_sql(reg.kpis, ["churned_revenue"], dates, request, spark=spark)
    assert "EXTRACT(YEAR FROM" in stamped and "EXTRACT(YEAR FROM" not in text
