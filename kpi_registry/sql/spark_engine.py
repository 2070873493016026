"""The Spark engine: run the compiled Spark SQL in a SparkSession and return the pandas frame.

Data may be a Spark DataFrame, the name of a table (or view) in the given session, or a pandas
DataFrame, which is copied into the session. The rows stay in Spark: only the distinct period
values (to read the period format as the pandas engine does) and the result come back.

Spark DataFrames and tables have no row order. Where one matters (a datapoint that keeps the
last row of an entity-period, or rows of one entity-period that disagree on a ``by`` group),
name a column that orders the rows with ``order=``; a pandas frame is ordered as it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

from ..errors import DataError, KPIError
from ..model import KPI
from ..request import Request
from . import sqlbuild as b
from .results import check_rows as _check_rows
from .results import compile_source
from .results import infer_periods as _infer_periods
from .results import shape as _shape

_ROW = "_kpi_row"


def evaluate_spark(
    kpis: Mapping[str, KPI],
    ids: Sequence[str],
    data: Any,
    request: Request,
    *,
    spark: Any = None,
    order: str | None = None,
    layout: str = "auto",
) -> pd.DataFrame:
    """Evaluate KPIs in Spark; the same frame as the pandas engine's.

    ``data``: a Spark DataFrame, a table name (needs ``spark``, or an active session), or a
    pandas DataFrame (needs ``spark``). ``order`` names a column ordering the rows."""
    source = _Source.open(data, request, spark, order)
    try:
        axis, fmt = _infer_periods(source, request)
        tree = _compile(kpis, ids, source, request, fmt, layout)
        # the pandas engine's row checks (valid ranges, ...) need rows that can be named
        ordered = source.labels is not None or source.order is not None
        notes = _check_rows(kpis, list(ids), source, request, axis, fmt) if ordered else []
        result = source.query(tree)
        frame = _shape(result, list(ids), request, axis, fmt, source)
        frame.attrs["warnings"] = frame.attrs["warnings"] + notes
        return frame
    finally:
        source.close()


def _compile(kpis, ids, source, request: Request, fmt, layout: str):
    """The Spark statement for these KPIs on the source, in its period format."""
    return compile_source(kpis, ids, source, request, "spark", fmt, layout)


def spark_sql(
    kpis: Mapping[str, KPI],
    ids: Sequence[str],
    data: Any,
    request: Request,
    *,
    spark: Any = None,
    order: str | None = None,
    layout: str = "auto",
) -> str:
    """The statement ``evaluate_spark`` runs on ``data`` (its period format read from it)."""
    source = _Source.open(data, request, spark, order)
    try:
        _, fmt = _infer_periods(source, request)
        tree = _compile(kpis, ids, source, request, fmt, layout)
        return tree.sql("spark", pretty=True)
    finally:
        source.close()


def is_spark_dataframe(data: Any) -> bool:
    """True for a pyspark DataFrame (classic or Spark Connect), without importing pyspark."""
    return any(
        cls.__module__.startswith("pyspark.") and cls.__name__ == "DataFrame"
        for cls in type(data).__mro__
    )


@dataclass
class _Source:
    """Where the rows are, as the Spark session sees them (duckdb_engine's ``_Input`` twin)."""

    session: Any
    table: exp.Expression
    columns: list[str]
    order: exp.Expression | None = None
    view: str | None = None  # a temporary view we registered, dropped on close
    freq: str | None = None  # pandas Period columns are not read here (see _from_pandas)
    labels: Any = None  # a pandas frame's index labels, by row number (in column _kpi_row)

    @classmethod
    def open(cls, data: Any, req: Request, spark: Any, order: str | None) -> _Source:
        if isinstance(data, Mapping):
            raise DataError(
                "a mapping of single numbers is evaluated by the pandas engine only; "
                "use engine='pandas', or give rows (a Spark DataFrame or a table name)"
            )
        if is_spark_dataframe(data):
            source = cls._view(data.sparkSession, data)
        elif isinstance(data, pd.DataFrame):
            session = _session(spark, "a pandas DataFrame")
            numbered = data.assign(**{_ROW: np.arange(len(data), dtype=np.int64)})
            source = cls._view(session, _from_pandas(session, numbered))
            source.columns.remove(_ROW)
            source.labels = data.index.to_numpy()
            if order is None and req.entity is not None:
                order = _ROW  # a pandas frame is ordered: its last row is the last
        elif isinstance(data, str):
            session = _session(spark, f"table {data!r}")
            source = cls._table(session, data)
        else:
            raise DataError(
                "the spark engine reads a Spark DataFrame, a table name in the given "
                f"SparkSession or a pandas DataFrame, not {type(data).__name__}"
            )
        if order is not None:
            if order not in source.columns and order != _ROW:
                source.close()
                raise DataError(f"order column {order!r} is not in the data")
            source.order = b.col(order)
        return source

    @classmethod
    def _view(cls, session: Any, frame: Any) -> _Source:
        names = [str(c) for c in frame.columns]
        if len(set(names)) != len(names):
            raise DataError("the DataFrame has duplicate column names")
        view = f"kpi_input_{uuid.uuid4().hex[:12]}"
        frame.createOrReplaceTempView(view)
        return cls(session, exp.to_table(view), names, view=view)

    @classmethod
    def _table(cls, session: Any, name: str) -> _Source:
        if not name.strip():
            raise DataError("give the table to read, e.g. analytics.mrr")
        try:
            table = exp.to_table(name, dialect="spark")
            columns = [str(c) for c in session.table(table.sql("spark")).columns]
        except Exception as e:  # pyspark's AnalysisException, sqlglot's ParseError
            raise DataError(f"cannot read table {name!r}: {_first_line(e)}") from None
        return cls(session, table, columns)

    def query(self, select: exp.Expression) -> pd.DataFrame:
        """Run a statement; timestamps come back as Spark writes them in the session's time
        zone (pyspark would shift them to the Python process's local time)."""
        frame = _run(self.session, select.sql("spark"))
        stamps = [f.name for f in frame.schema.fields if _is_timestamp(f.dataType)]
        if stamps:
            from pyspark.sql import functions as F

            frame = frame.select(
                *[
                    F.col(c).cast("string").alias(c) if c in stamps else F.col(c)
                    for c in frame.columns
                ]
            )
        rows = _collect(frame)
        out = pd.DataFrame.from_records([tuple(r) for r in rows], columns=frame.columns)
        for name in stamps:
            out[name] = pd.to_datetime(out[name])
        return out

    def close(self) -> None:
        if self.view is not None:
            self.session.catalog.dropTempView(self.view)
            self.view = None


def _session(spark: Any, what: str) -> Any:
    if spark is not None:
        return spark
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise KPIError("the spark engine needs pyspark: pip install pyspark") from None
    active = SparkSession.getActiveSession()
    if active is None:
        raise DataError(f"give the SparkSession to read {what} in: spark=session")
    return active


def _from_pandas(session: Any, frame: pd.DataFrame) -> Any:
    """A Spark DataFrame with the pandas frame's rows: NaN and NaT become NULL, naive
    datetimes TIMESTAMP_NTZ (no time zone to shift them)."""
    from pyspark.sql import types as T

    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise DataError("the DataFrame has duplicate column names")
    fields, columns = [], []
    for name, col in zip(names, frame.columns):
        series = frame[col]
        if isinstance(series.dtype, pd.PeriodDtype):
            series = series.astype(str)
        if pd.api.types.is_bool_dtype(series.dtype):
            kind, values = T.BooleanType(), series.tolist()
        elif pd.api.types.is_integer_dtype(series.dtype):
            kind, values = T.LongType(), series.tolist()
        elif pd.api.types.is_float_dtype(series.dtype):
            kind, values = T.DoubleType(), series.tolist()
        elif pd.api.types.is_datetime64_any_dtype(series.dtype):
            if isinstance(series.dtype, pd.DatetimeTZDtype):
                series = series.dt.tz_localize(None)  # local wall time, as the pandas engine
            kind = T.TimestampNTZType()
            values = [None if pd.isna(v) else v.to_pydatetime() for v in series]
        else:
            kind, values = T.StringType(), [None if _missing(v) else str(v) for v in series]
        values = [None if _missing(v) else v for v in values]
        fields.append(T.StructField(name, kind, True))
        columns.append(values)
    rows = list(zip(*columns)) if columns else []
    return session.createDataFrame(rows, T.StructType(fields))


def _missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def _is_timestamp(kind: Any) -> bool:
    return type(kind).__name__ in ("TimestampType", "TimestampNTZType")


def _run(session: Any, sql: str) -> Any:
    try:
        return session.sql(sql)
    except Exception as e:
        raise _error(e) from None


def _collect(frame: Any) -> list:
    try:
        return frame.collect()
    except Exception as e:
        raise _error(e) from None


def _error(e: Exception) -> KPIError:
    """Spark's errors as the engine's: bad values in the data are the data's fault."""
    condition = getattr(e, "getCondition", None) or getattr(e, "getErrorClass", None)
    name = condition() if callable(condition) else None
    message = _first_line(e)
    if name and name.startswith(("CAST_INVALID_INPUT", "CAST_OVERFLOW")):
        return DataError(f"a column could not be read as numbers or periods: {message}")
    return KPIError(f"Spark could not run the query: {message}")


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
