"""The generated Spark SQL runs on Apache Spark itself (pyspark, local mode) with the pandas
engine's numbers, and ``engine="spark"`` evaluates a Spark DataFrame or table in place.

One SparkSession serves the whole run (``conftest.spark``). Spark pays seconds per statement
whatever its size, so many KPIs share one statement: every bundled KPI on a generated table
per grain, ``by`` and layout, and the worked examples stacked per request shape with the
example as a group. Without Java these tests are skipped; under CI they must run.
"""

from __future__ import annotations

import os

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
from kpi_registry.errors import DataError, GrainError, KPIError
from kpi_registry.evaluation import Request, evaluate_many
from kpi_registry.sql.compiler import compile_tree
from kpi_registry.sql.spark_engine import evaluate_spark, spark_sql
from kpi_registry.sql.spec import SQLCompileError, infer_period_format
from kpi_registry.worked_examples import example_data, example_request

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


#: KPIs per Spark statement: Spark's planning time grows fast with the statement's size, and
#: 30 KPIs keep one statement to seconds. KPI_TEST_SPARK_FULL=1 runs every bundled KPI in
#: every combination below; by default each KPI runs in one of them, in turn, and every
#: combination runs.
CHUNK = 30
FULL = os.environ.get("KPI_TEST_SPARK_FULL") == "1"
COMBINATIONS = [
    (grain, by, layout)
    for grain in (None, "quarter")
    for by in ((), ("segment",))
    for layout in ("dense", "sparse")
]


def _combination_ids(index: int) -> list[str]:
    ids = _ids()
    return ids if FULL else ids[index :: len(COMBINATIONS)]


@pytest.mark.parametrize(
    "index",
    range(len(COMBINATIONS)),
    ids=[
        f"{grain or 'month'}-{'by_' + by[0] if by else 'all'}-{layout}"
        for grain, by, layout in COMBINATIONS
    ],
)
def test_bundled_generated_table(spark, generated, index):
    """Bundled KPIs on a Spark DataFrame, month and quarter, with and without ``by``, both
    layouts (the sparse one for the KPIs that can skip empty cells)."""
    grain, by, layout = COMBINATIONS[index]
    frame, data = generated
    request = Request("month", "customer", list(by), grain, {})
    # A KPI defined at other grains only (rule_of_40 per year, dau_mau_ratio per month) is an
    # error at this one, in every engine (tests/test_sql_bundled.py compares those errors).
    ids = [i for i in _combination_ids(index) if _defined(i, frame, request)]
    if layout == "sparse":
        ids = _sparse_ids(BUNDLED.kpis, ids, request)
    assert ids
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        want = evaluate_many(BUNDLED.kpis, chunk, frame, request)
        got = evaluate_spark(BUNDLED.kpis, chunk, data, request, order="_kpi_row", layout=layout)
        assert_same(want, got, atol=1e-12)


def _defined(kpi_id: str, frame: pd.DataFrame, request: Request) -> bool:
    try:
        evaluate_many(BUNDLED.kpis, [kpi_id], frame, request)
    except GrainError:
        return False
    return True


def test_every_bundled_kpi_runs_in_some_combination():
    covered = {k for i in range(len(COMBINATIONS)) for k in _combination_ids(i)}
    assert covered == set(_ids())


# -- the worked examples, stacked -----------------------------------------------------------------
PERIOD, ENTITY = "_month", "_entity_id"


def _example_groups() -> dict[tuple, list[tuple[str, int]]]:
    """Row-data worked examples by request shape (entity or not, how many ``by`` columns,
    grain, period format): the examples of one shape stack into one table."""
    groups: dict[tuple, list[tuple[str, int]]] = {}
    if BUNDLED is None:
        return groups
    for kpi in BUNDLED:
        for i, example in enumerate(kpi.examples):
            if isinstance(example.data, dict):
                continue
            r = example_request(example)
            _, fmt = infer_period_format(example_data(example)[r.period].drop_duplicates(), "p")
            key = (r.entity is not None, len(r.by), r.grain or "", fmt.kind, fmt.base)
            groups.setdefault(key, []).append((kpi.id, i))
    return groups


def _stacked(members: list[tuple[str, int]]):
    """One table of the examples' rows under common period, entity and group columns (the
    originals kept), each example a group of its own and its entities its own."""
    frames, ids = [], []
    request = None
    for n, (kpi_id, i) in enumerate(members):
        example = BUNDLED[kpi_id].examples[i]
        request = example_request(example)
        data = example_data(example)
        for datapoint, column in request.columns.items():
            data[datapoint] = data[column]
        data[PERIOD] = data[request.period]
        data[EXAMPLE] = f"{n:03d}:{kpi_id}[{i}]"
        if request.entity is not None:
            data[ENTITY] = [f"{n}/{v}" for v in data[request.entity]]
        for j, column in enumerate(request.by):
            data[f"_by{j}"] = data[column]
        frames.append(data)
        ids += [k for k in [kpi_id, *example.show] if k not in ids]
    stacked = pd.concat(frames, ignore_index=True)
    by = [EXAMPLE, *[f"_by{j}" for j in range(len(request.by))]]
    entity = ENTITY if request.entity is not None else None
    return stacked, ids, Request(PERIOD, entity, by, request.grain, {})


EXAMPLE_GROUPS = _example_groups()


def test_every_row_example_is_stacked():
    members = [m for group in EXAMPLE_GROUPS.values() for m in group]
    assert len(members) >= 20
    assert len(set(members)) == len(members)
    assert len(EXAMPLE_GROUPS) <= 25  # one Spark statement each


@pytest.mark.parametrize(
    "key", sorted(EXAMPLE_GROUPS), ids=lambda k: "-".join(str(p) for p in k if p != "")
)
def test_bundled_worked_examples(spark, key):
    """Every bundled worked example with row data, its KPI and the intermediates it shows."""
    members = EXAMPLE_GROUPS[key]
    for start in range(0, len(members), CHUNK):
        frame, ids, request = _stacked(members[start : start + CHUNK])
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
    want = registry.evaluate_many(["starting_revenue", "churned_revenue"], TINY, **options)
    got = registry.evaluate_many(
        ["starting_revenue", "churned_revenue"],
        "kpi_tiny_mrr",
        engine="spark",
        spark=spark,
        **options,
    )
    assert_same(want, got)
    assert got.attrs == want.attrs
    assert got["starting_revenue"].tolist()[1:] == [150.0, 125.0]
    # a Spark DataFrame needs no session argument: it carries its own
    frame = spark.table("kpi_tiny_mrr")
    one = registry.evaluate("starting_revenue", frame, engine="spark", **options)
    assert_same(want[["month", "starting_revenue"]], one)


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


def test_a_stored_nan_is_missing_as_in_pandas(spark, reg):
    """A Spark DataFrame made from pandas keeps NaN as a number; the pandas engine reads it as
    missing, and so must the SQL (Spark would otherwise sum it into NaN)."""
    from pyspark.sql import types as T

    frame = TINY.assign(mrr=[100.0, float("nan"), 120.0, 5.0, float("nan")])
    schema = T.StructType(
        [
            T.StructField("month", T.StringType()),
            T.StructField("customer", T.StringType()),
            T.StructField("mrr", T.DoubleType()),
            T.StructField("row", T.LongType()),
        ]
    )
    rows = [(*r, i) for i, r in enumerate(frame.itertuples(index=False))]
    data = spark.createDataFrame(rows, schema)
    request = Request("month", "customer", [], None, MAP)
    ids = ["starting_revenue", "churned_revenue", "expansion_revenue"]
    want = evaluate_many(reg.kpis, ids, frame, request)
    assert_same(want, evaluate_spark(reg.kpis, ids, data, request, order="row"))
    assert not want[ids].isna().all().all()
