"""`kpi export`: the JSON catalog (checked against its own schema) and dbt MetricFlow metrics
(checked by dbt-semantic-interfaces' own validator, and against the engine's numbers)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import jsonschema
import pytest
import yaml
from referencing import Registry as SchemaStore
from referencing import Resource

from kpi_registry import cli, load
from kpi_registry.export import catalog_json, catalog_schema, metricflow
from kpi_registry.export.metricflow import valid_name
from kpi_registry.formula import Binary, Call, Name, Number, Unary, parse
from kpi_registry.loading import to_plain
from kpi_registry.schema import kpi_schema
from kpi_registry.worked_examples import example_data, run_example

FIXTURES = Path(__file__).parent / "fixtures" / "extend"
LIBRARY = FIXTURES / "library"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def library():
    return load(LIBRARY, include_bundled=False)


# -- JSON catalog ---------------------------------------------------------------------------
def catalog_errors(document) -> list[str]:
    """Validate with both schemas registered: the catalog's `fields` point at kpi.schema.json."""
    store = SchemaStore().with_resources(
        [(s["$id"], Resource.from_contents(s)) for s in (kpi_schema(), catalog_schema())]
    )
    cls = jsonschema.validators.validator_for(catalog_schema())
    cls.check_schema(catalog_schema())
    validator = cls(catalog_schema(), registry=store)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def from_ast(node: dict):
    """Rebuild formula nodes from the JSON tree (what another tool would do)."""
    kind = node["type"]
    if kind == "number":
        return Number(0, node["value"])
    if kind == "name":
        return Name(0, node["name"])
    if kind == "unary":
        return Unary(0, node["op"], from_ast(node["operand"]))
    if kind == "binary":
        return Binary(0, node["op"], from_ast(node["left"]), from_ast(node["right"]))
    return Call(0, node["function"], tuple(from_ast(a) for a in node["args"]))


def test_catalog_matches_its_schema_and_the_definitions(library):
    document = catalog_json(library)
    assert catalog_errors(document) == []
    json.dumps(document, allow_nan=False)  # strict JSON
    assert document["count"] == len(library) == len(document["kpis"])
    by_id = {k["id"]: k for k in document["kpis"]}
    for kpi in library:
        entry = by_id[kpi.id]
        assert entry["fields"] == to_plain(kpi.data)  # every attribute, as written
        ast = from_ast(entry["formula"]["ast"])
        assert ast == kpi.expression  # the tree is the parsed formula
        assert parse(entry["formula"]["text"]) == kpi.expression
        assert entry["dependencies"] == library.dependencies(kpi.id)

    total = by_id["total_revenue"]
    assert total["formula"]["datapoints"] == ["revenue"]
    assert total["formula"]["ast"]["args"][0] == {
        "type": "name",
        "name": "revenue",
        "kind": "datapoint",
    }
    assert total["used_in"] == [
        "annual_revenue",
        "floored_growth",
        "new_revenue_share",
        "revenue_growth",
        "revenue_per_account",
    ]
    assert by_id["revenue_per_account"]["dependencies"] == ["paying_accounts", "total_revenue"]
    assert by_id["revenue_per_account"]["formula"]["ast"]["left"]["kind"] == "kpi"
    # Reverse links are computed: total_revenue names paying_accounts as leading, so
    # paying_accounts lists total_revenue as lagging, saying where that was declared.
    assert {
        "kpi": "total_revenue",
        "why": "More paying accounts come before more revenue.",
        "declared_in": "total_revenue",
    } in by_id["paying_accounts"]["relations"]["lagging"]
    assert by_id["paying_accounts"]["relations"]["influences"] == [
        {"kpi": "total_revenue", "why": "More paying accounts come before more revenue."}
    ]
    assert by_id["revenue_per_account"]["relations"]["related"][0]["declared_in"] == "total_revenue"
    assert total["source"] == {
        "file": "tests/fixtures/extend/library/total_revenue.yaml",
        "origin": "tests/fixtures/extend/library",
        "overrides": [],
    }

    edges = document["graph"]["edges"]
    assert {"from": "revenue_growth", "to": "total_revenue", "kind": "formula", "why": ""} in edges
    assert {
        "from": "revenue_growth",
        "to": "paying_accounts",
        "kind": "influence_positive",
        "why": "Each adds revenue.",
    } in edges
    assert {
        "from": "paying_accounts",
        "to": "total_revenue",
        "kind": "change_impact",
        "why": "Rises with each new payer.",
    } in edges
    taxonomy = {c["id"]: c for c in document["taxonomy"]}
    assert "total_revenue" in taxonomy["finance"]["kpis"]
    assert "total_revenue" not in taxonomy["growth"]["kpis"]  # primary category only
    revenue = next(d for d in document["datapoints"] if d["name"] == "revenue")
    assert revenue["time"] == "stock" and "total_revenue" in revenue["declared_in"]


def test_catalog_says_where_overrides_came_from():
    registry = load(LIBRARY, FIXTURES / "team_kpis", include_bundled=False)
    document = catalog_json(registry)
    assert catalog_errors(document) == []
    total = next(k for k in document["kpis"] if k["id"] == "total_revenue")
    assert total["name"] == "Total Revenue (team definition)"
    assert total["source"]["origin"] == "tests/fixtures/extend/team_kpis"
    assert total["source"]["overrides"] == ["tests/fixtures/extend/library/total_revenue.yaml"]
    categories = [c["id"] for c in document["taxonomy"]]
    assert categories == ["finance", "growth", "team_goals"]


def test_schema_rejects_a_broken_catalog(library):
    """The schema is strict enough to catch a wrong document (so 'no errors' means something)."""
    document = catalog_json(library)
    document["kpis"][0]["formula"]["ast"] = {"type": "call", "function": "sum"}
    document["kpis"][1]["fields"]["unit"] = "furlongs"
    del document["graph"]
    errors = catalog_errors(document)
    assert any("graph" in e for e in errors)
    assert any("furlongs" in e for e in errors)
    assert any("'formula', 'ast'" in e for e in errors)


def test_export_json_command(tmp_path, capsys):
    out = tmp_path / "catalog.json"
    code, _, err = run(capsys, "export", "--format", "json", "--out", str(out))
    assert code == 0 and f"wrote {out}" in err
    document = json.loads(out.read_text())
    assert catalog_errors(document) == []  # the bundled library
    assert document["count"] > 10
    nrr = next(k for k in document["kpis"] if k["id"] == "net_revenue_retention")
    assert nrr["source"]["file"] == "definitions/net_revenue_retention.yaml"
    assert "starting_revenue" in nrr["dependencies"]

    code, printed, _ = run(capsys, "export", "--schema")
    assert code == 0 and json.loads(printed) == catalog_schema()


# -- MetricFlow -----------------------------------------------------------------------------
def to_semantic_interfaces(document: dict) -> str:
    """dbt's YAML -> the documents dbt-semantic-interfaces parses, as dbt-core does: each
    semantic model and metric its own document, ref() resolved, plus a project config.
    A document in the latest spec (``models:``) goes through latest_to_manifest first."""
    if "models" in document:
        return latest_to_manifest(document)
    docs = []
    for model in document["semantic_models"]:
        model = dict(model)
        alias = model.pop("model").removeprefix("ref('").removesuffix("')")
        model["node_relation"] = {"alias": alias, "schema_name": "analytics"}
        docs.append({"semantic_model": model})
    docs += [{"metric": metric} for metric in document["metrics"]]
    # The time spine in the form every dbt-semantic-interfaces release reads.
    spine = {
        "location": "analytics.metricflow_time_spine",
        "column_name": "date_day",
        "grain": "day",
    }
    docs.append({"project_configuration": {"time_spine_table_configurations": [spine]}})
    return "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


_SPINE = {
    "location": "analytics.metricflow_time_spine",
    "column_name": "date_day",
    "grain": "day",
}


def latest_to_manifest(document: dict) -> str:
    """dbt's latest YAML spec -> the semantic-manifest objects dbt Core 1.12 builds from it,
    in the YAML dbt-semantic-interfaces parses: a semantic model per model (entities and time
    dimensions from its columns, no measures), each simple metric with its aggregation in
    ``metric_aggregation_params`` (the folded measure), ratio and derived inputs under
    ``type_params``. dbt-semantic-interfaces 0.10 has no parser for the model YAML itself (that
    is dbt Core's), so this mapping is ours; what the validator then checks is the manifest."""
    docs = []

    def manifest_metric(metric: dict, model: str | None) -> dict:
        out = {k: metric[k] for k in ("name", "label", "description", "type") if k in metric}
        if metric["type"] == "simple":
            assert model is not None, f"{metric['name']}: a simple metric outside a model"
            agg = {"semantic_model": model, "agg": metric["agg"]}
            if "non_additive_dimension" in metric:
                agg["non_additive_dimension"] = metric["non_additive_dimension"]
            out["type_params"] = {"expr": metric["expr"], "metric_aggregation_params": agg}
        elif metric["type"] == "ratio":
            out["type_params"] = {
                "numerator": {"name": metric["numerator"]},
                "denominator": {"name": metric["denominator"]},
            }
        else:
            out["type_params"] = {"expr": metric["expr"], "metrics": metric["input_metrics"]}
        assert not {"type_params", "measures"} & set(metric), "legacy keys in the latest spec"
        return out

    for model in document["models"]:
        assert model["semantic_model"] == {"enabled": True}
        entities, dimensions = [], []
        for column in model["columns"]:
            assert not {"entity", "dimension"} <= set(column), "a column is one or the other"
            if "entity" in column:
                entity = column["entity"]
                entities.append(
                    {"name": entity["name"], "type": entity["type"], "expr": column["name"]}
                )
            if "dimension" in column:
                dimension = {"name": column["name"], "type": column["dimension"]["type"]}
                if dimension["type"] == "time":
                    dimension["type_params"] = {"time_granularity": column["granularity"]}
                dimensions.append(dimension)
        semantic_model = {
            "name": model["name"],
            "description": model["description"],
            "node_relation": {"alias": model["name"], "schema_name": "analytics"},
            "defaults": {"agg_time_dimension": model["agg_time_dimension"]},
            "primary_entity": model["primary_entity"],
            "entities": entities,
            "dimensions": dimensions,
            "measures": [],
        }
        docs.append({"semantic_model": semantic_model})
        docs += [{"metric": manifest_metric(m, model["name"])} for m in model["metrics"]]
    docs += [{"metric": manifest_metric(m, None)} for m in document.get("metrics", [])]
    docs.append({"project_configuration": {"time_spine_table_configurations": [_SPINE]}})
    return "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def latest_metrics(document: dict) -> list[dict]:
    """Every metric of a latest-spec document: on its model or at the top level."""
    return [*document.get("metrics", []), *(m for x in document["models"] for m in x["metrics"])]


def dsi_issues(yaml_text: str) -> list[str]:
    """Parse with dbt-semantic-interfaces and run its full validator."""
    from dbt_semantic_interfaces.parsing.dir_to_model import (
        parse_yaml_files_to_validation_ready_semantic_manifest,
    )
    from dbt_semantic_interfaces.parsing.objects import YamlConfigFile
    from dbt_semantic_interfaces.validations.semantic_manifest_validator import (
        SemanticManifestValidator,
    )

    contents = to_semantic_interfaces(yaml.safe_load(yaml_text))
    built = parse_yaml_files_to_validation_ready_semantic_manifest(
        [YamlConfigFile(filepath="kpi_metrics.yml", contents=contents)],
        raise_issues_as_exceptions=False,
    )
    issues = [f"parse: {i.message}" for i in built.issues.all_issues]
    result = SemanticManifestValidator().validate_semantic_manifest(built.semantic_manifest)
    return issues + [f"{type(i).__name__}: {i.message}" for i in result.all_issues]


@pytest.mark.parametrize("spec", ["latest", "legacy"])
def test_metricflow_output_passes_dbt_semantic_interfaces(library, spec):
    export = metricflow(library)
    assert dsi_issues(export.to_yaml(spec)) == []
    assert sorted(export.exported) == [
        "annual_revenue",
        "average_score",
        "filtered_revenue",
        "floored_growth",
        "margin_percent",
        "paying_accounts",
        "revenue_growth",
        "revenue_per_account",
        "total_revenue",
    ]


def test_the_validator_catches_a_broken_export(library):
    """Same pipeline, one bad reference: proves the check above can fail."""
    document = metricflow(library).document()
    growth = next(m for m in document["metrics"] if m["name"] == "revenue_growth")
    growth["type_params"]["metrics"][0]["name"] = "no_such_metric"
    assert any("no_such_metric" in issue for issue in dsi_issues(yaml.safe_dump(document)))
    # The latest spec, likewise: an input that does not exist, and a simple metric whose
    # column is not a time dimension of its model.
    latest = yaml.safe_load(metricflow(library).to_yaml("latest"))
    derived = next(m for m in latest_metrics(latest) if m["name"] == "revenue_growth")
    derived["input_metrics"][0]["name"] = "no_such_metric"
    assert any("no_such_metric" in issue for issue in dsi_issues(yaml.safe_dump(latest)))
    latest = yaml.safe_load(metricflow(library).to_yaml("latest"))
    latest["models"][0]["agg_time_dimension"] = "no_such_time"
    assert any("no_such_time" in issue for issue in dsi_issues(yaml.safe_dump(latest)))


def test_latest_spec_folds_measures_into_simple_metrics(library):
    """dbt's latest spec: models under `models:` with `semantic_model` enabled, entity and
    time dimension on columns, measures gone (each a simple metric with agg and expr), ratio
    and derived parameters as top-level keys; the legacy spec keeps measures and type_params."""
    export = metricflow(library)
    latest = yaml.safe_load(export.to_yaml("latest"))
    legacy = yaml.safe_load(export.to_yaml("legacy"))
    assert "semantic_models" not in latest and "semantic_models" in legacy
    assert "type_params" not in yaml.safe_dump(latest) and "measures:" not in yaml.safe_dump(latest)
    (model,) = [m for m in latest["models"] if m["name"] == "customer_inputs"]
    assert model["semantic_model"] == {"enabled": True}
    assert model["agg_time_dimension"] == "period"
    period = next(c for c in model["columns"] if c["name"] == "period")
    assert period["dimension"] == {"type": "time"} and period["granularity"] == "month"
    simple = {m["name"]: m for m in model["metrics"]}
    assert simple["total_revenue"]["agg"] == "sum" and simple["total_revenue"]["expr"] == "revenue"
    assert simple["total_revenue"]["non_additive_dimension"]["name"] == "period"  # a stock
    top = {
        m["name"]: m
        for m in latest.get("metrics", []) + [m for x in latest["models"] for m in x["metrics"]]
    }
    legacy_metrics = {m["name"]: m for m in legacy["metrics"]}
    assert set(top) == set(legacy_metrics)  # the same metrics, written the other way
    growth = top["revenue_growth"]
    assert growth["type"] == "derived"
    assert growth["input_metrics"] == legacy_metrics["revenue_growth"]["type_params"]["metrics"]
    ratio = top["revenue_per_account"]
    assert (ratio["numerator"], ratio["denominator"]) == ("total_revenue", "paying_accounts")


def test_metric_types_offsets_and_reasons(library):
    export = metricflow(library, grain="month")
    metrics = {m["name"]: m for m in export.metrics}
    assert metrics["total_revenue"]["type"] == "simple"
    assert metrics["total_revenue"]["type_params"] == {"measure": "revenue"}
    assert metrics["total_revenue"]["label"] == "Total Revenue"
    assert metrics["revenue_per_account"]["type"] == "ratio"
    assert metrics["revenue_per_account"]["type_params"] == {
        "numerator": {"name": "total_revenue"},
        "denominator": {"name": "paying_accounts"},
    }
    growth = metrics["revenue_growth"]
    assert growth["type"] == "derived"
    assert growth["type_params"]["metrics"] == [
        {"name": "total_revenue"},
        {"name": "total_revenue", "alias": "total_revenue_prev", "offset_window": "1 month"},
    ]
    assert "NULLIF(total_revenue_prev, 0)" in growth["type_params"]["expr"]

    models = {m["name"]: m for m in export.semantic_models()}
    customer = models["customer_inputs"]
    assert customer["entities"] == [{"name": "customer", "type": "foreign", "expr": "customer"}]
    measures = {m["name"]: m for m in customer["measures"]}
    assert measures["revenue"] == {
        "name": "revenue",
        "agg": "sum",
        "expr": "revenue",
        "non_additive_dimension": {"name": "period", "window_choice": "max"},
    }
    assert measures["average_survey_score"] == {
        "name": "average_survey_score",
        "agg": "average",
        "expr": "survey_score",
        "non_additive_dimension": {"name": "period", "window_choice": "max"},
    }
    assert measures["filtered_revenue_m1"]["expr"] == (
        "CASE WHEN (COALESCE(revenue, 0) >= 150) THEN COALESCE(revenue, 0) ELSE 0 END"
    )
    assert models["period_inputs"].get("entities") is None  # margin rows have no entity

    assert set(export.skipped) == {"new_account_revenue", "new_revenue_share", "large_deals"}
    assert "over previous()" in export.skipped["new_account_revenue"]
    assert export.skipped["new_revenue_share"].startswith("uses new_account_revenue")
    assert "flow datapoints" in export.skipped["large_deals"]

    quarterly = metricflow(library, grain="quarter")
    growth = next(m for m in quarterly.metrics if m["name"] == "revenue_growth")
    assert growth["type_params"]["metrics"][1]["offset_window"] == "1 quarter"


def mf_series(document: dict, name: str, con, periods: list[str]) -> list[float | None]:
    """A small stand-in for MetricFlow at the tables' own grain: each measure is its
    aggregate over the table's rows per period; ratio and derived metrics combine inputs
    period by period, an offset reading an earlier period."""
    metrics = {m["name"]: m for m in document["metrics"]}
    owner = {
        ms["name"]: (model["name"], ms)
        for model in document["semantic_models"]
        for ms in model["measures"]
    }
    sql_agg = {"sum": "SUM", "average": "AVG", "median": "MEDIAN", "min": "MIN", "max": "MAX"}
    metric = metrics[name]
    params = metric["type_params"]
    if metric["type"] == "simple":
        table, measure = owner[params["measure"]]
        rows = con.execute(
            f"SELECT period, {sql_agg[measure['agg']]}({measure['expr']}) FROM {table} "
            "GROUP BY period"
        ).fetchall()
        values = dict(rows)
        return [None if values.get(p) is None else float(values[p]) for p in periods]
    if metric["type"] == "ratio":
        num = mf_series(document, params["numerator"]["name"], con, periods)
        den = mf_series(document, params["denominator"]["name"], con, periods)
        return [None if n is None or not d else n / d for n, d in zip(num, den)]
    inputs = []
    for item in params["metrics"]:
        series = mf_series(document, item["name"], con, periods)
        offset = int(item.get("offset_window", "0 x").split()[0])
        shifted = [series[i - offset] if i >= offset else None for i in range(len(periods))]
        inputs.append((item.get("alias", item["name"]), shifted))
    out = []
    for i in range(len(periods)):
        select = ", ".join(f"CAST(? AS DOUBLE) AS {alias}" for alias, _ in inputs)
        row = con.execute(
            f"SELECT {params['expr']} FROM (SELECT {select})", [s[i] for _, s in inputs]
        ).fetchone()
        out.append(row[0])
    return out


def test_exported_metrics_compute_what_the_engine_computes(library):
    """Run each exported metric's SQL on the KPI's own worked example in DuckDB and compare
    with the engine: the mapping is exact, not just well-formed."""
    export = metricflow(library)
    document = export.document()
    models = {m["name"]: m for m in document["semantic_models"]}
    checked = 0
    for kpi_id in export.exported:
        kpi = library[kpi_id]
        example = kpi.examples[0]
        frame = example_data(example).rename(columns={example.period: "period"})
        con = duckdb.connect()
        for model_name in models:
            con.register(model_name, frame)  # every assumed table: the example's rows
        periods = sorted(frame["period"].astype(str).unique())
        got = mf_series(document, kpi_id, con, periods)
        want = run_example(library.kpis, kpi, example)[kpi_id].tolist()
        for period, g, w in zip(periods, got, want):
            if w is None or math.isnan(w):
                assert g is None, f"{kpi_id} {period}: MetricFlow SQL gives {g}, engine none"
            else:
                assert g == pytest.approx(w), f"{kpi_id} {period}: {g} != {w}"
        checked += 1
    assert checked == 9


def test_bundled_library_exports_valid_metricflow(tmp_path, capsys):
    out = tmp_path / "kpi_metrics.yml"
    code, _, err = run(capsys, "export", "--format", "metricflow", "--out", str(out))
    assert code == 0 and "KPIs exported as MetricFlow metrics" in err
    latest = out.read_text()
    assert latest.startswith("# Generated by `kpi export --format metricflow`")
    assert "latest metrics spec" in latest.splitlines()[0]
    assert "# Not exported (no exact MetricFlow equivalent):" in latest
    assert dsi_issues(latest) == []
    flag = ["--metricflow-spec", "legacy"]
    code, _, err = run(capsys, "export", "--format", "metricflow", "--out", str(out), *flag)
    assert code == 0
    text = out.read_text()
    assert "legacy metrics spec" in text.splitlines()[0]
    assert dsi_issues(text) == []
    document = yaml.safe_load(text)
    names = {m["name"] for m in document["metrics"]}
    assert "monthly_recurring_revenue" in names and "expansion_revenue" not in names
    assert all(valid_name(n) for n in names)
    in_latest = yaml.safe_load(latest)
    latest_names = {m["name"] for m in in_latest.get("metrics", [])}
    latest_names |= {m["name"] for model in in_latest["models"] for m in model["metrics"]}
    assert latest_names == names
    code, _, err = run(capsys, "export", "--format", "json", *flag)
    assert code == 1 and "--metricflow-spec" in err


def test_nothing_to_export_is_an_error(tmp_path, capsys):
    import kpi_registry.registry as registry_module

    folder = tmp_path / "lonely"
    folder.mkdir()
    (folder / "_taxonomy.yaml").write_text((LIBRARY / "_taxonomy.yaml").read_text())
    (folder / "large_deals.yaml").write_text((LIBRARY / "large_deals.yaml").read_text())
    registry = load(folder, include_bundled=False)
    assert metricflow(registry).exported == []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry_module, "load_cached", lambda *paths: registry)
        code, _, err = run(capsys, "export", "--format", "metricflow")
    assert code == 1 and "no KPI formula maps to MetricFlow" in err and "large_deals" in err


def test_months_in_period_is_not_exported_as_a_constant(tmp_path):
    # A number for the export's grain would be wrong as soon as MetricFlow is asked for the
    # metric at another grain (a quarterly lifetime a third of the monthly one), so it stays out.
    from conftest import REVENUE, Library

    defs = Library(tmp_path / "defs")
    defs.add("mrr_total", datapoints=[REVENUE])
    defs.add("revenue_per_month", "mrr_total / months_in_period()", datapoints=[])
    defs.add("revenue_times_months", "sum(revenue * months_in_period())", datapoints=[REVENUE])
    export = metricflow(load(defs.root, include_bundled=False))
    assert "mrr_total" in {m["name"] for m in export.metrics}
    for kpi_id in ("revenue_per_month", "revenue_times_months"):
        assert "months_in_period() depends on the grain" in export.skipped[kpi_id], kpi_id


def test_export_out_is_written_whole_or_not_at_all(tmp_path, capsys, monkeypatch):
    import os

    from kpi_registry import files

    out = tmp_path / "catalog.json"
    code, _, _ = run(capsys, "export", "--format", "json", "--out", str(out))
    umask = os.umask(0o022)
    os.umask(umask)
    assert code == 0 and out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    before = out.read_text()

    real_fdopen = os.fdopen

    class Interrupted:  # the write stops half-way, as on Ctrl-C or a full disk
        def __init__(self, fd, *args, **kwargs):
            self.f = real_fdopen(fd, "w", encoding="utf-8")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:100])
            raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fdopen", Interrupted)
    code, _, err = run(capsys, "export", "--format", "metricflow", "--out", str(out))
    monkeypatch.undo()
    assert code == 130, err  # interrupted
    assert out.read_text() == before  # the earlier export, whole
    assert [p.name for p in tmp_path.iterdir()] == ["catalog.json"]  # no temporary file left

    code, _, err = run(capsys, "export", "--out", str(out / "x.json"))
    assert code == 1 and f"{out} is a file, not a folder" in err


def test_display_path_with_folders_remembered_says_what_resolving_each_path_says(
    tmp_path, monkeypatch
):
    """The catalog resolves each folder once (a 20,000-file library names a few folders);
    a file that is a link, a relative path and the folder itself still come out as when every
    path is resolved afresh."""
    from kpi_registry.export.catalog import display_path

    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    (work / "defs").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "real.yaml").write_text("id: x\n")
    (work / "defs" / "plain.yaml").write_text("id: y\n")
    (work / "defs" / "linked.yaml").symlink_to(elsewhere / "real.yaml")
    (work / "via").symlink_to(work / "defs")
    monkeypatch.chdir(work)
    paths = [
        work / "defs" / "plain.yaml",
        work / "defs" / "linked.yaml",
        work / "via" / "plain.yaml",
        Path("defs/plain.yaml"),
        Path("defs/../defs/plain.yaml"),
        Path("."),
        Path("defs/.."),
        elsewhere / "real.yaml",
    ]
    folders: dict[Path, Path] = {}
    remembered = [display_path(p, folders) for p in paths]
    assert remembered == [display_path(p) for p in paths]
    # a link to a file outside the working folder is shown as given
    assert remembered[:4] == ["defs/plain.yaml", str(work / "defs" / "linked.yaml"),
                              "defs/plain.yaml", "defs/plain.yaml"]  # fmt: skip
    assert len(folders) < len(paths)  # really remembered
