"""Compile bound KPI formulas into one SQL statement that returns the pandas engine's frame.

The statement is a chain of CTEs, each doing one thing a reader can check:

* ``source``: the input rows, with the period turned into an integer (months since 1970-01, ...);
* with an entity, ``cells``: one row per entity and period, datapoints combined per their
  ``rows`` rule (without one, each row is a cell); a sum of several rows is rounded to the
  decimal total its rows add up to, as the pandas engine rounds it (``sqlbuild.decimal_sum``);
* ``bounds``, ``base_periods``, ``calendar``, ``periods``: every period from the data's first to
  its last, gaps included, with the coarser grain's label and the base period a stock is read at;
* ``period_cells`` (at a coarser grain), ``entities`` and ``grid``: the dense entity x period
  grid where an entity with no row is 0 or NULL as its datapoint declares. ``previous()`` is
  then a LAG along the grid, never along raw rows (which would miss churn where no zero row
  was exported);
* or, where the formulas provably ignore the grid's empty cells (see ``sparse.py``; the SQL
  says which layout it uses and why in a comment), ``span``, ``present_cells`` and
  ``present_rows``: the entity-periods with rows, ``previous()`` checked to be the period
  before; ``rows_1`` adds the period after each row where the entity has none (churn), and
  ``group_changes``/``group_moves`` count where entities enter and change groups, so that the
  (group, period) pairs of the dense grid are kept;
* ``rows_N``: one layer per depth of window functions (previous, ever_before, carried groups);
* ``aggregates`` and ``period_values``: aggregates per group and period, on every (group,
  period) pair so that ``previous()`` of a KPI sees empty periods as the pandas engine does;
* ``kpis_N``: KPI columns, layered like the rows;
* the final SELECT keeps the (period, group) pairs that have cells, in order.

Conditions use two-valued logic: SQL's NULL counts as false, and ``not`` of a condition that can
be NULL is written ``NOT COALESCE(c, FALSE)`` so that it matches numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sqlglot import exp

from .. import periods as pandas_periods
from ..errors import ColumnNotGivenError, DataError, KPIError, UnknownKPIError
from ..formula import AGGREGATES, Binary, Call, Name, Node, Number, Unary, gap_depth, to_text
from ..model import KPI, Datapoint
from ..request import (
    Request,
    calendar_needs_period,
    check_columns,
    check_grain,
    check_request,
    distinct_needs_entity,
    grain_name,
    missing_datapoint,
    needs_period,
)
from . import sqlbuild as b
from .sparse import (
    DENSE,
    LAYOUTS,
    SPARSE,
    Aggregated,
    Layout,
    choose_layout,
    fill_value,
    holds_in_empty_cell,
    time_calls,
)
from .spec import (
    UNSUPPORTED,
    PeriodFormat,
    SQLCompileError,
    check_dialect,
    period_format,
    unsupported,
)

NUMBER, CONDITION = "number", "condition"
_COMPARE = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
_ARITH = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul}
# functions a constant formula may call: they read no data
_CONSTANT = {"months_in_period", "if", "abs", "greatest", "least", "coalesce"}

# Internal column names; user names that collide with them are renamed inside the query.
ENTITY, BASE, PERIOD, INDEX, LABEL = "_entity", "_base_period", "_period", "_period_index", "_label"
CELLS, PRESENT, RUN, ORDER, STOCK_BASE = "_cells", "_present", "_run", "_row_order", "_stock_base"
CARRIED = "_carried_groups"
OPEN_BASE, BASE_COUNT = "_open_base", "_base_count"
FIRST_PERIOD, LAST_PERIOD, NEXT_PERIOD = "_first_period", "_last_period", "_next_period"
FIRST_ROW, MOVED = "_first_row", "_moved"
_INTERNAL = {ENTITY, BASE, PERIOD, INDEX, LABEL, CELLS, PRESENT, RUN, ORDER, STOCK_BASE, CARRIED}
_INTERNAL |= {FIRST_PERIOD, LAST_PERIOD, NEXT_PERIOD, FIRST_ROW, MOVED, OPEN_BASE, BASE_COUNT}


def compile_many(
    kpis: Mapping[str, KPI],
    ids: Sequence[str],
    table: str | exp.Expression,
    request: Request,
    dialect: str = "duckdb",
    *,
    period_type: str | PeriodFormat | None = None,
    order: str | exp.Expression | None = None,
    columns: Collection[str] | None = None,
    layout: str = "auto",
) -> str:
    """One SQL statement computing ``evaluate_many(kpis, ids, <table>, request)``.

    ``period_type`` says how the period column is written (see ``PERIOD_TYPES``; default
    ``month``: text such as 2024-01). ``order`` names a column that orders rows, needed only to
    tell which row is "last" within an entity-period. ``columns``, the table's column names when
    known, lets KPI ids present as columns be used as given and missing columns be reported.
    ``layout`` (with an entity): ``"dense"`` builds the whole entity x period grid,
    ``"sparse"`` only the cells with rows and the period after each (exact only for some
    formulas: an error otherwise), ``"auto"`` sparse where :func:`.sparse.choose_layout`
    proves it exact. The SQL says which it chose, and why, in a comment.
    """
    tree = compile_tree(
        kpis,
        ids,
        table,
        request,
        dialect,
        period_type=period_type,
        order=order,
        columns=columns,
        layout=layout,
    )
    return tree.sql(dialect=check_dialect(dialect), pretty=True)


def compile_tree(
    kpis: Mapping[str, KPI],
    ids: Sequence[str],
    table: str | exp.Expression,
    request: Request,
    dialect: str = "duckdb",
    *,
    period_type: str | PeriodFormat | None = None,
    order: str | exp.Expression | None = None,
    columns: Collection[str] | None = None,
    layout: str = "auto",
) -> exp.Select:
    """Like ``compile_many`` but returns the sqlglot tree."""
    dialect = check_dialect(dialect)
    if layout not in LAYOUTS:
        raise SQLCompileError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)}")
    for kpi_id in ids:
        if kpi_id not in kpis:
            raise UnknownKPIError(kpi_id, kpis)
    if isinstance(table, str):
        source: exp.Expression = b.table_name(table)
    else:
        source = table
    if isinstance(order, str):
        order = b.col(order)
    fmt = period_format(period_type) if request.period is not None else None
    compiler = _Compiler(kpis, request, dialect, fmt, order, columns)
    for kpi_id in ids:
        compiler.kpi(kpi_id)
    tree = compiler.statement(source, list(ids), layout)
    return _spark_int_days(tree) if dialect == "spark" else tree


def _spark_int_days(tree: exp.Select) -> exp.Select:
    """Spark's DATE_ADD takes an INT count of days and refuses the BIGINT that period numbers
    become after SEQUENCE/EXPLODE: cast them (found by running the SQL on Spark)."""

    def cast_days(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.DateAdd) and not isinstance(node.expression, exp.Cast):
            node.set("expression", b.cast(node.expression, "INT"))
        return node

    return tree.transform(cast_days, copy=False)


@dataclass
class _Value:
    """A compiled (sub)formula: its SQL, the layer it is available from, and what it is."""

    sql: exp.Expression
    level: int  # 0: a column of the base relation or a constant; N: computed in layer N
    kind: str = NUMBER
    nullable: bool = True
    const: bool = False
    double: bool = True  # False only for integer literals (PostgreSQL divides integers)
    number: float | None = None  # the value of a literal number
    # Within a formula numbers are doubles: an overflow is +-infinity, and infinity less
    # infinity (or times 0) is NaN, which SQL keeps apart from NULL. Where either may occur:
    inf: bool = False
    nan: bool = False


class _Names:
    """Hands out column names that are unique within the query."""

    def __init__(self, taken: Collection[str]):
        self.taken = set(taken)

    def claim(self, wanted: str) -> str:
        name, n = wanted, 1
        while name in self.taken:
            n += 1
            name = f"{wanted}_{n}"
        self.taken.add(name)
        return name


class _Layers:
    """Columns computed by window functions, stacked so none nests inside another."""

    def __init__(self, partition: Callable[[], list[str]], dialect: str):
        self.partition = partition
        self.dialect = dialect
        self.columns: list[list[tuple[str, exp.Expression]]] = []

    def add(self, level: int, name: str, expression: exp.Expression) -> None:
        while len(self.columns) < level:
            self.columns.append([])
        self.columns[level - 1].append((name, expression))

    def over(self, function: exp.Expression, frame: str | None = None) -> exp.Window:
        parts = [b.col(c) for c in self.partition()]
        order = [b.ascending(b.col(PERIOD), self.dialect)]
        return b.window(function, parts, order, frame)


@dataclass
class _Aggregate:
    name: str
    sql: exp.Expression
    fill: float | None  # value where a (group, period) has no qualifying cell
    depth: int  # leading periods that are undefined (one per previous())
    node: Call | None = None  # the formula's aggregate; None for a KPI supplied as a column
    kpi: str = ""


class _Compiler:
    def __init__(
        self,
        kpis: Mapping[str, KPI],
        req: Request,
        dialect: str,
        fmt: PeriodFormat | None,
        order: exp.Expression | None,
        columns: Collection[str] | None,
    ):
        self.kpis = kpis
        self.req = req
        self.dialect = dialect
        self.fmt = fmt
        self.order = order
        self.known = list(dict.fromkeys(columns)) if columns is not None else None
        self.grid = req.entity is not None
        self._check_request()
        reserved = set(_INTERNAL)
        self.names = _Names(reserved)
        # group columns keep their names unless they collide with an internal one
        self.groups = [(c, self.names.claim(c)) for c in req.by]
        self.datapoints: dict[str, tuple[Datapoint, str, str]] = {}  # name -> spec, data col, sql
        self.specs: dict[str, Datapoint] = {}
        # kpi id -> data column, sql column, column of the largest value (duckdb's check)
        self.supplied: dict[str, tuple[str, str, str]] = {}
        self.aggregates: list[_Aggregate] = []
        self.agg_cache: dict[Node, _Value] = {}
        self.row_cache: dict[Node, _Value] = {}
        self.period_cache: dict[Node, _Value] = {}
        self.kpi_values: dict[str, _Value] = {}
        self.in_progress: list[str] = []
        self.rows = _Layers(lambda: [ENTITY], dialect)
        self.periods = _Layers(lambda: [g for _, g in self.groups], dialect)
        # row-level window columns by name: previous(arg) and ever_before(cond), with the
        # argument's node and compiled value (the sparse layout rewrites them)
        self.row_previous: dict[str, tuple[Node, _Value]] = {}
        self.row_ever_before: dict[str, tuple[Node, _Value]] = {}
        # at a coarser grain: ever_before()'s condition per coarse period (see _held_in_period)
        self.held: dict[str, _Value] = {}
        self.carry_groups = self.grid and bool(self.groups)
        self.layout = Layout(DENSE, "")
        self._order_names: dict[str, str] = {}  # order_by data column -> its SQL name
        # row-level columns holding a value that SQL reads more than once (see _once)
        self.row_bound: set[str] = set()

    # -- request ----------------------------------------------------------------------------
    def _check_request(self) -> None:
        req = self.req
        check_request(req)
        if req.period is None and req.grain is not None:
            raise DataError("grain needs a period column")
        self.base = self.fmt.base if self.fmt else "M"
        self.grain = pandas_periods.grain_code(req.grain, self.base)
        self.coarse = self.grain != self.base
        if self.known is not None:
            check_columns(req, self.known)

    def _data_column(self, name: str) -> str | None:
        """The data column a datapoint or KPI id reads from, if the data has one."""
        column = self.req.columns.get(name, name)
        if self.known is None:
            return column if name in self.req.columns else None
        return column if column in self.known else None

    def _fills(self) -> dict[str, float]:
        """Each datapoint's value in a cell without rows (0.0 or NaN), as ``sparse.py`` reads
        it; ``_filled`` is the same rule in SQL."""
        return {
            name: 0.0 if spec.missing == "zero" else math.nan
            for name, (spec, _, _) in self.datapoints.items()
        }

    # -- KPIs -------------------------------------------------------------------------------
    def kpi(self, kpi_id: str) -> _Value:
        if kpi_id in self.kpi_values:
            return self.kpi_values[kpi_id]
        if kpi_id in self.in_progress:
            cycle = " -> ".join([*self.in_progress[self.in_progress.index(kpi_id) :], kpi_id])
            raise KPIError(f"formula dependency cycle: {cycle}")
        if kpi_id not in self.kpis:
            raise UnknownKPIError(kpi_id, self.kpis)
        supplied = self._data_column(kpi_id)
        if supplied is not None:
            value = self._supplied(kpi_id, supplied)
        else:
            kpi = self.kpis[kpi_id]
            if kpi.expression is None:
                raise KPIError(f"KPI {kpi_id!r} has no valid formula")
            node = kpi.expression
            if self.req.period is not None:
                check_grain(kpi, self.grain, [*self.in_progress, kpi_id])
                node = kpi.expression_at(grain_name(self.grain))
            for name, spec in kpi.datapoints.items():
                self.specs.setdefault(name, spec)
            self.in_progress.append(kpi_id)
            try:
                value = self._kpi_column(kpi_id, node)
            finally:
                self.in_progress.pop()
        self.kpi_values[kpi_id] = value
        return value

    def _kpi_column(self, kpi_id: str, node: Node) -> _Value:
        if isinstance(node, Call) and node.func in AGGREGATES and node not in self.agg_cache:
            return self._aggregate(node, hint=kpi_id)  # name the aggregate after its KPI
        value = self.period(node)
        if value.const or isinstance(value.sql, exp.Column):
            return value
        name = self.names.claim(kpi_id)
        level = value.level + 1
        self.periods.add(level, name, value.sql)
        return _Value(b.col(name), level, NUMBER, value.nullable, inf=value.inf, nan=value.nan)

    def _supplied(self, kpi_id: str, column: str) -> _Value:
        """A KPI given as a column of the data: one value per period and group.

        DuckDB also checks that the value is unique there, and raises the pandas engine's
        error otherwise; other dialects take the smallest value."""
        sql_name = self.names.claim(kpi_id)
        high = self.names.claim(f"{kpi_id}_max") if self.dialect == "duckdb" else sql_name
        self.supplied[kpi_id] = (column, sql_name, high)
        low = exp.Min(this=b.col(sql_name))
        value: exp.Expression = low
        if high != sql_name:
            top = exp.Max(this=b.col(high))
            head = f"column {column!r} supplies KPI {kpi_id!r} but has different values within "
            tail = "; give one value per period" + (" and group" if self.groups else "")

            def escape(text: str) -> str:  # FORMAT() reads {} as a placeholder
                return text.replace("{", "{{").replace("}", "}}")

            template = escape(head) + "one period and group ({} and {})" + escape(tail)
            fail = exp.Anonymous(
                this="ERROR", expressions=[exp.func("FORMAT", b.string(template), low.copy(), top)]
            )
            value = b.case((b.binary(exp.NEQ, low.copy(), top.copy()), fail), default=low.copy())
        agg = _Aggregate(self.names.claim(f"{kpi_id}_given"), value, None, 0)
        self.aggregates.append(agg)
        return _Value(b.col(agg.name), 0)

    # -- datapoints -------------------------------------------------------------------------
    def datapoint(self, name: str) -> _Value:
        if name not in self.datapoints:
            spec = self.specs.get(name, Datapoint(name))
            column = self._data_column(name)
            if column is None and self.known is not None:
                raise missing_datapoint(name, self.req, self.known)
            column = column or self.req.columns.get(name, name)
            if not self.grid and spec.rows == "distinct":
                raise distinct_needs_entity(name)
            if self.grid and spec.rows in ("last", "first") and self._row_order(spec) is None:
                raise SQLCompileError(
                    f"datapoint {name!r} keeps the {spec.rows} row of each entity-period "
                    f"(rows: {spec.rows}), but SQL tables have no row order: give the datapoint "
                    "an order_by column that the table has, or pass order='COLUMN' (kpi sql "
                    "--order COLUMN) naming a column that orders the rows, such as a load "
                    "timestamp"
                )
            self.datapoints[name] = (spec, column, self.names.claim(name))
            if self.req.drop_invalid:  # flags it excludes are read too, to leave both out
                for other in spec.excludes:
                    if self.known is not None and self._data_column(other) is not None:
                        self.specs.setdefault(
                            other, Datapoint(other, rows=spec.rows, time=spec.time)
                        )
                        self.datapoint(other)
        spec, _, sql_name = self.datapoints[name]
        nullable = not (self.grid and spec.missing == "zero") or self.req.drop_invalid
        return _Value(b.col(sql_name), 0, NUMBER, nullable)

    def _partners(self, name: str) -> list[str]:
        """With drop_invalid: the read datapoints that ``name`` excludes or is excluded by."""
        if not self.req.drop_invalid:
            return []
        spec = self.datapoints[name][0]
        out = [o for o in spec.excludes if o in self.datapoints]
        out += [a for a, (s, _, _) in self.datapoints.items() if name in s.excludes]
        return list(dict.fromkeys(out))

    def _filled_in(self, table: str) -> Callable[[str], exp.Expression]:
        def value_of(dp: str) -> exp.Expression:
            spec, _, name = self.datapoints[dp]
            return _filled(spec, b.col(name, table))

        return value_of

    def _cell_value(self, name: str, value_of: Callable[[str], exp.Expression]) -> exp.Expression:
        """A datapoint's cell value; with drop_invalid, none where it and a flag it excludes
        are both set (the pandas engine leaves both out there)."""
        value = value_of(name)
        partners = self._partners(name)
        if not partners:
            return value
        both = [
            b.and_(
                b.binary(exp.GT, value_of(name), b.num(0)),
                b.binary(exp.GT, value_of(other), b.num(0)),
            )
            for other in partners
        ]
        clash = both[0]
        for part in both[1:]:
            clash = exp.Or(this=clash, expression=part)
        return b.case((clash, exp.Null()), default=value)

    def _row_order(self, spec: Datapoint) -> exp.Expression | None:
        """What orders an entity-period's rows for rows: last / first: the datapoint's
        order_by column when the table has it (or its columns are unknown), else ``order``."""
        if spec.order_by:
            column = self.req.columns.get(spec.order_by, spec.order_by)
            if self.known is None or column in self.known:
                return b.col(self._order_names.setdefault(column, self.names.claim(column)))
        return b.col(ORDER) if self.order is not None else None

    # -- formula nodes ----------------------------------------------------------------------
    def row(self, node: Node) -> _Value:
        """A row-level (per cell) expression: datapoints, arithmetic, previous, ever_before."""
        if node not in self.row_cache:
            self.row_cache[node] = self._row(node)
        return self.row_cache[node]

    def period(self, node: Node) -> _Value:
        """A period-level expression: aggregates, KPIs and what combines them."""
        if node not in self.period_cache:
            self.period_cache[node] = self._period(node)
        return self.period_cache[node]

    def _row(self, node: Node) -> _Value:
        if isinstance(node, Name):
            return self.datapoint(node.name)
        if isinstance(node, Call) and node.func == "previous":
            return self._previous(self.row(node.args[0]), self.rows, node.args[0], row=True)
        if isinstance(node, Call) and node.func == "ever_before":
            return self._ever_before(node.args[0], self.row(node.args[0]))
        return self._scalar(node, self.row)

    def _period(self, node: Node) -> _Value:
        if isinstance(node, Name):
            return self._kpi_reference(self.kpi(node.name))
        if isinstance(node, Call) and node.func in AGGREGATES:
            return self._aggregate(node)
        if isinstance(node, Call) and node.func == "previous":
            return self._previous(self.period(node.args[0]), self.periods, node.args[0], row=False)
        return self._scalar(node, self.period)

    def _kpi_reference(self, value: _Value) -> _Value:
        """A KPI as another formula reads it: missing where it is not a finite number, as
        the pandas engine stores every KPI's value (1 / x is missing, not 0, where x
        overflowed)."""
        if not (value.inf or value.nan):
            return value
        guarded = b.case((b.finite(value.sql, self.dialect), value.sql.copy()))
        return _Value(guarded, value.level, NUMBER, True, value.const, value.double)

    def _known(self, value: _Value) -> _Value:
        """The value with NaN as NULL, for what tells them apart: comparisons, coalesce(),
        greatest(), least(), aggregates and ^ (NaN ^ 0 is 1, NULL ^ 0 is NULL)."""
        if not value.nan:
            return value
        sql = b.not_nan(value.sql, self.dialect)
        return _Value(sql, value.level, value.kind, True, value.const, value.double, inf=value.inf)

    def _require_period(self, func: str) -> None:
        if self.req.period is None:
            raise needs_period(func, self.in_progress)

    def _require_grid(self, func: str) -> None:
        if not self.grid:
            raise ColumnNotGivenError(
                "entity", f"{func}() on datapoints compares an entity with itself over time"
            )

    def _previous(self, value: _Value, layers: _Layers, arg: Node, row: bool) -> _Value:
        if value.const:
            return value  # a constant is the same in every period
        self._require_period("previous")
        if row:
            self._require_grid("previous")
        if value.kind == CONDITION:
            lag = exp.Lag(this=value.sql, offset=exp.Literal.number(1), default=exp.false())
        else:
            lag = exp.Lag(this=value.sql)
        name = self.names.claim(f"previous_{_hint(arg)}")
        level = value.level + 1
        layers.add(level, name, layers.over(lag))
        if row:
            self.row_previous[name] = (arg, value)
        nullable = True if value.kind == NUMBER else value.nullable
        return _Value(
            b.col(name),
            level,
            value.kind,
            nullable,
            double=value.double,
            inf=value.inf,
            nan=value.nan,
        )

    def _ever_before(self, node: Node, cond: _Value) -> _Value:
        self._require_period("ever_before")
        self._require_grid("ever_before")
        if self.coarse:
            cond = self._held_in_period(node, cond)
        flag = b.case((cond.sql, exp.Literal.number(1)), default=exp.Literal.number(0))
        seen = self.rows.over(exp.Max(this=flag), frame="before")
        name = self.names.claim("ever_before")
        self.row_ever_before[name] = (node, cond)
        level = cond.level + 1
        self.rows.add(
            level, name, b.eq(b.coalesce(seen, exp.Literal.number(0)), exp.Literal.number(1))
        )
        return _Value(b.col(name), level, CONDITION, nullable=False)

    def _held_in_period(self, node: Node, cond: _Value) -> _Value:
        """At a coarser grain: did the condition hold in any base period of the cell's coarse
        period? ever_before() then runs over that, so "paid before Q3" sees a customer who paid
        in February only, as the pandas engine does.

        The flag is computed from the base-period cells that have rows, which is exact when
        the condition is false in a base period without rows and reads no other period."""
        looks_back = time_calls(node)
        if looks_back:
            raise SQLCompileError(
                f"ever_before({to_text(node)}) at a coarser grain: a condition that uses "
                f"{looks_back[0]}() does not compile to SQL; evaluate at the data's own grain or "
                "with the pandas engine"
            )
        if self._reads_bound(cond.sql):
            raise SQLCompileError(
                f"ever_before({to_text(node)}) at a coarser grain: a condition that raises a "
                "computed value to a power (^) does not compile to SQL; evaluate at the data's "
                "own grain or with the pandas engine"
            )
        if holds_in_empty_cell(node, self._fills()) is not False:
            raise SQLCompileError(
                f"ever_before({to_text(node)}) at a coarser grain: the condition may hold where "
                "an entity has no rows, which SQL cannot see at base periods; evaluate at the "
                "data's own grain or with the pandas engine"
            )
        name = self.names.claim("held_in_period")
        self.held[name] = cond
        return _Value(b.eq(b.col(name), b.num(1)), 0, CONDITION, nullable=False)

    def _held_flag(self, cond: _Value) -> exp.Expression:
        """1 if the condition holds in some base-period cell ``c`` of the group, else 0."""
        filled = {
            name: _filled(spec, b.col(name, "c")) for spec, _, name in self.datapoints.values()
        }

        def base_value(e: exp.Expression) -> exp.Expression:
            if isinstance(e, exp.Column) and e.name in filled:
                return filled[e.name].copy()
            return e

        at_base = _cond(cond).copy().transform(base_value)
        return exp.Max(this=b.case((at_base, b.num(1)), default=b.num(0)))

    def _scalar(self, node: Node, recurse: Callable[[Node], _Value]) -> _Value:
        if isinstance(node, Number):
            whole = node.value == int(node.value)
            return _Value(b.num(node.value), 0, NUMBER, False, True, not whole, node.value)
        if isinstance(node, Unary):
            v = recurse(node.operand)
            if node.op == "not":
                return _Value(b.not_(_cond(v)), v.level, CONDITION, False, v.const)
            return _Value(
                b.neg(v.sql), v.level, NUMBER, v.nullable, v.const, v.double, inf=v.inf, nan=v.nan
            )
        if isinstance(node, Binary):
            row = recurse == self.row
            if node.op == "^" and _constant(node):
                return self._constant_power(node)
            return self._binary(node.op, recurse(node.left), recurse(node.right), row)
        if isinstance(node, Call) and node.func == "months_in_period":
            months = pandas_periods.months_in(self.grain)
            return _Value(b.num(months), 0, NUMBER, False, True, months != int(months), months)
        if isinstance(node, Call) and node.func in pandas_periods.CALENDAR_FUNCTIONS:
            if self.req.period is None:
                raise calendar_needs_period(node.func, self.in_progress)
            days = b.calendar_days(b.col(PERIOD), self.grain, node.func)
            literal = float(days.this) if isinstance(days, exp.Literal) else None
            return _Value(days, 0, NUMBER, False, literal is not None, False, literal)
        if isinstance(node, Call):
            args = [recurse(a) for a in node.args]
            level = max(a.level for a in args)
            const = all(a.const for a in args)
            inf = any(a.inf for a in args)
            if node.func == "if":
                cond, then, other = args
                sql = b.case((cond.sql, then.sql), default=other.sql)
                nullable = then.nullable or other.nullable
                return _Value(
                    sql, level, NUMBER, nullable, const, inf=inf, nan=then.nan or other.nan
                )
            if node.func == "abs":
                (x,) = args
                sql = exp.Abs(this=x.sql)
                return _Value(sql, level, NUMBER, x.nullable, const, x.double, inf=inf, nan=x.nan)
            args = [self._known(a) for a in args]
            nullable = all(a.nullable for a in args)
            if node.func in ("greatest", "least"):
                if b.extreme_repeats(self.dialect) and any(a.nullable for a in args):
                    row = recurse == self.row  # each argument is read again for the others
                    args = [self._once(a, row) for a in args]
                    level = max(a.level for a in args)
                sql = b.extreme(
                    node.func, [a.sql for a in args], [a.nullable for a in args], self.dialect
                )
                double = any(a.double for a in args)
                return _Value(sql, level, NUMBER, nullable, const, double, inf=inf)
            if node.func == "coalesce":
                sql = b.coalesce(*[a.sql for a in args])
                double = any(a.double for a in args)
                return _Value(sql, level, NUMBER, nullable, const, double, inf=inf)
        raise KPIError(f"cannot compile {node!r} to SQL")  # pragma: no cover

    def _binary(self, op: str, left: _Value, right: _Value, row: bool = False) -> _Value:
        level = max(left.level, right.level)
        const = left.const and right.const
        nullable = left.nullable or right.nullable
        # an infinite operand can make NaN (inf - inf, 0 * inf, inf / inf)
        nan = left.inf or right.inf or left.nan or right.nan
        if op in _ARITH:
            sql = b.binary(_ARITH[op], left.sql, right.sql)
            double = left.double or right.double
            inf = op == "*" or left.inf or right.inf  # sums of finite inputs are taken as finite
            return _Value(sql, level, NUMBER, nullable, const, double, inf=inf, nan=nan)
        if op == "/":
            numerator = left.sql if (left.double or right.double) else b.double(left.sql)
            divisor = right.sql
            if right.number is None or right.number == 0:  # x / 0 is missing, as in pandas
                divisor = exp.Nullif(this=divisor, expression=b.num(0))
            sql = b.binary(exp.Div, numerator, divisor)
            return _Value(sql, level, NUMBER, True, const, inf=True, nan=nan)
        if op == "^":  # POWER's guards read each operand several times: compute them once
            left = self._once(self._known(left), row)
            right = self._once(self._known(right), row)
            level = max(left.level, right.level)
            return _Value(self._power(left, right), level, NUMBER, True, const, inf=True)
        if op in _COMPARE:
            left, right = self._known(left), self._known(right)
            return _Value(
                b.binary(_COMPARE[op], left.sql, right.sql), level, CONDITION, nullable, const
            )
        cls = exp.And if op == "and" else exp.Or
        return _Value(b.binary(cls, left.sql, right.sql), level, CONDITION, nullable, const)

    def _once(self, value: _Value, row: bool) -> _Value:
        """The value as a column of its own when its SQL is more than a column or a literal,
        so that SQL reading it several times (POWER's guards, greatest() in BigQuery) grows
        with the formula, not exponentially with its nesting.

        A row-level column goes to the second window layer at the earliest: the sparse
        layout computes the first layer on the rows with data only (see _sparse_rows)."""
        if value.const or _simple(value.sql):
            return value
        name = self.names.claim("value")
        if row:
            level = max(value.level, 1) + 1
            self.rows.add(level, name, value.sql)
            self.row_bound.add(name)
        else:
            level = value.level + 1
            self.periods.add(level, name, value.sql)
        return _Value(
            b.col(name),
            level,
            value.kind,
            value.nullable,
            double=value.double,
            inf=value.inf,
            nan=value.nan,
        )

    def _reads_bound(self, sql: exp.Expression) -> bool:
        """Does the row-level SQL read a column made by :meth:`_once`?"""
        return any(c.name in self.row_bound for c in sql.find_all(exp.Column))

    def _constant_power(self, node: Binary) -> _Value:
        """A power of constants, computed here as the pandas engine computes it."""
        value = _constant_value(node, pandas_periods.months_in(self.grain))
        known = value if math.isfinite(value) else None
        missing = math.isnan(value)
        return _Value(_literal(value), 0, NUMBER, missing, True, True, known, math.isinf(value))

    def _power(self, base: _Value, exponent: _Value) -> exp.Expression:
        """POWER with the formula language's rule: a negative base with a fractional
        exponent is missing, and so is zero to a negative power (1 / 0 in disguise);
        PostgreSQL would raise an error for both."""
        power = exp.Pow(this=base.sql, expression=exponent.sql)
        whens = []
        e = exponent.sql
        value = exponent.number
        known = value is not None
        if not known or value != int(value):
            frac = b.binary(exp.NEQ, e, exp.Floor(this=e))
            whens.append((b.and_(b.binary(exp.LT, base.sql, b.num(0)), frac), exp.Null()))
        if not known or value < 0:
            zero = b.eq(base.sql, b.num(0))
            if not known:
                zero = b.and_(zero, b.binary(exp.LT, e, b.num(0)))
            whens.append((zero, exp.Null()))
        return b.case(*whens, default=power) if whens else power

    # -- aggregates ---------------------------------------------------------------------------
    def _aggregate(self, node: Call, hint: str | None = None) -> _Value:
        if node in self.agg_cache:
            return self.agg_cache[node]
        func = node.func
        if (func, self.dialect) in UNSUPPORTED:
            raise unsupported(func, self.dialect, self.in_progress[-1] if self.in_progress else "?")
        x = self._known(self.row(node.args[0]))
        value = x.sql
        if len(node.args) > 1:
            value = b.case((self.row(node.args[1]).sql, value))
        fill: float | None = None
        if func == "sum":
            sql, fill = exp.Sum(this=value), 0.0
        elif func == "count":
            sql, fill = b.double(exp.Count(this=value)), 0.0
        elif func == "count_distinct":
            sql, fill = b.double(exp.Count(this=exp.Distinct(expressions=[value]))), 0.0
        elif func == "mean":
            sql = exp.Avg(this=value)
        elif func == "median":
            sql = b.median(value, self.dialect)
        elif func == "min":
            sql = exp.Min(this=value)
        else:
            sql = exp.Max(this=value)
        depth = max(gap_depth(a) for a in node.args)
        if hint is None:  # named after the KPI whose formula it is part of
            hint = f"{self.in_progress[-1]}_{func}" if self.in_progress else func
        name = self.names.claim(hint)
        kpi = self.in_progress[-1] if self.in_progress else "?"
        self.aggregates.append(_Aggregate(name, sql, fill, depth, node, kpi))
        result = _Value(b.col(name), 0, NUMBER, nullable=fill is None or depth > 0)
        if func not in ("count", "count_distinct"):  # a sum of inf and -inf is NaN
            result.inf = result.nan = x.inf
        self.agg_cache[node] = result
        return result

    # -- groups -----------------------------------------------------------------------------
    def _plan_group_carry(self) -> None:
        """An entity-period's group is its row's group, else the entity's last known group
        (a churned customer stays in its last segment), else its first one (``entities``
        holds each entity's first group)."""
        if self.dialect == "duckdb":
            self._carry_with_ignore_nulls()
            return
        # Portable form (PostgreSQL has no IGNORE NULLS): number the runs that start at each
        # period with rows; every period of a run takes the group of the run's first period.
        present = b.case((b.col(PRESENT), exp.Literal.number(1)))
        run = self.rows.over(exp.Count(this=present), frame="running")
        self.rows.add(1, RUN, run)
        for _user, name in self.groups:
            carried = b.window(exp.Max(this=b.col(_row_group(name))), [b.col(ENTITY), b.col(RUN)])
            before = b.eq(b.col(RUN), exp.Literal.number(0))
            self.rows.add(2, name, b.case((before, b.col(_first_group(name))), default=carried))

    def _carry_with_ignore_nulls(self) -> None:
        """DuckDB: the last (else first) known group in the same window pass as previous().
        The groups travel as a struct, so that a NULL group still counts as a known one."""

        def struct(column: Callable[[str], str]) -> exp.Struct:
            return exp.Struct(
                expressions=[
                    exp.PropertyEQ(this=b.ident(name), expression=b.col(column(name)))
                    for _, name in self.groups
                ]
            )

        known = b.case((b.col(PRESENT), struct(_row_group)))
        # at a coarser grain a period's first group is kept apart from its last one
        earliest = b.case((b.col(PRESENT), struct(_first_group if self.coarse else _row_group)))
        last = self.rows.over(exp.IgnoreNulls(this=exp.LastValue(this=known)), frame="running")
        first = self.rows.over(exp.IgnoreNulls(this=exp.FirstValue(this=earliest)), frame="all")
        self.rows.add(1, CARRIED, b.coalesce(last, first))
        for _, name in self.groups:
            self.rows.add(2, name, exp.Dot(this=b.col(CARRIED), expression=b.ident(name)))

    # -- assembling the statement -------------------------------------------------------------
    def statement(self, table: exp.Expression, ids: list[str], layout: str = "auto") -> exp.Select:
        ctes: list[tuple[str, exp.Expression]] = []
        add = ctes.append
        if self.grid:
            self.layout = self._choose_layout(layout)
        elif layout == SPARSE:
            raise SQLCompileError(
                "layout='sparse' skips empty cells of the entity x period grid: it needs an entity"
            )
        sparse = self.grid and self.layout.kind == SPARSE
        if self.carry_groups and not sparse:
            # the carried groups come first in their layers
            planned, self.rows.columns = self.rows.columns, []
            self._plan_group_carry()
            for level, layer in enumerate(planned, start=1):
                for name, expression in layer:
                    self.rows.add(level, name, expression)
        add(("source", self._source(table)))
        if self.grid:
            # the entity cells come first so that the periods' bounds read the (smaller) cells
            # and the source is read once, not materialised for several readers
            sums = self._row_sums()
            if sums is not None:
                add(("row_sums", sums))
            add(("cells", self._entity_cells(rounded=sums is not None)))
        add(("bounds", self._bounds("cells" if self.grid else "source")))
        add(("base_periods", self._base_periods()))
        if self.coarse:
            add(("calendar", self._calendar()))
        add(("periods", self._periods()))
        layers = self.rows.columns
        cells = "cells"
        if self.grid and self.coarse:
            if self._distinct_names():
                add(("distinct_cells", self._distinct_cells()))
            add(("period_cells", self._coarse_cells()))
            cells = "period_cells"
        if sparse:
            relation = self._sparse_rows(cells, add)
            layers = layers[1:]  # the first layer is computed on the rows themselves
        elif self.grid:
            add(("entities", self._entities()))
            grid = self._grid(cells)
            grid.add_comments(
                [_comment(f"dense: every entity in every period; {self.layout.reason}")]
            )
            add(("grid", grid))
            relation = "grid"
        else:
            add(("cells", self._row_cells()))
            relation = "cells"
        first = len(self.rows.columns) - len(layers) + 1
        for i, layer in enumerate(layers, start=first):
            name = f"rows_{i}"
            add((name, _extend(relation, layer)))
            relation = name
        add(("aggregates", self._aggregates(relation, count=not sparse)))
        if self.groups:
            add(("group_keys", self._distinct_groups("group_moves" if sparse else "aggregates")))
        add(("period_values", self._period_values(sparse)))
        relation = "period_values"
        for i, layer in enumerate(self.periods.columns, start=1):
            name = f"kpis_{i}"
            add((name, _extend(relation, layer)))
            relation = name
        final = self._final(relation, ids)
        for name, body in ctes:
            final = final.with_(name, as_=body, copy=False)
        return _rename_clashing_ctes(final, {name for name, _ in ctes}, table)

    # -- the sparse layout ----------------------------------------------------------------------
    def _choose_layout(self, wanted: str) -> Layout:
        """The grid's layout: see :func:`.sparse.choose_layout` for when sparse is exact."""
        if wanted == DENSE:
            return Layout(DENSE, "asked for (layout='dense')")
        chosen = choose_layout(
            [Aggregated(a.kpi, a.node) for a in self.aggregates if a.node is not None],
            [arg for arg, _ in self.row_previous.values()],
            [cond for cond, _ in self.row_ever_before.values()],
            self._fills(),
        )
        if chosen.kind == SPARSE and any(
            self._reads_bound(value.sql) for _, value in self.row_previous.values()
        ):  # the sparse layout rewrites previous() in the first window layer only
            chosen = Layout(DENSE, "previous() of a value computed in a column of its own (^)")
        if wanted == SPARSE and chosen.kind != SPARSE:
            raise SQLCompileError(
                f"layout='sparse' would not give the dense grid's numbers: {chosen.reason}"
            )
        return chosen

    def _sparse_rows(self, cells: str, add: Callable[[tuple[str, exp.Expression]], None]) -> str:
        """The CTEs of the sparse layout; returns the relation the aggregates read.

        ``present_cells`` holds the entity-periods with rows (missing values as declared),
        ``present_rows`` adds the first layer of window columns computed on them:
        ``previous()`` is the row before only where that row is the period before, else the
        value a period without rows has. ``rows_1`` adds the period after each row when the
        entity has none there (where churn shows up), with the row's group carried forward.
        Groups: ``group_changes``/``group_moves`` count where entities enter and change
        groups, so that the (group, period) pairs of the dense grid are all kept."""
        add(("span", self._span()))
        add(("present_cells", self._present_cells(cells)))
        present = self._present_rows()
        present.add_comments(
            [_comment(f"sparse: rows and the period after each; {self.layout.reason}")]
        )
        add(("present_rows", present))
        relation = "present_rows"
        if self.row_previous:
            add(("rows_1", self._with_next_periods()))
            relation = "rows_1"
        if self.groups:
            add(("group_changes", self._group_changes()))
            add(("group_moves", self._group_moves()))
        return relation

    def _span(self) -> exp.Select:
        return exp.select(
            b.alias(exp.Min(this=b.col(PERIOD)), FIRST_PERIOD),
            b.alias(exp.Max(this=b.col(PERIOD)), LAST_PERIOD),
        ).from_("periods")

    def _present_cells(self, cells: str) -> exp.Select:
        period = b.col(PERIOD, "c") if self.coarse else b.alias(b.col(BASE, "c"), PERIOD)
        items: list[exp.Expression] = [b.col(ENTITY, "c"), period]
        for dp, (_, _, name) in self.datapoints.items():
            items.append(b.alias(self._cell_value(dp, self._filled_in("c")), name))
        for _, name in self.groups:
            items.append(b.col(name, "c"))
            if self.coarse:
                items.append(b.col(_first_group(name), "c"))
        items += [b.col(n, "c") for n in self._supplied_names()]
        items += [b.col(n, "c") for n in self.held]
        items += [b.col(FIRST_PERIOD, "s"), b.col(LAST_PERIOD, "s")]
        return (
            exp.select(*items)
            .from_(exp.to_table(cells).as_("c"))
            .join(exp.to_table("span").as_("s"), join_type="CROSS")
        )

    def _present_rows(self) -> exp.Select:
        columns: list[tuple[str, exp.Expression]] = []
        for name, expression in self.rows.columns[0] if self.rows.columns else []:
            if name in self.row_previous:
                expression = self._sparse_previous(*self.row_previous[name])
            columns.append((name, expression))
        if self.row_previous:
            columns.append((NEXT_PERIOD, self.rows.over(exp.Lead(this=b.col(PERIOD)))))
        if self.groups:
            first_row = b.is_null(self.rows.over(exp.Lag(this=b.col(PERIOD))))
            columns.append((FIRST_ROW, first_row))
            for _, name in self.groups:
                before = b.case(
                    (first_row.copy(), b.col(self._entry_group(name))),
                    default=self.rows.over(exp.Lag(this=b.col(name))),
                )
                columns.append((_before_group(name), before))
        return _extend("present_cells", columns)

    def _entry_group(self, name: str) -> str:
        """An entity's group before its first row: at a coarser grain the group at its first
        base period, else its first row's."""
        return _first_group(name) if self.coarse else name

    def _sparse_previous(self, arg: Node, value: _Value) -> exp.Expression:
        adjacent = b.eq(
            self.rows.over(exp.Lag(this=b.col(PERIOD))),
            b.binary(exp.Sub, b.col(PERIOD), b.num(1)),
        )
        whens = [(adjacent, self.rows.over(exp.Lag(this=value.sql.copy())))]
        # the first period has no period before: NULL (FALSE for a condition, as the grid's
        # LAG(cond, 1, FALSE)); after a period without rows, the value such a period has
        at_start = exp.false() if value.kind == CONDITION else exp.Null()
        after_gap = _literal(fill_value(arg, self._fills()))
        if after_gap != at_start:
            whens.append((b.eq(b.col(PERIOD), b.col(FIRST_PERIOD)), at_start))
        return b.case(*whens, default=None if isinstance(after_gap, exp.Null) else after_gap)

    def _with_next_periods(self) -> exp.Union:
        """The rows, and the period after each row where the entity has none."""
        names = [ENTITY, PERIOD, *[n for _, _, n in self.datapoints.values()]]
        names += [n for _, n in self.groups] + self._supplied_names()
        layer = [n for n, _ in self.rows.columns[0]]
        rows = exp.select(*[b.col(n) for n in [*names, *layer]]).from_("present_rows")
        items: list[exp.Expression] = [
            b.col(ENTITY, "r"),
            b.alias(b.binary(exp.Add, b.col(PERIOD, "r"), b.num(1)), PERIOD),
        ]
        for spec, _, name in self.datapoints.values():
            fill = b.num(0) if spec.missing == "zero" else exp.Null()
            items.append(b.alias(fill, name))
        items += [b.col(n, "r") for _, n in self.groups]  # a churned entity keeps its group
        items += [b.alias(exp.Null(), n) for n in self._supplied_names()]
        for name in layer:
            if name in self.row_previous:  # the period before is the row
                value = _qualified(self.row_previous[name][1].sql, "r")
            else:  # ever_before: the row's own condition counts too
                cond = self.row_ever_before[name][1]
                value = b.binary(exp.Or, b.col(name, "r"), _qualified(_cond(cond), "r"))
            items.append(b.alias(value, name))
        after = b.binary(exp.Add, b.col(PERIOD, "r"), b.num(1))
        gap = exp.Or(
            this=b.is_null(b.col(NEXT_PERIOD, "r")),
            expression=b.binary(exp.GT, b.col(NEXT_PERIOD, "r"), after),
        )
        where = b.and_(
            exp.Paren(this=gap), b.binary(exp.LT, b.col(PERIOD, "r"), b.col(LAST_PERIOD, "r"))
        )
        following = exp.select(*items).from_(exp.to_table("present_rows").as_("r")).where(where)
        return exp.union(rows, following, distinct=False)

    def _group_changes(self) -> exp.Union:
        """+1 where an entity enters a group, -1 where it leaves one. Every entity is in the
        dense grid from the first period, in its first group, and stays in the last group it
        had a row in."""
        groups = [n for _, n in self.groups]
        entry = (
            exp.select(
                *[b.alias(b.col(self._entry_group(n)), n) for n in groups],
                b.alias(b.col(FIRST_PERIOD), PERIOD),
                b.alias(b.num(1), MOVED),
            )
            .from_("present_rows")
            .where(b.col(FIRST_ROW))
        )
        changed = [
            exp.NullSafeNEQ(this=b.col(_before_group(n)), expression=b.col(n)) for n in groups
        ]
        moved = changed[0]
        for c in changed[1:]:
            moved = b.binary(exp.Or, moved, c)
        leave = (
            exp.select(
                *[b.alias(b.col(_before_group(n)), n) for n in groups],
                b.col(PERIOD),
                b.alias(b.num(-1), MOVED),
            )
            .from_("present_rows")
            .where(moved)
        )
        join = (
            exp.select(*[b.col(n) for n in groups], b.col(PERIOD), b.alias(b.num(1), MOVED))
            .from_("present_rows")
            .where(moved.copy())
        )
        return exp.union(exp.union(entry, leave, distinct=False), join, distinct=False)

    def _group_moves(self) -> exp.Select:
        keys = [b.col(n) for _, n in self.groups] + [b.col(PERIOD)]
        total = b.alias(exp.Sum(this=b.col(MOVED)), MOVED)
        return exp.select(*keys, total).from_("group_changes").group_by(*[k.copy() for k in keys])

    def _source(self, table: exp.Expression) -> exp.Select:
        req = self.req
        items: list[exp.Expression] = []
        if self.grid:
            items.append(b.alias(b.col(req.entity), ENTITY))
        joins = []
        if req.period is None:
            base = exp.Literal.number(0)
        elif self.fmt.kind == "mapping":
            base = b.col("ordinal", "period_map")
            values = exp.Values(
                expressions=[
                    exp.Tuple(expressions=[b.string(raw), b.num(o)]) for raw, o in self.fmt.mapping
                ],
                alias=exp.TableAlias(
                    this=b.ident("period_map"), columns=[b.ident("raw"), b.ident("ordinal")]
                ),
            )
            on = b.eq(b.cast(b.col(req.period), "VARCHAR"), b.col("raw", "period_map"))
            joins.append((values, on))
        else:
            base = b.base_ordinal(b.col(req.period), self.fmt)
        items.append(b.alias(base, BASE))
        for user, name in self.groups:
            items.append(b.col(user) if user == name else b.alias(b.col(user), name))

        def read(dp: str) -> exp.Expression:
            spec, column, _ = self.datapoints[dp]
            value = b.numeric_input(b.col(column), self.dialect)
            if self.req.drop_invalid and (spec.minimum is not None or spec.maximum is not None):
                value = b.case((_within(value.copy(), spec), value))  # outside: no value
            return value

        for dp, (_, _, name) in self.datapoints.items():
            # without an entity each row is a cell: a row with two exclusive flags set
            value = read(dp) if self.grid else self._cell_value(dp, read)
            items.append(b.alias(value, name))
        for column, name, high in self.supplied.values():
            items.append(b.alias(b.numeric_input(b.col(column), self.dialect), name))
            if high != name:
                items.append(b.alias(b.col(name), high))
        if self.order is not None and self.grid:
            items.append(b.alias(self.order, ORDER))
        for column, name in self._order_names.items():
            items.append(b.alias(b.col(column), name))
        select = exp.select(*items).from_(table)
        for values, on in joins:
            select = select.join(values, on=on, join_type="LEFT")
        if self.grid:
            # A row without an entity belongs to no one's history. The pandas engine (and
            # evaluate(engine="duckdb"), which checks first) refuse such data; a statement run
            # elsewhere leaves those rows out, the same way in the dense and sparse layouts.
            has_entity = b.not_null(b.col(req.entity))
            select = select.where(has_entity)
        return select

    def _bounds(self, relation: str) -> exp.Select:
        return exp.select(
            b.alias(exp.Min(this=b.col(BASE)), "_first"),
            b.alias(exp.Max(this=b.col(BASE)), "_last"),
        ).from_(relation)

    def _base_periods(self) -> exp.Select:
        table, value = b.number_series(b.col("_first"), b.col("_last"), BASE, self.dialect)
        select = exp.select(b.alias(value, BASE) if not _is_col(value, BASE) else value).from_(
            "bounds"
        )
        if table is not None:
            select = select.join(table, join_type="CROSS" if self.dialect != "snowflake" else None)
        return select

    def _calendar(self) -> exp.Select:
        coarse = b.coarse_ordinal(b.col(BASE), self.base, self.grain)
        return exp.select(BASE, b.alias(coarse, PERIOD)).from_("base_periods")

    def _periods(self) -> exp.Select:
        label_needed = self.req.period is not None
        if not self.coarse:
            items = [
                b.alias(b.col(BASE), PERIOD),
                b.alias(b.col(BASE), STOCK_BASE),
                b.alias(_minus_first(b.col(BASE)), INDEX),
            ]
            if label_needed:
                items.append(b.alias(self._label(b.col(BASE)), LABEL))
            return exp.select(*items).from_("base_periods")
        items = [
            b.col(PERIOD),
            b.alias(exp.Max(this=b.col(BASE)), STOCK_BASE),
            b.alias(_minus_first(b.col(PERIOD)), INDEX),
            b.alias(self._label(b.col(PERIOD)), LABEL),
        ]
        rules = {spec.coarsening for spec, _, _ in self.datapoints.values()}
        if "opening" in rules:  # only when used: the statement stays as it was otherwise
            items.append(b.alias(exp.Min(this=b.col(BASE)), OPEN_BASE))
        if "average" in rules:
            items.append(b.alias(exp.Count(this=b.col(BASE)), BASE_COUNT))
        return exp.select(*items).from_("calendar").group_by(b.col(PERIOD))

    def _label(self, p: exp.Expression) -> exp.Expression:
        return b.period_label(p, self.grain, self.fmt.labels)

    def _row_sums(self) -> exp.Select | None:
        """Datapoints whose rows are summed, as the sum, the number of rows and the sum's
        floating-point error bound, with every other column as ``_entity_cells`` has it; the
        cells then round each sum in decimal from these named parts (``sqlbuild.rounded_sum``)
        instead of one 25-line expression per datapoint. None when nothing is summed."""
        if not any(spec.rows == "sum" for spec, _, _ in self.datapoints.values()):
            return None
        items: list[exp.Expression] = [b.col(ENTITY), b.col(BASE)]
        for spec, _, name in self.datapoints.values():
            if spec.rows == "sum":
                total, rows, error = b.sum_parts(b.col(name))
                items += [b.alias(total, name), b.alias(rows, _rows_of(name))]
                items.append(b.alias(error, _error_of(name)))
            else:
                items.append(b.alias(self._combine(spec, b.col(name)), name))
        for _user, name in self.groups:
            items.append(b.alias(exp.Max(this=b.col(name)), name))  # see _entity_cells
        items += self._supplied_columns(None)
        return exp.select(*items).from_("source").group_by(b.col(ENTITY), b.col(BASE))

    def _entity_cells(self, rounded: bool = False) -> exp.Select:
        """One row per entity and base period: each datapoint's rows combined per its rule.
        ``rounded``: read from ``row_sums`` and round its sums there."""
        if rounded:
            items: list[exp.Expression] = [b.col(ENTITY), b.col(BASE)]
            for spec, _, name in self.datapoints.values():
                value = b.col(name)
                if spec.rows == "sum":
                    value = b.rounded_sum(value, b.col(_rows_of(name)), b.col(_error_of(name)))
                items.append(b.alias(value, name))
            items += [b.col(name) for _user, name in self.groups]
            items += [b.col(n) for n in self._supplied_names()]
            select = exp.select(*items).from_("row_sums")
            select.add_comments([b.DECIMAL_SUM_COMMENT])
            return select
        items = [b.col(ENTITY), b.col(BASE)]
        for spec, _, name in self.datapoints.values():
            items.append(b.alias(self._combine(spec, b.col(name)), name))
        for _user, name in self.groups:
            # rows of one entity-period that disagree on the group: the largest group, as
            # the pandas engine takes it (never the row order, which would make the result
            # depend on how the rows happen to be sorted)
            items.append(b.alias(exp.Max(this=b.col(name)), name))
        items += self._supplied_columns(None)
        return exp.select(*items).from_("source").group_by(b.col(ENTITY), b.col(BASE))

    def _supplied_columns(self, table: str | None) -> list[exp.Expression]:
        items: list[exp.Expression] = []
        for _, name, high in self.supplied.values():
            items.append(b.alias(exp.Min(this=b.col(name, table)), name))
            if high != name:
                items.append(b.alias(exp.Max(this=b.col(high, table)), high))
        return items

    def _supplied_names(self) -> list[str]:
        return [n for _, name, high in self.supplied.values() for n in dict.fromkeys([name, high])]

    def _combine(self, spec: Datapoint, value: exp.Expression) -> exp.Expression:
        how = spec.rows
        if how == "sum":  # rows added in decimal where there are several
            return b.decimal_sum(value, exp.Count(this=value.copy()))
        if how == "mean":
            return exp.Avg(this=value)
        if how == "distinct":  # no known value: no value, filled as the datapoint says
            count = exp.Count(this=exp.Distinct(expressions=[value]))
            return exp.Nullif(this=count, expression=b.num(0))
        if how == "min":
            return exp.Min(this=value)
        if how == "max":
            return exp.Max(this=value)
        known = b.case((b.not_null(value.copy()), self._row_order(spec)))
        return b.max_by(value, known, self.dialect, smallest=how == "first")

    def _coarse_cells(self) -> exp.Select:
        """Base-period cells onto the output grain: a stock is read at the coarse period's last
        base period, a flow is summed (all-missing stays missing)."""
        items: list[exp.Expression] = [b.col(ENTITY, "c"), b.col(PERIOD, "k")]
        for spec, _, name in self.datapoints.values():
            items.append(b.alias(self._coarse_value(spec, name), name))
        for _, name in self.groups:  # the group at the coarse period's end (and start)
            latest = b.max_by(b.col(name, "c"), b.col(BASE, "c"), self.dialect)
            items.append(b.alias(latest, name))
            # DuckDB carries the first group back to the periods before an entity's first
            # row from here, and so does the sparse layout in every dialect
            if self.dialect == "duckdb" or self.layout.kind == SPARSE:
                earliest = b.max_by(b.col(name, "c"), b.col(BASE, "c"), self.dialect, True)
                items.append(b.alias(earliest, _first_group(name)))
        items += self._supplied_columns("c")
        items += [b.alias(self._held_flag(cond), name) for name, cond in self.held.items()]
        select = (
            exp.select(*items)
            .from_(exp.to_table("cells").as_("c"))
            .join(exp.to_table("calendar").as_("k"), on=b.eq(b.col(BASE, "k"), b.col(BASE, "c")))
            .join(exp.to_table("periods").as_("p"), on=b.eq(b.col(PERIOD, "p"), b.col(PERIOD, "k")))
        )
        if self._distinct_names():
            on = b.and_(
                b.eq(b.col(ENTITY, "d"), b.col(ENTITY, "c")),
                b.eq(b.col(PERIOD, "d"), b.col(PERIOD, "k")),
            )
            select = select.join(exp.to_table("distinct_cells").as_("d"), on=on, join_type="LEFT")
        return select.group_by(b.col(ENTITY, "c"), b.col(PERIOD, "k"))

    def _distinct_names(self) -> list[str]:
        return [n for spec, _, n in self.datapoints.values() if spec.coarsening == "distinct"]

    def _distinct_cells(self) -> exp.Select:
        """time: distinct: the different values over all the rows of an entity's coarse
        period, counted again from the rows (a sum of the months would count twice)."""
        items: list[exp.Expression] = [b.col(ENTITY, "s"), b.col(PERIOD, "k")]
        for name in self._distinct_names():
            count = exp.Count(this=exp.Distinct(expressions=[b.col(name, "s")]))
            items.append(b.alias(exp.Nullif(this=count, expression=b.num(0)), name))
        return (
            exp.select(*items)
            .from_(exp.to_table("source").as_("s"))
            .join(exp.to_table("calendar").as_("k"), on=b.eq(b.col(BASE, "k"), b.col(BASE, "s")))
            .group_by(b.col(ENTITY, "s"), b.col(PERIOD, "k"))
        )

    def _coarse_value(self, spec: Datapoint, name: str) -> exp.Expression:
        """One entity's base-period cells ``c`` combined into the coarse period ``p`` by the
        datapoint's time rule (see ``evaluation._coarsen_grid``)."""
        value = b.col(name, "c")
        rule = spec.coarsening
        if rule == "distinct":
            return exp.Max(this=b.col(name, "d"))
        if rule in ("closing", "opening"):
            at = b.eq(b.col(BASE, "c"), b.col(STOCK_BASE if rule == "closing" else OPEN_BASE, "p"))
            return exp.Max(this=b.case((at, value)))
        if rule == "event":
            return exp.Max(this=value)
        if rule == "latest":
            known = b.case((b.not_null(value.copy()), b.col(BASE, "c")))
            return b.max_by(value.copy(), known, self.dialect)
        if rule == "average":  # cells without rows are 0 (missing: zero) or skipped (null)
            if spec.missing == "zero":
                total = exp.Sum(this=b.coalesce(value, b.num(0)))
                return b.binary(exp.Div, b.double(total), exp.Max(this=b.col(BASE_COUNT, "p")))
            return exp.Avg(this=b.double(value))
        # a flow: a total of several nonzero periods is rounded as rows are
        nonzero = exp.Nullif(this=value, expression=b.num(0))
        return b.decimal_sum(value.copy(), exp.Count(this=nonzero))

    def _entities(self) -> exp.Select:
        """Every entity seen anywhere; outside DuckDB also with its first group (carried back
        to the periods before its first row)."""
        if not self.groups or self.dialect == "duckdb":
            return exp.select(ENTITY).distinct().from_("cells")
        items: list[exp.Expression] = [b.col(ENTITY)]
        for _, name in self.groups:
            first = b.max_by(b.col(name), b.col(BASE), self.dialect, smallest=True)
            items.append(b.alias(first, _first_group(name)))
        return exp.select(*items).from_("cells").group_by(b.col(ENTITY))

    def _grid(self, cells: str) -> exp.Select:
        """Every entity in every period; an entity without rows there is 0 or NULL."""
        cell_period = PERIOD if self.coarse else BASE
        items: list[exp.Expression] = [b.col(ENTITY, "e"), b.col(PERIOD, "p")]
        for dp, (_, _, name) in self.datapoints.items():
            items.append(b.alias(self._cell_value(dp, self._filled_in("c")), name))
        for _, name in self.groups:
            items.append(b.alias(b.col(name, "c"), _row_group(name)))
            if self.dialect != "duckdb":
                items.append(b.col(_first_group(name), "e"))
            elif self.coarse:
                items.append(b.col(_first_group(name), "c"))
        if self.groups:
            present = b.not_null(b.col(ENTITY, "c"))
            items.append(b.alias(present, PRESENT))
        items += [b.alias(b.col(n, "c"), n) for n in self._supplied_names()]
        items += [b.alias(b.coalesce(b.col(n, "c"), b.num(0)), n) for n in self.held]
        on = b.and_(
            b.eq(b.col(ENTITY, "c"), b.col(ENTITY, "e")),
            b.eq(b.col(cell_period, "c"), b.col(PERIOD, "p")),
        )
        return (
            exp.select(*items)
            .from_(exp.to_table("entities").as_("e"))
            .join(exp.to_table("periods").as_("p"), join_type="CROSS")
            .join(exp.to_table(cells).as_("c"), on=on, join_type="LEFT")
        )

    def _row_cells(self) -> exp.Select:
        """Without an entity each row is a cell; at a coarser grain a stock counts only in the
        coarse period's last base period."""
        if not self.coarse:
            items = [b.alias(b.col(BASE), PERIOD), *[b.col(n) for _, n in self.groups]]
            items += [b.col(n) for _, _, n in self.datapoints.values()]
            items += [b.col(n) for n in self._supplied_names()]
            return exp.select(*items).from_("source")
        items = [b.col(PERIOD, "k"), *[b.col(n, "s") for _, n in self.groups]]
        for spec, _, name in self.datapoints.values():
            value: exp.Expression = b.col(name, "s")
            rule = spec.coarsening
            if rule in ("closing", "opening"):
                at = STOCK_BASE if rule == "closing" else OPEN_BASE
                value = b.case((b.eq(b.col(BASE, "s"), b.col(at, "p")), value))
            elif rule == "average":  # a row's share of the base periods (right for sum())
                value = b.binary(exp.Div, b.double(value), b.col(BASE_COUNT, "p"))
            elif rule == "latest":  # rows of the last base period with a known value
                known = b.case((b.not_null(value.copy()), b.col(BASE, "s")))
                window = exp.Window(this=exp.Max(this=known), partition_by=[b.col(PERIOD, "k")])
                value = b.case((b.eq(b.col(BASE, "s"), window), value))
            items.append(b.alias(value, name))
        items += [b.col(n, "s") for n in self._supplied_names()]
        return (
            exp.select(*items)
            .from_(exp.to_table("source").as_("s"))
            .join(exp.to_table("calendar").as_("k"), on=b.eq(b.col(BASE, "k"), b.col(BASE, "s")))
            .join(exp.to_table("periods").as_("p"), on=b.eq(b.col(PERIOD, "p"), b.col(PERIOD, "k")))
        )

    def _aggregates(self, relation: str, count: bool = True) -> exp.Select:
        keys = [b.col(n) for _, n in self.groups] + [b.col(PERIOD)]
        items = [*keys]
        if count:  # the dense grid's cells per group and period (sparse: see period_values)
            items.append(b.alias(exp.Count(this=exp.Star()), CELLS))
        items += [b.alias(a.sql, a.name) for a in self.aggregates]
        return exp.select(*items).from_(relation).group_by(*keys)

    def _distinct_groups(self, relation: str) -> exp.Select:
        # groups without any cell would give no output row: the aggregates' groups suffice
        # (sparse: the groups entities move into, which include those of empty cells)
        return exp.select(*[b.col(n) for _, n in self.groups]).distinct().from_(relation)

    def _period_values(self, sparse: bool = False) -> exp.Select:
        """Aggregates on every (group, period) pair; empty pairs get 0 for sum and count.

        ``_cells`` counts the pair's cells in the dense grid. The sparse layout has no grid to
        count: without groups every entity is in every period; with groups the entities in a
        group are the running sum of those that moved into it less those that moved out."""
        items: list[exp.Expression] = [b.col(n, "g") for _, n in self.groups]
        items += [b.col(PERIOD, "p"), b.col(INDEX, "p")]
        if self.req.period is not None:
            items.append(b.col(LABEL, "p"))
        if not sparse:
            cells: exp.Expression = b.coalesce(b.col(CELLS, "a"), b.num(0))
        elif self.groups:
            moved = exp.Sum(this=b.coalesce(b.col(MOVED, "m"), b.num(0)))
            cells = b.window(
                moved,
                [b.col(n, "g") for _, n in self.groups],
                [b.ascending(b.col(PERIOD, "p"), self.dialect)],
                "running",
            )
        else:
            cells = b.num(1)
        items.append(b.alias(cells, CELLS))
        for agg in self.aggregates:
            value: exp.Expression = b.col(agg.name, "a")
            if agg.fill is not None:
                value = b.coalesce(value, b.num(agg.fill))
            if agg.depth:
                defined = b.binary(exp.GTE, b.col(INDEX, "p"), b.num(agg.depth))
                value = b.case((defined, value))
            items.append(b.alias(value, agg.name))
        on = b.eq(b.col(PERIOD, "a"), b.col(PERIOD, "p"))
        select = exp.select(*items).from_(exp.to_table("periods").as_("p"))
        if self.groups:
            select = select.join(exp.to_table("group_keys").as_("g"), join_type="CROSS")
            on = b.and_(on, *self._same_groups("a"))
        select = select.join(exp.to_table("aggregates").as_("a"), on=on, join_type="LEFT")
        if sparse and self.groups:
            on = b.and_(b.eq(b.col(PERIOD, "m"), b.col(PERIOD, "p")), *self._same_groups("m"))
            moves = exp.to_table("group_moves").as_("m")
            select = select.join(moves, on=on, join_type="LEFT")
        return select

    def _same_groups(self, table: str) -> list[exp.Expression]:
        """``table``'s groups are those of ``group_keys`` (``g``), a NULL group included."""
        return [
            exp.NullSafeEQ(this=b.col(n, table), expression=b.col(n, "g")) for _, n in self.groups
        ]

    def _final(self, relation: str, ids: list[str]) -> exp.Select:
        items: list[exp.Expression] = []
        if self.req.period is not None:
            items.append(b.alias(b.col(LABEL), self.req.period))
        for user, name in self.groups:
            items.append(b.col(name) if user == name else b.alias(b.col(name), user))
        for kpi_id in ids:
            value = self.kpi_values[kpi_id].sql
            # the pandas engine reports a non-finite KPI value as missing
            guarded = b.case((b.finite(value, self.dialect), value))
            items.append(b.alias(guarded, kpi_id))
        order = [b.ascending(b.col(PERIOD), self.dialect)]
        order += [exp.Ordered(this=b.col(n), nulls_first=False) for _, n in self.groups]
        return (
            exp.select(*items)
            .from_(relation)
            .where(b.binary(exp.GT, b.col(CELLS), b.num(0)))
            .order_by(*order)
        )


def _rename_clashing_ctes(tree: exp.Select, names: set[str], table: exp.Expression) -> exp.Select:
    """If the input table shares a name with one of our CTEs, prefix the CTEs (a CTE would
    otherwise hide the table in some engines)."""
    wanted = table.name.lower() if isinstance(table, exp.Table) else ""
    if wanted not in names:
        return tree
    source = next(c for c in tree.find_all(exp.CTE) if c.alias == "source")
    user_table = source.this.args["from_"].this
    for node in list(tree.find_all(exp.Table)):
        if node is not user_table and node.name in names and not node.db:
            node.set("this", b.ident(f"kpi_{node.name}"))
    for cte in tree.find_all(exp.CTE):
        cte.set("alias", exp.TableAlias(this=b.ident(f"kpi_{cte.alias}")))
    return tree


def _filled(spec: Datapoint, value: exp.Expression) -> exp.Expression:
    """A datapoint's value in a cell: where the entity has no row, 0 or NULL as it declares."""
    return b.coalesce(value, b.num(0)) if spec.missing == "zero" else value


def _within(value: exp.Expression, spec: Datapoint) -> exp.Expression:
    """The datapoint's value lies in its valid range."""
    parts = []
    if spec.minimum is not None:
        parts.append(b.binary(exp.GTE, value.copy(), b.num(spec.minimum)))
    if spec.maximum is not None:
        parts.append(b.binary(exp.LTE, value.copy(), b.num(spec.maximum)))
    return b.and_(*parts)


def _cond(v: _Value) -> exp.Expression:
    """A condition as true/false: where SQL would say NULL, numpy says false."""
    return b.coalesce(v.sql, exp.false()) if v.nullable else v.sql


def _row_group(name: str) -> str:
    return f"_row_{name}"


def _first_group(name: str) -> str:
    return f"_first_{name}"


def _comment(text: str) -> str:
    return " " + text.replace("*/", "* /") + " "


def _before_group(name: str) -> str:
    return f"_before_{name}"


def _qualified(e: exp.Expression, table: str) -> exp.Expression:
    """A copy of ``e`` whose columns are read from ``table``."""
    e = e.copy()
    for column in list(e.find_all(exp.Column)):
        if not column.table:
            column.set("table", b.ident(table))
    return e


def _literal(value) -> exp.Expression:
    """A value of the pandas engine's (bool, float, NaN, inf) as SQL."""
    if np.asarray(value).dtype == bool:
        return exp.true() if bool(value) else exp.false()
    number = float(value)
    if math.isnan(number):
        return exp.Null()
    if math.isinf(number):
        return b.infinity() if number > 0 else b.neg(b.infinity())
    return b.num(number)


def _simple(e: exp.Expression) -> bool:
    """A column, a literal or NULL (possibly negated or cast): cheap to write twice."""
    while isinstance(e, exp.Neg | exp.Paren | exp.Cast):
        e = e.this
    return isinstance(e, exp.Column | exp.Literal | exp.Null | exp.Boolean)


def _constant(node: Node) -> bool:
    """Is the formula made of numbers and months_in_period() only?"""
    return all(
        isinstance(n, Number | Binary | Unary) or (isinstance(n, Call) and n.func in _CONSTANT)
        for n in node.walk()
    )


def _constant_value(node: Node, months: float) -> float:
    """A constant formula's value, by the pandas engine's own operators."""
    from ..arithmetic import SCALAR_FUNCS, binary

    def value(n: Node):
        if isinstance(n, Number):
            return np.float64(n.value)
        if isinstance(n, Unary):
            x = value(n.operand)
            return np.logical_not(x) if n.op == "not" else np.negative(x)
        if isinstance(n, Binary):
            return binary(n.op, value(n.left), value(n.right))
        if isinstance(n, Call) and n.func == "months_in_period":
            return np.float64(months)
        return SCALAR_FUNCS[n.func](*[value(a) for a in n.args])

    return float(value(node))


def _rows_of(name: str) -> str:
    return f"_{name}_rows"


def _error_of(name: str) -> str:
    return f"_{name}_error"


def _minus_first(p: exp.Expression) -> exp.Expression:
    return b.binary(exp.Sub, p, b.window(exp.Min(this=p.copy()), []))


def _is_col(e: exp.Expression, name: str) -> bool:
    return isinstance(e, exp.Column) and e.name == name


def _extend(relation: str, columns: list[tuple[str, exp.Expression]]) -> exp.Select:
    return exp.select(exp.Star(), *[b.alias(e, n) for n, e in columns]).from_(relation, copy=False)


def _hint(node: Node) -> str:
    """A short readable name for the column holding previous(node)."""
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call) and node.func == "previous":
        return "previous_" + _hint(node.args[0])
    return "value"
