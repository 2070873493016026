"""The whole catalog as one JSON document, for other tools and for the site's catalog.json.

Every KPI carries its definition file's fields as written (plain data), the parsed formula as
a JSON syntax tree next to its canonical text, the KPIs it uses and is used by, and its
relations with the reverse links already computed. The document's shape is fixed by
``schema/catalog.schema.json``; ``catalog_version`` changes when that shape does.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..formula import Binary, Call, Name, Node, Number, Unary, to_latex, to_text
from ..loading import to_plain
from ..model import KPI, OTHER_FUNCTION, RELATION_KINDS
from ..registry import Registry, bundled_dir
from ..schema import kpi_schema

CATALOG_VERSION = "1.1"


@cache
def catalog_schema() -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of the document ``catalog_json`` returns."""
    text = resources.files("kpi_registry").joinpath("schema/catalog.schema.json").read_text("utf-8")
    return json.loads(text)


def formula_ast(node: Node, is_kpi=lambda name: False) -> dict[str, Any]:
    """A formula's syntax tree as plain JSON; ``is_kpi`` tells KPI names from datapoints."""
    if isinstance(node, Number):
        return {"type": "number", "value": node.value}
    if isinstance(node, Name):
        return {
            "type": "name",
            "name": node.name,
            "kind": "kpi" if is_kpi(node.name) else "datapoint",
        }
    if isinstance(node, Unary):
        return {"type": "unary", "op": node.op, "operand": formula_ast(node.operand, is_kpi)}
    if isinstance(node, Binary):
        return {
            "type": "binary",
            "op": node.op,
            "left": formula_ast(node.left, is_kpi),
            "right": formula_ast(node.right, is_kpi),
        }
    if isinstance(node, Call):
        return {
            "type": "call",
            "function": node.func,
            "args": [formula_ast(a, is_kpi) for a in node.args],
        }
    raise TypeError(f"unknown formula node {type(node).__name__}")


def display_path(path: str | Path, folders: dict[Path, Path] | None = None) -> str:
    """A path people can read and that says nothing about this machine: bundled files as
    ``definitions/x.yaml``, others relative to the working folder when they are inside it.

    ``folders``, when given, keeps each folder's resolved path for the next call: a catalog
    names 20,000 files in a few folders, and resolving is a system call per part of a path.
    """
    path = Path(path)
    if folders is None:
        resolved, cwd = path.resolve(), Path.cwd().resolve()
    else:
        resolved, cwd = _resolve(path, folders), _resolve_folder(Path.cwd(), folders)
    for base, label in ((_bundled_definitions(), "definitions"), (cwd, "")):
        try:
            rel = resolved.relative_to(base)
        except ValueError:
            continue
        return "/".join(p for p in (label, rel.as_posix()) if p)
    return path.as_posix()


def _resolve(path: Path, folders: dict[Path, Path]) -> Path:
    """``path.resolve()``, with the folder's resolved path looked up in ``folders``."""
    if path.name in ("", ".", "..") or path.is_symlink():
        return path.resolve()
    return _resolve_folder(path.absolute().parent, folders) / path.name


def _resolve_folder(folder: Path, folders: dict[Path, Path]) -> Path:
    resolved = folders.get(folder)
    if resolved is None:
        resolved = folders[folder] = folder.resolve()
    return resolved


@cache
def _bundled_definitions() -> Path:
    return bundled_dir("definitions").resolve()  # resolving is a system call per part


def _formula(kpi: KPI, registry: Registry) -> dict[str, Any]:
    node = kpi.expression
    out: dict[str, Any] = {"expression": " ".join(kpi.formula_text.split())}
    if node is None:
        return {**out, "text": None, "latex": None, "ast": None, "kpis": [], "datapoints": []}
    names = {n.name for n in node.walk() if isinstance(n, Name)}
    return {
        **out,
        "text": to_text(node),
        "latex": to_latex(node),
        "ast": formula_ast(node, registry.__contains__),
        "kpis": sorted(n for n in names if n in registry),
        "datapoints": sorted(n for n in names if n not in registry),
    }


def _edges(kpi: KPI) -> list[dict[str, str]]:
    """Links this KPI's file declares (reverse links are derivable, so not repeated)."""
    edges = []
    for kind in RELATION_KINDS:
        for r in kpi.relations(kind):
            edges.append({"from": kpi.id, "to": r.kpi, "kind": kind, "why": r.why})
    for sign in ("positive", "negative"):
        for item in (kpi.data.get("influences") or {}).get(sign, []):
            if item.get("kpi"):
                edges.append(
                    {
                        "from": kpi.id,
                        "to": item["kpi"],
                        "kind": f"influence_{sign}",
                        "why": item["why"],
                    }
                )
    for effect in (kpi.data.get("change_impact") or {}).get("effects", []):
        edges.append(
            {"from": kpi.id, "to": effect["kpi"], "kind": "change_impact", "why": effect["effect"]}
        )
    return edges


def catalog_json(registry: Registry, *, copy_fields: bool = True) -> dict[str, Any]:
    """The catalog as one JSON-ready dict (see ``catalog_schema()`` for its shape).

    ``copy_fields=False`` gives each KPI's fields as the definition holds them (dicts and
    lists that also carry their YAML positions), not a plain copy: the same JSON text, for a
    caller that only serializes it (the site writes 20,000 KPIs' fields).
    """
    from .. import __version__

    folders: dict[Path, Path] = {}

    def shown(path: str | Path) -> str:
        return display_path(path, folders)

    deps = {k.id: registry.dependencies(k.id) for k in registry}
    used_in: dict[str, list[str]] = {k.id: [] for k in registry}
    for kpi_id, uses in deps.items():
        for dep in uses:
            used_in[dep].append(kpi_id)

    kpis = []
    edges: list[dict[str, str]] = []
    datapoints: dict[str, dict[str, Any]] = {}
    for kpi in registry:
        kpis.append(
            {
                "id": kpi.id,
                "name": kpi.name,
                "function": registry.function_of(kpi.id).id,
                "fields": to_plain(kpi.data) if copy_fields else kpi.data,
                "source": {
                    "file": shown(kpi.path),
                    "origin": kpi.origin if kpi.origin == "bundled" else shown(kpi.origin),
                    "overrides": [shown(p) for p in kpi.overridden],
                },
                "formula": _formula(kpi, registry),
                "dependencies": deps[kpi.id],
                "used_in": sorted(used_in[kpi.id]),
                "relations": {
                    "leading": registry.leading(kpi.id),
                    "lagging": registry.lagging(kpi.id),
                    "related": registry.related(kpi.id),
                    "influences": registry.influences(kpi.id),
                },
            }
        )
        edges.extend({"from": kpi.id, "to": d, "kind": "formula", "why": ""} for d in deps[kpi.id])
        edges.extend(_edges(kpi))
        for dp in kpi.datapoints.values():
            entry = datapoints.setdefault(
                dp.name,
                {
                    "name": dp.name,
                    "description": dp.description,
                    "unit": dp.unit,
                    "rows": dp.rows,
                    "time": dp.time,
                    "order_by": dp.order_by,
                    "missing": dp.missing,
                    "declared_in": [],
                },
            )
            if dp.minimum is not None or dp.maximum is not None:
                entry["valid"] = {"min": dp.minimum, "max": dp.maximum}
                if dp.valid_per != "row":
                    entry["valid"]["per"] = dp.valid_per
            if dp.excludes:
                entry["excludes"] = list(dp.excludes)
            entry["declared_in"].append(kpi.id)

    taxonomy = [
        {
            "id": cat.id,
            "function": cat.function or OTHER_FUNCTION.id,
            "name": cat.name,
            "description": " ".join(cat.description.split()),
            "source": shown(cat.path) if cat.path else "",
            "kpis": [k.id for k in registry if k.category == cat.id],
        }
        for cat in sorted(registry.taxonomy.values(), key=lambda c: c.id)
    ]
    functions = [
        {
            "id": fn.id,
            "name": fn.name,
            "description": " ".join(fn.description.split()),
            "source": shown(fn.path) if fn.path else "",
            "categories": [c["id"] for c in taxonomy if c["function"] == fn.id],
        }
        for fn in sorted(registry.functions.values(), key=lambda f: f.id)
    ]
    return {
        "catalog_version": CATALOG_VERSION,
        "generator": {"name": "kpi-registry", "version": __version__},
        "kpi_schema": kpi_schema().get("$id", ""),
        "count": len(kpis),
        "functions": functions,
        "taxonomy": taxonomy,
        "kpis": kpis,
        "datapoints": [datapoints[name] for name in sorted(datapoints)],
        "graph": {"nodes": [k["id"] for k in kpis], "edges": edges},
    }


def catalog_text(registry: Registry) -> str:
    """``catalog_json`` as strict JSON text (no NaN), UTF-8 friendly, stable for diffs."""
    return json.dumps(catalog_json(registry), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
