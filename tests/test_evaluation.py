"""The pandas engine on messy, billing-like data, checked against a slow obvious reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import FAMILY

from kpi_registry.billing import REVENUE_FAMILY, subscriptions_to_months
from kpi_registry.errors import DataError, UnknownKPIError

MOVEMENTS = REVENUE_FAMILY[:6]  # the revenue movements; the rest of the family are ratios


def test_the_revenue_family_is_the_one_specified_and_bundled():
    import kpi_registry

    assert list(FAMILY)[: len(REVENUE_FAMILY)] == REVENUE_FAMILY  # plus MRR, a helper
    assert all(kpi_id in kpi_registry.load() for kpi_id in REVENUE_FAMILY)


def rows(*triples):
    return pd.DataFrame(triples, columns=["customer", "month", "mrr"])


def ev(reg, kpi, data, **kw):
    kw.setdefault("period", "month")
    kw.setdefault("entity", "customer")
    kw.setdefault("columns", {"revenue": "mrr"})
    return reg.evaluate(kpi, data, **kw)


def test_customer_vanishing_from_export_counts_as_churn(family):
    data = rows(("a", "2024-01", 100), ("b", "2024-01", 50), ("a", "2024-02", 100))
    out = ev(family, "churned_revenue", data)
    assert out["month"].tolist() == ["2024-01", "2024-02"]
    assert np.isnan(out["churned_revenue"][0])  # no previous period
    assert out["churned_revenue"][1] == 50


def test_reactivation_is_not_new_and_not_expansion(family):
    data = rows(("a", "2024-01", 100), ("a", "2024-03", 120), ("b", "2024-03", 30))
    out = family.evaluate_many(
        ["new_revenue", "reactivation_revenue", "expansion_revenue"],
        data,
        period="month",
        entity="customer",
        columns={"revenue": "mrr"},
    ).set_index("month")
    assert out.loc["2024-03"].tolist() == [30.0, 120.0, 0.0]
    assert out.loc["2024-02"].tolist() == [0.0, 0.0, 0.0]


def test_zero_row_and_missing_row_mean_the_same(family):
    with_zero = rows(("a", "2024-01", 100), ("a", "2024-02", 0), ("a", "2024-03", 80))
    without = rows(("a", "2024-01", 100), ("a", "2024-03", 80))
    ids = MOVEMENTS
    a = family.evaluate_many(
        ids, with_zero, period="month", entity="customer", columns={"revenue": "mrr"}
    )
    b = family.evaluate_many(
        ids, without, period="month", entity="customer", columns={"revenue": "mrr"}
    )
    pd.testing.assert_frame_equal(a, b)


def test_quarter_takes_stock_at_quarter_end(family):
    # b pays in January and February only: it has no row in March, so 0 at Q1's end.
    data = rows(
        ("a", "2024-01", 100),
        ("b", "2024-01", 40),
        ("b", "2024-02", 40),
        ("a", "2024-03", 100),
        ("a", "2024-06", 130),
        ("c", "2024-05", 10),
    )
    out = ev(family, "monthly_recurring_revenue", data, grain="quarter")
    assert out["month"].tolist() == ["2024Q1", "2024Q2"]
    assert out["monthly_recurring_revenue"].tolist() == [100.0, 130.0]  # not 280 summed
    exp = ev(family, "expansion_revenue", data, grain="quarter")
    assert exp["expansion_revenue"][1] == 30.0  # quarter end vs previous quarter end
    churn = ev(family, "churned_revenue", data, grain="quarter")
    assert churn["churned_revenue"][1] == 0.0  # c came and went within Q2


def test_quarter_grain_sees_payments_between_quarter_ends(family):
    # b pays in February only (never at a quarter end) and comes back in Q3: it is a
    # returning customer, so its Q3 revenue is reactivation, not new revenue.
    data = rows(
        ("a", "2024-01", 100),
        ("b", "2024-02", 40),
        ("a", "2024-03", 100),
        ("a", "2024-06", 100),
        ("b", "2024-09", 60),
        ("a", "2024-09", 100),
        ("c", "2024-09", 30),
    )
    ids = ["new_revenue", "reactivation_revenue"]
    kw = {"period": "month", "entity": "customer", "columns": {"revenue": "mrr"}}
    out = family.evaluate_many(ids, data, grain="quarter", **kw)
    q3 = out.set_index("month").loc["2024Q3"]
    assert (q3["new_revenue"], q3["reactivation_revenue"]) == (30.0, 60.0)
    q1 = out.set_index("month").loc["2024Q1"]
    assert np.isnan(q1["new_revenue"]) and np.isnan(q1["reactivation_revenue"])
    monthly = family.evaluate_many(ids, data, **kw).set_index("month")
    assert monthly.loc["2024-09", "reactivation_revenue"] == 160.0  # a and b both return


def test_quarter_to_date_when_data_ends_mid_quarter(family):
    data = rows(("a", "2024-03", 100), ("a", "2024-04", 120), ("a", "2024-05", 150))
    out = ev(family, "monthly_recurring_revenue", data, grain="quarter")
    assert out["monthly_recurring_revenue"].tolist() == [100.0, 150.0]


def test_flows_are_summed_when_the_grain_coarsens(library):
    import kpi_registry

    bookings = {"name": "booked_amount", "description": "b", "unit": "currency", "time": "flow"}
    library.add("total_bookings", "sum(booked_amount)", datapoints=[bookings])
    reg = kpi_registry.load(library.root, include_bundled=False)
    data = pd.DataFrame({"month": ["2024-01", "2024-02", "2024-04"], "booked_amount": [1, 2, 4]})
    out = reg.evaluate("total_bookings", data, period="month", grain="quarter")
    assert out["total_bookings"].tolist() == [3.0, 4.0]


@pytest.mark.parametrize("how", ["sum", "mean"])
def test_a_datapoint_missing_in_every_row_of_shared_cells_is_missing(library, how):
    """Several rows per entity-month, none with a value: the cell has no number (numpy's
    bincount of nothing is an integer array, which once refused the missing marker)."""
    import kpi_registry

    units = {"name": "units", "description": "u", "unit": "count", "time": "flow"}
    units.update(rows=how, missing="null")
    library.add("total_units", "sum(units)", datapoints=[units], unit="count")
    reg = kpi_registry.load(library.root, include_bundled=False)
    data = pd.DataFrame(
        {
            "customer": ["a", "a", "b", "b", "b"],
            "month": ["2024-01", "2024-01", "2024-02", "2024-02", "2024-03"],
            "units": np.nan,
        }
    )
    for grain in (None, "quarter"):
        options = {"period": "month", "entity": "customer", "grain": grain}
        out = reg.evaluate("total_units", data, **options)
        # a repeated missing row is one missing row
        pd.testing.assert_frame_equal(
            out, reg.evaluate("total_units", data.drop_duplicates(), **options)
        )


def test_segments_keep_churned_customers_in_their_last_segment(family):
    data = pd.DataFrame(
        {
            "customer": ["a", "b", "a", "b", "a"],
            "month": ["2024-01", "2024-01", "2024-02", "2024-02", "2024-03"],
            "seg": ["smb", "ent", "ent", "ent", "ent"],
            "mrr": [10, 100, 20, 100, 20],
        }
    )
    out = ev(family, "churned_revenue", data, by="seg")
    march = out[out["month"] == "2024-03"].set_index("seg")["churned_revenue"]
    assert march.to_dict() == {"ent": 100.0}  # b vanished; stays in ent
    feb = out[out["month"] == "2024-02"].set_index("seg")
    # a moved smb -> ent in February: its movement is reported in its current segment
    assert "smb" not in feb.index
    assert list(out.columns) == ["month", "seg", "churned_revenue"]


def test_several_rows_per_customer_month_are_combined(family):
    data = rows(("a", "2024-01", 60), ("a", "2024-01", 40), ("a", "2024-02", 150))
    out = ev(family, "expansion_revenue", data)
    assert out["expansion_revenue"][1] == 50.0


def test_division_by_zero_is_missing_and_counted(family):
    data = rows(("a", "2024-01", 100), ("a", "2024-02", 100), ("a", "2024-03", 100))
    out = ev(family, "quick_ratio", data)
    assert out["quick_ratio"].isna().all()
    assert not np.isinf(out["quick_ratio"]).any()
    assert out.attrs["undefined"] == {"quick_ratio": 3}


def test_scalar_inputs_at_any_level(family):
    got = family.evaluate(
        "expansion_revenue_rate", {"expansion_revenue": 22000, "starting_revenue": 100000}
    )
    assert got == 22.0
    nrr = family.evaluate(
        "net_revenue_retention",
        {
            "starting_revenue": 1000,
            "expansion_revenue": 150,
            "contraction_revenue": 30,
            "churned_revenue": 20,
        },
    )
    assert nrr == pytest.approx(110.0)


def test_scalar_input_missing_a_datapoint_is_named(family):
    with pytest.raises(DataError, match="no column for datapoint 'revenue'"):
        family.evaluate("expansion_revenue_rate", {"expansion_revenue": 22000})


def test_aggregated_frame_supplies_kpis_directly(family):
    frame = pd.DataFrame(
        {
            "month": ["2024-01", "2024-02"],
            "expansion_revenue": [10, 30],
            "starting_revenue": [100, 200],
        }
    )
    out = family.evaluate("expansion_revenue_rate", frame, period="month")
    assert out["expansion_revenue_rate"].tolist() == [10.0, 15.0]


def test_first_period_is_present_with_nan(family):
    data = rows(("a", "2024-01", 100), ("a", "2024-02", 150), ("a", "2024-03", 300))
    out = ev(family, "expansion_revenue_growth_rate", data)
    assert len(out) == 3
    assert out["expansion_revenue_growth_rate"].isna().tolist() == [True, True, False]
    assert out["expansion_revenue_growth_rate"][2] == pytest.approx(200.0)


@pytest.mark.parametrize("kind", ["text", "timestamp", "period", "month_end"])
def test_period_types_give_the_same_numbers(family, kind):
    data = rows(("a", "2024-01", 100), ("b", "2024-01", 50), ("a", "2024-02", 120))
    if kind == "timestamp":
        data["month"] = pd.to_datetime(data["month"])
    elif kind == "period":
        data["month"] = pd.PeriodIndex(data["month"], freq="M")
    elif kind == "month_end":
        data["month"] = pd.to_datetime(data["month"]) + pd.offsets.MonthEnd(0)
    out = ev(family, "net_revenue_retention", data)
    assert out["net_revenue_retention"][1] == pytest.approx((150 + 20 - 50) / 150 * 100)
    if kind == "period":
        assert out["month"][0] == pd.Period("2024-01", "M")
    if kind == "timestamp":
        assert out["month"][0] == pd.Timestamp("2024-01-01")


def test_missing_column_names_the_datapoint_and_lists_columns(family):
    with pytest.raises(DataError) as info:
        family.evaluate(
            "expansion_revenue", rows(("a", "2024-01", 1)), period="month", entity="customer"
        )
    assert "datapoint 'revenue'" in str(info.value)
    assert "'customer', 'month', 'mrr'" in str(info.value)


def test_non_numeric_values_name_column_and_row(family):
    data = rows(("a", "2024-01", 1), ("a", "2024-02", "12,5"))
    with pytest.raises(DataError, match="column 'mrr' must be numeric; row 1 has '12,5'"):
        ev(family, "expansion_revenue", data)


def test_unparsable_period(family):
    data = rows(("a", "2024-01", 1), ("a", "Febtember", 2))
    with pytest.raises(DataError, match="unparsable period 'Febtember'"):
        ev(family, "expansion_revenue", data)


def test_empty_data_gives_empty_result(family):
    out = ev(family, "net_revenue_retention", rows())
    assert out.empty and list(out.columns) == ["month", "net_revenue_retention"]


def test_unknown_kpi_suggests(family):
    with pytest.raises(UnknownKPIError, match="did you mean 'expansion_revenue'"):
        family.evaluate("expansion_revenu", {})


def test_unknown_grain_and_column(family):
    data = rows(("a", "2024-01", 1))
    with pytest.raises(DataError, match="unknown grain 'fortnight'"):
        ev(family, "expansion_revenue", data, grain="fortnight")
    with pytest.raises(DataError, match="entity column 'client' not found"):
        ev(family, "expansion_revenue", data, entity="client")


def test_previous_on_datapoints_needs_an_entity(family):
    with pytest.raises(DataError, match="pass entity="):
        family.evaluate(
            "expansion_revenue",
            rows(("a", "2024-01", 1)),
            period="month",
            columns={"revenue": "mrr"},
        )


PERIOD_HINT = "pass period='your_period_column' (kpi eval: --period COL)"


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_previous_without_a_period_column_is_an_error(family, library, engine):
    """Without a period all rows are one period: previous() was missing everywhere and
    ever_before() false, so these KPIs silently gave NaN (or 0)."""
    import kpi_registry

    data = rows(("a", "2024-01", 100), ("a", "2024-02", 80), ("b", "2024-02", 5))
    kw = {"entity": "customer", "columns": {"revenue": "mrr"}, "engine": engine}
    message = "KPI 'churned_revenue' uses previous(), which compares each period with the "
    with pytest.raises(DataError) as err:
        family.evaluate("churned_revenue", data, **kw)
    assert str(err.value) == message + "one before: " + PERIOD_HINT
    with pytest.raises(DataError, match=r"^KPI 'quick_ratio' uses previous\(\) \(in '\w+'\)"):
        family.evaluate("quick_ratio", data, **kw)  # through the movements it divides
    with pytest.raises(DataError, match=r"^KPI 'expansion_revenue_growth_rate' uses previous"):
        family.evaluate("expansion_revenue_growth_rate", data, **kw)  # previous() of a KPI
    library.add("ever_paid", "count(revenue, ever_before(revenue > 0))")
    reg = kpi_registry.load(library.root, include_bundled=False)
    with pytest.raises(DataError) as err:
        reg.evaluate("ever_paid", data, **kw)
    assert str(err.value) == (
        "KPI 'ever_paid' uses ever_before(), which looks back over earlier periods: " + PERIOD_HINT
    )
    # with a period they evaluate; a missing datapoint is still named first
    assert family.evaluate("churned_revenue", data, period="month", **kw).shape == (2, 2)
    with pytest.raises(DataError, match="no column for datapoint 'revenue'"):
        family.evaluate("churned_revenue", data, entity="customer", engine=engine)


def test_previous_from_a_mapping_of_numbers(family):
    """Numbers given as a mapping have no periods: a formula that reaches previous() says so;
    one whose previous() sits in KPIs the mapping supplies evaluates as before."""
    with pytest.raises(DataError) as err:
        family.evaluate("expansion_revenue_growth_rate", {"expansion_revenue": 10.0})
    assert str(err.value) == (
        "KPI 'expansion_revenue_growth_rate' uses previous(), which compares each period with "
        "the one before; numbers given as a mapping have no periods: pass rows as a DataFrame "
        "with period='your_period_column'"
    )
    with pytest.raises(DataError, match=r"'quick_ratio' uses previous\(\) \(in '\w+_revenue'\)"):
        family.evaluate("quick_ratio", {"revenue": 10.0})
    supplied = {"new_revenue": 30, "expansion_revenue": 20, "reactivation_revenue": 0}
    assert (
        family.evaluate("quick_ratio", {**supplied, "contraction_revenue": 5, "churned_revenue": 5})
        == 5.0
    )


def test_bundled_worked_examples_from_numbers_still_evaluate():
    """Scalar worked examples (and the site's calculator defaults) of KPIs whose formulas reach
    previous() give those KPIs as inputs: they never evaluate previous() on rows."""
    import kpi_registry
    from kpi_registry.formula import Call
    from kpi_registry.rules import Library, WorkedExamplesHold

    reg = kpi_registry.load()

    def timed(kpi_id: str, seen: set[str]) -> bool:
        node = reg.kpis[kpi_id].expression
        for n in node.walk() if node is not None else []:
            if isinstance(n, Call) and n.func in ("previous", "ever_before"):
                return True
            name = getattr(n, "name", None)
            if name in reg.kpis and name not in seen and timed(name, seen | {name}):
                return True
        return False

    checked = []
    for kpi_id, kpi in reg.kpis.items():
        scalar = [e for e in kpi.examples if isinstance(e.data, dict)]
        if scalar and timed(kpi_id, {kpi_id}):
            found = WorkedExamplesHold().check(kpi, Library(reg.kpis))
            assert not found, found
            checked.append(kpi_id)
    assert {"net_revenue_retention", "customer_lifetime_value"} <= set(checked)


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_request_columns_that_clash_are_errors(family, engine):
    """As kpi eval refuses --by twice, --by or --entity naming the period column (a repeated
    by column was an internal error, a by column naming the period a wrong frame)."""
    data = rows(("a", "2024-01", 1)).assign(segment="smb")
    cases = [
        (
            {"by": ["segment", "segment"]},
            "by column 'segment' is given twice; give each column once",
        ),
        ({"by": "month"}, "by column 'month' is the period column; results are per period"),
        (
            {"entity": "month"},
            "entity column 'month' is the period column; the entity column says whose row it "
            "is (customer, account...)",
        ),
    ]
    for extra, message in cases:
        with pytest.raises(DataError) as err:
            ev(family, "monthly_recurring_revenue", data, engine=engine, **extra)
        assert str(err.value) == message
    with pytest.raises(DataError, match="'segment' is given twice"):
        family.to_sql("monthly_recurring_revenue", "t", period="month", by=["segment"] * 2)


def test_kpi_eval_without_period_names_the_option(capsys, tmp_path):
    from kpi_registry import cli

    path = tmp_path / "mrr.csv"
    path.write_text("customer,month,mrr\na,2024-01,100\na,2024-02,120\n")
    argv = ["eval", "churned_revenue", "--data", str(path), "--entity", "customer"]
    for engine in ("pandas", "duckdb"):
        code = cli.main([*argv, "--column", "revenue=mrr", "--engine", engine])
        out, err = capsys.readouterr()
        assert code == 1 and out == ""
        assert err == (
            f"error: {path}: KPI 'churned_revenue' uses previous(), which compares each period "
            "with the one before: give the period column with --period COL\n"
        )  # the CLI's words for the API's PERIOD_HINT


def test_evaluate_many_computes_shared_work_once(family, monkeypatch):
    from kpi_registry import evaluation

    calls = []
    original = evaluation._Engine.datapoint

    def counting(self, name, base=False):
        calls.append(name)
        return original(self, name, base)

    monkeypatch.setattr(evaluation._Engine, "datapoint", counting)
    data = rows(("a", "2024-01", 100), ("a", "2024-02", 150))
    out = family.evaluate_many(
        list(FAMILY), data, period="month", entity="customer", columns={"revenue": "mrr"}
    )
    assert calls == ["revenue"]
    single = ev(family, "quick_ratio", data)
    pd.testing.assert_series_equal(out["quick_ratio"], single["quick_ratio"])


# -- against a reference written the slow, obvious way ----------------------------------------
def reference(data: pd.DataFrame, freq: str = "M", history: pd.DataFrame | None = None):
    """The formula issue's definitions, computed customer by customer in plain Python.

    ``history`` (monthly rows) decides who paid before a period when ``data`` holds only
    quarter-end snapshots: paying in any earlier month makes a customer a returning one.
    """
    months = pd.period_range(data["month"].min(), data["month"].max(), freq=freq)
    r = {}
    for row in data.itertuples():
        key = (row.customer, pd.Period(row.month, freq))
        r[key] = r.get(key, 0.0) + row.mrr
    paid_months: dict[str, list[pd.Period]] = {}
    for row in (data if history is None else history).itertuples():
        if row.mrr > 0:
            paid_months.setdefault(row.customer, []).append(pd.Period(row.month, "M"))
    customers = sorted(data["customer"].unique())
    out = []
    for i, m in enumerate(months):
        rec = {"month": str(m)}
        if i == 0:
            rec.update({k: np.nan for k in MOVEMENTS})
        else:
            s = e = c = ch = n = re = 0.0
            for cust in customers:
                a, b = r.get((cust, months[i - 1]), 0.0), r.get((cust, m), 0.0)
                start = m.asfreq("M", "start") if freq != "M" else m
                earlier = any(p < start for p in paid_months.get(cust, []))
                s += a
                if a > 0 and b > a:
                    e += b - a
                if a > 0 and 0 < b < a:
                    c += a - b
                if a > 0 and b == 0:
                    ch += a
                if a == 0 and b > 0:
                    if earlier:
                        re += b
                    else:
                        n += b
            rec.update(dict(zip(MOVEMENTS, [s, e, c, ch, n, re])))
        out.append(rec)
    frame = pd.DataFrame(out)
    frame["net_revenue_retention"] = (
        (
            frame.starting_revenue
            + frame.expansion_revenue
            - frame.contraction_revenue
            - frame.churned_revenue
        )
        / frame.starting_revenue
        * 100
    )
    frame["quick_ratio"] = (
        frame.new_revenue + frame.expansion_revenue + frame.reactivation_revenue
    ) / (frame.contraction_revenue + frame.churned_revenue)
    return frame.replace([np.inf, -np.inf], np.nan)


def messy(seed: int) -> pd.DataFrame:
    """Billing-like data: churn without zero rows, comebacks, duplicates, a silent month."""
    rng = np.random.default_rng(seed)
    records = []
    for cust in range(40):
        mrr = float(rng.integers(1, 20) * 50)
        active = rng.random() < 0.7
        for m in range(12):
            if active:
                roll = rng.random()
                if roll < 0.1:
                    mrr *= 1.5
                elif roll < 0.17:
                    mrr *= 0.6
                elif roll < 0.25:
                    active = False
                    if rng.random() < 0.3:
                        records.append((f"c{cust}", m, 0.0))  # some exports keep a zero row
                    continue
                if rng.random() < 0.15:  # split across two invoice lines
                    records.append((f"c{cust}", m, round(mrr * 0.25, 2)))
                    records.append((f"c{cust}", m, round(mrr * 0.75, 2)))
                else:
                    records.append((f"c{cust}", m, round(mrr, 2)))
            elif rng.random() < 0.15:
                active = True
    frame = pd.DataFrame(records, columns=["customer", "m", "mrr"])
    frame = frame[frame["m"] != 7]  # a month nobody appears in
    frame["month"] = [str(pd.Period("2023-01", "M") + int(m)) for m in frame["m"]]
    return frame.drop(columns="m").sample(frac=1, random_state=seed).reset_index(drop=True)


@pytest.mark.parametrize("seed", range(6))
def test_engine_matches_the_reference_on_messy_data(family, seed):
    data = messy(seed)
    ids = [*MOVEMENTS, "net_revenue_retention", "quick_ratio"]
    got = family.evaluate_many(
        ids, data, period="month", entity="customer", columns={"revenue": "mrr"}
    )
    want = reference(data)
    pd.testing.assert_frame_equal(
        got[["month", *ids]], want[["month", *ids]], check_dtype=False, rtol=1e-9
    )
    assert any("no rows at all" in w for w in got.attrs["warnings"])


@pytest.mark.parametrize("seed", range(3))
def test_quarters_match_the_reference_on_quarter_end_snapshots(family, seed):
    """At quarter grain the engine must equal the reference run on quarter-end rows only."""
    data = messy(seed)
    last_month = max(pd.Period(m, "M") for m in data["month"])
    quarter_end = {
        m: min(pd.Period(m, "M").asfreq("Q").asfreq("M", "end"), last_month)
        for m in data["month"].unique()
    }
    snapshot = data[[pd.Period(m, "M") == quarter_end[m] for m in data["month"]]]
    snapshot = snapshot.assign(
        month=[str(pd.Period(m, "M").asfreq("Q")) for m in snapshot["month"]]
    )
    ids = [*MOVEMENTS, "net_revenue_retention", "quick_ratio"]
    got = family.evaluate_many(
        ids, data, period="month", entity="customer", grain="quarter", columns={"revenue": "mrr"}
    )
    want = reference(snapshot, freq="Q", history=data)
    pd.testing.assert_frame_equal(
        got[["month", *ids]], want[["month", *ids]], check_dtype=False, rtol=1e-9
    )


def test_subscriptions_become_customer_months(family):
    subs = pd.DataFrame(
        {
            "customer": ["a", "a", "b", "c"],
            "start": ["2024-01-15", "2024-04-15", "2024-02-01", "2024-03-01"],
            "end": ["2024-04-15", None, "2024-03-01", "2024-03-20"],
            "amount": [100, 150, 50, 70],
        }
    )
    months = subscriptions_to_months(
        subs, entity="customer", start="start", end="end", amount="amount", until="2024-05"
    )
    assert [(r.customer, str(r.month), r.revenue) for r in months.itertuples()] == [
        ("a", "2024-01", 100.0),
        ("a", "2024-02", 100.0),
        ("a", "2024-03", 100.0),
        ("a", "2024-04", 150.0),
        ("a", "2024-05", 150.0),
        ("b", "2024-02", 50.0),
    ]
    out = family.evaluate("churned_revenue", months, period="month", entity="customer")
    assert out.set_index("month")["churned_revenue"][pd.Period("2024-03", "M")] == 50.0


def test_subscription_errors_name_the_column():
    subs = pd.DataFrame({"c": ["a"], "s": ["not a date"], "e": [None], "amt": [1]})
    with pytest.raises(DataError, match="column 's' has a value that is not a date"):
        subscriptions_to_months(subs, entity="c", start="s", end="e", amount="amt")


def test_every_aggregate_with_filters_and_groups(library):
    import kpi_registry

    score = {"name": "score", "description": "s", "unit": "score"}
    for kpi_id, expression in {
        "n": "count(score)",
        "promoters": "count(score, score >= 9)",
        "avg": "mean(score, score > 0)",
        "mid": "median(score)",
        "lo": "min(score)",
        "hi": "max(score, score < 10)",
        "kinds": "count_distinct(score)",
        "nps": "(count(score, score >= 9) - count(score, score <= 6)) / count(score) * 100",
    }.items():
        library.add(kpi_id, expression, datapoints=[score], unit="score")
    reg = kpi_registry.load(library.root, include_bundled=False)
    data = pd.DataFrame(
        {
            "wave": ["2024-01"] * 6 + ["2024-02"] * 3,
            "team": ["x", "x", "x", "y", "y", "y", "x", "x", "y"],
            "score": [10, 9, 3, 7, None, 10, 6, 6, 0],
        }
    )
    ids = ["n", "promoters", "avg", "mid", "lo", "hi", "kinds", "nps"]
    out = reg.evaluate_many(ids, data, period="wave", by="team")
    got = {(r.wave, r.team): [getattr(r, i) for i in ids] for r in out.itertuples()}
    nan = float("nan")
    want = {
        ("2024-01", "x"): [3, 2, 22 / 3, 9, 3, 9, 3, 100 / 3],
        ("2024-01", "y"): [2, 1, 8.5, 8.5, 7, 7, 2, 50.0],
        ("2024-02", "x"): [2, 0, 6, 6, 6, 6, 1, -100.0],
        ("2024-02", "y"): [1, 0, nan, 0, 0, 0, 1, -100.0],
    }
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], equal_nan=True, err_msg=str(key))


def test_empty_data_with_entity_and_groups(family):
    empty = rows().assign(seg=[])
    out = ev(family, "churned_revenue", empty, by="seg")
    assert out.empty and list(out.columns) == ["month", "seg", "churned_revenue"]


def test_date_objects_are_dates_not_text(family):
    import datetime

    data = rows(("a", "2024-01", 100), ("b", "2024-01", 50), ("a", "2024-02", 120))
    data["month"] = [datetime.date(2024, int(m[5:]), 1) for m in data["month"]]
    out = ev(family, "churned_revenue", data)
    assert out["churned_revenue"].tolist()[1] == 50.0
    assert len(out) == 2  # monthly, not one row per day


@pytest.mark.parametrize(
    "grain, months",
    [
        ("day", 1 / 30.436875),
        ("week", 7 / 30.436875),
        ("month", 1.0),
        ("quarter", 3.0),
        ("year", 12.0),
    ],
)
def test_months_in_period_follows_the_grain(library, grain, months):
    import kpi_registry

    library.add("per_period", "sum(revenue) * months_in_period()")
    reg = kpi_registry.load(library.root, include_bundled=False)
    days = pd.date_range("2024-01-01", "2024-12-31", freq="D")
    data = pd.DataFrame({"day": days, "revenue": 1.0})
    out = reg.evaluate("per_period", data, period="day", grain=grain)
    assert out["per_period"].tolist()[:1] == pytest.approx([months])  # a stock of 1
    assert reg.evaluate("per_period", {"revenue": 5.0}) == 5.0  # no period: a month


def test_lifetime_and_ltv_read_in_months_at_quarter_grain():
    """Steady churn: quarterly figures agree with monthly ones instead of being a third."""
    import kpi_registry

    reg = kpi_registry.load()
    records = []
    for c in range(1000):  # 10 customers leave each month, none join
        for m in range(12):
            if c >= 10 * (m + 1) or m == 0:
                records.append((f"c{c}", str(pd.Period("2024-01", "M") + m), 100.0))
    data = pd.DataFrame(records, columns=["customer", "month", "mrr"])
    kw = {"period": "month", "entity": "customer", "columns": {"revenue": "mrr"}}
    monthly = reg.evaluate("average_customer_lifetime", data, **kw)
    quarterly = reg.evaluate("average_customer_lifetime", data, grain="quarter", **kw)
    churn_q = reg.evaluate("customer_churn_rate", data, grain="quarter", **kw)
    q2 = quarterly.set_index("month").loc["2024Q2", "average_customer_lifetime"]
    assert q2 == pytest.approx(3 / (churn_q.set_index("month").loc["2024Q2"].iloc[0] / 100))
    m5 = monthly.set_index("month").loc["2024-05", "average_customer_lifetime"]
    assert abs(q2 - m5) / m5 < 0.05  # months either way, not quarters


def test_a_kpi_supplied_as_a_column_is_read_once_per_period_and_group(family):
    """A summary table that repeats a KPI's value on several rows (a join fanned it out), has
    gaps, or comes in another order gives the same numbers; two different values in one
    period and group are an error naming both."""
    summary = pd.DataFrame(
        {
            "month": ["2024-01", "2024-01", "2024-02", "2024-02", "2024-03", "2024-03"],
            "segment": ["smb", "smb", "smb", "ent", "smb", "ent"],
            "starting_revenue": [100.0, 100.0, 120.0, 400.0, None, 380.0],
            "expansion_revenue": [10.0, None, 5.0, 40.0, 0.0, 20.0],
            "contraction_revenue": [0.0, 0.0, 5.0, 0.0, 0.0, 10.0],
            "churned_revenue": [5.0, 5.0, 0.0, 20.0, 0.0, 0.0],
        }
    )
    kw = {"period": "month", "by": ["segment"]}
    out = family.evaluate("net_revenue_retention", summary, **kw)
    got = {(r.month, r.segment): r.net_revenue_retention for r in out.itertuples()}
    assert got[("2024-01", "smb")] == pytest.approx(100 * 105 / 100)
    assert got[("2024-02", "ent")] == pytest.approx(100 * 420 / 400)
    assert np.isnan(got[("2024-03", "smb")])  # its starting revenue is missing
    shuffled = family.evaluate("net_revenue_retention", summary.iloc[::-1], **kw)
    pd.testing.assert_frame_equal(shuffled, out)
    clash = summary.copy()
    clash.loc[1, "churned_revenue"] = 7.0
    with pytest.raises(DataError) as err:
        family.evaluate("net_revenue_retention", clash, **kw)
    assert str(err.value) == (
        "column 'churned_revenue' supplies KPI 'churned_revenue' but has different values "
        "within one period and group (5.0 and 7.0); give one value per period and group"
    )
