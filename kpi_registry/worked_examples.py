"""The worked-example runner: an example's request and data as the engine reads them, its
result, and how that result differs from what the example expects.

Validation re-computes every example through this module (``kpi validate --examples``);
the site shows examples through it too (``site/examples.py`` renders them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine (and pandas) load only when an example is run
    import pandas as pd

    from .evaluation import Rows
    from .model import KPI, Example
    from .request import Request


def example_request(example: Example) -> Request:
    from .request import Request

    return Request(
        period=example.period,
        entity=example.entity,
        by=list(example.by),
        grain=example.grain,
        columns=dict(example.columns),
    )


def example_rows(example: Example) -> Rows | dict[str, Any]:
    """The example's data as the engine reads it without building a DataFrame: columns in the
    order they first appear, None where a row leaves one out (or a dict of scalars)."""
    from .evaluation import Rows

    data = example.data
    if isinstance(data, dict):
        return dict(data)
    names = dict.fromkeys(key for row in data for key in row)
    return Rows({name: [row.get(name) for row in data] for name in names})


def example_data(example: Example) -> pd.DataFrame | dict[str, Any]:
    """The example's data as a DataFrame (or a dict of scalars), as a user would pass it."""
    from .evaluation import Rows

    rows = example_rows(example)
    return rows.to_frame() if isinstance(rows, Rows) else rows


def example_result(kpis: Mapping[str, KPI], kpi: KPI, example: Example):
    """An example's numbers, the KPI plus the intermediates it asks to show, as a Table (or a
    dict for scalar data): without pandas at either end, for callers that check or show
    thousands of examples."""
    from .evaluation import compute

    ids = [kpi.id, *[s for s in example.show if s != kpi.id]]
    return compute(kpis, ids, example_rows(example), example_request(example))


def run_example(kpis: Mapping[str, KPI], kpi: KPI, example: Example):
    """An example's numbers as ``evaluate_many`` returns them (a DataFrame or a dict)."""
    from .evaluation import Table

    result = example_result(kpis, kpi, example)
    return result.to_frame() if isinstance(result, Table) else result


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


def compare_expected(kpi_id: str, result: Any, example: Example) -> list[tuple[str, tuple]]:
    """Differences between the engine's result and the example's expected values (rounded to
    its ``decimals``)."""
    expected, decimals = example.expected, example.decimals
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
