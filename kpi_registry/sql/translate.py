"""Translating a formula to SQL expressions: one handler per node type (``NODES``) and one per
formula function (``FUNCTIONS``), in the manner of sqlglot's Generator TRANSFORMS.

A formula is read at two levels: row-level (per entity-period cell: datapoints, arithmetic,
``previous()``, ``ever_before()``) inside aggregates, and period-level (aggregates, KPIs and what
combines them). :class:`FormulaTranslator` holds the translation; the statement's planner
(``compiler._Compiler``) subclasses it and supplies what a translation reads from the query:
``datapoint()``, ``kpi()``, the window layers (``rows``, ``periods``) and the cell fills.

Adding a formula function: a handler in ``FUNCTIONS`` (or, where a dialect has no exact form,
a reason in its record's ``unsupported`` in ``dialects.py``); tests/test_sql_functions_cover.py
fails until one of the two is there.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from sqlglot import exp

from .. import periods as pandas_periods
from ..errors import ColumnNotGivenError
from ..formula import AGGREGATES, Binary, Call, Name, Node, Number, Unary, gap_depth, to_text
from ..request import calendar_needs_period, needs_period
from . import sqlbuild as b
from .columns import PERIOD
from .dialects import RECORDS
from .sparse import holds_in_empty_cell, time_calls
from .spec import SQLCompileError

NUMBER, CONDITION = "number", "condition"
_COMPARE = {"=": exp.EQ, "!=": exp.NEQ, "<": exp.LT, "<=": exp.LTE, ">": exp.GT, ">=": exp.GTE}
_ARITH = {"+": exp.Add, "-": exp.Sub, "*": exp.Mul}
# functions a constant formula may call: they read no data
_CONSTANT = {"months_in_period", "if", "abs", "greatest", "least", "coalesce"}


@dataclass
class Value:
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


class Layers:
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
class Aggregate:
    name: str
    sql: exp.Expression
    fill: float | None  # value where a (group, period) has no qualifying cell
    depth: int  # leading periods that are undefined (one per previous())
    node: Call | None = None  # the formula's aggregate; None for a KPI supplied as a column
    kpi: str = ""


class FormulaTranslator:
    """Formula nodes to SQL, cached per node and level. The planner subclass provides
    ``datapoint``, ``kpi``, ``_fills``, ``rows``/``periods`` (window layers), ``names``,
    ``aggregates``, ``held`` and ``row_previous``/``row_ever_before``."""

    # -- dispatch ---------------------------------------------------------------------------
    def row(self, node: Node) -> Value:
        """A row-level (per cell) expression: datapoints, arithmetic, previous, ever_before."""
        if node not in self.row_cache:
            self.row_cache[node] = NODES[type(node)](self, node, True)
        return self.row_cache[node]

    def period(self, node: Node) -> Value:
        """A period-level expression: aggregates, KPIs and what combines them."""
        if node not in self.period_cache:
            self.period_cache[node] = NODES[type(node)](self, node, False)
        return self.period_cache[node]

    def at(self, node: Node, row: bool) -> Value:
        return self.row(node) if row else self.period(node)

    def _kpi_reference(self, value: Value) -> Value:
        """A KPI as another formula reads it: missing where it is not a finite number, as
        the pandas engine stores every KPI's value (1 / x is missing, not 0, where x
        overflowed)."""
        if not (value.inf or value.nan):
            return value
        guarded = b.case((b.finite(value.sql, self.dialect), value.sql.copy()))
        return Value(guarded, value.level, NUMBER, True, value.const, value.double)

    def _known(self, value: Value) -> Value:
        """The value with NaN as NULL, for what tells them apart: comparisons, coalesce(),
        greatest(), least(), aggregates and ^ (NaN ^ 0 is 1, NULL ^ 0 is NULL)."""
        if not value.nan:
            return value
        sql = b.not_nan(value.sql, self.dialect)
        return Value(sql, value.level, value.kind, True, value.const, value.double, inf=value.inf)

    def _require_period(self, func: str) -> None:
        if self.req.period is None:
            raise needs_period(func, self.in_progress)

    def _require_grid(self, func: str) -> None:
        if not self.grid:
            raise ColumnNotGivenError(
                "entity", f"{func}() on datapoints compares an entity with itself over time"
            )

    def _previous(self, value: Value, layers: Layers, arg: Node, row: bool) -> Value:
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
        return Value(
            b.col(name),
            level,
            value.kind,
            nullable,
            double=value.double,
            inf=value.inf,
            nan=value.nan,
        )

    def _ever_before(self, node: Node, cond: Value) -> Value:
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
        return Value(b.col(name), level, CONDITION, nullable=False)

    def _held_in_period(self, node: Node, cond: Value) -> Value:
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
        return Value(b.eq(b.col(name), b.num(1)), 0, CONDITION, nullable=False)

    def _binary(self, op: str, left: Value, right: Value, row: bool = False) -> Value:
        level = max(left.level, right.level)
        const = left.const and right.const
        nullable = left.nullable or right.nullable
        # an infinite operand can make NaN (inf - inf, 0 * inf, inf / inf)
        nan = left.inf or right.inf or left.nan or right.nan
        if op in _ARITH:
            sql = b.binary(_ARITH[op], left.sql, right.sql)
            double = left.double or right.double
            inf = op == "*" or left.inf or right.inf  # sums of finite inputs are taken as finite
            return Value(sql, level, NUMBER, nullable, const, double, inf=inf, nan=nan)
        if op == "/":
            numerator = left.sql if (left.double or right.double) else b.double(left.sql)
            divisor = right.sql
            if right.number is None or right.number == 0:  # x / 0 is missing, as in pandas
                divisor = exp.Nullif(this=divisor, expression=b.num(0))
            sql = b.binary(exp.Div, numerator, divisor)
            return Value(sql, level, NUMBER, True, const, inf=True, nan=nan)
        if op == "^":  # POWER's guards read each operand several times: compute them once
            left = self._once(self._known(left), row)
            right = self._once(self._known(right), row)
            level = max(left.level, right.level)
            return Value(self._power(left, right), level, NUMBER, True, const, inf=True)
        if op in _COMPARE:
            left, right = self._known(left), self._known(right)
            return Value(
                b.binary(_COMPARE[op], left.sql, right.sql), level, CONDITION, nullable, const
            )
        cls = exp.And if op == "and" else exp.Or
        return Value(b.binary(cls, left.sql, right.sql), level, CONDITION, nullable, const)

    def _once(self, value: Value, row: bool) -> Value:
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
        return Value(
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

    def _constant_power(self, node: Binary) -> Value:
        """A power of constants, computed here as the pandas engine computes it."""
        value = _constant_value(node, pandas_periods.months_in(self.grain))
        known = value if math.isfinite(value) else None
        missing = math.isnan(value)
        return Value(sql_literal(value), 0, NUMBER, missing, True, True, known, math.isinf(value))

    def _power(self, base: Value, exponent: Value) -> exp.Expression:
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
    def _aggregate(self, node: Call, hint: str | None = None) -> Value:
        if node in self.agg_cache:
            return self.agg_cache[node]
        func = node.func
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
        self.aggregates.append(Aggregate(name, sql, fill, depth, node, kpi))
        result = Value(b.col(name), 0, NUMBER, nullable=fill is None or depth > 0)
        if func not in ("count", "count_distinct"):  # a sum of inf and -inf is NaN
            result.inf = result.nan = x.inf
        self.agg_cache[node] = result
        return result


# -- node handlers: (translator, node, row-level?) -> value --------------------------------------
Handler = Callable[[FormulaTranslator, Node, bool], Value]


def _number(t: FormulaTranslator, node: Number, row: bool) -> Value:
    whole = node.value == int(node.value)
    return Value(b.num(node.value), 0, NUMBER, False, True, not whole, node.value)


def _unary(t: FormulaTranslator, node: Unary, row: bool) -> Value:
    v = t.at(node.operand, row)
    if node.op == "not":
        return Value(b.not_(as_condition(v)), v.level, CONDITION, False, v.const)
    return Value(b.neg(v.sql), v.level, NUMBER, v.nullable, v.const, v.double, inf=v.inf, nan=v.nan)


def _binary_node(t: FormulaTranslator, node: Binary, row: bool) -> Value:
    if node.op == "^" and _constant(node):
        return t._constant_power(node)
    return t._binary(node.op, t.at(node.left, row), t.at(node.right, row), row)


def _name(t: FormulaTranslator, node: Name, row: bool) -> Value:
    """A datapoint inside an aggregate, another KPI outside."""
    if row:
        return t.datapoint(node.name)
    return t._kpi_reference(t.kpi(node.name))


def _call(t: FormulaTranslator, node: Call, row: bool) -> Value:
    return FUNCTIONS[node.func](t, node, row)


NODES: Mapping[type, Handler] = {
    Number: _number,
    Unary: _unary,
    Binary: _binary_node,
    Name: _name,
    Call: _call,
}


# -- function handlers ----------------------------------------------------------------------------
@dataclass
class _Args:
    values: list[Value]
    level: int
    const: bool
    inf: bool


def _args(t: FormulaTranslator, node: Call, row: bool) -> _Args:
    values = [t.at(a, row) for a in node.args]
    return _Args(
        values,
        max(a.level for a in values),
        all(a.const for a in values),
        any(a.inf for a in values),
    )


def _if(t: FormulaTranslator, node: Call, row: bool) -> Value:
    a = _args(t, node, row)
    cond, then, other = a.values
    sql = b.case((cond.sql, then.sql), default=other.sql)
    nullable = then.nullable or other.nullable
    return Value(sql, a.level, NUMBER, nullable, a.const, inf=a.inf, nan=then.nan or other.nan)


def _abs(t: FormulaTranslator, node: Call, row: bool) -> Value:
    a = _args(t, node, row)
    (x,) = a.values
    sql = exp.Abs(this=x.sql)
    return Value(sql, a.level, NUMBER, x.nullable, a.const, x.double, inf=a.inf, nan=x.nan)


def _extreme(t: FormulaTranslator, node: Call, row: bool) -> Value:
    """greatest() and least(), skipping missing arguments."""
    a = _args(t, node, row)
    args = [t._known(v) for v in a.values]
    nullable = all(v.nullable for v in args)
    level = a.level
    if b.extreme_repeats(t.dialect) and any(v.nullable for v in args):
        args = [t._once(v, row) for v in args]  # each argument is read again for the others
        level = max(v.level for v in args)
    sql = b.extreme(node.func, [v.sql for v in args], [v.nullable for v in args], t.dialect)
    double = any(v.double for v in args)
    return Value(sql, level, NUMBER, nullable, a.const, double, inf=a.inf)


def _coalesce(t: FormulaTranslator, node: Call, row: bool) -> Value:
    a = _args(t, node, row)
    args = [t._known(v) for v in a.values]
    nullable = all(v.nullable for v in args)
    sql = b.coalesce(*[v.sql for v in args])
    double = any(v.double for v in args)
    return Value(sql, a.level, NUMBER, nullable, a.const, double, inf=a.inf)


def _months_in_period(t: FormulaTranslator, node: Call, row: bool) -> Value:
    months = pandas_periods.months_in(t.grain)
    return Value(b.num(months), 0, NUMBER, False, True, months != int(months), months)


def _calendar_days(t: FormulaTranslator, node: Call, row: bool) -> Value:
    """days_in_period() and business_days_in_period() of the output period."""
    if t.req.period is None:
        raise calendar_needs_period(node.func, t.in_progress)
    days = b.calendar_days(b.col(PERIOD), t.grain, node.func)
    literal = float(days.this) if isinstance(days, exp.Literal) else None
    return Value(days, 0, NUMBER, False, literal is not None, False, literal)


def _previous_call(t: FormulaTranslator, node: Call, row: bool) -> Value:
    arg = node.args[0]
    layers = t.rows if row else t.periods
    return t._previous(t.at(arg, row), layers, arg, row=row)


def _ever_before_call(t: FormulaTranslator, node: Call, row: bool) -> Value:
    if not row:
        raise SQLCompileError(f"{to_text(node)}: ever_before() is read inside an aggregate")
    return t._ever_before(node.args[0], t.row(node.args[0]))


def _aggregate_call(t: FormulaTranslator, node: Call, row: bool) -> Value:
    if row:
        raise SQLCompileError(f"{to_text(node)}: an aggregate inside an aggregate")
    return t._aggregate(node)


#: Every formula function the SQL backend writes, by name (the backend-coverage test reads it);
#: what a dialect cannot write exactly is in its record's ``unsupported`` (dialects.py).
FUNCTIONS: Mapping[str, Handler] = {
    "if": _if,
    "abs": _abs,
    "greatest": _extreme,
    "least": _extreme,
    "coalesce": _coalesce,
    "months_in_period": _months_in_period,
    "days_in_period": _calendar_days,
    "business_days_in_period": _calendar_days,
    "previous": _previous_call,
    "ever_before": _ever_before_call,
    **dict.fromkeys(sorted(AGGREGATES), _aggregate_call),
}

#: Per dialect (each a backend of its own for the coverage test): function -> why it does not
#: compile there, from the dialect records.
UNSUPPORTED_FUNCTIONS: Mapping[str, Mapping[str, str]] = {
    name: d.unsupported for name, d in RECORDS.items()
}


def as_condition(v: Value) -> exp.Expression:
    """A condition as true/false: where SQL would say NULL, numpy says false."""
    return b.coalesce(v.sql, exp.false()) if v.nullable else v.sql


def sql_literal(value) -> exp.Expression:
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


def _hint(node: Node) -> str:
    """A short readable name for the column holding previous(node)."""
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Call) and node.func == "previous":
        return "previous_" + _hint(node.args[0])
    return "value"
