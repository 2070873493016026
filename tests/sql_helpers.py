"""Shared by the tests/test_sql_*.py files: messy generated data, and frame comparison.

The data is built to trip a naive SQL translation: customers vanish without a zero row and
come back after gaps, change segment (also within one month), have several rows per month,
missing values, and one month has no rows at all.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

import kpi_registry
from kpi_registry.billing import REVENUE_FAMILY
from kpi_registry.errors import DefinitionError

FIXTURES = Path(__file__).parent / "fixtures" / "sql"
GOLDEN = Path(__file__).parent / "golden" / "sql"

#: Fixture KPIs whose formulas compare an entity with itself over time.
TIME_KPIS = {
    *REVENUE_FAMILY,
    "revenue_swing",
    "steady_customers",
    "revenue_with_carry",
    "two_back_revenue",
    "lost_customers",
    "expansion_two_back",
}
#: Fixture KPIs whose formulas need the dense grid, and why (the reason the SQL comment gives);
#: the compiler skips the empty cells of the grid for all others.
DENSE_FIXTURES = {
    "capped_usage": "mean() in capped_usage counts cells without rows",
    "lost_customers": "count() in lost_customers counts cells without rows",
    "steady_customers": "count() in steady_customers counts cells without rows",
    "two_back_revenue": "previous() of previous() looks back more than one period",
}


def messy_frame(seed: int = 7, customers: int = 40, months: int = 15) -> pd.DataFrame:
    """Customer-month rows with every pitfall a billing export has."""
    rng = np.random.default_rng(seed)
    segments = ["enterprise", "mid", "smb"]
    plans = ["annual", "monthly"]
    empty_month = months // 2  # no rows at all in this month
    rows = []
    for c in range(customers):
        start = int(rng.integers(0, months - 2))
        mrr = float(rng.choice([50, 100, 150, 300, 800]))
        segment = segments[int(rng.integers(0, 3))]
        plan = plans[int(rng.integers(0, 2))]
        active = True
        for m in range(start, months):
            if m == empty_month:
                continue
            move = rng.random()
            if active and move < 0.12:
                active = False  # churn: usually no row at all, sometimes a zero row
                if rng.random() < 0.4:
                    rows.append(_row(rng, c, m, segment, plan, 0.0))
                continue
            if not active:
                if move < 0.25:
                    active = True  # reactivation after a gap
                    mrr = float(rng.choice([60, 120, 240]))
                else:
                    continue
            if move > 0.8:
                mrr = round(mrr * float(rng.choice([0.5, 0.8, 1.25, 1.5, 2.0])), 2)
            if rng.random() < 0.08:
                segment = segments[int(rng.integers(0, 3))]
            rows.append(_row(rng, c, m, segment, plan, mrr))
            if rng.random() < 0.15:  # a second row in the same month (an add-on invoice line)
                extra = float(rng.choice([10, 25, 40]))
                other = segments[int(rng.integers(0, 3))] if rng.random() < 0.3 else segment
                rows.append(_row(rng, c, m, other, plan, extra))
    frame = pd.DataFrame(rows)
    frame["month"] = [str(pd.Period("2023-01", "M") + int(m)) for m in frame.pop("m")]
    frame["customer"] = [f"c{c:03d}" for c in frame.pop("c")]
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def messy_variants() -> dict[str, pd.DataFrame]:
    """``messy_frame`` and harder cases for skipping the grid's empty cells: data starting and
    ending mid-quarter, three months without rows, a segment that empties, rows without a
    segment, more customers."""
    data = messy_frame()
    months = pd.PeriodIndex(data["month"], freq="M")
    shifted = data.assign(month=[str(m + 1) for m in months])  # 2023-02 .. 2024-04
    gap = data[~data["month"].isin(["2023-04", "2023-05"])]  # and 2023-08: three empty
    # a segment only a few customers are in, early on: it empties when they move on
    early = data["customer"].isin(["c000", "c001", "c002", "c003"]) & (data["month"] < "2023-05")
    unknown = data.index % 17 == 3  # some rows without a segment: a group of its own
    return {
        "messy": data,
        "rare_segment": data.assign(segment=data["segment"].where(~early, "trial")),
        "missing_segment": data.assign(segment=data["segment"].where(~unknown, None)),
        "mid_quarter": shifted,
        "empty_months": gap.reset_index(drop=True),
        "other_seed": messy_frame(seed=21, customers=60, months=17),
    }


def _row(rng, c: int, m: int, segment: str, plan: str, mrr: float) -> dict:
    def maybe(value: float, p: float = 0.08) -> float:
        return float("nan") if rng.random() < p else value

    bought = float(rng.integers(5, 50))
    return {
        "c": c,
        "m": m,
        "segment": segment,
        "plan": plan,
        "mrr": maybe(mrr, 0.03),
        "seats_used": maybe(float(rng.integers(0, int(bought) + 1))),
        "seats_bought": maybe(bought),
        "order_value": maybe(float(rng.integers(1, 500))),
        "orders": maybe(float(rng.integers(0, 4))),
        "score": maybe(float(rng.integers(0, 11)), 0.2),
        "ticket_hours": maybe(float(rng.choice([0.0, 1.5, 4.0, 12.0, 30.0])), 0.3),
        "plan_price": maybe(float(rng.choice([49, 99, 199])), 0.1),
        "discount": maybe(float(rng.choice([0.0, 0.05, 0.2, 0.6])), 0.1),
    }


def assert_same(
    want: pd.DataFrame, got: pd.DataFrame, strict: bool = True, atol: float = 0.0
) -> None:
    """Same rows in the same order; values equal within 1e-9 relative, NULL where NaN.

    ``strict`` also compares column types (the DuckDB engine builds the pandas engine's
    frame); results fetched from a database are compared by value. ``atol`` allows an
    absolute difference too, for values that are 0 up to the order of a float sum."""
    assert list(got.columns) == list(want.columns), (list(got.columns), list(want.columns))
    assert len(got) == len(want), f"{len(got)} rows, expected {len(want)}\n{got}\n{want}"
    if strict:
        pd.testing.assert_frame_equal(got, want, rtol=1e-9, atol=atol, check_exact=False)
        return
    for col in want.columns:
        for i, (a, e) in enumerate(zip(got[col].tolist(), want[col].tolist())):
            if isinstance(e, float) or e is None:
                a = float("nan") if a is None else float(a)
                e = float("nan") if e is None else e
                if math.isnan(e) or math.isnan(a):
                    assert math.isnan(e) and math.isnan(a), f"{col}[{i}]: {a} != {e}"
                else:
                    close = math.isclose(a, e, rel_tol=1e-9, abs_tol=max(atol, 1e-9))
                    assert close, f"{col}[{i}]: {a} != {e}"
            else:
                assert str(a) == str(e), f"{col}[{i}]: {a!r} != {e!r}"


# -- PostgreSQL ------------------------------------------------------------------------------
POSTGRES_DSN = "KPI_TEST_POSTGRES_DSN"
ROW_ORDER = "_kpi_row"


def pg_connection():
    """For a module fixture: a connection to the PostgreSQL of ``KPI_TEST_POSTGRES_DSN`` in a
    schema of its own, dropped afterwards (skipped without the variable, failed under CI)."""
    import os
    import uuid

    import pytest

    dsn = os.environ.get(POSTGRES_DSN)
    if not dsn:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {POSTGRES_DSN} is not: .ci/run must start PostgreSQL")
        pytest.skip(f"set {POSTGRES_DSN} to run the PostgreSQL tests")
    import psycopg

    conn = psycopg.connect(dsn)
    schema = f"kpi_test_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"SET search_path TO {schema}")
    conn.commit()
    yield conn
    conn.rollback()
    conn.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.commit()
    conn.close()


def _pg_type(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series.dtype):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(series.dtype):
        return "BIGINT"
    if pd.api.types.is_float_dtype(series.dtype):
        return "DOUBLE PRECISION"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "TIMESTAMP"
    return "TEXT"


def pg_load(conn, table: str, frame: pd.DataFrame) -> None:
    """Copy a frame into a fresh table, plus a column that keeps the rows' order."""
    frame = frame.assign(**{ROW_ORDER: np.arange(len(frame), dtype=np.int64)})
    cols = ", ".join(f'"{c}" {_pg_type(frame[c])}' for c in frame.columns)
    with conn.cursor() as cur:
        cur.execute(f'DROP TABLE IF EXISTS "{table}"')
        cur.execute(f'CREATE TABLE "{table}" ({cols})')
        names = ", ".join(f'"{c}"' for c in frame.columns)
        with cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for row in frame.itertuples(index=False):
                copy.write_row([None if _missing(v) else _plain(v) for v in row])
    conn.commit()


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT


def _plain(v):
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if isinstance(v, np.generic):
        return v.item()
    return v


def pg_evaluate(
    conn, kpis, ids, frame: pd.DataFrame, request, table: str = "kpi_data", layout: str = "auto"
):
    """Evaluate through PostgreSQL: load the frame, run the compiled SQL, fetch a frame."""
    from kpi_registry.sql.compiler import compile_many
    from kpi_registry.sql.spec import infer_period_format

    pg_load(conn, table, frame)
    fmt = None
    if request.period is not None:
        _, fmt = infer_period_format(frame[request.period].drop_duplicates(), request.period)
    sql = compile_many(
        kpis,
        ids,
        table,
        request,
        dialect="postgres",
        period_type=fmt,
        order=ROW_ORDER,
        columns=[*frame.columns, ROW_ORDER],
        layout=layout,
    )
    with conn.cursor() as cur:
        cur.execute(sql)
        names = [d.name for d in cur.description]
        rows = cur.fetchall()
    conn.commit()
    return pd.DataFrame(rows, columns=names)


# -- a table for every datapoint of a library ----------------------------------------------------
def datapoint_frame(kpis, seed: int = 11, customers: int = 30, months: int = 14) -> pd.DataFrame:
    """Rows with a column per datapoint the KPIs declare, values fitting each unit; built on
    ``messy_frame`` so it has the same churn, gaps, duplicates and empty month."""
    base = messy_frame(seed, customers, months)[["customer", "month", "segment", "plan"]]
    rng = np.random.default_rng(seed)
    n = len(base)
    columns = {}
    exclusive: list[tuple[str, str]] = []
    for kpi in kpis.values():
        for name, dp in kpi.datapoints.items():
            if name in columns:
                continue
            exclusive += [(name, other) for other in dp.excludes]
            if dp.order_by and dp.order_by not in columns:  # distinct times: no ties
                minutes = pd.to_timedelta(rng.permutation(n), unit="min")
                columns[dp.order_by] = (pd.Timestamp("2020-01-01") + minutes).strftime(
                    "%Y-%m-%d %H:%M:%S"
                )
            if dp.minimum is not None and dp.maximum is not None:  # a scale: within it
                values = rng.integers(int(dp.minimum), int(dp.maximum) + 1, n).astype(float)
            elif dp.unit == "flag":
                values = rng.integers(0, 2, n).astype(float)
            elif dp.unit == "score":
                values = rng.integers(0, 11, n).astype(float)
            elif dp.unit in ("ratio",):
                values = rng.choice([0.0, 0.1, 0.25, 0.5, 0.9, 1.0], n)
            elif dp.unit == "percent":
                values = rng.choice([0.0, 5.0, 40.0, 75.0, 100.0], n)
            elif dp.unit in ("count", "duration"):
                values = rng.integers(0, 40, n).astype(float)
            else:  # currency and anything else
                values = rng.choice([0.0, 0.0, 49.0, 99.0, 120.5, 250.0, 999.0], n)
            values[rng.random(n) < 0.06] = np.nan
            columns[name] = values
    customers = base["customer"].to_numpy()
    for name, other in exclusive:  # a deal is never both won and lost, in any of its rows
        if other in columns:
            won = np.isin(customers, customers[np.nan_to_num(columns[name]) > 0])
            columns[other] = np.where(won, 0.0, columns[other])
    return pd.concat([base.reset_index(drop=True), pd.DataFrame(columns)], axis=1)


# -- the bundled library -----------------------------------------------------------------------
try:
    BUNDLED = kpi_registry.load()
    BUNDLED_ERROR = None
except DefinitionError as e:  # reported by test_sql_bundled.test_bundled_library_loads
    BUNDLED, BUNDLED_ERROR = None, e


def bundled_table_examples() -> list:
    """(kpi id, example index) of every bundled worked example with row data (examples of
    single numbers are pandas-only), as test parameters."""
    import pytest

    if BUNDLED is None:
        return []
    return [
        pytest.param(kpi.id, i, id=f"{kpi.id}[{i}]")
        for kpi in BUNDLED
        for i, example in enumerate(kpi.examples)
        if not isinstance(example.data, dict)
    ]
