"""When each definition last changed, for the home page's "recently changed" list.

A fresh clone gives every file the same modification time, so git history is asked first (one
``git log`` for all files); files with uncommitted edits, files outside a repository, and
machines without git fall back to the file's own modification time.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path


def _git(args: list[str], cwd: Path) -> str | None:
    if not shutil.which("git"):
        return None
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _committed_times(folder: Path) -> dict[Path, float]:
    root = _git(["rev-parse", "--show-toplevel"], folder)
    if not root:
        return {}
    top = Path(root.strip())
    # The author date: when the change was written. A rebase or cherry-pick, as merging
    # helpers' branches does, sets every commit's committer date to the moment it ran, which
    # gave every definition the same date (issue 19).
    log = _git(["log", "--format=@%at", "--name-only", "--", "."], folder)
    dirty = _git(["status", "--porcelain", "--untracked-files=all", "--", "."], folder)
    if log is None:
        return {}
    times: dict[Path, float] = {}
    stamp = 0.0
    for line in log.splitlines():
        if line.startswith("@"):
            stamp = float(line[1:])
        elif line.strip():
            times.setdefault((top / line.strip()).resolve(), stamp)  # newest commit first
    for line in (dirty or "").splitlines():
        name = line[3:].split(" -> ")[-1].strip().strip('"')
        times.pop((top / name).resolve(), None)  # edited since: its mtime is the truth
    return times


def last_changed(paths: Iterable[Path]) -> dict[Path, datetime]:
    """Path -> when it last changed (UTC)."""
    paths = list(paths)
    committed: dict[Path, float] = {}
    for folder in {p.parent for p in paths}:
        committed.update(_committed_times(folder))
    out = {}
    for p in paths:
        stamp = committed.get(p.resolve())
        if stamp is None:
            try:
                stamp = p.stat().st_mtime
            except OSError:
                stamp = 0.0
        out[p] = datetime.fromtimestamp(stamp, tz=timezone.utc)
    return out
