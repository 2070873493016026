"""Benchmark: the generated SQL for the revenue family against a hand-written DuckDB query.

    python bench/sql_bench.py                      # 10M customer-month rows (default)
    python bench/sql_bench.py --source parquet     # every query reads the Parquet file
    python bench/sql_bench.py --rows 100000000 --repeat 1  # 100M rows under the memory limit
    python bench/sql_bench.py --rows 1000000 --pandas   # also run the pandas engine
    python bench/sql_bench.py --lines-per-cell 3   # invoice lines: 3 rows per customer-month

Generates billing-like data (customers that churn without a zero row, come back after gaps,
change segment) into a Parquet file in a temporary folder (removed at the end), then runs,
each in a fresh process so that peak memory is measured per run. By default (``--source
table``) each run first loads the file into an in-memory DuckDB table, untimed, and then
times only the query on that table, the same input for every side: what the issue's figures
describe. With ``--source parquet`` every side reads the Parquet file itself, under the
engine's memory limit with a spill folder, so the timings include decoding it and spilling.
The runs:

* ``handwritten``: a DuckDB query written by hand for these eleven numbers: a dense customer x
  month grid from the cross product with missing months as 0 (not a LAG over raw rows, which
  misses churn where no zero row exists), LAG and a running "ever paid" along it;
* ``lead``: a second hand-written query, specialised to these numbers, that never builds the
  grid (a LEAD over each customer's rows finds where it churns); faster, but not general;
* ``generated``: the SQL compiled from the definitions, exactly as the DuckDB engine runs it
  on the table (or on the Parquet path, which DuckDB then reads directly); only the query is
  timed, as for the hand-written ones: the issue's target compares these;
* ``engine``: ``Registry.evaluate_many(..., engine="duckdb")`` timed as a whole: reading the
  period format from the data, compiling, the query and building the frame (importing the
  engine's modules, once per process, is timed apart and printed);
* ``pandas`` (optional): the pandas engine on a frame read from the file (reading untimed).

Numbers are compared (1e-9 relative) and time and peak-memory ratios printed. The runs are
interleaved (handwritten, lead, generated, engine, then again) ``--repeat`` times and the median
of each is reported, with CPU time beside wall time, because on a shared machine wall time
varies far more than the CPU the query needs. Peak memory is the child's peak RSS (wait4).
The ``engine`` run also reports the time spent compiling and how many queries it ran.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load, median, memory_mb, record, run_measured  # noqa: E402

from kpi_registry.billing import REVENUE_FAMILY
from kpi_registry.sql.duckdb_engine import DEFAULT_MEMORY_LIMIT, MEMORY_ENV

ROOT = Path(__file__).resolve().parent.parent
MONTHS = 24
SEGMENTS = ["enterprise", "mid_market", "smb", "startup", "public_sector"]
ACTIVE_SHARE = 0.78  # measured share of customer-months with a row; sizes the customer count


# -- data -----------------------------------------------------------------------------------
def generate(rows: int, path: Path, seed: int = 42, lines: int = 1) -> None:
    """About ``rows`` rows, written in chunks so memory stays small: one per customer-month,
    or with ``lines`` > 1 that many invoice lines per customer-month (amounts in cents that
    add up to the month's MRR, as billing exports have them), for as many rows in all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    customers = int(rows / (MONTHS * ACTIVE_SHARE * lines))
    chunk = 250_000
    rng = np.random.default_rng(seed)
    months = np.array(
        [np.datetime64(f"{2023 + m // 12}-{m % 12 + 1:02d}-01") for m in range(MONTHS)]
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    writer = None
    written = 0
    for first in range(0, customers, chunk):
        n = min(chunk, customers - first)
        ids = np.arange(first, first + n)
        # a mature base: most customers are there from the start, the rest join month by month
        start = np.where(rng.random(n) < 0.8, 0, rng.integers(1, MONTHS, n))
        mrr = rng.choice(
            [29.0, 49.0, 99.0, 199.0, 499.0, 1999.0], n, p=[0.3, 0.25, 0.2, 0.15, 0.07, 0.03]
        )
        segment = rng.integers(0, len(SEGMENTS), n)
        active = np.zeros(n, bool)
        ever = np.zeros(n, bool)
        parts = []
        for m in range(MONTHS):
            joining = start == m
            active |= joining
            ever |= joining
            churn = active & ~joining & (rng.random(n) < 0.02)
            back = ~active & ever & ~churn & (rng.random(n) < 0.06)
            active = (active & ~churn) | back
            mrr = np.where(back, rng.choice([29.0, 99.0, 199.0], n), mrr)
            move = rng.random(n)
            mrr = np.where(active & (move < 0.05), np.round(mrr * 1.5, 2), mrr)  # expansion
            mrr = np.where(active & (move > 0.97), np.round(mrr * 0.6, 2), mrr)  # contraction
            segment = np.where(rng.random(n) < 0.005, rng.integers(0, len(SEGMENTS), n), segment)
            zero_row = churn & (rng.random(n) < 0.3)  # most churn leaves no row at all
            keep = active | zero_row
            parts.append(
                (ids[keep], np.full(keep.sum(), m), segment[keep], np.where(active, mrr, 0.0)[keep])
            )
        cust = np.concatenate([p[0] for p in parts])
        month = np.concatenate([p[1] for p in parts])
        seg = np.concatenate([p[2] for p in parts])
        value = np.concatenate([p[3] for p in parts])
        if lines > 1:
            cust, month, seg, value = _invoice_lines(rng, lines, cust, month, seg, value)
        order = np.lexsort((month, cust))
        table = pa.table(
            {
                "customer_id": pa.array(cust[order], pa.int64()),
                "month": pa.array(months[month[order]].astype("datetime64[D]"), pa.date32()),
                "segment": pa.DictionaryArray.from_arrays(
                    pa.array(seg[order], pa.int32()), pa.array(SEGMENTS)
                ).cast(pa.string()),
                "mrr": pa.array(value[order], pa.float64()),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
        writer.write_table(table, row_group_size=1_000_000)
        written += table.num_rows
    writer.close()
    tmp.replace(path)
    print(f"wrote {written:,} rows for {customers:,} customers to {path}", flush=True)


def _invoice_lines(rng, lines: int, cust, month, seg, value):
    """Each customer-month as ``lines`` rows whose cents add up to its amount: random shares
    rounded to the cent, the last line taking what is left (so float sums carry the rounding
    error that the exact decimal sums remove)."""
    cents = np.round(value * 100).astype(np.int64)
    shares = rng.random((len(value), lines - 1)) / lines
    first = np.floor(cents[:, None] * shares).astype(np.int64)
    last = cents - first.sum(axis=1)
    amounts = np.concatenate([first, last[:, None]], axis=1).ravel() / 100
    return (
        np.repeat(cust, lines),
        np.repeat(month, lines),
        np.repeat(seg, lines),
        amounts,
    )


# -- the hand-written query -------------------------------------------------------------------
def handwritten_sql(relation: str, by_segment: bool) -> str:
    seg = "segment, " if by_segment else ""
    carried = (
        """,
        COALESCE(
          LAST_VALUE(row_segment IGNORE NULLS) OVER (
            PARTITION BY customer_id ORDER BY month ROWS UNBOUNDED PRECEDING),
          FIRST_VALUE(row_segment IGNORE NULLS) OVER (
            PARTITION BY customer_id ORDER BY month
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
        ) AS segment"""
        if by_segment
        else ""
    )
    return f"""
    WITH cells AS (
      SELECT customer_id, month, SUM(mrr) AS mrr, MAX(segment) AS segment
      FROM {relation} GROUP BY customer_id, month
    ),
    months AS (SELECT DISTINCT month FROM range(
      (SELECT MIN(month) FROM cells), (SELECT MAX(month) FROM cells) + INTERVAL 1 MONTH,
      INTERVAL 1 MONTH) t(month)),
    customers AS (SELECT DISTINCT customer_id FROM cells),
    grid AS (
      SELECT c.customer_id, m.month, COALESCE(x.mrr, 0) AS mrr, x.segment AS row_segment
      FROM customers c CROSS JOIN months m
      LEFT JOIN cells x ON x.customer_id = c.customer_id AND x.month = m.month
    ),
    moves AS (
      SELECT month, mrr,
        LAG(mrr) OVER w AS prev,
        COALESCE(BOOL_OR(mrr > 0) OVER (PARTITION BY customer_id ORDER BY month
          ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), FALSE) AS paid_before{carried}
      FROM grid WINDOW w AS (PARTITION BY customer_id ORDER BY month)
    ),
    sums AS (  -- movements need a previous month: undefined (NULL) in the first one
      SELECT month, {seg}
        SUM(prev) AS starting,
        CASE WHEN BOOL_OR(prev IS NOT NULL) THEN SUM(
          CASE WHEN prev > 0 AND mrr > prev THEN mrr - prev ELSE 0 END) END AS expansion,
        CASE WHEN BOOL_OR(prev IS NOT NULL) THEN SUM(
          CASE WHEN prev > 0 AND mrr > 0 AND mrr < prev THEN prev - mrr ELSE 0 END) END
          AS contraction,
        CASE WHEN BOOL_OR(prev IS NOT NULL) THEN SUM(
          CASE WHEN prev > 0 AND mrr = 0 THEN prev ELSE 0 END) END AS churned,
        CASE WHEN BOOL_OR(prev IS NOT NULL) THEN SUM(
          CASE WHEN prev = 0 AND mrr > 0 AND NOT paid_before THEN mrr ELSE 0 END) END AS new,
        CASE WHEN BOOL_OR(prev IS NOT NULL) THEN SUM(
          CASE WHEN prev = 0 AND mrr > 0 AND paid_before THEN mrr ELSE 0 END) END
          AS reactivation
      FROM moves GROUP BY {seg} month
    )
    {_family_select("sums", by_segment)}"""


def lead_sql(relation: str, by_segment: bool) -> str:
    """A second hand-written reference, specialised to these eleven numbers: no grid at all.

    A LEAD over each customer's own rows finds the month after its last row, where it churns;
    every other month without a row moves nothing in these six sums, so it is left out. This is
    the kind of query the issue timed; it does not generalise to other formulas."""
    seg = "segment, " if by_segment else ""
    return f"""
    WITH cells AS (
      SELECT customer_id, month, SUM(mrr) AS mrr, MAX(segment) AS segment
      FROM {relation} GROUP BY customer_id, month
    ),
    bounds AS (SELECT MIN(month) AS first_month, MAX(month) AS last_month FROM cells),
    w AS (
      SELECT customer_id, month, mrr, segment,
        LAG(month) OVER w AS prev_month, LAG(mrr) OVER w AS prev_row_mrr,
        LEAD(month) OVER w AS next_month,
        COALESCE(BOOL_OR(mrr > 0) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
          FALSE) AS paid_before
      FROM cells WINDOW w AS (PARTITION BY customer_id ORDER BY month)
    ),
    moves AS (
      SELECT month, {seg} mrr, paid_before,
        CASE WHEN month = first_month THEN NULL
             WHEN prev_month = month - INTERVAL 1 MONTH THEN prev_row_mrr ELSE 0 END AS prev
      FROM w, bounds
      UNION ALL  -- the month after a customer's last row before a gap: churn
      SELECT month + INTERVAL 1 MONTH, {seg} 0, TRUE, mrr FROM w, bounds
      WHERE (next_month IS NULL OR next_month > month + INTERVAL 1 MONTH)
        AND month < last_month
    ),
    sums AS (
      SELECT month, {seg}
        SUM(prev) AS starting,
        SUM(CASE WHEN prev > 0 AND mrr > prev THEN mrr - prev ELSE 0 END) AS expansion,
        SUM(CASE WHEN prev > 0 AND mrr > 0 AND mrr < prev THEN prev - mrr ELSE 0 END)
          AS contraction,
        SUM(CASE WHEN prev > 0 AND mrr = 0 THEN prev ELSE 0 END) AS churned,
        SUM(CASE WHEN prev = 0 AND mrr > 0 AND NOT paid_before THEN mrr ELSE 0 END) AS new,
        SUM(CASE WHEN prev = 0 AND mrr > 0 AND paid_before THEN mrr ELSE 0 END) AS reactivation,
        BOOL_OR(prev IS NOT NULL) AS has_prev
      FROM moves GROUP BY {seg} month
    ),
    defined AS (  -- movements need a previous month: undefined (NULL) in the first one
      SELECT month, {seg} starting,
        CASE WHEN has_prev THEN expansion END AS expansion,
        CASE WHEN has_prev THEN contraction END AS contraction,
        CASE WHEN has_prev THEN churned END AS churned,
        CASE WHEN has_prev THEN new END AS new,
        CASE WHEN has_prev THEN reactivation END AS reactivation
      FROM sums
    )
    {_family_select("defined", by_segment)}"""


def _family_select(sums: str, by_segment: bool) -> str:
    """The final SELECT both hand-written queries share: the eleven numbers from ``sums``
    (a relation with a month, the segment if any, and the six movements)."""
    seg = "segment, " if by_segment else ""
    seg_part = "PARTITION BY segment " if by_segment else ""
    seg_order = ", segment" if by_segment else ""
    return f"""SELECT strftime(month, '%Y-%m') AS month, {seg}
      starting AS starting_revenue, expansion AS expansion_revenue,
      contraction AS contraction_revenue, churned AS churned_revenue,
      new AS new_revenue, reactivation AS reactivation_revenue,
      (starting + expansion - contraction - churned) / NULLIF(starting, 0) * 100
        AS net_revenue_retention,
      (starting - contraction - churned) / NULLIF(starting, 0) * 100 AS gross_revenue_retention,
      expansion / NULLIF(starting, 0) * 100 AS expansion_revenue_rate,
      (expansion - LAG(expansion) OVER ({seg_part}ORDER BY month))
        / NULLIF(LAG(expansion) OVER ({seg_part}ORDER BY month), 0) * 100
        AS expansion_revenue_growth_rate,
      (new + expansion + reactivation) / NULLIF(contraction + churned, 0) AS quick_ratio
    FROM {sums} ORDER BY month{seg_order}
    """


# -- one measured run (in its own process) ----------------------------------------------------
TABLE = "revenue"


def worker(
    engine: str,
    path: str,
    by_segment: bool,
    result: str,
    threads: int | None,
    source: str,
    spill: str,
    memory_limit: str,
) -> None:
    import os

    import duckdb

    os.environ[MEMORY_ENV] = memory_limit  # the engine's own connection: the same limit

    import kpi_registry

    by = "segment" if by_segment else None
    reg = kpi_registry.load()
    con = None
    data: object = path
    if engine != "pandas" and source == "table":
        con = duckdb.connect()
        con.execute(f"CREATE TABLE {TABLE} AS SELECT * FROM read_parquet('{path}')")
        data = (con, TABLE)
    if engine in ("handwritten", "lead", "generated") and con is None:
        con = duckdb.connect()
    if con is not None:  # the engine sets the same on the connections it opens itself
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.execute("SET preserve_insertion_order = false")
        if source == "parquet":  # and its memory limit and spilling: the same for every side
            con.execute(f"SET memory_limit = '{memory_limit}'")
            con.execute(f"SET temp_directory = '{spill}'")
    extra: dict = {}
    if engine == "generated":  # compiled before the clock starts
        from kpi_registry.request import Request
        from kpi_registry.sql import duckdb_sql

        request = Request("month", "customer_id", [by] if by else [], None, {"revenue": "mrr"})
        sql = duckdb_sql(reg.kpis, REVENUE_FAMILY, data, request)
    if engine == "engine":  # count the queries one call runs and time the compiler in it
        # Importing the engine's modules is paid once per process, not per call: timed on its
        # own and reported, not charged to the call (the generated run imports them untimed
        # too; evaluate_many would import the row checks' module lazily inside the call).
        i0, ic0 = time.perf_counter(), time.process_time()
        import kpi_registry.evaluation  # noqa: F401  (evaluate_many imports it lazily)
        from kpi_registry.sql import duckdb_engine

        imported = (time.perf_counter() - i0, time.process_time() - ic0)

        queries = {"n": 0, "compile": 0.0, "compile_cpu": 0.0}
        run_query, compile_source = duckdb_engine._Input.query, duckdb_engine.compile_source

        def counted(self, select):
            queries["n"] += 1
            return run_query(self, select)

        def timed_compile(*a, **k):
            t, c = time.perf_counter(), time.process_time()
            try:
                return compile_source(*a, **k)
            finally:
                queries["compile"] += time.perf_counter() - t
                queries["compile_cpu"] += time.process_time() - c

        duckdb_engine._Input.query = counted
        duckdb_engine.compile_source = timed_compile  # the engine's name for the compiler
    if engine == "pandas":
        import pandas as pd

        data = pd.read_parquet(path)
        # pandas gives DATE columns as datetime.date objects, which the engine reads as text
        data["month"] = pd.to_datetime(data["month"])
    before_mb = memory_mb()  # interpreter, libraries, a loaded table: not the query's
    t0, c0 = time.perf_counter(), time.process_time()
    if engine in ("handwritten", "lead"):
        query = handwritten_sql if engine == "handwritten" else lead_sql
        relation = TABLE if source == "table" else f"read_parquet('{path}')"
        frame = con.execute(query(relation, by_segment)).fetch_df()
    elif engine == "generated":
        frame = con.execute(sql).fetch_df()
    else:
        frame = reg.evaluate_many(
            REVENUE_FAMILY,
            data,
            period="month",
            entity="customer_id",
            by=by,
            columns={"revenue": "mrr"},
            engine="pandas" if engine == "pandas" else "duckdb",
        )
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if engine == "engine":
        extra = {
            "import_ms": imported[0] * 1000,
            "import_cpu_ms": imported[1] * 1000,
            "queries": queries["n"],
            "compile_ms": queries["compile"] * 1000,
            "compile_cpu_ms": queries["compile_cpu"] * 1000,
        }
    frame = frame.copy()
    frame["month"] = [str(v)[:7] for v in frame["month"]]
    frame.to_parquet(result)
    print(json.dumps({"seconds": seconds, "cpu": cpu, "before_mb": before_mb, **extra}))


def measure(
    engine: str,
    path: Path,
    out: Path,
    by_segment: bool,
    threads: int | None,
    source: str,
    memory_limit: str,
) -> dict:
    result = out / f"result-{engine}-{'segment' if by_segment else 'month'}.parquet"
    spill = out / f"spill-{engine}"
    spill.mkdir(exist_ok=True)
    cmd = [
        __file__,
        "--worker",
        engine,
        "--data",
        str(path),
        "--result",
        str(result),
        "--source",
        source,
        "--spill",
        str(spill),
        "--memory-limit",
        memory_limit,
    ]
    if by_segment:
        cmd.append("--by-segment")
    if threads:
        cmd += ["--threads", str(threads)]
    data, peak_mb = run_measured(cmd, cwd=str(ROOT))
    data["peak_mb"] = peak_mb
    data["result"] = result
    return data


def _mib(size: str) -> float:
    """A DuckDB memory size in MiB: DuckDB's ``4GB`` is 4 * 10^9 bytes, ``4GiB`` 4 * 2^30."""
    import re

    found = re.fullmatch(r"\s*([\d.]+)\s*([KMGT])(i?)B\s*", size, re.IGNORECASE)
    if found is None:
        return float("nan")
    number, unit, binary = found.groups()
    return float(number) * (1024 if binary else 1000) ** ("KMGT".index(unit.upper()) + 1) / 2**20


def compare(a: Path, b: Path, label: str) -> None:
    import pandas as pd

    x, y = pd.read_parquet(a), pd.read_parquet(b)
    keys = ["month", "segment"] if "segment" in x else ["month"]
    assert list(x[keys].astype(str).itertuples(index=False)) == list(
        y[keys].astype(str).itertuples(index=False)
    ), f"{label}: different rows"
    worst = 0.0
    for col in REVENUE_FAMILY:
        u, v = x[col].to_numpy(float), y[col].to_numpy(float)
        assert (np.isnan(u) == np.isnan(v)).all(), f"{label}: {col} missing in different places"
        ok = ~np.isnan(u)
        scale = np.maximum(np.abs(u[ok]), 1e-300)
        worst = max(worst, float((np.abs(u[ok] - v[ok]) / scale).max(initial=0)))
        assert np.allclose(u[ok], v[ok], rtol=1e-9, atol=0), f"{label}: {col} differs"
    print(f"  numbers match ({label}): {len(x)} rows, worst relative difference {worst:.1e}")


def main() -> None:
    import tempfile

    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rows", type=int, default=10_000_000, help="customer-month rows to generate")
    p.add_argument(
        "--lines-per-cell",
        type=int,
        default=1,
        help="invoice lines per customer-month (default 1: one row each); the row count "
        "stays --rows",
    )
    p.add_argument("--pandas", action="store_true", help="also time the pandas engine")
    p.add_argument("--threads", type=int, help="DuckDB threads for the hand-written query")
    p.add_argument(
        "--source",
        choices=("table", "parquet"),
        help="what every query reads: an in-memory DuckDB table loaded (untimed) from the "
        "Parquet file, or the file itself (default: table; parquet above 20M rows)",
    )
    p.add_argument(
        "--repeat", type=int, default=3, help="interleaved runs per side; the median is reported"
    )
    p.add_argument(
        "--memory-limit",
        default=DEFAULT_MEMORY_LIMIT,
        help="DuckDB's memory limit with --source parquet, the same for every side "
        f"(default: the engine's, {DEFAULT_MEMORY_LIMIT})",
    )
    p.add_argument(
        "--by",
        choices=("month", "segment", "both"),
        default="both",
        help="by month, by month x segment, or both in turn (default: both)",
    )
    p.add_argument("--write", help=argparse.SUPPRESS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--spill", help=argparse.SUPPRESS)
    p.add_argument("--by-segment", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.write:
        generate(args.rows, Path(args.write), lines=args.lines_per_cell)
        return
    if args.worker:
        worker(
            args.worker,
            args.data,
            args.by_segment,
            args.result,
            args.threads,
            args.source,
            args.spill,
            args.memory_limit,
        )
        return
    with tempfile.TemporaryDirectory(prefix="kpi-sql-bench-") as tmp:
        run(args, Path(tmp))


def run(args: argparse.Namespace, out: Path) -> None:
    path = out / f"revenue_{args.rows}.parquet"
    t0 = time.perf_counter()
    # in a process of its own: Linux starts a child's peak RSS at its parent's, so a parent
    # that had held the generated chunks would raise every measured run's peak to its own
    lines = ["--lines-per-cell", str(args.lines_per_cell)]
    subprocess.run(
        [sys.executable, __file__, "--write", str(path), "--rows", str(args.rows), *lines],
        check=True,
    )
    print(f"generated in {time.perf_counter() - t0:.1f} s")
    source = args.source or ("parquet" if args.rows > 20_000_000 else "table")
    limited = source == "parquet"
    print(
        f"every query reads {'the Parquet file' if limited else 'a DuckDB table'}"
        + (f", under a DuckDB memory limit of {args.memory_limit}" if limited else "")
    )
    engines = ["lead", "generated", "engine"] if limited else [
        "handwritten", "lead", "generated", "engine"
    ]  # fmt: skip
    if args.pandas:
        engines.append("pandas")
    per_cell = (
        f"{args.lines_per_cell} lines per customer-month, " if args.lines_per_cell > 1 else ""
    )
    size = f"{args.rows / 1e6:g}M rows, {per_cell}" + (
        f"Parquet, memory limit {args.memory_limit}" if limited else "table"
    )
    for by_segment in {"month": (False,), "segment": (True,)}.get(args.by, (False, True)):
        label = "month x segment" if by_segment else "month"
        print(f"\n{label}:   [{load()}]")
        samples: dict[str, list[dict]] = {e: [] for e in engines}
        for _ in range(args.repeat):  # interleaved: the machine's load hits every side alike
            for e in engines:
                samples[e].append(
                    measure(e, path, out, by_segment, args.threads, source, args.memory_limit)
                )
        runs = {
            e: {
                "seconds": median([r["seconds"] for r in rs]),
                "cpu": median([r["cpu"] for r in rs]),
                "peak_mb": median([r["peak_mb"] for r in rs]),
                "before_mb": median([r["before_mb"] for r in rs]),
                "result": rs[-1]["result"],
                **(
                    {
                        "queries": max(r["queries"] for r in rs),
                        "compile_ms": median([r["compile_ms"] for r in rs]),
                        "compile_cpu_ms": median([r["compile_cpu_ms"] for r in rs]),
                        "import_ms": median([r["import_ms"] for r in rs]),
                        "import_cpu_ms": median([r["import_cpu_ms"] for r in rs]),
                    }
                    if e == "engine"
                    else {}
                ),
            }
            for e, rs in samples.items()
        }
        for e, r in runs.items():
            print(
                f"  {e:<12} {r['seconds']:7.2f} s wall {r['cpu']:7.2f} s CPU   "
                f"peak {r['peak_mb']:6.0f} MB, {r['before_mb']:5.0f} MB before the query "
                f"(medians of {args.repeat})"
            )
        if limited:  # DuckDB's GB is 10^9 bytes; RSS is counted in MiB
            print(
                f"  DuckDB's limit {args.memory_limit} = {_mib(args.memory_limit):.0f} MiB; "
                "peak RSS minus RSS before the query, per side: "
                + ", ".join(f"{e} {r['peak_mb'] - r['before_mb']:.0f}" for e, r in runs.items())
            )
        for reference, other, what in (
            ("handwritten", "generated", "generated / handwritten"),
            ("lead", "generated", "generated / LEAD over rows"),
            ("lead", "engine", "engine / LEAD over rows"),
        ):
            if reference in runs and other in runs:
                h, g = runs[reference], runs[other]
                compare(h["result"], g["result"], f"{reference} vs {other}")
                print(
                    f"  {what}: time {g['seconds'] / h['seconds']:.2f}x "
                    f"(CPU {g['cpu'] / h['cpu']:.2f}x), "
                    f"peak memory {g['peak_mb'] / h['peak_mb']:.2f}x"
                )
        if "pandas" in runs:
            compare(runs["pandas"]["result"], runs["engine"]["result"], "pandas vs engine")
        lead, gen, eng = runs["lead"], runs["generated"], runs["engine"]
        where = f"{label}, {size}"
        if limited:
            record(
                f"generated SQL / LEAD query, time, same memory limit ({where})",
                gen["seconds"] / lead["seconds"],
                1.2,
            )
            record(
                f"generated SQL / LEAD query, CPU time, same memory limit ({where})",
                gen["cpu"] / lead["cpu"],
                1.2,
                note="CPU: what a shared machine's load does not distort",
            )
            # Every side runs with DuckDB's limit set and completes, spilling: DuckDB holds its
            # buffer pool to the limit. The process's RSS adds Python and what DuckDB allocates
            # outside the pool, for the LEAD query alike: judged against the LEAD query's.
            record(
                f"DuckDB engine / LEAD query, peak RSS, same memory limit ({where})",
                eng["peak_mb"] / lead["peak_mb"],
                1.2,
            )
            record(
                f"DuckDB engine peak RSS, whole process ({where})",
                eng["peak_mb"],
                4096,
                "MB",
                note=f"the LEAD query's process: {lead['peak_mb']:,.0f} MB; DuckDB's own memory "
                "is held to its limit, Python and allocations outside its pool come on top",
                judged=False,
            )
        else:
            record(
                f"DuckDB engine / LEAD query, time ({where})", eng["seconds"] / lead["seconds"], 1.1
            )
            record(
                f"DuckDB engine / LEAD query, CPU time ({where})",
                eng["cpu"] / lead["cpu"],
                1.1,
                note="CPU: what a shared machine's load does not distort",
            )
            record(
                f"DuckDB engine / LEAD query, peak RSS ({where})",
                eng["peak_mb"] / lead["peak_mb"],
                1.2,
            )
            record(f"DuckDB engine, queries per call ({where})", eng["queries"], 1, "queries")
            print(
                f"  engine: {eng['queries']} queries per call, compiling "
                f"{eng['compile_ms']:.0f} ms wall, {eng['compile_cpu_ms']:.0f} ms CPU; importing "
                f"the engine, once per process (not timed in the call): "
                f"{eng['import_ms']:.0f} ms wall, {eng['import_cpu_ms']:.0f} ms CPU"
            )
            record(f"DuckDB engine, compiling, wall ({where})", eng["compile_ms"], 50, "ms")
            record(
                f"DuckDB engine, compiling, CPU time ({where})",
                eng["compile_cpu_ms"],
                50,
                "ms",
                "what it takes on an idle core",
            )


if __name__ == "__main__":
    main()
