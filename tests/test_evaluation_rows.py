"""Data given as plain lists (worked examples) must give exactly what a DataFrame gives.

The engine reads :class:`Rows` without pandas where it can (text months, text or integer ids,
plain numbers) and falls back to the DataFrame code for anything else; these tests hold the
two paths to the same numbers, labels, dtypes and error messages.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import FAMILY
from test_evaluation import messy

from kpi_registry import periods
from kpi_registry.errors import DataError
from kpi_registry.evaluation import Request, Rows, compute, evaluate_many
from kpi_registry.worked_examples import example_data, example_request, example_rows


def as_rows(frame: pd.DataFrame) -> Rows:
    """The frame's values as plain Python lists, None for missing, like YAML gives them."""
    return Rows(
        {c: [None if pd.isna(v) else v for v in frame[c].astype(object)] for c in frame.columns}
    )


def both(kpis, ids, frame: pd.DataFrame, request: Request, rows: Rows | None = None):
    via_frame = evaluate_many(kpis, ids, frame, request)
    via_rows = compute(kpis, ids, rows or as_rows(frame), request).to_frame()
    return via_frame, via_rows


def assert_same(via_frame: pd.DataFrame, via_rows: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(via_rows, via_frame, check_exact=True)
    assert via_rows.attrs == via_frame.attrs


@pytest.mark.parametrize("grain", [None, "quarter"])
@pytest.mark.parametrize("seed", range(3))
def test_messy_billing_data_as_lists_matches_the_dataframe(family, seed, grain):
    data = messy(seed)
    data["segment"] = [["smb", "mid", "ent"][hash(c) % 3] for c in data["customer"]]
    for by in ([], ["segment"]):
        request = Request(
            period="month", entity="customer", by=by, grain=grain, columns={"revenue": "mrr"}
        )
        assert_same(*both(family.kpis, list(FAMILY), data, request))


def test_every_bundled_worked_example_matches_the_dataframe_path():
    import kpi_registry

    bundled = kpi_registry.load()
    checked = 0
    for kpi in bundled:
        for example in kpi.examples:
            ids = [kpi.id, *[s for s in example.show if s != kpi.id]]
            data, rows = example_data(example), example_rows(example)
            request = example_request(example)
            via_frame = evaluate_many(bundled.kpis, ids, data, request)
            via_rows = compute(bundled.kpis, ids, rows, request)
            if isinstance(via_frame, dict):
                assert via_rows == pytest.approx(via_frame, nan_ok=True)
            else:
                assert_same(via_frame, via_rows.to_frame())
            checked += 1
    assert checked >= 62


def test_integer_ids_missing_values_and_fallback_types(family):
    frame = pd.DataFrame(
        {
            "customer": [30, 10, 30, 20, 10, 20],
            "month": ["2024-01", "2024-01", "2024-02", "2024-02", "2024-03", "2024-03"],
            "mrr": [100, 50, None, 70, 80, 75],
        }
    )
    request = Request(period="month", entity="customer", columns={"revenue": "mrr"})
    assert_same(*both(family.kpis, list(FAMILY), frame, request))
    # quarter texts, booleans as numbers, mixed id types: the pandas path decides
    odd = Rows(
        {
            "customer": ["a", 1, "a", 1],
            "month": ["2024Q1", "2024Q1", "2024Q2", "2024Q2"],
            "mrr": [True, 2.5, False, 3],
        }
    )
    via_rows = compute(family.kpis, list(FAMILY), odd, request).to_frame()
    via_frame = evaluate_many(family.kpis, list(FAMILY), odd.to_frame(), request)
    assert_same(via_frame, via_rows)


@pytest.mark.parametrize(
    "columns, message",
    [
        ({"customer": ["a", None], "month": ["2024-01", "2024-02"], "mrr": [1, 2]}, "empty"),
        ({"customer": ["a", "b"], "month": ["2024-01", "2024-13"], "mrr": [1, 2]}, "unparsable"),
        ({"customer": ["a", "b"], "month": ["2024-01", "2024-02"], "mrr": [1, "x"]}, "numeric"),
        ({"customer": ["a", "b"], "month": ["2024-01", None], "mrr": [1, 2]}, "empty"),
    ],
)
def test_bad_lists_give_the_dataframe_error(family, columns, message):
    request = Request(period="month", entity="customer", columns={"revenue": "mrr"})
    rows = Rows(columns)
    with pytest.raises(DataError, match=message) as from_frame:
        evaluate_many(family.kpis, ["expansion_revenue"], rows.to_frame(), request)
    with pytest.raises(DataError) as from_rows:
        compute(family.kpis, ["expansion_revenue"], rows, request)
    assert str(from_rows.value) == str(from_frame.value)


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(DataError, match="same number of rows"):
        Rows({"a": [1, 2], "b": [1]})


def test_month_texts_match_pandas_period_labels():
    first = (1968 - 1970) * 12 + 5  # June 1968: negative ordinals too
    labels = pd.PeriodIndex.from_ordinals(np.arange(first, first + 40), freq="M")
    assert list(periods.month_texts(first, 40)) == [str(p) for p in labels]
    assert periods.month_texts(-12 * 1000, 3) is None  # year 970: left to pandas
    axis = periods.parse_month_texts(["2024-03", "2023-12", "2024-03"])
    assert (axis.first, axis.count, list(axis.codes), axis.kind) == (647, 4, [3, 0, 3], "text")
    assert periods.parse_month_texts(["2024-1"]) is None
    assert periods.parse_month_texts([202401]) is None
