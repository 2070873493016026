"""Semantic checks that JSON Schema cannot express, across all files at once.

Each check appends to a Report and carries on, so one run shows every problem. Checks are
plain functions over already-parsed KPIs (parsing lives in loading.py, shape in schema.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import DataError, FormulaError, KPIError, Report, did_you_mean
from .formula import analyse, parse
from .loading import Mapping as PositionedMapping
from .loading import position_of, value_position
from .model import ATTRIBUTES, KPI, Category, Datapoint

if TYPE_CHECKING:  # the engine (and pandas) load only when examples are checked
    import pandas as pd

    from .evaluation import Rows
    from .request import Request

_TEXT_FIELDS = (
    "name",
    "summary",
    "definition",
    "business_insights",
    "measurement_approach",
    "trend_analysis",
)


def check_identity(kpi: KPI, report: Report) -> None:
    stem = kpi.path.stem
    if kpi.data.get("id") != stem:
        line, col = position_of(kpi.data, ("id",))
        report.add(
            kpi.path,
            line,
            col,
            "id",
            f"id {kpi.data.get('id')!r} does not match the file name; rename the file to "
            f"'{kpi.data.get('id')}.yaml' or set id: {stem}",
        )
    for name in _TEXT_FIELDS:
        value = kpi.data.get(name)
        if isinstance(value, str) and not value.strip():
            line, col = position_of(kpi.data, (name,))
            report.add(kpi.path, line, col, name, "must not be empty")


def check_values(kpi: KPI, report: Report) -> None:
    """Every number is finite, every link http(s) or relative.

    YAML reads ``.inf``, ``.nan`` and ``1e999`` as numbers that JSON, SQL and the site cannot
    write (they crashed ``kpi sql``, ``kpi export`` and ``kpi site build``); a missing value
    is ``null``. A ``javascript:`` or ``data:`` link would run or show anything on the site
    and in the exported catalog."""
    stack: list[tuple[tuple, Any]] = [((), kpi.data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, Mapping):
            stack.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
        elif _non_finite(
            value, in_data=len(path) > 2 and path[0] == "examples" and path[2] == "data"
        ):
            line, col = value_position(kpi.data, path)
            report.add(
                kpi.path,
                line,
                col,
                field_name(path),
                f"{value} is not a finite number; write null where there is no value",
            )
    for path, url in _links(kpi):
        problem = link_problem(url)
        if problem:
            line, col = value_position(kpi.data, path)
            report.add(kpi.path, line, col, field_name(path), problem)


def _non_finite(value: Any, in_data: bool) -> bool:
    """A float that is infinite or NaN; in an example's data also text that reads as one
    (YAML reads ``1e999`` without a dot as text, the engine then as infinity)."""
    if isinstance(value, str) and in_data:
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float) and not math.isfinite(value)


def _links(kpi: KPI) -> list[tuple[tuple, str]]:
    out: list[tuple[tuple, str]] = []
    for i, source in enumerate(_list(kpi.data.get("sources"))):
        if isinstance(source, Mapping) and isinstance(source.get("url"), str):
            out.append((("sources", i, "url"), source["url"]))
    for i, bench in enumerate(_list(kpi.data.get("benchmarks"))):
        source = bench.get("source") if isinstance(bench, Mapping) else None
        if isinstance(source, Mapping) and isinstance(source.get("url"), str):
            out.append((("benchmarks", i, "source", "url"), source["url"]))
    return out


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def link_problem(url: str) -> str | None:
    """Why a link may not be used, or None: only http(s) URLs with a host, and links
    relative to the site (no scheme, not ``//host``), without spaces or control characters
    (browsers drop some of them, so a tab inside ``javascript:`` would still run)."""
    if not url or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "a link must not be empty or contain spaces or control characters"
    scheme = _SCHEME.match(url)
    if scheme is None:
        if url.startswith(("//", "\\", "/\\")):
            return "a link to another host must start with https:// or http://"
        return None  # relative to the page
    if scheme.group(1).lower() not in ("http", "https"):
        return f"{scheme.group(1)}: links are not allowed; use an https:// or http:// URL"
    if not urlsplit(url).hostname:
        return "an http(s) URL needs a host name, e.g. https://example.com/report"
    return None


def check_taxonomy(kpi: KPI, taxonomy: Mapping[str, Category], report: Report) -> None:
    for i, cat in enumerate([kpi.data.get("category"), *kpi.data.get("categories", [])]):
        if isinstance(cat, str) and cat not in taxonomy:
            field = ("category",) if i == 0 else ("categories", i - 1)
            line, col = position_of(kpi.data, field)
            report.add(
                kpi.path,
                line,
                col,
                ".".join(map(str, field)).replace(".", "[", 1) + "]" * (i > 0),
                f"unknown category {cat!r}{did_you_mean(cat, taxonomy)}; categories are defined "
                "in _taxonomy.yaml",
            )


def references(kpi: KPI) -> list[tuple[tuple, str]]:
    """Every (field path, KPI id) the definition points at outside its formula."""
    out: list[tuple[tuple, str]] = []
    relations = kpi.data.get("relations") or {}
    for kind, items in relations.items() if isinstance(relations, dict) else []:
        for i, item in enumerate(items or []):
            if isinstance(item, dict) and isinstance(item.get("kpi"), str):
                out.append((("relations", kind, i, "kpi"), item["kpi"]))
    effects = (kpi.data.get("change_impact") or {}).get("effects") or []
    for i, item in enumerate(effects):
        if isinstance(item, dict) and isinstance(item.get("kpi"), str):
            out.append((("change_impact", "effects", i, "kpi"), item["kpi"]))
    influences = kpi.data.get("influences") or {}
    for kind, items in influences.items() if isinstance(influences, dict) else []:
        for i, item in enumerate(items or []):
            if isinstance(item, dict) and isinstance(item.get("kpi"), str):
                out.append((("influences", kind, i, "kpi"), item["kpi"]))
    for i, example in enumerate(kpi.examples):
        for j, shown in enumerate(example.get("show", []) if isinstance(example, dict) else []):
            out.append((("examples", i, "show", j), shown))
    return out


def field_name(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def check_references(kpi: KPI, known: Mapping[str, KPI], report: Report) -> None:
    for path, target in references(kpi):
        if target not in known:
            line, col = position_of(kpi.data, path)
            report.add(
                kpi.path,
                line,
                col,
                field_name(path),
                f"unknown KPI {target!r}{did_you_mean(target, known)}",
            )
        elif target == kpi.id and path[0] != "examples":
            line, col = position_of(kpi.data, path)
            report.add(kpi.path, line, col, field_name(path), "a KPI cannot relate to itself")


def check_datapoints(kpis: Mapping[str, KPI], report: Report) -> None:
    """A datapoint name means one thing everywhere, and never shadows a KPI id."""
    seen: dict[str, tuple[Datapoint, KPI]] = {}
    for kpi in kpis.values():
        names: set[str] = set()
        for i, raw in enumerate(kpi.data.get("datapoints", [])):
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                continue
            dp = Datapoint.from_dict(raw)
            line, col = position_of(kpi.data, ("datapoints", i, "name"))
            where = f"datapoints[{i}].name"
            if dp.name in names:
                report.add(kpi.path, line, col, where, f"datapoint {dp.name!r} is declared twice")
            names.add(dp.name)
            if dp.rows in ("last", "first") and not dp.order_by and kpi.status != "draft":
                report.add(
                    kpi.path,
                    line,
                    col,
                    where,
                    f"datapoint {dp.name!r} keeps the {dp.rows} row of each entity-period "
                    f"(rows: {dp.rows}) but names no order_by column: without one the result "
                    "depends on the order of the rows; name the column that orders them, such "
                    "as a response timestamp",
                )
            if dp.minimum is not None and dp.maximum is not None and dp.minimum > dp.maximum:
                report.add(
                    kpi.path, line, col, where, f"datapoint {dp.name!r}: valid min is above max"
                )
            if (dp.rows == "distinct") != (dp.time == "distinct"):
                report.add(
                    kpi.path,
                    line,
                    col,
                    where,
                    f"datapoint {dp.name!r}: rows: distinct and time: distinct go together "
                    "(different values are counted over all the rows of a coarser period, "
                    "not added up month by month)",
                )
            if dp.name in dp.excludes:
                report.add(
                    kpi.path, line, col, where, f"datapoint {dp.name!r} cannot exclude itself"
                )
            if dp.name in kpis:
                report.add(
                    kpi.path,
                    line,
                    col,
                    where,
                    f"datapoint {dp.name!r} has the same name as a KPI; rename the datapoint",
                )
            if dp.name in seen and seen[dp.name][0].semantics() != dp.semantics():
                other_dp, other = seen[dp.name]
                report.add(
                    kpi.path,
                    line,
                    col,
                    where,
                    f"datapoint {dp.name!r} is declared as {dp.describe()} here but "
                    f"{other_dp.describe()} in {other.path}; one name must mean one thing",
                )
            seen.setdefault(dp.name, (dp, kpi))


def _formula_position(kpi: KPI, error: FormulaError) -> tuple[int, int]:
    """The file position of a formula error: the offending token when the formula is on one
    line, else the first line of its text."""
    line, col = value_position(kpi.data, ("formula", "expression"))
    text = kpi.formula_text
    if error.position is not None and "\n" not in text.strip() and text == text.lstrip():
        key_line, _ = position_of(kpi.data, ("formula", "expression"))
        if line == key_line:
            return line, col + error.position
    return line, col


def bind_formulas(kpis: Mapping[str, KPI], report: Report) -> dict[str, set[str]]:
    """Parse and check each formula against the registry; return the KPI dependency graph."""
    graph: dict[str, set[str]] = {}
    for kpi in kpis.values():
        text = kpi.formula_text
        if not isinstance(text, str) or not text.strip():
            continue  # the schema reports a missing expression
        declared = kpi.datapoints
        try:
            node = parse(text.strip())
            result = analyse(
                node,
                is_kpi=lambda n: n in kpis,
                is_datapoint=declared.__contains__,
                expression=text.strip(),
            )
        except FormulaError as e:
            if e.message.startswith("unknown name"):
                bad = e.message.split("'")[1]
                hint = did_you_mean(bad, kpis, declared)
                e = FormulaError(
                    f"unknown name {bad!r}: neither a KPI id nor a datapoint declared in this "
                    f"file{hint}",
                    e.expression,
                    e.position,
                )
            line, col = _formula_position(kpi, e)
            report.add(kpi.path, line, col, "formula.expression", e.render())
            continue
        kpi.expression = node
        graph[kpi.id] = set(result.kpis)
        kpi.grain_expressions = {}
        for grain, other in kpi.at_grain_texts.items():
            try:
                alt = parse(other.strip())
                found = analyse(
                    alt,
                    is_kpi=lambda n: n in kpis,
                    is_datapoint=declared.__contains__,
                    expression=other.strip(),
                )
            except FormulaError as e:
                line, col = value_position(kpi.data, ("formula", "at_grain", grain))
                report.add(kpi.path, line, col, f"formula.at_grain.{grain}", e.render())
                continue
            kpi.grain_expressions[grain] = alt
            graph[kpi.id] |= found.kpis
            result.datapoints |= found.datapoints
        below, replaced = _datapoints_below(result.kpis, kpis)
        if replaced:
            continue  # an override below may use other inputs; this file is not at fault
        unused = set(declared) - result.datapoints - below
        for name in sorted(unused):
            i = next(i for i, d in enumerate(kpi.data["datapoints"]) if d.get("name") == name)
            line, col = position_of(kpi.data, ("datapoints", i, "name"))
            report.add(
                kpi.path,
                line,
                col,
                f"datapoints[{i}].name",
                f"datapoint {name!r} is declared but the formula never uses it "
                "(directly or through the KPIs it references)",
            )
    return graph


def _datapoints_below(ids: set[str], kpis: Mapping[str, KPI]) -> tuple[set[str], bool]:
    """Datapoints of every KPI these depend on, and whether any of them is an override."""
    out: set[str] = set()
    replaced = False
    stack, seen = list(ids), set()
    while stack:
        kpi_id = stack.pop()
        if kpi_id in seen or kpi_id not in kpis:
            continue
        seen.add(kpi_id)
        out |= set(kpis[kpi_id].datapoints)
        replaced = replaced or bool(kpis[kpi_id].overridden)
        stack.extend(_names_in(kpis[kpi_id], kpis))
    return out, replaced


def _names_in(kpi: KPI, kpis: Mapping[str, KPI]) -> set[str]:
    try:
        node = kpi.expression or parse(kpi.formula_text)
    except FormulaError:
        return set()
    from .formula import Name

    return {n.name for n in node.walk() if isinstance(n, Name) and n.name in kpis}


def check_cycles(graph: Mapping[str, set[str]], kpis: Mapping[str, KPI], report: Report) -> None:
    """Report each formula dependency cycle once, naming every KPI on it."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    reported: set[frozenset[str]] = set()

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    first = kpis[cycle[0]]
                    line, col = position_of(first.data, ("formula", "expression"))
                    report.add(
                        first.path,
                        line,
                        col,
                        "formula.expression",
                        "formula dependency cycle: " + " -> ".join(cycle),
                    )
            elif dep in graph and state.get(dep) is None:
                visit(dep, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if state.get(node) is None:
            visit(node, [])
    for kpi_id in {k for cycle in reported for k in cycle}:
        kpis[kpi_id].expression = None  # a cycle cannot be evaluated


def check_required_attributes(kpi: KPI, report: Report) -> None:
    """reviewed/certified KPIs fill all 12 attributes (also with non-blank text)."""
    if kpi.status not in ("reviewed", "certified"):
        return
    for attr in ATTRIBUTES:
        value = kpi.data.get(attr)
        if isinstance(value, str) and not value.strip() or value in ([], {}):
            line, col = position_of(kpi.data, (attr,))
            report.add(kpi.path, line, col, attr, f"a {kpi.status} KPI must fill this attribute")


# ------------------------------------------------------------------------------------------
# Worked examples


def example_request(example: Mapping[str, Any]) -> Request:
    params = example.get("parameters") or {}
    by = params.get("by") or []
    from .request import Request

    return Request(
        period=params.get("period"),
        entity=params.get("entity"),
        by=[by] if isinstance(by, str) else list(by),
        grain=params.get("grain"),
        columns=dict(params.get("columns") or {}),
    )


def example_rows(example: Mapping[str, Any]) -> Rows | dict[str, Any]:
    """The example's data as the engine reads it without building a DataFrame: columns in the
    order they first appear, None where a row leaves one out (or a dict of scalars)."""
    from .evaluation import Rows

    data = example.get("data")
    if isinstance(data, dict):
        return dict(data)
    names = dict.fromkeys(key for row in data for key in row)
    return Rows({name: [row.get(name) for row in data] for name in names})


def example_data(example: Mapping[str, Any]) -> pd.DataFrame | dict[str, Any]:
    """The example's data as a DataFrame (or a dict of scalars), as a user would pass it."""
    from .evaluation import Rows

    rows = example_rows(example)
    return rows.to_frame() if isinstance(rows, Rows) else rows


def example_result(kpis: Mapping[str, KPI], kpi: KPI, example: Mapping[str, Any]):
    """An example's numbers, the KPI plus the intermediates it asks to show, as a Table (or a
    dict for scalar data): without pandas at either end, for callers that check or show
    thousands of examples."""
    from .evaluation import compute

    ids = [kpi.id, *[s for s in example.get("show", []) if s != kpi.id]]
    return compute(kpis, ids, example_rows(example), example_request(example))


def run_example(kpis: Mapping[str, KPI], kpi: KPI, example: Mapping[str, Any]):
    """An example's numbers as ``evaluate_many`` returns them (a DataFrame or a dict)."""
    from .evaluation import Table

    result = example_result(kpis, kpi, example)
    return result.to_frame() if isinstance(result, Table) else result


def check_examples(kpis: Mapping[str, KPI], kpi: KPI, report: Report) -> None:
    if kpi.expression is None:
        return
    for i, example in enumerate(kpi.examples):
        if not isinstance(example, PositionedMapping | dict):
            continue
        line, col = position_of(kpi.data, ("examples", i))
        field = f"examples[{i}]"
        try:
            result = example_result(kpis, kpi, example)
        except (DataError, KPIError) as e:
            report.add(kpi.path, line, col, field, f"cannot evaluate: {e}")
            continue
        expected = example.get("expected")
        decimals = int(example.get("decimals", 2))
        for problem, where in compare_expected(kpi.id, result, expected, example, decimals):
            eline, ecol = position_of(kpi.data, ("examples", i, "expected", *where))
            report.add(kpi.path, eline, ecol, f"{field}.expected", problem)


def _close(actual: float, expected: Any, decimals: int) -> bool:
    if expected is None:
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    if actual is None or (isinstance(actual, float) and math.isnan(actual)):
        return False
    return abs(float(actual) - float(expected)) <= 0.5 * 10 ** (-decimals) + 1e-9


def _period_text(value: Any) -> str:
    """2024-Q1 and 2024Q1 name the same quarter."""
    import pandas as pd

    try:
        return str(pd.Period(str(value)))
    except (ValueError, TypeError):
        return str(value)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null (no value)"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def compare_expected(
    kpi_id: str, result: Any, expected: Any, example: Mapping[str, Any], decimals: int
) -> list[tuple[str, tuple]]:
    """Differences between the engine's result and the example's expected values."""
    if isinstance(result, dict):  # scalar data
        actual = result[kpi_id]
        if isinstance(expected, list):
            return [("scalar data gives one number; write expected: <number>", ())]
        if not _close(actual, expected, decimals):
            return [
                (f"the engine computes {_fmt(actual)}, the example expects {_fmt(expected)}", ())
            ]
        return []
    if not isinstance(expected, list):
        return [("row data gives a table; write expected as a list of rows", ())]
    from .evaluation import Table

    req = example_request(example)
    keys = [k for k in [req.period, *req.by] if k]
    value_cols = [c for c in result.columns if c not in keys]  # a Table's or a DataFrame's

    columns = result.columns if isinstance(result, Table) else result
    as_lists = {c: columns[c].tolist() for c in columns}
    records = [dict(zip(as_lists, values)) for values in zip(*as_lists.values())]
    actual_rows = {tuple(str(row[k]) for k in keys): row for row in records}
    problems: list[tuple[str, tuple]] = []
    seen = set()
    for j, row in enumerate(expected):
        key = tuple(str(row.get(k)) for k in keys)
        if key not in actual_rows and req.period:  # 2024-Q1 and 2024Q1 name the same quarter
            key = tuple(
                _period_text(row.get(k)) if k == req.period else v for k, v in zip(keys, key)
            )
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, key)) or "the result"
        seen.add(key)
        if key not in actual_rows:
            problems.append((f"the engine gives no row for {label}", (j,)))
            continue
        for col, want in row.items():
            if col in keys:
                continue
            if col not in value_cols:
                problems.append(
                    (
                        f"{col!r} is not a result column (columns: "
                        f"{', '.join(value_cols)}); list it in show:",
                        (j, col),
                    )
                )
                continue
            got = actual_rows[key][col]
            if not _close(got, want, decimals):
                problems.append(
                    (
                        f"{label}: the engine computes {col} = {_fmt(got)}, the example expects "
                        f"{_fmt(want)}",
                        (j, col),
                    )
                )
        if kpi_id not in row:
            problems.append((f"row for {label} has no {kpi_id!r} value", (j,)))
    for key in actual_rows:
        if key not in seen:
            label = ", ".join(f"{k}={v}" for k, v in zip(keys, key))
            value = _fmt(actual_rows[key][kpi_id])
            problems.append(
                (
                    f"the engine also gives a row for {label} ({kpi_id} = {value}); "
                    "add it to expected",
                    (),
                )
            )
    return problems
