"""Evaluating bound formulas on pandas data.

The engine never runs Python code from a definition: it walks the formula AST and applies
numpy operations. Data is first arranged as *cells*:

* with an ``entity`` column, a dense entity x period grid, so a customer that vanished from an
  export is still there (as 0 or missing, as its datapoint declares), ``previous()`` is a shift
  along the period axis, and ``ever_before()`` a running "any" along it;
* without one, each row is a cell of its own.

Where an entity has several rows in a period (invoice lines), a summed datapoint adds them and
rounds the sum to the decimal total they add up to (:func:`round_sums`): 0.1 + 0.2 is 0.3, so
float noise makes no movement, and the SQL engine gets the same double.

Row-level nodes evaluate to one value per cell; aggregates reduce cells to a (group x period)
array. Every node's result is cached by its structure, so sub-expressions shared between KPIs
(``previous(revenue)`` appears in most of the revenue family) are computed once per call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import periods
from .arithmetic import SCALAR_FUNCS, binary, divide, round_sums
from .errors import (
    CellError,
    ColumnNotGivenError,
    ContradictoryRowsError,
    DataError,
    InvalidCellsError,
    InvalidRowsError,
    KPIError,
    UnknownKPIError,
    UnorderedRowsError,
)
from .formula import (
    AGGREGATES,
    CALENDAR_FUNCTIONS,
    Binary,
    Call,
    Name,
    Node,
    Number,
    Unary,
    gap_depth,
)
from .formula.dispatch import each, function_table, method_table
from .model import KPI, Datapoint
from .request import (
    Request,
    average_needs_entity,
    calendar_needs_period,
    check_columns,
    check_grain,
    check_request,
    distinct_needs_entity,
    gap_warnings,
    grain_name,
    missing_datapoint,
    needs_period,
)

# --------------------------------------------------------------------------------------
# Public entry point


def evaluate_many(
    kpis: Mapping[str, KPI],
    ids: Sequence[str],
    data: pd.DataFrame | Mapping[str, Any],
    request: Request,
) -> pd.DataFrame | dict[str, float]:
    """Evaluate several KPIs on one data set; shared work is done once."""
    result = compute(kpis, ids, data, request)
    return result.to_frame() if isinstance(result, Table) else result


def compute(
    kpis: Mapping[str, KPI],
    ids: Sequence[str],
    data: pd.DataFrame | Rows | Mapping[str, Any],
    request: Request,
) -> Table | dict[str, float]:
    """``evaluate_many`` without building a DataFrame at either end.

    Checking the worked examples of a large library evaluates thousands of six-row tables,
    where pandas' fixed costs (building frames, factorizing, inferring string dtypes) were
    most of the time; those callers pass :class:`Rows` and read a :class:`Table`.
    """
    for kpi_id in ids:
        if kpi_id not in kpis:
            raise UnknownKPIError(kpi_id, kpis)
    scalar = isinstance(data, Mapping)
    source = _scalar_rows(data, request) if scalar else data
    if not isinstance(source, pd.DataFrame | Rows):
        raise DataError(f"data must be a pandas DataFrame or a mapping, not {type(data).__name__}")
    engine = _Engine(kpis, _Source(source), request, scalar)
    values = {kpi_id: engine.kpi(kpi_id) for kpi_id in ids}
    if scalar:
        return {k: _scalar(v) for k, v in values.items()}
    return engine.result_table(values)


def check_rows(
    specs: Mapping[str, Datapoint], rows: pd.DataFrame, req: Request, axis: Any = None
) -> list[str]:
    """The checks the engine makes while reading datapoints (valid ranges, rows it cannot
    order, flags that exclude each other), on ``rows`` alone: raises their errors and returns
    their warnings (what ``drop_invalid`` left out; a ``rows: last``/``first`` datapoint
    without ``order_by`` whose rows of one entity-period differ, where the data's row order
    chose). The DuckDB engine runs it on the rows that can fail them."""
    columns = {k: v for k, v in req.columns.items() if v in rows.columns}
    sub = Request(req.period, req.entity, list(req.by), req.grain, columns, req.drop_invalid)
    engine = _Engine({}, _Source(rows), sub)
    engine._datapoint_specs.update(specs)
    for name in specs:
        if engine._column(name) is not None:
            engine.datapoint(name)
    return list(dict.fromkeys(engine.notes))


class Rows:
    """Row data given column by column as plain lists, e.g. a worked example's ``data:``.

    Read without pandas where the values allow it (text months, string or integer ids, plain
    numbers); anything else goes through the same pandas code as a DataFrame would.
    """

    def __init__(self, columns: Mapping[str, list]):
        self.columns = dict(columns)
        lengths = {len(v) for v in self.columns.values()}
        if len(lengths) > 1:
            raise DataError("every column of the data must have the same number of rows")
        self.n_rows = lengths.pop() if lengths else 0

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns)


@dataclass
class Table:
    """An evaluation result before it becomes a DataFrame: the columns, in order."""

    columns: dict[str, Any]  # name -> numpy array or pandas Index, one value per row
    undefined: dict[str, int]  # KPI id -> number of missing (NaN) results
    warnings: list[str]
    partial_periods: list = field(default_factory=list)  # periods the data covers in part

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.columns)
        frame.attrs["undefined"] = self.undefined
        frame.attrs["warnings"] = self.warnings
        frame.attrs["partial_periods"] = self.partial_periods
        return frame


def _scalar(v: np.ndarray) -> float:
    return float(v.reshape(-1)[0]) if v.size else float("nan")


def _scalar_rows(data: Mapping[str, Any], request: Request) -> Rows:
    if request.period or request.entity or request.by:
        raise DataError("period, entity and by need a DataFrame, not a mapping of scalars")
    row = {}
    for key, value in data.items():
        if value is None:
            value = float("nan")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise DataError(f"input {key!r} must be a number, got {value!r}")
        row[key] = [float(value)]
    return Rows(row)


class _Source:
    """The columns the engine reads: a DataFrame's, or plain lists (:class:`Rows`)."""

    def __init__(self, data: pd.DataFrame | Rows):
        if isinstance(data, pd.DataFrame):
            self.frame: pd.DataFrame | None = data
            self.lists: dict[str, list] | None = None
            self.columns: Collection[Any] = data.columns
            self.n_rows = len(data)
        else:
            self.frame, self.lists = None, data.columns
            self.columns, self.n_rows = data.columns, data.n_rows

    def series(self, col: str) -> pd.Series:
        if self.frame is not None:
            return self.frame[col]
        return pd.Series(self.lists[col])  # the dtype pandas would infer in a DataFrame

    def sub_frame(self, cols: list[str]) -> pd.DataFrame:
        if self.frame is not None:
            return self.frame[cols]
        return pd.DataFrame({c: self.lists[c] for c in cols})

    def plain(self, col: str) -> list | None:
        """The column as a Python list, when the data came as lists."""
        return None if self.lists is None else self.lists[col]

    def index(self) -> pd.Index:
        return self.frame.index if self.frame is not None else pd.RangeIndex(self.n_rows)


# --------------------------------------------------------------------------------------
# Cells: the layout every row-level value shares


# Cells per entity block when an aggregate is evaluated block by block: 128k cells keep a
# float column at 1 MB, so the dozen arrays a formula makes stay in the CPU cache.
BLOCK_CELLS = 1 << 17

# Where a node is evaluated: once per (group, period); per cell of the entity x period grid
# (or per row without an entity); per entity x base period, for ever_before() at a coarser grain.
_PERIOD, _CELL, _BASE = 0, 1, 2


@dataclass
class _Layout:
    n_periods: int  # output periods (after coarsening)
    n_groups: int
    grid: bool  # entity x period grid (True) or one cell per row (False)
    n_entities: int = 0
    cell_group: np.ndarray | None = None  # int per cell, None when there is one group
    keep: np.ndarray | None = None  # bool per (group, period): does the pair have cells


class _Engine:
    def __init__(
        self, kpis: Mapping[str, KPI], source: _Source, req: Request, scalar: bool = False
    ):
        self.kpis = kpis
        self.source = source
        self.req = req
        self.scalar = scalar  # the data was a mapping of numbers
        self.cache: dict[Node, Any] = {}
        self.kpi_values: dict[str, np.ndarray] = {}
        self.in_progress: list[str] = []
        self._datapoint_specs: dict[str, Datapoint] = {}
        self._base_grids: dict[str, np.ndarray] = {}
        self._known_cells: dict[str, np.ndarray] = {}  # event/latest, missing: zero
        self._checked: dict[str, np.ndarray] = {}  # datapoint values, valid ranges checked
        self._multi_row_cells: np.ndarray | None = None
        self.notes: list[str] = []  # warnings found while reading the data
        self._exclusions_checked: set[tuple[str, str]] = set()
        self._entity_labels: list | None = None
        self._cell_key: np.ndarray | None = None  # (group, period) key per cell
        # the same keys in the smallest integer type, made with the groups, read by blocks
        self._block_keys: np.ndarray | None = None
        self._key_counts: np.ndarray | None = None  # cells per key, when made with the keys
        # While an aggregate is evaluated entity block by entity block (see _blocked_sum):
        # the block's first and last entity + 1 and its cell values by node. Datapoints are
        # read in full, once (blocks slice them).
        self._block: tuple[int, int] | None = None
        self._block_cache: dict[Any, Any] = {}
        self._full_datapoints: dict[tuple[str, bool], np.ndarray] = {}
        self._dropped_cells: dict[str, list[np.ndarray]] = {}  # contradictory cells left out
        check_request(req)
        check_columns(req, source.columns)
        self._build_layout()

    # -- input checks and layout ---------------------------------------------------------
    def _column(self, name: str) -> str | None:
        """The data column a datapoint or KPI id reads from, if the data has one."""
        col = self.req.columns.get(name, name)
        return col if col in self.source.columns else None

    def _entity_codes(self) -> np.ndarray | None:
        """A code per row for the entity column, if the request names one the data has."""
        entity = self.req.entity
        if entity is None or entity not in self.source.columns:
            return None
        return _entity_codes(self.source.series(entity), entity)[0]

    def _build_layout(self) -> None:
        source, req = self.source, self.req
        n_rows = source.n_rows
        if req.period is not None:
            texts = source.plain(req.period)
            axis = periods.parse_month_texts(texts) if texts is not None else None
            self.axis = axis or periods.parse(
                source.series(req.period), req.period, req.date_format
            )
            if self.axis.base == "D":  # monthly rows dated on a billing day? (periods.py)
                self.axis = periods.monthly_rows(self.axis, self._entity_codes(), req.grain) or (
                    self.axis
                )
            self.out_grain = grain = periods.grain_code(req.grain, self.axis.base)
            coarser = grain != self.axis.base and self.axis.count
            self.coarse = periods.coarsen(self.axis, grain) if coarser else None
        else:
            if req.grain is not None:
                raise DataError("grain needs a period column")
            self.axis = periods.TimeAxis(
                np.zeros(n_rows, np.int64), "M", 0, 1 if n_rows else 0, "none", np.ones(1, bool)
            )
            self.coarse = None
            self.out_grain = "M"  # no period: months_in_period() is 1
        n_base = self.axis.count
        n_out = len(self.coarse.labels) if self.coarse is not None else n_base
        self.row_base = self.axis.codes  # base period per row

        if req.by:
            gcodes, self.group_labels = self._groups()
            n_groups = len(next(iter(self.group_labels.values())))
        else:
            gcodes, n_groups = None, 1
            self.group_labels = None

        if req.entity is not None:
            ids = source.plain(req.entity)
            fast = _plain_codes(ids) if ids is not None else None
            if fast is not None:
                self.row_cell, n_ent = _cells(fast[0], n_base, self.row_base), fast[1]
            else:
                series = source.series(req.entity)
                self.row_cell, n_ent = _entity_codes(series, req.entity, n_base, self.row_base)
            self.row_count = np.bincount(self.row_cell, minlength=n_ent * n_base)
            self.unique_cells = bool(self.row_count.max(initial=0) <= 1)
            present = self.row_count.reshape(n_ent, n_base) > 0
            layout = _Layout(n_out, n_groups, True, n_ent)
            if gcodes is not None:
                layout.cell_group = self._carry_groups(gcodes, present, n_ent, n_base)
        else:
            self.row_cell = None
            layout = _Layout(n_out, n_groups, False)
            layout.cell_group = gcodes
        self.layout = layout
        self.n_base = n_base
        self._cell_period = None
        self._cell_key = None
        layout.keep = self._count_cells() > 0

    def _groups(self) -> tuple[np.ndarray, dict[str, Any]]:
        """Group code per row (sorted like pandas' factorize(sort=True)) and the labels."""
        by = self.req.by
        keys = self.source.plain(by[0]) if len(by) == 1 else None
        if keys is not None and keys and all(k.__class__ is str for k in keys):
            labels = sorted(set(keys))
            code = {k: i for i, k in enumerate(labels)}
            gcodes = np.fromiter((code[k] for k in keys), np.int64, len(keys))
            return gcodes, {by[0]: np.array(labels, dtype=object)}
        frame = self.source.sub_frame(by)
        if len(by) == 1:
            gcodes, guniq = pd.factorize(frame.iloc[:, 0], sort=True, use_na_sentinel=False)
            labels = {by[0]: np.asarray(guniq)}
        else:
            gcodes, guniq = pd.factorize(pd.MultiIndex.from_frame(frame), sort=True)
            as_frame = pd.DataFrame(list(guniq), columns=by)
            labels = {c: as_frame[c].to_numpy() for c in by}
        return gcodes.astype(np.int64, copy=False), labels

    def _numbers(self, col: str) -> np.ndarray:
        plain = self.source.plain(col)
        if plain is not None:
            fast = _plain_numbers(plain)
            if fast is not None:
                return fast
        return _numeric(self.source.series(col), col, self.source.index())

    def _carry_groups(self, gcodes, present, n_ent, n_base) -> np.ndarray:
        """Group of each entity-period: its row's group, else the last known one (a churned
        customer stays in its last segment), else its first one."""
        if n_ent == 0 or n_base == 0:
            return np.zeros(0, dtype=np.int64)
        # if one entity-period's rows disagree, the largest group wins (as SQL's MAX), a
        # missing group only where no row has one: never the row order. The grid in the
        # smallest integer type, so that scattering millions of rows into it stays in cache.
        null_group = self._null_groups()
        dtype = np.min_scalar_type(-len(null_group))
        codes = gcodes.astype(dtype)
        grid = np.full(n_ent * n_base, -1, dtype=dtype)
        null = null_group[gcodes] if null_group.any() else None
        if null is not None and null.any():
            np.maximum.at(grid, self.row_cell[null], codes[null])
            known = np.full(n_ent * n_base, -1, dtype=dtype)
            np.maximum.at(known, self.row_cell[~null], codes[~null])
            grid = np.where(known >= 0, known, grid)
        else:
            grid[self.row_cell] = codes  # the rows of a cell mostly agree: a plain store,
            clash = grid[self.row_cell] != codes  # then the largest where they do not
            if clash.any():
                cells = self.row_cell[clash]
                grid[cells] = -1
                in_clash = np.zeros(len(grid), dtype=bool)
                in_clash[cells] = True
                rows = in_clash[self.row_cell]
                np.maximum.at(grid, self.row_cell[rows], codes[rows])
        n_out = len(self.coarse.labels) if self.coarse is not None else n_base
        out = np.empty(n_ent * n_out, dtype=np.int64)
        # the (group, period) key of every cell and the cells per key, made here block by
        # block rather than from the whole grid again
        n_keys = len(null_group) * n_out
        self._block_keys = np.empty(n_ent * n_out, dtype=np.min_scalar_type(-n_keys))
        self._key_counts = np.zeros(n_keys, dtype=np.int64)
        per_block = max(1, BLOCK_CELLS // n_base)
        for first in range(0, n_ent, per_block):  # blocks of entities, to stay in cache
            stop = min(first + per_block, n_ent)
            seen = present[first:stop]
            size = seen.size
            # the last cell at or before each one that has rows, if it is the same entity's;
            # else the entity's first cell with rows
            last = np.maximum.accumulate(np.where(seen.reshape(-1), np.arange(size), -1))
            row_start = np.repeat(np.arange(0, size, n_base), n_base)
            first_seen = np.repeat(np.argmax(seen, axis=1) + np.arange(0, size, n_base), n_base)
            cell = np.where(last >= row_start, last, first_seen)
            carried = grid[first * n_base : stop * n_base][cell].astype(np.int64)
            carried = carried.reshape(stop - first, n_base)
            if self.coarse is not None:
                carried = carried[:, self.coarse.last_base]
            key = carried * n_out + np.arange(n_out)
            out[first * n_out : stop * n_out] = carried.reshape(-1)
            self._block_keys[first * n_out : stop * n_out] = key.reshape(-1)
            self._key_counts += np.bincount(key.reshape(-1), minlength=n_keys)
        return out

    def _null_groups(self) -> np.ndarray:
        """bool per group code: a group whose label (any of its columns) is missing."""
        columns = list(self.group_labels.values())
        out = np.zeros(len(columns[0]), dtype=bool)
        for labels in columns:
            out |= pd.isna(pd.Series(labels)).to_numpy()
        return out

    @property
    def n_entities(self) -> int:
        """Entities of the grid, or of the block being evaluated."""
        if self._block is not None:
            return self._block[1] - self._block[0]
        return self.layout.n_entities

    @property
    def n_cells(self) -> int:
        lay = self.layout
        return self.n_entities * lay.n_periods if lay.grid else self.source.n_rows

    def cell_period(self) -> np.ndarray:
        if self._block is not None:
            return np.tile(np.arange(self.layout.n_periods), self.n_entities)
        if self._cell_period is None:
            lay = self.layout
            if lay.grid:
                self._cell_period = np.tile(np.arange(lay.n_periods), lay.n_entities)
            else:
                base = self.row_base
                self._cell_period = self.coarse.to_coarse[base] if self.coarse is not None else base
        return self._cell_period

    def cell_key(self) -> np.ndarray:
        if self._block is not None:
            lay = self.layout
            start, stop = (e * lay.n_periods for e in self._block)
            if lay.cell_group is None:
                return self.cell_period()
            if self._block_keys is not None:
                return self._block_keys[start:stop]
            return lay.cell_group[start:stop] * lay.n_periods + self.cell_period()
        if self._cell_key is None:
            lay = self.layout
            period = self.cell_period()
            self._cell_key = (
                period if lay.cell_group is None else lay.cell_group * lay.n_periods + period
            )
        return self._cell_key

    def _count_cells(self) -> np.ndarray:
        lay = self.layout
        if lay.grid and lay.cell_group is None:
            return np.full((1, lay.n_periods), lay.n_entities, dtype=np.int64)
        if self._key_counts is not None:
            return self._key_counts.reshape(lay.n_groups, lay.n_periods)
        counts = np.bincount(self.cell_key(), minlength=lay.n_groups * lay.n_periods)
        return counts.reshape(lay.n_groups, lay.n_periods)

    # -- datapoints ---------------------------------------------------------------------
    def datapoint(self, name: str, base: bool = False) -> np.ndarray:
        """A datapoint per cell; ``base``: per entity x base period even at a coarser grain."""
        # read in full once (checks, warnings, cells left out), whether by a block or not:
        # reading it again would not know what the first reading dropped
        key = (name, base)
        if key not in self._full_datapoints:
            block, self._block = self._block, None
            try:
                self._full_datapoints[key] = self._read_datapoint(name, base)
            finally:
                self._block = block
        values = self._full_datapoints[key]
        if self._block is None:
            return values
        width = self.n_base if base else self.layout.n_periods
        start, stop = self._block
        return values[start * width : stop * width]

    def _read_datapoint(self, name: str, base: bool) -> np.ndarray:
        spec = self._datapoint_specs.get(name, Datapoint(name))
        col = self._column(name)
        if col is None:
            raise missing_datapoint(name, self.req, self.source.columns)
        lay = self.layout
        if not lay.grid:
            if spec.rows == "distinct":
                raise distinct_needs_entity(name)
            if self.coarse is not None and spec.coarsening == "average" and spec.missing != "zero":
                raise average_needs_entity(name, grain_name(self.out_grain))
            values = self._checked_numbers(name, col, spec)
            if self.coarse is not None:
                values = self._coarse_rows(values, spec.coarsening)
            if (spec.excludes or name in self._dropped_cells) and not base:
                values = self._exclusive(name, spec, values)
            return values
        grid = self._base_grid(name, col, spec)
        if self.coarse is not None and not base and spec.coarsening == "distinct":
            # counted again over all the rows of the coarse period, not added up
            n_out = len(self.coarse.labels)
            entity, period = self.row_cell // self.n_base, self.row_cell % self.n_base
            cells = entity * n_out + self.coarse.to_coarse[period]
            fill = 0.0 if spec.missing == "zero" else np.nan
            values = self._checked_numbers(name, col, spec)
            grid = self._distinct_rows(values, cells, lay.n_entities * n_out, fill)
        elif self.coarse is not None and not base:
            known = self._known_cells.get(name)
            if known is not None:  # months without a value are no month here; then 0
                grid = np.where(known, grid, np.nan)
            grid = _coarsen_grid(grid, spec.coarsening, self.coarse)
            if known is not None:
                grid = np.where(np.isnan(grid), 0.0, grid)
        values = grid.reshape(-1)
        if (spec.excludes or name in self._dropped_cells) and not base:
            values = self._exclusive(name, spec, values)
        return values

    def _exclusive(self, name: str, spec: Datapoint, values: np.ndarray) -> np.ndarray:
        """Cells where this flag and one it excludes are both set (a deal won and lost):
        reported with their rows, or, when asked, left out of both with a warning."""
        for other in spec.excludes:
            if (name, other) in self._exclusions_checked or self._column(other) is None:
                continue
            self._exclusions_checked.add((name, other))
            self._datapoint_specs.setdefault(
                other, Datapoint(other, rows=spec.rows, time=spec.time)
            )
            other_values = self._read_datapoint(other, False)  # not kept: drops to come
            with np.errstate(invalid="ignore"):
                clash = np.flatnonzero((values > 0) & (other_values > 0))
            if not clash.size:
                continue
            labels = self.coarse.labels if self.coarse is not None else self.axis.labels()
            first = self._first_cell(clash, self.layout.n_periods)
            period = str(labels[int(self.cell_period()[first])])
            if self.layout.grid:
                rows = self._rows_of_cells(np.array([first]), [name, other])
                entity = self._entity_label(first // self.layout.n_periods)
            else:  # each row is a cell
                rows, entity = [_label(self.source.index()[first])], None
            error = ContradictoryRowsError(name, other, entity, period, rows, int(clash.size))
            if not self.req.drop_invalid:
                raise error
            self.notes.append(error.render(dropped=True))
            values = values.copy()
            values[clash] = np.nan
            self._dropped_cells.setdefault(other, []).append(clash)
        for cells in self._dropped_cells.get(name, []):
            values = values.copy()
            values[cells] = np.nan
        return values

    def _rows_of_cells(self, cells: np.ndarray, names: list[str]) -> list:
        """The rows (labels) of the first of ``cells`` (output cells of the entity grid)
        that set any of the flags ``names``."""
        n_base, n_out = self.n_base, self.layout.n_periods
        entity, base = self.row_cell // n_base, self.row_cell % n_base
        out_period = self.coarse.to_coarse[base] if self.coarse is not None else base
        in_cell = entity * n_out + out_period == cells[0]
        setting = np.zeros(len(in_cell), dtype=bool)
        for flag in names:
            col = self._column(flag)
            with np.errstate(invalid="ignore"):
                setting |= self._numbers(col) > 0
        return _sorted_labels([_label(v) for v in self.source.index()[in_cell & setting]])

    def _coarse_rows(self, values: np.ndarray, rule: str) -> np.ndarray:
        """Without an entity each row is a cell: a closing (opening) balance counts only in
        the coarse period's last (first) base period, the latest in the last base period
        with a known value; an average balance is a row's share of the months (right for
        sum()); flows and events count as they are (an event cannot be told apart from
        another entity's without an entity column)."""
        coarse = self.coarse
        period = coarse.to_coarse[self.row_base]
        if rule == "closing":
            return np.where(self.row_base == coarse.last_base[period], values, np.nan)
        if rule == "opening":
            return np.where(self.row_base == coarse.first_base[period], values, np.nan)
        if rule == "average":
            months = (coarse.last_base - coarse.first_base + 1).astype(float)
            return values / months[period]
        if rule == "latest":
            latest = np.full(len(coarse.labels), -1, dtype=np.int64)
            known = ~np.isnan(values)
            np.maximum.at(latest, period[known], self.row_base[known])
            return np.where(self.row_base == latest[period], values, np.nan)
        return values

    def _base_grid(self, name: str, col: str, spec: Datapoint) -> np.ndarray:
        """The datapoint per entity x base period, its rows combined by its rule: computed
        once, whether it is then read per base period, per coarse period or both."""
        if name not in self._base_grids:
            n_ent, n_base = self.layout.n_entities, self.n_base
            fill = 0.0 if spec.missing == "zero" else np.nan
            values = self._checked_numbers(name, col, spec)
            if spec.rows in ("last", "first"):
                grid = self._ordered_rows(name, values, spec, n_ent * n_base, fill)
            elif spec.rows == "distinct":
                grid = self._distinct_rows(values, self.row_cell, n_ent * n_base, fill)
            else:
                grid = self._combine_rows(values, spec.rows, n_ent * n_base, fill)
            if spec.checks_cells:
                grid = self._check_cells(name, col, spec, grid, fill)
            self._base_grids[name] = grid.reshape(n_ent, n_base)
            if spec.coarsening in ("event", "latest") and spec.missing == "zero":
                # these rules read the months that have a value, as SQL reads the cells
                known = np.bincount(self.row_cell[~np.isnan(values)], minlength=n_ent * n_base)
                self._known_cells[name] = known.reshape(n_ent, n_base) > 0
        return self._base_grids[name]

    @staticmethod
    def _distinct_rows(values: np.ndarray, cells: np.ndarray, n: int, fill: float) -> np.ndarray:
        """rows: distinct: the number of different known values among each cell's rows."""
        known = ~np.isnan(values)
        pairs = pd.DataFrame({"cell": cells[known], "value": values[known]}).drop_duplicates()
        out = np.full(n, fill)
        counts = np.bincount(pairs["cell"].to_numpy(), minlength=n)
        out[counts > 0] = counts[counts > 0]
        return out

    def _checked_numbers(self, name: str, col: str, spec: Datapoint) -> np.ndarray:
        """A datapoint's column as numbers, its values outside ``valid`` reported (or, when
        the request says so, left out with a warning)."""
        if name in self._checked:
            return self._checked[name]
        self._checked[name] = values = self._check_range(name, col, spec)
        return values

    def _check_range(self, name: str, col: str, spec: Datapoint) -> np.ndarray:
        values = self._numbers(col)
        if spec.minimum is None and spec.maximum is None:
            return values
        if spec.checks_cells and self.layout.grid:  # checked once the rows combine
            return values
        with np.errstate(invalid="ignore"):
            low = values < spec.minimum if spec.minimum is not None else False
            high = values > spec.maximum if spec.maximum is not None else False
        bad = np.flatnonzero(low | high)
        if bad.size:
            rows = [_label(v) for v in self.source.index()[bad]]
            shown = [float(v) for v in values[bad]]
            error = InvalidRowsError(name, col, rows, shown, spec.minimum, spec.maximum)
            if not self.req.drop_invalid:
                raise error
            self.notes.append(error.render(dropped=True))
            values = values.copy()
            values[bad] = np.nan
        return values

    def _check_cells(
        self, name: str, col: str, spec: Datapoint, grid: np.ndarray, fill: float
    ) -> np.ndarray:
        """``valid: {per: entity_period}``: entity-periods whose combined value (a customer's
        MRR in a month, summed from invoice lines with credits) is outside the range, reported
        naming the entity, the period and their rows; or, when asked, read as if the entity
        had no rows there (its ``missing`` rule), with a warning."""
        with np.errstate(invalid="ignore"):
            low = grid < spec.minimum if spec.minimum is not None else False
            high = grid > spec.maximum if spec.maximum is not None else False
        bad = np.flatnonzero(low | high)
        if not bad.size:
            return grid
        # (period, entity) of each, to report them in period then entity order
        keys = [(int(c % self.n_base), self._entity_label(int(c // self.n_base))) for c in bad]
        try:
            order = sorted(range(len(bad)), key=keys.__getitem__)
        except TypeError:  # entity labels of mixed types
            order = sorted(range(len(bad)), key=lambda i: (keys[i][0], str(keys[i][1])))
        bad = bad[order]
        labels = self.axis.labels()
        cells = [(keys[i][1], str(labels[keys[i][0]])) for i in order]
        first_rows = np.flatnonzero(self.row_cell == bad[0])
        rows = _sorted_labels([_label(v) for v in self.source.index()[first_rows]])
        shown = [float(v) for v in grid[bad]]
        error = InvalidCellsError(name, col, cells, rows, shown, spec.minimum, spec.maximum)
        if not self.req.drop_invalid:
            raise error
        self.notes.append(error.render(dropped=True))
        grid = grid.copy()
        grid[bad] = fill
        return grid

    def _ordered_rows(
        self, name: str, values: np.ndarray, spec: Datapoint, n: int, fill: float
    ) -> np.ndarray:
        """rows: last / first: each entity-period's latest (earliest) row by ``order_by``.
        Rows with no value count as no row. Several rows that the order cannot tell apart
        (no order column, or the same order value) are an error naming the entity and period,
        unless they agree."""
        cells = self.row_cell
        known = np.flatnonzero(~np.isnan(values))
        out = np.full(n, fill)
        if not known.size:
            return out
        cells_k, values_k = cells[known], values[known]
        counts = np.bincount(cells_k, minlength=n)
        if counts.max() <= 1:
            out[cells_k] = values_k
            return out
        order_col = spec.order_by and self.req.columns.get(spec.order_by, spec.order_by)
        legacy = not spec.order_by  # a definition from before order_by: the data's order
        if legacy:
            order = np.arange(len(known), dtype=float)
        elif order_col not in self.source.columns:
            order_col = None
            order = np.zeros(len(known))  # every row ties: fine only where they agree
        else:
            order = _order_values(self.source.series(order_col), order_col)[known]
        sign = 1.0 if spec.rows == "last" else -1.0
        frame = pd.DataFrame({"cell": cells_k, "order": sign * order, "value": values_k})
        top = frame.groupby("cell")["order"].transform("max")
        chosen = frame[frame["order"] == top]
        spread = chosen.groupby("cell")["value"].agg(["min", "max"])
        clash = spread.index[(spread["min"] != spread["max"]).to_numpy()]
        if len(clash):
            cell = self._first_cell(clash.to_numpy(), self.n_base)
            self._raise_unordered(name, spec, order_col, cell, chosen, known)
        picked = chosen.groupby("cell")["value"].first()
        out[picked.index.to_numpy()] = picked.to_numpy()
        if legacy:
            self._note_data_order(name, spec, frame, known)
        return out

    def _note_data_order(self, name: str, spec: Datapoint, frame: pd.DataFrame, known) -> None:
        """A rows: last/first datapoint without order_by chose among different values by the
        data's row order: say where, so the user can name the column that orders them."""
        spread = frame.groupby("cell")["value"].agg(["min", "max"])
        differing = spread.index[(spread["min"] != spread["max"]).to_numpy()]
        if not len(differing):
            return
        cell = self._first_cell(differing.to_numpy(), self.n_base)
        rows = frame.index.to_numpy()[frame["cell"].to_numpy() == cell]
        labels = _sorted_labels([_label(v) for v in self.source.index()[known[rows]]])
        entity = self._entity_label(cell // self.n_base)
        period = str(self.axis.labels()[cell % self.n_base])
        more = f" (and {len(differing) - 1} more entity-periods)" if len(differing) > 1 else ""
        self.notes.append(
            f"datapoint {name!r} (rows: {spec.rows}) has different values for entity "
            f"{entity!r} in {period} (rows {', '.join(map(str, labels))}){more} and its "
            "definition names no order_by column: the row that comes "
            f"{'last' if spec.rows == 'last' else 'first'} in the data was used, so the "
            "result depends on the row order; name the column that orders them (order_by)"
        )

    def _raise_unordered(self, name, spec, order_col, cell, chosen, known) -> None:
        tied = chosen.index.to_numpy()[chosen["cell"].to_numpy() == cell]
        rows = _sorted_labels([_label(v) for v in self.source.index()[known[tied]]])
        entity = self._entity_label(cell // self.n_base)
        period = str(self.axis.labels()[cell % self.n_base])
        raise UnorderedRowsError(name, spec.rows, spec.order_by, order_col, entity, period, rows)

    def _first_cell(self, cells: np.ndarray, n_periods: int) -> int:
        """The cell a message names among several: the earliest period, then the smallest
        entity (or row) label, so that it does not depend on the order of the rows."""
        cells = np.asarray(cells, dtype=np.int64)
        if not self.layout.grid:  # cells are rows
            index = self.source.index()
            keys = [(int(self.cell_period()[c]), _label(index[c])) for c in cells]
        else:
            keys = [(int(c % n_periods), self._entity_label(int(c // n_periods))) for c in cells]
        try:
            return int(cells[min(range(len(keys)), key=keys.__getitem__)])
        except TypeError:  # labels of mixed types
            return int(cells[min(range(len(keys)), key=lambda i: (keys[i][0], str(keys[i][1])))])

    def _entity_label(self, code: int) -> Any:
        """The entity column's value for an entity code (for messages)."""
        if self._entity_labels is None:
            ids = self.source.plain(self.req.entity)
            series = pd.Series(ids) if ids is not None else self.source.series(self.req.entity)
            fast = _plain_codes(ids) if ids is not None else None
            codes, n = fast or _entity_codes(series, self.req.entity)
            first = np.full(n, -1, dtype=np.int64)
            first[codes[::-1]] = np.arange(len(codes))[::-1]  # each code's first row
            self._entity_labels = [_label(v) for v in series.to_numpy()[first]]
        return self._entity_labels[code]

    def _combine_rows(self, values: np.ndarray, how: str, n: int, fill: float) -> np.ndarray:
        cells = self.row_cell
        lowest = values.min() if len(values) else 0.0  # NaN if any is: one pass for both
        has_nan = bool(np.isnan(lowest))
        if has_nan:  # a missing value counts as no row for this datapoint
            ok = ~np.isnan(values)
            cells, values = cells[ok], values[ok]
            counts = np.bincount(cells, minlength=n)
            lowest = values.min() if len(values) else 0.0
        else:
            counts = self.row_count
        if self.unique_cells:  # at most one row per entity-period: nothing to combine
            out = np.full(n, fill)
            out[cells] = values
            return out
        if how in ("sum", "mean"):
            # float even with no values left (numpy counts an empty array in integers)
            out = np.bincount(cells, weights=values, minlength=n).astype(float, copy=False)
            if how == "mean":
                with np.errstate(invalid="ignore", divide="ignore"):
                    out = out / counts
            else:
                self._round_row_sums(out, cells, values, counts, has_nan, lowest < 0)
        else:
            series = pd.Series(values).groupby(cells, sort=False)
            agg = {"min": series.min, "max": series.max, "last": series.last}[how]()
            out = np.full(n, np.nan)
            out[agg.index.to_numpy()] = agg.to_numpy()
        out[counts == 0] = fill
        return out

    def _round_row_sums(self, out, cells, values, counts, has_nan: bool, negative: bool) -> None:
        """Round, in place, the sums of cells with several rows to what their rows add up to
        in decimal (see :func:`round_sums`); a cell of one row keeps its value as given."""
        if has_nan or self._multi_row_cells is None:
            multi = np.flatnonzero(counts > 1)  # sorted
            if not has_nan:  # the same cells for every datapoint read from complete columns
                self._multi_row_cells = multi
        else:
            multi = self._multi_row_cells
        if not multi.size:
            return
        total = out[multi]
        magnitude = total  # without negative rows, the sum of |rows| by the same additions
        if negative:  # the sum less twice the negative rows in each cell
            below = np.flatnonzero(values < 0)
            below_cells = cells[below]
            where = np.minimum(np.searchsorted(multi, below_cells), len(multi) - 1)
            hit = multi[where] == below_cells
            credit = np.bincount(where[hit], weights=values[below[hit]], minlength=len(multi))
            magnitude = total - 2.0 * credit
        out[multi] = round_sums(total, magnitude, counts[multi])

    # -- KPIs -----------------------------------------------------------------------------
    def kpi(self, kpi_id: str) -> np.ndarray:
        """One KPI's (group x period) values."""
        if kpi_id in self.kpi_values:
            return self.kpi_values[kpi_id]
        if kpi_id in self.in_progress:
            cycle = " -> ".join([*self.in_progress[self.in_progress.index(kpi_id) :], kpi_id])
            raise KPIError(f"formula dependency cycle: {cycle}")
        supplied = self._column(kpi_id)
        if supplied is not None:
            value = self._supplied_kpi(kpi_id, supplied)
        else:
            kpi = self.kpis[kpi_id]
            if kpi.expression is None:
                raise KPIError(f"KPI {kpi_id!r} has no valid formula")
            node = kpi.expression
            if self.req.period is not None:
                check_grain(kpi, self.out_grain, [*self.in_progress, kpi_id])
                node = kpi.expression_at(grain_name(self.out_grain))
            for name, spec in kpi.datapoints.items():
                self._datapoint_specs.setdefault(name, spec)
            self.in_progress.append(kpi_id)
            try:
                value = self.period_value(node)
            finally:
                self.in_progress.pop()
        value = np.where(np.isfinite(value), value, np.nan)
        self.kpi_values[kpi_id] = value
        return value

    def _supplied_kpi(self, kpi_id: str, col: str) -> np.ndarray:
        """A KPI given as a column of an already aggregated frame: one value per period-group."""
        values = self._numbers(col)
        lay = self.layout
        base = self.row_base
        period = self.coarse.to_coarse[base] if self.coarse is not None else base
        gcodes = lay.cell_group if not lay.grid else self._row_groups()
        key = period if gcodes is None else gcodes * lay.n_periods + period
        # the smallest and largest value of each period-group, missing values skipped
        # (ufunc.at on the dense keys: a pandas groupby costs 50x on a worked example's rows);
        # a cell with no value keeps lo = inf > hi = -inf
        size = lay.n_groups * lay.n_periods
        lo = np.full(size, np.inf)
        hi = np.full(size, -np.inf)
        np.fmin.at(lo, key, values)
        np.fmax.at(hi, key, values)
        seen = lo <= hi
        clash = seen & (lo != hi)
        if clash.any():
            k = int(np.flatnonzero(clash)[0])
            raise DataError(
                f"column {col!r} supplies KPI {kpi_id!r} but has different values within one "
                f"period and group ({lo[k]} and {hi[k]}); give one value per period"
                + (" and group" if lay.cell_group is not None else "")
            )
        out = np.where(seen, lo, np.nan)
        return out.reshape(lay.n_groups, lay.n_periods)

    def _row_groups(self) -> np.ndarray | None:
        if self.layout.cell_group is None:
            return None
        cells = self.row_cell
        n_base = self.n_base
        ent, per = cells // n_base, cells % n_base
        out_period = self.coarse.to_coarse[per] if self.coarse is not None else per
        return self.layout.cell_group[ent * self.layout.n_periods + out_period]

    # -- node evaluation ------------------------------------------------------------------
    def period_value(self, node: Node) -> np.ndarray:
        value = self._eval(node, _PERIOD)
        lay = self.layout
        return np.broadcast_to(np.asarray(value, dtype=float), (lay.n_groups, lay.n_periods)).copy()

    def _eval(self, node: Node, level: int) -> Any:
        key = (node, level)
        cache = self.cache if self._block is None else self._block_cache
        if key in cache:
            return cache[key]
        value = self._compute(node, level)
        cache[key] = value
        return value

    def _compute(self, node: Node, level: int) -> Any:
        return _NODES[type(node)](self, node, level)

    def _number(self, node: Number, level: int) -> Any:
        return node.value

    def _name(self, node: Name, level: int) -> Any:
        # Analysis guarantees datapoints appear only at row level and KPIs only above it.
        if level == _PERIOD:
            return self.kpi(node.name)
        return self.datapoint(node.name, base=level == _BASE)

    def _unary(self, node: Unary, level: int) -> Any:
        x = self._eval(node.operand, level)
        return np.logical_not(x) if node.op == "not" else np.negative(x)

    def _binary(self, node: Binary, level: int) -> Any:
        return binary(node.op, self._eval(node.left, level), self._eval(node.right, level))

    def _call(self, node: Call, level: int) -> Any:
        return ENGINE_FUNCTIONS[node.func](self, node, level)

    def _scalar_call(self, node: Call, level: int) -> Any:
        args = [self._eval(a, level) for a in node.args]
        return SCALAR_FUNCS[node.func](*args)

    def _aggregate_call(self, node: Call, level: int) -> np.ndarray:
        return self._aggregate(node)

    def _previous_call(self, node: Call, level: int) -> Any:
        return self._previous(self._eval(node.args[0], level), level)

    def _ever_before_call(self, node: Call, level: int) -> np.ndarray:
        return self._ever_before(node.args[0], max(level, _CELL))

    def _months_call(self, node: Call, level: int) -> float:
        return periods.months_in(self.out_grain)

    def _calendar_call(self, node: Call, level: int) -> np.ndarray:
        return self._calendar(node.func, level)

    def _calendar(self, func: str, level: int) -> np.ndarray:
        """days_in_period() or business_days_in_period(): one value per output period (per
        base period at _BASE), laid out like the values of ``level``."""
        if self.req.period is None:
            raise calendar_needs_period(func, self.in_progress, self.scalar)
        if level == _BASE:
            days = periods.calendar_days(self.axis.labels(), func)
            return np.tile(days, self.n_entities)
        labels = self.coarse.labels if self.coarse is not None else self.axis.labels()
        days = periods.calendar_days(labels, func)
        if level == _PERIOD:
            return days[None, :]
        return days[self.cell_period()]

    def _require_grid(self, func: str) -> None:
        if not self.layout.grid:
            raise ColumnNotGivenError(
                "entity", f"{func}() on datapoints compares an entity with itself over time"
            )

    def _cell_grid(self, x: Any, level: int) -> np.ndarray:
        """Cell values as an entity x period array (base periods at _BASE)."""
        n_periods = self.n_base if level == _BASE else self.layout.n_periods
        n = self.n_entities * n_periods
        return np.broadcast_to(np.asarray(x), (n,)).reshape(self.n_entities, n_periods)

    def _require_period(self, func: str) -> None:
        """Without a period column all rows are one period: previous() would be missing and
        ever_before() false everywhere, with no sign why."""
        if self.req.period is None:
            raise needs_period(func, self.in_progress, self.scalar)

    def _previous(self, x: Any, level: int) -> Any:
        if np.ndim(x) == 0:
            return x  # a constant is the same in every period
        self._require_period("previous")
        if level != _PERIOD:
            self._require_grid("previous")
        grid = np.asarray(x) if level == _PERIOD else self._cell_grid(x, level)
        out = np.empty(grid.shape, dtype=float if grid.dtype != bool else bool)
        if grid.shape[1]:
            out[:, 0] = False if grid.dtype == bool else np.nan
            out[:, 1:] = grid[:, :-1]
        return out if level == _PERIOD else out.reshape(-1)

    def _ever_before(self, cond: Node, level: int) -> np.ndarray:
        """Did the condition hold for the entity in any earlier period?

        At a coarser grain "earlier" means any earlier base period, not only earlier quarter
        ends: a customer who paid in February and left in March returns in Q3 as a
        reactivation, not as a new customer.
        """
        if self.req.period is None:
            self._eval(cond, level)  # a missing datapoint is named first, as for previous()
            self._require_period("ever_before")
        self._require_grid("ever_before")
        if level == _CELL and self.coarse is not None:  # held in a base period before
            held = self._cell_grid(np.asarray(self._eval(cond, _BASE), dtype=bool), _BASE)
            return (_first_true(held)[:, None] < self.coarse.first_base[None, :]).reshape(-1)
        grid = self._cell_grid(np.asarray(self._eval(cond, level), dtype=bool), level)
        return (_first_true(grid)[:, None] < np.arange(grid.shape[1])[None, :]).reshape(-1)

    def _aggregate(self, node: Call) -> np.ndarray:
        lay = self.layout
        shape = (lay.n_groups, lay.n_periods)
        depth = min(max(gap_depth(a) for a in node.args), lay.n_periods)
        out = self._blocked_sum(node, shape, depth)
        if out is None:
            out = self._whole_aggregate(node, shape, depth)
        out = np.array(out, dtype=float)
        if depth:
            out[:, :depth] = np.nan
        return out

    def _aggregate_args(self, node: Call) -> tuple[np.ndarray, np.ndarray | None]:
        """An aggregate's values per cell (a constant left as one number) and its filter per
        cell, if it has one; of the block being evaluated, if any."""
        x = np.asarray(self._eval(node.args[0], _CELL), dtype=float)
        where = None
        if len(node.args) > 1:
            where = np.asarray(self._eval(node.args[1], _CELL), dtype=bool)
            where = np.broadcast_to(where, (self.n_cells,))
        return x, where

    def _whole_aggregate(self, node: Call, shape: tuple[int, int], depth: int) -> np.ndarray:
        x, where = self._aggregate_args(node)
        x = np.broadcast_to(x, (self.n_cells,))
        out = None
        if node.func == "sum":
            # Fast path: missing values are rare outside the leading gap, whose periods are
            # blanked below anyway; fall back to excluding them only if one shows up.
            out = self._reduce(x if where is None else np.where(where, x, 0.0), shape)
            if np.isnan(out[:, depth:]).any():
                out = None
        if out is None:
            out = self._aggregate_exact(node.func, x, where, shape)
        return out

    def _entity_blocks(self, shape: tuple[int, int]) -> list[tuple[int, int]] | None:
        """Entity ranges to evaluate a sum, count or mean in, so that each block's cell
        values stay in the CPU cache; None where one pass over the whole grid is as good.

        Sums then add up in the same order as over the whole grid (entity by entity), which
        holds for a column sum of a grid of at least two periods (numpy adds row after row)
        and for a bincount seeded with the totals so far, as long as those are few.
        """
        lay = self.layout
        if not lay.grid or self._block is not None or lay.n_periods < 2:
            return None
        per_block = max(1, BLOCK_CELLS // max(lay.n_periods, self.n_base))
        n_blocks = -(-lay.n_entities // per_block)
        # each block after the first re-adds the totals: worth it while they are few
        if n_blocks < 2 or n_blocks * shape[0] * shape[1] > lay.n_entities * lay.n_periods:
            return None
        starts = range(0, lay.n_entities, per_block)
        return [(start, min(start + per_block, lay.n_entities)) for start in starts]

    def _blocked_sum(self, node: Call, shape: tuple[int, int], depth: int) -> np.ndarray | None:
        """sum, count or mean evaluated block by block of entities (see _entity_blocks), to
        the same value as over the whole grid; None where that does not apply."""
        if node.func not in ("sum", "count", "mean"):
            return None
        blocks = self._entity_blocks(shape)
        if blocks is None:
            return None
        exact = node.func != "sum"
        while True:
            totals: list[np.ndarray | None] = [None, None]  # sum of values, count of values
            for block in blocks:
                self._block, self._block_cache = block, {}
                try:
                    x, where = self._aggregate_args(node)
                    if x.ndim == 0 and where is None:
                        return None  # a constant: summed as over the whole grid
                    x = np.broadcast_to(x, (self.n_cells,))
                    if not exact:
                        values = x if where is None else np.where(where, x, 0.0)
                        totals[0] = self._reduce_onto(totals[0], values, shape)
                        continue
                    mask = ~np.isnan(x) if where is None else where & ~np.isnan(x)
                    if node.func != "count":
                        values = np.where(mask, x, 0.0)
                        totals[0] = self._reduce_onto(totals[0], values, shape)
                    if node.func != "sum":
                        totals[1] = self._reduce_onto(totals[1], mask, shape)
                finally:
                    self._block, self._block_cache = None, {}
            total, count = totals
            if not exact and np.isnan(total[:, depth:]).any():
                exact = True  # missing values past the leading gap: leave them out
                continue
            if node.func == "sum":
                return total
            return count if node.func == "count" else divide(total, count)

    def _reduce_onto(self, total: np.ndarray | None, values: np.ndarray, shape) -> np.ndarray:
        """``total`` (the sums of the blocks before) plus this block's cell values, added
        one after the other as :meth:`_reduce` adds them over the whole grid."""
        if total is None:
            return self._reduce(values, shape)
        lay = self.layout
        if lay.cell_group is None:  # a column sum of [total; block rows], row after row
            rows = values.reshape(self.n_entities, lay.n_periods)
            return np.concatenate([total, rows]).sum(axis=0, dtype=float)[None, :]
        size = shape[0] * shape[1]
        key = np.concatenate([np.arange(size), self.cell_key()])
        weights = np.concatenate([total.reshape(-1), values])
        return np.bincount(key, weights=weights, minlength=size).astype(float).reshape(shape)

    def _aggregate_exact(self, func: str, x: np.ndarray, where, shape) -> np.ndarray:
        """Aggregate the cells where x is known and the filter holds."""
        mask = ~np.isnan(x) if where is None else where & ~np.isnan(x)
        if func in ("sum", "count", "mean"):
            count = self._reduce(mask, shape) if func != "sum" else None
            total = self._reduce(np.where(mask, x, 0.0), shape) if func != "count" else None
            return total if func == "sum" else count if func == "count" else divide(total, count)
        key = self.cell_key()
        series = pd.Series(x[mask]).groupby(key[mask])
        agg = {
            "min": series.min,
            "max": series.max,
            "median": series.median,
            "count_distinct": series.nunique,
        }[func]()
        out = np.full(shape[0] * shape[1], 0.0 if func == "count_distinct" else np.nan)
        out[agg.index.to_numpy()] = agg.to_numpy()
        return out.reshape(shape)

    def _reduce(self, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Sum cell values into (group x period)."""
        lay = self.layout
        if lay.grid and lay.cell_group is None:  # no groups: a column sum of the grid
            return values.reshape(self.n_entities, lay.n_periods).sum(axis=0, dtype=float)[None, :]
        key = self.cell_key()
        if not lay.grid:  # cells are rows: add them in the order of their values, so that
            order = np.lexsort((values, key))  # the sum is the same however rows are sorted
            key, values = key[order], values[order]
        flat = np.bincount(key, weights=values, minlength=shape[0] * shape[1]).astype(
            float, copy=False
        )
        return flat.reshape(shape)

    # -- output ---------------------------------------------------------------------------
    def result_table(self, values: Mapping[str, np.ndarray]) -> Table:
        lay = self.layout
        req = self.req
        keep = lay.keep.reshape(-1)
        g_idx = np.repeat(np.arange(lay.n_groups), lay.n_periods)[keep]
        p_idx = np.tile(np.arange(lay.n_periods), lay.n_groups)[keep]
        order = np.lexsort((g_idx, p_idx))
        g_idx, p_idx = g_idx[order], p_idx[order]
        out: dict[str, Any] = {}
        if req.period is not None:
            out[req.period] = self._period_labels()[p_idx]
        if self.group_labels is not None:
            for col, labels in self.group_labels.items():
                out[col] = labels[g_idx]
        undefined = {}
        for kpi_id, v in values.items():
            flat = v.reshape(-1)[keep][order]
            out[kpi_id] = flat
            undefined[kpi_id] = int(np.isnan(flat).sum())
        partial = (
            periods.partial_periods(self.axis, self.out_grain, self.axis.kind)
            if req.period is not None
            else []
        )
        return Table(out, undefined, self.warnings(), partial)

    def _period_labels(self) -> Any:
        """One label per output period, in the kind the data gave (text, Period, Timestamp)."""
        axis = self.axis
        if self.coarse is None and axis.kind == "text" and axis.base == "M":
            texts = periods.month_texts(axis.first, axis.count)
            if texts is not None:
                return texts
        labels = self.coarse.labels if self.coarse is not None else axis.labels()
        return periods.present_labels(labels, axis.kind)

    def warnings(self) -> list[str]:
        return gap_warnings(self.axis if self.req.period is not None else None) + self.notes


# --------------------------------------------------------------------------------------
# numpy helpers


_NODES = method_table(_Engine, "_")
#: The pandas engine is the reference: it computes every function (validation fails a KPI
#: calling one missing here, see ``backends.unsupported_functions``).
UNSUPPORTED_FUNCTIONS: dict[str, str] = {}
ENGINE_FUNCTIONS = function_table(
    {
        **each(SCALAR_FUNCS, _Engine._scalar_call),
        **each(AGGREGATES, _Engine._aggregate_call),
        "previous": _Engine._previous_call,
        "ever_before": _Engine._ever_before_call,
        "months_in_period": _Engine._months_call,
        **each(CALENDAR_FUNCTIONS, _Engine._calendar_call),
    },
    UNSUPPORTED_FUNCTIONS,
)


def _first_true(grid: np.ndarray) -> np.ndarray:
    """Per row of a bool grid, the first column that is true (the number of columns if
    none is): ever_before() without a running "or" along each short row."""
    if not grid.shape[1]:
        return np.zeros(grid.shape[0], dtype=np.int64)
    return np.where(grid.any(axis=1), np.argmax(grid, axis=1), grid.shape[1])


def _entity_codes(
    series: pd.Series, column: str, n_base: int = 1, row_base: np.ndarray | None = None
) -> tuple[np.ndarray, int]:
    """Dense codes 0..n-1 per entity. Integer ids in a compact range are mapped by offset,
    which is several times faster than hashing millions of values. With ``row_base`` (the
    base period of each row, ``n_base`` periods), the entity x period cell of each row.

    Offsets are taken chunk by chunk of rows, so that only the result is a row-sized array."""
    values = series.to_numpy()
    if values.dtype.kind in "iu" and len(values):
        lo, hi = int(values.min()), int(values.max())
        if hi - lo <= 4 * len(values) + 1000:
            chunks = [
                slice(i, i + periods.ROW_CHUNK) for i in range(0, len(values), periods.ROW_CHUNK)
            ]
            used = np.zeros(hi - lo + 1, dtype=bool)
            for chunk in chunks:
                used[(values[chunk] - lo).astype(np.int64, copy=False)] = True
            remap = np.cumsum(used) - 1
            out = np.empty(len(values), dtype=np.int64)
            for chunk in chunks:
                codes = remap[(values[chunk] - lo).astype(np.int64, copy=False)]
                out[chunk] = _cells(codes, n_base, None if row_base is None else row_base[chunk])
            return out, int(used.sum())
    try:  # in order of the ids, so that no sum depends on the order of the rows
        codes, uniques = pd.factorize(series, sort=True)
    except TypeError:  # ids of mixed types cannot be sorted: in order of first appearance
        codes, uniques = pd.factorize(series, sort=False)
    if (codes < 0).any():
        row = series.index[codes < 0][0]
        raise CellError(column, row, None, "empty", "entity")
    return _cells(codes.astype(np.int64), n_base, row_base), len(uniques)


def _cells(codes: np.ndarray, n_base: int, row_base: np.ndarray | None) -> np.ndarray:
    """Entity codes made, in place, into entity x period cells, given each row's period."""
    if row_base is not None:
        codes *= n_base
        codes += row_base
    return codes


def _plain_codes(values: list) -> tuple[np.ndarray, int] | None:
    """Entity codes for a list of ids that are all text or all integers, else None (the
    pandas path then handles it, including the error for an empty id)."""
    kinds = {v.__class__ for v in values}
    if not values or not (kinds == {str} or kinds == {int}):
        return None
    # numbered like the pandas path, in order of the ids: the sums over entities then add
    # up in the same order however the rows are shuffled, to the last bit
    code = {v: i for i, v in enumerate(sorted(set(values)))}
    return np.fromiter((code[v] for v in values), np.int64, len(values)), len(code)


def _plain_numbers(values: list) -> np.ndarray | None:
    """A list of ints, floats and None as floats (None -> NaN), else None."""
    for v in values:
        if v.__class__ not in (int, float) and v is not None:
            return None
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _numeric(series: pd.Series, col: str, index: pd.Index) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=float)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=float, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna().to_numpy() & series.notna().to_numpy()
    if bad.any():
        pos = int(np.argmax(bad))
        raise CellError(col, index[pos], series.iloc[pos], "not_numeric")
    return converted.to_numpy(dtype=float, na_value=np.nan)


def _sum_columns(grid: np.ndarray, to_coarse: np.ndarray, n: int) -> np.ndarray:
    """Sum base-period columns into coarse periods; all-missing stays missing. A total of
    several nonzero base periods is rounded like a sum of rows (see :func:`round_sums`);
    counting only nonzero ones, the SQL engine, which has no cell where an entity has no
    rows, counts the same terms."""
    starts = np.flatnonzero(np.r_[True, to_coarse[1:] != to_coarse[:-1]])
    known = ~np.isnan(grid)
    filled = np.where(known, grid, 0.0)
    total = np.add.reduceat(filled, starts, axis=1)
    any_known = np.logical_or.reduceat(known, starts, axis=1)
    terms = np.add.reduceat(filled != 0, starts, axis=1, dtype=np.int64)
    several = np.flatnonzero(terms > 1)
    if several.size:
        flat = total.reshape(-1)
        magnitude = np.add.reduceat(np.abs(filled), starts, axis=1).reshape(-1)[several]
        flat[several] = round_sums(flat[several], magnitude, terms.reshape(-1)[several])
    out = np.where(any_known, total, np.nan)
    assert out.shape[1] == n
    return out


def _coarsen_grid(grid: np.ndarray, rule: str, coarse: periods.Coarsening) -> np.ndarray:
    """An entity x base period grid onto the coarse periods, by the datapoint's time rule."""
    n = len(coarse.labels)
    if rule == "closing":
        return grid[:, coarse.last_base]
    if rule == "opening":
        return grid[:, coarse.first_base]
    if rule == "flow":
        return _sum_columns(grid, coarse.to_coarse, n)
    starts = np.flatnonzero(np.r_[True, coarse.to_coarse[1:] != coarse.to_coarse[:-1]])
    known = ~np.isnan(grid)
    if rule == "event":  # the largest value: a flag set in any base period counts once
        return np.fmax.reduceat(grid, starts, axis=1)
    if rule == "average":  # the mean balance over the base periods (missing: null skipped)
        total = np.add.reduceat(np.where(known, grid, 0.0), starts, axis=1)
        count = np.add.reduceat(known, starts, axis=1, dtype=np.int64)
        return divide(total, count)
    if rule == "latest":  # the value of the last base period that has one
        columns = np.where(known, np.arange(grid.shape[1])[None, :], -1)
        latest = np.maximum.reduceat(columns, starts, axis=1)
        picked = np.take_along_axis(grid, np.maximum(latest, 0), axis=1)
        return np.where(latest >= 0, picked, np.nan)
    raise KPIError(f"unknown time rule {rule!r}")  # pragma: no cover: the schema checks it


def _label(value: Any) -> Any:
    """A row or entity label as a plain Python value (for messages and error fields)."""
    return value.item() if isinstance(value, np.generic) else value


def _sorted_labels(labels: list) -> list:
    try:
        return sorted(labels)
    except TypeError:  # labels of mixed types: as found
        return labels


def _order_values(series: pd.Series, column: str) -> np.ndarray:
    """The order_by column as numbers that sort like it: timestamps, dates as text, numbers."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float, na_value=np.nan)
    try:
        stamps = pd.to_datetime(series, errors="raise", format="mixed")
    except (ValueError, TypeError):
        raise DataError(
            f"order_by column {column!r} must hold dates, timestamps or numbers"
        ) from None
    out = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(float)
    out[stamps.isna().to_numpy()] = np.nan
    return out
