"""Worked examples, computed while the site is built: input, steps, result and a chart.

The numbers on a KPI page come from the engine, not from the definition's ``expected`` block;
the build checks that the two agree, so a page can never show a result the engine disagrees
with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from ..errors import DataError, DefinitionError, Diagnostic, KPIError
from ..evaluation import Table as Result
from ..loading import position_of
from ..model import KPI, Example
from ..worked_examples import compare_expected, example_request, example_result
from .charts import BANDS, Band, bar_chart, line_chart
from .numbers import format_input, format_value, is_missing

#: Longer inputs are cut on the page (the full data stays in the definition file).
MAX_INPUT_ROWS = 60


class ExampleFailed(DefinitionError):
    """A worked example cannot be shown; its diagnostic names the file, line and example."""


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    links: dict[str, str] = field(default_factory=dict)  # column -> KPI id (header links)
    numeric: list[bool] = field(default_factory=list)


@dataclass
class ExampleView:
    title: str
    description: str
    scalar: bool
    inputs: Table
    hidden_rows: int
    steps: list[str]  # KPI ids computed on the way, in the order the example lists them
    step_table: Table | None
    result: Table
    chart: str  # SVG markup, built from numbers only
    bands: int = 0  # benchmark bands drawn on the chart (the caption says what they are)
    #: The engine's result for the example's own request (a Table, or a dict for scalar
    #: data): the driver figure reads its periods instead of evaluating the example again.
    result_values: Any = field(default=None, repr=False, compare=False)


def table_html(t: Table, links: Any, reg: Any, cls: str = "kpi-table") -> Markup:
    """A table of a worked example as the page writes it: every cell escaped, a KPI id in a
    header (or first cell) linked to its page, numeric columns right-aligned by a class on the
    table (n1 ... n12, see kpi.css) rather than on each cell. Written here rather than as a
    template macro: an example's tables are a good part of a KPI page, and a macro's loops
    cost as much as the rest of the page's template."""
    right = "".join(f" n{i}" for i, num in enumerate(t.numeric, 1) if num and i <= 12)
    opens = [
        ("<th", "<td") if not (num and i > 12) else _WIDE for i, num in enumerate(t.numeric, 1)
    ]

    def linked(name: Any) -> str:
        if name in t.links and name in reg:
            return f'<a href="{escape(links.kpi_url(t.links[name]))}">{escape(reg[name].name)}</a>'
        return escape(name)

    head = "".join(f"{opens[i][0]}>{linked(c)}</th>" for i, c in enumerate(t.columns))
    body = "".join(
        "<tr>"
        + "".join(
            f"{opens[i][1]}>{linked(cell) if i == 0 else escape(cell)}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>\n"
        for row in t.rows
    )
    return Markup(
        f'<div class="kpi-scroll"><table class="{escape(cls)}{right}">\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table></div>\n"
    )


#: How a numeric column past the twelfth opens its cells (the table's classes stop at n12).
_WIDE = ('<th class="n"', '<td class="n"')


def example_views(kpis: Mapping[str, KPI], kpi: KPI) -> list[ExampleView]:
    return [_view(kpis, kpi, ex) for ex in kpi.examples]


def _fail(kpi: KPI, example: Example, path: tuple, message: str) -> ExampleFailed:
    i = example.index
    line, col = position_of(kpi.data, ("examples", i, *path))
    field_name = f"examples[{i}]" + ("." + ".".join(map(str, path)) if path else "")
    return ExampleFailed(
        [Diagnostic(str(kpi.path), line, col, field_name, f"({example.title}) {message}")]
    )


def _view(kpis: Mapping[str, KPI], kpi: KPI, example: Example) -> ExampleView:
    try:
        result = example_result(kpis, kpi, example)
    except (DataError, KPIError) as e:
        raise _fail(kpi, example, (), f"cannot evaluate the worked example: {e}") from None
    problems = compare_expected(kpi.id, result, example)
    if problems:
        message, where = problems[0]
        raise _fail(kpi, example, ("expected", *where), message)
    show = [s for s in example.show if s != kpi.id]
    if isinstance(result, dict):
        view = _scalar_view(kpis, kpi, example, result, show)
    else:
        view = _frame_view(kpis, kpi, example, result, show)
    view.result_values = result
    return view


def benchmark_bands(kpi: KPI) -> list[Band]:
    """The KPI's published benchmarks as bands for a chart of its own values.

    Benchmarks are written in the KPI's unit and grain (the schema says so), so they can be
    drawn on a chart of the KPI's results; they never go on a chart of the inputs, whose units
    differ. A range is a band, a single value a line.
    """
    bands = []
    for b in kpi.data.get("benchmarks") or []:
        if "range" in b:
            low, high = (float(v) for v in b["range"])
        else:
            low = high = float(b["value"])
        bands.append(Band(low, high, str(b["segment"])))
    return bands


def _unit(kpis: Mapping[str, KPI], kpi_id: str) -> str:
    return kpis[kpi_id].unit if kpi_id in kpis else ""


def _scalar_view(kpis, kpi, example, result: dict[str, float], show: list[str]) -> ExampleView:
    data = dict(example.data or {})
    inputs = Table(
        ["Input", "Value"],
        [[name, format_input(value)] for name, value in data.items()],
        numeric=[False, True],
    )
    # Inputs that are KPIs link to their pages (the template resolves the ids).
    inputs.links = {name: name for name in data if name in kpis}
    steps = [s for s in show if s not in data]
    step_table = None
    if steps:
        step_table = Table(
            ["Step", "Value"],
            [[s, format_value(result[s], _unit(kpis, s))] for s in steps],
            links={s: s for s in steps},
            numeric=[False, True],
        )
    value = result[kpi.id]
    chart_items = [(name, v) for name, v in data.items() if isinstance(v, (int, float))]
    chart = bar_chart(
        [kpis[n].name if n in kpis else n for n, _ in chart_items],
        [float(v) for _, v in chart_items],
        title=f"Inputs; result {format_value(value, kpi.unit)}",
    )
    return ExampleView(
        title=example.title,
        description=example.description,
        scalar=True,
        inputs=inputs,
        hidden_rows=0,
        steps=steps,
        step_table=step_table,
        result=Table([kpi.id], [[format_value(value, kpi.unit)]], {kpi.id: kpi.id}, [True]),
        chart=chart,
    )


def _text(v: Any) -> str:
    if isinstance(v, pd.Period):
        return str(v)
    return format_input(v)


def _frame_view(kpis, kpi, example, result: Result, show: list[str]) -> ExampleView:
    rows = [dict(r) for r in example.data or []]
    columns: list[str] = []
    for row in rows:
        columns.extend(c for c in row if c not in columns)
    shown = rows[:MAX_INPUT_ROWS]
    inputs = Table(
        columns,
        [[format_input(r.get(c)) for c in columns] for r in shown],
        numeric=[all(isinstance(r.get(c), (int, float)) for r in rows if c in r) for c in columns],
    )
    req = example_request(example)
    columns = list(result.columns)
    keys = [k for k in [req.period, *req.by] if k and k in columns]
    values = [result.columns[c].tolist() for c in columns]
    records = [dict(zip(columns, row)) for row in zip(*values)]

    def table(ids: list[str]) -> Table:
        return Table(
            keys + ids,
            [
                [_text(r[k]) for k in keys] + [format_value(r[i], _unit(kpis, i)) for i in ids]
                for r in records
            ],
            links={i: i for i in ids},
            numeric=[False] * len(keys) + [True] * len(ids),
        )

    steps = [s for s in show if s in columns]
    bands = benchmark_bands(kpi)
    return ExampleView(
        title=example.title,
        description=example.description,
        scalar=False,
        inputs=inputs,
        hidden_rows=len(rows) - len(shown),
        steps=steps,
        step_table=table(steps) if steps else None,
        result=table([kpi.id]),
        chart=_chart(
            kpi, records, columns, req.period if req.period in keys else None, req.by, bands
        ),
        bands=min(len(bands), BANDS),
    )


def _missing(v: Any) -> bool:
    """numbers.is_missing, or pandas' own missing markers (a period column may hold them)."""
    return is_missing(v) or v is pd.NaT or v is pd.NA


def _chart(
    kpi: KPI,
    records: list[dict],
    columns: list[str],
    period: str | None,
    by: list[str],
    bands: Sequence[Band] = (),
) -> str:
    """A line per group over the periods; bars when there is no time axis to draw along.

    Works on the result's rows as plain records (a few per example): pandas' grouping costs
    more than the whole rest of a KPI page at this size.
    """

    def value(v: Any) -> float | None:
        return None if _missing(v) else float(v)

    by = [b for b in by if b in columns]
    label = kpi.name
    if period and len({r[period] for r in records if not _missing(r[period])}) > 1:
        x = list(dict.fromkeys(_text(r[period]) for r in records))
        groups: dict[tuple, dict[str, Any]] = {}
        for r in records:
            key = tuple(r[b] for b in by)
            if any(_missing(k) for k in key):  # as pandas' groupby: no group for a missing key
                continue
            groups.setdefault(key, {})[_text(r[period])] = r[kpi.id]
        series = [
            (" / ".join(map(str, key)) or label, [value(points.get(p)) for p in x])
            for key, points in groups.items()
        ]
        return line_chart(x, series, unit=kpi.unit, title=label, bands=bands)
    keys = [k for k in [period, *by] if k]
    labels = [" / ".join(_text(r[k]) for k in keys) or label for r in records]
    values = [value(r[kpi.id]) for r in records]
    return bar_chart(labels, values, unit=kpi.unit, title=label, bands=bands)
