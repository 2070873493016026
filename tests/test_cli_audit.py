"""Bad input a new user gives the kpi command: each gets a message naming the file, the line and
the column (or the option), an exit code, and never a traceback or an 'internal error'."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kpi_registry import cli, files

NRR = ["eval", "net_revenue_retention", "--period", "month", "--entity", "customer"]
REVENUE = ["--column", "revenue=mrr"]
HEADER = "customer,month,mrr\n"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in err
    return code, out, err


def write(path: Path, data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return str(path)


def eval_file(capsys, path: str, *extra: str) -> tuple[int, str, str]:
    return run(capsys, *NRR, *REVENUE, "--data", path, *extra)


# -- data files -------------------------------------------------------------------------------
@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_column_named_twice_in_a_csv_header(capsys, tmp_path, engine):
    path = write(tmp_path / "mrr.csv", "customer,month,mrr,mrr\na,2024-01,100,1\na,2024-02,120,2\n")
    code, out, err = eval_file(capsys, path, "--engine", engine)
    assert code == 1 and out == ""
    assert err == (
        f"error: {path}:1: column 'mrr' is in the header twice (columns 3 and 4); "
        "rename one of them\n"
    )


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_column_named_twice_in_a_parquet_file(capsys, tmp_path, engine):
    path = str(tmp_path / "mrr.parquet")
    columns = [pa.array(["a", "a"]), pa.array(["2024-01", "2024-02"]), pa.array([1.0, 2.0])]
    pq.write_table(
        pa.table([*columns, columns[2]], names=["customer", "month", "mrr", "mrr"]), path
    )
    code, _, err = eval_file(capsys, path, "--engine", engine)
    assert code == 1
    assert err == (
        f"error: {path}: column 'mrr' is in the file twice (columns 3 and 4); rename one of them\n"
    )


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_csv_that_is_not_utf8_names_the_line(capsys, tmp_path, engine):
    path = write(tmp_path / "mrr.csv", HEADER.encode() + b"a,2024-01,100\n\xe9t\xe9,2024-02,120\n")
    code, _, err = eval_file(capsys, path, "--engine", engine)
    assert code == 1
    assert err == (
        f"error: {path}:3: not valid UTF-8 (byte 0xe9 at column 1); save the file as UTF-8 "
        "(in Excel: 'CSV UTF-8')\n"
    )


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_empty_csv(capsys, tmp_path, engine):
    path = write(tmp_path / "mrr.csv", "")
    code, _, err = eval_file(capsys, path, "--engine", engine)
    assert code == 1
    assert err == (
        f"error: {path}: the file is empty; a CSV file starts with a line naming its columns\n"
    )


def test_header_only_csv_warns(capsys, tmp_path):
    path = write(tmp_path / "mrr.csv", HEADER)
    code, out, err = eval_file(capsys, path)
    assert code == 0 and out == "(no rows)\n"
    assert err == f"warning: {path} has no data rows\n"


@pytest.mark.parametrize("value", ["1,000", "$120", "12,5", "100 €"])
def test_number_with_separators_or_currency_names_file_line_and_column(capsys, tmp_path, value):
    # a blank line and a quoted line break: the line is the file's, not pandas' row number
    text = f'{HEADER}a,2024-01,100\n\n"b\nc",2024-01,5\na,2024-02,"{value}"\n'
    path = write(tmp_path / "mrr.csv", text)
    code, _, err = eval_file(capsys, path)
    assert code == 1
    assert err == (
        f"error: {path}:6: column 'mrr' must be numeric; it has '{value}' (write plain numbers "
        "such as 1234.5: no thousands separators, currency signs, % or decimal commas)\n"
    )


@pytest.mark.parametrize(
    "rows, message",
    [
        ("a,2024-01,100\n,2024-02,120\n", "3: entity column 'customer' is empty"),
        ("a,2024-01,100\na,,120\n", "3: period column 'month' is empty"),
        (
            "a,2024-01,100\na,2024-02,120,7\n",
            "3: 4 fields where the header has 3; check the separators and quotes on that line",
        ),
        ('a,2024-01,100\n"a,2024-02,120\n', "3: a quoted field starts here and is never closed"),
    ],
)
def test_bad_rows_name_their_line(capsys, tmp_path, rows, message):
    path = write(tmp_path / "mrr.csv", HEADER + rows)
    code, _, err = eval_file(capsys, path)
    assert code == 1
    assert err == f"error: {path}:{message}\n"


def test_excel_serial_dates_get_a_hint(capsys, tmp_path):
    path = write(tmp_path / "mrr.csv", HEADER + "a,45366,100\na,45397,120\n")
    code, _, err = eval_file(capsys, path)
    assert code == 1
    assert err.startswith(f"error: {path}: period column 'month' has an unparsable period '45366'")
    assert err.endswith(
        "(an Excel date serial number? format the column as dates, e.g. 2024-03, before "
        "exporting)\n"
    )


@pytest.mark.parametrize(
    "name, text",
    [
        ("mrr.csv", "customer;month;mrr\na;2024-01;100\na;2024-02;120\n"),  # Excel, decimal comma
        ("MRR.CSV", HEADER + "a,2024-01,100\na,2024-02,120\n"),
        ("mrr.tsv", "customer\tmonth\tmrr\na\t2024-01\t100\na\t2024-02\t120\n"),
    ],
)
def test_pandas_reads_what_duckdb_reads(capsys, tmp_path, name, text):
    path = write(tmp_path / name, text)
    outputs = []
    for engine in ("pandas", "duckdb"):
        code, out, _ = eval_file(capsys, path, "--engine", engine, "--format", "csv")
        assert code == 0, engine
        outputs.append(out)
    assert outputs[0] == outputs[1] == "month,net_revenue_retention\n2024-01,\n2024-02,120.0\n"


def test_parquet_index_column_is_read_by_both_engines(capsys, tmp_path):
    frame = pd.DataFrame({"customer": ["a", "a"], "month": ["2024-01", "2024-02"], "mrr": [1, 2]})
    path = str(tmp_path / "mrr.parquet")
    frame.set_index("customer").to_parquet(path)
    for engine in ("pandas", "duckdb"):
        code, out, err = eval_file(capsys, path, "--engine", engine, "--format", "csv")
        assert code == 0, err
        assert out == "month,net_revenue_retention\n2024-01,\n2024-02,200.0\n"


def test_data_path_that_is_a_folder_or_a_glob(capsys, tmp_path):
    code, _, err = eval_file(capsys, str(tmp_path))
    assert code == 1
    assert err == f"error: data file {str(tmp_path)!r} is a folder; give a .csv or .parquet file\n"
    glob = str(tmp_path / "*.csv")
    for engine in ("pandas", "duckdb"):
        code, _, err = eval_file(capsys, glob, "--engine", engine)
        assert code == 1
        assert err == f"error: no file matches {glob!r}\n"


@pytest.mark.parametrize("pattern", ["*", "*.csv", "**/*.csv"])
def test_a_glob_reads_the_same_files_in_both_engines_and_says_which(capsys, tmp_path, pattern):
    """DuckDB's own globbing reads hidden files that Python's skips: the glob is expanded once
    and both engines read that list."""
    first = write(tmp_path / "a.csv", HEADER + "a,2024-01,100\na,2024-02,120\n")
    second = write(tmp_path / "b.csv", HEADER + "b,2024-01,10\nb,2024-02,5\n")
    write(tmp_path / ".hidden.csv", HEADER + "c,2024-01,1000\nc,2024-02,10\n")
    outputs = []
    for engine in ("pandas", "duckdb"):
        code, out, err = eval_file(
            capsys, str(tmp_path / pattern), "--engine", engine, "--format", "csv"
        )
        assert code == 0, err
        assert err == f"read 2 files matching {tmp_path / pattern}:\n  {first}\n  {second}\n"
        outputs.append(out)
    assert (
        outputs[0]
        == outputs[1]
        == "month,net_revenue_retention\n2024-01,\n2024-02,113.63636363636364\n"
    )


def test_the_python_api_globs_as_the_command_does(tmp_path):
    import kpi_registry

    write(tmp_path / "a.csv", HEADER + "a,2024-01,100\na,2024-02,120\n")
    write(tmp_path / ".hidden.csv", HEADER + "c,2024-01,1000\nc,2024-02,10\n")
    result = kpi_registry.load().evaluate(
        "net_revenue_retention",
        str(tmp_path / "*.csv"),
        period="month",
        entity="customer",
        columns={"revenue": "mrr"},
        engine="duckdb",
    )
    assert list(result["net_revenue_retention"].round(6).fillna(-1)) == [-1, 120.0]


def test_a_bad_row_in_the_second_file_of_a_glob_is_placed_in_that_file(capsys, tmp_path):
    write(tmp_path / "a.csv", HEADER + "a,2024-01,100\na,2024-02,120\n")
    bad = write(tmp_path / "b.csv", HEADER + "b,2024-01,10\n\nb,2024-02,x\n")
    code, _, err = eval_file(capsys, str(tmp_path / "*.csv"))
    assert code == 1
    assert err == f"error: {bad}:4: column 'mrr' must be numeric; it has 'x'\n"


def test_kpi_explain_places_a_bad_row_of_a_glob_in_its_file(capsys, tmp_path):
    """As kpi eval does: the row counted within its file, at its line (it was the row
    number across all the files, with no file named)."""
    write(tmp_path / "a.csv", HEADER + "a,2024-01,100\na,2024-02,120\n")
    bad = write(tmp_path / "b.csv", HEADER + "b,2024-01,10\n\n,2024-02,5\n")
    code, _, err = run(
        capsys,
        *["explain", "net_revenue_retention", "--from", "2024-01", "--to", "2024-02"],
        *NRR[2:],
        *REVENUE,
        *["--data", str(tmp_path / "*.csv")],
    )
    assert code == 1
    assert err == f"error: {bad}:4: entity column 'customer' is empty\n"


def test_files_of_one_glob_must_have_the_same_columns(capsys, tmp_path):
    first = write(tmp_path / "a.csv", HEADER + "a,2024-01,100\n")
    other = write(tmp_path / "b.csv", "customer,mrr,month\nb,10,2024-01\n")
    for engine in ("pandas", "duckdb"):
        code, _, err = eval_file(capsys, str(tmp_path / "*.csv"), "--engine", engine)
        assert code == 1
        assert err == (
            f"error: {other}: columns ['customer', 'mrr', 'month'] differ from {first}'s "
            "['customer', 'month', 'mrr']; the files of one glob are read as one table\n"
        )


def test_a_bad_file_in_a_duckdb_glob_is_named(capsys, tmp_path):
    write(tmp_path / "a.csv", HEADER + "a,2024-01,100\n")
    bad = write(tmp_path / "b.csv", "")
    code, _, err = eval_file(capsys, str(tmp_path / "*.csv"), "--engine", "duckdb")
    assert code == 1
    assert err == (
        f"error: {bad}: the file is empty; a CSV file starts with a line naming its columns\n"
    )


# -- options ----------------------------------------------------------------------------------
@pytest.fixture
def mrr(tmp_path) -> str:
    return write(tmp_path / "mrr.csv", HEADER + "a,2024-01,100\na,2024-02,120\n")


def test_misspelt_column_datapoint_suggests_the_right_one(capsys, mrr):
    code, _, err = run(capsys, *NRR, "--data", mrr, "--column", "revenu=mrr")
    assert code == 1
    assert err == (
        "error: --column revenu=mrr: net_revenue_retention reads no datapoint 'revenu' "
        "(did you mean 'revenue'?); the datapoints are 'revenue'\n"
    )


@pytest.mark.parametrize(
    "columns, message",
    [
        (
            ["revenue=mrr", "revenue=arr"],
            "--column revenue is given twice ('mrr' and 'arr'); give it once",
        ),
        (["revenue="], "--column takes datapoint=column, got 'revenue='"),
        (["=mrr"], "--column takes datapoint=column, got '=mrr'"),
    ],
)
def test_column_option_given_twice_or_half(capsys, mrr, columns, message):
    argv = [arg for c in columns for arg in ("--column", c)]
    code, _, err = run(capsys, *NRR, "--data", mrr, *argv)
    assert code == 1
    assert err == f"error: {message}\n"


def test_messages_speak_in_options_not_python_arguments(capsys, mrr):
    code, _, err = run(capsys, *NRR, "--data", mrr)
    assert code == 1
    assert err == (
        f"error: {mrr}: the data has no column for datapoint 'revenue'; columns are 'customer', "
        "'month', 'mrr'. Map it with --column revenue=COL\n"
        "  revenue: One customer's MRR in the period. (currency)\n"  # what it means (#19)
    )
    code, _, err = run(
        capsys, "eval", "net_revenue_retention", "--data", mrr, "--period", "month", *REVENUE
    )
    assert code == 1
    assert err.endswith("give the entity column with --entity COL\n")
    code, _, err = run(capsys, "sql", "net_revenue_retention", "--table", "t", "--period", "month")
    assert code == 1
    assert err == (
        "error: previous() on datapoints compares an entity with itself over time: give the "
        "entity column with --entity COL\n"
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--by", "segment", "--by", "segment"],
            "--by segment is given twice; give each column once",
        ),
        (["--by", "month"], "--by month: 'month' is the period column; results are per period"),
        (
            ["--entity", "month"],
            "--entity month: 'month' is the period column; the entity column "
            "says whose row it is (customer, account...)",
        ),
    ],
)
@pytest.mark.parametrize("command", ["eval", "sql"])
def test_request_columns_that_clash(capsys, tmp_path, command, argv, message):
    path = write(tmp_path / "mrr.csv", "customer,month,segment,mrr\na,2024-01,smb,100\n")
    source = ["--data", path] if command == "eval" else ["--table", "billing.mrr"]
    entity = [] if "--entity" in argv else ["--entity", "customer"]
    code, out, err = run(
        capsys,
        command,
        "net_revenue_retention",
        *source,
        "--period",
        "month",
        *entity,
        *REVENUE,
        *argv,
    )
    assert code == 1 and out == ""
    assert err == f"error: {message}\n"


@pytest.mark.parametrize("option", ["--period", "--entity", "--by"])
def test_empty_column_name_is_a_usage_error(capsys, mrr, option):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*NRR, *REVENUE, "--data", mrr, option, " "])
    assert exit_.value.code == 2
    assert f"argument {option}: give a column name" in capsys.readouterr().err


@pytest.mark.parametrize("limit", ["0", "-1", "x"])
def test_search_limit_must_be_positive(capsys, limit):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["search", "nrr", "--limit", limit])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --limit: give a whole number of 1 or more, not {limit!r}" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["search", "nrr", "--category", "revenue_retentio"],
            "unknown category 'revenue_retentio' (did you mean 'revenue_retention'?)",
        ),
        (
            ["list", "--industry", "sas"],
            "no KPI has the industry 'sas' (did you mean 'saas'?); 'kpi list' shows every KPI",
        ),
        (
            ["search", "revenue", "--tag", "zzzz"],
            "no KPI has the tag 'zzzz'; 'kpi list' shows every KPI",
        ),
    ],
)
def test_unknown_filters_are_errors(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert err == f"error: {message}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "NRR"],
        ["show", "Net Revenue Retention"],
        ["eval", "nrr", "--data", "x.csv"],
        ["sql", "nrr", "--table", "t", "--period", "month"],
    ],
)
def test_an_alias_or_a_name_is_taken_for_the_kpi(capsys, argv):
    # An alias or name that only one KPI has is accepted as its id (issue #19; it was an
    # "unknown KPI id ..., did you mean" error): what fails next is the next real problem.
    code, out, err = run(capsys, *argv)
    assert "unknown KPI id" not in err
    if argv[0] == "show":
        assert code == 0 and out.startswith("Net Revenue Retention (net_revenue_retention)")
    elif argv[0] == "eval":
        assert code == 1 and err == "error: data file 'x.csv' not found\n"
    else:  # NRR compares each customer with itself: the entity column is what is missing
        assert code == 1 and "give the entity column with --entity COL" in err


# -- kpi new ----------------------------------------------------------------------------------
def test_new_into_a_folder_that_cannot_be_made(capsys, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    code, out, err = run(
        capsys, "new", "Widget Count", "--category", "sales", "--dir", str(blocker / "kpis")
    )
    assert code == 1 and out == ""
    assert err == f"error: cannot write to {blocker / 'kpis'}: Not a directory\n"
    assert blocker.read_text() == "keep me"


def test_new_with_a_name_too_long_for_a_file(capsys, tmp_path):
    code, _, err = run(capsys, "new", "Widget " * 60, "--category", "sales", "--dir", str(tmp_path))
    assert code == 1
    assert err == (
        "error: the id 'widget_widget_widget_widget_widget_widge...' is too long for a file name "
        "(419 characters); give a shorter one with --id\n"
    )


def test_new_in_a_folder_with_spaces_says_how_to_validate_it(capsys, tmp_path):
    folder = tmp_path / "team kpis"
    code, out, _ = run(capsys, "new", "Widget Count", "--category", "sales", "--dir", str(folder))
    assert code == 0
    assert out.splitlines()[-1].endswith(f"then run: kpi validate '{folder}'")
    text = (folder / "widget_count.yaml").read_text()
    assert f"Check it with: kpi validate '{folder}'\n" in text


def test_new_id_keeps_letters_without_accents(capsys, tmp_path):
    code, out, _ = run(capsys, "new", "Größe", "--category", "sales", "--dir", str(tmp_path))
    assert code == 0
    assert out.startswith(f"wrote {tmp_path / 'grosse.yaml'} ")


# -- kpi fmt ----------------------------------------------------------------------------------
MESSY = "id: x_kpi\nformula: {expression: 1}\nname: X\n"


def test_fmt_failing_to_write_leaves_the_file_whole(capsys, tmp_path, monkeypatch):
    path = tmp_path / "x_kpi.yaml"
    path.write_text(MESSY)
    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "replace", full_disk)
    code, out, err = run(capsys, "fmt", str(path))
    monkeypatch.setattr(files.os, "replace", real_replace)
    assert code == 1
    assert (
        err == f"error: cannot write {path}: No space left on device; the file was left as it was\n"
    )
    assert out == "0 files reformatted, 0 unchanged, 1 could not be written\n"
    assert path.read_text() == MESSY
    assert [p.name for p in tmp_path.iterdir()] == ["x_kpi.yaml"]  # no temporary file left


def test_fmt_interrupted_while_writing_leaves_the_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "x_kpi.yaml"
    path.write_text(MESSY)
    written = []

    def interrupted(src, dst):
        written.append(Path(src).read_text())
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", interrupted)
    assert cli.main(["fmt", str(path)]) == 130
    assert written and written[0] != MESSY  # the new text was written, but elsewhere
    assert path.read_text() == MESSY
    assert [p.name for p in tmp_path.iterdir()] == ["x_kpi.yaml"]


def test_fmt_keeps_permissions_and_symbolic_links(tmp_path):
    path = tmp_path / "x_kpi.yaml"
    path.write_text(MESSY)
    path.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(path.name)
    assert cli.main(["fmt", str(link)]) == 0
    assert link.is_symlink() and path.read_text() != MESSY
    assert path.stat().st_mode & 0o777 == 0o640


# -- main -------------------------------------------------------------------------------------
def test_ctrl_c_while_commands_load_exits_130(monkeypatch, capsys):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        code = cli.main(["list"])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C while the commands load escaped main() with a traceback")
    assert code == 130
    assert capsys.readouterr().err == ""


def test_site_out_inside_a_file_is_an_error_not_a_bug(capsys, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    out, docs = blocker / "site", tmp_path / "docs"
    code, _, err = run(capsys, "site", "build", "--out", str(out), "--docs-dir", str(docs))
    assert code == 1
    assert err == f"error: {blocker}: is a file, where a folder is needed\n"
    assert blocker.read_text() == "keep me"


def test_sql_checks_its_table_name_and_column_keys(capsys):
    code, _, err = run(capsys, "sql", "monthly_recurring_revenue", "--table", "a..b",
                       "--period", "month")  # fmt: skip
    assert code == 1 and err.startswith("error: --table 'a..b' is not a table name: ")
    assert "character 3" in err and "Traceback" not in err
    code, _, err = run(capsys, "sql", "monthly_recurring_revenue", "--table", "t", "--period",
                       "month", "--column", "revenu=mrr")  # fmt: skip
    assert code == 1 and "--column revenu=mrr" in err and "did you mean 'revenue'?" in err
    code, out, _ = run(capsys, "sql", "monthly_recurring_revenue", "--table", "analytics.mrr",
                       "--period", "month", "--column", "revenue=mrr")  # fmt: skip
    assert code == 0 and "analytics" in out and "mrr" in out


def test_eval_without_period_on_a_previous_kpi_says_to_give_one(capsys, tmp_path):
    data = tmp_path / "mrr.csv"
    data.write_text("customer,mrr\na,100\n")
    code, _, err = run(capsys, "eval", "churned_revenue", "--data", str(data),
                       "--entity", "customer", "--column", "revenue=mrr")  # fmt: skip
    assert code == 1 and "uses previous()" in err
    assert err.rstrip().endswith("give the period column with --period COL")


# -- text dates -------------------------------------------------------------------------------
CSV = ("--format", "csv")
DAY_FIRST = HEADER + "a,15/01/2024,100\nb,03/01/2024,50\na,15/02/2024,120\nb,03/02/2024,60\n"


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_day_or_month_first_dates_are_refused_without_a_format(capsys, tmp_path, engine):
    path = write(tmp_path / "mrr.csv", HEADER + "a,2024-01-01,1\n" + DAY_FIRST[len(HEADER) :])
    code, out, err = eval_file(capsys, path, "--engine", engine)
    assert (code, out) == (1, "")
    assert err == (
        f"error: {path}:3: period column 'month' has '15/01/2024': a date written day-first or "
        "month-first is ambiguous (03/04/2024 is 3 April or March 4); give its format: "
        "--date-format %d/%m/%Y (day first) or %m/%d/%Y (month first)\n"
    )


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_date_format_reads_day_first_billing_dates_as_months(capsys, tmp_path, engine):
    path = write(tmp_path / "mrr.csv", DAY_FIRST)
    code, out, err = eval_file(capsys, path, "--engine", engine, "--date-format", "%d/%m/%Y", *CSV)
    assert code == 0, err
    assert out == "month,net_revenue_retention\n2024-01,\n2024-02,120.0\n"


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_the_same_text_read_month_first_gives_days(capsys, tmp_path, engine):
    path = write(tmp_path / "mrr.csv", HEADER + "a,03/04/2024,100\na,03/05/2024,120\n")
    code, out, err = eval_file(capsys, path, "--engine", engine, "--date-format", "%m/%d/%Y", *CSV)
    assert code == 0, err
    assert out == "month,net_revenue_retention\n2024-03-04,\n2024-03-05,120.0\n"
    code, out, err = eval_file(capsys, path, "--engine", engine, "--date-format", "%d/%m/%Y", *CSV)
    assert code == 0, err
    assert out == "month,net_revenue_retention\n2024-04,\n2024-05,120.0\n"


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_date_that_does_not_match_the_format_names_its_line(capsys, tmp_path, engine):
    path = write(tmp_path / "mrr.csv", HEADER + "a,01/01/2024,100\n\na,2024-02-01,120\n")
    code, _, err = eval_file(capsys, path, "--engine", engine, "--date-format", "%d/%m/%Y")
    assert code == 1
    assert err == (
        f"error: {path}:4: period column 'month' has '2024-02-01', which does not match "
        "--date-format %d/%m/%Y\n"
    )


def test_day_first_dates_in_parquet_are_refused_at_their_row(capsys, tmp_path):
    path = str(tmp_path / "mrr.parquet")
    pd.DataFrame(
        {"customer": ["a", "a"], "month": ["2024-01-01", "03/04/2024"], "mrr": [1, 2]}
    ).to_parquet(path)
    for engine in ("pandas", "duckdb"):
        code, _, err = eval_file(capsys, path, "--engine", engine)
        assert code == 1
        assert err.startswith(f"error: {path}: row 2: period column 'month' has '03/04/2024': ")


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_the_python_api_takes_a_date_format(engine):
    import kpi_registry
    from kpi_registry.periods import AmbiguousDateError

    frame = pd.DataFrame(
        {"customer": ["a", "a"], "month": ["01/02/2024", "01/03/2024"], "mrr": [100, 120]}
    )
    reg = kpi_registry.load()
    ask = dict(period="month", entity="customer", columns={"revenue": "mrr"}, engine=engine)
    with pytest.raises(AmbiguousDateError) as caught:
        reg.evaluate("net_revenue_retention", frame, **ask)
    assert (caught.value.column, caught.value.value) == ("month", "01/02/2024")
    assert caught.value.row == (0 if engine == "pandas" else None)
    result = reg.evaluate("net_revenue_retention", frame, date_format="%d/%m/%Y", **ask)
    assert [str(p) for p in result["month"]] == ["2024-02", "2024-03"]
    assert list(result["net_revenue_retention"].fillna(-1)) == [-1, 120.0]


def test_billing_days_in_text_duckdb_cannot_cast_are_months_in_both_engines(capsys, tmp_path):
    """Monthly rows dated on billing days, in text DuckDB reads through a table of the values
    seen (2024/01/03): months in DuckDB as in pandas, not 45 days of zeros."""
    rows = "a,2024/01/03,100\na,2024/02/03,120\nb,2024/01/15,50\nb,2024/02/15,50\n"
    path = write(tmp_path / "mrr.csv", HEADER + rows)
    for engine in ("pandas", "duckdb"):
        code, out, err = eval_file(capsys, path, "--engine", engine, *CSV)
        assert code == 0, err
        assert out == "month,net_revenue_retention\n2024-01,\n2024-02,113.33333333333333\n"
