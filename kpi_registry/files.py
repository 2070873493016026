"""Writing a file the user keeps (a formatted definition, an exported catalog) all at once."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

#: Overrides where loaded libraries (and ``kpi mcp``'s start-up answers) are cached.
CACHE_ENV = "KPI_REGISTRY_CACHE"


def cache_dir() -> Path:
    """The folder for cached libraries: $KPI_REGISTRY_CACHE, else the user's cache folder;
    never inside the checkout, which must stay clean. (Here, not in registry.py, so that a
    light command can find it without loading the library code.)"""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kpi-registry"


def replace_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` all at once: into a new file next to it, then renamed over it,
    so an interrupted run, a full disk or a failed write never leaves half a file. A file that
    exists keeps its permissions, a new one gets the usual ones, and a symbolic link stays a
    link to the file it points at."""
    target = path.resolve()
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except PermissionError:  # a folder we may not add to, holding a file we may change
        target.write_text(text, "utf-8")
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        if target.exists():
            shutil.copymode(target, temp)
        else:  # mkstemp makes it private (0600); a new file is made as open() would make it
            os.chmod(temp, 0o666 & ~umask())
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def umask() -> int:
    """The process's umask: what a file or folder made the usual way leaves out of 0o666/0o777
    (mkstemp and mkdtemp make theirs private instead)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
