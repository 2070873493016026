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

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import KPIError
from ..files import replace_text
from .catalog import CATALOG_VERSION, catalog_json, catalog_schema, catalog_text, formula_ast
from .metricflow import GRAINS, SPECS, MetricflowExport, metricflow

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
    if args.metricflow_spec is not None and args.format != "metricflow":
        raise KPIError("--metricflow-spec chooses dbt's YAML spec; use it with --format metricflow")
    if args.format == "json":
        _write(catalog_text(registry), args.out)
        if args.out:
            print(f"wrote {args.out}: {len(registry)} KPIs", file=sys.stderr)
        return 0
    if args.format == "ossie":
        from .ossie import ossie_yaml

        _write(ossie_yaml(registry, grain=args.grain), args.out)
        if args.out:
            print(f"wrote {args.out}: {len(registry)} KPIs as Ossie metrics", file=sys.stderr)
        return 0
    result = metricflow(registry, grain=args.grain)
    if not result.exported:
        raise KPIError("no KPI formula maps to MetricFlow:\n" + result.footer())
    _write(result.to_yaml(args.metricflow_spec or "latest"), args.out)
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
        help="write the catalog as JSON, dbt MetricFlow metrics or an Apache Ossie document",
        description="json: every KPI with all attributes, its parsed formula, dependencies and "
        "relations, as one JSON document (its JSON Schema: --schema). metricflow: dbt "
        "semantic models and metrics for KPIs whose formula maps; the others are listed "
        "with the reason. ossie: every KPI as an Apache Ossie 0.1.1 metric, with an exact SQL "
        "expression where one exists and the whole definition in its extension block.",
    )
    p.add_argument("--format", choices=["json", "metricflow", "ossie"], default="json")
    p.add_argument(
        "--metricflow-spec",
        choices=SPECS,
        help="metricflow: dbt's latest YAML spec (default; dbt Core 1.12+, Fusion) or the "
        "legacy one (dbt Core 1.6-1.11)",
    )
    p.add_argument("--out", metavar="FILE", help="write to this file (default: standard output)")
    p.add_argument(
        "--grain",
        choices=GRAINS,
        default="month",
        help="metricflow, ossie: the period of the input tables (and of previous()); default month",
    )
    p.add_argument(
        "--schema",
        action="store_true",
        help="json: print the JSON Schema of the catalog document instead",
    )
    add_path_argument(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import",
        help="write draft definitions from an Apache Ossie document",
        description="Read an Apache Ossie 0.1.1 document (YAML or JSON) and write one draft "
        "definition per metric into --dir. Metrics exported by kpi-registry come back whole; "
        "others are translated from their ANSI SQL where it maps. Everything that could not "
        "be mapped is listed.",
    )
    p.add_argument("file", metavar="FILE", help="the Ossie document")
    p.add_argument("--format", choices=["ossie"], default="ossie")
    p.add_argument("--dir", required=True, metavar="DIR", help="folder to write the drafts to")
    p.add_argument(
        "--category",
        help="category for metrics from other tools (ours carry their own)",
    )
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from .ossie_import import import_ossie

    result = import_ossie(args.file, args.dir, category=args.category)
    for line in result.unmapped:
        print(f"not mapped: {line}", file=sys.stderr)
    n = len(result.written)
    print(
        f"wrote {n} draft definition{'s' * (n != 1)} to {args.dir}; "
        f"{len(result.unmapped)} thing{'s' * (len(result.unmapped) != 1)} not mapped "
        f"(listed above); check them with: kpi validate {args.dir}",
        file=sys.stderr,
    )
    return 0
