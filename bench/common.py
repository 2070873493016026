"""What every benchmark shares: medians, peak RSS of a child process, the machine's load, and
the one results file `bench/run_all.py` turns into the closing table.

A script records each ratio it measured with ``record(...)``; when run by ``run_all.py`` the
rows go to the file named by ``KPI_BENCH_RESULTS`` (one JSON object a line), otherwise they are
only printed. Nothing is written inside the checkout.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
from collections.abc import Sequence

RESULTS_ENV = "KPI_BENCH_RESULTS"


def load() -> str:
    """The machine's load averages (1, 5, 15 min) and core count, to print beside a figure."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} cores"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def memory_mb(field: str = "VmRSS") -> float:
    """A memory figure of this process from /proc/self/status, in MiB: ``VmRSS`` (resident
    now) or ``VmHWM`` (its peak); NaN where there is no /proc. Not ru_maxrss: Linux starts a
    child's peak at its parent's and keeps it across exec."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run_measured(args: Sequence[str], cwd: str | None = None) -> tuple[dict, float]:
    """Run a Python child that prints one JSON object as its last line; return it and the
    child's own peak RSS in MB (os.wait4 on its pid: that process alone, not its parent)."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd
    )
    # read both pipes in full before reaping, so a chatty child cannot block on a full pipe
    chunks: dict[str, bytes] = {}

    def drain(name: str, pipe) -> None:
        chunks[name] = pipe.read()

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout)),
        threading.Thread(target=drain, args=("err", proc.stderr)),
    ]
    for t in readers:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for t in readers:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = chunks.get("err", b"").decode(errors="replace")
        raise SystemExit(f"benchmark child failed ({' '.join(args[:3])}...):\n{err[-4000:]}")
    out = chunks.get("out", b"").decode()
    return json.loads(out.strip().splitlines()[-1]), usage.ru_maxrss / 1024  # KB on Linux


def record(
    work: str, value: float, target: float, unit: str = "x", note: str = "", judged: bool = True
) -> bool | None:
    """One measured figure against its target (met when value <= target); printed and, under
    run_all.py, added to the closing table. ``judged=False``: shown beside the target, not
    passed or failed (a size the target does not speak of)."""
    ok = value <= target if judged else None
    row = {
        "work": work,
        "value": value,
        "target": target,
        "unit": unit,
        "ok": ok,
        "note": note,
        "load": load(),
    }
    print(
        f"  -> {work}: {fmt(value, unit)} (target <= {fmt(target, unit)}) "
        f"{'met' if ok else 'not judged' if ok is None else 'NOT MET'} [{row['load']}]",
        flush=True,
    )
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    return ok


def fmt(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "ms":
        return f"{value:.0f} ms"
    if unit == "s":
        return f"{value:.0f} s"
    if unit in ("MB", "KB"):
        return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{value:g} {unit}"
