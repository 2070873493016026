"""`kpi export --format ossie` and `kpi import --format ossie`: the document validates against
the vendored Apache Ossie 0.1.1 schema (plus the checks of Ossie's own validator), its SQL
computes the engine's numbers, and import then export keeps every metric."""

from __future__ import annotations

import json
import math
import shutil

import duckdb
import jsonschema
import pytest
import sqlglot
import yaml

from kpi_registry import cli, load
from kpi_registry.export.ossie import EXTENSION_KEY, OSSIE_VERSION, ossie_document, ossie_schema
from kpi_registry.export.ossie_import import import_ossie
from kpi_registry.loading import to_plain
from kpi_registry.registry import bundled_dir
from kpi_registry.worked_examples import example_data, run_example

TAXONOMY = bundled_dir("definitions") / "_taxonomy.yaml"


@pytest.fixture(scope="module")
def bundled():
    return load()


@pytest.fixture(scope="module")
def document(bundled):
    return ossie_document(bundled)


def ossie_problems(document) -> list[str]:
    """What Ossie's validator (validation/validate.py in apache/ossie) checks, done here: the
    JSON Schema (Draft 2020-12), unique dataset/field/metric/relationship names, relationships
    naming existing datasets, and every expression parsing as SQL (sqlglot)."""
    schema = ossie_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    problems = [
        f"schema {list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)
    ]
    for model in document.get("semantic_model", []):
        datasets = [d["name"] for d in model.get("datasets", [])]
        names = {
            "dataset": datasets,
            "metric": [m["name"] for m in model.get("metrics", [])],
            "relationship": [r["name"] for r in model.get("relationships", [])],
        }
        for d in model.get("datasets", []):
            names[f"field of {d['name']}"] = [f["name"] for f in d.get("fields", [])]
        for kind, listed in names.items():
            problems += [f"duplicate {kind} {n}" for n in set(listed) if listed.count(n) > 1]
        for r in model.get("relationships", []):
            problems += [
                f"{r['name']}: no dataset {r[k]}" for k in ("from", "to") if r[k] not in datasets
            ]
        expressions = [f.get("expression") for d in model.get("datasets", []) for f in d["fields"]]
        expressions += [m.get("expression") for m in model.get("metrics", [])]
        for expression in expressions:
            for dialect in (expression or {}).get("dialects", []):
                try:
                    sqlglot.parse_one(dialect["expression"])
                except sqlglot.errors.ParseError as e:
                    problems.append(f"SQL {dialect['expression']!r}: {e}")
    return problems


def extension(item) -> dict:
    (ext,) = item["custom_extensions"]
    assert ext["vendor_name"] == "COMMON"
    return json.loads(ext["data"])[EXTENSION_KEY]


def test_bundled_library_is_a_valid_ossie_document(bundled, document):
    assert ossie_problems(document) == []
    assert document["version"] == OSSIE_VERSION == "0.1.1"
    (model,) = document["semantic_model"]
    metrics = {m["name"]: m for m in model["metrics"]}
    assert sorted(metrics) == bundled.ids
    for kpi in bundled:
        metric = metrics[kpi.id]
        ext = extension(metric)
        assert ext["definition"] == to_plain(kpi.data)  # formula, examples, unit, relations...
        assert metric["ai_context"]["synonyms"][0] == kpi.name
        assert metric["ai_context"]["synonyms"][1:] == [a for a in kpi.aliases if a != kpi.name]
        assert metric["ai_context"]["instructions"].startswith(" ".join(kpi.summary.split()))
        assert ext["relations"]["leading"] == bundled.leading(kpi.id)
        assert [i["name"] for i in ext["inputs"]] == [d.name for d in bundled.inputs(kpi.id)]
        (sql,) = metric["expression"]["dialects"]
        assert sql["dialect"] == "ANSI_SQL"
        if ext["sql_exact"]:
            assert sql["expression"] != "NULL" and ext["why_not_exact"] is None
        else:  # no number rather than a wrong one, and the reason where an assistant reads it
            assert sql["expression"] == "NULL" and ext["why_not_exact"]
            assert ext["why_not_exact"] in metric["ai_context"]["instructions"]
    # History-bound KPIs have no single-aggregate SQL; plain sums and ratios do.
    assert extension(metrics["expansion_revenue"])["sql_exact"] is False
    assert "previous" in extension(metrics["expansion_revenue"])["why_not_exact"]
    assert metrics["monthly_recurring_revenue"]["expression"]["dialects"][0]["expression"] == (
        "SUM(COALESCE(customer_inputs.revenue, 0))"
    )
    fields = {d["name"]: {f["name"]: f for f in d["fields"]} for d in model["datasets"]}
    assert fields["customer_inputs"]["period"]["dimension"] == {"is_time": True}
    assert extension(fields["customer_inputs"]["revenue"])["datapoint"]["time"] == "stock"


def test_the_checks_catch_a_broken_document(document):
    """The same checks fail on a wrong document, so 'no problems' above means something."""
    broken = json.loads(json.dumps(document))
    model = broken["semantic_model"][0]
    model["metrics"][0]["custom_extensions"][0]["vendor_name"] = "KPI_REGISTRY"  # not in 0.1.1
    del model["metrics"][1]["expression"]
    model["metrics"][2]["expression"]["dialects"][0]["expression"] = "SUM(("
    model["metrics"].append(dict(model["metrics"][3]))
    problems = ossie_problems(broken)
    assert any("KPI_REGISTRY" in p for p in problems)
    assert any("'expression' is a required property" in p for p in problems)
    assert any(p.startswith("SQL 'SUM(('") for p in problems)
    assert any(p.startswith("duplicate metric") for p in problems)


def as_assumed_table(frame, entity, datapoints):
    """The example's rows as the datasets the document describes: one row per entity and
    period, each datapoint's rows combined by its `rows` rule (sum, mean, min, max, last)."""
    if entity is None:
        return frame
    rules = {
        dp.name: (lambda s: s.sum(min_count=1)) if dp.rows == "sum" else dp.rows
        for dp in datapoints
        if dp.name in frame.columns
    }
    return frame.groupby([entity, "period"], sort=False, as_index=False).agg(rules)


def test_exact_sql_computes_what_the_engine_computes(bundled, document):
    """Each non-NULL expression, run in DuckDB on the KPI's own worked example (the rows
    registered as every dataset), gives the engine's number period by period."""
    (model,) = document["semantic_model"]
    datasets = [d["name"] for d in model["datasets"]]
    checked = 0
    for metric in model["metrics"]:
        sql = metric["expression"]["dialects"][0]["expression"]
        if sql == "NULL":
            continue
        kpi = bundled[metric["name"]]
        for example in kpi.examples:
            if example.period is None or example.grain or example.by:
                continue
            renames = {column: dp for dp, column in example.columns.items()}
            frame = example_data(example).rename(columns={**renames, example.period: "period"})
            frame = as_assumed_table(frame, example.entity, bundled.inputs(kpi.id))
            con = duckdb.connect()
            for name in datasets:
                con.register(name, frame)
            # One FROM for all: the expression names one dataset (several are refused).
            (table,) = {name for name in datasets if f"{name}." in sql}
            rows = dict(
                con.execute(
                    f"SELECT CAST(period AS VARCHAR), {sql} FROM {table} GROUP BY 1"
                ).fetchall()
            )
            want = run_example(bundled.kpis, kpi, example)
            for period, value in zip(want[example.period].astype(str), want[kpi.id]):
                got = rows.get(period)
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    assert got is None, f"{kpi.id} {period}: SQL {got}, engine none"
                else:
                    assert got == pytest.approx(value), f"{kpi.id} {period}: {got} != {value}"
            checked += 1
    assert checked >= 10


def test_import_then_export_keeps_every_metric(bundled, document, tmp_path, capsys):
    source = tmp_path / "library.ossie.yaml"
    code = cli.main(["export", "--format", "ossie", "--out", str(source)])
    assert code == 0
    assert yaml.safe_load(source.read_text()) == json.loads(json.dumps(document))
    drafts = tmp_path / "drafts"
    code = cli.main(["import", "--format", "ossie", str(source), "--dir", str(drafts)])
    _, err = capsys.readouterr()
    assert code == 0 and f"wrote {len(bundled)} draft definitions" in err
    assert "not mapped:" not in err and " 0 things not mapped" in err  # ours map whole
    shutil.copy(TAXONOMY, drafts / "_taxonomy.yaml")
    again = load(drafts, include_bundled=False, examples=True)  # worked examples re-computed
    assert all(k.status == "draft" for k in again)

    def essentials(doc):
        out = {}
        for metric in doc["semantic_model"][0]["metrics"]:
            ext = extension(metric)
            out[metric["name"]] = (
                metric["ai_context"]["synonyms"][0],  # the name
                metric["expression"],
                ext["definition"]["formula"],
                metric["description"],
            )
        return out

    before, after = essentials(document), essentials(ossie_document(again))
    assert sorted(after) == sorted(before)
    for kpi_id in before:
        assert after[kpi_id] == before[kpi_id], kpi_id


def test_import_keeps_edits_made_in_another_tool(document, tmp_path):
    edited = json.loads(json.dumps(document))
    metric = next(m for m in edited["semantic_model"][0]["metrics"] if m["name"] == "quick_ratio")
    metric["description"] = "Edited in a BI tool."
    metric["ai_context"]["synonyms"] = ["Quick Ratio (SaaS)", "QR"]
    source = tmp_path / "edited.json"
    source.write_text(json.dumps(edited))
    result = import_ossie(source, tmp_path / "out")
    data = yaml.safe_load((tmp_path / "out" / "quick_ratio.yaml").read_text())
    assert data["definition"] == "Edited in a BI tool."
    assert data["name"] == "Quick Ratio (SaaS)" and data["aliases"] == ["QR"]
    assert result.unmapped == []


FOREIGN = """
version: "0.1.1"
semantic_model:
  - name: shop
    datasets:
      - name: orders
        source: db.public.orders
        primary_key: [order_id]
        fields:
          - {name: order_id, expression: {dialects: [{dialect: ANSI_SQL, expression: order_id}]}}
          - name: amount
            expression: {dialects: [{dialect: ANSI_SQL, expression: amount}]}
            description: Order amount
          - {name: buyer, expression: {dialects: [{dialect: ANSI_SQL, expression: buyer}]}}
          - {name: status, expression: {dialects: [{dialect: ANSI_SQL, expression: status}]}}
    relationships:
      - {name: self, from: orders, to: orders, from_columns: [buyer], to_columns: [order_id]}
    metrics:
      - name: order_revenue
        expression:
          dialects:
            - {dialect: ANSI_SQL, expression: SUM(orders.amount)}
            - {dialect: SNOWFLAKE, expression: SUM(orders.amount)}
        description: Money from orders.
        ai_context: {synonyms: [sales], examples: [revenue last month?]}
      - name: Revenue per Buyer
        expression:
          dialects:
            - dialect: ANSI_SQL
              expression: SUM(orders.amount) / NULLIF(COUNT(DISTINCT orders.buyer), 0)
      - name: large_order_revenue
        expression:
          dialects:
            - dialect: ANSI_SQL
              expression: SUM(CASE WHEN orders.amount > 100 THEN orders.amount ELSE 0 END)
      - name: large_share
        expression:
          dialects:
            - {dialect: ANSI_SQL, expression: large_order_revenue / order_revenue * 100}
      - name: row_count
        expression: {dialects: [{dialect: ANSI_SQL, expression: COUNT(*)}]}
"""


def test_a_foreign_document_is_translated_and_the_rest_listed(tmp_path):
    source = tmp_path / "shop.yaml"
    source.write_text(FOREIGN)
    folder = tmp_path / "drafts"
    with pytest.raises(Exception, match="--category"):
        import_ossie(source, folder)
    assert not folder.exists()  # nothing half-written
    result = import_ossie(source, folder, category="revenue_retention")
    written = {p.stem: yaml.safe_load(p.read_text()) for p in result.written}
    assert written["order_revenue"]["formula"]["expression"] == "sum(amount)"
    assert written["order_revenue"]["aliases"] == ["sales"]
    assert written["revenue_per_buyer"]["name"] == "Revenue per Buyer"
    assert written["revenue_per_buyer"]["formula"]["expression"] == (
        "sum(amount) / count_distinct(buyer)"
    )
    assert written["large_order_revenue"]["formula"]["expression"] == "sum(amount, amount > 100)"
    assert written["large_share"]["formula"]["expression"] == (
        "large_order_revenue / order_revenue * 100"
    )
    assert "COUNT(*)" in written["row_count"]["formula"]["notes"]
    unmapped = "\n".join(result.unmapped)
    for expected in (
        "relationship self",
        "SNOWFLAKE expression",
        "ai_context.examples",
        "field orders.status",
        "metric row_count: expression not translated",
        "id 'revenue_per_buyer'",
        "dataset orders (source db.public.orders)",
    ):
        assert expected in unmapped, expected
    assert "field orders.amount" not in unmapped  # read by a translated metric
    # The drafts load next to the bundled library (placeholders are warnings, not errors).
    registry = load(folder)
    assert registry.evaluate("large_share", {"large_order_revenue": 30, "order_revenue": 120}) == (
        25.0
    )
    with pytest.raises(Exception, match="already exist"):
        import_ossie(source, folder, category="revenue_retention")


def test_an_invalid_document_is_refused_with_its_place(tmp_path, capsys):
    source = tmp_path / "bad.yaml"
    source.write_text('version: "0.1.1"\nsemantic_model:\n  - name: x\n    datasets: []\n')
    code = cli.main(["import", str(source), "--dir", str(tmp_path / "out")])
    _, err = capsys.readouterr()
    assert code == 1 and "semantic_model.0.datasets" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


MY_KPI = """
id: my_revenue
name: My Revenue
summary: Recurring revenue of our own customers, as we count it.
category: revenue_retention
unit: currency
direction: higher_is_better
status: draft
definition: The sum of every customer's recurring revenue in the period.
formula:
  expression: sum(revenue)
datapoints:
  - {name: revenue, description: One customer's MRR in the period., unit: currency, rows: sum,
     time: stock, missing: zero, valid: {min: 0, per: entity_period}}
"""


def test_export_includes_the_users_folders(tmp_path, capsys, monkeypatch):
    """A user's KPI is in every export, from --path and from KPI_REGISTRY_PATH alike."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "my_revenue.yaml").write_text(MY_KPI)
    for how in ("path", "env"):
        monkeypatch.delenv("KPI_REGISTRY_PATH", raising=False)
        extra = ["--path", str(mine)] if how == "path" else []
        if how == "env":
            monkeypatch.setenv("KPI_REGISTRY_PATH", str(mine))
        for fmt in ("json", "ossie", "metricflow"):
            out = tmp_path / f"{how}.{fmt}"
            assert cli.main(["export", "--format", fmt, "--out", str(out), *extra]) == 0, fmt
            assert "my_revenue" in out.read_text(), (how, fmt)
    capsys.readouterr()


def test_every_aggregate_has_one_sql_aggregate():
    """A new aggregate in FUNCTIONS needs its Ossie SQL and its MetricFlow measure (issue #20):
    both tables cover exactly the aggregates, and the leaves of period-level SQL are the
    aggregates and previous()."""
    from kpi_registry.export.metricflow import MEASURES, PERIOD_LEAVES
    from kpi_registry.export.ossie import AGGREGATE_SQL
    from kpi_registry.formula import AGGREGATES

    assert set(AGGREGATE_SQL) == set(MEASURES) == set(AGGREGATES)
    assert PERIOD_LEAVES == {*AGGREGATES, "previous"}
    sql = {func: AGGREGATE_SQL[func]("t.x", "(t.x > 0)") for func in AGGREGATES}
    for func, text in sql.items():
        assert sqlglot.parse_one(text).find(sqlglot.exp.AggFunc), (func, text)
