"""What the SQL engines share around the compiled statement: reading the period format from
the data, checking the rows the pandas engine checks, and shaping the result into the pandas
engine's frame. A source is anything with ``query(select) -> DataFrame``, ``table``,
``columns``, ``order``, ``freq`` and ``labels`` (the DuckDB engine's ``_Input``, the Spark
engine's ``_Source``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import sqlglot
from sqlglot import exp

from .. import periods as pandas_periods
from ..errors import CellError
from ..request import Request, gap_warnings, used_datapoints
from . import sqlbuild as b
from .checks import in_entities_outside
from .compiler import compile_tree
from .spec import PeriodFormat, infer_period_format

#: a DataFrame's row numbers, added as a column: what its rows are reported as
ROW = "_kpi_row"


def check_rows(kpis, ids, source: Any, req: Request, axis, fmt) -> list[str]:
    """The pandas engine's checks of the rows (valid ranges, rows last/first it cannot order,
    flags that exclude each other), run on the few rows that can fail them.

    DuckDB picks out those rows (outside a range; entity-periods with several differing
    values; entities with both flags set), and the pandas engine checks them, so errors and
    warnings are the same, naming the data's rows. Returns the warnings (as
    ``evaluation.check_rows``)."""
    found = _suspects(kpis, ids, source, req, fmt)
    if found is None:
        return []
    checked, wanted, where = found
    row = _row_label(source)
    keep = [req.period, req.entity, *req.by]
    columns = [c for c in dict.fromkeys([*keep, *sorted(wanted)]) if c is not None]
    select = exp.select(*[b.col(c) for c in columns], b.alias(row, "_kpi_label"))
    select = select.from_(source.table.copy()).where(b.or_(*where)).order_by(b.col("_kpi_label"))
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
    from ..evaluation import check_rows as check_pandas_rows

    return check_pandas_rows(checked, rows, req, axis)


def suspects_exist(
    kpis, ids, source: Any, req: Request, fmt, *, in_statement: bool = False
) -> exp.Expression | None:
    """Whether any row can fail the checks of ``check_rows``, as one boolean a query can carry
    (so clean data costs no query of its own); None when the KPIs check nothing.

    ``in_statement``: the boolean rides along the compiled statement, whose own ``row_checks``
    already fail on values outside a range and on flags that exclude each other (unless
    ``drop_invalid``): those are left out here, as a failed statement is checked again by
    ``check_rows`` anyway. A range per entity-period would otherwise cost a second grouping of
    every row (1.4x the statement's time on a million rows)."""
    found = _suspects(kpis, ids, source, req, fmt, errors_raised=in_statement)
    if found is None or not found[2]:
        return None
    rows = exp.select(b.num(1)).from_(source.table.copy()).where(b.or_(*found[2]))
    return exp.Exists(this=rows)


def _suspects(kpis, ids, source: Any, req: Request, fmt, errors_raised: bool = False):
    """The datapoints checked, the columns their checks read and the conditions that pick out
    the rows that can fail them; None when no datapoint used has a check. ``errors_raised``:
    leave out the ranges and exclusive flags, which the statement's row_checks raise itself
    (unless drop_invalid); rows last/first cannot order may end in a warning, so they stay."""
    statement_raises = errors_raised and not req.drop_invalid
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
        return None
    wanted: set[str] = set()
    where: list[exp.Expression] = []
    for name, spec in checked.items():
        col = req.columns.get(name, name)
        wanted.add(col)
        value = b.col(col)
        ranged = spec.minimum is not None or spec.maximum is not None
        if ranged and not statement_raises and spec.checks_cells and req.entity is not None:
            keys = _cell_key(req, fmt) if req.period is not None else [b.col(req.entity)]
            where.append(in_entities_outside(source.table, keys, req.entity, col, spec))
        elif ranged and not statement_raises:
            if spec.minimum is not None:
                where.append(b.binary(exp.LT, value.copy(), b.num(spec.minimum)))
            if spec.maximum is not None:
                where.append(b.binary(exp.GT, value.copy(), b.num(spec.maximum)))
        if spec.rows in ("last", "first") and req.entity is not None:
            order = req.columns.get(spec.order_by, spec.order_by) if spec.order_by else None
            if order in source.columns:
                wanted.add(order)
            where.append(_in_cells_with_several_values(source, req, fmt, col))
        for other in [] if statement_raises else spec.excludes:
            other_col = req.columns.get(other, other)
            if other_col in source.columns:
                wanted.add(other_col)
                where.append(_in_entities_with_both(source, req, col, other_col))
    return checked, wanted, where


def _row_label(source: Any) -> exp.Expression:
    """Each row's number as the pandas engine reports it (a CSV or Parquet file's data row
    from 0; a DataFrame's position, turned into its index label after the query)."""
    if source.labels is not None:
        return b.col(ROW)
    if isinstance(source.order, exp.Column):
        return source.order.copy()
    number = exp.Window(this=exp.RowNumber())
    return b.binary(exp.Sub, number, b.num(1))


def _cell_key(req: Request, fmt) -> list[exp.Expression]:
    period = b.col(req.period)
    if fmt is not None and fmt.kind not in ("mapping",):
        period = b.base_ordinal(b.col(req.period), fmt)
    return [b.col(req.entity), period]


def _in_cells_with_several_values(source: Any, req: Request, fmt, col: str) -> exp.Expression:
    """The row is in an entity-period where the column has different values."""
    keys = _cell_key(req, fmt) if req.period is not None else [b.col(req.entity)]
    inner = (
        exp.select(*[k.copy() for k in keys])
        .from_(source.table.copy())
        .group_by(*[k.copy() for k in keys])
        .having(b.binary(exp.NEQ, exp.Min(this=b.col(col)), exp.Max(this=b.col(col))))
    )
    return exp.In(this=exp.Tuple(expressions=keys), query=exp.Subquery(this=inner))


def _in_entities_with_both(source: Any, req: Request, col: str, other: str) -> exp.Expression:
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


def infer_periods(source: Any, req: Request):
    """The period axis and format, found the way the pandas engine finds them (from the
    distinct values), in a query of their own; an entity column empty in some rows is refused."""
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
        raise CellError(req.entity, None, None, "empty", "entity")  # DuckDB saw no row labels
    if req.period is None:
        return None, None
    values = found["p"]
    if values.isna().any():
        raise CellError(req.period, None, None, "empty", "period")
    return periods_from_values(source, req, values)


def periods_from_values(source: Any, req: Request, values: pd.Series):
    """The period axis and format from the column's distinct values (none missing), as
    ``infer_periods`` reads them; may query whether daily rows are monthly ones."""
    if source.freq is not None:
        ordinals = values.to_numpy(dtype=np.int64)
        series = pd.Series(pd.PeriodIndex.from_ordinals(ordinals, freq=source.freq))
        axis = pandas_periods.parse(series, req.period)
        return axis, PeriodFormat("ordinal", axis.base, "text")
    axis, fmt = infer_period_format(values, req.period, req.date_format)
    months = monthly_rows_axis(source, req, axis, fmt)
    if months is not None:
        if fmt.kind == "date":
            return months, PeriodFormat("date", "M", fmt.labels)
        texts = [v if isinstance(v, str) else str(v) for v in values]
        ordinals = months.codes + months.first
        return months, PeriodFormat("mapping", "M", "text", tuple(zip(texts, map(int, ordinals))))
    return axis, fmt


def monthly_rows_axis(source: Any, req: Request, axis, fmt: PeriodFormat):
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


def shape(result: pd.DataFrame, ids, req: Request, axis, fmt, source: Any) -> pd.DataFrame:
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


def compile_source(
    kpis, ids, source, req: Request, dialect: str, fmt, layout: str
) -> exp.Expression:
    """The statement for these KPIs on an engine's source (its table, ordering column and
    columns), in its period format: what the DuckDB and Spark engines run."""
    return compile_tree(
        kpis,
        list(ids),
        source.table.copy(),
        req,
        dialect,
        period_type=fmt,
        order=source.order,
        columns=source.columns,
        layout=layout,
    )
