"""Row checks written into the statement: the pandas engine's refusals of rows, so that SQL run
in any database fails on them too (issue 14).

One CTE, ``row_checks``, holds one row whose ``_row_problem`` describes the first problem found,
or NULL; the final SELECT raises it through the dialect's error form (``sqlbuild.raise_error``).
"""

from __future__ import annotations

from sqlglot import exp

from ..errors import range_text
from ..model import Datapoint
from . import sqlbuild as b
from .columns import BASE, ENTITY, ORDER, PERIOD, PROBLEM, TEXT, TOP


class RowChecks:
    """The planner's (``compiler._Compiler``) row checks; reads its ``datapoints``, ``req``,
    ``grid``, ``coarse``, ``base``, ``grain`` and ``_row_order``."""

    def _row_checks(self) -> exp.Select | None:
        """One row whose ``_row_problem`` describes the first problem the pandas engine would
        raise on these rows, or NULL: a value outside a datapoint's valid range, rows of one
        entity-period that a ``rows: last``/``first`` rule cannot order, flags that exclude
        each other both set. The final SELECT raises it (``sqlbuild.raise_error``), so the
        statement fails in any database rather than compute on such rows; ``drop_invalid``
        leaves out-of-range values and contradicting flags out instead, as the pandas engine
        does. Each check names the datapoint, the rule and one entity and period (the first
        in text order, so that it does not depend on the row order)."""
        found: list[exp.Expression] = []
        for name, (spec, column, sql_name) in self.datapoints.items():
            if not self.req.drop_invalid and (spec.minimum is not None or spec.maximum is not None):
                # valid per entity_period: the cells' combined values (each row is a cell
                # without an entity)
                cells = spec.checks_cells and self.grid
                found.append(self._range_problem(name, spec, column, sql_name, cells))
            if self.grid and spec.rows in ("last", "first"):
                found.append(self._unordered_problem(name, spec, sql_name))
        if not self.req.drop_invalid:
            for name, (spec, _, _) in self.datapoints.items():
                for other in spec.excludes:
                    if other in self.datapoints:
                        found.append(self._contradiction_problem(name, other))
        if not found:
            return None
        problem = found[0] if len(found) == 1 else b.coalesce(*found)
        select = exp.select(b.alias(problem, PROBLEM))
        select.add_comments(
            [b.comment("rows the KPIs cannot be computed on: the final SELECT fails with this")]
        )
        return select

    def _where_text(self, entity: exp.Expression | None, period: exp.Expression | None, freq: str):
        """SQL text such as ``entity 'c1' in 2024-01``."""
        parts: list[exp.Expression] = []
        if entity is not None:
            parts += [b.string("entity '"), b.cast(entity, "VARCHAR"), b.string("'")]
        else:
            parts.append(b.string("a row"))
        if self.req.period is not None and period is not None:
            parts += [b.string(" in "), b.period_label(period, freq, "text")]
        return parts

    def _range_problem(
        self, name: str, spec: Datapoint, column: str, sql_name: str, cells: bool = False
    ):
        value = b.col(sql_name)
        valid = range_text(spec.minimum, spec.maximum)
        shown = f" (column {column!r})" if column != name else ""
        entity = b.col(ENTITY) if self.grid else None
        per = " per entity and period" if cells else ""
        text = _concat(
            b.string(f"datapoint {name!r}{shown} must be {valid}{per}: "),
            *self._where_text(entity, b.col(BASE), self.base),
            b.string(" has "),
            b.cast(value.copy(), "VARCHAR"),
            b.string(_FIX_OR_DROP),
        )
        outside = b.not_(within(value.copy(), spec))
        return _first_text(
            exp.select(exp.Min(this=b.case((outside, text))))
            .from_("cells" if cells else "source")
            .where(outside.copy())
        )

    def _unordered_problem(self, name: str, spec: Datapoint, sql_name: str):
        """An entity-period whose rows at the top of the order (all rows, without an order
        column) have different values."""
        value, order = b.col(sql_name), self._row_order(spec)
        keys = [b.col(ENTITY), b.col(BASE)]
        rows = exp.select(*keys, value).from_("source").where(b.not_null(value.copy()))
        if order is not None:
            top = exp.Max if spec.rows == "last" else exp.Min
            ranked = (
                exp.select(
                    *[k.copy() for k in keys],
                    value.copy(),
                    order.copy(),
                    b.alias(exp.Window(this=top(this=order.copy()), partition_by=keys), TOP),
                )
                .from_("source")
                .where(b.not_null(value.copy()))
            )
            rows = (
                exp.select(*[k.copy() for k in keys], value.copy())
                .from_(ranked.subquery("r"))
                .where(b.eq(order.copy(), b.col(TOP)))
            )
        which = "latest" if spec.rows == "last" else "earliest"
        if order is None:
            why = f" and the data has no column {spec.order_by!r} to order them (order_by)"
        elif spec.order_by and not (isinstance(order, exp.Column) and order.name == ORDER):
            why = f" and the same {spec.order_by!r}: make that column tell them apart"
        else:
            why = " and the same value of the column that orders the rows: make it tell them apart"
        text = _concat(
            b.string(
                f"datapoint {name!r} keeps each entity's {which} row in a period "
                f"(rows: {spec.rows}), but "
            ),
            *self._where_text(b.col(ENTITY), b.col(BASE), self.base),
            b.string(" has several rows with different values"),
            b.string(why),
        )
        differing = b.binary(exp.NEQ, exp.Min(this=value.copy()), exp.Max(this=value.copy()))
        cells = (
            exp.select(b.alias(text, TEXT))
            .from_(rows.subquery("c"))
            .group_by(*[k.copy() for k in keys])
            .having(differing)
        )
        return _first_text(exp.select(exp.Min(this=b.col(TEXT))).from_(cells.subquery("u")))

    def _contradiction_problem(self, name: str, other: str):
        a, z = self.datapoints[name][2], self.datapoints[other][2]
        if self.grid:
            relation = "period_cells" if self.coarse else "cells"
            period, freq = (PERIOD, self.grain) if self.coarse else (BASE, self.base)
            where = self._where_text(b.col(ENTITY), b.col(period), freq)
        else:
            relation = "source"
            where = self._where_text(None, b.col(BASE), self.base)
        text = _concat(
            b.string(f"{name!r} and {other!r} exclude each other, but "),
            *where,
            b.string(" has both" if self.grid else " sets both"),
            b.string(_FIX_OR_DROP.replace("on the others", "without them")),
        )
        both = b.and_(b.binary(exp.GT, b.col(a), b.num(0)), b.binary(exp.GT, b.col(z), b.num(0)))
        return _first_text(exp.select(exp.Min(this=text)).from_(relation).where(both))


_FIX_OR_DROP = (
    ". Correct those rows, or compute on the others (drop_invalid=True; kpi sql --drop-invalid)"
)


def _concat(*parts: exp.Expression) -> exp.Expression:
    out = parts[0]
    for part in parts[1:]:
        out = b.binary(exp.DPipe, out, part)
    return out


def _first_text(select: exp.Select) -> exp.Expression:
    return exp.Subquery(this=select)


def within(value: exp.Expression, spec: Datapoint) -> exp.Expression:
    """The datapoint's value lies in its valid range."""
    parts = []
    if spec.minimum is not None:
        parts.append(b.binary(exp.GTE, value.copy(), b.num(spec.minimum)))
    if spec.maximum is not None:
        parts.append(b.binary(exp.LTE, value.copy(), b.num(spec.maximum)))
    return b.and_(*parts)


def in_entities_outside(
    table: exp.Expression, keys: list[exp.Expression], entity: str, column: str, spec: Datapoint
) -> exp.Expression:
    """For ``valid: {per: entity_period}``: the row belongs to an entity with a group of rows
    (by ``keys``, its entity-period or finer) whose sum, or one of whose rows, is outside the
    range. Whatever the rows rule, a combined value outside the range has such a group, so
    every entity-period the pandas engine would report is among these entities' rows, whole."""
    # a text column the engine will refuse as not numeric must not fail here first
    value = exp.TryCast(this=b.col(column), to=exp.DataType.build("DOUBLE"))
    outside = []
    for func in (exp.Sum, exp.Min, exp.Max):
        if func is not exp.Max and spec.minimum is not None:
            outside.append(b.binary(exp.LT, func(this=value.copy()), b.num(spec.minimum)))
        if func is not exp.Min and spec.maximum is not None:
            outside.append(b.binary(exp.GT, func(this=value.copy()), b.num(spec.maximum)))
    having = b.or_(*outside)
    inner = (
        exp.select(b.col(entity))
        .from_(table.copy())
        .group_by(*[k.copy() for k in keys])
        .having(having)
    )
    return exp.In(this=b.col(entity), query=exp.Subquery(this=inner))
