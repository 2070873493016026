"""The Registry: every loaded KPI, with search, the relation graph and evaluation.

``load()`` is the one way in: it discovers files, parses them, checks them (schema, then
semantics) and refuses to hand back a registry that has errors.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import targets
from .errors import (
    AmbiguousKPIError,
    DefinitionError,
    Diagnostic,
    KPIError,
    MissingColumn,
    MissingColumnsError,
    Report,
    UnknownKPIError,
    did_you_mean,
)
from .files import cache_dir
from .formula import Name
from .loading import Document, position_of, read_file
from .model import KPI, OTHER_FUNCTION, RELATION_KINDS, BusinessFunction, Category, Datapoint
from .rules import RULES, Library, check_file, check_library

if TYPE_CHECKING:  # pandas and the engines load on the first evaluation, not for browsing
    import pandas as pd

    from .drivertree import Driver
    from .request import Request

ENV_PATH = "KPI_REGISTRY_PATH"
TAXONOMY_FILE = "_taxonomy.yaml"


def bundled_dir(name: str) -> Path:
    """A folder shipped with the package (definitions, templates, site): installed copy first,
    else the source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_bundled" / name, here.parent / name):
        if candidate.is_dir():
            return candidate
    return here.parent / name


def definition_files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise DefinitionError([Diagnostic(str(folder), 0, 0, "", "no such file or folder")])
    files = [
        p
        for p in folder.rglob("*")
        if p.suffix in (".yaml", ".yml") and not p.name.startswith((".", "_")) and p.is_file()
    ]
    return sorted(files)


def search_paths(paths: Iterable[str | Path], include_bundled: bool) -> list[tuple[Path, str]]:
    """(folder, origin) in load order: bundled, then KPI_REGISTRY_PATH, then paths given."""
    out: list[tuple[Path, str]] = []
    if include_bundled:
        out.append((bundled_dir("definitions"), "bundled"))
    for entry in os.environ.get(ENV_PATH, "").split(os.pathsep):
        if entry.strip():
            out.append((Path(entry.strip()), entry.strip()))
    for p in paths:
        out.append((Path(p), str(p)))
    seen: set[Path] = set()
    unique = []
    for folder, origin in out:
        key = folder.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((folder, origin))
    return unique


@dataclass
class LoadResult:
    kpis: dict[str, KPI]
    taxonomy: dict[str, Category]
    report: Report
    files: int = 0
    functions: dict[str, BusinessFunction] = field(default_factory=dict)
    targets: targets.TargetBook = field(default_factory=targets.TargetBook)


#: A category id names files and pages (the site's category pages), so it is kept plain.
CATEGORY_ID = re.compile(r"[a-z0-9][a-z0-9_]*")


@dataclass
class Taxonomy:
    """Business functions and the categories under them, from every folder's _taxonomy.yaml."""

    categories: dict[str, Category] = field(default_factory=dict)
    functions: dict[str, BusinessFunction] = field(default_factory=dict)
    # (category id, file, line, column) of each category's `function:`, checked once every
    # folder is read: a team's category may sit under a function another folder defines.
    function_refs: list[tuple[str, Path, int, int]] = field(default_factory=list)


def _load_taxonomy(folder: Path, taxonomy: Taxonomy, report: Report) -> None:
    path = folder / TAXONOMY_FILE if folder.is_dir() else None
    if path is None or not path.is_file():
        return
    try:
        doc = read_file(path)
    except DefinitionError as e:
        report.extend(e.diagnostics)
        return
    functions = doc.data.get("functions")
    if functions is not None:
        if not isinstance(functions, dict):
            line, col = position_of(doc.data, ("functions",))
            message = "expected a mapping of function id to name/description"
            report.add(path, line, col, "functions", message)
        else:
            for fn_id, body in functions.items():
                if _check_entry(doc, path, "functions", fn_id, body, taxonomy.functions, report):
                    taxonomy.functions[fn_id] = BusinessFunction(
                        fn_id, body["name"], body["description"], str(path)
                    )
    cats = doc.data.get("categories")
    if not isinstance(cats, dict):
        if functions is None or cats is not None:
            report.add(
                path, 1, 1, "categories", "expected a mapping of category id to name/description"
            )
        return
    for cat_id, body in cats.items():
        if not _check_entry(doc, path, "categories", cat_id, body, taxonomy.categories, report):
            continue
        function = body.get("function") or ""
        if function:
            line, col = position_of(doc.data, ("categories", cat_id, "function"))
            taxonomy.function_refs.append((cat_id, path, line, col))
        taxonomy.categories[cat_id] = Category(
            cat_id, body["name"], body["description"], str(path), str(function)
        )


def _check_entry(
    doc: Document, path: Path, block: str, entry_id: Any, body: Any, known: dict, report: Report
) -> bool:
    """One function or category: named, described, a plain id, and not defined differently
    elsewhere. False when it must not be (re)defined."""
    kind = "category" if block == "categories" else "function"
    line, col = position_of(doc.data, (block, entry_id))
    if not isinstance(body, dict) or not body.get("name") or not body.get("description"):
        report.add(path, line, col, f"{block}.{entry_id}", "needs a name and a description")
        return False
    if not isinstance(entry_id, str) or not CATEGORY_ID.fullmatch(entry_id):
        report.add(
            path,
            line,
            col,
            f"{block}.{entry_id}",
            f"a {kind} id must be lower-case letters, digits and _ (it names a page)",
        )
        return False
    if entry_id not in known:
        return True
    first = known[entry_id]
    same = (first.name, first.description, getattr(first, "function", "")) == (
        body["name"],
        body["description"],
        body.get("function") or "" if block == "categories" else "",
    )
    if not same:  # repeating an entry word for word is harmless
        report.add(
            path,
            line,
            col,
            f"{block}.{entry_id}",
            f"{kind} {entry_id!r} is already defined in {first.path}",
        )
    return False


def _check_function_refs(taxonomy: Taxonomy, report: Report) -> None:
    for cat_id, path, line, col in taxonomy.function_refs:
        function = taxonomy.categories[cat_id].function
        if function not in taxonomy.functions:
            report.add(
                path,
                line,
                col,
                f"categories.{cat_id}.function",
                f"unknown function {function!r}{did_you_mean(function, taxonomy.functions)}; "
                "functions are defined under 'functions:' in _taxonomy.yaml",
            )
    if any(not c.function for c in taxonomy.categories.values()):
        taxonomy.functions.setdefault(OTHER_FUNCTION.id, OTHER_FUNCTION)


def collect(
    paths: Iterable[str | Path] = (), *, include_bundled: bool = True, examples: bool = True
) -> LoadResult:
    """Parse and check every definition; never raises for bad definitions, reports them."""
    # Loading allocates millions of small objects that all stay alive; the cyclic garbage
    # collector would re-scan them over and over (a quarter of the time at 20,000 files)
    # while finding nothing: parsed definitions hold no reference cycles.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _collect(paths, include_bundled, examples)
    finally:
        if was_enabled:
            gc.enable()


def _collect(paths: Iterable[str | Path], include_bundled: bool, examples: bool) -> LoadResult:
    report = Report()
    kpis: dict[str, KPI] = {}
    library = Library(kpis)
    taxonomy = Taxonomy()
    book = targets.TargetBook()
    n_files = 0
    loaded: set[str] = set()
    real_folders: dict[Path, str] = {}
    taxonomy_folders: set[Path] = set()
    for folder, origin in search_paths(paths, include_bundled):
        home = folder if folder.is_dir() else folder.parent
        if home.resolve() not in taxonomy_folders and home.is_dir():
            taxonomy_folders.add(home.resolve())
            _load_taxonomy(home, taxonomy, report)
            if (home / targets.TARGETS_FILE).is_file():
                book.add(targets.read_targets_file(home / targets.TARGETS_FILE, report))
        try:
            files = definition_files(folder)
        except DefinitionError as e:
            report.extend(e.diagnostics)
            continue
        for path in files:
            resolved = _real_path(path, real_folders)
            if resolved in loaded:
                continue  # a file given again (e.g. a bundled file named on the command line)
            loaded.add(resolved)
            n_files += 1
            try:
                doc: Document = read_file(path)
            except DefinitionError as e:
                report.extend(e.diagnostics)
                continue
            kpi_id = doc.data.get("id") if isinstance(doc.data.get("id"), str) else path.stem
            kpi = KPI(kpi_id, doc.data, path, origin, facts=doc.facts)
            check_file(RULES, kpi, library, report)
            if kpi_id in kpis:
                first = kpis[kpi_id]
                line, col = position_of(doc.data, ("id",))
                if doc.data.get("overrides") is not True:
                    report.add(
                        path,
                        line,
                        col,
                        "id",
                        f"duplicate id {kpi_id!r}: also defined in {first.path}. Rename one, or "
                        "set 'overrides: true' in yours to replace the other on purpose",
                    )
                    continue
                kpi = replace(kpi, overridden=[*first.overridden, first.path])
            elif doc.data.get("overrides") is True:
                line, col = position_of(doc.data, ("overrides",))
                report.add(
                    path,
                    line,
                    col,
                    "overrides",
                    f"overrides: true, but no KPI {kpi_id!r} was loaded before this file to "
                    f"override{did_you_mean(kpi_id, kpis)}",
                )
            kpis[kpi_id] = kpi
    for kpi in kpis.values():
        book.add(targets.targets_in_definition(kpi.data, kpi.id, str(kpi.path), report))
    targets.check(book, {k.id: k.direction for k in kpis.values()}, report)
    _check_function_refs(taxonomy, report)
    library.categories = taxonomy.categories
    check_library(RULES, library, report, examples=examples)
    return LoadResult(kpis, taxonomy.categories, report, n_files, taxonomy.functions, book)


def _real_path(path: Path, real_folders: dict[Path, str]) -> str:
    """``path.resolve()`` without resolving its folder again for every file in it (a lookup
    per component: a twentieth of loading a large library). A file that is itself a link is
    resolved in full."""
    if path.is_symlink():
        return os.path.realpath(path)
    folder = path.parent
    real = real_folders.get(folder)
    if real is None:
        real = real_folders[folder] = os.path.realpath(folder)
    return os.path.join(real, path.name)


def load(*paths: str | Path, include_bundled: bool = True, examples: bool = False) -> Registry:
    """Load the bundled library plus any folders given; raise DefinitionError listing every
    problem if anything is wrong. ``examples=True`` also re-computes every worked example."""
    result = collect(paths, include_bundled=include_bundled, examples=examples)
    if result.report:
        raise DefinitionError(result.report.errors)
    return Registry(result.kpis, result.taxonomy, result.functions, result.targets)


def _library_key(paths: Sequence[str | Path], include_bundled: bool) -> str:
    """What a loaded library depends on: the search path, the list of definition, taxonomy and
    targets files with their contents (a file rewritten within the clock's granularity keeps
    its modification time), and this package's source files by size and modification time (a
    changed model or loader must not read an old pickle)."""
    import hashlib

    digest = hashlib.sha256(f"{os.environ.get(ENV_PATH, '')}\0{include_bundled}".encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        st = path.stat()
        digest.update(f"\0{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    for folder, _ in search_paths(paths, include_bundled):
        home = folder if folder.is_dir() else folder.parent
        try:
            files = [home / TAXONOMY_FILE, home / targets.TARGETS_FILE, *definition_files(folder)]
        except DefinitionError:
            files = []
        digest.update(f"\0folder {folder.resolve()}".encode())
        for path in files:
            digest.update(f"\0{path.resolve()}\0".encode())
            try:
                digest.update(path.read_bytes())
            except OSError:
                digest.update(b"\0missing")
    return digest.hexdigest()


def load_cached(*paths: str | Path, include_bundled: bool = True) -> Registry:
    """``load`` for commands that only browse: a library loaded before from the very same files
    is read back from a pickle in ``cache_dir()`` (about 7x faster than parsing and checking
    240 definitions). Any change to a file, the file list or the code loads afresh; a cache
    that cannot be read or written is ignored."""
    import pickle

    key = _library_key(paths, include_bundled)
    cached = cache_dir() / f"library-{key[:32]}.pickle"
    try:
        with open(cached, "rb") as f:
            reg = pickle.load(f)  # noqa: S301 - the user's own cache folder, keyed by content
        if isinstance(reg, Registry):
            return reg
    except Exception:  # noqa: BLE001, S110 - missing, stale or unreadable: load afresh
        pass
    reg = load(*paths, include_bundled=include_bundled)
    fresh = Registry(reg.kpis, reg.taxonomy, reg.functions, reg.targets)  # no lazy indexes
    try:
        _write_atomically(cached, pickle.dumps(fresh, protocol=pickle.HIGHEST_PROTOCOL))
    except (OSError, pickle.PicklingError, RecursionError):
        pass
    return reg


def _write_atomically(path: Path, data: bytes) -> None:
    """Another process reading the cache meanwhile sees the old file or the new, never half."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _text_of(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _text_of(v)
    elif isinstance(value, list):
        for v in value:
            yield from _text_of(v)


@dataclass
class Registry:
    """A checked collection of KPIs. Iterate it, index it by id, search it, evaluate with it."""

    kpis: dict[str, KPI]
    taxonomy: dict[str, Category] = field(default_factory=dict)
    functions: dict[str, BusinessFunction] = field(default_factory=dict)
    targets: targets.TargetBook = field(default_factory=targets.TargetBook)

    def __post_init__(self) -> None:
        self._names: dict[str, set[str]] | None = None  # id, name or alias -> ids
        self._body_words: dict[str, set[str]] | None = None
        self._reverse: dict[tuple[str, str], list[dict[str, str]]] | None = None

    # -- collection -------------------------------------------------------------------
    def __getitem__(self, kpi_id: str) -> KPI:
        """A KPI by its id, or by its name or an alias that only it has ("NRR")."""
        return self.kpis[self.resolve(kpi_id)]

    def resolve(self, name: str) -> str:
        """The id a user means: an id as is; else a name or alias, ignoring case, spaces and
        punctuation, when exactly one KPI has it (an alias two KPIs share is an error naming
        both)."""
        if name in self.kpis:
            return name
        if self._names is None:
            index: dict[str, set[str]] = {}
            for kpi in self.kpis.values():
                for text in (kpi.id, kpi.name, *kpi.aliases):
                    index.setdefault(" ".join(_words(str(text))), set()).add(kpi.id)
            self._names = index
        owners = self._names.get(" ".join(_words(str(name))), set())
        if len(owners) == 1:
            return next(iter(owners))
        if owners:
            raise AmbiguousKPIError(name, owners)
        raise UnknownKPIError(name, self.kpis)

    def __contains__(self, kpi_id: object) -> bool:
        return kpi_id in self.kpis

    def __len__(self) -> int:
        return len(self.kpis)

    def __iter__(self) -> Iterator[KPI]:
        return iter(sorted(self.kpis.values(), key=lambda k: k.id))

    @property
    def ids(self) -> list[str]:
        return sorted(self.kpis)

    def filter(
        self,
        *,
        category: str | None = None,
        industry: str | None = None,
        tag: str | None = None,
        function: str | None = None,
    ) -> list[KPI]:
        """KPIs in a category (primary or extra), an industry, with a tag and/or in a business
        function (through the primary category)."""
        return [
            k
            for k in self
            if (category is None or category in k.categories)
            and (industry is None or industry in k.industries)
            and (tag is None or tag in k.tags)
            and (function is None or self.function_of(k.id).id == function)
        ]

    def function_of(self, kpi_id: str) -> BusinessFunction:
        """The business function a KPI belongs to: that of its primary category."""
        category = self.taxonomy.get(self[kpi_id].category)
        function = category.function if category is not None else ""
        return self.functions.get(function) or OTHER_FUNCTION

    # -- search -----------------------------------------------------------------------
    def search(
        self,
        text: str,
        *,
        category: str | None = None,
        industry: str | None = None,
        tag: str | None = None,
        function: str | None = None,
        limit: int | None = None,
    ) -> list[KPI]:
        """KPIs ranked by where the words occur: name and aliases first, then id and summary,
        then the body. Every word must occur somewhere."""
        query = " ".join(_words(text))
        words = query.split()
        if not words:
            return []
        if self._body_words is None:
            self._body_words = {
                k.id: set(_words(" ".join(_text_of(k.data)))) for k in self.kpis.values()
            }
        scored = []
        for kpi in self.filter(category=category, industry=industry, tag=tag, function=function):
            score = self._score(kpi, query, words)
            if score > 0:
                scored.append((-score, kpi.id, kpi))
        scored.sort(key=lambda t: (t[0], t[1]))
        hits = [kpi for _, _, kpi in scored]
        return hits[:limit] if limit else hits

    def _score(self, kpi: KPI, query: str, words: list[str]) -> float:
        name = " ".join(_words(kpi.name))
        aliases = [" ".join(_words(a)) for a in kpi.aliases]
        ident = kpi.id.replace("_", " ")
        if query in (name, ident):
            return 1000.0
        if query in aliases:
            return 900.0
        summary = set(_words(kpi.summary))
        name_words = set(name.split()) | set(ident.split())
        alias_words = {w for a in aliases for w in a.split()}
        body = self._body_words.get(kpi.id, set()) if self._body_words else set()
        score = 0.0
        for w in words:
            if w in name_words:
                score += 30
            elif any(n.startswith(w) for n in name_words):
                score += 20
            elif w in alias_words:
                score += 25
            elif w in summary:
                score += 8
            elif w in body:
                score += 2
            else:
                return 0.0  # every word must match somewhere
        if name.startswith(query) or any(a.startswith(query) for a in aliases):
            score += 50
        return score - len(name_words) * 0.1  # shorter names first on ties

    # -- graph ------------------------------------------------------------------------
    # Reverse links are computed from one index built on first use, so asking for every
    # KPI's neighbours stays linear in the size of the library.
    def _index(self) -> dict[tuple[str, str], list[dict[str, str]]]:
        if self._reverse is None:
            index: dict[tuple[str, str], list[dict[str, str]]] = {}
            for k in self:
                for kind in RELATION_KINDS:
                    for r in k.relations(kind):
                        index.setdefault((kind, r.kpi), []).append(
                            {"kpi": k.id, "why": r.why, "declared_in": k.id}
                        )
                for dep in self.dependencies(k.id):
                    index.setdefault(("formula", dep), []).append({"kpi": k.id})
            self._reverse = index
        return self._reverse

    def _both_ways(self, kpi_id: str, own_kind: str, mirror_kind: str) -> list[dict[str, str]]:
        """A KPI's own links of one kind plus the links other KPIs declare the other way."""
        own = [r.as_dict() for r in self[kpi_id].relations(own_kind)]
        named = {r["kpi"] for r in own}
        reverse = [r for r in self._index().get((mirror_kind, kpi_id), []) if r["kpi"] not in named]
        return [*own, *reverse]

    def dependencies(self, kpi_id: str) -> list[str]:
        """KPIs this KPI's formula references directly."""
        node = self[kpi_id].expression
        if node is None:
            return []
        return sorted({n.name for n in node.walk() if isinstance(n, Name) and n.name in self})

    def column_keys(self, kpi_ids: Sequence[str]) -> set[str]:
        """What a ``columns`` mapping may name for these KPIs: each KPI they are built from
        (given as a column of its own) and every datapoint those read."""
        keys: set[str] = set()
        todo = list(kpi_ids)
        while todo:
            kpi_id = todo.pop()
            if kpi_id not in keys:
                keys.add(kpi_id)
                keys.update(self[kpi_id].datapoints)
                todo.extend(self.dependencies(kpi_id))
        return keys

    def inputs(self, kpi_ids: str | Sequence[str], supplied: Iterable[str] = ()) -> list[Datapoint]:
        """Every raw datapoint the KPIs read, through the KPIs they are built from (first use
        first): the columns the data needs. A KPI in ``supplied`` (given as a column of its
        own) stops the walk there."""
        todo = [self.resolve(i) for i in ([kpi_ids] if isinstance(kpi_ids, str) else kpi_ids)]
        given = set(supplied) - set(todo)  # a requested KPI is computed, never read
        seen: set[str] = set()
        out: dict[str, Datapoint] = {}
        while todo:
            kpi_id = todo.pop(0)
            if kpi_id in seen:
                continue
            seen.add(kpi_id)
            if kpi_id in given:
                continue
            kpi = self.kpis[kpi_id]
            for name, dp in kpi.datapoints.items():
                if name not in self.kpis:
                    out.setdefault(name, dp)
            todo.extend(self.dependencies(kpi_id))
        return list(out.values())

    def used_in(self, kpi_id: str) -> list[str]:
        """KPIs whose formula references this one (computed in reverse)."""
        self[kpi_id]
        return [r["kpi"] for r in self._index().get(("formula", kpi_id), [])]

    def leading(self, kpi_id: str) -> list[dict[str, str]]:
        """What leads this KPI: its own 'leading' list plus KPIs that name it as lagging."""
        return self._both_ways(kpi_id, "leading", "lagging")

    def lagging(self, kpi_id: str) -> list[dict[str, str]]:
        """What this KPI leads: its own 'lagging' list plus KPIs that name it as leading."""
        return self._both_ways(kpi_id, "lagging", "leading")

    def related(self, kpi_id: str) -> list[dict[str, str]]:
        """Related KPIs in either direction."""
        return self._both_ways(kpi_id, "related", "related")

    def influences(self, kpi_id: str) -> list[dict[str, str]]:
        """KPIs that name this one as a leading indicator: what it influences."""
        self[kpi_id]
        return [
            {"kpi": r["kpi"], "why": r["why"]} for r in self._index().get(("leading", kpi_id), [])
        ]

    def neighbours(self, kpi_id: str) -> set[str]:
        """Every KPI linked to this one by a relation or a formula, either way."""
        out = set(self.dependencies(kpi_id)) | set(self.used_in(kpi_id))
        for kind in RELATION_KINDS:
            out |= {r.kpi for r in self[kpi_id].relations(kind)}
            out |= {r["kpi"] for r in self._index().get((kind, kpi_id), [])}
        out.discard(kpi_id)
        return out

    # -- evaluation -------------------------------------------------------------------
    def evaluate(
        self,
        kpi_id: str,
        data: Any,
        *,
        period: str | None = None,
        entity: str | None = None,
        by: str | Sequence[str] | None = None,
        grain: str | None = None,
        columns: dict[str, str] | None = None,
        engine: str = "pandas",
        date_format: str | None = None,
        with_targets: bool = False,
        drop_invalid: bool = False,
        spark: Any = None,
        order: str | None = None,
    ) -> pd.DataFrame | float:
        """One KPI per period (and group). A mapping of scalars gives back a float.

        ``engine="duckdb"`` runs the same formula as SQL in embedded DuckDB (``data`` may then
        also be a Parquet/CSV path or glob, or a DuckDB relation). ``engine="spark"`` runs it
        in Spark where the data lives: a Spark DataFrame, or a table name in ``spark`` (a
        SparkSession); ``order`` names the column that orders its rows, where one matters.
        ``with_targets=True`` adds ``<kpi>_target`` and ``<kpi>_status`` columns from the
        loaded targets.

        ``date_format``: how text dates in the period column are written, in ``strptime``
        codes (``"%d/%m/%Y"``); text dates that start with the day or the month are refused
        without it, since 03/04/2024 could be either."""
        kpi_id = self.resolve(kpi_id)
        result = self.evaluate_many(
            [kpi_id],
            data,
            period=period,
            entity=entity,
            by=by,
            grain=grain,
            columns=columns,
            engine=engine,
            date_format=date_format,
            with_targets=with_targets,
            drop_invalid=drop_invalid,
            spark=spark,
            order=order,
        )
        return result[kpi_id] if isinstance(result, dict) else result

    def evaluate_many(
        self,
        ids: Sequence[str],
        data: Any,
        *,
        period: str | None = None,
        entity: str | None = None,
        by: str | Sequence[str] | None = None,
        grain: str | None = None,
        columns: dict[str, str] | None = None,
        engine: str = "pandas",
        date_format: str | None = None,
        with_targets: bool = False,
        drop_invalid: bool = False,
        spark: Any = None,
        order: str | None = None,
    ) -> pd.DataFrame | dict[str, float]:
        """Several KPIs at once, a column each; sub-expressions they share are computed once.
        ``with_targets=True`` adds ``<kpi>_target`` and ``<kpi>_status`` after each KPI.

        Rows outside a datapoint's valid range, or contradicting each other (a deal won and
        lost), are an error that lists them; ``drop_invalid=True`` computes on the others and
        lists them as a warning (``frame.attrs["warnings"]``)."""
        import pandas as pd

        from .evaluation import evaluate_many

        ids = [self.resolve(i) for i in ([ids] if isinstance(ids, str) else ids)]
        request = build_request(period, entity, by, grain, columns, date_format, drop_invalid)
        if isinstance(data, pd.DataFrame):
            self._check_columns(ids, data, request)
        if (spark is not None or order is not None) and engine != "spark":
            raise KPIError("spark= and order= are options of engine='spark'")
        if engine == "pandas":
            result = evaluate_many(self.kpis, ids, data, request)
        elif engine == "duckdb":
            from .sql import evaluate_duckdb

            result = evaluate_duckdb(self.kpis, ids, data, request)
        elif engine == "spark":
            from .sql.spark_engine import evaluate_spark

            result = evaluate_spark(self.kpis, ids, data, request, spark=spark, order=order)
        else:
            raise KPIError(f"unknown engine {engine!r}; use 'pandas', 'duckdb' or 'spark'")
        if not with_targets:
            return result
        return targets.add_status(
            targets.require_frame(result),
            ids,
            {i: self.kpis[i].direction for i in ids},
            self.targets,
            request.period,
            request.by,
        )

    def _check_columns(self, ids: list[str], data: pd.DataFrame, request: Request) -> None:
        """Name every missing column at once, with what it means, before any engine runs:
        one error per attempt made a user discover a KPI's inputs one by one."""
        present = {str(c) for c in data.columns}
        column = {dp: request.columns.get(dp, dp) for dp in request.columns}
        supplied = [k for k in self.kpis if column.get(k, k) in present]
        missing = [
            MissingColumn(dp.name, dp.description, dp.unit, request.columns.get(dp.name))
            for dp in self.inputs(ids, supplied)
            if column.get(dp.name, dp.name) not in present
        ]
        if missing:
            raise MissingColumnsError(missing, list(data.columns))

    def drivers(self, kpi_id: str) -> Driver:
        """The KPIs, aggregates and datapoints a KPI's formula is built from, recursively."""
        from .drivertree import driver_tree

        return driver_tree(self.kpis, self.resolve(kpi_id))

    def explain(
        self,
        kpi_id: str,
        data: Any,
        *,
        start: Any,
        end: Any,
        period: str,
        entity: str | None = None,
        by: str | Sequence[str] | None = None,
        grain: str | None = None,
        columns: dict[str, str] | None = None,
        engine: str = "pandas",
        date_format: str | None = None,
    ) -> pd.DataFrame:
        """The change of a KPI between periods ``start`` and ``end`` (labels as ``evaluate``
        gives them) split exactly among its drivers (see ``kpi_registry.attribution``)."""
        import pandas as pd

        from .attribution import explain

        kpi_id = self.resolve(kpi_id)
        request = build_request(period, entity, by, grain, columns, date_format)
        if isinstance(data, pd.DataFrame):
            self._check_columns([kpi_id], data, request)
        return explain(self.kpis, kpi_id, data, request, start=start, end=end, engine=engine)

    def to_sql(
        self,
        kpi_id: str,
        table: str,
        *,
        period: str,
        entity: str | None = None,
        by: str | Sequence[str] | None = None,
        grain: str | None = None,
        columns: dict[str, str] | None = None,
        dialect: str = "duckdb",
        drop_invalid: bool = False,
    ) -> str:
        """One SQL statement computing exactly the frame ``evaluate`` returns (with
        ``drop_invalid=True``: the frame ``evaluate(..., drop_invalid=True)`` returns)."""
        return self.to_sql_many(
            [kpi_id],
            table,
            period=period,
            entity=entity,
            by=by,
            grain=grain,
            columns=columns,
            dialect=dialect,
            drop_invalid=drop_invalid,
        )

    def to_sql_many(
        self,
        ids: Sequence[str],
        table: str,
        *,
        period: str,
        entity: str | None = None,
        by: str | Sequence[str] | None = None,
        grain: str | None = None,
        columns: dict[str, str] | None = None,
        dialect: str = "duckdb",
        drop_invalid: bool = False,
    ) -> str:
        """The SQL twin of ``evaluate_many``: one statement, a column per KPI."""
        from .sql import compile_many

        ids = [self.resolve(i) for i in ([ids] if isinstance(ids, str) else ids)]
        request = build_request(period, entity, by, grain, columns, drop_invalid=drop_invalid)
        return compile_many(self.kpis, ids, table, request, dialect=dialect)


def build_request(
    period, entity, by, grain, columns, date_format=None, drop_invalid=False
) -> Request:
    """The Request both engines and the SQL compiler take, from Registry.evaluate's (and
    `kpi sql`'s) loose arguments, checked before any data is read."""
    from .request import Request, check_request

    request = Request(
        period=period,
        entity=entity,
        by=[by] if isinstance(by, str) else list(by or []),
        grain=grain,
        columns=dict(columns or {}),
        drop_invalid=drop_invalid,
        date_format=date_format,
    )
    check_request(request)  # before either engine reads the data
    return request
