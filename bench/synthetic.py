"""Synthetic definitions for load benchmarks: N valid, cross-referenced KPI files.

NOTE (site engineer): the original of this file was overwritten by accident; this is a
reconstruction that writes files of the same shape as before (checked against a library the
original had produced): ``write_library(folder, n)``.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

CATEGORIES = (
    "revenue_retention",
    "recurring_revenue",
    "unit_economics",
    "customer_success",
    "product_adoption",
    "sales",
    "marketing",
    "forecasting",
)
WORDS = (
    "account activation adoption budget churn cohort contract cost deal discount expansion "
    "forecast health inquiry invoice lead lifetime loyalty margin payback pipeline plan quota "
    "region renewal seat segment spend trial upgrade usage value"
).split()
FORMULA = "sum(revenue - previous(revenue), previous(revenue) > 0 and revenue > previous(revenue))"


def _sentence(rng: random.Random) -> str:
    return " ".join(rng.sample(WORDS, 12)).capitalize() + "."


def _text(rng: random.Random, n: int) -> str:
    return " ".join(_sentence(rng) for _ in range(n))


def _expected(rows: list[dict], kpi_id: str) -> list[dict]:
    before = {r["customer"]: r["mrr"] for r in rows if r["month"] == "2024-01"}
    now = {r["customer"]: r["mrr"] for r in rows if r["month"] == "2024-02"}
    growth = sum(now[c] - before[c] for c in now if before.get(c, 0) > 0 and now[c] > before[c])
    return [{"month": "2024-01", kpi_id: None}, {"month": "2024-02", kpi_id: growth}]


def definition(i: int, n: int, rng: random.Random) -> dict:
    kpi_id = f"synthetic_kpi_{i:05d}"

    def other() -> str:
        j = rng.randrange(n - 1)
        return f"synthetic_kpi_{j + (j >= i):05d}"

    rows = [
        {"customer": c, "month": m, "mrr": rng.randrange(1, 20) * 10}
        for c in "abc"
        for m in ("2024-01", "2024-02")
    ]
    target = other()
    return {
        "id": kpi_id,
        "name": f"Synthetic KPI {i:05d}",
        "aliases": [f"SK{i}"],
        "summary": _sentence(rng),
        "category": CATEGORIES[i % len(CATEGORIES)],
        "industries": ["saas"],
        "tags": [f"tag_{i % 50}"],
        "indicator_type": "lagging",
        "unit": "currency",
        "direction": "higher_is_better",
        "status": "reviewed",
        "owner": "Bench",
        "definition": _text(rng, 3),
        "business_insights": _text(rng, 3),
        "measurement_approach": _text(rng, 3),
        "formula": {"expression": FORMULA, "display": "Expansion of existing customers"},
        "trend_analysis": _text(rng, 2),
        "diagnostics": [_sentence(rng) for _ in range(4)],
        "tips": [_sentence(rng) for _ in range(4)],
        "visualization": [{"chart": "Line", "description": _sentence(rng)}],
        "risk_warnings": [_sentence(rng) for _ in range(3)],
        "tools_and_technologies": [_sentence(rng) for _ in range(3)],
        "integration_points": [_sentence(rng) for _ in range(3)],
        "change_impact": {
            "summary": _sentence(rng),
            "effects": [{"kpi": target, "effect": _sentence(rng)}],
        },
        "datapoints": [
            {
                "name": "revenue",
                "description": "MRR of one customer.",
                "unit": "currency",
                "rows": "sum",
                "time": "stock",
                "missing": "zero",
            }
        ],
        "relations": {
            "leading": [
                {"kpi": target, "why": _sentence(rng)},
                {"kpi": other(), "why": _sentence(rng)},
            ],
            "related": [{"kpi": other(), "why": _sentence(rng)} for _ in range(2)],
        },
        "faq": [{"q": _sentence(rng), "a": _text(rng, 2)}],
        "examples": [
            {
                "title": "Two months",
                "data": rows,
                "parameters": {
                    "period": "month",
                    "entity": "customer",
                    "columns": {"revenue": "mrr"},
                },
                "expected": _expected(rows, kpi_id),
            }
        ],
    }


def write_library(folder: Path, n: int, seed: int = 0) -> Path:
    """Write n definitions plus a _taxonomy.yaml into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    taxonomy = {
        "categories": {
            c: {"description": f"Synthetic {c}.", "name": c.replace("_", " ").title()}
            for c in CATEGORIES
        }
    }
    (folder / "_taxonomy.yaml").write_text(yaml.dump(taxonomy, Dumper=dumper), "utf-8")
    rng = random.Random(seed)
    for i in range(n):
        doc = definition(i, n, rng)
        text = yaml.dump(doc, Dumper=dumper, sort_keys=False, width=100)
        (folder / f"{doc['id']}.yaml").write_text(text, "utf-8")
    return folder
