"""Synthetic KPI definitions for scale runs: valid, cross-referenced, with worked examples.

Each file looks like a real reviewed definition (all 12 attributes, relations, an example whose
expected values are computed here in plain Python), so the site build does the same work per
KPI as for the bundled library. Deterministic for a given ``n`` and ``seed``.
"""

from __future__ import annotations

import random
from pathlib import Path

import yaml

WORDS = (
    "account adoption advocacy annual average balance billing booking capacity channel churn "
    "cohort commit contract conversion cost coverage customer deal demand depth discount "
    "engagement expansion feature forecast funnel growth health inquiry lead license lifetime "
    "margin market monthly onboarding partner payback pipeline plan portfolio price product "
    "qualified quota ratio reactivation referral renewal retention revenue seat segment "
    "service signup spend subscription support tier trial upgrade usage velocity volume"
).split()
ADJECTIVES = "adjusted blended core effective gross net normalised qualified weighted".split()
SENTENCE = (
    "The {a} view of {b} shows how {c} moves when {d} changes across the {e} base, and teams "
    "compare it with {f} before they decide where to invest the next quarter's effort."
)
UNITS = ("currency", "percent", "ratio", "count", "score")
N_CATEGORIES = 40
N_INDUSTRIES = 25
N_TAGS = 300
N_DATAPOINTS = 200


def _sentences(rng: random.Random, n: int) -> str:
    return " ".join(SENTENCE.format(**{k: rng.choice(WORDS) for k in "abcdef"}) for _ in range(n))


def _datapoint(i: int) -> dict:
    """Datapoint i is declared identically in every file that uses it."""
    return {
        "name": f"dp_{WORDS[i % len(WORDS)]}_{i}",
        "description": f"Input number {i}: one value per team and month.",
        "unit": "count",
        "rows": "sum",
        "time": "flow",
        "missing": "null",
    }


def _row_example(rng: random.Random, kpi_id: str, a: dict, b: dict, template: int) -> dict:
    months = ["2024-01", "2024-02", "2024-03"]
    rows, expected = [], []
    for month in months:
        va = [rng.randint(10, 500) for _ in range(3)]
        vb = [rng.randint(1, 300) for _ in range(3)]
        for team, x, y in zip(("north", "south", "west"), va, vb):
            rows.append({"team": team, "month": month, a["name"]: x, b["name"]: y})
        if template == 0:
            value = sum(va) / sum(vb) * 100
        elif template == 1:
            value = sum(va) - sum(vb)
        else:
            value = sum(va) / len(vb)
        expected.append({"month": month, kpi_id: round(value, 4)})
    return {
        "title": "Three months for three teams",
        "description": _sentences(rng, 1),
        "data": rows,
        "parameters": {"period": "month"},
        "expected": expected,
    }


def definition(i: int, n: int, rng: random.Random) -> dict:
    kpi_id = f"syn_{i:05d}"
    name = " ".join([rng.choice(ADJECTIVES), rng.choice(WORDS), rng.choice(WORDS), f"{i}"]).title()
    category = f"cat_{i % N_CATEGORIES:02d}"
    others = [j for j in rng.sample(range(n), 6) if j != i][:5]
    doc: dict = {
        "id": kpi_id,
        "name": name,
        "aliases": ["".join(w[0] for w in name.split()[:-1]).upper() + str(i)],
        "summary": _sentences(rng, 1),
        "category": category,
        "categories": [f"cat_{(i + 7) % N_CATEGORIES:02d}"],
        "industries": sorted({f"industry_{rng.randrange(N_INDUSTRIES):02d}" for _ in range(2)}),
        "tags": sorted({f"tag_{rng.randrange(N_TAGS):03d}" for _ in range(3)}),
        "indicator_type": rng.choice(["leading", "lagging"]),
        "unit": rng.choice(UNITS),
        "direction": rng.choice(["higher_is_better", "lower_is_better"]),
        "status": "reviewed",
        "owner": "Synthetic Operations",
        "sources": [{"title": "Synthetic source", "url": f"https://example.org/kpi/{i}"}],
        "definition": _sentences(rng, 3),
        "business_insights": _sentences(rng, 3),
        "measurement_approach": _sentences(rng, 3),
        "trend_analysis": _sentences(rng, 2),
        "diagnostics": [_sentences(rng, 1) for _ in range(4)],
        "tips": [_sentences(rng, 1) for _ in range(4)],
        "visualization": [
            {"chart": "Monthly line", "description": _sentences(rng, 1)},
            {"chart": "Bar by team", "description": _sentences(rng, 1)},
        ],
        "risk_warnings": [_sentences(rng, 1) for _ in range(2)],
        "tools_and_technologies": [_sentences(rng, 1) for _ in range(3)],
        "integration_points": [_sentences(rng, 1) for _ in range(3)],
        "change_impact": {
            "summary": _sentences(rng, 1),
            "effects": [{"kpi": f"syn_{others[0]:05d}", "effect": _sentences(rng, 1)}],
        },
        "relations": {
            "leading": [{"kpi": f"syn_{j:05d}", "why": _sentences(rng, 1)} for j in others[1:3]],
            "lagging": [{"kpi": f"syn_{others[3]:05d}", "why": _sentences(rng, 1)}],
            "related": [{"kpi": f"syn_{others[4]:05d}", "why": _sentences(rng, 1)}],
        },
        "strategies": [
            {"name": "Strategy " + rng.choice(WORDS), "description": _sentences(rng, 1)}
        ],
        "faq": [{"q": f"How is {name} read?", "a": _sentences(rng, 2)}],
        "benchmarks": [
            {
                "segment": "Synthetic peers",
                "range": [10, 40],
                "source": {
                    "publisher": "Synthetic Research",
                    "title": "Synthetic survey",
                    "year": 2024,
                    "url": f"https://example.org/b/{i}",
                },
            }
        ],
    }
    if i >= 10 and i % 4 == 0:
        # A composite of two earlier KPIs (never a later one, so there are no cycles).
        x, y = rng.sample(range(i), 2)
        xi, yi = f"syn_{x:05d}", f"syn_{y:05d}"
        doc["formula"] = {"expression": f"{xi} / {yi} * 100"}
        vx, vy = rng.randint(50, 900), rng.randint(10, 400)
        doc["examples"] = [
            {
                "title": "From reported values",
                "data": {xi: vx, yi: vy},
                "expected": round(vx / vy * 100, 4),
            }
        ]
    else:
        a, b = _datapoint(rng.randrange(N_DATAPOINTS)), _datapoint(rng.randrange(N_DATAPOINTS))
        if a["name"] == b["name"]:
            b = _datapoint((int(a["name"].rsplit("_", 1)[1]) + 1) % N_DATAPOINTS)
        template = i % 3
        expression = [
            f"sum({a['name']}) / sum({b['name']}) * 100",
            f"sum({a['name']}) - sum({b['name']})",
            f"sum({a['name']}) / count({b['name']})",
        ][template]
        doc["formula"] = {"expression": expression, "display": "Synthetic formula"}
        doc["datapoints"] = [a, b]
        doc["examples"] = [_row_example(rng, kpi_id, a, b, template)]
    return doc


def taxonomy() -> dict:
    return {
        "categories": {
            f"cat_{c:02d}": {
                "name": f"Synthetic Category {c:02d}",
                "description": f"Synthetic KPIs of group {c}.",
            }
            for c in range(N_CATEGORIES)
        }
    }


def generate(folder: Path, n: int, seed: int = 7) -> Path:
    """Write n definitions plus a _taxonomy.yaml into folder (created if needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    (folder / "_taxonomy.yaml").write_text(yaml.dump(taxonomy(), Dumper=dumper), "utf-8")
    rng = random.Random(seed)
    for i in range(n):
        doc = definition(i, n, rng)
        text = yaml.dump(doc, Dumper=dumper, sort_keys=False, width=100, allow_unicode=True)
        (folder / f"{doc['id']}.yaml").write_text(text, "utf-8")
    return folder
