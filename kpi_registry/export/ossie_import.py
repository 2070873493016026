"""``kpi import --format ossie FILE --dir DIR``: draft definitions from an Apache Ossie document.

A metric we exported carries its whole definition in our extension block; it comes back as it
was, with the Ossie fields a tool may have edited taking precedence (``name`` -> id,
``description`` -> definition, ``ai_context.synonyms`` -> name and aliases) and the status set
to draft, since someone should look at it again. Any other metric is translated: its ANSI SQL
aggregate (SUM, COUNT, COUNT DISTINCT, AVG, MIN, MAX, arithmetic, NULLIF, CASE WHEN filters)
becomes a formula over datapoints named after the columns. Everything the import cannot map is
listed, never dropped: an expression it cannot translate (kept in the formula's notes, with a
placeholder formula), guessed units and directions, dataset fields no metric reads,
relationships, other vendors' extensions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KPIError
from .ossie import EXTENSION_KEY, ossie_schema

_ID = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class ImportResult:
    written: list[Path] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # "where: what was not mapped, and why"


class _Untranslatable(Exception):
    pass


def read_document(path: Path) -> dict[str, Any]:
    """The Ossie document in ``path`` (YAML or JSON), checked against the Ossie schema; every
    schema error names its place in the document."""
    import jsonschema

    from ..loading import parse_text, to_plain

    try:
        text = path.read_text("utf-8")
    except OSError as e:
        raise KPIError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise KPIError(f"{path}: not UTF-8 text") from None
    try:
        document = to_plain(parse_text(text, str(path)))
    except KPIError:
        raise
    if not isinstance(document, dict):
        raise KPIError(f"{path}: not an Ossie document (a mapping with version and semantic_model)")
    validator = jsonschema.Draft202012Validator(ossie_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"{path}: {'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in errors[:20]
        ]
        raise KPIError("not a valid Ossie 0.1.1 document:\n" + "\n".join(lines))
    return document


def _ours(extensions: list[dict[str, Any]] | None) -> tuple[dict[str, Any] | None, list[str]]:
    """Our extension's payload, and the vendors of the others (not imported)."""
    ours, others = None, []
    for ext in extensions or []:
        try:
            data = json.loads(ext["data"])
        except (ValueError, TypeError):
            data = None
        if isinstance(data, dict) and isinstance(data.get(EXTENSION_KEY), dict):
            ours = data[EXTENSION_KEY]
        else:
            others.append(str(ext.get("vendor_name")))
    return ours, others


def import_ossie(
    path: str | Path, folder: str | Path, *, category: str | None = None
) -> ImportResult:
    """Write one draft YAML per metric into ``folder``; nothing is written if any file
    exists already or a metric cannot be written."""
    import yaml

    from ..formatting import format_text

    source, out = Path(path), Path(folder)
    document = read_document(source)
    result = ImportResult()
    drafts: dict[str, dict[str, Any]] = {}
    for model in document["semantic_model"]:
        where = f"semantic_model {model['name']}"
        ours_model, vendors = _ours(model.get("custom_extensions"))
        for vendor in vendors:
            result.unmapped.append(f"{where}: the {vendor} extension is not imported")
        if ours_model is None:  # another tool's model: its tables do not come along
            for dataset in model["datasets"]:
                result.unmapped.append(
                    f"{where}: dataset {dataset['name']} (source {dataset['source']}) is not "
                    "imported as a table; the columns metrics read become their datapoints"
                )
        for rel in model.get("relationships") or []:
            result.unmapped.append(
                f"{where}: relationship {rel['name']} ({rel['from']} -> {rel['to']}) is not "
                "imported: definitions have no joins"
            )
        columns = _columns(model)
        used: set[tuple[str, str]] = set()
        metric_names = {m["name"] for m in model.get("metrics") or []}
        for metric in model.get("metrics") or []:
            label = f"{where}: metric {metric['name']}"
            ours, vendors = _ours(metric.get("custom_extensions"))
            for vendor in vendors:
                result.unmapped.append(f"{label}: the {vendor} extension is not imported")
            if ours is not None and isinstance(ours.get("definition"), dict):
                data = _from_ours(metric, ours, label, result)
                for dp in data.get("datapoints") or []:
                    if isinstance(dp, dict):
                        used.update((ds, dp.get("name")) for ds, _ in columns)
            else:
                data = _from_metric(metric, columns, metric_names, used, category, label, result)
            if data["id"] in drafts:
                raise KPIError(f"{source}: two metrics give the KPI id {data['id']!r}")
            drafts[data["id"]] = data
        for (dataset, column), description in columns.items():
            if (dataset, column) not in used and description is not None:
                result.unmapped.append(
                    f"{where}: field {dataset}.{column} is read by no translated metric; "
                    "not imported"
                )
    targets = {kpi_id: out / f"{kpi_id}.yaml" for kpi_id in drafts}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing:
        raise KPIError(
            f"{', '.join(existing[:5])}{' ...' if len(existing) > 5 else ''} already "
            f"exist{'s' * (len(existing) == 1)}; import into an empty folder or move them"
        )
    texts = {}
    for kpi_id, data in drafts.items():
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
        texts[kpi_id] = format_text(f"# Imported from {source.name} (Apache Ossie).\n" + text)
    out.mkdir(parents=True, exist_ok=True)
    from ..files import replace_text

    for kpi_id, text in texts.items():
        replace_text(targets[kpi_id], text)
        result.written.append(targets[kpi_id])
    return result


def _from_ours(metric, ours, label, result: ImportResult) -> dict[str, Any]:
    """A metric we exported: the definition as it was, with the Ossie fields on top."""
    data = dict(ours["definition"])
    old_id = data.get("id")
    data["id"] = metric["name"]
    if old_id != metric["name"]:
        result.unmapped.append(f"{label}: renamed from {old_id!r} in the document; id follows it")
    if metric.get("description"):
        if " ".join(str(data.get("definition", "")).split()) != metric["description"]:
            data["definition"] = metric["description"]
    context = metric.get("ai_context")
    if isinstance(context, dict) and context.get("synonyms"):
        name, *aliases = context["synonyms"]
        data["name"] = name
        if [a for a in data.get("aliases", []) if a != name] != aliases:
            data["aliases"] = aliases
    data["status"] = "draft"
    return data


def _columns(model) -> dict[tuple[str, str], str | None]:
    """(dataset, field) -> description of every plain-column field (None for keys and time)."""
    out: dict[tuple[str, str], str | None] = {}
    for dataset in model.get("datasets") or []:
        keys = set(dataset.get("primary_key") or [])
        for f in dataset.get("fields") or []:
            is_time = bool((f.get("dimension") or {}).get("is_time"))
            out[(dataset["name"], f["name"])] = (
                None if f["name"] in keys or is_time else f.get("description", "")
            )
    return out


def _from_metric(metric, columns, metric_names, used, category, label, result) -> dict[str, Any]:
    """A metric from another tool: translate what maps, list the rest."""
    from ..scaffold import guess_direction, guess_unit, snake_case

    name = metric["name"]
    kpi_id = name if _ID.match(name) else snake_case(name)
    if kpi_id != name:
        result.unmapped.append(f"{label}: id {kpi_id!r} (the name is not a valid KPI id)")
    context = metric.get("ai_context")
    synonyms, instructions = [], ""
    if isinstance(context, dict):
        synonyms = [str(s) for s in context.get("synonyms") or []]
        instructions = str(context.get("instructions") or "")
        for key in sorted(set(context) - {"synonyms", "instructions"}):
            result.unmapped.append(f"{label}: ai_context.{key} is not imported")
    elif isinstance(context, str):
        instructions = context
    title = name.replace("_", " ").strip().title() if kpi_id == name else name
    if category is None:
        raise KPIError(
            f"{label} comes from another tool and has no category: give one with --category"
        )
    description = str(metric.get("description") or "")
    data: dict[str, Any] = {
        "id": kpi_id,
        "name": title,
        "aliases": synonyms,
        "summary": instructions or description or f"TODO: say in one sentence what {title} is.",
        "category": category,
    }
    unit = guess_unit(title)
    direction = guess_direction(title)
    data["unit"] = unit[0] if unit else "count"
    data["direction"] = direction[0] if direction else "higher_is_better"
    if not unit:
        result.unmapped.append(f"{label}: unit unknown; wrote 'count', check it")
    if not direction:
        result.unmapped.append(f"{label}: direction unknown; wrote 'higher_is_better', check it")
    data["status"] = "draft"
    data["version"] = "0.1"
    data["definition"] = description or f"TODO: say precisely what {title} is."
    dialects = {d["dialect"]: d["expression"] for d in metric["expression"]["dialects"]}
    for dialect in sorted(set(dialects) - {"ANSI_SQL"}):
        result.unmapped.append(f"{label}: the {dialect} expression is not imported")
    sql = dialects.get("ANSI_SQL")
    read: dict[str, tuple[str, str]] = {}
    try:
        if sql is None:
            raise _Untranslatable("it has no ANSI_SQL expression")
        formula = _translate_sql(sql, metric_names - {name}, read)
    except _Untranslatable as e:
        placeholder = f"placeholder_{kpi_id}"
        result.unmapped.append(f"{label}: expression not translated ({e}); kept in formula.notes")
        data["formula"] = {
            "expression": f"sum({placeholder})",
            "notes": f"TODO: translate the imported expression: {sql}",
        }
        data["datapoints"] = [
            {
                "name": placeholder,
                "description": "Placeholder input; replace it with a real datapoint.",
                "unit": "count",
                "rows": "sum",
                "time": "flow",
                "missing": None,
            }
        ]
        return data
    data["formula"] = {"expression": formula}
    datapoints = []
    for column, (dataset, _) in sorted(read.items()):
        used.add((dataset, column))
        described = columns.get((dataset, column)) or ""
        datapoints.append(
            {
                "name": column,
                "description": described or f"Column {column} of {dataset} (imported).",
                "unit": "count",
                "rows": "sum",
                "time": "flow",
                "missing": None,
            }
        )
    if datapoints:
        result.unmapped.append(
            f"{label}: datapoints {', '.join(read)} written as count, summed, flow; check "
            "their unit, rows, time and missing"
        )
    data["datapoints"] = datapoints
    return data


_AGG = {"Sum": "sum", "Avg": "mean", "Min": "min", "Max": "max", "Median": "median"}
_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}
_COMPARE = {"EQ": "=", "NEQ": "!=", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}


def _translate_sql(sql: str, metrics: set[str], read: dict[str, tuple[str, str]]) -> str:
    """Our formula for an ANSI SQL aggregate expression (sqlglot parses it; nothing runs)."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql)
    except sqlglot.errors.ParseError as e:
        raise _Untranslatable(f"not SQL: {str(e).splitlines()[0]}") from None

    def column(node) -> str:
        if not isinstance(node, exp.Column):
            raise _Untranslatable(f"{node.sql()} is not a column")
        name = node.name
        if not _ID.match(name):
            raise _Untranslatable(f"column {name!r} is not a valid datapoint name")
        read.setdefault(name, (node.table or "", name))
        return name

    def row(node) -> str:  # inside an aggregate: a row expression
        if isinstance(node, exp.Paren):
            return f"({row(node.this)})"
        if isinstance(node, exp.Column):
            return column(node)
        if isinstance(node, exp.Literal) and not node.is_string:
            return node.this
        if isinstance(node, exp.Neg):
            return f"-{row(node.this)}"
        if type(node).__name__ in _BINARY:
            return f"{row(node.left)} {_BINARY[type(node).__name__]} {row(node.right)}"
        if type(node).__name__ in _COMPARE:
            return f"{row(node.left)} {_COMPARE[type(node).__name__]} {row(node.right)}"
        if isinstance(node, (exp.And, exp.Or)):
            return f"({row(node.left)}) {type(node).__name__.lower()} ({row(node.right)})"
        raise _Untranslatable(f"{node.sql()} has no formula equivalent here")

    def filtered(node, zero_else: bool = False) -> tuple[str, str | None]:
        """CASE WHEN c THEN v [ELSE NULL] END -> (v, c), and ELSE 0 too where a zero adds
        nothing (``zero_else``: under SUM); anything else -> (row, None)."""
        if isinstance(node, exp.Case) and len(node.args.get("ifs") or []) == 1:
            when = node.args["ifs"][0]
            default = node.args.get("default")
            if (
                default is None
                or isinstance(default, exp.Null)
                or (zero_else and _is_zero(default))
            ):
                return row(when.args["true"]), row(when.this)
        return row(node), None

    def period(node) -> str:  # outside aggregates
        if isinstance(node, exp.Paren):
            return f"({period(node.this)})"
        if isinstance(node, exp.Literal) and not node.is_string:
            return node.this
        if isinstance(node, exp.Neg):
            return f"-{period(node.this)}"
        if isinstance(node, exp.Nullif) and _is_zero(node.expression):
            return period(node.this)  # x / NULLIF(y, 0): our division gives missing on 0
        if isinstance(node, exp.Column) and not node.table and node.name in metrics:
            return node.name  # another metric of the document
        if type(node).__name__ in _BINARY:
            return f"{period(node.left)} {_BINARY[type(node).__name__]} {period(node.right)}"
        if isinstance(node, exp.Count):
            inner = node.this
            if isinstance(inner, exp.Distinct):
                value, cond = filtered(inner.expressions[0])
                return f"count_distinct({value}{f', {cond}' if cond else ''})"
            if isinstance(inner, exp.Star):
                raise _Untranslatable("COUNT(*) counts rows, which a formula cannot see")
            value, cond = filtered(inner)
            return f"count({value}{f', {cond}' if cond else ''})"
        if type(node).__name__ in _AGG:
            value, cond = filtered(node.this, zero_else=isinstance(node, exp.Sum))
            return f"{_AGG[type(node).__name__]}({value}{f', {cond}' if cond else ''})"
        raise _Untranslatable(f"{node.sql()} has no formula equivalent")

    formula = period(tree)
    from ..formula import parse

    try:
        parse(formula)
    except KPIError as e:
        raise _Untranslatable(f"the translation does not parse ({e})") from None
    return formula


def _is_zero(node) -> bool:
    from sqlglot import exp

    return isinstance(node, exp.Literal) and not node.is_string and float(node.this) == 0
