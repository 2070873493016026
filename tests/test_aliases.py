"""Ids and unambiguous aliases are accepted everywhere (issue #19): `kpi eval NRR` means
net_revenue_retention, and an alias two KPIs share is an error naming both."""

from __future__ import annotations

import pandas as pd
import pytest

import kpi_registry
from kpi_registry.cli import main
from kpi_registry.errors import AmbiguousKPIError, UnknownKPIError

MRR = pd.DataFrame(
    [("a", "2024-01", 100), ("b", "2024-01", 50), ("a", "2024-02", 120), ("b", "2024-02", 50)],
    columns=["customer", "month", "mrr"],
)
REQUEST = {"period": "month", "entity": "customer", "columns": {"revenue": "mrr"}}


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load()


@pytest.mark.parametrize("name", ["NRR", "nrr", "Net dollar retention", "net revenue retention"])
def test_names_and_aliases_resolve_to_the_id(reg, name):
    assert reg.resolve(name) == "net_revenue_retention"
    assert reg[name].id == "net_revenue_retention"


def test_evaluate_and_sql_take_an_alias_and_answer_with_the_id(reg):
    by_alias = reg.evaluate("NRR", MRR, **REQUEST)
    by_id = reg.evaluate("net_revenue_retention", MRR, **REQUEST)
    pd.testing.assert_frame_equal(by_alias, by_id)
    many = reg.evaluate_many(["NRR", "GRR"], MRR, **REQUEST)
    assert list(many.columns) == ["month", "net_revenue_retention", "gross_revenue_retention"]
    assert reg.to_sql("NRR", "mrr", **REQUEST) == reg.to_sql(
        "net_revenue_retention", "mrr", **REQUEST
    )


def test_a_shared_alias_is_ambiguous_and_names_every_owner(library):
    library.add("alpha_rate", aliases=["XR"])
    library.add("beta_rate", aliases=["XR"])
    reg = kpi_registry.load(library.root)
    with pytest.raises(AmbiguousKPIError) as info:
        reg["xr"]
    assert info.value.candidates == ["alpha_rate", "beta_rate"]
    assert "'alpha_rate' or 'beta_rate'" in str(info.value)
    with pytest.raises(UnknownKPIError):
        reg["nothing like it"]


def test_cli_commands_take_aliases(tmp_path, capsys):
    data = tmp_path / "mrr.csv"
    MRR.to_csv(data, index=False)
    assert main(["show", "NRR"]) == 0
    assert capsys.readouterr().out.startswith("Net Revenue Retention (net_revenue_retention)")
    args = ["--data", str(data), "--period", "month", "--entity", "customer"]
    assert main(["eval", "NRR", "ARR", *args, "--column", "revenue=mrr", "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header == "month,net_revenue_retention,annual_recurring_revenue"
    assert main(["sql", "NRR", "--table", "mrr", "--period", "month", "--entity", "customer"]) == 0
    assert "net_revenue_retention" in capsys.readouterr().out
