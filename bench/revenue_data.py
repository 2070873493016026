"""Billing-like customer-month revenue at scale, shared by the engine and SQL benchmarks.

Customers start in different months, expand, contract, churn by vanishing from the export
(no zero row), and some come back later; a few customer-months are split over two rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def generate(
    target_rows: int = 10_000_000, months: int = 24, segments: int = 5, seed: int = 1
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    customers = int(target_rows / (months * 0.82))
    start = rng.integers(0, months // 3, customers)
    mrr = rng.integers(2, 60, customers).astype(float) * 25
    segment_of = rng.integers(0, segments, customers)
    active = np.zeros(customers, dtype=bool)
    ever = np.zeros(customers, dtype=bool)
    cust_parts, month_parts, mrr_parts, seg_parts = [], [], [], []
    first_month = pd.Timestamp("2023-01-01")
    for m in range(months):
        joining = start == m
        active |= joining
        roll = rng.random(customers)
        churn = active & ever & (roll < 0.012)
        back = ~active & ever & (roll > 0.97)
        active = (active & ~churn) | back
        change = rng.random(customers)
        mrr = np.where(active & (change < 0.05), mrr * 1.4, mrr)
        mrr = np.where(active & (change > 0.975), np.round(mrr * 0.7, 2), mrr)
        moved = active & (rng.random(customers) < 0.002)
        segment_of = np.where(moved, rng.integers(0, segments, customers), segment_of)
        ids = np.flatnonzero(active)
        ever |= active
        cust_parts.append(ids)
        month_parts.append(np.full(len(ids), m))
        mrr_parts.append(mrr[ids])
        seg_parts.append(segment_of[ids])
    customer = np.concatenate(cust_parts)
    month = np.concatenate(month_parts)
    value = np.concatenate(mrr_parts)
    seg = np.concatenate(seg_parts)
    # split 1% of customer-months over two invoice lines
    split = np.flatnonzero(rng.random(len(customer)) < 0.01)
    half = np.round(value[split] / 2, 2)
    value[split] -= half
    customer = np.concatenate([customer, customer[split]])
    month = np.concatenate([month, month[split]])
    seg = np.concatenate([seg, seg[split]])
    value = np.concatenate([value, half])
    labels = np.array([f"segment_{i}" for i in range(segments)])
    months_index = pd.date_range(first_month, periods=months, freq="MS")
    frame = pd.DataFrame(
        {
            "customer": customer.astype(np.int64),
            "month": months_index.values[month],
            "segment": pd.Categorical.from_codes(seg, categories=labels),
            "mrr": value,
        }
    )
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
