"""Every backend covers every function of the formula language, or says why not (issue #20).

One test per (backend, function): the backend's function table handles the function, and a
tiny formula calling it runs through the backend; or the backend lists it in its unsupported
functions with a reason, and declines it (the calculator: no calculator for that page). A
function added to ``FUNCTIONS`` without a handler fails here, once per backend that lacks it.

A new backend is one ``Backend`` line in BACKENDS (SQL: one per dialect).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlglot
import yaml

from kpi_registry import attribution, backends, drivertree, evaluation
from kpi_registry.errors import FormulaError
from kpi_registry.export.metricflow import (
    MEASURES,
    METRICFLOW_FUNCTIONS,
    SPECS,
    metricflow,
)
from kpi_registry.export.metricflow import UNSUPPORTED_FUNCTIONS as METRICFLOW_UNSUPPORTED
from kpi_registry.formula import FUNCTIONS, Function, analyse, analysis, mathml, parse, render
from kpi_registry.model import KPI
from kpi_registry.registry import Registry
from kpi_registry.request import Request
from kpi_registry.sql import DIALECTS, compile_many, translate

DATAPOINT = {"name": "x", "description": "a number per customer and month", "minimum": 0}
DATA = pd.DataFrame(
    {
        "month": ["2024-01", "2024-01", "2024-02", "2024-02", "2024-03", "2024-03"],
        "customer": ["a", "b", "a", "b", "a", "b"],
        "x": [1.0, 2.0, 3.0, 0.0, 5.0, 7.0],
    }
)
REQUEST = Request(period="month", entity="customer")


def _call(func: Function, operand: str) -> str:
    """The function applied to its fewest arguments: ``operand``, or a condition on it."""
    args = (f"{operand} > 0" if i in func.boolean_args else operand for i in range(func.min_args))
    return f"{func.name}({', '.join(args)})"


def row_call(func: Function) -> str:
    """A call on a datapoint, as written inside an aggregate: abs(x), sum(x), ever_before(x > 0)."""
    return _call(func, "x")


def kpi_formula(func: Function) -> str:
    """The first formula calling the function that is a valid KPI: at period level where it
    may stand there (so attribution and the driver tree meet it), else inside an aggregate."""
    period_call = _call(func, "sum(x)") if func.kind != "aggregate" else row_call(func)
    candidates = [
        period_call if func.min_args else f"sum(x) * {period_call}",  # on data, not a constant
        f"sum({row_call(func)})",
        f"sum(x, {row_call(func)})",
    ]
    for text in candidates:
        try:
            analyse(parse(text), lambda n: False, lambda n: n == "x", text)
        except FormulaError:
            continue
        return text
    raise AssertionError(f"no valid formula calls {func.name}()")  # pragma: no cover


def _kpis(text: str, datapoint: Mapping[str, Any] = DATAPOINT, kpi_id: str = "k") -> dict[str, KPI]:
    definition = {"datapoints": [datapoint]}
    return {kpi_id: KPI(kpi_id, definition, Path(f"{kpi_id}.yaml"), expression=parse(text))}


# -- how each backend is run on a tiny formula -----------------------------------------------


def _evaluate(func: Function) -> None:
    frame = evaluation.evaluate_many(_kpis(kpi_formula(func)), ["k"], DATA, REQUEST)
    assert np.isfinite(frame["k"].to_numpy(dtype=float)).any(), frame


def _text(func: Function) -> None:
    node = parse(kpi_formula(func))
    assert parse(render.to_text(node)) == node  # the canonical text parses back to the same tree


def _latex(func: Function) -> None:
    latex = render.to_latex(parse(row_call(func)))
    assert (r"\left|" if func.name == "abs" else func.name.replace("_", r"\_")) in latex


def _mathml(func: Function) -> None:
    html = mathml.to_mathml(parse(row_call(func)))
    assert ("<mo>|</mo>" if func.name == "abs" else f"<mi>{func.name}</mi>") in html


def _javascript(func: Function) -> None:
    node = parse(_call(func, "a"))
    if func.name in render.JS_UNSUPPORTED_FUNCTIONS:
        with pytest.raises(render.NotScalar) as declined:
            render.to_js_function(node)
        assert declined.value.func == func.name
        assert declined.value.reason == render.JS_UNSUPPORTED_FUNCTIONS[func.name]
    else:
        assert render.to_js_function(node).startswith("function (v)")


def _analysis(func: Function) -> None:
    found = analyse(parse(kpi_formula(func)), lambda n: False, lambda n: n == "x")
    assert found.datapoints == {"x"} and found.type == analysis.NUMBER


def _drivers(func: Function) -> None:
    assert drivertree.operation_of(parse(row_call(func)))
    tree = drivertree.driver_tree(_kpis(kpi_formula(func)), "k")
    assert tree.expression == render.to_text(parse(kpi_formula(func)))


def _attribution(func: Function) -> None:
    frame = attribution.explain(
        _kpis(kpi_formula(func)), "k", DATA, REQUEST, start="2024-02", end="2024-03"
    )
    change = frame["change"].to_numpy(dtype=float)
    assert np.isfinite(change).all(), frame


def _sql(dialect: str) -> Callable[[Function], None]:
    def compile_in(func: Function) -> None:
        text = compile_many(_kpis(kpi_formula(func)), ["k"], "t", REQUEST, dialect=dialect)
        assert sqlglot.parse_one(text, read=dialect), text

    return compile_in


def _metricflow(func: Function) -> None:
    """Handled: the KPI is exported (a stock datapoint, so that every aggregate is a measure;
    over a flow only a plain sum is exact above the base grain). Declined: the KPI is listed
    as not mappable, with the function named in the reason."""
    stock = {**DATAPOINT, "time": "closing"}
    kpis = _kpis(kpi_formula(func), stock, kpi_id="kpi")  # "k" is too short a MetricFlow name
    export = metricflow(Registry(kpis), grain="month")
    if func.name in METRICFLOW_UNSUPPORTED:
        assert export.exported == [], export.metrics
        reason = export.skipped["kpi"]
        assert f"{func.name}()" in reason
        if func.kind == "time" and func.name != "ever_before":  # the grain's calendar
            assert reason == METRICFLOW_UNSUPPORTED[func.name]
        return
    assert export.exported == ["kpi"], export.skipped
    [metric] = [m for m in export.metrics if m["name"] == "kpi"]
    measures = [m for t in export.tables for m in t.measures.values()]
    if func.name in MEASURES:
        assert MEASURES[func.name].agg in {m["agg"] for m in measures}, measures
    elif func.name == "previous":
        assert [m.get("offset_window") for m in metric["type_params"]["metrics"]] == ["1 month"]
    else:  # a scalar function: SQL in the derived metric's or the measure's expression
        exprs = [metric["type_params"].get("expr", ""), *(m["expr"] for m in measures)]
        assert any(sqlglot.parse_one(e).find(sqlglot.exp.Func) for e in exprs if e), exprs
    for spec in SPECS:
        assert yaml.safe_load(export.to_yaml(spec))["version"] == 2


@dataclass(frozen=True)
class Backend:
    name: str
    functions: Mapping[str, Any]  # function name -> handler
    unsupported: Mapping[str, str]  # function name -> why the backend declines it
    exercise: Callable[[Function], None]  # runs a tiny formula calling the function through it


BACKENDS = [
    Backend("pandas", evaluation.ENGINE_FUNCTIONS, evaluation.UNSUPPORTED_FUNCTIONS, _evaluate),
    Backend("text", render.TEXT_FUNCTIONS, render.TEXT_UNSUPPORTED_FUNCTIONS, _text),
    Backend("latex", render.LATEX_FUNCTIONS, render.LATEX_UNSUPPORTED_FUNCTIONS, _latex),
    Backend("mathml", mathml.MATHML_FUNCTIONS, mathml.UNSUPPORTED_FUNCTIONS, _mathml),
    Backend("javascript", render.JS_FUNCTIONS, render.JS_UNSUPPORTED_FUNCTIONS, _javascript),
    Backend("analysis", analysis.ANALYSIS_FUNCTIONS, {}, _analysis),
    Backend("drivertree", drivertree.DRIVER_FUNCTIONS, drivertree.UNSUPPORTED_FUNCTIONS, _drivers),
    Backend(
        "attribution",
        attribution.ATTRIBUTION_FUNCTIONS,
        attribution.UNSUPPORTED_FUNCTIONS,
        _attribution,
    ),
    Backend(
        "metricflow",
        METRICFLOW_FUNCTIONS,
        METRICFLOW_UNSUPPORTED,
        _metricflow,
    ),
    *[
        Backend(
            f"sql-{d}",
            {
                k: v
                for k, v in translate.FUNCTIONS.items()
                if k not in translate.UNSUPPORTED_FUNCTIONS[d]
            },
            translate.UNSUPPORTED_FUNCTIONS[d],
            _sql(d),
        )
        for d in DIALECTS
    ],
]


#: Backends whose exercise also checks how they decline a function they do not support.
DECLINES_OBSERVABLY = {"javascript", "metricflow"}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.name)
def test_backend_handles_or_declines_every_function(backend: Backend, name: str):
    func = FUNCTIONS[name]
    handled, declined = name in backend.functions, name in backend.unsupported
    assert handled or declined, f"{backend.name} has no handler for {name}() and no reason why"
    assert not (handled and declined), f"{backend.name} both handles and declines {name}()"
    if declined:
        assert backend.unsupported[name].strip(), f"{backend.name}: no reason for {name}()"
    if handled or backend.name in DECLINES_OBSERVABLY:
        backend.exercise(func)


def test_the_calculator_declines_what_needs_rows_or_periods():
    declined = set(render.JS_UNSUPPORTED_FUNCTIONS)
    assert declined == {*analysis.AGGREGATES, "previous", "ever_before"}


def test_required_backends_decline_nothing():
    for name, (handled, declined) in backends.required_backends().items():
        assert not declined, name
        assert set(handled) == set(FUNCTIONS), name


def test_a_kpi_calling_a_function_a_required_backend_lacks_is_reported(monkeypatch):
    kpi = _kpis("median(x) + abs(sum(x))")["k"]
    assert backends.unsupported_functions(kpi) == []
    lacking = {k: v for k, v in evaluation.ENGINE_FUNCTIONS.items() if k != "median"}
    monkeypatch.setattr(evaluation, "ENGINE_FUNCTIONS", lacking)
    [found] = backends.unsupported_functions(kpi)
    assert (found.kpi_id, found.function, found.backend) == ("k", "median", "pandas engine")
