"""The DuckDB engine: run the compiled SQL in embedded DuckDB and return the pandas frame.

Data may be a pandas DataFrame, a Parquet or CSV path (or glob, or a list of paths), a DuckDB
relation, or a ``(connection, "table")`` pair. Files are read by DuckDB directly, never through
pandas, so a Parquet file far larger than memory works: DuckDB keeps to
``DEFAULT_MEMORY_LIMIT`` (3 GB; set ``KPI_DUCKDB_MEMORY_LIMIT`` to change it) and spills beyond
it. The period column's format is inferred exactly as the pandas engine infers it, from the
distinct values only. A glob is expanded by ``datafiles.expand_data_path``, not by DuckDB.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

from .. import periods as pandas_periods
from ..datafiles import expand_data_path
from ..errors import CellError, ConversionError, DataError, KPIError
from ..model import KPI
from ..request import Request
from . import sqlbuild as b
from .results import (
    ROW,
    check_rows,
    compile_source,
    infer_periods,
    periods_from_values,
    shape,
    suspects_exist,
)
from .spec import PeriodFormat

#: DuckDB's working memory; beyond it, it spills to a temporary folder. DuckDB's own default
#: (80% of RAM) would let a 100M-row file take most of a machine; override with the variable.
MEMORY_ENV = "KPI_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "3GB"
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*[KMGT]i?B$", re.IGNORECASE)
_INPUT = "kpi_input"
_CSV_MISSING = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"),
    *("1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
)
_ROW = ROW
_PROBE = "_kpi_probe"  # the period facts carried in the main query's first row
_SUSPECTS = "_kpi_suspects"  # whether any row may fail a check, in the same first row


def evaluate_duckdb(
    kpis: Mapping[str, KPI],
    ids: Sequence[str],
    data: Any,
    request: Request,
    *,
    layout: str = "auto",
) -> pd.DataFrame:
    """Evaluate KPIs in embedded DuckDB; same frame as the pandas engine's.

    ``layout`` is the compiler's (see ``compile_many``): ``auto`` skips the empty cells of
    the entity x period grid where that provably changes no number."""
    return _guarded(data, request, lambda source: _run(kpis, list(ids), source, request, layout))


def duckdb_sql(
    kpis: Mapping[str, KPI],
    ids: Sequence[str],
    data: Any,
    request: Request,
    *,
    layout: str = "auto",
) -> str:
    """The statement ``evaluate_duckdb`` runs on ``data`` (its period format read from the
    data), for a Parquet/CSV path or a ``(connection, "table")`` pair: to read it, or to time
    the query on its own."""

    def sql(source: _Input) -> str:
        tree, _, _ = _compile(kpis, list(ids), source, request, layout)
        return tree.sql("duckdb", pretty=True)

    return _guarded(data, request, sql)


def _guarded(data: Any, request: Request, run: Callable[[_Input], Any]) -> Any:
    """Open the data and run; DuckDB's errors as the engine's."""
    import duckdb

    if isinstance(data, Mapping):
        raise DataError(
            "a mapping of single numbers is evaluated by the pandas engine only; "
            "use engine='pandas', or give rows (a DataFrame, a Parquet/CSV file or a table)"
        )
    try:
        with _Input.open(data, request) as source:
            return run(source)
    except duckdb.ConversionException as e:
        detail = _first_line(e)
        raise ConversionError(detail, _unconvertible_value(detail)) from None
    except duckdb.InvalidInputException as e:
        message = _first_line(e)
        if "supplies KPI" in message:  # the uniqueness check written into the SQL
            raise DataError(message.split("Error: ", 1)[-1]) from None
        raise DataError(f"cannot read the data: {message}") from None
    except duckdb.IOException as e:
        raise DataError(f"cannot read the data: {_first_line(e)}") from None
    except duckdb.Error as e:
        raise KPIError(f"DuckDB could not run the query: {_first_line(e)}") from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0]


_COULD_NOT_CONVERT = re.compile(r"Could not convert string '([^']*)'")


def _unconvertible_value(detail: str) -> str | None:
    """The text DuckDB could not convert. This reads a third party's message, not ours:
    DuckDB's ConversionException carries no field with the value (DuckDB 2.0), only its
    message ("Conversion Error: Could not convert string 'x' to DOUBLE ..."); None when the
    wording differs, and then the error is only without its hint."""
    found = _COULD_NOT_CONVERT.search(detail)
    return found.group(1) if found else None


@dataclass
class _Input:
    """Where the rows are, as DuckDB sees them."""

    con: Any
    table: exp.Expression
    columns: list[str]
    order: exp.Expression | None = None
    relation: Any = None  # a DuckDB relation queried through relation.query()
    freq: str | None = None  # the frequency of a pandas Period column, when one was given
    cleanup: list[Any] = field(default_factory=list)  # set when we opened the connection
    labels: pd.Index | None = None  # a DataFrame's index: what its row numbers are reported as
    types: dict[str, str] | None = None  # DuckDB's type of each column, when already read

    @classmethod
    def open(cls, data: Any, req: Request) -> _Input:
        import duckdb

        if isinstance(data, pd.DataFrame):
            return cls._frame(data, req)
        if isinstance(data, (str, os.PathLike)):
            return cls._file(str(data), req)
        if isinstance(data, list) and data and all(isinstance(p, (str, os.PathLike)) for p in data):
            return cls._files([str(p) for p in data], str(data[0]), req)
        if isinstance(data, duckdb.DuckDBPyRelation):
            return cls(None, exp.to_table(_INPUT), list(data.columns), relation=data)
        if (
            isinstance(data, tuple)
            and len(data) == 2
            and isinstance(data[0], duckdb.DuckDBPyConnection)
            and isinstance(data[1], str)
        ):
            return cls._table(*data)
        raise DataError(
            "the duckdb engine reads a pandas DataFrame, a Parquet or CSV path (or glob), a "
            f"DuckDB relation or a (connection, 'table') pair, not {type(data).__name__}"
        )

    @classmethod
    def _connect(cls) -> tuple[Any, list[Any]]:
        import duckdb

        limit = os.environ.get(MEMORY_ENV, "").strip() or DEFAULT_MEMORY_LIMIT
        if not _MEMORY.match(limit):
            raise DataError(f"{MEMORY_ENV}={limit!r}: give a size such as 3GB or 500MB")
        con = duckdb.connect()
        spill = tempfile.mkdtemp(prefix="kpi-duckdb-")  # beyond the memory limit DuckDB spills
        con.execute("SET temp_directory = " + b.string(spill).sql("duckdb"))
        con.execute("SET memory_limit = " + b.string(limit).sql("duckdb"))
        return con, [con.close, lambda: shutil.rmtree(spill, ignore_errors=True)]

    @classmethod
    def _frame(cls, frame: pd.DataFrame, req: Request) -> _Input:
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            raise DataError("the DataFrame has duplicate column names")
        con, cleanup = cls._connect()
        view = frame.copy(deep=False)
        view.columns = names
        freq = None
        if req.period is not None and req.period in view.columns:
            series = view[req.period]
            if isinstance(series.dtype, pd.DatetimeTZDtype):
                # the pandas engine reads local wall time; DuckDB would convert to UTC
                view[req.period] = series.dt.tz_localize(None)
            elif isinstance(series.dtype, pd.PeriodDtype):
                # DuckDB has no Period type: hand it the period numbers pandas uses
                view[req.period] = series.array.asi8
                freq = pandas_periods.freq_code(series.dtype.freq)
        order = None
        view[_ROW] = np.arange(len(view), dtype=np.int64)  # row numbers for data checks too
        if req.entity is not None:
            order = b.col(_ROW)
        con.register(_INPUT, view)
        return cls(con, exp.to_table(_INPUT), names, order, None, freq, cleanup, frame.index)

    @classmethod
    def _file(cls, path: str, req: Request) -> _Input:
        matches = [str(p) for p in expand_data_path(path)]
        if not any(ch in path for ch in "*?[") and not Path(path).is_file():
            raise DataError(f"data file {path!r} not found")
        if not matches:
            raise DataError(f"no file matches {path!r}")
        return cls._files(matches, path, req)

    @classmethod
    def _files(cls, paths: list[str], name: str, req: Request) -> _Input:
        """Read exactly these files (a glob is expanded by ``expand_data_path`` first, so
        DuckDB never globs: it would also read hidden files the pandas path skips)."""
        suffixes = {_suffix(p) for p in paths}
        kind = suffixes.pop() if len(suffixes) == 1 else ""
        if kind not in ("parquet", "csv"):
            raise DataError(f"data file {name!r}: use .parquet or .csv files (or a glob of them)")
        con, cleanup = cls._connect()
        try:
            return cls._read_file(con, cleanup, paths, kind, req)
        except BaseException:
            for step in cleanup:
                step()
            raise

    @classmethod
    def _read_file(
        cls, con: Any, cleanup: list, paths: list[str], kind: str, req: Request
    ) -> _Input:
        order = None
        files = len(paths)
        names = [b.string(p) for p in paths]
        source: exp.Expression = names[0] if files == 1 else exp.Array(expressions=names)
        if kind == "parquet":
            args: list[exp.Expression] = [source.copy()]
            if req.entity is not None:
                args.append(exp.EQ(this=exp.var("file_row_number"), expression=exp.true()))
                order = b.col("file_row_number")
                if files > 1:
                    args.append(exp.EQ(this=exp.var("filename"), expression=exp.true()))
                    order = exp.Tuple(expressions=[b.col("filename"), b.col("file_row_number")])
            table: exp.Expression = exp.Table(
                this=exp.Anonymous(this="read_parquet", expressions=args)
            )
        else:
            args = [source.copy()]
            if req.period is not None:
                # read periods as text, as pandas.read_csv does, not as dates
                types = exp.Struct(
                    expressions=[
                        exp.PropertyEQ(this=b.string(req.period), expression=b.string("VARCHAR"))
                    ]
                )
                args.append(exp.EQ(this=exp.var("types"), expression=types))
            # the texts pandas.read_csv reads as missing
            missing = exp.Array(expressions=[b.string(t) for t in _CSV_MISSING])
            args.append(exp.EQ(this=exp.var("nullstr"), expression=missing))
            table = exp.Table(this=exp.Anonymous(this="read_csv", expressions=args))
            if req.entity is not None:
                # CSV has no row numbers: load it once, keeping the file's order in rowid
                create = exp.Create(
                    this=exp.to_table(_INPUT),
                    kind="TABLE",
                    expression=exp.select(exp.Star()).from_(table),
                    properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
                )
                con.execute(create.sql("duckdb"))
                table = exp.to_table(_INPUT)
                order = b.col("rowid")
        probe = exp.select(exp.Star()).from_(table.copy()).limit(0)
        added = (
            {"file_row_number", "filename"} if kind == "parquet" and order is not None else set()
        )
        types = _types(con.execute(probe.sql("duckdb")))
        columns = [c for c in types if c not in added]
        return cls(con, table, columns, order, cleanup=cleanup, types=types)

    @classmethod
    def _table(cls, con: Any, name: str) -> _Input:
        table = b.table_name(name)
        probe = exp.select(exp.Star()).from_(table.copy()).limit(0)
        types = _types(con.execute(probe.sql("duckdb")))
        columns = list(types)
        kind = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = ?",
            [table.name],
        ).fetchall()
        order = b.col("rowid") if kind and kind[0][0] == "BASE TABLE" else None
        return cls(con, table, columns, order, types=types)

    def column_type(self, name: str) -> str | None:
        """DuckDB's type of a column (a metadata read: no rows are scanned)."""
        if self.types is None:
            if self.relation is not None:
                self.types = {c: str(t) for c, t in zip(self.relation.columns, self.relation.types)}
            else:
                probe = exp.select(exp.Star()).from_(self.table.copy()).limit(0)
                self.types = _types(self.con.execute(probe.sql("duckdb")))
        return self.types.get(name)

    # -- running ----------------------------------------------------------------------------
    def query(self, select: exp.Expression) -> pd.DataFrame:
        """Run a statement built for this one call: sqlglot's generator may then work on it
        in place instead of copying it first (the copy was 13% of a call on a million rows)."""
        sql = select.sql("duckdb", copy=False)
        if self.relation is not None:
            return self.relation.query(_INPUT, sql).df()
        return self.con.execute(sql).fetch_df()

    def __enter__(self) -> _Input:
        return self

    def __exit__(self, *exc: Any) -> None:
        for step in self.cleanup:
            step()


def _types(cursor: Any) -> dict[str, str]:
    return {d[0]: str(d[1]) for d in cursor.description}


def _suffix(path: str) -> str:
    name = path.lower()
    for ext in (".parquet", ".csv", ".csv.gz", ".tsv", ".txt"):
        if name.endswith(ext):
            return "csv" if ext != ".parquet" else "parquet"
    return Path(name).suffix.lstrip(".")


def _run(
    kpis: Mapping[str, KPI], ids: list[str], source: _Input, req: Request, layout: str = "auto"
) -> pd.DataFrame:
    guess = _guess_format(source, req)
    if guess is not None:
        frame = _run_guessed(kpis, ids, source, req, layout, guess[0])
        if frame is not None:
            return frame
    tree, axis, fmt = _compile(kpis, ids, source, req, layout)
    notes = check_rows(kpis, ids, source, req, axis, fmt)
    if source.cleanup:  # our own connection: the final ORDER BY decides the order anyway
        source.con.execute("SET preserve_insertion_order = false")
    result = source.query(tree)
    frame = shape(result, ids, req, axis, fmt, source)
    frame.attrs["warnings"] = frame.attrs["warnings"] + notes
    return frame


#: DuckDB types whose period format is guessed before reading the data (see _guess_format)
_DATES = ("DATE", "TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S")
_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")


def _guess_format(source: _Input, req: Request) -> tuple[PeriodFormat | None] | None:
    """The period format the data most likely has, from the column's type alone: a pandas
    Period column's (certain), month starts for dates, 2024-01 for text, years for integers.
    A guess only: ``_run_guessed`` checks it against the distinct values read in the same
    query. None: no guess (the format is read first, in a query of its own)."""
    if req.period is None:
        return (None,) if req.entity is not None else None
    if req.period not in source.columns:
        return None
    if source.freq is not None:
        return (PeriodFormat("ordinal", source.freq, "text"),)
    kind = source.column_type(req.period)
    if kind in _DATES:
        return (PeriodFormat("date", "M", "timestamp"),)
    if kind == "VARCHAR":
        return (PeriodFormat("text", "M", "text"),)
    if kind in _INTEGERS:
        return (PeriodFormat("text", "Y", "text"),)
    return None


def _run_guessed(
    kpis: Mapping[str, KPI],
    ids: list[str],
    source: _Input,
    req: Request,
    layout: str,
    guess: PeriodFormat | None,
) -> pd.DataFrame | None:
    """One query: the statement compiled for the guessed period format, carrying in its first
    row what the format probe reads (the distinct periods, rows without a period or an
    entity). The frame when the format read from those values is the guess, so the statement
    run is the very one the two-query path runs; None (nothing raised) when the guess was
    wrong, the statement failed or returned no row: the caller then takes the two-query
    path, which raises its errors in their usual order."""
    import duckdb

    try:
        tree = compile_source(kpis, ids, source, req, "duckdb", guess, layout)
    except KPIError:
        return None
    if not isinstance(tree, exp.Select) or tree.args.get("distinct"):
        return None
    first_row = b.binary(exp.EQ, exp.Window(this=exp.RowNumber()), b.num(1))
    carried = b.case((first_row, exp.Subquery(this=_period_probe(source, req))))
    tree.select(b.alias(carried, _PROBE), copy=False)
    suspects = suspects_exist(kpis, ids, source, req, guess, in_statement=True)
    if suspects is not None:  # rows a check may fail: fetched in a query of their own
        tree.select(b.alias(b.case((first_row.copy(), suspects)), _SUSPECTS), copy=False)
    if source.cleanup:  # our own connection: the final ORDER BY decides the order anyway
        source.con.execute("SET preserve_insertion_order = false")
    try:
        result = source.query(tree)
    except duckdb.Error:
        return None
    facts = result.pop(_PROBE).dropna()
    flagged = result.pop(_SUSPECTS).dropna() if suspects is not None else None
    if facts.empty:
        return None
    found = facts.iloc[0]
    if found.get("missing_entity"):
        raise CellError(req.entity, None, None, "empty", "entity")  # DuckDB saw no row labels
    if req.period is None:
        axis, fmt = None, None
    else:
        if found["empty_periods"]:
            raise CellError(req.period, None, None, "empty", "period")
        values = pd.Series(found["periods"])
        if guess is not None and guess.kind == "date":
            values = pd.Series(pd.to_datetime(values))
        axis, fmt = periods_from_values(source, req, values)
        if fmt != guess:
            return None
    notes = []
    if flagged is not None and flagged.astype(bool).any():
        notes = check_rows(kpis, ids, source, req, axis, fmt)
    frame = shape(result, ids, req, axis, fmt, source)
    frame.attrs["warnings"] = frame.attrs["warnings"] + notes
    return frame


def _period_probe(source: _Input, req: Request) -> exp.Select:
    """One row: the distinct periods (a list), how many rows have no period, how many have
    no entity: what ``infer_periods`` reads in its own query."""
    inner = exp.select().from_(source.table.copy())
    outer = exp.select()
    if req.period is not None:
        p = b.col(req.period)
        inner = inner.select(b.alias(p.copy(), "p")).group_by(p.copy())
        not_null = exp.Not(this=b.is_null(b.col("p")))
        values = exp.Filter(this=exp.ArrayAgg(this=b.col("p")), expression=exp.Where(this=not_null))
        empty = exp.Filter(
            this=exp.Count(this=exp.Star()), expression=exp.Where(this=b.is_null(b.col("p")))
        )
        outer = outer.select(b.alias(values, "periods"), b.alias(empty, "empty_periods"))
    if req.entity is not None and req.entity in source.columns:
        missing = exp.Filter(
            this=exp.Count(this=exp.Star()),
            expression=exp.Where(this=b.is_null(b.col(req.entity))),
        )
        inner = inner.select(b.alias(missing, "m"))
        outer = outer.select(b.alias(exp.Sum(this=b.col("m")), "missing_entity"))
    struct = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(e.alias), expression=e.this)
            for e in outer.expressions
        ]
    )
    return exp.select(struct).from_(exp.Subquery(this=inner, alias="_kpi_periods"))


def _compile(kpis: Mapping[str, KPI], ids: list[str], source: _Input, req: Request, layout: str):
    """The compiled statement for this source, and the period axis and format it read."""
    axis, fmt = infer_periods(source, req)
    return compile_source(kpis, ids, source, req, "duckdb", fmt, layout), axis, fmt
