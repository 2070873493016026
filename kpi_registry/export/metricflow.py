"""dbt MetricFlow metrics from KPI formulas (``kpi export --format metricflow``).

A formula maps when MetricFlow can compute exactly what the engine computes:

* an aggregate over one entity's own row in the period becomes a *measure* on a semantic model
  (``sum(x)``; ``sum(x, x > 0)`` as a measure over ``CASE WHEN x > 0 THEN x ELSE 0 END``);
* a formula that is one aggregate becomes a *simple* metric; ``A / B`` of two metrics a
  *ratio* metric; any other arithmetic over aggregates and KPIs a *derived* metric;
* ``previous(K)`` of a KPI or aggregate becomes an input with ``offset_window: 1 <grain>``.

It does not map when the engine looks at rows MetricFlow cannot see: ``previous()`` or
``ever_before()`` inside an aggregate (each entity compared with its own history), an
aggregate whose value changes when an entity has no row at all (the engine fills ``missing:
zero`` datapoints in), or an aggregate other than ``sum`` over ``flow`` datapoints (the engine
totals each entity's rows over a coarse period first). Those KPIs are listed with the reason.

Tables: datapoints are assumed to live in one table per entity, named after the entity column
of the KPI's worked examples (``customer`` -> ``customer_inputs``): one row per entity and
period, a ``period`` date column, one column per datapoint. Datapoints whose examples have no
entity go to ``period_inputs``. The YAML says so in its header and in each model's description.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..formula import Binary, Call, Name, Node, Number, Unary
from ..formula.dispatch import function_table, method_table, node_table
from ..formula.render import format_number
from ..model import KPI, Datapoint
from ..registry import Registry

GRAINS = ("day", "week", "month", "quarter", "year")
#: dbt's two YAML specs for the Semantic Layer; ``latest`` is the default.
SPECS = ("latest", "legacy")
#: MetricFlow's own name rule: lower snake case, no double underscore, at least 2 characters.
MF_NAME = re.compile(r"^[a-z](?:(?!__)[a-z0-9_])*[a-z0-9]$")
_RESERVED = {*GRAINS, "hour", "minute", "second", "millisecond", "microsecond", "nanosecond"}
_RESERVED |= {"metric_time", "mf_internal_uuid"}

#: A constant for the export's grain would be wrong whenever MetricFlow is asked for the metric
#: at another grain (a quarterly lifetime a third of the monthly one), so it is not exported.
GRAIN_DEPENDENT = (
    "months_in_period() depends on the grain the metric is queried at, which a MetricFlow "
    "expression cannot read"
)

#: days_in_period() and business_days_in_period() vary with the grain and with each period.
CALENDAR_DEPENDENT = (
    "{func}() counts the days of each period at the grain the metric is queried at, which a "
    "MetricFlow expression cannot read"
)


#: The time functions no MetricFlow expression can compute, each with the reason.
_GRAIN_DEPENDENT: dict[str, str] = {
    "months_in_period": GRAIN_DEPENDENT,
    "days_in_period": CALENDAR_DEPENDENT.format(func="days_in_period"),
    "business_days_in_period": CALENDAR_DEPENDENT.format(func="business_days_in_period"),
}

#: What the engine does with the functions that read an entity's own history, row by row;
#: inside an aggregate they do not map (a measure sees one period's rows only).
_ROW_HISTORY: dict[str, str] = {
    "previous": "compares each entity with its own previous period",
    "ever_before": "looks back over each entity's history",
}

#: The functions MetricFlow cannot express anywhere in a formula, each with the reason.
#: (previous() maps at period level, as an offset input; inside an aggregate it is refused
#: per KPI, see ``_ROW_HISTORY``.)
UNSUPPORTED_FUNCTIONS: Mapping[str, str] = {
    **_GRAIN_DEPENDENT,
    "ever_before": (
        f"ever_before() {_ROW_HISTORY['ever_before']}, row by row; a MetricFlow measure only "
        "sees the rows of the period it aggregates, and a derived metric sees no rows at all"
    ),
}


def _calls(node: Node) -> Iterator[Call]:
    """Every function call in a formula, outermost first."""
    return (n for n in node.walk() if isinstance(n, Call))


def _reads_data(node: Node) -> bool:
    """Whether the expression reads a datapoint or KPI (else it is a constant)."""
    return any(isinstance(n, Name) for n in node.walk())


class NotMappable(Exception):
    """This formula has no exact MetricFlow equivalent; the message says why."""


def valid_name(name: str) -> bool:
    return bool(MF_NAME.match(name)) and name not in _RESERVED


# -- SQL for expressions ------------------------------------------------------------------
# Built as sqlglot trees like the compiler's SQL; every operation is parenthesised, so the
# text reads the same in any dialect. sqlglot is imported when an expression is first written.
_CMP_TREE = {"=": "EQ", "!=": "NEQ", "<": "LT", "<=": "LTE", ">": "GT", ">=": "GTE"}
_ARITH_TREE = {"+": "Add", "-": "Sub", "*": "Mul", "and": "And", "or": "Or"}


def _greatest_least(args: list, pick: str):
    """GREATEST/LEAST that skip missing values, as the engine does (Snowflake's do not)."""
    from sqlglot import exp

    compare = exp.GTE if pick == ">=" else exp.LTE
    out = args[0]
    for arg in args[1:]:
        ifs = [
            exp.If(this=exp.Is(this=a.copy(), expression=exp.Null()), true=other.copy())
            for a, other in ((out, arg), (arg, out))
            if not (isinstance(a, exp.Literal) and a.is_number)
        ]
        ifs.append(exp.If(this=compare(this=out.copy(), expression=arg.copy()), true=out.copy()))
        out = exp.Case(ifs=ifs, default=arg.copy())
    return out


def _sql_if(args: list):
    from sqlglot import exp

    return exp.Case(ifs=[exp.If(this=args[0], true=args[1])], default=args[2])


def _sql_abs(args: list):
    from sqlglot import exp

    return exp.Abs(this=args[0])


def _sql_coalesce(args: list):
    from sqlglot import exp

    return exp.Coalesce(this=args[0], expressions=args[1:])


#: The scalar functions as SQL, from their arguments' sqlglot trees.
SQL_FUNCTIONS: dict[str, Callable[[list], Any]] = function_table(
    {
        "if": _sql_if,
        "abs": _sql_abs,
        "coalesce": _sql_coalesce,
        "greatest": lambda args: _greatest_least(args, ">="),
        "least": lambda args: _greatest_least(args, "<="),
    },
    UNSUPPORTED_FUNCTIONS,
)


class _ExpressionTree:
    """One sqlglot tree per node type (see :func:`expression_tree`)."""

    def __init__(self, name_sql: Callable[[str], str]):
        self.name_sql = name_sql

    def __call__(self, node: Node):
        return _EXPRESSION_NODES[type(node)](self, node)

    def number(self, n: Number):
        from sqlglot import exp

        return exp.Literal.number(format_number(n.value))

    def name(self, n: Name):
        from sqlglot import exp

        return exp.var(self.name_sql(n.name))

    def unary(self, n: Unary):
        from sqlglot import exp

        inner = self(n.operand)
        if n.op == "not":
            return exp.Not(this=exp.Coalesce(this=inner, expressions=[exp.false()]))
        return exp.Neg(this=exp.Paren(this=inner))

    def binary(self, n: Binary):
        from sqlglot import exp

        a, b = self(n.left), self(n.right)
        if n.op == "/":
            scaled = exp.Mul(this=a, expression=exp.Literal.number("1.0"))
            if not (isinstance(n.right, Number) and n.right.value != 0):
                b = exp.Nullif(this=b, expression=exp.Literal.number("0"))
            return exp.Paren(this=exp.Div(this=scaled, expression=b))
        if n.op == "^":
            return exp.Pow(this=a, expression=b)
        cls = getattr(exp, _CMP_TREE.get(n.op) or _ARITH_TREE[n.op])
        return exp.Paren(this=cls(this=a, expression=b))

    def call(self, n: Call):
        args = [self(a) for a in n.args]
        if n.func in SQL_FUNCTIONS:
            return SQL_FUNCTIONS[n.func](args)
        if n.func in _GRAIN_DEPENDENT:
            raise NotMappable(_GRAIN_DEPENDENT[n.func])
        # aggregates and previous() are leaves of period-level SQL (rebuild_expression)
        raise NotMappable(f"{n.func}() has no SQL form here")


_EXPRESSION_NODES = method_table(_ExpressionTree)


def expression_tree(node: Node, name_sql):
    """A formula expression as a sqlglot tree; ``name_sql`` spells each name (its text is
    kept as given: a column, or an expression such as ``COALESCE(x, 0)``).

    Matches the engine's rules: division by zero gives NULL, a comparison with a missing value
    is false (also under ``not``), greatest/least/coalesce skip missing values."""
    return _ExpressionTree(name_sql)(node)


def expression_sql(node: Node, name_sql) -> str:
    """Portable SQL text for a formula expression (see :func:`expression_tree`)."""
    return expression_tree(node, name_sql).sql()


# -- the engine's value of a row expression for an entity without a row ------------------
def _at_absent(node: Node, specs: dict[str, Datapoint]) -> Any:
    """What the engine computes for an entity with no row in the period (``missing: zero``
    datapoints read 0, others are missing), by the one rule the SQL layout uses too
    (``sql.sparse.at_empty_cell``). A grain-dependent function is not mappable at all."""
    for n in _calls(node):
        if n.func in _GRAIN_DEPENDENT:
            raise NotMappable(_GRAIN_DEPENDENT[n.func])
    # imported here: the SQL package's numpy and pandas stay out of `kpi --help`
    from ..sql.sparse import NotProvable, at_empty_cell

    fills = {name: 0.0 if spec.missing == "zero" else math.nan for name, spec in specs.items()}
    try:
        return at_empty_cell(node, fills)
    except NotProvable as e:
        raise NotMappable(str(e)) from None


def _holds(value: Any) -> bool:
    from ..sql.sparse import truthy

    return truthy(value)


def _linear(node: Node) -> bool:
    """Datapoints combined with + and - and scaled by constants: sums commute with it.
    (An added constant does not: it would be counted once per row instead of once per entity.)"""
    return _LINEAR_NODES[type(node)](node)


def _linear_binary(node: Binary) -> bool:
    if node.op in ("+", "-"):
        return _linear(node.left) and _linear(node.right)
    if node.op in ("*", "/"):
        if node.op == "*" and not _reads_data(node.left):
            return _linear(node.right)
        return not _reads_data(node.right) and _linear(node.left)
    return False


_LINEAR_NODES: dict[type[Node], Callable[[Any], bool]] = node_table(
    {
        Number: lambda node: False,
        Name: lambda node: True,
        Unary: lambda node: node.op == "-" and _linear(node.operand),
        Binary: _linear_binary,
        Call: lambda node: False,
    }
)


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


# -- aggregates as MetricFlow measures --------------------------------------------------
@dataclass(frozen=True)
class _Aggregate:
    """How an aggregate becomes a measure: MetricFlow's ``agg`` and the measure's ``expr``
    from the value (its node and SQL) and the filter's SQL (None without a filter)."""

    agg: str
    expr: Callable[[Node, str, str | None], str]


def _sum_expr(value: Node, value_sql: str, cond_sql: str | None) -> str:
    if isinstance(value, Name) and cond_sql is None:
        return value.name
    if cond_sql is None:
        return value_sql
    return f"CASE WHEN {cond_sql} THEN {value_sql} ELSE 0 END"


def _count_expr(value: Node, value_sql: str, cond_sql: str | None) -> str:
    test = f"{value_sql} IS NOT NULL" + (f" AND {cond_sql}" if cond_sql else "")
    return f"CASE WHEN {test} THEN 1 ELSE 0 END"


def _filtered_expr(value: Node, value_sql: str, cond_sql: str | None) -> str:
    return value_sql if cond_sql is None else f"CASE WHEN {cond_sql} THEN {value_sql} END"


MEASURES: dict[str, _Aggregate] = function_table(
    {
        "sum": _Aggregate("sum", _sum_expr),
        "count": _Aggregate("sum", _count_expr),  # a sum of 1/0 flags: a filter fits in expr
        "count_distinct": _Aggregate("count_distinct", _filtered_expr),
        "mean": _Aggregate("average", _filtered_expr),
        "median": _Aggregate("median", _filtered_expr),
        "min": _Aggregate("min", _filtered_expr),
        "max": _Aggregate("max", _filtered_expr),
    },
    UNSUPPORTED_FUNCTIONS,
)

#: The calls that are leaves of period-level arithmetic: an aggregate (a measure) or
#: previous() (an input with an offset window).
PERIOD_LEAVES = frozenset({*MEASURES, "previous"})


def _is_aggregate(node: Node) -> bool:
    return isinstance(node, Call) and node.func in MEASURES


# -- the translation ----------------------------------------------------------------------
@dataclass
class Table:
    """One semantic model: a table with one row per entity (if any) and period."""

    name: str
    entity: str | None
    measures: dict[str, dict[str, Any]] = field(default_factory=dict)
    columns: set[str] = field(default_factory=set)


@dataclass
class MetricflowExport:
    grain: str
    tables: list[Table]
    metrics: list[dict[str, Any]]
    skipped: dict[str, str]  # KPI id -> why it does not map
    exported: list[str]  # KPI ids exported as metrics

    def semantic_models(self) -> list[dict[str, Any]]:
        out = []
        for t in self.tables:
            if not t.measures:
                continue
            cols = ", ".join(sorted(t.columns))
            who = f"{t.entity} and period" if t.entity else "period"
            model: dict[str, Any] = {
                "name": t.name,
                "description": (
                    f"Assumed table: one row per {who}, with a `period` date column "
                    f"(the start of the {self.grain}) and the datapoint columns {cols}. Rows "
                    "of one entity and period are already combined as each datapoint's `rows` "
                    "rule says. Written by kpi export; point `model` at your own table."
                ),
                "model": f"ref('{t.name}')",
                "defaults": {"agg_time_dimension": "period"},
                "primary_entity": f"{t.entity}_period" if t.entity else "kpi_period",
            }
            if t.entity:
                model["entities"] = [{"name": t.entity, "type": "foreign", "expr": t.entity}]
            model["dimensions"] = [
                {"name": "period", "type": "time", "type_params": {"time_granularity": self.grain}}
            ]
            model["measures"] = list(t.measures.values())
            out.append(model)
        return out

    def document(self) -> dict[str, Any]:
        """The dbt YAML document: ``semantic_models`` and ``metrics``."""
        return {"version": 2, "semantic_models": self.semantic_models(), "metrics": self.metrics}

    def header(self, spec: str = "latest") -> str:
        from .. import __version__

        lines = [
            f"Generated by `kpi export --format metricflow` (kpi-registry {__version__}), "
            + (
                "dbt's latest metrics spec (dbt Core 1.12+, Fusion)."
                if spec == "latest"
                else "dbt's legacy metrics spec (dbt Core 1.6-1.11)."
            ),
            f"{len(self.exported)} KPIs exported as dbt MetricFlow metrics; "
            f"{len(self.skipped)} do not map (listed at the end).",
            "Assumed tables (dbt models), one row per entity and period:",
        ]
        for t in self.tables:
            if t.measures:
                key = f"{t.entity}, period" if t.entity else "period"
                lines.append(f"  {t.name}: {key}, {', '.join(sorted(t.columns))}")
        lines += [
            f"`period` holds the start date of each {self.grain}. previous() is an offset of 1 "
            f"{self.grain}: query these metrics at {self.grain} grain.",
            "Offsets need a MetricFlow time spine model in your dbt project.",
        ]
        return "\n".join(lines)

    def footer(self) -> str:
        if not self.skipped:
            return ""
        lines = ["Not exported (no exact MetricFlow equivalent):"]
        lines += [f"  {kpi_id}: {why}" for kpi_id, why in sorted(self.skipped.items())]
        return "\n".join(lines)

    def to_yaml(self, spec: str = "latest") -> str:
        """dbt's YAML in its ``latest`` spec (dbt Core 1.12+, Fusion: semantic models on
        models, measures folded into simple metrics) or the ``legacy`` one (Core 1.6-1.11)."""
        import yaml

        if spec not in SPECS:
            raise ValueError(f"spec must be one of {', '.join(SPECS)}")
        if spec == "latest":
            from .metricflow_latest import latest_document

            document = latest_document(self)
        else:
            document = self.document()

        class Dumper(yaml.SafeDumper):  # indent list items under their key, as dbt docs do
            def increase_indent(self, flow: bool = False, indentless: bool = False):
                return super().increase_indent(flow, False)

        body = yaml.dump(document, Dumper=Dumper, sort_keys=False, width=4096, allow_unicode=True)
        text = self.header(spec)
        header = "".join(f"# {line}\n" if line else "#\n" for line in text.split("\n"))
        footer = "".join(f"# {line}\n" for line in self.footer().split("\n") if line)
        return header + body + (footer and "\n" + footer)


class _Translator:
    def __init__(self, registry: Registry, grain: str):
        self.reg = registry
        self.grain = grain
        self.entity_of = entity_columns(registry)
        self.tables: dict[str | None, Table] = {}
        self.metrics: dict[str, dict[str, Any]] = {}  # committed, by name
        self.labels: set[str] = set()
        self.done: dict[str, str | NotMappable] = {}  # KPI id -> metric name or reason

    # -- KPIs -------------------------------------------------------------------------
    def kpi(self, kpi_id: str) -> str:
        """The metric for a KPI (translating it first), or NotMappable."""
        if kpi_id not in self.done:
            try:
                self.done[kpi_id] = self._translate(self.reg[kpi_id])
            except NotMappable as e:
                self.done[kpi_id] = e
        result = self.done[kpi_id]
        if isinstance(result, NotMappable):
            raise result
        return result

    def _translate(self, kpi: KPI) -> str:
        if not valid_name(kpi.id):
            raise NotMappable(
                "the id is not a valid MetricFlow name (no double underscores, not a time "
                "grain, at least 2 characters)"
            )
        node = kpi.expression
        if node is None:
            raise NotMappable("the formula did not load")
        pending = _Pending()
        specs = kpi.datapoints
        metric: dict[str, Any] = {"name": kpi.id, "label": self._label(kpi.name, kpi.id)}
        if kpi.summary:
            metric["description"] = " ".join(kpi.summary.split())
        if _is_aggregate(node):
            measure = self._measure(node, specs, pending, kpi.id)
            metric.update(type="simple", type_params={"measure": measure})
        elif (
            isinstance(node, Binary)
            and node.op == "/"
            and all(self._is_input(side) for side in (node.left, node.right))
        ):
            num = self._input_metric(node.left, specs, pending, kpi.id)
            den = self._input_metric(node.right, specs, pending, kpi.id)
            metric.update(
                type="ratio", type_params={"numerator": {"name": num}, "denominator": {"name": den}}
            )
        else:
            inputs: dict[tuple[str, int], str] = {}
            expr = self._period_sql(node, specs, pending, kpi.id, inputs)
            if not inputs:
                raise NotMappable("the formula is a constant; there is nothing to measure")
            metrics = []
            for (name, offset), alias in inputs.items():
                item: dict[str, Any] = {"name": name}
                if alias != name:
                    item["alias"] = alias
                if offset:
                    item["offset_window"] = f"{offset} {self.grain}"
                metrics.append(item)
            metric.update(type="derived", type_params={"expr": expr, "metrics": metrics})
        pending.commit(self)
        self.metrics[kpi.id] = metric
        self.labels.add(metric["label"])
        return kpi.id

    def _label(self, text: str, fallback: str) -> str:
        return text if text not in self.labels else f"{text} ({fallback})"

    # -- period level -----------------------------------------------------------------
    def _is_input(self, node: Node) -> bool:
        return _is_aggregate(node) or (isinstance(node, Name) and node.name in self.reg)

    def _input_metric(self, node: Node, specs, pending: _Pending, owner: str) -> str:
        if isinstance(node, Name):
            return self._dependency(node.name)
        measure = self._measure(node, specs, pending, owner)
        return pending.helper_metric(self, measure)

    def _dependency(self, kpi_id: str) -> str:
        try:
            return self.kpi(kpi_id)
        except NotMappable as e:
            reason = str(e) if not str(e).startswith("uses ") else f"see {kpi_id}"
            raise NotMappable(f"uses {kpi_id}, which does not map ({reason})") from None

    def _period_sql(self, node: Node, specs, pending, owner: str, inputs, offset: int = 0) -> str:
        """SQL over the derived metric's inputs; each (metric, offset) becomes one input."""

        def alias(metric: str) -> str:
            if (metric, offset) not in inputs:
                name = metric
                if offset:
                    name = f"{metric}_prev" + (str(offset) if offset > 1 else "")
                    while name in inputs.values() or name in self.reg or name in self.metrics:
                        name += "_offset"  # never shadow another input or metric
                inputs[(metric, offset)] = name
            return inputs[(metric, offset)]

        def leaf(n: Node) -> str:
            if isinstance(n, Name):
                return alias(self._dependency(n.name))
            return _PERIOD_CALLS[n.func](self, n, specs, pending, owner, inputs, offset, alias)

        return rebuild_expression(node, leaf)

    def _offset_input(self, call: Call, specs, pending, owner, inputs, offset, alias) -> str:
        """previous(K): K's inputs one more grain back (``offset_window``)."""
        return self._period_sql(call.args[0], specs, pending, owner, inputs, offset + 1)

    def _aggregate_input(self, call: Call, specs, pending, owner, inputs, offset, alias) -> str:
        """An aggregate: a measure, as a helper simple metric."""
        return alias(self._input_metric(call, specs, pending, owner))

    # -- aggregates -> measures -------------------------------------------------------
    def _measure(self, call: Call, specs: dict[str, Datapoint], pending, owner: str) -> str:
        func = call.func
        for n in _calls(call):
            if n.func in _ROW_HISTORY:
                what = _ROW_HISTORY[n.func]
                raise NotMappable(
                    f"{func}() over {n.func}(): the engine {what}, row by row; a MetricFlow "
                    "measure only sees the rows of the period it aggregates"
                )
        names = sorted({n.name for n in call.walk() if isinstance(n, Name)})
        times = {specs[n].coarsening for n in names}
        other = times - {"flow", "closing"}
        if other:
            rule = sorted(other)[0]
            raise NotMappable(
                f"{func}() reads a datapoint with time: {rule} ({', '.join(names)}): a "
                "MetricFlow measure has no rule that combines the months of a coarser period "
                "that way"
            )
        if len(times) > 1:
            raise NotMappable(
                f"{func}() mixes stock and flow datapoints ({', '.join(names)}): no single "
                "measure aggregates both correctly over coarser periods"
            )
        if times == {"flow"} and not (
            func == "sum" and len(call.args) == 1 and _linear(call.args[0])
        ):
            # Over a coarser period the engine first totals each entity's flow rows, then
            # applies the expression, filter and aggregate; a measure works row by row. Only
            # a plain sum of a linear expression gives the same number either way.
            what = "a filter" if len(call.args) > 1 else "an expression that is not a plain sum"
            if func != "sum":
                what = f"{func}()"
            raise NotMappable(
                f"{what} over flow datapoints ({', '.join(names)}): for a coarser period the "
                "engine totals each entity's rows first and applies it to the totals; a "
                "MetricFlow measure applies it row by row, so the two differ above the base grain"
            )
        tables = {self.entity_of.get(n) for n in names}
        if len(tables) > 1:
            raise NotMappable(
                f"{func}() reads datapoints that live in different tables "
                f"({', '.join(sorted(str(t) for t in tables))})"
            )
        value = call.args[0]
        condition = call.args[1] if len(call.args) > 1 else None
        self._check_absent_rows(call, value, condition, specs)

        def column(name: str) -> str:
            return f"COALESCE({name}, 0)" if specs[name].missing == "zero" else name

        value_sql = expression_sql(value, column)
        cond_sql = expression_sql(condition, column) if condition is not None else None
        aggregate = MEASURES[func]
        expr = aggregate.expr(value, value_sql, cond_sql)
        measure: dict[str, Any] = {"agg": aggregate.agg, "expr": expr}
        if times == {"closing"}:
            # A stock (MRR, seats) counts at the period's last date, as in the engine.
            measure["non_additive_dimension"] = {"name": "period", "window_choice": "max"}
        entity = tables.pop()
        return pending.measure(self, entity, names, measure, owner, call)

    def _check_absent_rows(self, call: Call, value, condition, specs) -> None:
        """The engine gives every known entity a cell in every period; a measure only sees
        rows that exist. They agree when an absent entity adds nothing to the aggregate."""
        if condition is not None and not _holds(_at_absent(condition, specs)):
            return
        v = float(_at_absent(value, specs))
        if _is_nan(v) or (call.func == "sum" and v == 0):
            return
        zero = sorted(n for n, d in specs.items() if d.missing == "zero")
        raise NotMappable(
            f"{call.func}() counts entities that have no row in a period (missing: zero makes "
            f"{', '.join(zero)} read 0 there); a MetricFlow measure cannot see rows that are "
            "not in the table"
        )

    def run(self) -> MetricflowExport:
        for kpi in self.reg:
            try:
                self.kpi(kpi.id)
            except NotMappable:
                pass
        skipped = {k: str(v) for k, v in self.done.items() if isinstance(v, NotMappable)}
        exported = sorted(k for k, v in self.done.items() if not isinstance(v, NotMappable))
        tables = sorted(self.tables.values(), key=lambda t: t.name)
        metrics = [self.metrics[name] for name in sorted(self.metrics)]
        return MetricflowExport(self.grain, tables, metrics, skipped, exported)


@dataclass
class _Pending:
    """Measures and helper metrics one KPI needs; added only if the whole KPI maps."""

    measures: list[tuple[str | None, str, dict[str, Any], set[str]]] = field(default_factory=list)
    helpers: dict[str, dict[str, Any]] = field(default_factory=dict)

    def measure(self, tr: _Translator, entity, names, spec, owner, call) -> str:
        table = tr.tables.get(entity)
        for existing in [
            *(table.measures.values() if table else []),
            *(m[2] for m in self.measures),
        ]:
            if {k: v for k, v in existing.items() if k != "name"} == spec:
                return existing["name"]
        if len(call.args) == 1 and isinstance(call.args[0], Name):
            dp = call.args[0].name  # sum(revenue) -> revenue, mean(score) -> average_score
            base = dp if call.func == "sum" else f"{MEASURES[call.func].agg}_{dp}"
        else:
            base = f"{owner}_m1"
        name, n = base, 1
        taken = {m["name"] for t in tr.tables.values() for m in t.measures.values()}
        taken |= {m[1] for m in self.measures} | set(tr.reg.ids) | set(tr.metrics)
        while name in taken or not valid_name(name):
            n += 1
            name = f"{owner}_m{n}"
        self.measures.append((entity, name, {"name": name, **spec}, set(names)))
        return name

    def helper_metric(self, tr: _Translator, measure: str) -> str:
        if measure not in tr.metrics and measure not in self.helpers:
            self.helpers[measure] = {
                "name": measure,
                "label": f"{measure} (input)",
                "type": "simple",
                "type_params": {"measure": measure},
            }
        return measure

    def commit(self, tr: _Translator) -> None:
        for entity, name, spec, names in self.measures:
            table = tr.tables.get(entity)
            if table is None:
                table = tr.tables[entity] = Table(
                    f"{entity}_inputs" if entity else "period_inputs", entity
                )
            table.measures[name] = spec
            table.columns |= names
        for name, metric in self.helpers.items():
            tr.metrics.setdefault(name, metric)
            tr.labels.add(metric["label"])


#: The translator's handlers of the period-level calls (the scalar functions are SQL there).
_PERIOD_CALLS = function_table(
    {
        **dict.fromkeys(sorted(MEASURES), _Translator._aggregate_input),
        "previous": _Translator._offset_input,
    },
    UNSUPPORTED_FUNCTIONS,
)

#: Every function a MetricFlow export handles: the scalar functions as SQL in a measure's
#: ``expr`` or a derived metric's ``expr``, the aggregates as measures, previous() as an
#: input with an offset window. The others are in ``UNSUPPORTED_FUNCTIONS`` with the reason.
METRICFLOW_FUNCTIONS: Mapping[str, Callable] = function_table(
    {**SQL_FUNCTIONS, **_PERIOD_CALLS}, UNSUPPORTED_FUNCTIONS
)


def _is_leaf(node: Node) -> bool:
    return isinstance(node, Name) or (isinstance(node, Call) and node.func in PERIOD_LEAVES)


class _StandIn:
    """The formula with each leaf replaced by a placeholder name whose SQL ``leaf`` spells."""

    def __init__(self, leaf: Callable[[Node], str]):
        self.leaf = leaf
        self.placeholders: dict[str, str] = {}

    def __call__(self, node: Node) -> Node:
        return _STAND_IN_NODES[type(node)](self, node)

    def placeholder(self, n: Node) -> Node:
        key = f"__leaf{len(self.placeholders)}"
        self.placeholders[key] = self.leaf(n)
        return Name(n.pos, key)

    def number(self, n: Number) -> Node:
        return n

    def name(self, n: Name) -> Node:
        return self.placeholder(n)

    def unary(self, n: Unary) -> Node:
        return Unary(n.pos, n.op, self(n.operand))

    def binary(self, n: Binary) -> Node:
        return Binary(n.pos, n.op, self(n.left), self(n.right))

    def call(self, n: Call) -> Node:
        if n.func in PERIOD_LEAVES:
            return self.placeholder(n)
        return Call(n.pos, n.func, tuple(self(a) for a in n.args))


_STAND_IN_NODES = method_table(_StandIn)


def rebuild_expression(node: Node, leaf) -> str:
    """SQL for period-level arithmetic whose leaves (aggregates, KPIs, previous) ``leaf``
    spells; the operators follow expression_sql."""
    if _is_leaf(node):
        return leaf(node)
    stand_in = _StandIn(leaf)
    return expression_sql(stand_in(node), stand_in.placeholders.__getitem__)


def entity_columns(registry: Registry) -> dict[str, str]:
    """Datapoint -> entity column, from the first worked example (by KPI id) that names one."""
    out: dict[str, str] = {}
    for kpi in registry:
        for example in kpi.examples:
            entity = example.entity
            if not isinstance(entity, str):
                continue
            name = re.sub(r"[^a-z0-9]+", "_", entity.lower()).strip("_")
            if not valid_name(name) or name == "period":
                name = "entity"
            for dp in kpi.datapoints:
                out.setdefault(dp, name)
    return out


def metricflow(registry: Registry, *, grain: str = "month") -> MetricflowExport:
    """Translate every KPI that maps; the result lists the others with the reason."""
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {', '.join(GRAINS)}")
    return _Translator(registry, grain).run()
