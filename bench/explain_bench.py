"""Time of explaining NRR's change by segment, against evaluating NRR by segment once.

Usage: python bench/explain_bench.py [--rows 1000000] [--repeat 3] [--engine pandas|duckdb]

explain runs the engine once over the data without groups and once with them (every leaf of
the formula is an extra column of the same pass), then does arithmetic on a few numbers per
leaf and segment. So its cost should be close to two evaluations of the KPI; this prints the
ratio, the number of engine passes, and checks that the contributions add up to the change.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from revenue_data import generate  # noqa: E402

import kpi_registry  # noqa: E402


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engine", choices=["pandas", "duckdb"], default="pandas")
    args = parser.parse_args()
    data = generate(args.rows, months=24, segments=5)
    reg = kpi_registry.load()
    common = dict(period="month", entity="customer", columns={"revenue": "mrr"})
    common["engine"] = args.engine
    months = sorted(data["month"].unique())
    start, end = months[-2], months[-1]
    t_eval, values = best(
        lambda: reg.evaluate("net_revenue_retention", data, by="segment", **common), args.repeat
    )
    start_label, end_label = values["month"].unique()[-2:]
    t_explain, frame = best(
        lambda: reg.explain(
            "net_revenue_retention",
            data,
            start=start_label,
            end=end_label,
            by="segment",
            **common,
        ),
        args.repeat,
    )
    top = frame[frame["depth"] == 1]["contribution"].sum()
    assert abs(top - frame.attrs["change"]) < 1e-9, (top, frame.attrs["change"])
    print(f"rows: {len(data):,}  segments: {data['segment'].nunique()}  engine: {args.engine}")
    print(f"periods: {start} -> {end}")
    print(f"evaluate NRR by segment: {t_eval:.3f} s")
    print(f"explain NRR by segment:  {t_explain:.3f} s  ({t_explain / t_eval:.2f}x one evaluation)")
    print(f"engine passes per explain: {frame.attrs['engine_passes']}")
    print(f"rows of the attribution: {len(frame)}; change {frame.attrs['change']:+.4f} points")
    print(kpi_registry.attribution.reading(frame))


if __name__ == "__main__":
    main()
