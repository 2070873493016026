"""The attribution's per-call work follows the data's few columns, not the library's size: the
site explains one worked example per KPI, so a walk over every KPI per call is quadratic
(20,000 KPIs: hundreds of millions of lookups)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pandas as pd

from kpi_registry.attribution import _supplied
from kpi_registry.evaluation import Request


class _Library(Mapping):
    """KPIs by id that refuse to be walked: only looked up."""

    def __init__(self, ids: list[str]):
        self._ids = dict.fromkeys(ids)

    def __getitem__(self, key: str):
        return self._ids[key]

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("walked the whole library")

    def __len__(self) -> int:
        return len(self._ids)


def test_supplied_kpis_are_found_from_the_columns():
    kpis = _Library(["arpu", "mrr_total", "churn_rate", "nps"])
    data = pd.DataFrame(columns=["month", "arpu", "total", "churn_rate", "users"])
    # arpu as itself; mrr_total renamed to the column "total"; churn_rate is read from
    # "rate" (absent), so its same-named column does not supply it; nps has no column
    request = Request("month", None, [], None, {"mrr_total": "total", "churn_rate": "rate"})
    assert _supplied(kpis, data, request) == {"arpu", "mrr_total"}
    assert _supplied(kpis, {"arpu": 1.0}, request) == set()
