"""`kpi export`: the catalog for other tools.

* ``--format json``: every KPI with all its fields, parsed formula, dependencies and relations,
  as one JSON document (``catalog_json``; shape in ``schema/catalog.schema.json``). The site
  publishes the same document as catalog.json.
* ``--format metricflow``: dbt MetricFlow semantic models and metrics for the KPIs whose
  formula maps, with the others listed and why (``metricflow``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import KPIError
from ..files import replace_text
from .catalog import CATALOG_VERSION, catalog_json, catalog_schema, catalog_text, formula_ast
from .metricflow import GRAINS, MetricflowExport, metricflow

__all__ = [
    "CATALOG_VERSION",
    "MetricflowExport",
    "catalog_json",
    "catalog_schema",
    "catalog_text",
    "formula_ast",
    "metricflow",
]


def _write(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    path = Path(out)
    if path.is_dir():
        raise KPIError(f"--out {out} is a folder; give a file name")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise KPIError(f"cannot write {out}: {blocking} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_text(path, text)  # an earlier export stays whole if this one is interrupted
    except OSError as e:
        raise KPIError(f"cannot write {out}: {e.strerror}") from None


def cmd_export(args: argparse.Namespace) -> int:
    from ..cli import registry_from_args

    if args.schema:
        if args.format != "json":
            raise KPIError("--schema describes the json format; use it with --format json")
        _write(json.dumps(catalog_schema(), indent=2) + "\n", args.out)
        return 0
    registry = registry_from_args(args)
    if args.format == "json":
        _write(catalog_text(registry), args.out)
        if args.out:
            print(f"wrote {args.out}: {len(registry)} KPIs", file=sys.stderr)
        return 0
    result = metricflow(registry, grain=args.grain)
    if not result.exported:
        raise KPIError("no KPI formula maps to MetricFlow:\n" + result.footer())
    _write(result.to_yaml(), args.out)
    where = args.out or "the output"
    print(
        f"{len(result.exported)} KPIs exported as MetricFlow metrics; "
        f"{len(result.skipped)} do not map (listed at the end of {where})",
        file=sys.stderr,
    )
    return 0


def add_commands(sub: Any) -> None:
    from ..cli import add_path_argument

    p = sub.add_parser(
        "export",
        help="write the catalog as JSON, or KPIs as dbt MetricFlow metrics",
        description="json: every KPI with all attributes, its parsed formula, dependencies and "
        "relations, as one JSON document (its JSON Schema: --schema). metricflow: dbt "
        "semantic models and metrics for KPIs whose formula maps; the others are listed "
        "with the reason.",
    )
    p.add_argument("--format", choices=["json", "metricflow"], default="json")
    p.add_argument("--out", metavar="FILE", help="write to this file (default: standard output)")
    p.add_argument(
        "--grain",
        choices=GRAINS,
        default="month",
        help="metricflow: the period of the input tables and of previous() (default month)",
    )
    p.add_argument(
        "--schema",
        action="store_true",
        help="json: print the JSON Schema of the catalog document instead",
    )
    add_path_argument(p)
    p.set_defaults(func=cmd_export)
