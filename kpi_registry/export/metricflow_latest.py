"""The MetricFlow export in dbt's latest YAML spec (dbt Core 1.12+, Fusion).

Same translation as the legacy spec (metricflow.py decides what maps and why), written the new
way: each assumed table is a dbt model under ``models:`` with its ``semantic_model`` enabled,
its entity and time dimension declared on ``columns``; each measure is folded into a simple
metric on that model (``agg``, ``expr``, ``non_additive_dimension`` as keys of the metric); ratio
and derived metrics take their parameters as top-level keys (``numerator``, ``input_metrics``),
on the model when every input lives there, else in the file's top-level ``metrics:``.
"""

from __future__ import annotations

from typing import Any, Protocol


class LegacyExport(Protocol):
    """What the latest spec reads of ``metricflow.MetricflowExport`` (declared here rather
    than imported, so that metricflow, which calls this module, is not imported back)."""

    tables: list[Any]  # metricflow.Table: its name and measures
    metrics: list[dict[str, Any]]
    grain: str

    def semantic_models(self) -> list[dict[str, Any]]: ...


def latest_document(export: LegacyExport) -> dict[str, Any]:
    measures = {}  # measure name -> (table, spec)
    for table in export.tables:
        for name, spec in table.measures.items():
            measures[name] = (table, spec)
    home: dict[str, str | None] = {}  # metric -> the model all its inputs live in (else None)
    by_name = {m["name"]: m for m in export.metrics}

    def model_of(name: str) -> str | None:
        if name not in home:
            metric = by_name[name]
            params = metric["type_params"]
            if metric["type"] == "simple":
                home[name] = measures[params["measure"]][0].name
            else:
                inputs = (
                    [params["numerator"]["name"], params["denominator"]["name"]]
                    if metric["type"] == "ratio"
                    else [m["name"] for m in params["metrics"]]
                )
                homes = {model_of(i) for i in inputs}
                home[name] = homes.pop() if len(homes) == 1 else None
        return home[name]

    per_model: dict[str, list[dict[str, Any]]] = {t.name: [] for t in export.tables}
    top: list[dict[str, Any]] = []
    for metric in export.metrics:
        latest = _metric(metric, measures)
        where = model_of(metric["name"])
        (per_model[where] if where is not None else top).append(latest)

    models = []
    for table, legacy in zip(
        [t for t in export.tables if t.measures], export.semantic_models(), strict=True
    ):
        columns: list[dict[str, Any]] = []
        if table.entity:
            columns.append(
                {
                    "name": table.entity,
                    "description": f"The {table.entity} a row is about.",
                    "entity": {"type": "foreign", "name": table.entity},
                }
            )
        columns.append(
            {
                "name": "period",
                "description": f"The start date of the {export.grain} a row is about.",
                "granularity": export.grain,
                "dimension": {"type": "time"},
            }
        )
        models.append(
            {
                "name": table.name,
                "description": legacy["description"],
                "semantic_model": {"enabled": True},
                "agg_time_dimension": "period",
                "primary_entity": legacy["primary_entity"],
                "columns": columns,
                "metrics": per_model[table.name],
            }
        )
    document: dict[str, Any] = {"version": 2, "models": models}
    if top:
        document["metrics"] = top
    return document


def _metric(metric: dict[str, Any], measures) -> dict[str, Any]:
    out = {k: v for k, v in metric.items() if k != "type_params"}
    params = metric["type_params"]
    if metric["type"] == "simple":
        _, spec = measures[params["measure"]]
        out["agg"] = spec["agg"]
        out["expr"] = spec["expr"]
        if "non_additive_dimension" in spec:
            out["non_additive_dimension"] = dict(spec["non_additive_dimension"])
    elif metric["type"] == "ratio":
        out["numerator"] = params["numerator"]["name"]
        out["denominator"] = params["denominator"]["name"]
    else:
        out["expr"] = params["expr"]
        out["input_metrics"] = [dict(m) for m in params["metrics"]]
    return out
