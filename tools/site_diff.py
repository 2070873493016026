"""Build the docs site of a base revision and of the working tree, and compare them page by page.

A restructuring must not change what readers see (issue 20). This script builds both sites with
the same Python environment, each from its own source tree, and reports every file that differs
once dates are masked (the "Recently changed" list, history entries and the sitemap carry dates
that depend on when the build ran or on commit times, not on the code)::

    python tools/site_diff.py --base main          # exit 0: identical apart from dates
    python tools/site_diff.py --base HEAD~3 --keep  # keep both builds to look at them

Both builds run in temporary folders; nothing in the checkout is written.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Dates and times as the site writes them: ISO dates, ISO timestamps, and "7 Dec 2026"-style.
_DATES = [
    re.compile(
        rb"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    ),
    re.compile(
        rb"\b\d{1,2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{4}\b",
    ),
    re.compile(
        rb"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]* \d{1,2}, \d{4}\b",
    ),
]
_TEXT_SUFFIXES = {".html", ".md", ".json", ".xml", ".js", ".css", ".svg", ".txt", ".yml"}


def masked(data: bytes) -> bytes:
    for pattern in _DATES:
        data = pattern.sub(b"<date>", data)
    return data


def build(source: Path, out: Path) -> None:
    """Build the site of the tree at ``source`` into ``out/html`` and ``out/docs``."""
    env = dict(os.environ, PYTHONPATH=str(source))
    env.pop("KPI_REGISTRY_PATH", None)  # the bundled library only, as the site is published
    cmd = [
        sys.executable,
        "-m",
        "kpi_registry.cli",
        "site",
        "build",
        "--out",
        str(out / "html"),
        "--docs-dir",
        str(out / "docs"),
    ]
    done = subprocess.run(cmd, cwd=source, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"site build failed in {source}:\n{done.stdout}\n{done.stderr}")


def files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def compare(base: Path, head: Path, show: int) -> list[str]:
    """The relative paths whose contents differ (dates masked), printing up to ``show`` diffs."""
    old, new = files(base), files(head)
    changed = []
    for name in sorted(old.keys() | new.keys()):
        if name not in old or name not in new:
            changed.append(name)
            print(f"only in {'head' if name in new else 'base'}: {name}")
            continue
        a, b = old[name].read_bytes(), new[name].read_bytes()
        if Path(name).suffix in _TEXT_SUFFIXES:
            a, b = masked(a), masked(b)
        if a == b:
            continue
        changed.append(name)
        if len(changed) <= show and Path(name).suffix in _TEXT_SUFFIXES:
            lines = difflib.unified_diff(
                a.decode(errors="replace").splitlines(),
                b.decode(errors="replace").splitlines(),
                f"base/{name}",
                f"head/{name}",
                n=1,
                lineterm="",
            )
            print("\n".join(list(lines)[:40]))
        else:
            print(f"differs: {name}")
    return changed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="revision to compare with (default main)")
    parser.add_argument("--show", type=int, default=5, help="diffs to print (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the builds and say where")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kpi-site-diff-"))
    tree = work / "base-tree"
    try:
        subprocess.run(
            ["git", "worktree", "add", "--detach", "--quiet", str(tree), args.base],
            cwd=ROOT,
            check=True,
        )
        build(tree, work / "base")
        build(ROOT, work / "head")
        total = 0
        changed: list[str] = []
        for part in ("docs", "html"):
            total += len(files(work / "head" / part))
            changed += [
                f"{part}/{n}"
                for n in compare(work / "base" / part, work / "head" / part, args.show)
            ]
        print(f"site_diff: {len(changed)} of {total} files differ from {args.base} (dates masked)")
        return 1 if changed else 0
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True
        )
        if args.keep:
            print(f"builds kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
