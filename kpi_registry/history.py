"""What changed in a definition, in its own terms: formulas, datapoints, units, directions,
relations, examples, added and removed KPIs; never as text lines.

Read from git: ``kpi diff REV [REV]`` compares two revisions of the library, ``kpi validate
--against REV`` refuses a formula change without a version bump (and a certification that the
change voided), and the site shows each KPI's history. Everything here asks git with a fixed
number of processes (one ``git log`` and one ``git cat-file --batch``), however many files.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import DefinitionError, KPIError, Report
from .loading import parse_text, position_of, read_file, to_plain

#: Changing one of these changes the numbers a definition gives: its version must change too.
NUMBER_FIELDS = ("formula", "datapoints", "unit", "grains")

_TEXT_FIELDS = (
    "summary",
    "definition",
    "business_insights",
    "measurement_approach",
    "trend_analysis",
    "diagnostics",
    "tips",
    "visualization",
    "risk_warnings",
    "tools_and_technologies",
    "integration_points",
    "change_impact",
    "influences",
    "strategies",
    "faq",
)


@dataclass(frozen=True)
class Change:
    """One semantic change to one KPI."""

    kpi: str
    field: str  # "kpi" for added/removed, else the definition field that changed
    summary: str

    @property
    def changes_numbers(self) -> bool:
        return self.field in NUMBER_FIELDS


def semantic_changes(kpi_id: str, old: Mapping | None, new: Mapping | None) -> list[Change]:
    """What changed between two versions of one definition (plain dicts; None = absent)."""
    if old is None and new is None:
        return []
    if old is None:
        return [Change(kpi_id, "kpi", "added")]
    if new is None:
        return [Change(kpi_id, "kpi", "removed")]
    out: list[Change] = []

    def add(field: str, summary: str) -> None:
        out.append(Change(kpi_id, field, summary))

    old_f, new_f = _expression(old), _expression(new)
    if old_f != new_f:
        add("formula", f"formula: {old_f or '(none)'} -> {new_f or '(none)'}")
    old_dp, new_dp = _datapoints(old), _datapoints(new)
    for name in sorted(set(old_dp) | set(new_dp)):
        if name not in old_dp:
            add("datapoints", f"datapoint {name} added")
        elif name not in new_dp:
            add("datapoints", f"datapoint {name} removed")
        elif old_dp[name] != new_dp[name]:
            keys = sorted(
                k
                for k in set(old_dp[name]) | set(new_dp[name])
                if old_dp[name].get(k) != new_dp[name].get(k)
            )
            detail = ", ".join(
                f"{k} {old_dp[name].get(k)!r} -> {new_dp[name].get(k)!r}" for k in keys
            )
            add("datapoints", f"datapoint {name}: {detail}")
    for field in ("unit", "direction", "indicator_type", "category", "status", "owner", "name"):
        if old.get(field) != new.get(field):
            add(field, f"{field}: {old.get(field)!r} -> {new.get(field)!r}")
    if old.get("grains") != new.get("grains"):
        add("grains", f"grains: {old.get('grains')!r} -> {new.get('grains')!r}")
    if str(old.get("version", "")) != str(new.get("version", "")):
        add("version", f"version {old.get('version', '(none)')} -> {new.get('version', '(none)')}")
    old_rel, new_rel = _relations(old), _relations(new)
    for kind, target in sorted(new_rel - old_rel):
        add("relations", f"{kind} relation to {target} added")
    for kind, target in sorted(old_rel - new_rel):
        add("relations", f"{kind} relation to {target} removed")
    old_ex, new_ex = old.get("examples") or [], new.get("examples") or []
    if old_ex != new_ex:
        if len(old_ex) != len(new_ex):
            add("examples", f"worked examples: {len(old_ex)} -> {len(new_ex)}")
        else:
            changed = [str(i + 1) for i, (a, b) in enumerate(zip(old_ex, new_ex)) if a != b]
            add("examples", f"worked example {', '.join(changed)} changed")
    texts = [f for f in _TEXT_FIELDS if old.get(f) != new.get(f)]
    if texts:
        add("texts", "text edited: " + ", ".join(t.replace("_", " ") for t in texts))
    return out


def _expression(data: Mapping) -> str:
    formula = data.get("formula")
    expression = formula.get("expression", "") if isinstance(formula, Mapping) else ""
    return " ".join(str(expression).split())


def _datapoints(data: Mapping) -> dict[str, dict]:
    items = data.get("datapoints") or []
    return {d["name"]: dict(d) for d in items if isinstance(d, Mapping) and "name" in d}


def _relations(data: Mapping) -> set[tuple[str, str]]:
    out = set()
    for kind, items in (data.get("relations") or {}).items():
        for item in items or []:
            if isinstance(item, Mapping) and item.get("kpi"):
                out.add((kind, item["kpi"]))
    return out


# -- git ------------------------------------------------------------------------------------------
class GitError(KPIError):
    """git is missing, the folder is not in a repository, or a revision does not exist."""

    def __init__(self, what: str, detail: str = ""):
        self.what, self.detail = what, detail
        super().__init__(f"{what}{': ' + detail if detail else ''}")


def _git(args: list[str], cwd: Path, stdin: str | None = None) -> str:
    if not shutil.which("git"):
        raise GitError("git is not installed")
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise GitError("git failed", str(e)) from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise GitError(f"git {args[0]} failed", lines[-1] if lines else "")
    return done.stdout


def _repo(folder: Path) -> tuple[Path, str]:
    """(top of the repository, the folder's path inside it)."""
    folder = folder.resolve()
    try:
        top = Path(_git(["rev-parse", "--show-toplevel"], folder).strip())
    except GitError as e:
        if e.what == "git is not installed":
            raise
        raise GitError(f"{folder} is not in a git repository") from None
    inside = folder.relative_to(top).as_posix()
    return top, "" if inside == "." else inside


def _blobs(top: Path, shas: Iterable[str]) -> dict[str, str]:
    shas = sorted(set(shas))
    if not shas:
        return {}
    out = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=top,
        input="\n".join(shas).encode() + b"\n",
        capture_output=True,
        timeout=300,
        check=False,
    ).stdout
    texts, pos = {}, 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        sha, kind, size = (out[pos:end].decode().split() + ["", ""])[:3]
        pos = end + 1
        if kind == "missing" or not size:
            continue
        texts[sha] = out[pos : pos + int(size)].decode("utf-8", errors="replace")
        pos += int(size) + 1
    return texts


def _is_definition(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith((".yaml", ".yml")) and not name.startswith((".", "_"))


def _parse(text: str, where: str) -> dict | None:
    try:
        data = to_plain(parse_text(text, where))
    except DefinitionError:
        return None  # a broken file in history is no definition to compare
    return data if isinstance(data, dict) and isinstance(data.get("id"), str) else None


def library_at(folder: Path, rev: str) -> dict[str, dict]:
    """Every definition in a folder as it was at a git revision: id -> plain dict."""
    top, inside = _repo(folder)
    try:
        _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], top)
    except GitError:
        raise GitError(f"no git revision {rev!r} in {top}") from None
    listing = _git(["ls-tree", "-r", "-z", rev, "--", inside or "."], top)
    entries = []
    for item in listing.split("\0"):
        if not item:
            continue
        meta, path = item.split("\t", 1)
        if meta.split()[1] == "blob" and _is_definition(path):
            entries.append((meta.split()[2], path))
    texts = _blobs(top, (sha for sha, _ in entries))
    out = {}
    for sha, path in entries:
        data = _parse(texts.get(sha, ""), f"{rev}:{path}")
        if data is not None:
            out[data["id"]] = data
    return out


def library_now(folder: Path) -> dict[str, dict]:
    """Every definition in a folder as it is on disk (the working tree)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and _is_definition(path.name):
            try:
                data = to_plain(read_file(path).data)
            except DefinitionError:
                continue
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                out[data["id"]] = data
    return out


def diff_libraries(old: Mapping[str, dict], new: Mapping[str, dict]) -> list[Change]:
    """Changes per KPI between two libraries (id -> plain definition), by id."""
    changes = []
    for kpi_id in sorted(set(old) | set(new)):
        changes.extend(semantic_changes(kpi_id, old.get(kpi_id), new.get(kpi_id)))
    return changes


def check_against(files: Iterable[Path], rev: str, report: Report) -> int:
    """``kpi validate --against REV``: a definition whose numbers changed since REV needs a new
    version, and a certified one loses its certification until certified again. Returns how many
    definitions were compared with their version at REV."""
    by_folder: dict[Path, list[Path]] = {}
    for path in files:
        by_folder.setdefault(path.resolve().parent, []).append(path)
    compared = 0
    for folder, paths in sorted(by_folder.items()):
        try:
            old = library_at(folder, rev)
        except GitError as e:
            if rev == "HEAD" and e.what.startswith("no git revision"):
                continue  # a repository's first commit: nothing to compare with yet
            raise
        for path in sorted(paths):
            try:
                doc = read_file(path)
            except DefinitionError:
                continue  # validation reports it
            new = to_plain(doc.data)
            kpi_id = new.get("id") if isinstance(new, dict) else None
            if kpi_id not in old:
                continue
            compared += 1
            changed = [c for c in semantic_changes(kpi_id, old[kpi_id], new) if c.changes_numbers]
            if not changed:
                continue
            what = "; ".join(c.summary for c in changed)
            if str(old[kpi_id].get("version", "")) == str(new.get("version", "")):
                line, col = position_of(doc.data, ("version",))
                report.add(
                    path,
                    line,
                    col,
                    "version",
                    f"changed since {rev} ({what}) but the version is still "
                    f"{new.get('version', '(none)')!r}: bump it, so results can be told apart",
                )
            if old[kpi_id].get("status") == "certified" and new.get("status") == "certified":
                line, col = position_of(doc.data, ("status",))
                report.add(
                    path,
                    line,
                    col,
                    "status",
                    f"certified at {rev}, but its numbers changed since ({what}): set status to "
                    "reviewed until it is certified again",
                )
    return compared


# -- history per file ------------------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryEntry:
    date: str  # YYYY-MM-DD, the commit's author date
    commit: str
    subject: str
    changes: tuple[Change, ...]


def file_histories(paths: Iterable[Path]) -> dict[Path, list[HistoryEntry]]:
    """The semantic history of each definition file from git, newest first; files outside a
    repository (or without git) have none. One git log and one cat-file per repository."""
    by_folder: dict[Path, list[Path]] = {}
    for p in paths:
        by_folder.setdefault(p.resolve().parent, []).append(p)
    out: dict[Path, list[HistoryEntry]] = {}
    done_tops: set[Path] = set()
    for folder in sorted(by_folder):
        try:
            top, _ = _repo(folder)
        except GitError:
            continue
        if top in done_tops:
            continue
        done_tops.add(top)
        wanted = {
            p.resolve().relative_to(top).as_posix(): p
            for f, ps in by_folder.items()
            if f.is_relative_to(top)
            for p in ps
        }
        try:
            out.update(_histories(top, wanted))
        except GitError:
            continue
    return out


def _histories(top: Path, wanted: dict[str, Path]) -> dict[Path, list[HistoryEntry]]:
    folders = sorted({p.rsplit("/", 1)[0] if "/" in p else "." for p in wanted})
    log = _git(
        ["log", "--format=%x1e%H%x1f%ad%x1f%s", "--date=short", "--raw", "--no-abbrev",
         "--no-renames", "--", *folders],
        top,
    )  # fmt: skip
    steps: dict[str, list[tuple[str, str, str, str, str]]] = {}  # path -> (sha, date, subj, a, b)
    for record in log.split("\x1e"):
        if not record.strip():
            continue
        head, _, body = record.partition("\n")
        sha, date, subject = (head.split("\x1f") + ["", ""])[:3]
        for line in body.splitlines():
            if not line.startswith(":"):
                continue
            meta, path = line.split("\t", 1)
            parts = meta.split()
            if path in wanted:
                steps.setdefault(path, []).append((sha, date, subject, parts[2], parts[3]))
    zero = "0" * 40
    texts = _blobs(top, {b for s in steps.values() for st in s for b in st[3:] if b != zero})
    out: dict[Path, list[HistoryEntry]] = {}
    for path, entries in steps.items():
        history = []
        for sha, date, subject, before, after in entries:
            old = _parse(texts.get(before, ""), path) if before != zero else None
            new = _parse(texts.get(after, ""), path) if after != zero else None
            kpi_id = (new or old or {}).get("id", Path(path).stem)
            changes = semantic_changes(kpi_id, old, new)
            if changes:
                history.append(HistoryEntry(date, sha, subject, tuple(changes)))
        out[wanted[path]] = history
    return out
