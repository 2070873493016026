"""CPU time of `kpi` commands that do not evaluate, against `python -c pass`.

Usage: python bench/startup_bench.py [--runs 7]

Each command runs in a fresh interpreter; its CPU time (user + system) is read with
resource.getrusage(RUSAGE_CHILDREN) around the child, and the median of --runs runs is printed.
Targets (issue 19): `kpi --help` within 5x of `python -c pass`; `kpi show` and `kpi search`
under 0.5 s with the bundled library (~240 KPIs). The show/search rows run once with a cold
library cache (a fresh KPI_REGISTRY_CACHE dir) and then warm.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(argv: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median_cpu(argv: list[str], env: dict[str, str], runs: int, cold: bool = False) -> float:
    times = []
    for _ in range(runs):
        if cold:
            with tempfile.TemporaryDirectory() as tmp:
                times.append(cpu_seconds(argv, {**env, "KPI_REGISTRY_CACHE": tmp}))
        else:
            times.append(cpu_seconds(argv, env))
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    py = sys.executable
    kpi = [py, "-m", "kpi_registry.cli"]
    with tempfile.TemporaryDirectory() as cache:
        warm = {**env, "KPI_REGISTRY_CACHE": cache}
        subprocess.run([*kpi, "list"], env=warm, stdout=subprocess.DEVNULL, check=True)
        rows = [
            ("python -c pass", median_cpu([py, "-c", "pass"], env, args.runs)),
            ("kpi --help", median_cpu([*kpi, "--help"], warm, args.runs)),
            ("kpi list", median_cpu([*kpi, "list"], warm, args.runs)),
            ("kpi show (cold cache)", median_cpu([*kpi, "show", "nrr"], env, args.runs, True)),
            ("kpi show", median_cpu([*kpi, "show", "net_revenue_retention"], warm, args.runs)),
            ("kpi search", median_cpu([*kpi, "search", "churn"], warm, args.runs)),
            ("kpi validate --no-examples", median_cpu([*kpi, "validate", "--no-examples"], env, 3)),
        ]
    base = rows[0][1]
    for name, seconds in rows:
        print(f"{name:<28} {seconds:6.3f} s CPU  ({seconds / base:5.1f}x python -c pass)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
