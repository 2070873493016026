"""Rows summed per entity and period add up in decimal, the same double in both engines.

Invoice lines in cents are binary approximations: 0.1 + 0.2 is 0.3 + 5.6e-17 and a fully
credited 100.10 - 100.00 - 0.10 is -5.7e-15. Added as plain floats they made contractions and
kept churned customers alive. ``evaluation.round_sums`` (and its SQL twin,
``sqlbuild.decimal_sum``) round a sum of several rows to the finest power of ten above the
float error it can carry, so a customer-month is the double nearest the exact decimal total of
its lines. The reference below adds the lines as exact fractions; it never calls the engine.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from conftest import Library

from kpi_registry.evaluation import round_sums

ENGINES = ["pandas", "duckdb"]
NAN = math.nan


# -- messy invoice lines and their exact totals -------------------------------------------------
def invoice_lines(
    seed: int, customers: int = 60, months: int = 8, large: int = 10**14
) -> pd.DataFrame:
    """Customer-month invoice lines: many lines in cents, credits and full credit notes,
    amounts from 1e-4 to 1e12 (below ``large`` cents), blank (NaN) and zero lines, rows in
    random order."""
    rng = np.random.default_rng(seed)
    rows = []

    def cents(lo: int, hi: int) -> float:
        return int(rng.integers(lo, hi)) / 100

    for c in range(customers):
        kind = ["cents", "split", "credit", "large", "tiny"][c % 5]
        for m in range(months):
            if rng.random() < 0.1:
                continue  # no row this month
            if kind == "cents":  # up to 40 lines of 0.01 to 99.99
                lines = [cents(1, 10_000) for _ in range(int(rng.integers(1, 41)))]
            elif kind == "split":  # the same 19.99 every month, split differently
                lines = _split(rng, 1999, int(rng.integers(1, 12)), 100)
            elif kind == "credit":  # a month's lines, and sometimes a credit note for all
                lines = [cents(1, 50_000) for _ in range(int(rng.integers(1, 6)))]
                if rng.random() < 0.3:
                    lines += [-v for v in lines]
                elif rng.random() < 0.5:
                    lines.append(-cents(1, 100))  # a partial credit
            elif kind == "large":  # up to 1e12 in cents, one to three lines
                lines = [cents(large // 1000, large) for _ in range(int(rng.integers(1, 4)))]
            else:  # fractions of a cent: 0.0001 to 0.0999
                lines = [
                    int(rng.integers(1, 1000)) / 10_000 for _ in range(int(rng.integers(1, 30)))
                ]
            if rng.random() < 0.2:
                lines.append(NAN)  # a blank amount counts as no line
            if rng.random() < 0.1:
                lines.append(0.0)
            rows += [(f"c{c:03d}", f"2024-{m + 1:02d}", v) for v in lines]
    frame = pd.DataFrame(rows, columns=["customer", "month", "amount"])
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _split(rng, total_cents: int, parts: int, per_unit: int) -> list[float]:
    """``total_cents`` as ``parts`` lines (one of them may be negative: a discount line)."""
    cuts = np.sort(rng.integers(-total_cents // 4, total_cents, parts - 1))
    bounds = [0, *cuts.tolist(), total_cents]
    return [(b - a) / per_unit for a, b in zip(bounds[:-1], bounds[1:])]


def exact_totals(frame: pd.DataFrame, value: str = "amount") -> dict[tuple[str, str], Fraction]:
    """Each customer-month's lines added as the decimals they were written as."""
    totals: dict[tuple[str, str], Fraction] = {}
    for customer, month, v in zip(frame["customer"], frame["month"], frame[value]):
        if not math.isnan(v):
            key = (customer, month)
            totals[key] = totals.get(key, Fraction(0)) + Fraction(repr(float(v)))
    return totals


def per_customer(reg, frame, engine, **kw) -> pd.DataFrame:
    """MRR by customer: each customer-month's combined revenue as the engine holds it."""
    out = reg.evaluate(
        "monthly_recurring_revenue",
        frame,
        period="month",
        entity="customer",
        by="customer",
        columns={"revenue": "amount"},
        engine=engine,
        **kw,
    )
    return out.sort_values(["month", "customer"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    import kpi_registry

    library = Library(tmp_path_factory.mktemp("decimal")).family()
    bookings = {
        "name": "booked_amount",
        "description": "Bookings of one customer in one period.",
        "unit": "currency",
        "rows": "sum",
        "time": "flow",
        "missing": "null",
    }
    library.add("total_bookings", "sum(booked_amount)", datapoints=[bookings])
    library.add("booked_customers", "count(booked_amount)", datapoints=[bookings])
    library.add("paying_customers", "count(revenue, revenue > 0)")
    return kpi_registry.load(library.root, include_bundled=False)


# -- the examples the fix is for ---------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_lines_in_cents_make_no_movement_and_credits_churn(reg, engine):
    data = pd.DataFrame(
        [
            ("a", "2024-01", 0.1),
            ("a", "2024-01", 0.2),
            ("a", "2024-02", 0.3),
            ("b", "2024-01", 100.1),
            ("b", "2024-02", 100.1),
            ("b", "2024-02", -100.0),
            ("b", "2024-02", -0.1),
            ("c", "2024-01", 0.0001),
            ("c", "2024-01", 0.0002),
            ("c", "2024-02", 0.0003),
            ("d", "2024-01", 999_999_999_999.99),
            ("d", "2024-01", 0.01),
            ("d", "2024-02", 1e12),
            ("e", "2024-01", 123_456_789_012.34),
            ("e", "2024-02", 123_456_789_000.0),
            ("e", "2024-02", 12.3),
            ("e", "2024-02", 0.04),
        ],
        columns=["customer", "month", "amount"],
    )
    ids = ["expansion_revenue", "contraction_revenue", "churned_revenue", "paying_customers"]
    out = reg.evaluate_many(
        ids, data, period="month", entity="customer", columns={"revenue": "amount"}, engine=engine
    )
    february = out.iloc[1]
    assert february["expansion_revenue"] == 0.0
    assert february["contraction_revenue"] == 0.0
    assert february["churned_revenue"] == 100.1
    assert february["paying_customers"] == 4
    cells = per_customer(reg, data, engine)["monthly_recurring_revenue"].tolist()
    january = [0.3, 100.1, 0.0003, 1e12, 123_456_789_012.34]
    assert cells == january + [0.3, 0.0, 0.0003, 1e12, 123_456_789_012.34]


# -- messy data against exact decimal totals -----------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_each_customer_month_is_its_exact_decimal_total(reg, engine, seed):
    data = invoice_lines(seed)
    totals = exact_totals(data)
    got = per_customer(reg, data, engine)
    want = [float(totals.get(key, 0)) for key in zip(got["customer"], got["month"])]
    assert got["monthly_recurring_revenue"].tolist() == want
    # the check has teeth: added as plain floats, many of these totals are off
    plain = data.groupby(["customer", "month"])["amount"].sum()
    off = sum(plain[k] != float(t) for k, t in totals.items())
    assert off > 20


@pytest.mark.parametrize("seed", [4, 5])
@pytest.mark.parametrize("grain", [None, "quarter", "year"])
def test_both_engines_give_the_same_doubles(reg, seed, grain):
    """Months, quarters and years of a flow, summed from lines and then from months, are the
    exact decimal totals in both engines. (Up to 1e10 a line: a year of twelve months of three
    such lines stays within the range where cents are kept, 4.5e13 / (terms + 2).)"""
    data = invoice_lines(seed, large=10**12).assign(booked_amount=lambda f: f["amount"])
    kw = {"grain": grain} if grain else {}
    pandas = per_customer(reg, data, "pandas", **kw)
    duckdb = per_customer(reg, data, "duckdb", **kw)
    pd.testing.assert_frame_equal(pandas, duckdb, check_exact=True, check_dtype=False)
    flows = [
        reg.evaluate(
            "total_bookings",
            data,
            period="month",
            entity="customer",
            by="customer",
            engine=engine,
            **kw,
        )
        .sort_values(["month", "customer"])
        .reset_index(drop=True)
        for engine in ENGINES
    ]
    pd.testing.assert_frame_equal(*flows, check_exact=True, check_dtype=False)
    freq = {None: "M", "quarter": "Q", "year": "Y"}[grain]
    coarse = data.assign(month=[str(pd.Period(m, "M").asfreq(freq)) for m in data["month"]])
    totals = exact_totals(coarse)
    want = [float(totals.get(key, 0)) for key in zip(flows[0]["customer"], flows[0]["month"])]
    assert flows[0]["total_bookings"].tolist() == want


@pytest.mark.parametrize("engine", ENGINES)
def test_flow_totals_of_a_quarter_add_up_in_decimal(reg, engine):
    data = pd.DataFrame(
        [
            ("a", "2024-01", 0.1),
            ("a", "2024-02", 0.2),  # Q1: 0.3, not 0.30000000000000004
            ("b", "2024-01", 100.1),
            ("b", "2024-02", -100.0),
            ("b", "2024-03", -0.1),  # Q1: 0, not -5.7e-15
            ("b", "2024-04", NAN),  # Q2: only a blank line: missing (missing: null)
            ("a", "2024-04", 0.7),
            ("a", "2024-05", 0.1),
            ("a", "2024-05", NAN),
            ("a", "2024-06", 0.1),  # Q2: 0.9
        ],
        columns=["customer", "month", "booked_amount"],
    )
    out = reg.evaluate_many(
        ["total_bookings", "booked_customers"],
        data,
        period="month",
        entity="customer",
        by="customer",
        grain="quarter",
        engine=engine,
    )
    got = {(p, c): (t, n) for p, c, t, n in out.itertuples(index=False)}
    assert got[("2024Q1", "a")] == (0.3, 1) and got[("2024Q1", "b")] == (0.0, 1)
    assert got[("2024Q2", "a")] == (0.9, 1)
    assert got[("2024Q2", "b")] == (0.0, 0)  # b's quarter is missing: no bookings counted


@pytest.mark.parametrize("engine", ENGINES)
def test_split_invoices_of_the_same_amount_are_no_movement(reg, engine):
    """Every customer pays the same every month (split into different lines each time), or
    has its whole month credited: no expansion or contraction at all, churn exactly where a
    month is credited, and the quick ratio never divides by float noise."""
    rng = np.random.default_rng(9)
    rows, credited = [], set()
    for c in range(80):
        amount = int(rng.integers(1, 100_000))  # cents
        for m in range(1, 9):
            lines = _split(rng, amount, int(rng.integers(1, 15)), 100)
            if m > 1 and rng.random() < 0.1:
                lines += [-v for v in lines]  # credit note
                credited.add((c, m))
            rows += [(f"c{c}", f"2024-{m:02d}", v) for v in lines]
    data = pd.DataFrame(rows, columns=["customer", "month", "amount"]).sample(frac=1.0)
    ids = ["expansion_revenue", "contraction_revenue", "churned_revenue", "quick_ratio"]
    out = reg.evaluate_many(
        ids, data, period="month", entity="customer", columns={"revenue": "amount"}, engine=engine
    )
    assert (out["expansion_revenue"].iloc[1:] == 0.0).all()
    assert (out["contraction_revenue"].iloc[1:] == 0.0).all()
    churn_months = {f"2024-{m:02d}" for _, m in credited}
    churned = out.set_index("month")["churned_revenue"]
    assert {m for m, v in churned.items() if v > 0} == churn_months
    quick = out["quick_ratio"].dropna()
    assert (quick < 1e6).all()  # gains over real losses, never over 1e-17


# -- what must not change ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["integers", "quarters"])
def test_round_sums_never_changes_integer_or_quarter_sums(kind):
    """Integers at any size, and quarters within the documented range ((terms + 2) times the
    magnitude below 4.5e13, e.g. five lines of a trillion), add up exactly as doubles: the
    rounding must give back every such sum unchanged."""
    rng = np.random.default_rng(17)
    n = 200_000
    terms = rng.integers(1, 60, n)
    if kind == "integers":
        top = np.minimum(10.0 ** rng.uniform(0, 14, n), 2.0**52 / (terms + 2) / terms)
        step = 1.0
    else:
        top = np.minimum(10.0 ** rng.uniform(-1, 12, n), 4e13 / (terms + 2) / terms)
        step = 0.25
    # each cell: terms numbers of up to top, in steps, of either sign; added exactly
    lines = np.floor(rng.uniform(-1, 1, (n, 59)) * top[:, None] / step) * step
    lines[np.arange(59)[None, :] >= terms[:, None]] = 0.0
    total = lines.sum(axis=1)
    magnitude = np.abs(lines).sum(axis=1)
    assert np.array_equal(np.floor(total / step) * step, total)  # exact: no noise to remove
    assert np.array_equal(round_sums(total, magnitude, terms), total)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("seed", range(4))
def test_engines_leave_integer_and_quarter_data_as_plain_sums_give_it(reg, engine, seed):
    rng = np.random.default_rng(seed)
    n = 3000
    step = [1.0, 0.25][seed % 2]
    scale = 10.0 ** rng.integers(0, 11, n)  # 1 to 1e10 per line, up to 8 lines a month
    amounts = np.floor(rng.uniform(-0.3, 1.0, n) * scale / step) * step
    amounts[rng.random(n) < 0.03] = np.nan
    data = pd.DataFrame(
        {
            "customer": [f"c{i}" for i in rng.integers(0, 150, n)],
            "month": [f"2024-{m:02d}" for m in rng.integers(1, 9, n)],
            "amount": amounts,
        }
    )
    # MRR cannot be negative per customer and month (its credit lines may be): those
    # customer-months are read as having no rows, the others must be the plain sums
    got = per_customer(reg, data, engine, drop_invalid=True)
    plain = data.groupby(["customer", "month"])["amount"].sum(min_count=1).fillna(0.0)
    plain = plain.where(plain >= 0, 0.0)
    assert (plain > 0).sum() > 500 and (data["amount"] < 0).sum() > 300  # signed lines kept
    want = [plain.get(key, 0.0) for key in zip(got["customer"], got["month"])]
    assert got["monthly_recurring_revenue"].tolist() == want


@pytest.mark.parametrize("engine", ENGINES)
def test_a_single_row_is_kept_as_given(reg, engine):
    """Only rows that are added are rounded: one row, however many digits, stays itself."""
    data = pd.DataFrame(
        [
            ("a", "2024-01", 0.30000000000000004),
            ("b", "2024-01", 1 / 3),
            ("c", "2024-01", 1e-30),
            ("d", "2024-01", NAN),
            ("d", "2024-01", 2 / 3),
            ("e", "2024-01", NAN),
            ("e", "2024-01", NAN),
        ],
        columns=["customer", "month", "amount"],
    )
    got = per_customer(reg, data, engine)["monthly_recurring_revenue"].tolist()
    assert got == [0.30000000000000004, 1 / 3, 1e-30, 2 / 3, 0.0]


def test_round_sums_keeps_missing_and_infinite_totals():
    total = np.array([NAN, np.inf, -np.inf, 0.30000000000000004, 5e-324, 1e300])
    magnitude = np.array([NAN, np.inf, np.inf, 0.30000000000000004, 5e-324, 1e300])
    terms = np.array([2, 3, 2, 2, 2, 2])
    out = round_sums(total, magnitude, terms)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == -np.inf
    assert out[3] == 0.3  # rounded
    assert out[4] == 5e-324 and out[5] == 1e300  # beyond the range rounded: as they are
