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
import sqlglot
from sqlglot import exp

from .. import periods as pandas_periods
from ..datafiles import expand_data_path
from ..errors import DataError, KPIError
from ..model import KPI
from ..request import Request, gap_warnings, used_datapoints
from . import sqlbuild as b
from .checks import in_entities_outside
from .compiler import compile_tree
from .spec import PeriodFormat, infer_period_format

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
_ROW = "_kpi_row"


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
        raise DataError(
            f"a column could not be read as numbers or periods: {_first_line(e)}"
        ) from None
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
                freq = pandas_periods._freq_code(series.dtype.freq)
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
        columns = [c for c in con.execute(probe.sql("duckdb")).fetch_df().columns if c not in added]
        return cls(con, table, columns, order, cleanup=cleanup)

    @classmethod
    def _table(cls, con: Any, name: str) -> _Input:
        table = b.table_name(name)
        probe = exp.select(exp.Star()).from_(table.copy()).limit(0)
        columns = list(con.execute(probe.sql("duckdb")).fetch_df().columns)
        kind = con.execute(
            "SELECT table_type FROM information_schema.tables WHERE table_name = ?",
            [table.name],
        ).fetchall()
        order = b.col("rowid") if kind and kind[0][0] == "BASE TABLE" else None
        return cls(con, table, columns, order)

    # -- running ----------------------------------------------------------------------------
    def query(self, select: exp.Expression) -> pd.DataFrame:
        sql = select.sql("duckdb")
        if self.relation is not None:
            return self.relation.query(_INPUT, sql).df()
        return self.con.execute(sql).fetch_df()

    def __enter__(self) -> _Input:
        return self

    def __exit__(self, *exc: Any) -> None:
        for step in self.cleanup:
            step()


def _suffix(path: str) -> str:
    name = path.lower()
    for ext in (".parquet", ".csv", ".csv.gz", ".tsv", ".txt"):
        if name.endswith(ext):
            return "csv" if ext != ".parquet" else "parquet"
    return Path(name).suffix.lstrip(".")


def _run(
    kpis: Mapping[str, KPI], ids: list[str], source: _Input, req: Request, layout: str = "auto"
) -> pd.DataFrame:
    tree, axis, fmt = _compile(kpis, ids, source, req, layout)
    notes = _check_rows(kpis, ids, source, req, axis, fmt)
    if source.cleanup:  # our own connection: the final ORDER BY decides the order anyway
        source.con.execute("SET preserve_insertion_order = false")
    result = source.query(tree)
    frame = _shape(result, ids, req, axis, fmt, source)
    frame.attrs["warnings"] = frame.attrs["warnings"] + notes
    return frame


def _check_rows(kpis, ids, source: _Input, req: Request, axis, fmt) -> list[str]:
    """The pandas engine's checks of the rows (valid ranges, rows last/first it cannot order,
    flags that exclude each other), run on the few rows that can fail them.

    DuckDB picks out those rows (outside a range; entity-periods with several differing
    values; entities with both flags set), and the pandas engine checks them, so errors and
    warnings are the same, naming the data's rows. Returns the warnings (drop_invalid)."""
    specs = used_datapoints(kpis, ids, source.columns, req)
    checked = {
        name: spec
        for name, spec in specs.items()
        if spec.minimum is not None
        or spec.maximum is not None
        or spec.excludes
        or (spec.rows in ("last", "first") and req.entity is not None)
    }
    if not checked:
        return []
    row = _row_label(source)
    keep = [req.period, req.entity, *req.by]
    wanted: set[str] = set()
    where: list[exp.Expression] = []
    for name, spec in checked.items():
        col = req.columns.get(name, name)
        wanted.add(col)
        value = b.col(col)
        if spec.checks_cells and req.entity is not None:  # ranges of entity-periods
            keys = _cell_key(req, fmt) if req.period is not None else [b.col(req.entity)]
            where.append(in_entities_outside(source.table, keys, req.entity, col, spec))
        elif spec.minimum is not None or spec.maximum is not None:
            if spec.minimum is not None:
                where.append(b.binary(exp.LT, value.copy(), b.num(spec.minimum)))
            if spec.maximum is not None:
                where.append(b.binary(exp.GT, value.copy(), b.num(spec.maximum)))
        if spec.rows in ("last", "first") and req.entity is not None:
            order = req.columns.get(spec.order_by, spec.order_by) if spec.order_by else None
            if order in source.columns:
                wanted.add(order)
            where.append(_in_cells_with_several_values(source, req, fmt, col))
        for other in spec.excludes:
            other_col = req.columns.get(other, other)
            if other_col in source.columns:
                wanted.add(other_col)
                where.append(_in_entities_with_both(source, req, col, other_col))
    columns = [c for c in dict.fromkeys([*keep, *sorted(wanted)]) if c is not None]
    select = exp.select(*[b.col(c) for c in columns], b.alias(row, "_kpi_label"))
    select = select.from_(source.table.copy()).where(_or(where)).order_by(b.col("_kpi_label"))
    rows = source.query(select)
    if rows.empty:
        return []
    labels = rows.pop("_kpi_label").to_numpy()
    if source.labels is not None:
        labels = source.labels[labels.astype(np.int64)]
    rows.index = pd.Index(labels)
    if axis is not None and axis.base == "M" and fmt is not None and fmt.kind == "mapping":
        # days read as months (monthly rows): the subset is read the same way
        rows[req.period] = [str(pd.Period(v, "M")) for v in rows[req.period]]
    from ..evaluation import check_rows

    return check_rows(checked, rows, req, axis)


def _row_label(source: _Input) -> exp.Expression:
    """Each row's number as the pandas engine reports it (a CSV or Parquet file's data row
    from 0; a DataFrame's position, turned into its index label after the query)."""
    if source.labels is not None:
        return b.col(_ROW)
    if isinstance(source.order, exp.Column):
        return source.order.copy()
    number = exp.Window(this=exp.RowNumber())
    return b.binary(exp.Sub, number, b.num(1))


def _or(parts: list[exp.Expression]) -> exp.Expression:
    out = parts[0]
    for part in parts[1:]:
        out = exp.Or(this=out, expression=part)
    return out


def _cell_key(req: Request, fmt) -> list[exp.Expression]:
    period = b.col(req.period)
    if fmt is not None and fmt.kind not in ("mapping",):
        period = b.base_ordinal(b.col(req.period), fmt)
    return [b.col(req.entity), period]


def _in_cells_with_several_values(source: _Input, req: Request, fmt, col: str) -> exp.Expression:
    """The row is in an entity-period where the column has different values."""
    keys = _cell_key(req, fmt) if req.period is not None else [b.col(req.entity)]
    inner = (
        exp.select(*[k.copy() for k in keys])
        .from_(source.table.copy())
        .group_by(*[k.copy() for k in keys])
        .having(b.binary(exp.NEQ, exp.Min(this=b.col(col)), exp.Max(this=b.col(col))))
    )
    return exp.In(this=exp.Tuple(expressions=keys), query=exp.Subquery(this=inner))


def _in_entities_with_both(source: _Input, req: Request, col: str, other: str) -> exp.Expression:
    """The row belongs to an entity with a row setting each flag (without an entity: the row
    sets both)."""
    a = b.binary(exp.GT, b.col(col), b.num(0))
    z = b.binary(exp.GT, b.col(other), b.num(0))
    if req.entity is None:
        return b.and_(a, z)
    inner = (
        exp.select(b.col(req.entity))
        .from_(source.table.copy())
        .group_by(b.col(req.entity))
        .having(
            b.and_(
                b.binary(exp.GT, exp.Max(this=b.col(col)), b.num(0)),
                b.binary(exp.GT, exp.Max(this=b.col(other)), b.num(0)),
            )
        )
    )
    return exp.In(this=b.col(req.entity), query=exp.Subquery(this=inner))


def _compile(kpis: Mapping[str, KPI], ids: list[str], source: _Input, req: Request, layout: str):
    """The compiled statement for this source, and the period axis and format it read."""
    axis, fmt = _infer_periods(source, req)
    tree = compile_tree(
        kpis,
        ids,
        source.table.copy(),
        req,
        "duckdb",
        period_type=fmt,
        order=source.order,
        columns=source.columns,
        layout=layout,
    )
    return tree, axis, fmt


def _infer_periods(source: _Input, req: Request):
    """The period format, found the way the pandas engine finds it (from distinct values)."""
    checks = exp.select()
    if req.period is not None:
        checks = checks.select(b.alias(b.col(req.period), "p"))
    if req.entity is not None and req.entity in source.columns:
        missing = exp.Sum(this=b.case((b.is_null(b.col(req.entity)), b.num(1)), default=b.num(0)))
        checks = checks.select(b.alias(missing, "missing_entity"))
    if not checks.expressions:
        return None, None
    if req.period is not None and req.period not in source.columns:
        return None, None  # the compiler reports the missing column
    checks = checks.from_(source.table.copy())
    if req.period is not None:
        checks = checks.group_by(b.col(req.period))
    found = source.query(checks)
    if "missing_entity" in found and found["missing_entity"].fillna(0).sum() > 0:
        raise DataError(f"entity column {req.entity!r} is empty in some rows")
    if req.period is None:
        return None, None
    values = found["p"]
    if values.isna().any():
        raise DataError(f"period column {req.period!r} is empty in some rows")
    if source.freq is not None:
        ordinals = values.to_numpy(dtype=np.int64)
        series = pd.Series(pd.PeriodIndex.from_ordinals(ordinals, freq=source.freq))
        axis = pandas_periods.parse(series, req.period)
        return axis, PeriodFormat("ordinal", axis.base, "text")
    axis, fmt = infer_period_format(values, req.period, req.date_format)
    months = _monthly_rows(source, req, axis, fmt)
    if months is not None:
        if fmt.kind == "date":
            return months, PeriodFormat("date", "M", fmt.labels)
        texts = [v if isinstance(v, str) else str(v) for v in values]
        ordinals = months.codes + months.first
        return months, PeriodFormat("mapping", "M", "text", tuple(zip(texts, map(int, ordinals))))
    return axis, fmt


def _monthly_rows(source: _Input, req: Request, axis, fmt: PeriodFormat):
    """``periods.monthly_rows`` for data in DuckDB: the axis in months, or None. Without an
    entity the distinct days already read decide it; with one, DuckDB checks that no entity
    has two different days in one month (the day of text it cannot parse, such as 2024/01/31
    or a --date-format, found through the table of the values seen)."""
    if fmt.kind not in ("date", "text", "mapping"):
        return None
    if req.entity is None or req.entity not in source.columns:
        return pandas_periods.monthly_rows(axis, None, req.grain)
    # its other conditions (days, two months or more, no day or week grain), with each
    # distinct value as its own entity so that the per-entity check passes here
    months = pandas_periods.monthly_rows(axis, np.arange(len(axis.codes)), req.grain)
    if months is None:
        return None
    period = b.col(req.period).sql("duckdb")
    day = f"CAST({period} AS DATE)"  # a timestamp's day, as pandas
    table = source.table.sql("duckdb")
    if fmt.kind == "mapping":
        days = ", ".join(
            f"({b.string(text).sql('duckdb')}, DATE '{np.datetime64(ordinal, 'D')}')"
            for text, ordinal in fmt.mapping
        )
        table += (
            f" JOIN (VALUES {days}) AS _kpi_days(_text, _day) ON CAST({period} AS VARCHAR) = _text"
        )
        day = "_day"
    keys = f"{b.col(req.entity).sql('duckdb')}, date_trunc('month', {day})"
    per_month = f"SELECT COUNT(DISTINCT {day}) AS n FROM {table} GROUP BY {keys}"
    found = source.query(sqlglot.parse_one(f"SELECT MAX(n) AS n FROM ({per_month})", "duckdb"))
    return months if int(found["n"].iloc[0] or 0) <= 1 else None


def _shape(result: pd.DataFrame, ids, req: Request, axis, fmt, source: _Input) -> pd.DataFrame:
    """The frame exactly as the pandas engine builds it (column kinds, attrs)."""
    out: dict[str, Any] = {}
    partial: list = []
    if req.period is not None:
        grain = pandas_periods.grain_code(req.grain, axis.base) if axis is not None else "M"
        labels = result[req.period]
        if fmt is not None and fmt.labels == "timestamp":
            index = pd.DatetimeIndex(labels).to_period(grain)
        else:
            index = pd.PeriodIndex([_parse_label(v, grain) for v in labels], freq=grain)
        kind = "period" if source.freq else axis.kind if axis is not None else "text"
        out[req.period] = pandas_periods.present_labels(index, kind)
        partial = pandas_periods.partial_periods(axis, grain, kind)
    for col in req.by:
        out[col] = result[col].to_numpy()
    undefined = {}
    for kpi_id in ids:
        values = result[kpi_id].to_numpy(dtype=float, na_value=np.nan)
        out[kpi_id] = values
        undefined[kpi_id] = int(np.isnan(values).sum())
    frame = pd.DataFrame(out)
    frame.attrs["undefined"] = undefined
    frame.attrs["warnings"] = gap_warnings(axis)
    frame.attrs["partial_periods"] = partial
    return frame


def _parse_label(label: str, grain: str) -> pd.Period:
    if grain == "W":
        label = label.split("/")[0]
    return pd.Period(label, freq=grain)
