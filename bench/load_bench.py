"""Loading + full validation of N synthetic definitions against bare PyYAML parsing.

Usage: python bench/load_bench.py [--n 20000]

Each side runs in its own subprocess so peak memory (max RSS) is measured separately.
Prints the time ratio (validation / parsing; target <= 2.0) and peak memory (target < 1 GB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def parse_only(folder: str) -> dict:
    import yaml

    start = time.perf_counter()
    n = 0
    for path in sorted(Path(folder).glob("*.yaml")):
        with open(path, encoding="utf-8") as f:
            yaml.load(f, Loader=yaml.CSafeLoader)  # noqa: S506 - CSafeLoader is the safe one
        n += 1
    return {"seconds": time.perf_counter() - start, "files": n}


def validate(folder: str, examples: bool) -> dict:
    from kpi_registry.registry import collect

    start = time.perf_counter()
    result = collect([folder], include_bundled=False, examples=examples)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "files": result.files,
        "errors": len(result.report.errors),
        "first_errors": [str(d) for d in result.report.errors[:3]],
    }


def _child(mode: str, folder: str) -> dict:
    call = {
        "parse": f"b.parse_only({folder!r})",
        "validate": f"b.validate({folder!r}, True)",
        "structure": f"b.validate({folder!r}, False)",
    }[mode]
    code = (
        f"import json, resource, sys; sys.path.insert(0, {str(HERE)!r}); import load_bench as b; "
        f"r = {call}; r['peak_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
        "print(json.dumps(r))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    from synthetic import write_library

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_library(Path(tmp), args.n)
        print(f"wrote {args.n} definitions in {time.perf_counter() - t0:.1f} s")
        parse = _child("parse", tmp)
        structure = _child("structure", tmp)
        full = _child("validate", tmp)
    for name, r in (
        ("bare PyYAML CSafeLoader parse", parse),
        ("load + validate (no examples)", structure),
        ("load + full validation (examples re-computed)", full),
    ):
        extra = f", {r['errors']} errors" if "errors" in r else ""
        print(f"{name:<48} {r['seconds']:7.2f} s  peak {r['peak_mb']:7.0f} MB{extra}")
        for e in r.get("first_errors", []):
            print("   ", e)
    print(
        f"ratio full validation / bare parse: {full['seconds'] / parse['seconds']:.2f} "
        f"(target <= 2.0); without examples: {structure['seconds'] / parse['seconds']:.2f}"
    )
    print(f"peak memory of full validation: {full['peak_mb']:.0f} MB (target < 1024 MB)")


if __name__ == "__main__":
    main()
