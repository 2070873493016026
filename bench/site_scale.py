"""Scale run of the docs site: N synthetic KPIs through the whole pipeline.

Usage: python bench/site_scale.py [--n 20000] [--jobs N] [--repeat R] [--keep DIR]

Generates N synthetic definitions (bench/site_synthetic.py; not timed), then times
`kpi site build` on them in a child process (load, validate, evaluate worked examples, render,
mkdocs build), sampling the memory of the whole process tree. With --repeat, the build runs
R times from scratch: times are the medians, memory the largest peak of any run (a shared
machine's load varies from minute to minute; one build is one draw). Prints the figures next to the
targets (issue 21: under 120 s for 20,000 KPIs, scaled linearly for other sizes, and under
1.5 GB; issue 5: a KPI page under 40 KB, the search index under 25 MB, no page over 2 MB).
Everything is generated and built in a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import load, record  # noqa: E402

TARGETS = {"seconds": 120, "peak_mb": 1536, "kpi_page_kb": 40, "index_mb": 25, "page_mb": 2}

CHILD = """
import json, resource, sys
from pathlib import Path
from kpi_registry.site.build import build_site, default_layout
from kpi_registry.site.progress import Progress
src, out, jobs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]) or None
report = build_site([src], layout=default_layout(out / "build", out / "docs"),
                    include_bundled=False, progress=Progress(enabled=False), jobs=jobs)
print(json.dumps({"seconds": report.seconds, "kpis": report.kpis, "pages": report.pages,
                  "warnings": len(report.warnings),
                  "self_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "child_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _pss_mb(pid: int) -> float:
    """Proportional set size: shared pages split between the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _tree_mb(root_pid: int, cpu: dict[int, float] | None = None) -> tuple[float, float]:
    """(sum of PSS, largest RSS) of a process and all its descendants, in MB; ``cpu`` gets
    each one's CPU seconds so far (user + system), by pid."""
    children: dict[int, list[int]] = {}
    rss: dict[int, float] = {}
    ticks: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid, pages = int(fields[1]), int(fields[21])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        ticks[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    total, largest, stack = 0.0, 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total += _pss_mb(pid)
        largest = max(largest, rss.get(pid, 0.0))
        if cpu is not None:
            cpu[pid] = max(cpu.get(pid, 0.0), ticks.get(pid, 0.0))
        stack.extend(children.get(pid, []))
    return total, largest


def measure(src: Path, out: Path, jobs: int) -> dict:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(src), str(out), str(jobs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = {"sum": 0.0, "largest": 0.0}
    samples: list[tuple[float, float]] = []  # (seconds since start, sum of PSS)
    cpu: dict[int, float] = {}  # CPU seconds of every process of the build, as last sampled

    def sample() -> None:
        while proc.poll() is None:
            total, largest = _tree_mb(proc.pid, cpu)
            samples.append((time.perf_counter() - start, total))
            peak["sum"] = max(peak["sum"], total)
            peak["largest"] = max(peak["largest"], largest)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    start = time.perf_counter()
    sampler.start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        sys.exit(f"build failed:\n{stderr[-4000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(wall=wall, tree_peak_mb=peak["sum"], process_peak_mb=peak["largest"])
    # sampled every 0.2 s: a process living less than that is missed (mkdocs shards live longer)
    result["cpu_seconds"] = sum(cpu.values())
    # Peak memory per phase, placing the phases one after the other from the end of the run
    # (what comes before the first phase is the child starting up).
    phases = [(k, v) for k, v in result["seconds"].items() if k != "total"]
    end = wall
    windows = {}
    for name, seconds in reversed(phases):
        windows[name] = (end - seconds, end)
        end -= seconds
    result["phase_peak_mb"] = {
        name: max((m for t, m in samples if lo <= t <= hi), default=0.0)
        for name, (lo, hi) in windows.items()
    }
    return result


def median_run(runs: list[dict]) -> dict:
    """The build with the median wall time, with the median CPU time and the largest memory
    peaks of all the builds."""
    ordered = sorted(runs, key=lambda run: run["wall"])
    out = dict(ordered[(len(ordered) - 1) // 2])
    out["wall"] = statistics.median(run["wall"] for run in runs)
    out["cpu_seconds"] = statistics.median(run["cpu_seconds"] for run in runs)
    for key in ("tree_peak_mb", "process_peak_mb"):
        out[key] = max(run[key] for run in runs)
    out["phase_peak_mb"] = {
        phase: max(run["phase_peak_mb"].get(phase, 0.0) for run in runs)
        for phase in out["phase_peak_mb"]
    }
    return out


def sizes(site: Path) -> dict:
    kpi_pages = [p.stat().st_size for p in (site / "kpi").glob("*/index.html")]
    pages = sorted(((p.stat().st_size, p) for p in site.rglob("*.html")), reverse=True)
    total = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    return {
        "kpi_page_kb_max": max(kpi_pages) / 1024,
        "kpi_page_kb_median": statistics.median(kpi_pages) / 1024,
        "largest_page_mb": pages[0][0] / 2**20,
        "largest_page": str(pages[0][1].relative_to(site)),
        "index_mb": (site / "search" / "search_index.json").stat().st_size / 2**20,
        "html_files": len(pages),
        "site_mb": total / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--jobs", type=int, default=0, help="0: the build's default")
    parser.add_argument("--keep", type=Path, help="generate into / build under this folder")
    parser.add_argument("--repeat", type=int, default=1, help="builds from scratch (medians)")
    args = parser.parse_args()
    from site_synthetic import generate

    base = args.keep or Path(tempfile.mkdtemp(prefix="site-scale-"))
    src = base / "definitions"
    if not (src / f"syn_{args.n - 1:05d}.yaml").exists():
        t = time.perf_counter()
        generate(src, args.n)
        print(f"generated {args.n} definitions in {time.perf_counter() - t:.0f} s (not timed)")
    runs = []
    for i in range(max(1, args.repeat)):
        shutil.rmtree(base / "site", ignore_errors=True)  # every build from scratch
        run = measure(src, base / "site", args.jobs)
        phases = ", ".join(f"{k} {v:.1f} s" for k, v in run["seconds"].items())
        print(f"build {i + 1}: {run['wall']:.1f} s wall, {run['cpu_seconds']:.0f} s CPU; {phases}")
        runs.append(run)
    r = median_run(runs)
    s = sizes(base / "site" / "build")
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in r["seconds"].items())
    print(f"{r['kpis']} KPIs, {r['pages']} pages, {r['warnings']} warnings")
    print(f"phases of the median build: {phases}")
    print(
        f"CPU time, all processes: {r['cpu_seconds']:.0f} s in {r['wall']:.0f} s wall "
        f"(medians of {len(runs)}; what the machine's load does not stretch; "
        f"{os.cpu_count()} cores)"
    )
    peaks = ", ".join(f"{k} {v:.0f} MB" for k, v in reversed(r["phase_peak_mb"].items()))
    print(f"peak memory (all processes) by phase: {peaks}")
    rows = [
        ("whole pipeline (wall)", f"{r['wall']:.0f} s", f"< {TARGETS['seconds']} s",
         r["wall"] < TARGETS["seconds"]),
        ("peak memory, all processes (PSS)", f"{r['tree_peak_mb']:.0f} MB",
         f"< {TARGETS['peak_mb']} MB", r["tree_peak_mb"] < TARGETS["peak_mb"]),
        ("peak memory, largest process (RSS)", f"{r['process_peak_mb']:.0f} MB",
         f"< {TARGETS['peak_mb']} MB", r["process_peak_mb"] < TARGETS["peak_mb"]),
        ("KPI page HTML, largest", f"{s['kpi_page_kb_max']:.1f} KB",
         f"< {TARGETS['kpi_page_kb']} KB", s["kpi_page_kb_max"] < TARGETS["kpi_page_kb"]),
        ("KPI page HTML, median", f"{s['kpi_page_kb_median']:.1f} KB", "", True),
        ("search index", f"{s['index_mb']:.1f} MB", f"< {TARGETS['index_mb']} MB",
         s["index_mb"] < TARGETS["index_mb"]),
        ("largest page", f"{s['largest_page_mb']:.2f} MB ({s['largest_page']})",
         f"< {TARGETS['page_mb']} MB", s["largest_page_mb"] < TARGETS["page_mb"]),
        ("site on disk", f"{s['site_mb']:.0f} MB in {s['html_files']} HTML pages", "", True),
    ]  # fmt: skip
    for name, value, target, ok in rows:
        print(f"{name:<34} {value:<40} {target:<12} {'ok' if ok else 'MISSED' if target else ''}")
    size = f"{r['kpis']:,} KPIs"
    full = args.n == 20_000  # the time target speaks of 20,000 KPIs; other sizes are shown
    note = "" if full else "the target is for 20,000 KPIs: not judged at this size"
    record(f"kpi site build, wall time ({size})", r["wall"], TARGETS["seconds"], "s", note, full)
    record(
        f"kpi site build, CPU time, all processes ({size})",
        r["cpu_seconds"],
        TARGETS["seconds"] * (os.cpu_count() or 1),
        "s",
        "beside the wall-time target times the cores, what an idle machine has in it",
        judged=False,
    )
    record(
        f"kpi site build, peak memory, all processes ({size})",
        r["tree_peak_mb"],
        TARGETS["peak_mb"],
        "MB",
    )
    record(
        f"kpi site build, largest KPI page ({size})",
        s["kpi_page_kb_max"],
        TARGETS["kpi_page_kb"],
        "KB",
    )
    record(f"kpi site build, search index ({size})", s["index_mb"], TARGETS["index_mb"], "MB")
    print(f"[{load()}]")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
