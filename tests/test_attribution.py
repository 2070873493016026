"""Driver trees and the exact attribution of a KPI's change (Registry.drivers / explain)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import REVENUE

import kpi_registry
from kpi_registry import Registry
from kpi_registry.attribution import ExplainError, explain, reading, shapley, shapley_weight
from kpi_registry.errors import GrainError
from kpi_registry.evaluation import Rows
from kpi_registry.formula import Name
from kpi_registry.request import Request

FLAGS = {"is_won", "is_lost", "converted_to_paid", "pql_converted"}


@pytest.fixture(scope="module")
def reg() -> Registry:
    return kpi_registry.load()


def messy_data(reg: Registry, seed: int = 3, customers: int = 45, months: int = 12):
    """Every bundled datapoint as a column of a customer-month export that is messy on
    purpose: customers vanish and come back, some months have two rows for one customer, and
    one segment exists only in the second half of the year (empty before)."""
    rng = np.random.default_rng(seed)
    specs = {d["name"]: d for k in reg for d in k.data.get("datapoints", []) if isinstance(d, dict)}
    names = sorted(set(specs) - {"revenue"})
    rows = []
    for c in range(customers):
        segment = ["smb", "mid", "ent"][c % 3]
        mrr = float(rng.integers(2, 40) * 25)
        alive = True
        for m in range(months):
            if c % 9 == 0 and m < 6:
                continue  # the "late" segment: empty in the first half
            roll = rng.random()
            if alive and roll < 0.12:
                alive = False  # vanishes from the export: churned
                continue
            if not alive:
                if roll < 0.75:
                    continue
                alive = True  # comes back: reactivation
            if roll > 0.8:
                mrr = round(mrr * 1.25, 2)
            elif roll < 0.25:
                mrr = round(mrr * 0.85, 2)
            extra = {n: valid_value(rng, specs[n]) for n in names}
            for n, spec in specs.items():  # flags that exclude each other: one per customer
                for other in spec.get("excludes", []):
                    if n in extra and other in extra:
                        extra[other if c % 2 else n] = 0.0
            seg = "late" if c % 9 == 0 else segment
            parts = [mrr] if rng.random() > 0.2 else [round(mrr / 3, 2), round(mrr - mrr / 3, 2)]
            for i, part in enumerate(parts):
                row = {"customer": f"c{c:03d}", "month": f"2024-{m + 1:02d}", "segment": seg}
                row.update(extra if i == 0 else dict.fromkeys(names, float("nan")))
                row["revenue"] = part
                rows.append(row)
    frame = pd.DataFrame(rows)
    for n in names:  # a flag's second row repeats it (max), so it stays a flag
        if n in FLAGS:
            frame[n] = frame.groupby(["customer", "month"])[n].transform("max")
    return frame


def valid_value(rng, spec: dict) -> float:
    """A value inside the datapoint's declared valid range (a 0/1 range is a flag)."""
    valid = spec.get("valid") or {}
    lo, hi = valid.get("min", 0.0), valid.get("max")
    if spec["name"] in FLAGS or (lo == 0 and hi == 1 and spec.get("rows") == "max"):
        return float(rng.integers(0, 2))
    if hi is None:
        hi = lo + 20.0
    return round(float(lo + rng.random() * (hi - lo)), 2)


@pytest.fixture(scope="module")
def data(reg):
    return messy_data(reg)


def periodic(reg: Registry) -> list[str]:
    """Every bundled KPI whose formula reads data per period."""
    return [k.id for k in reg if k.expression is not None and reg.drivers(k.id).children]


def check_adds_up(frame: pd.DataFrame, by: list[str]) -> None:
    change = frame.attrs["change"]
    scale = max(1.0, abs(frame.attrs["start_value"]), abs(frame.attrs["end_value"]))
    top = frame[frame["depth"] == 1]["contribution"].sum()
    assert math.isclose(top, change, rel_tol=1e-9, abs_tol=1e-9 * scale), (top, change)
    # every parent's contribution is the sum of its children's, group by group
    path: list[str] = []
    own: dict[tuple, float] = {}
    below: dict[tuple, float] = {}
    for row in frame.itertuples(index=False):
        del path[row.depth - 1 :]
        path.append(row.driver)
        group = getattr(row, by[0]) if by else None
        group = None if pd.isna(group) else group
        own[(*path, group)] = row.contribution
        if row.depth > 1:
            parent = (*path[:-1], group)
            below[parent] = below.get(parent, 0.0) + row.contribution
    for key, total in below.items():
        assert math.isclose(total, own[key], rel_tol=1e-9, abs_tol=1e-6), (key, total, own[key])
    if by and "segments" in frame.attrs:
        seg = frame.attrs["segments"]
        assert math.isclose(
            sum(s["contribution"] for s in seg)
            + frame[(frame["depth"] == 1) & frame[by[0]].isna()]["contribution"].sum(),
            change,
            rel_tol=1e-9,
            abs_tol=1e-9 * scale,
        )
        for s in seg:
            if "rate_effect" in s:
                assert math.isclose(
                    s["rate_effect"] + s["mix_effect"], s["contribution"], abs_tol=1e-9 * scale
                )


def last_defined_pair(values: pd.DataFrame, kpi_id: str, period: str):
    defined = values[values[kpi_id].notna()][period].tolist()
    return (defined[-2], defined[-1]) if len(defined) >= 2 else None


class _Recorded(Exception):
    """Raised by BatchedDuckDB while it records: the explain call stops there."""


class BatchedDuckDB:
    """Registry.explain(engine="duckdb") for many KPIs with one DuckDB query per request
    shape. explain runs its engine passes through ``kpi_registry.sql.evaluate_duckdb``; in
    place of it, a first round records what each call asks for (its KPIs and the leaves it
    adds, which are shared between KPIs by their formula), then one real query per shape
    computes all of it, and a second round serves each call its columns. The attribution
    itself is explain's, unchanged; only the queries are shared."""

    def __init__(self, real):
        self.real = real
        self.recording = True
        self.requests: dict[str, Any] = {}
        self.kpis: dict[str, dict[str, Any]] = {}  # shape -> batch id -> KPI
        self.ids: dict[str, dict[Any, str]] = {}  # shape -> leaf's content -> batch id
        self.frames: dict[str, pd.DataFrame] = {}
        self.library: dict[str, dict[str, Any]] = {}  # shape -> the library's own KPIs
        self.also_by: list[str] = []  # explain's second pass (by) asks for the same columns

    def __call__(self, kpis, ids, data, request):
        shapes = [request]
        if self.recording and self.also_by:
            shapes.append(dataclasses.replace(request, by=list(self.also_by)))
        for shape in shapes:
            named = self._names(repr(shape), shape, kpis, ids)  # the last: the call's own
        if self.recording:
            raise _Recorded
        frame = self.frames[repr(request)]
        batch_ids = set(self.kpis[repr(request)])
        keep = [c for c in frame.columns if c not in batch_ids]
        out = frame[keep + [named[k] for k in ids]]  # one block: a copy, not a view
        out.columns = keep + list(ids)
        out.attrs = dict(frame.attrs)
        return out

    def _names(self, shape, request, kpis, ids) -> dict[str, str]:
        """Each asked-for id's column in the shape's batch query, added while recording."""
        if self.recording:
            self.requests.setdefault(shape, request)
            self.library.setdefault(
                shape, {k: v for k, v in kpis.items() if not k.startswith("__explain_")}
            )
        batch, by_content = self.kpis.setdefault(shape, {}), self.ids.setdefault(shape, {})
        named = {}
        for kpi_id in ids:
            kpi = kpis[kpi_id]
            if not kpi_id.startswith("__explain_"):
                named[kpi_id] = kpi_id
                batch.setdefault(kpi_id, kpi)
                continue
            # a leaf explain added: the same formula on the same datapoints is one column
            used = sorted({n.name for n in kpi.expression.walk() if isinstance(n, Name)})
            content = (kpi.expression, tuple(repr(kpi.datapoints.get(u)) for u in used))
            if content not in by_content:
                by_content[content] = f"__batch_{len(by_content)}"
                batch[by_content[content]] = dataclasses.replace(kpi, id=by_content[content])
            named[kpi_id] = by_content[content]
        return named

    def run(self, data) -> int:
        """One query per shape for everything recorded; returns the number of queries."""
        for shape, batch in self.kpis.items():
            library = {**self.library[shape], **batch}
            self.frames[shape] = self.real(library, list(batch), data, self.requests[shape])
        self.recording = False
        return len(self.frames)


def _explain_every_kpi(reg, data, engine, grain, by) -> int:
    """Explain the last change of every bundled KPI that has one; returns how many."""
    ids = periodic(reg)
    while True:  # one pass for all; a KPI not defined at this grain is left out
        try:
            values = reg.evaluate_many(ids, data, period="month", entity="customer", grain=grain)
            break
        except GrainError as e:  # the engine says why (tested elsewhere)
            assert e.asked_for[0] in ids
            ids = [k for k in ids if k != e.asked_for[0]]
    pairs = {k: last_defined_pair(values, k, "month") for k in ids}
    pairs = {k: p for k, p in pairs.items() if p is not None}

    def explain(kpi_id):
        return reg.explain(
            kpi_id,
            data,
            start=pairs[kpi_id][0],
            end=pairs[kpi_id][1],
            period="month",
            entity="customer",
            by=by,
            grain=grain,
            engine=engine,
        )

    frames = {}
    if engine == "duckdb":
        import kpi_registry.sql

        batched = BatchedDuckDB(kpi_registry.sql.evaluate_duckdb)
        batched.also_by = [by] if by else []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kpi_registry.sql, "evaluate_duckdb", batched, raising=False)
            for kpi_id in pairs:
                with pytest.raises(_Recorded):
                    explain(kpi_id)
            assert batched.run(data) == (2 if by else 1)
            frames = {kpi_id: explain(kpi_id) for kpi_id in pairs}
    else:
        frames = {kpi_id: explain(kpi_id) for kpi_id in pairs}
    for kpi_id, frame in frames.items():
        defined = values[kpi_id].dropna()
        assert list(frame.columns[:4]) == ["driver", "parent", "depth", "kind"]
        assert {"start_value", "end_value", "contribution"} <= set(frame.columns)
        assert frame.attrs["start_value"] == pytest.approx(defined.iloc[-2])
        assert frame.attrs["end_value"] == pytest.approx(defined.iloc[-1])
        assert not frame["contribution"].isna().any(), kpi_id
        check_adds_up(frame, [by] if by else [])
    return len(frames)


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
@pytest.mark.parametrize("grain", [None, "quarter"])
@pytest.mark.parametrize("by", [None, "segment"])
def test_contributions_add_up_for_every_bundled_kpi(reg, data, engine, grain, by):
    """Every bundled KPI with a period, in both engines: DuckDB runs one query per request
    shape for all of them (BatchedDuckDB), so it covers as many KPIs as pandas."""
    assert _explain_every_kpi(reg, data, engine, grain, by) >= 150


def test_duckdb_gives_the_same_attribution(reg, data):
    for kpi_id in ["net_revenue_retention", "quick_ratio", "customer_lifetime_value"]:
        args = dict(start="2024-06", end="2024-09", period="month", entity="customer")
        a = reg.explain(kpi_id, data, by="segment", **args)
        b = reg.explain(kpi_id, data, by="segment", engine="duckdb", **args)
        assert list(a["driver"]) == list(b["driver"])
        np.testing.assert_allclose(a["contribution"], b["contribution"], rtol=1e-9, atol=1e-9)


def test_revenue_bridge_reconciles_every_month(reg, data):
    months = sorted(data["month"].unique())
    mrr = reg.evaluate("monthly_recurring_revenue", data, period="month", entity="customer")
    for start, end in zip(months, months[1:]):
        frame = reg.explain(
            "monthly_recurring_revenue",
            data,
            start=start,
            end=end,
            period="month",
            entity="customer",
        )
        moves = frame[frame["kind"] == "movement"].set_index("driver")["contribution"]
        assert set(moves.index) <= {"new", "expansion", "reactivation", "contraction", "churned"}
        change = float(
            mrr.set_index("month").loc[end].iloc[0] - mrr.set_index("month").loc[start].iloc[0]
        )
        assert abs(moves.sum() - change) < 0.005  # to the cent
        assert moves.get("contraction", 0) <= 0 and moves.get("churned", 0) <= 0
    # a vanished customer's return is reactivation, never new
    assert (
        reg.evaluate("reactivation_revenue", data, period="month", entity="customer")[
            "reactivation_revenue"
        ].sum()
        > 0
    )


def test_bridge_over_several_periods_and_by_segment(reg, data):
    frame = reg.explain(
        "annual_recurring_revenue",
        data,
        start="2024-02",
        end="2024-11",
        period="month",
        entity="customer",
        by="segment",
    )
    check_adds_up(frame, ["segment"])
    moves = frame[frame["kind"] == "movement"]
    late = moves[moves["segment"] == "late"]
    assert late["contribution"].sum() == pytest.approx(
        frame[(frame["depth"] == 1) & (frame["segment"] == "late")]["contribution"].sum()
    )
    # ARR = MRR * 12: the movements are twelve times the MRR movements
    assert moves["contribution"].sum() == pytest.approx(frame.attrs["change"])


def test_order_independent(library):
    library.add("a", "sum(revenue)")
    library.add("b", "count(revenue, revenue > 0)")
    library.add("c", "sum(revenue, revenue > 100)")
    library.add("ab", "a * b", datapoints=None)
    library.add("ba", "b * a", datapoints=None)
    library.add("abc_left", "(a * b) / c", datapoints=None)
    library.add("abc_right", "a * (b / c)", datapoints=None)
    library.add("cab", "b / c * a", datapoints=None)
    reg = kpi_registry.load(library.root, include_bundled=False)
    data = pd.DataFrame(
        {
            "customer": ["x", "y", "z", "x", "y", "w"],
            "month": ["2024-01"] * 3 + ["2024-02"] * 3,
            "revenue": [100.0, 250.0, 40.0, 180.0, 90.0, 300.0],
        }
    )

    def shares(kpi_id):
        frame = reg.explain(
            kpi_id, data, start="2024-01", end="2024-02", period="month", entity="customer"
        )
        return frame[frame["depth"] == 1].set_index("driver")["contribution"].sort_index()

    pd.testing.assert_series_equal(shares("ab"), shares("ba"))
    left, right, mixed = shares("abc_left"), shares("abc_right"), shares("cab")
    pd.testing.assert_series_equal(left, right)
    pd.testing.assert_series_equal(left, mixed)
    assert left.sum() == pytest.approx(
        reg.evaluate("abc_left", data, period="month", entity="customer")["abc_left"].diff().iloc[1]
    )


class _NoWalking(dict):
    """A library that fails the test if anything walks all of it."""

    def __iter__(self):
        raise AssertionError("the whole library was walked")

    def keys(self):
        raise AssertionError("the whole library was walked")

    def items(self):
        raise AssertionError("the whole library was walked")

    def values(self):
        raise AssertionError("the whole library was walked")


def test_explain_reads_only_the_kpis_below_the_one_explained(reg, data):
    """A site explains one KPI per page: copying the library each time made 20,000 pages
    quadratic."""
    request = Request(period="month", entity="customer")
    months = {"start": "2024-05", "end": "2024-06"}
    whole = explain(reg.kpis, "net_revenue_retention", data, request, **months)
    frame = explain(_NoWalking(reg.kpis), "net_revenue_retention", data, request, **months)
    pd.testing.assert_frame_equal(frame, whole)


def test_explain_takes_rows_as_lists_as_it_takes_a_data_frame(reg, data):
    """Rows given as lists (a worked example's data, as the site passes it) give the same
    attribution, and a KPI they supply as a column is refused in the same way."""
    request = Request(period="month", entity="customer")
    rows = Rows({c: data[c].tolist() for c in data.columns})
    kwargs = {"start": "2024-05", "end": "2024-06"}
    from_frame = explain(reg.kpis, "net_revenue_retention", data, request, **kwargs)
    from_rows = explain(reg.kpis, "net_revenue_retention", rows, request, **kwargs)
    pd.testing.assert_frame_equal(from_rows, from_frame)
    assert from_rows.attrs == from_frame.attrs
    supplied = Rows({**rows.columns, "net_revenue_retention": [1.0] * rows.n_rows})
    with pytest.raises(ExplainError) as info:
        explain(reg.kpis, "net_revenue_retention", supplied, request, **kwargs)
    assert info.value.reason == "given as a column"


def test_shapley_closed_form_matches_corners():
    rng = np.random.default_rng(0)
    for n in range(1, 6):
        u0, u1 = rng.normal(size=n), rng.normal(size=n)  # signs change on purpose
        corners = shapley(lambda xs: float(np.prod(xs)), list(u0), list(u1))
        closed = [shapley_weight(u0, u1, i) * (u1[i] - u0[i]) for i in range(n)]
        np.testing.assert_allclose(corners, closed, atol=1e-12)
        assert sum(closed) == pytest.approx(np.prod(u1) - np.prod(u0))


def test_zero_denominator_is_a_clear_error(reg):
    data = pd.DataFrame(
        {
            "customer": ["a", "a", "a"],
            "month": ["2024-01", "2024-02", "2024-03"],
            "revenue": [0.0, 100.0, 120.0],
        }
    )
    with pytest.raises(ExplainError) as info:
        reg.explain(
            "net_revenue_retention",
            data,
            start="2024-02",
            end="2024-03",
            period="month",
            entity="customer",
        )
    assert info.value.period == "2024-02"
    assert "starting_revenue" in info.value.reason
    with pytest.raises(ExplainError) as info:
        reg.explain(
            "monthly_recurring_revenue",
            data,
            start="2024-02",
            end="2030-01",
            period="month",
            entity="customer",
        )
    assert info.value.period == "2030-01"


def test_sign_change_and_zero_in_a_product(library):
    signed = {k: v for k, v in REVENUE.items() if k != "valid"}  # may be negative, unlike MRR
    library.add("gain", "sum(revenue)", datapoints=[signed])
    library.add("scaled", "gain * sum(revenue, revenue < 0)", datapoints=[signed])
    reg = kpi_registry.load(library.root, include_bundled=False)
    data = pd.DataFrame(
        {
            "customer": ["x", "y", "x", "y"],
            "month": ["2024-01", "2024-01", "2024-02", "2024-02"],
            "revenue": [-50.0, 20.0, 0.0, 80.0],  # a negative becomes zero; the total flips
        }
    )
    frame = reg.explain(
        "gain", data, start="2024-01", end="2024-02", period="month", entity="customer"
    )
    assert frame.attrs["change"] == pytest.approx(110.0)
    assert frame[frame["depth"] == 1]["contribution"].sum() == pytest.approx(110.0)
    # the negative amount falls in no movement: it is shown, not lost
    assert "other" in set(frame["driver"])
    check_adds_up(frame, [])
    frame = reg.explain(
        "scaled", data, start="2024-01", end="2024-02", period="month", entity="customer"
    )
    assert frame.attrs["start_value"] == pytest.approx(1500.0)
    assert frame.attrs["end_value"] == 0.0
    check_adds_up(frame, [])


def test_reading_and_segments(reg, data):
    frame = reg.explain(
        "net_revenue_retention",
        data,
        start="2024-06",
        end="2024-09",
        period="month",
        entity="customer",
        by="segment",
    )
    text = reading(frame)
    assert text.startswith("net_revenue_retention ")
    assert " points " in text and "accounts for" in text and "effect" in text
    seg = {s["segment"]: s for s in frame.attrs["segments"]}
    assert set(seg) == {"smb", "mid", "ent", "late"}
    weights = sum(s["start_weight"] for s in seg.values())
    assert weights == pytest.approx(1.0)
    # "late" had no opening base in June: no ratio there, so its whole share is mix
    late = seg["late"]
    assert late["start_weight"] == 0 and late["end_weight"] > 0
    assert late["rate_effect"] == 0 and late["mix_effect"] == late["contribution"] != 0


def test_driver_tree(reg):
    tree = reg.drivers("net_revenue_retention")
    assert tree.operation == "ratio"
    assert [c.name for c in tree.children] == [
        "starting_revenue",
        "expansion_revenue",
        "contraction_revenue",
        "churned_revenue",
    ]
    assert all(c.children[0].kind == "datapoint" for c in tree.children)
    ltv = reg.drivers("ltv_to_cac_ratio")
    names = {d.name for _, d in ltv.walk()}
    assert {"customer_lifetime_value", "customer_churn_rate", "revenue"} <= names
    depth = max(d for d, _ in ltv.walk())
    assert depth >= 3


def test_kpi_explain_cli(tmp_path, data, capsys):
    from kpi_registry.cli import main

    path = tmp_path / "mrr.csv"
    data[["customer", "month", "segment", "revenue"]].to_csv(path, index=False)
    args = ["explain", "net_revenue_retention", "--data", str(path), "--period", "month"]
    args += ["--entity", "customer", "--from", "2024-06", "--to", "2024-09"]
    assert main([*args, "--by", "segment"]) == 0
    out = capsys.readouterr().out
    assert "churned_revenue" in out and "rate_effect" in out and "mix_effect" in out
    assert "Net Revenue Retention " in out and " points from " in out and "accounts for" in out
    assert main([*args, "--format", "csv", "--engine", "duckdb"]) == 0
    csv = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert {"driver", "start_value", "end_value", "contribution"} <= set(csv.columns)
    # a period where NRR has no value: a message naming it, exit 1, no traceback
    bad = [a if a != "2024-06" else "2024-01" for a in args]
    assert main(bad) == 1
    err = capsys.readouterr().err
    assert "2024-01" in err and "starting_revenue" in err and "Traceback" not in err


def test_kpi_show_prints_the_driver_tree(capsys):
    from kpi_registry.cli import main

    assert main(["show", "customer_lifetime_value"]) == 0
    out = capsys.readouterr().out
    tree = out[out.index("Driver tree\n-----------") :]
    assert "customer_lifetime_value  [ratio]" in tree
    assert "\n        revenue  [datapoint]" in tree  # down to the datapoints, indented


def test_every_kpi_page_draws_its_driver_tree_and_last_change():
    from site_helpers import bundled_site, read

    site, _ = bundled_site()
    nrr = read(site, "kpi/net_revenue_retention/")
    figure = nrr[nrr.index('id="driver-tree"') :].split("</figure>")[0]
    assert 'href="../churned_revenue/"' in figure and "kc-s3" in figure  # a share that fell
    assert "from 2024-02 to 2024-03" in figure and "#attribution" in figure
    mrr = read(site, "kpi/monthly_recurring_revenue/")
    bridge = mrr[mrr.index('id="driver-tree"') :].split("</figure>")[0]
    assert ">churned</text>" in bridge or ">new</text>" in bridge  # the revenue bridge
    reg = kpi_registry.load()
    for kpi in reg:
        if kpi.expression is not None and reg.drivers(kpi.id).children:
            assert 'class="kpi-driver-tree"' in read(site, f"kpi/{kpi.id}/"), kpi.id
    reference = read(site, "reference/formula-language/")
    assert 'id="attribution"' in reference and "Shapley" in reference
