"""Run every benchmark, one after the other, and end with ONE table of every figure against its
target (`make bench`).

    python bench/run_all.py              # the sizes the issues name (about an hour on 2 cores)
    python bench/run_all.py --quick      # small sizes, a few minutes: the same checks, not the
                                         # issue's figures (time targets are not scaled)
    python bench/run_all.py eval sql     # only these

Each script prints its own details; the figures it compares with a target are collected in a
temporary file and printed together at the end, with the machine's load when each was taken.
Times are medians of interleaved runs; memory is the peak RSS of the measuring process.
Nothing is written inside the checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import RESULTS_ENV, fmt, load  # noqa: E402

#: the issue's limit for 100M rows, given to every side of the comparison alike
BIG = ["--repeat", "1", "--memory-limit", "4GB"]
BENCHES = {
    "load": (["load_bench.py", "--n", "20000"], ["load_bench.py", "--n", "2000"]),
    "eval": (["eval_bench.py", "--rows", "10000000"], ["eval_bench.py", "--rows", "1000000"]),
    # five runs a side: DuckDB's multi-threaded CPU time varies by a tenth from run to run
    "sql": (["sql_bench.py", "--repeat", "5"], ["sql_bench.py", "--rows", "1000000"]),
    # the generated SQL reading Parquet under DuckDB's memory limit, spilling as needed
    "sql-big": (
        ["sql_bench.py", "--rows", "100000000", "--source", "parquet", *BIG],
        ["sql_bench.py", "--rows", "5000000", "--source", "parquet", *BIG],
    ),
    # three builds from scratch: one build's wall time moves by a fifth with the machine's load
    "site": (["site_scale.py", "--n", "20000", "--repeat", "3"], ["site_scale.py", "--n", "1000"]),
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help=f"some of: {', '.join(BENCHES)}")
    parser.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    args = parser.parse_args()
    chosen = args.names or list(BENCHES)
    unknown = [n for n in chosen if n not in BENCHES]
    if unknown:
        print(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}")
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kpi-bench-") as tmp:
        results = Path(tmp) / "results.jsonl"
        results.touch()
        env = {**os.environ, RESULTS_ENV: str(results)}
        failed = []
        for name in chosen:
            script, *rest = BENCHES[name][1 if args.quick else 0]
            print(f"\n== {name}: {script} {' '.join(rest)}   [{load()}]", flush=True)
            code = subprocess.call([sys.executable, str(HERE / script), *rest], env=env)
            if code:
                failed.append(name)
        rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    minutes = (time.perf_counter() - started) / 60
    size = "quick sizes (not the issue's figures)" if args.quick else "the issue's sizes"
    print(f"\n## Where the project stands ({size}; {minutes:.0f} min; now {load()})\n")
    print("| work | measured | target | met | load when measured |")
    print("|---|---|---|---|---|")
    for r in rows:
        met = "n/a" if r["ok"] is None else "yes" if r["ok"] else "**no**"
        note = f" ({r['note']})" if r.get("note") else ""
        print(
            f"| {r['work']}{note} | {fmt(r['value'], r['unit'])} | "
            f"<= {fmt(r['target'], r['unit'])} | {met} | {r['load']} |"
        )
    judged = [r for r in rows if r["ok"] is not None]
    print(f"\n{sum(r['ok'] for r in judged)} of {len(judged)} targets met.")
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
