"""Compiling formulas to SQL: golden files per dialect, dialect limits and clear errors.

Regenerate the golden files after an intended change with
``KPI_UPDATE_GOLDEN=1 pytest tests/test_sql_compile.py`` and review the diff.
"""

from __future__ import annotations

import os

import pytest
import sqlglot
from sql_helpers import FIXTURES, GOLDEN, REVENUE_FAMILY

import kpi_registry
from kpi_registry.errors import DataError, KPIError
from kpi_registry.evaluation import Request
from kpi_registry.sql import DIALECTS, UNSUPPORTED, SQLCompileError, compile_many

UPDATE = os.environ.get("KPI_UPDATE_GOLDEN") == "1"


@pytest.fixture(scope="module")
def reg():
    return kpi_registry.load(FIXTURES, include_bundled=False)


# Each case: ids, table, request, options. Together they use every function, operator,
# datapoint rule (rows, time, missing), grain mapping and period format.
CASES = {
    "revenue_family_by_segment_quarter": (
        REVENUE_FAMILY,
        "analytics.mrr",
        Request("month", "customer_id", ["segment"], "quarter", {"revenue": "mrr"}),
        {"period_type": "month"},
    ),
    # the same with the whole entity x period grid (the default is sparse for these formulas)
    "revenue_family_by_segment_quarter_dense": (
        REVENUE_FAMILY,
        "analytics.mrr",
        Request("month", "customer_id", ["segment"], "quarter", {"revenue": "mrr"}),
        {"period_type": "month", "layout": "dense"},
    ),
    "revenue_family_monthly_dates": (
        REVENUE_FAMILY,
        "billing.customer_months",
        Request("billing_month", "account", [], None, {"revenue": "mrr_usd"}),
        {"period_type": "date"},
    ),
    "functions_with_entity": (
        [
            "revenue_swing",
            "steady_customers",
            "revenue_with_carry",
            "two_back_revenue",
            "discount_power",
            "lost_customers",
            "mean_discount_or_zero",
            "expansion_two_back",
            "promoter_score",
            "price_points",
            "capped_usage",
            "hundred",
        ],
        "warehouse.accounts",
        Request("quarter", "account", ["region", "plan"], "year", {"revenue": "arr"}),
        {"period_type": "quarter", "order": "loaded_at"},
    ),
    # flows summed from rows into months and from months into quarters, both in decimal
    "flows_with_entity_quarter": (
        ["order_count", "orders_per_customer"],
        "shop.orders",
        Request("order_month", "customer", [], "quarter", {}),
        {"period_type": "month"},
    ),
    "rows_without_entity_weekly": (
        ["seat_utilization", "seat_utilization_change", "mean_order_value", "score_spread"],
        "events",
        Request("event_date", None, ["plan"], "week", {}),
        {"period_type": "date-day"},
    ),
}


def _golden(case: str, dialect: str):
    return GOLDEN / f"{case}.{dialect}.sql"


VERSION_FILE = GOLDEN / "sqlglot.version"


def _normal(sql: str, dialect: str) -> str:
    """The SQL as this sqlglot version writes it after reading it back."""
    return sqlglot.parse_one(sql, read=dialect).sql(dialect=dialect, pretty=True)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_sql(reg, case, dialect):
    ids, table, request, options = CASES[case]
    sql = compile_many(reg.kpis, ids, table, request, dialect=dialect, **options) + "\n"
    # the output is valid SQL for its dialect (sqlglot reads it back)
    assert sqlglot.parse_one(sql, read=dialect) is not None
    path = _golden(case, dialect)
    if UPDATE or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
        VERSION_FILE.write_text(sqlglot.__version__ + "\n")
        if not UPDATE:
            pytest.fail(f"wrote missing golden file {path.name}; review it and run again")
    golden = path.read_text()
    hint = f"SQL for {case} in {dialect} changed; if intended, regenerate with KPI_UPDATE_GOLDEN=1"
    if VERSION_FILE.read_text().strip() == sqlglot.__version__:
        assert sql == golden, hint
    else:  # another sqlglot may lay the text out differently: compare what it means
        assert _normal(sql, dialect) == _normal(golden, dialect), hint


def test_golden_sql_reads_like_the_definitions(reg):
    """Spot checks a reader would make: the grid, not a LAG over raw rows; NULL-safe division.
    (tests/test_sql_sparse.py checks the sparse layout's SQL.)"""
    sql = _golden("revenue_family_by_segment_quarter_dense", "duckdb").read_text()
    assert "CROSS JOIN periods AS p" in sql  # every customer in every period
    assert "LEFT JOIN period_cells AS c" in sql
    assert "COALESCE(c.revenue, 0) AS revenue" in sql  # missing: zero
    assert "LAG(revenue) OVER (PARTITION BY _entity ORDER BY _period)" in sql
    assert "/ NULLIF(starting_revenue, 0)" in sql  # division by zero is NULL
    assert "AS net_revenue_retention" in sql and "AS quick_ratio" in sql
    # a customer-month's rows add up in decimal: their sum rounded where there are several,
    # from parts named once in the row_sums subquery, and explained in one comment; a
    # subquery, so that the CTE DuckDB materialises holds the rounded cells, not the parts
    assert "SUM(revenue) AS revenue,\n      COUNT(revenue) AS _revenue_rows," in sql
    assert "WHEN _revenue_rows > 1 AND _revenue_error < 1" in sql
    assert "ELSE revenue\n    END AS revenue," in sql and ") AS row_sums\n), bounds" in sql
    assert "row_sums AS (" not in sql
    assert sql.count("/* Sums of several rows are rounded") == 1
    assert sql.count("LN(") == 2  # that one rounding, not the 25-line block per datapoint


def test_median_does_not_compile_where_no_exact_median_exists(reg):
    request = Request("month", None, [], None, {})
    for dialect in DIALECTS:
        if ("median", dialect) in UNSUPPORTED:
            with pytest.raises(SQLCompileError) as err:
                compile_many(reg.kpis, ["median_ticket_hours"], "t", request, dialect=dialect)
            message = str(err.value)
            assert "median() does not compile to " + dialect in message
            assert "median_ticket_hours" in message and "pandas engine" in message
        else:
            sql = compile_many(reg.kpis, ["median_ticket_hours"], "t", request, dialect=dialect)
            assert "ticket_hours" in sql
    assert {d for f, d in UNSUPPORTED} == {"bigquery", "trino"}


def test_last_row_needs_an_order_column_with_an_entity(reg):
    request = Request("month", "respondent", [], None, {})
    with pytest.raises(SQLCompileError, match="rows: last.*order="):
        compile_many(reg.kpis, ["promoter_score"], "surveys", request)
    # without an entity each row is its own cell: nothing to choose between
    assert "score" in compile_many(reg.kpis, ["promoter_score"], "surveys", Request("month"))
    with_order = compile_many(reg.kpis, ["promoter_score"], "surveys", request, order="loaded_at")
    assert "ARG_MAX_NULL(score" in with_order


def test_unknown_dialect_period_type_and_kpi(reg):
    request = Request("month", "customer", [], None, {})
    with pytest.raises(SQLCompileError, match="unknown SQL dialect 'oracle'"):
        compile_many(reg.kpis, ["total_revenue"], "t", request, dialect="oracle")
    with pytest.raises(SQLCompileError, match="unknown period type 'fortnight'"):
        compile_many(reg.kpis, ["total_revenue"], "t", request, period_type="fortnight")
    with pytest.raises(KPIError, match="unknown KPI id 'total_revenu'"):
        compile_many(reg.kpis, ["total_revenu"], "t", request)
    monthly = Request("month", "customer", [], "month", {})
    with pytest.raises(DataError, match="grain 'month' is finer"):
        compile_many(reg.kpis, ["total_revenue"], "t", monthly, period_type="quarter")
    with pytest.raises(DataError, match="grain needs a period column"):
        compile_many(reg.kpis, ["total_revenue"], "t", Request(None, None, [], "year", {}))


def test_time_functions_need_an_entity(reg):
    with pytest.raises(DataError, match="previous\\(\\) on datapoints .* pass entity="):
        compile_many(reg.kpis, ["churned_revenue"], "t", Request("month"))
    with pytest.raises(DataError, match="ever_before\\(\\)"):
        compile_many(reg.kpis, ["lost_customers"], "t", Request("month"))


def test_names_are_quoted_not_pasted(reg):
    """Odd column and table names become quoted identifiers; nothing can break out."""
    request = Request('month "x"', "customer id", ["Segment"], None, {"revenue": "MRR ($)"})
    sql = compile_many(reg.kpis, ["total_revenue"], '"mrr; DROP TABLE users"', request)
    assert '"mrr; DROP TABLE users"' in sql
    assert '"month ""x"""' in sql and '"customer id" AS _entity' in sql
    assert '"MRR ($)"' in sql and '"Segment"' in sql
    assert sqlglot.parse(sql, read="duckdb") and len(sqlglot.parse(sql, read="duckdb")) == 1


def test_registry_to_sql_is_compile_many(reg):
    one = reg.to_sql(
        "net_revenue_retention", "mrr", period="month", entity="customer", columns={"revenue": "x"}
    )
    many = reg.to_sql_many(
        ["net_revenue_retention"],
        "mrr",
        period="month",
        entity="customer",
        columns={"revenue": "x"},
    )
    assert one == many
    assert reg.to_sql("hundred", "t", period="m", dialect="trino").count("SELECT") >= 3


def test_kpi_sql_command(capsys):
    from kpi_registry.cli import main

    code = main(
        [
            "sql",
            "expansion_revenue",
            "--table",
            "analytics.mrr",
            "--period",
            "month",
            "--entity",
            "customer_id",
            "--by",
            "segment",
            "--column",
            "revenue=mrr",
            "--dialect",
            "snowflake",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert out.out.rstrip().endswith(";")
    assert "LATERAL FLATTEN" in out.out  # Snowflake's way to list the periods
    assert "FROM analytics.mrr" in out.out
    sqlglot.parse_one(out.out.rstrip().rstrip(";"), read="snowflake")


def test_kpi_sql_command_reports_errors_without_traceback(capsys):
    from kpi_registry.cli import main

    args = ["sql", "sql_test_median_hours", "--table", "deals", "--period", "month"]
    args += ["--path", str(FIXTURES.parent / "sql_cli")]
    code = main([*args, "--dialect", "bigquery"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: KPI 'sql_test_median_hours': median() does not compile to bigq")
    assert "Traceback" not in err
    assert main([*args, "--dialect", "duckdb"]) == 0


@pytest.mark.parametrize(
    "table, why",
    [
        ("read_csv('/etc/passwd', sep='|')", "unexpected '\\(' at character 9"),
        ("(SELECT * FROM secrets)", "expected a name at character 1"),
        ("mrr; DROP TABLE users", "unexpected ';'"),
        ("analytics.mrr WHERE 1 = 1", "unexpected ' '"),
        ('"analytics.mrr', "the quote at character 1 is never closed"),
        ("`analytics.mrr", "the quote at character 1 is never closed"),
        ("a.b.c.d", "4 dotted parts"),
        ("analytics..mrr", "expected a name at character 11"),
    ],
)
def test_table_is_a_name_never_an_expression(reg, table, why, capsys):
    """--table and to_sql(..., table) name a table; a function call (DuckDB's read_csv reads
    any file), a subquery or an unbalanced quote is refused with a clear error."""
    from kpi_registry.cli import main

    with pytest.raises(DataError, match=why):
        reg.to_sql("total_revenue", table, period="month")
    code = main(["sql", "total_revenue", "--table", table, "--period", "month"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "is not a table name" in err and "--table" in err
    assert "Traceback" not in err


def test_table_names_are_quoted_identifiers(reg):
    cases = {
        "analytics.mrr": "FROM analytics.mrr",
        "cat.analytics.mrr": "FROM cat.analytics.mrr",
        '"My Schema"."Monthly ""MRR"""': 'FROM "My Schema"."Monthly ""MRR"""',
        "`my-project`.billing.mrr": 'FROM "my-project".billing.mrr',
        "my-project.billing.mrr": 'FROM "my-project".billing.mrr',
        "order": 'FROM "order"',
    }
    for table, want in cases.items():
        assert want in reg.to_sql("total_revenue", table, period="month"), table
    bigquery = reg.to_sql("total_revenue", "my-project.billing.mrr", period="m", dialect="bigquery")
    assert "FROM `my-project`.billing.mrr" in bigquery


def test_duckdb_connection_and_table_pair_takes_a_name_only(reg, tmp_path):
    import duckdb

    from kpi_registry.sql import evaluate_duckdb

    secret = tmp_path / "secret.csv"
    secret.write_text("month,revenue\n2024-01,1\n")
    con = duckdb.connect()
    request = Request("month", None, [], None, {})
    with pytest.raises(DataError, match="is not a table name"):
        evaluate_duckdb(reg.kpis, ["total_revenue"], (con, f"read_csv('{secret}')"), request)
    con.execute(f"CREATE TABLE mrr AS SELECT * FROM read_csv('{secret}')")
    got = evaluate_duckdb(reg.kpis, ["total_revenue"], (con, "mrr"), request)
    assert got["total_revenue"].tolist() == [1.0]
