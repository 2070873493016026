"""`kpi export`: the catalog as JSON, dbt MetricFlow metrics or an Apache Ossie document."""

from __future__ import annotations

import argparse
import sys

from .args import EXIT_OK, GRAINS, add_path_argument, registry_from_args

#: dbt's YAML specs (``export.metricflow.SPECS``, spelt here so that registering the command
#: need not import the exporters).
METRICFLOW_SPECS = ("latest", "legacy")


def _write(text: str, out: str | None) -> None:
    from pathlib import Path

    from ..errors import KPIError
    from ..files import replace_text

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
    import json

    from ..errors import KPIError
    from ..export import catalog_schema, catalog_text, metricflow

    if args.schema:
        if args.format != "json":
            raise KPIError("--schema describes the json format; use it with --format json")
        _write(json.dumps(catalog_schema(), indent=2) + "\n", args.out)
        return EXIT_OK
    registry = registry_from_args(args)
    if args.metricflow_spec is not None and args.format != "metricflow":
        raise KPIError("--metricflow-spec chooses dbt's YAML spec; use it with --format metricflow")
    if args.format == "json":
        _write(catalog_text(registry), args.out)
        if args.out:
            print(f"wrote {args.out}: {len(registry)} KPIs", file=sys.stderr)
        return EXIT_OK
    if args.format == "ossie":
        from ..export.ossie import ossie_yaml

        _write(ossie_yaml(registry, grain=args.grain), args.out)
        if args.out:
            print(f"wrote {args.out}: {len(registry)} KPIs as Ossie metrics", file=sys.stderr)
        return EXIT_OK
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
    return EXIT_OK


def add_export(sub) -> None:
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
        choices=METRICFLOW_SPECS,
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
