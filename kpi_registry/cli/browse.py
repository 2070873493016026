"""Browsing the library: `kpi list`, `kpi search`, `kpi show`."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .args import EXIT_OK, add_filters, add_path_argument, positive, registry_from_args
from .text import bullets, wrap

if TYPE_CHECKING:
    from ..model import KPI
    from ..registry import Registry


def near_kpis(reg: Registry, word: str, similar: Sequence[str] = ()) -> list[str]:
    """KPIs a person probably meant by an id that does not exist: the KPI whose name or alias
    it is ('NRR', 'Net Revenue Retention'), else ids spelt ``similar``ly, else search hits."""

    def norm(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "", text.lower())

    key = norm(word)
    named = [k.id for k in reg if key and key in {norm(k.name), *map(norm, k.aliases)}]
    if named or similar:
        return (named or list(similar))[:3]
    return [k.id for k in reg.search(word.replace("_", " "), limit=3)]


# -- list / search ----------------------------------------------------------------------------
def _table(reg: Registry, kpis: Sequence[KPI], category: str | None = None) -> None:
    """One line per KPI: id, name, [function / categories]. With a category filter the matched
    category is shown even where it is not the KPI's main one (marked 'also')."""
    if not kpis:
        print("no KPIs match")
        return
    width = max(len(k.id) for k in kpis)
    for k in kpis:
        where = k.category
        if category is not None and category != k.category:
            where = f"{k.category}, also {category}"
        print(f"{k.id:<{width}}  {k.name}  [{reg.function_of(k.id).id} / {where}]")


#: The columns of `kpi list --format csv|json`: the catalog a spreadsheet or a script wants.
LIST_COLUMNS = (
    "id",
    "name",
    "abbreviations",
    "function",
    "category",
    "categories",
    "unit",
    "direction",
    "indicator_type",
    "status",
    "owner",
    "version",
)


def _catalog_rows(reg: Registry, kpis: Sequence[KPI]) -> list[dict[str, str]]:
    return [
        {
            "id": k.id,
            "name": k.name,
            "abbreviations": " ".join(a for a in k.aliases if a.isupper() and " " not in a),
            "function": reg.function_of(k.id).id,
            "category": k.category,
            "categories": " ".join(k.categories),
            "unit": k.unit,
            "direction": k.direction,
            "indicator_type": k.indicator_type,
            "status": k.status,
            "owner": str(k.data.get("owner") or ""),
            "version": str(k.data.get("version") or ""),
        }
        for k in kpis
    ]


def cmd_list(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    _check_filter(reg, args)
    kpis = reg.filter(
        category=args.category, industry=args.industry, tag=args.tag, function=args.function
    )
    if args.format == "json":
        import json

        print(json.dumps(_catalog_rows(reg, kpis), indent=2, ensure_ascii=False))
    elif args.format == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=LIST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(_catalog_rows(reg, kpis))
    else:
        _table(reg, kpis, args.category)
    return EXIT_OK


def _check_filter(reg: Registry, args: argparse.Namespace) -> None:
    from ..errors import KPIError, did_you_mean

    if args.category is not None and args.category not in reg.taxonomy:
        raise KPIError(
            f"unknown category {args.category!r}{did_you_mean(args.category, reg.taxonomy)}"
        )
    if args.function is not None and args.function not in reg.functions:
        raise KPIError(
            f"unknown function {args.function!r}{did_you_mean(args.function, reg.functions)}; "
            f"functions: {', '.join(sorted(reg.functions))}"
        )
    for label, value, known in (
        ("industry", args.industry, {i for k in reg for i in k.industries}),
        ("tag", args.tag, {t for k in reg for t in k.tags}),
    ):
        if value is not None and value not in known:
            raise KPIError(
                f"no KPI has the {label} {value!r}{did_you_mean(value, known)}; "
                f"'kpi list' shows every KPI"
            )


def cmd_search(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    _check_filter(reg, args)
    hits = reg.search(
        " ".join(args.text),
        category=args.category,
        industry=args.industry,
        tag=args.tag,
        function=args.function,
        limit=args.limit,
    )
    _table(reg, hits, args.category)
    return EXIT_OK


# -- show -------------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    reg = registry_from_args(args)
    kpi = reg[args.id]
    d = kpi.data
    title = f"{kpi.name} ({kpi.id})"
    print(title)
    print("=" * len(title))
    print(wrap(kpi.summary, ""))
    print()
    function = reg.function_of(kpi.id)
    facts = [
        ("Function", f"{function.name} ({function.id})"),
        ("Category", ", ".join(kpi.categories)),
        ("Unit", kpi.unit),
        ("Direction", kpi.direction.replace("_", " ")),
        ("Indicator", kpi.indicator_type),
        ("Status", kpi.status),
        ("Aliases", ", ".join(kpi.aliases)),
        ("Industries", ", ".join(kpi.industries)),
        ("Owner", d.get("owner", "")),
        ("Source file", str(kpi.path)),
        (
            "Origin",
            kpi.origin
            + (f" (overrides {', '.join(map(str, kpi.overridden))})" if kpi.overridden else ""),
        ),
    ]
    for label, value in facts:
        if value:
            print(f"{label + ':':<13}{value}")
    from ..model import ATTRIBUTE_TITLES, ATTRIBUTES

    for attr in ATTRIBUTES:
        if attr not in d:
            continue
        print(f"\n{ATTRIBUTE_TITLES[attr]}\n{'-' * len(ATTRIBUTE_TITLES[attr])}")
        value = d[attr]
        if attr == "formula":
            print(f"  {kpi.id} = {' '.join(value['expression'].split())}")
            if value.get("display"):
                print(wrap(value["display"]))
            if value.get("notes"):
                print(wrap(value["notes"]))
        elif attr == "change_impact":
            print(wrap(value.get("summary", "")))
            for effect in value.get("effects", []):
                print(bullets([f"{effect['kpi']}: {effect['effect']}"]))
        elif attr == "visualization":
            print(bullets([f"{v['chart']}: {v['description']}" for v in value]))
        elif isinstance(value, list):
            print(bullets(value))
        else:
            print(wrap(value))
    if kpi.datapoints:
        print("\nDatapoints\n----------")
        for dp in kpi.datapoints.values():
            print(
                bullets(
                    [f"{dp.name} ({dp.unit}, {dp.time}, missing={dp.missing}): {dp.description}"]
                )
            )
    needed = reg.inputs(kpi.id)
    if needed and [dp.name for dp in needed] != list(kpi.datapoints):
        print("\nData columns it needs (with the KPIs it is built from)")
        print("-" * 54)
        print(bullets([f"{dp.name} ({dp.unit}): {dp.description}" for dp in needed]))
    sections = [
        ("Leading indicators", reg.leading(kpi.id)),
        ("Lagging indicators", reg.lagging(kpi.id)),
        ("Influences", reg.influences(kpi.id)),
        ("Related", reg.related(kpi.id)),
    ]
    for label, items in sections:
        if items:
            print(f"\n{label}\n{'-' * len(label)}")
            print(bullets([f"{r['kpi']}: {r['why']}" for r in items]))
    if kpi.expression is not None and (tree := reg.drivers(kpi.id)).children:
        print("\nDriver tree\n-----------")
        from ..drivertree import tree_text

        print(tree_text(tree))
    for label, ids in (
        ("Uses in its formula", reg.dependencies(kpi.id)),
        ("Used in the formula of", reg.used_in(kpi.id)),
    ):
        if ids:
            print(f"\n{label}: {', '.join(ids)}")
    for key, label in (("strategies", "Strategies"), ("faq", "FAQ")):
        items = d.get(key) or []
        if items:
            print(f"\n{label}\n{'-' * len(label)}")
            if key == "faq":
                for qa in items:
                    print(wrap("Q: " + qa["q"]))
                    print(wrap("A: " + qa["a"], "     "))
            else:
                print(bullets([f"{s['name']}: {s['description']}" for s in items]))
    return EXIT_OK


# -- registration -----------------------------------------------------------------------------
def add_list(sub) -> None:
    p = sub.add_parser("list", help="list KPIs", description="List KPIs, optionally filtered.")
    add_filters(p)
    p.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table (default), or the catalog as CSV or JSON: id, name, abbreviations, "
        "function, categories, unit, direction, indicator type, status, owner, version",
    )
    add_path_argument(p)
    p.set_defaults(func=cmd_list)


def add_search(sub) -> None:
    p = sub.add_parser(
        "search",
        help="find KPIs by name, alias or text",
        description="Search KPIs; best match first.",
    )
    p.add_argument("text", nargs="+", help="words to look for, e.g. NRR or 'net dollar retention'")
    p.add_argument("--limit", type=positive, default=20, help="at most this many results")
    add_filters(p)
    add_path_argument(p)
    p.set_defaults(func=cmd_search)


def add_show(sub) -> None:
    p = sub.add_parser(
        "show",
        help="show every attribute of one KPI",
        description="Show one KPI, readable in a terminal.",
    )
    p.add_argument("id", help="KPI id, e.g. expansion_revenue")
    add_path_argument(p)
    p.set_defaults(func=cmd_show)
