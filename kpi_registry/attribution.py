"""Why a KPI moved: its driver tree, read off the formula, and an exact attribution of a change.

The method (also on the site's formula-language page). A formula at period level is a tree
whose leaves are aggregates over rows (``sum(revenue, ...)``), ``previous(...)`` of a period
value, and KPIs supplied as columns; KPI references are inner nodes that expand into their own
formulas. Every node splits the change of its value between the start and the end period
among its inputs by their **Shapley values**: the average, over every order in which the
inputs could move from their start to their end values, of the change each input makes when
it moves. The split always adds up to the node's change (efficiency) and does not depend on
the order in which the formula writes its terms (symmetry), so ``a * b`` and ``b * a``, or
``(a * b) * c`` and ``a * (b * c)``, give the same numbers. Sums and differences split
exactly as written; a product or quotient of n factors (chains of ``*`` and ``/`` are one node)
has a closed form costing O(n^2) per factor; any other function (``greatest``, ``coalesce``,
``if``...) is evaluated at its 2^n corners. An input's share is then passed down to the
inputs below it by its average slope (the share divided by the input's own change, known in
closed form for sums, products and quotients, so nothing divides by a change that is zero).
Every level therefore adds up to the level above it, down to the datapoints.

Shapley values rather than the logarithmic mean Divisia index: LMDI needs logarithms of
positive values, and revenue movements are zero or change sign every day. Zeros are fine here
except in a denominator, where the KPI itself is undefined: explain then raises
:class:`ExplainError` saying which denominator is zero in which period, never a silent NaN.

One pass of the engine (two with ``by``) computes every leaf at once; the arithmetic above
runs on those few numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .arithmetic import BINARY, SCALAR_FUNCS
from .drivertree import (  # noqa: F401 - the driver tree lives apart so browsing needs no pandas
    LEAF_FUNCTIONS,
    Driver,
    driver_tree,
    is_constant,
    is_leaf_call,
    operation_of,
    period_inputs,
    product_factors,
    sum_terms,
    tree_text,
)
from .errors import DataError, KPIError
from .evaluation import Rows, compute, evaluate_many
from .formula import Binary, Call, Name, Node, Number, Unary, parse, to_text
from .formula.dispatch import each, function_table, node_table
from .model import KPI
from .request import Request

# --------------------------------------------------------------------------------------
# Errors


class ExplainError(DataError):
    """A change that cannot be attributed: the KPI has no value at one end, or the periods are
    not in the data. The facts are fields; the message words them."""

    def __init__(self, message: str, *, kpi_id: str, period: Any = None, reason: str = ""):
        self.kpi_id = kpi_id
        self.period = period
        self.reason = reason
        super().__init__(message)


# --------------------------------------------------------------------------------------
# Scalar (or per-group array) evaluation of a period-level formula from its leaves


def _apply(node: Node, args: Sequence[Any]) -> Any:
    """The node's own operation on its inputs' values, as the engine computes it."""
    with np.errstate(all="ignore"):
        return _OPERATIONS[type(node)](node, args)


# The node types that operate on their inputs (numbers and names are values, see _Values).
_OPERATIONS: dict[type[Node], Callable[[Any, Sequence[Any]], Any]] = {
    Unary: lambda n, args: np.logical_not(args[0]) if n.op == "not" else np.negative(args[0]),
    Binary: lambda n, args: BINARY[n.op](*args) if n.op != "/" else _div(*args),
    Call: lambda n, args: SCALAR_FUNCS[n.func](*args),
}


def _div(a: Any, b: Any) -> Any:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    out = np.full(np.broadcast_shapes(a.shape, b.shape), np.nan)
    np.divide(a, b, out=out, where=(b != 0) & ~np.isnan(b))
    return out


class _Values:
    """Every node's value from the leaves' values (floats, or arrays over groups)."""

    def __init__(self, kpis: Mapping[str, KPI], leaves: Mapping[Node, Any]):
        self.kpis = kpis
        self.leaves = leaves
        self.memo: dict[Node, Any] = {}

    def __call__(self, node: Node) -> Any:
        if node in self.leaves:
            return self.leaves[node]
        if node in self.memo:
            return self.memo[node]
        value = _VALUE_OF[type(node)](self, node)
        self.memo[node] = value
        return value

    def number(self, node: Number) -> Any:
        return node.value

    def kpi(self, node: Name) -> Any:
        return self(self.kpis[node.name].expression)

    def operation(self, node: Node) -> Any:
        return _apply(node, [self(c) for c in node.children()])


_VALUE_OF = node_table(
    {
        Number: _Values.number,
        Name: _Values.kpi,
        Unary: _Values.operation,
        Binary: _Values.operation,
        Call: _Values.operation,
    }
)


# --------------------------------------------------------------------------------------
# The attribution walk


@dataclass
class _Row:
    key: tuple[str, ...]
    driver: str
    kind: str
    node: Node | None = None  # the KPI name or leaf whose values the row shows
    slope: float = 0.0  # d(root) / d(leaf), summed over the leaf's occurrences (leaf rows)
    movement: str = ""  # bridge rows: which movement
    fixed: float | None = None  # a share that cannot be passed further down (conditions)
    note: str = ""


@dataclass
class _Walk:
    """Shares of the root's change, passed down the formula by average slopes."""

    kpis: Mapping[str, KPI]
    start: _Values
    end: _Values
    is_leaf: Callable[[Node], bool]
    rows: dict[tuple[str, ...], _Row] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self, key: tuple[str, ...], kind: str, node: Node | None) -> _Row:
        if key not in self.rows:
            self.rows[key] = _Row(key, key[-1], kind, node)
        return self.rows[key]

    def visit(self, node: Node, slope: float, at: tuple[str, ...]) -> None:
        if is_constant(node):
            return
        if self.is_leaf(node):
            self._leaf(node, slope, at)
            return
        _HANDLERS[type(node)](self, node, slope, at)

    def _leaf(self, node: Node, slope: float, at: tuple[str, ...]) -> None:
        parent = self.rows.get(at)
        own = parent is not None and parent.kind == "kpi" and _expression(self.kpis, at) == node
        if own:  # a KPI that is a single aggregate is its own leaf row
            row = parent
            row.node = node
        else:
            kind = "previous" if isinstance(node, Call) and node.func == "previous" else "aggregate"
            if isinstance(node, Name):
                kind = "column"
            row = self.row((*at, to_text(node)), kind, node)
        row.slope += slope

    def name(self, node: Name, slope: float, at: tuple[str, ...]) -> None:
        key = (*at, node.name)
        self.row(key, "kpi", node)
        self.visit(self.kpis[node.name].expression, slope, key)

    def negation(self, node: Unary, slope: float, at: tuple[str, ...]) -> None:
        if node.op == "-":
            self.visit(node.operand, -slope, at)
        else:
            self.generic(node, slope, at)

    def binary(self, node: Binary, slope: float, at: tuple[str, ...]) -> None:
        _BINARY_HANDLERS.get(node.op, _Walk.generic)(self, node, slope, at)

    def call(self, node: Call, slope: float, at: tuple[str, ...]) -> None:
        ATTRIBUTION_FUNCTIONS[node.func](self, node, slope, at)

    def sum(self, node: Binary, slope: float, at: tuple[str, ...]) -> None:
        for term, sign in sum_terms(node, 1):
            self.visit(term, slope * sign, at)

    def product(self, node: Binary, slope: float, at: tuple[str, ...]) -> None:
        """Shapley shares of a product of factors x_i ** e_i (e = +1 or -1), in closed form."""
        factors = product_factors(node, 1)
        x0 = [float(self.start(f)) for f, _ in factors]
        x1 = [float(self.end(f)) for f, _ in factors]
        u0 = [x if e > 0 else _inverse(x) for x, (_, e) in zip(x0, factors)]
        u1 = [x if e > 0 else _inverse(x) for x, (_, e) in zip(x1, factors)]
        bad = [
            i for i in range(len(factors)) if not (math.isfinite(u0[i]) and math.isfinite(u1[i]))
        ]
        if bad:
            f, e = factors[bad[0]]
            what = "a zero or missing denominator" if e < 0 else "a missing value"
            raise _undefined_inside(self, node, f, what)
        for i, (f, e) in enumerate(factors):
            if is_constant(f):
                continue
            weight = shapley_weight(u0, u1, i)
            # d u_i / d x_i averaged over the move: 1, or -1 / (x0 * x1) for a denominator
            du_dx = 1.0 if e > 0 else -1.0 / (x0[i] * x1[i])
            self.visit(f, slope * weight * du_dx, at)

    def generic(self, node: Node, slope: float, at: tuple[str, ...]) -> None:
        """Shapley shares over the 2^n corners of a function of n inputs."""
        args = list(node.children())
        a0 = [self.start(a) for a in args]
        a1 = [self.end(a) for a in args]
        shares = shapley(lambda xs: float(_apply(node, xs)), a0, a1)
        for arg, share, v0, v1 in zip(args, shares, a0, a1):
            if is_constant(arg):
                continue
            change = float(v1) - float(v0)
            if _is_condition(arg) or not math.isfinite(change):
                text = to_text(arg)
                row = self.row((*at, text), "condition" if _is_condition(arg) else "missing", arg)
                row.fixed = (row.fixed or 0.0) + slope * share
                row.note = (
                    f"{text} switched between the periods; its effect is not split further"
                    if _is_condition(arg)
                    else f"{text} is missing at one end; its whole effect is shown here"
                )
                self.notes.append(row.note)
                continue
            # an input that did not move has no share (Shapley's null player): its rows stay
            self.visit(arg, slope * share / change if change != 0.0 else 0.0, at)


_HANDLERS: dict[type, Callable[..., None]] = node_table(
    {
        Number: _Walk.generic,  # never reached: a number is constant
        Name: _Walk.name,
        Unary: _Walk.negation,
        Binary: _Walk.binary,
        Call: _Walk.call,
    }
)
#: What explain cannot split a change through, and why.
UNSUPPORTED_FUNCTIONS = {
    "ever_before": "a condition on an entity's earlier rows: it stands only inside an "
    "aggregate, whose value the engine computes as one leaf",
}
#: How a change is split through each function: a scalar function by Shapley values over the
#: corners of its inputs; aggregates, previous() and calendar facts are leaves the engine
#: computes (``drivertree.LEAF_FUNCTIONS``), each a row of the result.
ATTRIBUTION_FUNCTIONS: dict[str, Callable[..., None]] = function_table(
    {**each(SCALAR_FUNCS, _Walk.generic), **each(LEAF_FUNCTIONS, _Walk._leaf)},
    UNSUPPORTED_FUNCTIONS,
)
_BINARY_HANDLERS: dict[str, Callable[..., None]] = {
    "+": _Walk.sum,
    "-": _Walk.sum,
    "*": _Walk.product,
    "/": _Walk.product,
}


def _expression(kpis: Mapping[str, KPI], key: tuple[str, ...]) -> Node | None:
    kpi = kpis.get(key[-1]) if key else None
    return kpi.expression if kpi is not None else None


def _is_condition(node: Node) -> bool:
    if isinstance(node, Binary):
        return node.op in ("=", "!=", "<", "<=", ">", ">=", "and", "or")
    return isinstance(node, Unary) and node.op == "not"


def _inverse(x: float) -> float:
    return 1.0 / x if x != 0 and math.isfinite(x) else math.nan


def shapley_weight(u0: Sequence[float], u1: Sequence[float], i: int) -> float:
    """The Shapley share of factor i in the change of prod(u), divided by u_i's own change.

    The share averages (u1_i - u0_i) * prod(the others, each at its start or end value) over
    coalitions weighted by |S|! (n - |S| - 1)! / n!; grouping coalitions by size, the products
    are the coefficients of prod_j (u0_j + u1_j t), built in O(n^2)."""
    n = len(u0)
    poly = [1.0]  # poly[k]: sum over k-subsets of the others of prod(ends) * prod(starts)
    for j in range(n):
        if j == i:
            continue
        nxt = [0.0] * (len(poly) + 1)
        for k, c in enumerate(poly):
            nxt[k] += c * u0[j]
            nxt[k + 1] += c * u1[j]
        poly = nxt
    return sum(
        c * math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
        for k, c in enumerate(poly)
    )


def shapley(f: Callable[[list[Any]], float], start: Sequence[Any], end: Sequence[Any]) -> list:
    """Exact Shapley values of each input's move from start to end, over all 2^n corners."""
    n = len(start)
    corner: dict[frozenset[int], float] = {}
    for size in range(n + 1):
        for moved in combinations(range(n), size):
            key = frozenset(moved)
            corner[key] = f([end[i] if i in key else start[i] for i in range(n)])
    out = []
    for i in range(n):
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for moved in combinations([j for j in range(n) if j != i], size):
                key = frozenset(moved)
                total += weight * (corner[key | {i}] - corner[key])
        out.append(total)
    return out


def _undefined_inside(walk: _Walk, node: Node, part: Node, what: str) -> ExplainError:
    text = to_text(part)
    return ExplainError(
        f"cannot split the change of {to_text(node)}: {text} is {what} at one end "
        f"(start {float(walk.start(part)):g}, end {float(walk.end(part)):g})",
        kpi_id="",
        reason=f"{text} is {what}",
    )


# --------------------------------------------------------------------------------------
# The revenue bridge of a stock datapoint

MOVEMENTS: tuple[tuple[str, str, int], ...] = (
    ("new", "sum({x}, previous({x}) = 0 and {x} > 0 and not ever_before({x} > 0))", 1),
    ("expansion", "sum({x} - previous({x}), previous({x}) > 0 and {x} > previous({x}))", 1),
    ("reactivation", "sum({x}, previous({x}) = 0 and {x} > 0 and ever_before({x} > 0))", 1),
    (
        "contraction",
        "sum(previous({x}) - {x}, previous({x}) > 0 and {x} > 0 and {x} < previous({x}))",
        -1,
    ),
    ("churned", "sum(previous({x}), previous({x}) > 0 and {x} = 0)", -1),
)


def _bridge_datapoint(node: Node, specs: Mapping[str, Any], entity: str | None) -> str | None:
    """The datapoint of ``sum(x)``, if x is a stock read per entity whose absence means 0."""
    if entity is None or not (isinstance(node, Call) and node.func == "sum"):
        return None
    if len(node.args) != 1 or not isinstance(node.args[0], Name):
        return None
    spec = specs.get(node.args[0].name)
    if spec is None or spec.time != "stock" or spec.missing != "zero":
        return None
    return node.args[0].name


# --------------------------------------------------------------------------------------
# Explain


@dataclass
class Explanation:
    """``explain``'s result before it is a DataFrame: one record per row, in the frame's order,
    and what the frame carries in ``attrs``. A site build reads a few rows from each of 20,000
    small explanations, where building a DataFrame and reading its columns back cost more
    than the rows."""

    records: list[dict[str, Any]]
    columns: list[str]
    attrs: dict[str, Any]

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.records, columns=self.columns)
        frame.attrs.update(self.attrs)
        return frame


def explain(
    kpis: Mapping[str, KPI],
    kpi_id: str,
    data: Any,
    request: Request,
    *,
    start: Any,
    end: Any,
    engine: str = "pandas",
) -> pd.DataFrame:
    """The change of a KPI between two periods, attributed to its drivers (see the module)."""
    return explanation(kpis, kpi_id, data, request, start=start, end=end, engine=engine).to_frame()


def explanation(
    kpis: Mapping[str, KPI],
    kpi_id: str,
    data: Any,
    request: Request,
    *,
    start: Any,
    end: Any,
    engine: str = "pandas",
) -> Explanation:
    """``explain``'s rows and facts, without building the DataFrame."""
    if request.period is None:
        raise DataError("explain compares two periods: pass period='your_period_column'")
    kpis = _at_grain(kpis, request.grain)  # the formulas the engine uses at that grain
    kpi = kpis[kpi_id]
    if kpi.expression is None:
        raise KPIError(f"KPI {kpi_id!r} has no valid formula")
    supplied = _supplied(kpis, data, request)
    if kpi_id in supplied:
        raise ExplainError(
            f"the data gives {kpi_id} as a column, so it has no drivers to attribute its change "
            "to; leave the column out to explain it from its formula",
            kpi_id=kpi_id,
            reason="given as a column",
        )
    plan = _Plan(kpis, kpi_id, supplied, request.entity)
    frames = [_run(plan.kpis, plan.ids, data, _without_by(request), engine)]
    if request.by:
        frames.append(_run(plan.kpis, plan.ids, data, request, engine))
    total = _Periods(frames[0], request.period)
    i0, i1 = total.position(start, kpi_id), total.position(end, kpi_id)
    if i0 == i1:
        raise ExplainError(
            f"start and end are the same period ({start}); give two different periods",
            kpi_id=kpi_id,
            period=start,
            reason="same period",
        )
    v0, v1 = total.value(kpi_id, i0), total.value(kpi_id, i1)
    start_values = _Values(kpis, {leaf: total.value(i, i0) for leaf, i in plan.leaf_ids.items()})
    end_values = _Values(kpis, {leaf: total.value(i, i1) for leaf, i in plan.leaf_ids.items()})
    for value, at, label in ((v0, start_values, start), (v1, end_values, end)):
        if not math.isfinite(value):
            raise _undefined(kpis, kpi_id, at, label)
        again = float(at(Name(name=kpi_id)))
        if not math.isclose(again, value, rel_tol=1e-9, abs_tol=1e-9):
            # the engine used another formula than the one walked here (a formula.at_grain
            # for the data's own grain): refuse rather than attribute the wrong formula
            raise ExplainError(
                f"{kpi_id} in {label} is {value:g} but its drivers give {again:g}: a formula "
                "in its tree is specific to the data's grain; pass grain= explicitly",
                kpi_id=kpi_id,
                period=label,
                reason="formula differs at this grain",
            )

    walk = _Walk(kpis, start_values, end_values, plan.is_leaf)
    try:
        if plan.is_leaf(kpi.expression):  # sum(revenue): one row for the aggregate itself
            walk._leaf(kpi.expression, 1.0, ())
        else:
            walk.visit(kpi.expression, 1.0, ())
    except ExplainError as e:
        raise ExplainError(
            f"{kpi_id} between {start} and {end}: {e}", kpi_id=kpi_id, reason=e.reason
        ) from None

    groups = _Groups(frames[1], request, plan) if request.by else None
    records, columns, notes = _assemble(walk, plan, total, groups, i0, i1, request)
    result = Explanation(
        records,
        columns,
        {
            "kpi": kpi_id,
            "start": start,
            "end": end,
            "start_value": v0,
            "end_value": v1,
            "change": v1 - v0,
            "unit": kpi.unit,
            "method": "shapley",
            "engine_passes": len(frames),
            "notes": list(dict.fromkeys(walk.notes + notes)),
        },
    )
    if groups is not None:
        frame = pd.DataFrame(records, columns=columns)
        result.attrs["segments"] = _segments(kpis, kpi, walk, plan, total, groups, i0, i1, frame)
    return result


def _at_grain(kpis: Mapping[str, KPI], grain: str | None) -> Mapping[str, KPI]:
    """The KPIs with the formula each has at ``grain`` (formula.at_grain), else as they are."""
    if grain is None or not any(k.grain_expressions for k in kpis.values()):
        return kpis
    return {
        k: dataclasses.replace(kpi, expression=kpi.expression_at(grain))
        if kpi.grain_expressions
        else kpi
        for k, kpi in kpis.items()
    }


def _supplied(kpis: Mapping[str, KPI], data: Any, request: Request) -> set[str]:
    """KPIs the data supplies as columns (the engine reads them instead of their formula)."""
    if not isinstance(data, pd.DataFrame | Rows):
        return set()
    # from the data's few columns, not the library's many KPIs (20,000 on a large site)
    columns = set(data.columns)
    renamed = {k for k, col in request.columns.items() if k in kpis and col in columns}
    kept = {c for c in columns if c in kpis and c not in request.columns}
    return renamed | kept


def _without_by(request: Request) -> Request:
    return dataclasses.replace(request, by=[], columns=dict(request.columns))


def _run(kpis: Mapping[str, KPI], ids: list[str], data: Any, request: Request, engine: str):
    """The result's columns: a DataFrame, or (pandas, no ``by``) the engine's columns as they
    are, which is all _Periods reads (a site build explains 20,000 small examples)."""
    if engine == "pandas":
        if request.by:
            return evaluate_many(kpis, ids, data, request)
        return compute(kpis, ids, data, request).columns
    if engine == "duckdb":
        from .sql import evaluate_duckdb

        return evaluate_duckdb(kpis, ids, data, request)
    raise KPIError(f"unknown engine {engine!r}; use 'pandas' or 'duckdb'")


class _Overlay(Mapping[str, KPI]):
    """The library with the plan's extra KPIs on top, without copying the library: a site
    build explains one KPI per page, and a copy of 20,000 KPIs cost more than the rest."""

    def __init__(self, base: Mapping[str, KPI]):
        self.base, self.extra = base, {}

    def __getitem__(self, key: str) -> KPI:
        extra = self.extra.get(key)
        return extra if extra is not None else self.base[key]

    def __setitem__(self, key: str, kpi: KPI) -> None:
        self.extra[key] = kpi

    def __contains__(self, key: object) -> bool:
        return key in self.extra or key in self.base

    def __iter__(self) -> Iterator[str]:
        yield from self.base
        yield from (k for k in self.extra if k not in self.base)

    def __len__(self) -> int:
        return len(self.base) + sum(1 for k in self.extra if k not in self.base)


class _Plan:
    """The leaves the attribution needs, as extra KPIs the engine evaluates in one pass."""

    PREFIX = "__explain_"

    def __init__(self, kpis: Mapping[str, KPI], root: str, supplied: set[str], entity):
        self.supplied = supplied
        names = _kpis_below(kpis, root, supplied)
        specs: dict[str, dict] = {}
        for k in names:
            for d in kpis[k].data.get("datapoints", []) or []:
                if isinstance(d, dict) and "name" in d:
                    specs.setdefault(d["name"], d)
        typed = {n: s for k in names for n, s in kpis[k].datapoints.items()}
        self.kpis: _Overlay = _Overlay(kpis)
        self.leaf_ids: dict[Node, str] = {}
        self.bridges: dict[Node, dict[str, str]] = {}
        self.ids = [root]

        def extra(node: Node) -> str:
            kpi_id = f"{self.PREFIX}{len(self.ids)}"
            self.kpis[kpi_id] = KPI(
                kpi_id, {"datapoints": list(specs.values())}, Path("<explain>"), "explain", node
            )
            self.ids.append(kpi_id)
            return kpi_id

        for k in sorted(names):
            if k in supplied:
                self.leaf_ids[Name(name=k)] = k
                self.ids.append(k)
                continue
            for node in period_inputs(kpis[k].expression, kpis):
                if is_leaf_call(node) and node not in self.leaf_ids:
                    self.leaf_ids[node] = extra(node)
                    dp = _bridge_datapoint(node, typed, entity)
                    if dp is not None:
                        self.bridges[node] = {
                            m: extra(parse(text.format(x=dp))) for m, text, _ in MOVEMENTS
                        }

    def is_leaf(self, node: Node) -> bool:
        return node in self.leaf_ids


def _kpis_below(kpis: Mapping[str, KPI], root: str, supplied: set[str]) -> set[str]:
    out: set[str] = set()
    stack = [root]
    while stack:
        k = stack.pop()
        if k in out:
            continue
        out.add(k)
        if k in supplied or kpis[k].expression is None:
            if k not in supplied:
                raise KPIError(f"KPI {k!r} has no valid formula")
            continue
        stack.extend(
            n.name for n in kpis[k].expression.walk() if isinstance(n, Name) and n.name in kpis
        )
    return out


class _Periods:
    """An evaluation result read by period position."""

    def __init__(self, result: pd.DataFrame | Mapping[str, Any], period: str):
        self.result = result  # a DataFrame, or the pandas engine's columns (see _run)
        # each row's period as its position among the periods in order of appearance
        self.pos, uniques = pd.factorize(result[period], use_na_sentinel=False)
        self.labels = list(uniques)
        self.text = [str(x) for x in self.labels]
        self._columns: dict[str, np.ndarray] = {}  # read once: explain asks per leaf and period

    def position(self, label: Any, kpi_id: str) -> int:
        for i, (lab, text) in enumerate(zip(self.labels, self.text)):
            if text == str(label) or _same(lab, label):
                return i
        shown = ", ".join(self.text[:3] + (["..."] if len(self.text) > 6 else []) + self.text[-3:])
        raise ExplainError(
            f"period {label!r} is not in the result of {kpi_id} (its periods are {shown})",
            kpi_id=kpi_id,
            period=label,
            reason="unknown period",
        )

    def column(self, name: str) -> np.ndarray:
        values = self._columns.get(name)
        if values is None:
            values = self._columns[name] = np.asarray(self.result[name])
        return values

    def value(self, column: str, i: int) -> float:
        hit = self.column(column)[self.pos == i]
        return float(hit[0]) if len(hit) else math.nan


def _same(a: Any, b: Any) -> bool:
    """A label given as text ("2024-01") against the result's Period or Timestamp."""
    try:
        if isinstance(a, pd.Period):
            return a == pd.Period(str(b), freq=a.freq)
        if isinstance(a, pd.Timestamp):
            return a == pd.Timestamp(str(b))
        return bool(a == b)
    except (TypeError, ValueError):
        return False


class _Groups:
    """The by-evaluation as (group x period) arrays per column; absent cells are 0."""

    def __init__(self, frame: pd.DataFrame, request: Request, plan: _Plan):
        by = request.by
        keys = pd.MultiIndex.from_frame(frame[by]) if len(by) > 1 else pd.Index(frame[by[0]])
        codes, uniques = pd.factorize(keys, sort=True)
        self.labels = list(uniques)
        self.by = by
        periods = _Periods(frame, request.period)
        self.periods = periods
        self.codes = codes
        self.frame = frame

    def values(self, column: str, i: int, fill: float = 0.0) -> np.ndarray:
        out = np.full(len(self.labels), fill)
        at = self.periods.pos == i
        out[self.codes[at]] = self.periods.column(column)[at]
        return out

    def label_of(self, g: int) -> tuple:
        lab = self.labels[g]
        return lab if isinstance(lab, tuple) else (lab,)


def _undefined(kpis, kpi_id: str, values: _Values, label: Any) -> ExplainError:
    """Why the KPI has no value in a period: the first zero or missing denominator or input."""
    reason = "its value is missing"
    for node in _expanded_walk(kpis, kpis[kpi_id].expression):
        if isinstance(node, Binary) and node.op == "/":
            d = float(values(node.right))
            if d == 0 or not math.isfinite(d):
                what = "0" if d == 0 else "missing"
                reason = f"the denominator {to_text(node.right)} is {what}"
                break
        elif node in values.leaves and not math.isfinite(float(values(node))):
            reason = f"{to_text(node)} is missing"
            break
    return ExplainError(
        f"{kpi_id} has no value in period {label} ({reason}), so its change cannot be "
        "attributed; choose periods where it is defined",
        kpi_id=kpi_id,
        period=label,
        reason=reason,
    )


def _expanded_walk(kpis, node: Node) -> Iterator[Node]:
    for n in node.walk():
        yield n
        if isinstance(n, Name) and n.name in kpis and kpis[n.name].expression is not None:
            yield from _expanded_walk(kpis, kpis[n.name].expression)


# --------------------------------------------------------------------------------------
# Assembling the result


def _assemble(
    walk, plan, total, groups, i0, i1, request
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """One row per driver (and group), parents first; contributions summed bottom-up. Returns
    the rows, the columns and the notes.

    ``split[key]`` is a row's contribution per group; ``whole[key]`` the part that cannot be
    split by group (a condition's switch, a mean), shown on a row whose group is empty."""
    rows = walk.rows
    n_groups = len(groups.labels) if groups else 1
    notes: list[str] = []
    _add_bridge_rows(walk, plan)
    keys = list(rows)  # insertion order is a pre-order walk
    children: dict[tuple, list[tuple]] = {k: [] for k in keys}
    for k in keys:
        if len(k) > 1:
            children[k[:-1]].append(k)
    values = _group_values(walk, plan, groups, i0, i1) if groups else None

    def leaf_series(leaf: Node, i: int) -> tuple[np.ndarray, float]:
        col = plan.leaf_ids[leaf]
        whole = total.value(col, i)
        return (groups.values(col, i) if groups else np.array([whole])), whole

    shown: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for key in keys:  # values first: parents before their movements, "other" last
        row = rows[key]
        if row.node is not None:
            shown[key] = _shown(walk, values, row.node, n_groups)
        elif row.kind == "movement":
            parent = rows[key[:-1]]
            if row.movement == "other":
                moved = _residual(key[:-1], children, shown)
            else:
                col = plan.bridges[parent.node][row.movement]
                moved = _movement(col, total, groups, i0, i1, row.movement)
            shown[key] = (np.full(n_groups, np.nan), np.full(n_groups, np.nan), moved)
    dropped = {k for k in keys if rows[k].movement == "other" and not shown[k][2].any()}
    keys = [k for k in keys if k not in dropped]
    for k in dropped:
        children[k[:-1]].remove(k)
    split: dict[tuple, np.ndarray] = {}
    whole: dict[tuple, float] = {}
    for key in reversed(keys):  # contributions bottom-up
        row = rows[key]
        c, w = np.zeros(n_groups), 0.0
        if row.kind == "movement":
            c = rows[key[:-1]].slope * shown[key][2]
        elif row.fixed is not None:
            if groups is None:
                c = np.array([row.fixed])
            else:
                w = row.fixed
        elif row.node is not None and row.node in plan.leaf_ids:
            g0, t0 = leaf_series(row.node, i0)
            g1, t1 = leaf_series(row.node, i1)
            if groups is None or (_splits(g0, t0) and _splits(g1, t1)):
                c = row.slope * (np.nan_to_num(g1) - np.nan_to_num(g0))
            else:
                w = row.slope * (t1 - t0)
                notes.append(
                    f"{row.driver} does not add up over {', '.join(request.by)}; its "
                    "contribution is shown for the total only"
                )
        else:
            for child in children[key]:
                c = c + split[child]
                w += whole.get(child, 0.0)
        split[key] = c
        if w or (row.fixed is not None and groups is not None):
            whole[key] = w
    out: list[dict[str, Any]] = []
    for key in keys:
        row = rows[key]
        base = {
            "driver": row.driver,
            "parent": key[-2] if len(key) > 1 else "",
            "depth": len(key),
            "kind": row.kind,
        }
        s0, s1, ch = shown.get(key, (np.full(n_groups, np.nan),) * 3)
        if not (groups is not None and row.fixed is not None):
            for g in range(n_groups):
                entry = dict(base)
                if groups is not None:
                    entry.update(zip(request.by, groups.label_of(g)))
                entry.update(
                    start_value=s0[g], end_value=s1[g], change=ch[g], contribution=split[key][g]
                )
                out.append(entry)
        if key in whole:
            entry = dict(base, **dict.fromkeys(request.by))
            t0, t1 = (
                (float(walk.start(row.node)), float(walk.end(row.node)))
                if row.node is not None
                else (np.nan, np.nan)
            )
            entry.update(start_value=t0, end_value=t1, change=t1 - t0, contribution=whole[key])
            out.append(entry)
    columns = ["driver", "parent", "depth", "kind", *request.by]
    columns += ["start_value", "end_value", "change", "contribution"]
    return out, columns, notes


def _add_bridge_rows(walk: _Walk, plan: _Plan) -> None:
    """Under every sum of a stock read per entity, its movements (inserted right after it,
    so the rows stay in pre-order)."""
    rows: dict[tuple, _Row] = {}
    for key, row in walk.rows.items():
        rows[key] = row
        if row.node in plan.bridges and row.fixed is None:
            for movement in [m for m, _, _ in MOVEMENTS] + ["other"]:
                k = (*key, movement)
                rows[k] = _Row(k, movement, "movement", None, movement=movement)
    walk.rows.clear()
    walk.rows.update(rows)


def _group_values(walk, plan, groups, i0, i1) -> tuple[_Values, _Values]:
    """Every node's value per group at start and end; an absent segment has none of an
    additive leaf (0), and no value of any other."""
    ends = []
    for i in (i0, i1):
        leaves = {}
        for leaf, col in plan.leaf_ids.items():
            v = groups.values(col, i, np.nan)
            leaves[leaf] = np.nan_to_num(v, nan=0.0) if _additive(leaf) else v
        ends.append(_Values(walk.kpis, leaves))
    return ends[0], ends[1]


def _shown(walk, values, node, n_groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if values is None:
        s0, s1 = np.array([float(walk.start(node))]), np.array([float(walk.end(node))])
    else:
        s0 = np.asarray(values[0](node), dtype=float) * np.ones(n_groups)
        s1 = np.asarray(values[1](node), dtype=float) * np.ones(n_groups)
    return s0, s1, s1 - s0


def _residual(key, children, shown) -> np.ndarray:
    """What the five movements leave of the stock's change: amounts that are negative or
    missing fall in no movement (differences under a cent are rounding and are dropped)."""
    moved = sum(shown[k][2] for k in children[key] if k[-1] != "other")
    rest = np.nan_to_num(shown[key][2]) - moved
    return np.where(np.abs(rest) > 0.005, rest, 0.0)


def _additive(leaf: Node) -> bool:
    """Does the leaf add up over segments (sum and count do; mean, median... do not)?"""
    inner = leaf.args[0] if isinstance(leaf, Call) and leaf.func == "previous" else leaf
    return isinstance(inner, Call) and inner.func in ("sum", "count")


def _splits(parts: np.ndarray, whole: float) -> bool:
    if not math.isfinite(whole) or not np.isfinite(parts).all():
        return False
    return abs(parts.sum() - whole) <= 1e-9 * max(1.0, float(np.abs(parts).sum()))


def _movement(col: str, total, groups, i0: int, i1: int, name: str) -> np.ndarray:
    """A movement summed over the periods after start up to end (negated if end is first)."""
    lo, hi, sign = (i0, i1, 1.0) if i0 < i1 else (i1, i0, -1.0)
    direction = next(d for m, _, d in MOVEMENTS if m == name)
    acc = None
    for i in range(lo + 1, hi + 1):
        part = np.array([total.value(col, i)]) if groups is None else groups.values(col, i)
        part = np.nan_to_num(part, nan=0.0)
        acc = part if acc is None else acc + part
    return sign * direction * acc + 0.0  # no -0.0 for a movement that is zero


def _segments(kpis, kpi, walk, plan, total, groups, i0, i1, frame) -> list[dict[str, Any]]:
    """Each segment's contribution, split for ratio KPIs into a rate and a mix effect."""
    by = groups.by
    top = frame[(frame["depth"] == 1) & frame[by[0]].notna()] if len(frame) else frame
    group_frame = top.groupby(by, sort=False, dropna=False)["contribution"].sum()
    ratio = _ratio_parts(kpi.expression)
    out = []
    leaves0 = {leaf: groups.values(c, i0, np.nan) for leaf, c in plan.leaf_ids.items()}
    leaves1 = {leaf: groups.values(c, i1, np.nan) for leaf, c in plan.leaf_ids.items()}
    for leaf in plan.leaf_ids:
        if _additive(leaf):
            leaves0[leaf] = np.nan_to_num(leaves0[leaf], nan=0.0)
            leaves1[leaf] = np.nan_to_num(leaves1[leaf], nan=0.0)
    r0 = np.asarray(_Values(kpis, leaves0)(kpi.expression), dtype=float) * np.ones(
        len(groups.labels)
    )
    r1 = np.asarray(_Values(kpis, leaves1)(kpi.expression), dtype=float) * np.ones(
        len(groups.labels)
    )
    weights = None
    if ratio is not None:
        num, den = ratio
        d0 = np.asarray(_Values(kpis, leaves0)(den), dtype=float)
        d1 = np.asarray(_Values(kpis, leaves1)(den), dtype=float)
        n0 = np.asarray(_Values(kpis, leaves0)(num), dtype=float)
        n1 = np.asarray(_Values(kpis, leaves1)(num), dtype=float)
        t_d0, t_d1 = float(walk.start(den)), float(walk.end(den))
        t_n0, t_n1 = float(walk.start(num)), float(walk.end(num))
        if _splits(d0, t_d0) and _splits(d1, t_d1) and _splits(n0, t_n0) and _splits(n1, t_n1):
            weights = (d0 / t_d0, d1 / t_d1)
    for g in range(len(groups.labels)):
        label = groups.label_of(g)
        key = label if len(by) > 1 else label[0]
        contribution = float(group_frame.get(key, 0.0))
        entry: dict[str, Any] = dict(zip(by, label))
        entry.update(start_value=float(r0[g]), end_value=float(r1[g]), contribution=contribution)
        if weights is not None:
            w0, w1 = float(weights[0][g]), float(weights[1][g])
            both = math.isfinite(r0[g]) and math.isfinite(r1[g])
            rate = (w0 + w1) / 2 * (float(r1[g]) - float(r0[g])) if both else 0.0
            entry.update(
                start_weight=w0, end_weight=w1, rate_effect=rate, mix_effect=contribution - rate
            )
        out.append(entry)
    return out


def _ratio_parts(node: Node) -> tuple[Node, Node] | None:
    """(numerator, denominator) of a formula that is k * N / D with constant k, else None."""
    factors = product_factors(node, 1)
    moving = [(f, e) for f, e in factors if not is_constant(f)]
    nums = [f for f, e in moving if e > 0]
    dens = [f for f, e in moving if e < 0]
    if len(nums) == 1 and len(dens) == 1:
        return nums[0], dens[0]
    return None


# --------------------------------------------------------------------------------------
# A plain-language reading


def reading(frame: pd.DataFrame, name: str = "", limit: int = 3) -> str:
    """One paragraph: how far the KPI moved and its largest drivers (and segment)."""
    a = frame.attrs
    points = a.get("unit") == "percent"
    unit = " points" if points else ""
    change = a["change"]
    verb = "rose" if change > 0 else "fell" if change < 0 else "did not move"
    who = name or a["kpi"]
    text = f"{who} {verb}"
    if change:
        text += f" {_num(abs(change))}{unit}"
    text += f" from {_num(a['start_value'])} to {_num(a['end_value'])}"
    text += f" between {_period(a['start'])} and {_period(a['end'])}"
    top = frame[frame["depth"] == 1]
    while top["driver"].nunique() == 1 and (frame["depth"] > top["depth"].max()).any():
        top = frame[(frame["depth"] == top["depth"].max() + 1)]  # one driver: read below it
    if "segments" in a:
        top = top.groupby("driver", sort=False)["contribution"].sum().reset_index()
    moves = sorted(
        ((r.driver, r.contribution) for r in top.itertuples() if abs(r.contribution) > 1e-12),
        key=lambda t: -abs(t[1]),
    )[:limit]
    if moves:
        text += ": " + ", ".join(f"{_label(d)} {_signed(c)}" for d, c in moves)
    segments = a.get("segments")
    if segments:
        biggest = max(segments, key=lambda s: abs(s["contribution"]))
        label = "/".join(str(biggest[c]) for c in frame.columns if c in biggest and c not in _SEG)
        text += f"; {label} accounts for {_signed(biggest['contribution'])} of it"
        if "rate_effect" in biggest:
            rate, mix = biggest["rate_effect"], biggest["mix_effect"]
            text += ", mostly a rate effect" if abs(rate) >= abs(mix) else ", mostly a mix effect"
    return text + "."


_SEG = {"start_value", "end_value", "contribution", "start_weight", "end_weight"}


def _label(driver: str) -> str:
    return driver.replace("_", " ")


def _num(x: float) -> str:
    if x and abs(x) < 0.1:
        return f"{x:.2g}"  # a small change keeps two significant digits, not "0.0"
    return f"{x:,.1f}" if abs(x) < 1e6 else f"{x:,.0f}"


def _period(label: Any) -> str:
    if isinstance(label, pd.Timestamp) and label == label.normalize():
        return label.strftime("%Y-%m-%d")
    return str(label)


def _signed(x: float) -> str:
    return ("+" if x >= 0 else "-") + _num(abs(x))


def as_text(frame: pd.DataFrame) -> str:
    """The attribution as a table, drivers indented under their parents."""
    a = frame.attrs
    shown = frame.copy()
    shown["driver"] = [("  " * (d - 1)) + str(n) for d, n in zip(shown["depth"], shown["driver"])]
    shown = shown.drop(columns=["parent", "depth"])
    body = shown.to_string(index=False, float_format=lambda v: f"{v:,.2f}", na_rep="")
    head = (
        f"{a['kpi']}: {_num(a['start_value'])} in {a['start']} -> {_num(a['end_value'])} "
        f"in {a['end']} (change {_signed(a['change'])})"
    )
    parts = [head, "", body]
    if a.get("segments"):
        segments = pd.DataFrame(a["segments"])
        parts += [
            "",
            "by segment:",
            segments.to_string(index=False, float_format=lambda v: f"{v:,.3f}"),
        ]
    return "\n".join(parts)
