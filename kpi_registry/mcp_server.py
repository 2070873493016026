"""``kpi mcp``: the registry for AI assistants, as a Model Context Protocol server over stdio.

Read-only. Tools: search KPIs, get one KPI, the columns KPIs need, evaluate KPIs on a data
file (``kpi eval``'s options and checks), the SQL for a dialect (``kpi sql``) and why a KPI
moved (``kpi explain``). Like the command line, a front end of its own: the tools call the
registry's API and word its errors from their fields in the tools' argument names. A data file
must lie under one of the ``--root`` folders the server was started with (default: the
current folder); a path that leaves them, also through ``..`` or a symbolic link, is refused.

Start-up is kept light so the first answer is fast. The library (and pandas with it) loads on
the first tool call that needs it. The MCP SDK takes about a second to import, so while it
loads in a thread the server answers the handshake (``initialize``, ``tools/list``, ``ping``)
with the answers the SDK itself gave in an earlier start, cached per installed SDK, pydantic
and this file (see :class:`_FastStart`); the SDK then receives the handshake again, its reply
unsent, and serves every call. Without a cached answer (the first start) it waits for the SDK.
"""

import contextlib
import io
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_GLOB = set("*?[")

INSTRUCTIONS = (
    "A library of business KPIs with executable formulas. Find a KPI with search_kpis (by "
    "name, abbreviation such as NRR, business function or words), read it with get_kpi, ask "
    "kpi_inputs which data columns it needs, then evaluate_kpis on a CSV or Parquet file, or "
    "compile_sql for a warehouse; explain_change says why a KPI moved between two periods. "
    "Numbers come from the registry's engine; never recompute them by hand."
)


class ToolFailure(Exception):
    """Bad input to a tool: the assistant reads the message and can correct the call."""


class KPIServer:
    """The tools' logic, independent of the MCP transport (tests call it directly too)."""

    def __init__(self, roots: Sequence[str | Path], paths: Sequence[str | Path] = ()):
        self.roots = [Path(r).resolve() for r in roots] or [Path.cwd().resolve()]
        for root in self.roots:
            if not root.is_dir():
                raise ToolFailure(f"--root {root}: no such folder")
        self.paths = [str(p) for p in paths]
        self._registry = None
        self._catalog: dict[str, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._work = threading.Lock()  # one evaluation at a time: they share the library

    # -- the library, loaded on first use ---------------------------------------------
    @property
    def registry(self):
        with self._lock:
            if self._registry is None:
                from .errors import DefinitionError
                from .registry import load

                try:
                    self._registry = load(*self.paths)
                except DefinitionError as e:
                    raise ToolFailure(
                        "the definitions do not load; run 'kpi validate':\n"
                        + "\n".join(str(d) for d in e.diagnostics[:20])
                    ) from None
            return self._registry

    def _resolve(self, name: str) -> str:
        from .errors import KPIError

        try:
            return self.registry.resolve(name)
        except KPIError as e:
            raise ToolFailure(str(e)) from None

    # -- search / get / inputs ----------------------------------------------------------
    def search(
        self,
        text: str = "",
        function: str | None = None,
        category: str | None = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        reg = self.registry
        if function is not None and function not in reg.functions:
            raise ToolFailure(
                f"unknown function {function!r}; functions are {', '.join(sorted(reg.functions))}"
            )
        if category is not None and category not in reg.taxonomy:
            raise ToolFailure(
                f"unknown category {category!r}; categories are {', '.join(sorted(reg.taxonomy))}"
            )
        if limit < 1:
            raise ToolFailure("limit must be 1 or more")
        if text.strip():
            hits = reg.search(text, function=function, category=category, limit=limit)
        else:
            hits = reg.filter(function=function, category=category)[:limit]
        return [
            {
                "id": k.id,
                "name": k.name,
                "aliases": list(k.aliases),
                "function": reg.function_of(k.id).id,
                "category": k.category,
                "unit": k.unit,
                "direction": k.direction,
                "summary": " ".join(k.summary.split()),
            }
            for k in hits
        ]

    def get(self, kpi: str) -> dict[str, Any]:
        kpi_id = self._resolve(kpi)
        if self._catalog is None:
            from .export.catalog import catalog_json

            self._catalog = {k["id"]: k for k in catalog_json(self.registry)["kpis"]}
        entry = dict(self._catalog[kpi_id])
        formula = dict(entry.get("formula") or {})
        formula.pop("ast", None)  # the tree is for programs; the text says the same
        entry["formula"] = formula
        entry["columns_needed"] = self.inputs([kpi_id])
        return entry

    def inputs(self, kpis: list[str]) -> list[dict[str, Any]]:
        if not kpis:
            raise ToolFailure("give at least one KPI")
        ids = [self._resolve(k) for k in kpis]
        return [
            {
                "name": dp.name,
                "unit": dp.unit,
                "description": dp.description,
                "time": dp.time,
                "missing": dp.missing,
            }
            for dp in self.registry.inputs(ids)
        ]

    # -- files ---------------------------------------------------------------------------
    def _inside_roots(self, path: Path) -> bool:
        return any(path == root or root in path.parents for root in self.roots)

    def data_path(self, data: str) -> str:
        """The data file as an absolute path under a root, or a ToolFailure saying why not.
        Relative names are read from the first root."""
        if not data.strip():
            raise ToolFailure("give the data file (a path under the server's roots)")
        raw = Path(data).expanduser()
        if ".." in raw.parts:
            raise ToolFailure(f"{data}: '..' is not allowed; give a path under {self._roots()}")
        full = raw if raw.is_absolute() else self.roots[0] / raw
        if _GLOB & set(str(full)):
            from .datafiles import expand_data_path

            # the very files the engines will read: '**' crosses folders, also linked ones
            base = Path(*[p for p in _parts_before_glob(full)])
            targets = [base, *expand_data_path(str(full))]
        else:
            targets = [full]
        for target in targets:
            if not self._inside_roots(target.resolve()):
                raise ToolFailure(
                    f"{data}: outside the folders this server may read ({self._roots()}); "
                    "start it with --root DIR to allow another folder"
                )
        return str(full)

    def _roots(self) -> str:
        return ", ".join(str(r) for r in self.roots)

    # -- eval / sql / explain: the public API, errors worded here --------------------------
    def evaluate(
        self,
        kpis: list[str],
        data: str,
        period: str | None = None,
        entity: str | None = None,
        by: list[str] | None = None,
        grain: str | None = None,
        columns: dict[str, str] | None = None,
        engine: str = "pandas",
        targets: bool = False,
        max_rows: int = 500,
        date_format: str | None = None,
        drop_invalid: bool = False,
    ) -> dict[str, Any]:
        """KPIs evaluated on a data file under the roots (Registry.evaluate_many), the rows as
        `kpi eval --format json` gives them."""
        from .datafiles import read_for_engine
        from .registry import build_request

        if not kpis:
            raise ToolFailure("give at least one KPI")
        if max_rows < 1:
            raise ToolFailure("max_rows must be 1 or more")
        path = self.data_path(data)
        with self._worded(data):
            ids = self._ids(kpis)
            columns = self._columns(ids, columns)
            build_request(period, entity, by, grain, columns, date_format)  # before reading
            checked, frame, sizes = read_for_engine(path, engine)
            with self._worded(data, checked, engine, sizes), self._work:
                result = self.registry.evaluate_many(
                    ids,
                    frame,
                    period=period,
                    entity=entity,
                    by=by or None,
                    grain=grain,
                    columns=columns,
                    engine=engine,
                    date_format=date_format,
                    with_targets=targets,
                    drop_invalid=drop_invalid,
                )
        warnings = list(result.attrs.get("warnings", []))
        if engine == "pandas" and not len(frame):
            warnings.append(f"{data} has no data rows")
        rows = _records(_grain_heading(result, period, grain))
        return {
            "rows": rows[:max_rows],
            "row_count": len(rows),
            "truncated": len(rows) > max_rows,
            "warnings": warnings,
        }

    def sql(
        self,
        kpis: list[str],
        table: str,
        period: str,
        dialect: str = "duckdb",
        entity: str | None = None,
        by: list[str] | None = None,
        grain: str | None = None,
        columns: dict[str, str] | None = None,
    ) -> str:
        """One statement computing the KPIs in a warehouse (Registry.to_sql_many), ended by a
        semicolon as `kpi sql` prints it."""
        if not kpis:
            raise ToolFailure("give at least one KPI")
        with self._worded(None):
            ids = self._ids(kpis)
            sql = self.registry.to_sql_many(
                ids,
                table,
                period=period,
                entity=entity,
                by=by or None,
                grain=grain,
                columns=self._columns(ids, columns),
                dialect=dialect,
            )
        return sql + ";\n"

    def explain(
        self,
        kpi: str,
        data: str,
        start: str,
        end: str,
        period: str,
        entity: str | None = None,
        by: list[str] | None = None,
        grain: str | None = None,
        columns: dict[str, str] | None = None,
        engine: str = "pandas",
        date_format: str | None = None,
    ) -> dict[str, Any]:
        """Why a KPI moved between two periods (Registry.explain), as `kpi explain --format
        json` gives it, and the notes it prints."""
        from .datafiles import read_for_engine
        from .registry import build_request

        path = self.data_path(data)
        with self._worded(data):
            (kpi_id,) = self._ids([kpi])
            columns = self._columns([kpi_id], columns)
            build_request(period, entity, by, grain, columns, date_format)
            checked, frame, sizes = read_for_engine(path, engine)
            with self._worded(data, checked, engine, sizes), self._work:
                result = self.registry.explain(
                    kpi_id,
                    frame,
                    start=start,
                    end=end,
                    period=period,
                    entity=entity,
                    by=by or None,
                    grain=grain,
                    columns=columns,
                    engine=engine,
                    date_format=date_format,
                )
        return {"rows": _records(result), "notes": list(result.attrs.get("notes", []))}

    def _ids(self, kpis: list[str]) -> list[str]:
        return [self.registry.resolve(k) for k in kpis]

    def _columns(self, ids: list[str], columns: dict[str, str] | None) -> dict[str, str]:
        """The ``columns`` mapping, each key a datapoint (or KPI) the KPIs read: a misspelt
        key would otherwise be ignored without a word."""
        from .errors import did_you_mean, shown_columns

        columns = dict(columns or {})
        reg = self.registry
        read = reg.column_keys(ids)
        for key, column in columns.items():
            if not key.strip() or not column.strip():
                raise ToolFailure(
                    f"columns {{{key!r}: {column!r}}}: give a datapoint and a column name"
                )
            if key not in read:
                datapoints = sorted(name for name in read if name not in reg)
                raise ToolFailure(
                    f"columns {{{key!r}: {column!r}}}: {', '.join(ids)} "
                    f"read{'s' * (len(ids) == 1)} no datapoint {key!r}"
                    f"{did_you_mean(key, read)}; the datapoints are {shown_columns(datapoints)}"
                )
        return columns

    @contextlib.contextmanager
    def _worded(
        self,
        data: str | None,
        checked: list | None = None,
        engine: str = "pandas",
        sizes: list[int] | None = None,
    ):
        """The library's errors as tool failures, worded from their fields in the tools'
        arguments (``entity``, ``columns``, ``date_format``); ``checked``: the data files
        read and ``sizes`` their row counts, to place rows at CSV lines."""
        from .errors import KPIError

        try:
            yield
        except ToolFailure:
            raise
        except KPIError as e:
            raise ToolFailure(error_text(e, data, checked, engine, sizes)) from None


def error_text(
    error: Exception,
    data: str | None = None,
    checked: list | None = None,
    engine: str = "pandas",
    sizes: list[int] | None = None,
) -> str:
    """A library error as the assistant reads it: from the error's fields, naming the tools'
    arguments (``entity``, ``by``, ``columns``, ``date_format``) where the Python API says
    ``entity=`` and the command line ``--entity``; data errors start with the data file."""
    from .datafiles import cell_message, value_hint
    from .errors import (
        CellError,
        ColumnNotGivenError,
        DataError,
        MissingColumnsError,
        MissingDatapointError,
        RequestColumnsError,
        RowsError,
        shown_columns,
    )
    from .periods import AmbiguousDateError, DateFormatError

    where = f"{data}: " if data else ""
    if isinstance(error, RequestColumnsError):
        return f'"{error.role}": {error.column!r} {error.problem}; {error.remedy}'
    if isinstance(error, ColumnNotGivenError):
        return error.worded(
            f'give the {error.parameter} column in the "{error.parameter}" argument'
        )
    if isinstance(error, MissingDatapointError):
        return where + error.worded(_mapping([error.datapoint]))
    if isinstance(error, MissingColumnsError):
        plural = len(error.missing) > 1
        names = ", ".join(
            f"{m.datapoint!r}" + (f" (mapped to {m.mapped_to!r})" if m.mapped_to else "")
            for m in error.missing
        )
        text = (
            f"{where}the data has no column for datapoint{'s' * plural} {names}; columns are "
            f"{shown_columns(error.columns)}. Map {'each' if plural else 'it'} with "
            + _mapping([m.datapoint for m in error.missing])
        )
        return text + "".join(
            f"\n  {m.datapoint}: {m.description} ({m.unit})" for m in error.missing
        )
    csv_file = checked[0] if checked and len(checked) == 1 and checked[0].kind == "csv" else None
    if isinstance(error, (AmbiguousDateError, DateFormatError)):
        place = _place(data, csv_file if engine == "pandas" else None, error.row)
        if isinstance(error, DateFormatError):
            return (
                f"{place}period column {error.column!r} has {error.value!r}, which does not "
                f'match the "date_format" {error.date_format!r}'
            )
        return (
            f"{place}period column {error.column!r} has {error.value!r}: a date written "
            "day-first or month-first is ambiguous (03/04/2024 is 3 April or March 4); give "
            'its format in "date_format": %d/%m/%Y (day first) or %m/%d/%Y (month first)'
        )
    if isinstance(error, CellError) and data:  # rows as pandas counts them, in its files
        seen = checked if checked and engine == "pandas" else []
        return cell_message(error, seen, sizes or [], data)
    if isinstance(error, RowsError) and csv_file is not None:  # both engines count rows so
        from .datafiles import csv_line

        lines = [csv_line(csv_file, r) if isinstance(r, int) else None for r in error.rows]
        if lines and all(line is not None for line in lines):
            return where + error.render(lines, "line" if len(lines) == 1 else "lines")
    if isinstance(error, DataError):
        return where + str(error) + value_hint(error)
    return str(error)


def _mapping(datapoints: list[str]) -> str:
    pairs = ", ".join(f'"{name}": "<column>"' for name in datapoints)
    return f'"columns": {{{pairs}}}'


def _place(data: str | None, csv_file, row) -> str:
    """Where a row is: its CSV line when the data is one CSV file read by pandas (rows are
    labelled 0, 1, ... in file order), else the file."""
    if csv_file is not None and isinstance(row, int):
        from .datafiles import csv_line

        line = csv_line(csv_file, row)
        if line is not None:
            return f"{data}:{line}: "
    return f"{data}: " if data else ""


def _records(frame) -> list[dict[str, Any]]:
    """A frame's rows as JSON objects, dates in ISO form (as `kpi eval --format json`)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _grain_heading(frame, period: str | None, grain: str | None):
    """The period column headed by the grain asked for ("quarter" for 2024Q2), as `kpi eval`
    shows it; where a group or KPI column has that name, the period keeps its own."""
    if not (period and grain) or grain == period or period not in frame.columns:
        return frame
    if grain in frame.columns:
        return frame
    return frame.rename(columns={period: grain})


def _parts_before_glob(path: Path) -> list[str]:
    out = []
    for part in path.parts:
        if _GLOB & set(part):
            break
        out.append(part)
    return out


# -- the MCP server -----------------------------------------------------------------------
def build_server(service: KPIServer):
    """The MCPServer with one tool per KPIServer method; a ToolFailure becomes a tool error
    (is_error, the message for the assistant), never a crash of the server."""
    from typing import Annotated, Literal

    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations
    from pydantic import Field

    from . import __version__

    server = MCPServer(name="kpi-registry", version=__version__, instructions=INSTRUCTIONS)
    read_only = ToolAnnotations(readOnlyHint=True, destructiveHint=False, openWorldHint=False)

    def run(method, *args, **kwargs):
        try:
            return method(*args, **kwargs)
        except ToolFailure as e:
            raise ToolError(str(e)) from None

    Columns = Annotated[
        dict[str, str] | None,
        Field(description="datapoint -> column name in the data, where they differ"),
    ]
    Grain = Literal["day", "week", "month", "quarter", "year"]
    DateFormat = Annotated[
        str | None,
        Field(description="how text dates are written, e.g. %d/%m/%Y (strptime codes)"),
    ]

    @server.tool(annotations=read_only)
    def search_kpis(
        text: Annotated[str, Field(description="words, a name or an abbreviation (NRR)")] = "",
        function: Annotated[str | None, Field(description="business function id")] = None,
        category: Annotated[str | None, Field(description="category id")] = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """Find KPIs by name, alias, business function, category or text; best match first."""
        return run(service.search, text, function, category, limit)

    @server.tool(annotations=read_only)
    def get_kpi(
        kpi: Annotated[str, Field(description="KPI id, name or unambiguous alias")],
    ) -> dict[str, Any]:
        """Everything about one KPI: its attributes, formula, datapoints, relations to other
        KPIs, worked examples and the data columns it needs."""
        return run(service.get, kpi)

    @server.tool(annotations=read_only)
    def kpi_inputs(
        kpis: Annotated[list[str], Field(description="KPI ids, names or aliases")],
    ) -> list[dict[str, Any]]:
        """The raw data columns (datapoints) the KPIs read, through the KPIs they are built
        from: what a data file must contain to evaluate them."""
        return run(service.inputs, kpis)

    @server.tool(annotations=read_only)
    def evaluate_kpis(
        kpis: Annotated[list[str], Field(description="KPI ids, names or aliases")],
        data: Annotated[str, Field(description="CSV or Parquet file under the server's roots")],
        period: Annotated[str | None, Field(description="period column")] = None,
        entity: Annotated[str | None, Field(description="entity column (customer, ...)")] = None,
        by: Annotated[list[str] | None, Field(description="columns to group by")] = None,
        grain: Grain | None = None,
        columns: Columns = None,
        engine: Literal["pandas", "duckdb"] = "pandas",
        targets: Annotated[bool, Field(description="add each KPI's target and status")] = False,
        max_rows: int = 500,
        date_format: DateFormat = None,
        drop_invalid: Annotated[
            bool,
            Field(
                description="compute on the rows left after leaving out those outside a "
                "datapoint's valid range or contradicting each other (listed as warnings)"
            ),
        ] = False,
    ) -> dict[str, Any]:
        """Evaluate KPIs on a local data file per period (and group), as `kpi eval` does,
        with the same options and checks."""
        return run(
            service.evaluate,
            kpis,
            data,
            period,
            entity,
            by,
            grain,
            columns,
            engine,
            targets,
            max_rows,
            date_format,
            drop_invalid,
        )

    @server.tool(annotations=read_only)
    def compile_sql(
        kpis: Annotated[list[str], Field(description="KPI ids, names or aliases")],
        table: Annotated[str, Field(description="table to read, e.g. analytics.mrr")],
        period: Annotated[str, Field(description="period column")],
        dialect: Literal["duckdb", "postgres", "snowflake", "bigquery", "spark", "trino"] = (
            "duckdb"
        ),
        entity: str | None = None,
        by: list[str] | None = None,
        grain: Grain | None = None,
        columns: Columns = None,
    ) -> str:
        """One SQL statement that computes the KPIs per period (and group) in a warehouse,
        with the same numbers as evaluate_kpis (`kpi sql`)."""
        return run(service.sql, kpis, table, period, dialect, entity, by, grain, columns)

    @server.tool(annotations=read_only)
    def explain_change(
        kpi: Annotated[str, Field(description="KPI id, name or alias")],
        data: Annotated[str, Field(description="CSV or Parquet file under the server's roots")],
        start: Annotated[str, Field(description="the earlier period, e.g. 2024-01")],
        end: Annotated[str, Field(description="the later period, e.g. 2024-02")],
        period: Annotated[str, Field(description="period column")],
        entity: str | None = None,
        by: Annotated[list[str] | None, Field(description="segment columns")] = None,
        grain: Grain | None = None,
        columns: Columns = None,
        engine: Literal["pandas", "duckdb"] = "pandas",
        date_format: DateFormat = None,
    ) -> dict[str, Any]:
        """Why a KPI moved between two periods: its change split exactly among the KPIs and
        datapoints of its formula (and segments with `by`), as `kpi explain` does."""
        return run(
            service.explain,
            kpi,
            data,
            start,
            end,
            period,
            entity,
            by,
            grain,
            columns,
            engine,
            date_format,
        )

    return server


def serve(roots: Sequence[str | Path] = (), paths: Sequence[str | Path] = ()) -> int:
    """Serve the registry over stdio until the client leaves: data files only under
    ``roots`` (default: the current folder), the library with the folders ``paths``."""
    try:
        service = KPIServer(list(roots) or [Path.cwd()], paths)
    except ToolFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    start = _FastStart(service)
    start.begin_loading()
    if not start.answer_handshake():
        # the client went away before any call: let the SDK's import finish first (an
        # interpreter cannot shut down cleanly under a thread still loading extensions)
        start.wait_loaded()
        return 0
    start.hand_over()
    return 0


# -- a fast start: the handshake answered while the SDK loads ------------------------------
#: What the handshake answers depend on: the SDK and pydantic (which writes the schemas) as
#: installed, the tools as declared in this file, and the Python running them.
_ANSWERS_DEPEND_ON = ("mcp", "mcp_types", "pydantic", "pydantic_core")


def _answers_key() -> str:
    """Identifies the installed SDK, pydantic and this file by their files' size and
    modification time (an upgrade rewrites them), without importing them."""
    import hashlib
    from importlib.util import find_spec

    parts = [sys.version, __file__]
    for name in _ANSWERS_DEPEND_ON:
        spec = find_spec(name)
        parts.append(str(spec.origin if spec else None))
    for path in parts[1:]:
        try:
            st = os.stat(path)
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        except (OSError, TypeError):
            parts.append("missing")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def answers_file() -> Path:
    """Where the SDK's handshake answers for this installation are kept."""
    from .files import cache_dir

    return cache_dir() / f"mcp-handshake-{_answers_key()}.json"


def _read_answers(path: Path) -> dict[str, dict[str, Any]] | None:
    try:
        answers = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return answers if isinstance(answers, dict) else None


class _Wire:
    """The client's stdin and stdout on private descriptors; fd 0 now reads nothing and fd 1
    goes to stderr, so nothing printed by the code the tools run can break the protocol (the
    SDK's stdio transport does the same with the real descriptors)."""

    def __init__(self) -> None:
        sys.stdout.flush()
        in_fd, out_fd = os.dup(0), os.dup(1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)
        self.reader = os.fdopen(in_fd, "rb")
        self.writer = os.fdopen(out_fd, "wb")

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self.writer.flush()


#: Where a request of the stateless protocol revisions names its version (server/discover).
_VERSION_META = "io.modelcontextprotocol/protocolVersion"


class _FastStart:
    """Answers the first messages of a session from the SDK's earlier answers while the SDK
    loads, then gives the SDK the rest of the conversation.

    Cached are the SDK's answers, per protocol version, to ``initialize`` and ``tools/list``
    (versions with a handshake) or to ``server/discover`` and ``tools/list`` (the stateless
    versions, whose requests name their version). The SDK is handed the ``initialize`` (and
    ``initialized``) or ``server/discover`` it missed, its reply to them not sent again, and
    then every later message, so it holds the session as if it had answered from the start.
    Anything else, or a version without cached answers, waits for the SDK."""

    def __init__(self, service: KPIServer):
        self.service = service
        self.answers_path = answers_file()
        self.answers = _read_answers(self.answers_path)
        self.wire = _Wire()
        self.replay: list[str] = []  # lines the SDK must see before the rest
        self.answered_ids: list[Any] = []  # replayed requests whose replies were sent
        self._server: Any = None
        self._failure: BaseException | None = None
        self._loaded = threading.Event()

    def begin_loading(self) -> None:
        threading.Thread(target=self._load, name="mcp-sdk-import", daemon=True).start()

    def _load(self) -> None:
        try:
            self._server = build_server(self.service)
            if self.answers is None:
                _write_answers(self.answers_path, handshake_answers(self.service))
        except BaseException as e:  # reported on the main thread
            self._failure = e
        finally:
            self._loaded.set()

    def answer_handshake(self) -> bool:
        """Answer from the cache until a message needs the SDK; False at end of input."""
        if self.answers is None:
            return True
        session: str | None = None  # the version an initialize agreed on
        while not self._loaded.is_set():
            line = self.wire.reader.readline()
            if not line:
                return False
            text = line.decode("utf-8", errors="replace")
            if not self._answered(text, session):
                self.replay.append(text)  # the SDK's to answer, and all after it
                return True
            if '"initialize"' in text and session is None:
                session = json.loads(text)["params"]["protocolVersion"]
        return True

    def _answered(self, text: str, session: str | None) -> bool:
        try:
            message = json.loads(text)
        except ValueError:
            return False
        if not isinstance(message, dict):
            return False
        method, request_id = message.get("method"), message.get("id")
        params = message.get("params") or {}
        if not isinstance(params, dict):
            return False
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        if method == "notifications/initialized" and session is not None:
            self.replay.append(text)
            return True
        if request_id is None:
            return False
        if method == "initialize" and session is None:
            version, replayed = params.get("protocolVersion"), True
        elif method == "server/discover":
            version, replayed = meta.get(_VERSION_META), True
        elif method == "tools/list" and set(params) <= {"_meta"}:
            version, replayed = meta.get(_VERSION_META, session), False
        else:
            return False
        result = self.answers.get(version, {}).get(method) if isinstance(version, str) else None
        if result is None:
            return False
        self.wire.send({"jsonrpc": "2.0", "id": request_id, "result": result})
        if replayed:
            self.replay.append(text)
            self.answered_ids.append(request_id)
        return True

    def wait_loaded(self) -> None:
        self._loaded.wait()

    def hand_over(self) -> None:
        self._loaded.wait()
        if self._failure is not None:
            raise self._failure
        import anyio

        anyio.run(self._serve)

    async def _serve(self) -> None:
        import anyio
        from mcp.server.stdio import stdio_server

        rest = anyio.wrap_file(io.TextIOWrapper(self.wire.reader, "utf-8", errors="replace"))
        out = anyio.wrap_file(io.TextIOWrapper(self.wire.writer, "utf-8"))
        stdin = _Lines(self.replay, rest)
        stdout = _Skipping(out, self.answered_ids)
        lowlevel = self._server._lowlevel_server
        async with stdio_server(stdin=stdin, stdout=stdout) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())


class _Lines:
    """The lines given first, then those of an async file (what stdio_server iterates)."""

    def __init__(self, first: list[str], rest: Any):
        self.first, self.rest = first, rest

    async def __aiter__(self):
        for line in self.first:
            yield line
        async for line in self.rest:
            yield line


class _Skipping:
    """The client's stdout, less the SDK's replies to requests answered already."""

    def __init__(self, out: Any, answered_ids: list[Any]):
        self.out, self.answered = out, list(answered_ids)

    async def write(self, text: str) -> None:
        if self.answered:
            try:
                message = json.loads(text)
            except ValueError:
                message = None
            if isinstance(message, dict) and "method" not in message:
                if message.get("id") in self.answered:
                    self.answered.remove(message["id"])
                    return
        await self.out.write(text)

    async def flush(self) -> None:
        await self.out.flush()


def handshake_answers(service: KPIServer) -> dict[str, dict[str, Any]]:
    """The SDK's own answers to the first requests of a session, per protocol version, by
    running a server on in-memory lines: ``initialize`` and ``tools/list`` for the versions
    with a handshake, ``server/discover`` and ``tools/list`` for the stateless ones. A
    version whose requests the SDK refuses is left out (its sessions wait for the SDK)."""
    import anyio
    from mcp.server.stdio import stdio_server
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

    lowlevel = build_server(service)._lowlevel_server
    client = {"name": "kpi-registry", "version": "0"}

    async def conversation(requests: list[dict[str, Any]]) -> dict[Any, Any]:
        sent = [json.dumps(m) + "\n" for m in requests]
        wanted = {m["id"] for m in requests if "id" in m}
        got: dict[Any, Any] = {}
        done = anyio.Event()

        class Out:
            async def write(self, text: str) -> None:
                message = json.loads(text)
                if message.get("id") in wanted and "method" not in message:
                    got[message["id"]] = message
                if set(got) == wanted:
                    done.set()

            async def flush(self) -> None:
                pass

        class In:
            async def __aiter__(self):
                for line in sent:
                    yield line
                await done.wait()

        options = lowlevel.create_initialization_options()
        async with stdio_server(stdin=In(), stdout=Out()) as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, options)
        return got

    async def every_version() -> dict[str, dict[str, Any]]:
        answers: dict[str, dict[str, Any]] = {}
        for version in HANDSHAKE_PROTOCOL_VERSIONS:
            params = {"protocolVersion": version, "capabilities": {}, "clientInfo": client}
            got = await conversation(
                [
                    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params},
                    {"jsonrpc": "2.0", "method": "notifications/initialized"},
                    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                ]
            )
            if "result" in got[1] and "result" in got[2]:
                answers[version] = {"initialize": got[1]["result"], "tools/list": got[2]["result"]}
        for version in MODERN_PROTOCOL_VERSIONS:
            meta = {
                "_meta": {
                    _VERSION_META: version,
                    "io.modelcontextprotocol/clientInfo": client,
                    "io.modelcontextprotocol/clientCapabilities": {},
                }
            }
            got = await conversation(
                [
                    {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": meta},
                    {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": meta},
                ]
            )
            if "result" in got[1] and "result" in got[2]:
                answers[version] = {
                    "server/discover": got[1]["result"],
                    "tools/list": got[2]["result"],
                }
        return answers

    return anyio.run(every_version)


def _write_answers(path: Path, answers: dict[str, dict[str, Any]]) -> None:
    """Keep the answers for the next start; a cache that cannot be written is skipped."""
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".mcp-handshake.", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(answers, f)
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(temp)
