"""`kpi new`: write a complete draft definition that validates straight away.

The file comes from ``templates/new_kpi.yaml.j2``: every field of the schema is there, each
with a one-line comment taken from the schema's own descriptions (so help text cannot drift
from the contract). Optional fields a draft may leave empty are commented out; the formula is a
placeholder that really evaluates, over a placeholder datapoint, so ``kpi validate`` passes
until the author replaces both.

Editor support: the first line is a ``# yaml-language-server: $schema=...`` modeline. Inside
this repository it points at the bundled schema by relative path; anywhere else ``kpi new``
keeps a copy of the schema as ``<folder>/.kpi.schema.json`` (written once, refreshed when the
installed schema changes) and points at that. A copy works offline, survives moving or
cloning the folder, and is the exact contract ``kpi validate`` applies; an absolute path into
site-packages would break on every other machine, and a web URL would need a network.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import unicodedata
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import KPIError
from .loading import parse_text
from .registry import ENV_PATH, TAXONOMY_FILE, bundled_dir, collect
from .schema import check, kpi_schema

TEMPLATE = "new_kpi.yaml.j2"
SCHEMA_COPY = ".kpi.schema.json"
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
# Plain YAML scalars that read as something other than text (YAML 1.1 and 1.2).
_YAML_WORDS = {"yes", "no", "true", "false", "on", "off", "null", "y", "n", "~"}
# Letters that Unicode does not decompose into a base letter and an accent.
_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "þ": "th"})


@dataclass
class NewKPI:
    """What ``new_kpi`` wrote."""

    path: Path
    text: str
    schema_copy: Path | None  # the schema copy written (or refreshed) next to it, if any


def snake_case(name: str) -> str:
    """An id from a display name: 'Gross Margin %' -> 'gross_margin_percent'."""
    text = name.replace("&", " and ").replace("%", " percent ").lower().translate(_LETTERS)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if text and text[0].isdigit():
        text = "kpi_" + text
    return text


def default_folder() -> Path:
    """Where new files go: the first KPI_REGISTRY_PATH folder if set, else the current one."""
    for entry in os.environ.get(ENV_PATH, "").split(os.pathsep):
        if entry.strip():
            return Path(entry.strip())
    return Path(".")


def _schema_file() -> Path:
    return Path(str(resources.files("kpi_registry").joinpath("schema/kpi.schema.json")))


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def schema_reference(folder: Path) -> tuple[str, Path | None]:
    """The $schema value for a file in ``folder``, and the schema copy written, if any."""
    source = _schema_file()
    repo = source.resolve().parents[2]  # <repo>/kpi_registry/schema/kpi.schema.json
    target = folder.resolve()
    if (repo / "pyproject.toml").is_file() and (repo / "definitions").is_dir():
        if _inside(target, repo) and not _inside(target, repo / ".venv"):
            return os.path.relpath(source.resolve(), target).replace(os.sep, "/"), None
    copy = folder / SCHEMA_COPY
    text = source.read_text("utf-8")
    if copy.is_file() and copy.read_text("utf-8") == text:
        return f"./{SCHEMA_COPY}", None
    copy.write_text(text, "utf-8")
    return f"./{SCHEMA_COPY}", copy


def _yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain when that reads back as the same text, else quoted."""
    plain = re.fullmatch(r"[A-Za-z][A-Za-z0-9 _()/,.'+-]*[A-Za-z0-9).]|[A-Za-z]", value)
    if plain and value.lower() not in _YAML_WORDS and "  " not in value:
        return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid YAML scalar


def _about(path: str) -> str:
    """The schema's description of a field; ``formula.expression`` walks into objects/lists."""
    node: dict[str, Any] = kpi_schema()
    for part in path.split("."):
        if "items" in node and "properties" not in node:
            node = node["items"]
        node = node["properties"][part]
    return node.get("description", "")


def _choices(field: str) -> str:
    return ", ".join(str(v) for v in kpi_schema()["properties"][field]["enum"])


def render(
    *,
    name: str,
    kpi_id: str,
    category: str,
    unit: str = "count",
    direction: str = "higher_is_better",
    overrides: bool = False,
    schema_ref: str,
    folder: str = ".",
) -> str:
    """The text of a new definition (nothing is written)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(bundled_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # YAML, not HTML; every user value passes through the yaml filter
    )
    env.filters["yaml"] = _yaml_scalar
    env.globals.update(about=_about, choices=_choices)
    return env.get_template(TEMPLATE).render(
        name=name,
        id=kpi_id,
        category=category,
        unit=unit,
        direction=direction,
        overrides=overrides,
        schema_ref=schema_ref,
        folder=folder,
        placeholder=f"placeholder_{kpi_id}",
    )


# -- guessing unit and direction from the name ---------------------------------------------
#: (unit, words): the first group with a word in the name wins, so "Support Cost per Ticket" is
#: currency and "Revenue Churn Rate" a percent. Only obvious cases; otherwise nothing is guessed.
_UNIT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("score", ("score", "nps", "enps", "csat", "ces", "index")),
    ("currency", ("burn rate", "run rate")),
    (
        "percent",
        (
            "rate",
            "percentage",
            "percent",
            "share",
            "margin",
            "retention",
            "churn",
            "conversion",
            "utilization",
            "utilisation",
            "attainment",
            "yield",
            "accuracy",
            "availability",
            "ctr",
            "roi",
        ),
    ),  # fmt: skip
    ("ratio", ("ratio", "multiple", "coverage", "turnover", "turns", "roas")),
    (
        "duration",
        (
            "time",
            "days",
            "duration",
            "cycle",
            "lead time",
            "hours",
            "age",
            "latency",
            "tenure",
            "payback",
            "mttr",
            "mtbf",
            "runway",
        ),
    ),  # fmt: skip
    (
        "currency",
        (
            "cost",
            "revenue",
            "price",
            "value",
            "spend",
            "cac",
            "ltv",
            "arpa",
            "aov",
            "income",
            "profit",
            "cash",
            "budget",
            "salary",
            "pay",
            "gmv",
            "bookings",
            "ebitda",
            "capital",
            "sales",
            "arr",
            "mrr",
        ),
    ),  # fmt: skip
    (
        "count",
        (
            "count",
            "number",
            "headcount",
            "tickets",
            "backlog",
            "volume",
            "users",
            "customers",
            "leads",
            "deployments",
            "incidents",
            "defects",
        ),
    ),  # fmt: skip
)

#: Words that make a KPI better when it falls. Anything else keeps "higher is better", which
#: `kpi new` then says it did not guess.
_LOWER_WORDS = (
    "cost", "churn", "attrition", "turnover rate", "time", "days", "cycle", "lead time",
    "defect", "error", "bounce", "abandonment", "backlog", "downtime", "scrap", "rework",
    "escalation", "reopen", "absenteeism", "burn", "cac", "payback", "shrinkage", "stockout",
    "stock-out", "backorder", "failure", "incident", "complaint", "latency", "mttr", "mttd",
    "contraction", "debt", "spend", "variance", "bias", "waste", "overtime", "returns",
    "return rate", "unsubscribe", "cpc", "cpm", "cpa",
)  # fmt: skip


def _has(text: str, word: str) -> bool:
    return re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", text) is not None


def guess_unit(name: str) -> tuple[str, str] | None:
    """(unit, the word it was read from), or None when the name does not make it obvious."""
    text = name.lower()
    for unit, words in _UNIT_WORDS:
        for word in words:
            if _has(text, word):
                return unit, word
    return None


def guess_direction(name: str) -> tuple[str, str] | None:
    """("lower_is_better", the word), or None: then higher is better is only the default."""
    text = name.lower()
    for word in _LOWER_WORDS:
        if _has(text, word):
            return "lower_is_better", word
    return None


def _category_help(category: str, taxonomy: dict, folder: Path) -> str:
    known = "\n".join(f"  {cid:<20} {cat.name}" for cid, cat in sorted(taxonomy.items()))
    taxonomy_file = folder / TAXONOMY_FILE
    return (
        f"unknown category {category!r}. Categories are:\n{known}\n"
        f"To add one, create {taxonomy_file} (or add to it) with:\n"
        f"categories:\n"
        f"  {category}:\n"
        f"    name: {category.replace('_', ' ').title()}\n"
        f"    description: What KPIs in this category have in common."
    )


def new_kpi(
    name: str,
    category: str,
    *,
    folder: str | Path | None = None,
    kpi_id: str | None = None,
    unit: str = "count",
    direction: str = "higher_is_better",
    overrides: bool = False,
) -> NewKPI:
    """Write ``<folder>/<id>.yaml``; refuse to overwrite, to duplicate an id by accident, or to
    use a category the taxonomy does not have."""
    try:
        return _new_kpi(name, category, folder, kpi_id, unit, direction, overrides)
    except FileExistsError as e:  # written by someone else since we looked
        raise KPIError(
            f"{e.filename} already exists; kpi new never overwrites a file. Edit it, or "
            "choose another id with --id"
        ) from None
    except OSError as e:  # a folder that cannot be made or written, a name too long
        if e.errno == errno.ENAMETOOLONG:
            long_id = kpi_id or snake_case(name)
            raise KPIError(
                f"the id {long_id[:40] + '...'!r} is too long for a file name "
                f"({len(long_id)} characters); give a shorter one with --id"
            ) from None
        raise KPIError(f"cannot write to {e.filename or folder}: {e.strerror}") from None


def _new_kpi(name, category, folder, kpi_id, unit, direction, overrides) -> NewKPI:
    name = " ".join(name.split())
    if not name:
        raise KPIError('the KPI needs a name, e.g. kpi new "Gross Margin" --category finance')
    kpi_id = kpi_id or snake_case(name)
    if not kpi_id:
        raise KPIError(f"cannot make an id from the name {name!r}; give one with --id")
    if not _ID.match(kpi_id):
        raise KPIError(
            f"{kpi_id!r} is not a valid id: use snake_case (lower-case letters, digits and _, "
            "starting with a letter)"
        )
    schema_props = kpi_schema()["properties"]
    for label, value in (("unit", unit), ("direction", direction)):
        if value not in schema_props[label]["enum"]:
            raise KPIError(f"--{label} {value!r}: choose one of {_choices(label)}")
    folder = Path(folder) if folder is not None else default_folder()
    if folder.exists() and not folder.is_dir():
        raise KPIError(f"{folder} is a file; --dir takes a folder")
    for suffix in (".yaml", ".yml"):
        existing = folder / f"{kpi_id}{suffix}"
        if existing.exists():
            raise KPIError(
                f"{existing} already exists; kpi new never overwrites a file. Edit it, or "
                "choose another id with --id"
            )

    # What the registry will see once the file exists: bundled + KPI_REGISTRY_PATH + folder.
    known = collect([folder] if folder.is_dir() else [], examples=False)
    if category not in known.taxonomy:
        raise KPIError(_category_help(category, known.taxonomy, folder))
    if kpi_id in known.kpis and not overrides:
        raise KPIError(
            f"a KPI with id {kpi_id!r} already exists in {known.kpis[kpi_id].path}. Choose "
            "another id with --id, or pass --overrides to write a definition that replaces it"
        )
    if overrides and kpi_id not in known.kpis:
        raise KPIError(f"--overrides: there is no KPI {kpi_id!r} to override")
    if f"placeholder_{kpi_id}" in known.kpis:
        raise KPIError(f"choose another id: placeholder_{kpi_id} is already a KPI id")

    folder.mkdir(parents=True, exist_ok=True)
    schema_ref, copy = schema_reference(folder)
    text = render(
        name=name,
        kpi_id=kpi_id,
        category=category,
        unit=unit,
        direction=direction,
        overrides=overrides,
        schema_ref=schema_ref,
        folder=shlex.quote(str(folder)),
    )
    path = folder / f"{kpi_id}.yaml"
    problems = check(parse_text(text, path), str(path))
    if problems:  # the template and the schema disagree: a bug here, not the user's
        raise KPIError("kpi new produced an invalid file:\n" + "\n".join(map(str, problems)))
    with path.open("x", encoding="utf-8") as f:  # "x": never overwrite, even in a race
        f.write(text)
    return NewKPI(path, text, copy)
