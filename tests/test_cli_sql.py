"""`kpi sql --drop-invalid`: the SQL leaves out the rows `kpi eval --drop-invalid` leaves out."""

from __future__ import annotations

import json

import duckdb
import pytest

from kpi_registry.cli import main

# Two contracts a month; c2's -2000 in February lies outside contract_value's valid range
# (min 0): a credit note booked as a contract.
CSV = """month,contract,contract_value
2024-01,c1,12000
2024-01,c2,3000
2024-02,c1,12000
2024-02,c2,-2000
2024-02,c3,6000
2024-03,c2,4000
"""


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def contracts(tmp_path):
    path = tmp_path / "contracts.csv"
    path.write_text(CSV)
    return path


def _sql(capsys, *extra: str) -> str:
    args = ["sql", "average_contract_value", "--table", "contracts", "--period", "month"]
    code, out, err = run(capsys, *args, "--entity", "contract", *extra)
    assert code == 0, err
    return out.rstrip().rstrip(";")


def _in_duckdb(sql: str, path) -> dict[str, float]:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE contracts AS SELECT * FROM read_csv('{path}', all_varchar=true)")
    con.execute("ALTER TABLE contracts ALTER contract_value TYPE DOUBLE")
    rows = con.execute(sql).fetchall()
    names = [d[0] for d in con.description]
    return {str(r[names.index("month")]): r[names.index("average_contract_value")] for r in rows}


def test_sql_drop_invalid_gives_what_eval_drop_invalid_gives(capsys, contracts):
    plain, dropping = _sql(capsys), _sql(capsys, "--drop-invalid")
    assert plain != dropping

    args = ["eval", "average_contract_value", "--data", str(contracts), "--period", "month"]
    code, out, err = run(
        capsys, *args, "--entity", "contract", "--drop-invalid", "--format", "json"
    )
    assert code == 0 and "contract_value" in err  # the left-out row is named as a warning
    want = {r["month"]: r["average_contract_value"] for r in json.loads(out)}
    assert want == {"2024-01": 7500.0, "2024-02": 9000.0, "2024-03": 4000.0}

    assert _in_duckdb(dropping, contracts) == pytest.approx(want)
    # without the flag the SQL stops on the bad row, naming it, as kpi eval does
    with pytest.raises(duckdb.Error, match="'contract_value' must be at least 0: entity 'c2'"):
        _in_duckdb(plain, contracts)


def test_sql_drop_invalid_has_eval_help():
    from kpi_registry.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    helps = {}
    for name in ("eval", "sql"):
        commands[name].format_help()  # kpi sql adds its options on first use
        helps[name] = next(a.help for a in commands[name]._actions if a.dest == "drop_invalid")
    assert "valid range" in helps["sql"] and helps["sql"] == helps["eval"]
