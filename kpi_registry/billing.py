"""Shaping billing exports into the entity x month rows the engine reads.

Billing systems export subscriptions (customer, start, end, monthly amount), not one row per
customer-month. This turns one into the other, vectorised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import CellError, DataError

#: The bundled KPIs that bridge one month's recurring revenue to the next, computed from the
#: entity x month rows below (movements first, then the ratios built on them).
REVENUE_FAMILY: list[str] = [
    "starting_revenue",
    "expansion_revenue",
    "contraction_revenue",
    "churned_revenue",
    "new_revenue",
    "reactivation_revenue",
    "net_revenue_retention",
    "gross_revenue_retention",
    "expansion_revenue_rate",
    "expansion_revenue_growth_rate",
    "quick_ratio",
]


def subscriptions_to_months(
    subscriptions: pd.DataFrame,
    *,
    entity: str,
    start: str,
    end: str,
    amount: str,
    until: str | pd.Period | None = None,
    period: str = "month",
    value: str = "revenue",
) -> pd.DataFrame:
    """One row per entity and month with the summed monthly amount of its subscriptions.

    A subscription counts in every month from its start month up to, not including, the month
    of its (exclusive) end: [2024-01-15, 2024-04-15) gives January to March, so back-to-back
    renewals never count twice. An empty end means still running: it runs to ``until`` (a
    month; by default the last month any subscription starts or ends in). Every subscription
    stops at ``until``: one ending later is cut there too, so the ones still running are not
    read as churned after it.
    """
    for col in (entity, start, end, amount):
        if col not in subscriptions.columns:
            cols = ", ".join(map(repr, subscriptions.columns))
            raise DataError(f"column {col!r} not found; the data has {cols}")
    if subscriptions.empty:
        return pd.DataFrame({entity: [], period: [], value: []})
    starts = _months(subscriptions[start], start, allow_empty=False)
    ends = _months(subscriptions[end], end, allow_empty=True)
    amounts = pd.to_numeric(subscriptions[amount], errors="coerce")
    bad = amounts.isna() & subscriptions[amount].notna()
    if bad.any():
        pos = int(np.argmax(bad.to_numpy()))
        raise CellError(
            amount, subscriptions.index[pos], subscriptions[amount].iloc[pos], "not_numeric"
        )
    backwards = ends < starts  # False where the end is empty
    if backwards.any():
        pos = int(np.argmax(backwards))
        raise CellError(
            end, subscriptions.index[pos], subscriptions[end].iloc[pos], "ends_before_start"
        )
    if until is not None:
        last = pd.Period(until, freq="M").ordinal
    else:
        # the month of the latest end too: a subscription ending then is churn in that month
        last = int(np.nanmax(np.r_[starts, ends]))
    ends = np.fmin(ends, last + 1).astype(np.int64)  # an empty end runs to `last`
    starts = starts.astype(np.int64)
    lengths = np.clip(ends - starts, 0, None)
    idx = np.repeat(np.arange(len(subscriptions)), lengths)
    offsets = np.arange(len(idx)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    months = starts[idx] + offsets
    rows = pd.DataFrame(
        {
            entity: subscriptions[entity].to_numpy()[idx],
            period: pd.PeriodIndex.from_ordinals(months, freq="M"),
            value: amounts.to_numpy(dtype=float)[idx],
        }
    )
    if not len(months) or months.max() < last:
        # No subscription runs in the last month: without a row there the month would not be
        # in the data at all, and the churn of those ending in it would never show. A zero
        # row for each of them keeps the month (and reads the same as no row: missing is 0).
        ending = np.flatnonzero(ends == last)
        if ending.size:
            zeros = pd.DataFrame(
                {
                    entity: subscriptions[entity].to_numpy()[ending],
                    period: pd.PeriodIndex.from_ordinals(np.full(ending.size, last), freq="M"),
                    value: 0.0,
                }
            )
            rows = pd.concat([rows, zeros], ignore_index=True) if len(rows) else zeros
    rows = rows.groupby([entity, period], as_index=False, sort=True)[value].sum()
    return rows


def _months(series: pd.Series, column: str, allow_empty: bool) -> np.ndarray:
    """Month ordinals as floats (NaN for empty) of a date column."""
    try:
        stamps = pd.to_datetime(series, errors="raise")
    except (ValueError, TypeError) as e:
        raise DataError(f"column {column!r} has a value that is not a date: {e}") from None
    empty = stamps.isna().to_numpy()
    if empty.any() and not allow_empty:
        row = series.index[empty][0]
        raise CellError(column, row, None, "empty")
    out = np.full(len(series), np.nan)
    out[~empty] = stamps[~empty].dt.to_period("M").array.asi8
    return out
