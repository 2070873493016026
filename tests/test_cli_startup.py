"""Commands that only browse start fast: no pandas, jsonschema or duckdb, and a cached library.

Timing is measured by bench/startup_bench.py, not here; these tests assert what makes it fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kpi_registry import registry as registry_module
from kpi_registry.registry import cache_dir, load_cached

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("pandas", "numpy", "jsonschema", "duckdb", "sqlglot")

# Runs the CLI in a fresh interpreter, then reports which heavy modules it imported.
PROBE = """
import json, sys
from kpi_registry.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


def _probe(probe: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``probe`` in a fresh interpreter that imports this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", probe, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _heavy_imports(args: list[str], cwd: Path) -> list[str]:
    proc = _probe(PROBE, args, cwd)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), proc.stdout + proc.stderr
    return report["heavy"]


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["list"],
        ["list", "--format", "json"],
        ["show", "net_revenue_retention"],
        ["show", "customer_lifetime_value"],  # a driver tree several KPIs deep
        ["search", "churn"],
        ["validate", "--no-examples"],
        ["fmt", "--check", str(ROOT / "definitions")],
        ["sql", "--help"],
    ],
    ids=lambda a: " ".join(a),
)
def test_browsing_commands_import_no_dataframe_or_schema_library(args, tmp_path):
    assert _heavy_imports(args, tmp_path) == []


def test_new_imports_no_dataframe_or_schema_library(tmp_path):
    args = ["new", "Support Cost per Ticket", "--category", "support_quality", "--dir", "."]
    assert _heavy_imports(args, tmp_path) == []
    assert (tmp_path / "support_cost_per_ticket.yaml").is_file()


def test_evaluating_still_works_after_the_lazy_imports(tmp_path):
    """The other side of the rule: eval imports pandas when it needs it."""
    data = tmp_path / "mrr.csv"
    data.write_text("month,customer,revenue\n2024-01,a,100\n2024-02,a,120\n")
    args = ["eval", "net_revenue_retention", "--data", str(data), "--period", "month"]
    args += ["--entity", "customer"]
    assert "pandas" in _heavy_imports(args, tmp_path)


# -- the library cache --------------------------------------------------------------------------
def test_cache_lives_outside_the_checkout():
    assert not cache_dir().resolve().is_relative_to(ROOT)


def test_cached_library_is_reused_and_sees_every_change(library, monkeypatch):
    library.add("team_metric", name="Team Metric")
    first = load_cached(library.root, include_bundled=False)
    calls = []
    real_load = registry_module.load
    monkeypatch.setattr(
        registry_module, "load", lambda *a, **k: calls.append(a) or real_load(*a, **k)
    )

    again = load_cached(library.root, include_bundled=False)  # same files: read back
    assert calls == []
    assert again["team_metric"].name == first["team_metric"].name == "Team Metric"

    # Same size, same modification time: only the content tells the change apart.
    path = library.root / "team_metric.yaml"
    stat = path.stat()
    path.write_text(path.read_text().replace("name: Team Metric", "name: Team Metrix"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size
    assert load_cached(library.root, include_bundled=False)["team_metric"].name == "Team Metrix"
    assert len(calls) == 1

    library.add("other_metric")  # a new file
    assert "other_metric" in load_cached(library.root, include_bundled=False).kpis
    assert len(calls) == 2
    (library.root / "other_metric.yaml").unlink()  # a file gone
    assert "other_metric" not in load_cached(library.root, include_bundled=False).kpis
    assert len(calls) == 2  # back to files loaded before: that cache entry is still right


def test_unreadable_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("KPI_REGISTRY_CACHE", str(tmp_path))
    load_cached()
    for pickle_file in tmp_path.glob("library-*.pickle"):
        pickle_file.write_bytes(b"not a pickle")
    assert "net_revenue_retention" in load_cached().kpis


# -- kpi --help: registering the commands imports none of the library ---------------------------
#: What `kpi --help` must not import: the library (registry, YAML, the formula parser), the
#: data and SQL libraries, and the modules whose imports pull those in at registration.
NOT_FOR_HELP = (
    "kpi_registry.registry",
    "kpi_registry.loading",
    "kpi_registry.errors",
    "kpi_registry.sql.spec",
    "kpi_registry.mcp_server",
    "yaml",
    "ruamel",
    "jinja2",
    "jsonschema",
    "pandas",
    "numpy",
    "sqlglot",
    "duckdb",
)


def _imported_by_kpi(args: list[str], cwd: Path) -> set[str]:
    """The modules a `kpi` run (through the installed entry point's module) has imported."""
    probe = (
        "import atexit, json, runpy, sys; sys.argv = ['kpi', *sys.argv[1:]];"
        "atexit.register(lambda: sys.stderr.write('\\nMODULES:' + json.dumps(sorted("
        "m.split('.')[0] if not m.startswith('kpi_registry') else m for m in sys.modules))));"
        "runpy.run_module('kpi_registry', run_name='__main__')"
    )
    proc = _probe(probe, args, cwd)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stderr.rpartition("MODULES:")[2]))


@pytest.mark.parametrize("args", [["--help"], ["sql", "--help"]], ids=" ".join)
def test_help_imports_nothing_heavy(args, tmp_path):
    imported = _imported_by_kpi(args, tmp_path)
    assert "kpi_registry.cli" in imported  # the probe really ran the command line
    heavy = set(NOT_FOR_HELP) - (
        {"kpi_registry.errors", "kpi_registry.sql.spec"} if args[0] == "sql" else set()
    )
    assert sorted(imported & heavy) == []


def test_help_lists_every_command_without_building_their_options(capsys):
    from kpi_registry.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "sql" in sub.choices and "sql" in parser.format_help()
    sql = sub.choices["sql"]
    assert sql._fill is not None  # its options wait for first use
    assert "--dialect" in sql.format_help() and sql._fill is None
    args = build_parser().parse_args(["sql", "nrr", "--table", "t", "--period", "month"])
    assert args.dialect == "duckdb" and args.func.__name__ == "cmd_sql"


def test_options_spelt_for_a_light_start_match_the_library():
    """The few constants the command line spells itself, so that registering a command need
    not import the module that owns them, agree with that module."""
    import importlib

    from kpi_registry import periods, registry
    from kpi_registry.cli import args, export, mcp

    # the module: kpi_registry.export's own name `metricflow` is the function
    metricflow_module = importlib.import_module("kpi_registry.export.metricflow")

    assert args.ENV_PATH == registry.ENV_PATH
    assert args.GRAINS == tuple(periods.GRAINS)
    assert args.GRAINS == metricflow_module.GRAINS
    assert export.METRICFLOW_SPECS == metricflow_module.SPECS
    assert mcp.DESCRIPTION.startswith("Serve the registry to AI assistants")
