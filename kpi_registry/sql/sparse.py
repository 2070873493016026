"""May a query skip the empty cells of the entity x period grid? Decided from the formulas.

The pandas engine, and the dense SQL, put every entity in every period: an entity without a row
there is 0 or missing, as its datapoint declares. On billing data most of that grid is empty
(customers that left long ago, or have not started yet), and building it dominates the query.

Call a cell *empty* when its entity has no row in that period and none in the period before:
every datapoint there is its fill value (0 for ``missing: zero``, else missing), and so is every
``previous(x)`` of an ``x`` built from datapoints alone. The cell right after a row (where churn
shows up) is *not* empty: ``previous()`` there sees the row. If no aggregate can pick up anything
from an empty cell, and no ``ever_before()`` condition can be true there, the query may work on
the rows plus the cell after each row and get exactly the dense grid's numbers.
:func:`choose_layout` proves that by evaluating the formulas at an empty cell, with the pandas
engine's own operators, for every value ``ever_before()`` could have there.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# The pandas engine's operators, so that "contributes nothing" is judged with its arithmetic.
from ..arithmetic import SCALAR_FUNCS, binary
from ..formula import Binary, Call, Name, Node, Number, Unary, gap_depth
from .spec import DENSE, LAYOUTS, SPARSE  # noqa: F401 - re-exported for the compiler

_MAX_EVER_BEFORE = 6  # distinct ever_before() in one expression: 2**6 cases to try


@dataclass(frozen=True)
class Aggregated:
    """One aggregate of the query: its function, its arguments and the KPI it belongs to."""

    kpi: str
    node: Call


@dataclass(frozen=True)
class Layout:
    kind: str  # DENSE or SPARSE
    reason: str  # one line a reader of the SQL can check


class NotProvable(Exception):
    """The value of an expression in a cell without rows cannot be told (the message says
    why)."""


def choose_layout(
    aggregates: Sequence[Aggregated],
    previous_args: Collection[Node],
    ever_before_conds: Collection[Node],
    fills: Mapping[str, float],
) -> Layout:
    """SPARSE if every cell of the grid that is empty provably changes nothing, else DENSE.

    ``previous_args`` and ``ever_before_conds`` are the arguments of the row-level
    ``previous()`` and ``ever_before()`` calls the query computes, ``fills`` each datapoint's
    value in a cell without rows (0.0 or NaN). The rules, each needed for exactness:

    * ``previous()`` only of datapoints and arithmetic (depth 1): then the cell after the one
      after a row is empty again. ``previous()`` of an expression that itself uses
      ``previous()`` or ``ever_before()`` would carry a row two or more periods forward, so
      it keeps the dense grid.
    * every aggregate, at an empty cell, is filtered out, sees a missing value, or (``sum``)
      adds 0. ``count``, ``mean``, ``median``, ``min`` and ``max`` of a datapoint that is 0
      where missing all count that 0, so they keep the dense grid.
    * every ``ever_before()`` condition is false at an empty cell: the running "any" may then
      skip empty cells.

    An empty cell in the first period has no previous period: ``previous()`` is missing there
    (false for a condition) and ``ever_before()`` false; that case is checked too, except for
    aggregates whose first periods are undefined anyway (``gap_depth`` > 0). Elsewhere
    ``previous(x)`` is ``x`` at fill values and each ``ever_before()`` may be true or false, so
    every combination is tried.
    """
    for arg in previous_args:
        nested = time_calls(arg)
        if nested:
            return Layout(DENSE, f"previous() of {nested[0]}() looks back more than one period")
    try:
        for cond in ever_before_conds:
            for scenario in _scenarios(cond):
                if truthy(at_empty_cell(cond, fills, *scenario)):
                    return Layout(DENSE, "an ever_before() condition holds in cells without rows")
        for agg in aggregates:
            node = agg.node
            first_period_masked = max(gap_depth(a) for a in node.args) > 0
            for scenario in _scenarios(node, first_period_masked):
                if _contributes(node, fills, *scenario):
                    return Layout(
                        DENSE,
                        f"{node.func}() in {agg.kpi} counts cells without rows",
                    )
    except NotProvable as e:
        return Layout(DENSE, str(e))
    return Layout(
        SPARSE,
        "cells without rows (other than the period after a row) change none of these numbers",
    )


def time_calls(node: Node) -> list[str]:
    """The previous() and ever_before() calls in an expression, outermost first."""
    return [n.func for n in node.walk() if isinstance(n, Call) and n.func in _TIME_FUNCS]


_TIME_FUNCS = ("previous", "ever_before")


def _scenarios(node: Node, first_period_masked: bool = False):
    """(first_period, ever_before values) for every kind of empty cell."""
    conds = list(
        dict.fromkeys(n for n in node.walk() if isinstance(n, Call) and n.func == "ever_before")
    )
    if len(conds) > _MAX_EVER_BEFORE:
        raise NotProvable(f"more than {_MAX_EVER_BEFORE} ever_before() in one formula")
    if not first_period_masked:
        yield True, dict.fromkeys(conds, False)
    for values in itertools.product((False, True), repeat=len(conds)):
        yield False, dict(zip(conds, values, strict=True))


def _contributes(node: Call, fills, first_period: bool, ever: dict) -> bool:
    """Would this aggregate take a value from an empty cell?"""
    if len(node.args) > 1 and not truthy(at_empty_cell(node.args[1], fills, first_period, ever)):
        return False
    value = float(at_empty_cell(node.args[0], fills, first_period, ever))
    if math.isnan(value):
        return False  # every aggregate skips missing values
    return not (node.func == "sum" and value == 0)


def truthy(value: Any) -> bool:
    return bool(np.asarray(value, dtype=bool))


def at_empty_cell(
    node: Node,
    fills: Mapping[str, float],
    first_period: bool = False,
    ever: Mapping[Node, bool] | None = None,
) -> Any:
    """The value a row-level expression has in a cell where its entity has no row, computed
    with the pandas engine's own operators: each datapoint is its fill value (0.0 for
    ``missing: zero``, else NaN), ``ever_before()`` calls take their value from ``ever``.
    Used to choose the SQL layout here and by the MetricFlow export (a measure cannot see
    entities without rows). Raises :class:`NotProvable` where it cannot tell."""
    ever = ever or {}

    def value(n: Node) -> Any:
        if isinstance(n, Number):
            return n.value
        if isinstance(n, Name):
            if n.name not in fills:
                raise NotProvable(f"no fill value known for {n.name!r}")
            return fills[n.name]
        if isinstance(n, Unary):
            x = value(n.operand)
            return np.logical_not(x) if n.op == "not" else np.negative(x)
        if isinstance(n, Binary):
            return binary(n.op, value(n.left), value(n.right))
        if isinstance(n, Call):
            if n.func == "previous":
                x = value(n.args[0])  # the period before is empty too (depth 1 is checked)
                if not any(isinstance(m, Name) for m in n.args[0].walk()):
                    return x  # a constant is the same in every period
                if first_period:
                    return False if np.asarray(x).dtype == bool else math.nan
                return x
            if n.func == "ever_before":
                return ever[n]
            if n.func in SCALAR_FUNCS:
                with np.errstate(all="ignore"):
                    return SCALAR_FUNCS[n.func](*[value(a) for a in n.args])
        raise NotProvable(f"cannot tell what {n!r} is in a cell without rows")

    return value(node)


def holds_in_empty_cell(cond: Node, fills: Mapping[str, float]) -> bool | None:
    """Is a condition on datapoints alone true in a cell without rows? None: cannot tell."""
    try:
        return truthy(at_empty_cell(cond, fills, False, {}))
    except NotProvable:
        return None


def fill_value(node: Node, fills: Mapping[str, float]) -> Any:
    """``node`` (datapoints and arithmetic only) in a cell without rows: what ``previous()``
    reads after a period without rows."""
    return at_empty_cell(node, fills, False, {})
