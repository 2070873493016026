"""Shared fixtures: small definition folders written on the fly, so tests control every byte."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml


@pytest.fixture(autouse=True, scope="session")
def _library_cache(tmp_path_factory):
    """Commands cache loaded libraries (registry.load_cached): in a folder of this run, not in
    the user's cache, and inherited by the commands tests start as subprocesses."""
    patch = pytest.MonkeyPatch()
    patch.setenv("KPI_REGISTRY_CACHE", str(tmp_path_factory.mktemp("library-cache")))
    yield
    patch.undo()


REVENUE = {
    "name": "revenue",
    "description": "Recurring revenue of one customer in one period.",
    "unit": "currency",
    "rows": "sum",
    "time": "stock",
    "missing": "zero",
    "valid": {"min": 0, "per": "entity_period"},  # as the bundled library declares MRR
}

# The revenue family exactly as the formula issue specifies it.
FAMILY = {
    "starting_revenue": "sum(previous(revenue))",
    "expansion_revenue": (
        "sum(revenue - previous(revenue), previous(revenue) > 0 and revenue > previous(revenue))"
    ),
    "contraction_revenue": (
        "sum(previous(revenue) - revenue, previous(revenue) > 0 and revenue > 0 "
        "and revenue < previous(revenue))"
    ),
    "churned_revenue": "sum(previous(revenue), previous(revenue) > 0 and revenue = 0)",
    "new_revenue": (
        "sum(revenue, previous(revenue) = 0 and revenue > 0 and not ever_before(revenue > 0))"
    ),
    "reactivation_revenue": (
        "sum(revenue, previous(revenue) = 0 and revenue > 0 and ever_before(revenue > 0))"
    ),
    "net_revenue_retention": (
        "(starting_revenue + expansion_revenue - contraction_revenue - churned_revenue)"
        " / starting_revenue * 100"
    ),
    "gross_revenue_retention": (
        "(starting_revenue - contraction_revenue - churned_revenue) / starting_revenue * 100"
    ),
    "expansion_revenue_rate": "expansion_revenue / starting_revenue * 100",
    "expansion_revenue_growth_rate": (
        "(expansion_revenue - previous(expansion_revenue)) / previous(expansion_revenue) * 100"
    ),
    "quick_ratio": (
        "(new_revenue + expansion_revenue + reactivation_revenue)"
        " / (contraction_revenue + churned_revenue)"
    ),
    "monthly_recurring_revenue": "sum(revenue)",
}

ROOT = Path(__file__).resolve().parents[1]
# Test folders repeat the bundled revenue_retention category and its function word for word
# (allowed), so they can be loaded on their own or on top of the bundled library.
_BUNDLED = yaml.safe_load((ROOT / "definitions" / "_taxonomy.yaml").read_text("utf-8"))
TAXONOMY = {
    "functions": {"customer_success": _BUNDLED["functions"]["customer_success"]},
    "categories": {
        "revenue_retention": _BUNDLED["categories"]["revenue_retention"],
        "finance": {"name": "Finance", "description": "Money matters."},
    },
}


def definition(kpi_id: str, expression: str = "sum(revenue)", **fields: Any) -> dict[str, Any]:
    """A minimal valid draft definition; keyword arguments replace or add fields."""
    data: dict[str, Any] = {
        "id": kpi_id,
        "name": kpi_id.replace("_", " ").title(),
        "summary": f"Test KPI {kpi_id}.",
        "category": "revenue_retention",
        "unit": "currency",
        "direction": "higher_is_better",
        "status": "draft",
        "definition": f"The {kpi_id} used in tests.",
        "formula": {"expression": expression},
        "datapoints": [copy.deepcopy(REVENUE)],
    }
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


class Library:
    """A folder of definitions written by a test."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "_taxonomy.yaml").write_text(yaml.safe_dump(TAXONOMY), "utf-8")

    def add(self, kpi_id: str, expression: str = "sum(revenue)", **fields: Any) -> Path:
        data = definition(kpi_id, expression, **fields)
        return self.write(f"{kpi_id}.yaml", yaml.safe_dump(data, sort_keys=False))

    def write(self, name: str, text: str | bytes) -> Path:
        path = self.root / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, "utf-8")
        return path

    def family(self) -> Library:
        for kpi_id, expression in FAMILY.items():
            uses_revenue = "revenue" in expression.replace("_revenue", "")
            self.add(kpi_id, expression, datapoints=[REVENUE] if uses_revenue else None)
        return self


@pytest.fixture
def library(tmp_path: Path) -> Library:
    return Library(tmp_path / "defs")


@pytest.fixture
def family(tmp_path: Path):
    """A registry holding the revenue family, independent of the bundled library."""
    import kpi_registry

    lib = Library(tmp_path / "family").family()
    return kpi_registry.load(lib.root, include_bundled=False)


# -- Apache Spark --------------------------------------------------------------------------------
#: A local session sized for tiny tables and big statements: two threads, two shuffle
#: partitions, no UI, no Hive catalog, no adaptive re-planning and no code generation (both
#: cost more than they save on a few hundred rows), listening on 127.0.0.1 only.
SPARK_CONF = {
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "1g",
}


def spark_unavailable() -> str | None:
    """Why a local Spark cannot start here (no pyspark, no Java), or None."""
    import shutil

    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -e '.[dev]')"
    java_home = os.environ.get("JAVA_HOME")
    if not shutil.which("java") and not (java_home and Path(java_home, "bin", "java").exists()):
        return "no Java runtime (apt-get install default-jre-headless)"
    return None


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole run, stopped at its end. Skipped where Spark
    cannot run; under CI (CI set), where .ci/run installs Java, a missing one fails. The
    Spark tests are left out of a plain `pytest` run (pyproject's addopts): `make test-spark`
    or `pytest -m spark` runs them."""
    reason = spark_unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Spark cannot start: {reason}")
        pytest.skip(reason)
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("kpi-registry-tests")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
