"""`kpi export`: the catalog for other tools.

* ``--format json``: every KPI with all its fields, parsed formula, dependencies and relations,
  as one JSON document (``catalog_json``; shape in ``schema/catalog.schema.json``). The site
  publishes the same document as catalog.json.
* ``--format metricflow``: dbt MetricFlow semantic models and metrics for the KPIs whose
  formula maps, with the others listed and why (``metricflow``), in dbt's latest YAML spec or,
  with ``--metricflow-spec legacy``, the one before.
* ``--format ossie``: an Apache Ossie 0.1.1 document (``export/ossie``); ``kpi import --format
  ossie`` reads one back as draft definitions (``ossie_import``).
"""

from __future__ import annotations

from .catalog import CATALOG_VERSION, catalog_json, catalog_schema, catalog_text, formula_ast
from .metricflow import MetricflowExport, metricflow

__all__ = [
    "CATALOG_VERSION",
    "MetricflowExport",
    "catalog_json",
    "catalog_schema",
    "catalog_text",
    "formula_ast",
    "metricflow",
]
