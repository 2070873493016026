"""The library as an Apache Ossie (formerly Open Semantic Interchange) v0.1.1 document
(``kpi export --format ossie``), checked against the schema vendored beside this file.

What goes where:

* one *metric* per KPI: ``name`` is the id, ``description`` the definition, ``ai_context`` the
  summary (instructions) and the name and aliases (synonyms);
* its ``ANSI_SQL`` expression is one aggregate over the assumed input tables, written only
  where it computes what our engine computes: the KPIs the MetricFlow export maps (same
  analysis, same reasons), with KPI references inlined, and no ``previous()``. For every other
  KPI the expression is ``NULL`` and the instructions say why and how to compute it (a number
  that is subtly wrong is worse than none);
* the rest of a definition (our formula, datapoints, examples, relations both ways, unit,
  direction, the 12 attributes) rides in a ``COMMON`` custom extension, a JSON string under the
  key ``kpi_registry``, so ``kpi import --format ossie`` gives the definitions back;
* *datasets* are the assumed tables of the MetricFlow export (``customer_inputs``: one row per
  customer and period, one column per datapoint).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from ...formula import Call, Name, Node
from ...formula.dispatch import function_table
from ...loading import to_plain
from ...registry import Registry
from ..metricflow import (
    MEASURES,
    UNSUPPORTED_FUNCTIONS,
    NotMappable,
    entity_columns,
    expression_sql,
    metricflow,
    rebuild_expression,
)

OSSIE_VERSION = "0.1.1"
#: The vendor of our extension block: 0.1.1 lists vendors in an enum; COMMON is the open one.
VENDOR = "COMMON"
EXTENSION_KEY = "kpi_registry"
EXTENSION_FORMAT = 1
#: Where a period-level column sits in every assumed table.
PERIOD = "period"
_TABLE_REF = re.compile(r"\b([a-z][a-z0-9_]*_inputs)\.")


@cache
def ossie_schema() -> dict[str, Any]:
    """The Ossie v0.1.1 JSON Schema, as published by apache/ossie (see README.md here)."""
    text = resources.files(__package__).joinpath("osi-schema.json").read_text("utf-8")
    return json.loads(text)


def table_of(entity: str | None) -> str:
    return f"{entity}_inputs" if entity else "period_inputs"


class _NotExact(Exception):
    """The KPI has no single SQL aggregate that gives the engine's number."""


class _SQL:
    """ANSI SQL for the KPIs whose value is one aggregate expression per period."""

    def __init__(self, registry: Registry):
        self.reg = registry
        self.entity_of = entity_columns(registry)
        self.done: dict[str, str | _NotExact] = {}

    def kpi(self, kpi_id: str) -> str:
        if kpi_id not in self.done:
            try:
                self.done[kpi_id] = self._translate(kpi_id)
            except (_NotExact, NotMappable) as e:
                self.done[kpi_id] = _NotExact(str(e))
        result = self.done[kpi_id]
        if isinstance(result, _NotExact):
            raise result
        return result

    def _translate(self, kpi_id: str) -> str:
        kpi = self.reg[kpi_id]
        if kpi.expression is None:
            raise _NotExact("the formula did not load")
        specs = kpi.datapoints

        def leaf(node: Node) -> str:
            if isinstance(node, Call):  # an aggregate, or previous() of a period-level value
                return _LEAF_CALLS[node.func](self, node, specs)
            return self._name(node)

        return self._finish(rebuild_expression(kpi.expression, leaf))

    def _name(self, node: Name) -> str:
        if node.name in self.reg:
            try:
                return f"({self.kpi(node.name)})"
            except _NotExact as e:
                raise _NotExact(f"uses {node.name}, which has no exact SQL ({e})") from None
        raise _NotExact(f"it reads the datapoint {node.name} outside an aggregate")

    def _previous(self, call: Call, specs) -> str:
        raise _NotExact(
            "it compares a period with the one before (previous()), which an aggregate "
            "over one period's rows cannot see"
        )

    def _finish(self, sql: str) -> str:
        tables = sorted(set(_TABLE_REF.findall(sql)))
        if len(tables) > 1:
            raise _NotExact(
                f"it reads datapoints of several assumed tables ({', '.join(tables)}); an "
                "aggregate over their join would count rows more than once"
            )
        return sql

    def _aggregate(self, call: Call, specs) -> str:
        def column(name: str) -> str:
            qualified = f"{table_of(self.entity_of.get(name))}.{name}"
            return f"COALESCE({qualified}, 0)" if specs[name].missing == "zero" else qualified

        value = expression_sql(call.args[0], column)
        cond = expression_sql(call.args[1], column) if len(call.args) > 1 else None
        return AGGREGATE_SQL[call.func](value, cond)


def _picked(value: str, cond: str | None) -> str:
    return f"CASE WHEN {cond} THEN {value} END" if cond else value


def _sum_sql(value: str, cond: str | None) -> str:
    return f"SUM(CASE WHEN {cond} THEN {value} ELSE 0 END)" if cond else f"SUM({value})"


def _count_sql(value: str, cond: str | None) -> str:
    test = f"{value} IS NOT NULL" + (f" AND {cond}" if cond else "")
    return f"COUNT(CASE WHEN {test} THEN 1 END)"


#: Each aggregate as one ANSI SQL aggregate over the value and the filter (None: no filter).
AGGREGATE_SQL: dict[str, Callable[[str, str | None], str]] = function_table(
    {
        "sum": _sum_sql,
        "count": _count_sql,
        "count_distinct": lambda v, c: f"COUNT(DISTINCT {_picked(v, c)})",
        "mean": lambda v, c: f"AVG({_picked(v, c)})",
        "median": lambda v, c: f"PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY {_picked(v, c)})",
        "min": lambda v, c: f"MIN({_picked(v, c)})",
        "max": lambda v, c: f"MAX({_picked(v, c)})",
    },
    UNSUPPORTED_FUNCTIONS,
)

#: The leaves of a period-level formula that are calls (see metricflow.PERIOD_LEAVES).
_LEAF_CALLS = function_table(
    {**dict.fromkeys(sorted(MEASURES), _SQL._aggregate), "previous": _SQL._previous},
    UNSUPPORTED_FUNCTIONS,
)


def _expression(sql: str) -> dict[str, Any]:
    return {"dialects": [{"dialect": "ANSI_SQL", "expression": sql}]}


def _extension(payload: dict[str, Any]) -> list[dict[str, str]]:
    data = json.dumps({EXTENSION_KEY: payload}, ensure_ascii=False, sort_keys=False)
    return [{"vendor_name": VENDOR, "data": data}]


def _text(value: Any) -> str:
    return " ".join(str(value or "").split())


def ossie_document(registry: Registry, *, grain: str = "month") -> dict[str, Any]:
    """The Ossie document for every KPI of ``registry``."""
    from ... import __version__

    mapped = metricflow(registry, grain=grain)
    sql = _SQL(registry)
    entity_of = sql.entity_of

    metrics = []
    for kpi in registry:
        why_not = mapped.skipped.get(kpi.id)
        expression = None
        if why_not is None:
            try:
                expression = sql.kpi(kpi.id)
            except _NotExact as e:
                why_not = str(e)
        instructions = _text(kpi.summary)
        stocks = sorted(dp.name for dp in registry.inputs(kpi.id) if dp.time == "stock")
        if expression is None:
            instructions += (
                f" No single SQL aggregate computes this KPI exactly ({why_not}), so the "
                f"expression is NULL: compute it with kpi-registry (kpi eval {kpi.id}, or "
                f"kpi sql {kpi.id} for a warehouse)."
            )
        elif stocks:
            instructions += (
                f" {', '.join(stocks)} {'is a stock' if len(stocks) == 1 else 'are stocks'} "
                f"(a level at the end of each {grain}): evaluate the expression over one {grain}'s "
                f"rows at a time; over a longer period take the last {grain}'s rows, not all."
            )
        payload = {
            "format": EXTENSION_FORMAT,
            "sql_exact": expression is not None,
            "why_not_exact": why_not,
            "grain": grain,
            "definition": to_plain(kpi.data),
            "function": registry.function_of(kpi.id).id,
            "dependencies": registry.dependencies(kpi.id),
            "used_in": registry.used_in(kpi.id),
            "relations": {
                "leading": registry.leading(kpi.id),
                "lagging": registry.lagging(kpi.id),
                "related": registry.related(kpi.id),
                "influences": registry.influences(kpi.id),
            },
            "inputs": [
                {**vars(dp), "dataset": table_of(entity_of.get(dp.name))}
                for dp in registry.inputs(kpi.id)
            ],
        }
        metric: dict[str, Any] = {
            "name": kpi.id,
            "expression": _expression(expression or "NULL"),
            "description": _text(kpi.data.get("definition")) or _text(kpi.summary),
            "ai_context": {
                "instructions": instructions,
                "synonyms": [kpi.name, *[a for a in kpi.aliases if a != kpi.name]],
            },
            "custom_extensions": _extension(payload),
        }
        metrics.append(metric)

    return {
        "version": OSSIE_VERSION,
        "semantic_model": [
            {
                "name": "kpi_registry",
                "description": (
                    f"{len(registry)} KPIs from kpi-registry {__version__}, each with its "
                    "definition, executable formula, datapoints, relations and worked examples."
                ),
                "ai_context": {
                    "instructions": (
                        "Each metric is one KPI. Its ANSI_SQL expression aggregates one "
                        f"{grain}'s rows of the datasets; where it is NULL no single aggregate "
                        "computes the KPI exactly and the metric's instructions say how to. "
                        f"The {VENDOR} extension '{EXTENSION_KEY}' holds the full definition."
                    )
                },
                "datasets": _datasets(registry, entity_of, grain),
                "metrics": metrics,
                "custom_extensions": _extension(
                    {
                        "format": EXTENSION_FORMAT,
                        "generator": {"name": "kpi-registry", "version": __version__},
                        "grain": grain,
                    }
                ),
            }
        ],
    }


def _datasets(registry: Registry, entity_of: dict[str, str], grain: str) -> list[dict[str, Any]]:
    """One assumed table per entity (and one without): its key columns and datapoints."""
    datapoints: dict[str, Any] = {}
    for kpi in registry:
        for name, dp in kpi.datapoints.items():
            if name not in registry:
                datapoints.setdefault(name, dp)
    tables: dict[str | None, list[Any]] = {}
    for name in sorted(datapoints):
        tables.setdefault(entity_of.get(name), []).append(datapoints[name])
    if not tables:
        tables[None] = []
    out = []
    for entity in sorted(tables, key=lambda e: (e is not None, e or "")):
        keys = [entity, PERIOD] if entity else [PERIOD]
        who = f"{entity} and {grain}" if entity else grain
        fields = []
        if entity:
            fields.append(
                {
                    "name": entity,
                    "expression": _expression(entity),
                    "dimension": {"is_time": False},
                    "description": f"The {entity} a row is about.",
                }
            )
        fields.append(
            {
                "name": PERIOD,
                "expression": _expression(PERIOD),
                "dimension": {"is_time": True},
                "description": f"The start date of the {grain} a row is about.",
            }
        )
        for dp in tables[entity]:
            fields.append(
                {
                    "name": dp.name,
                    "expression": _expression(dp.name),
                    "label": dp.unit,
                    "description": _text(dp.description),
                    "custom_extensions": _extension(
                        {"format": EXTENSION_FORMAT, "datapoint": vars(dp)}
                    ),
                }
            )
        out.append(
            {
                "name": table_of(entity),
                "source": table_of(entity),
                "primary_key": keys,
                "description": (
                    f"Assumed table: one row per {who}, one column per datapoint, rows of one "
                    "entity and period already combined as each datapoint's `rows` rule says. "
                    "Point `source` at your own table."
                ),
                "fields": fields,
            }
        )
    return out


def ossie_yaml(registry: Registry, *, grain: str = "month") -> str:
    import yaml

    header = (
        "# yaml-language-server: $schema=https://raw.githubusercontent.com/apache/ossie/"
        "osi-0.1.1-rc1/core-spec/osi-schema.json\n"
        "# Generated by `kpi export --format ossie` (Apache Ossie 0.1.1).\n"
    )
    body = yaml.safe_dump(
        ossie_document(registry, grain=grain), sort_keys=False, allow_unicode=True, width=100
    )
    return header + body
