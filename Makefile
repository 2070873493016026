# Every target sets itself up: a fresh clone needs only `make test` or `make site`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The exact versions `make test` installs (and CI with it): pyproject.toml keeps lower bounds for
# people who install the package into their own environment; this lock is what was tested.
LOCK := requirements-dev.txt
PIP_VERSION := 26.3

.PHONY: test test-spark test-latest lock lint format site site-build bench clean check-java

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet 'pip==$(PIP_VERSION)'
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

# Refresh the lock to the newest releases pyproject.toml admits, for every Python it supports
# (uv's universal resolution; see the commit that introduced it). Run `make test` after it.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.10 \
		--no-emit-package kpi-registry --upgrade --quiet -o $(LOCK)

# The suite against the newest release of every dependency, ignoring the lock, in a venv of its
# own: drift is found on purpose, not by a newcomer. Green here means `make lock` is safe.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/pip install --quiet --upgrade pip
	.venv-latest/bin/pip install --quiet --upgrade -e '.[dev]'
	.venv-latest/bin/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/kpi fmt --check definitions

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The Spark tests run the generated SQL on Apache Spark, which needs Java (.ci/run installs it;
# under CI a missing Java fails them, elsewhere they are skipped): say so before the run.
check-java:
	@command -v java >/dev/null 2>&1 || [ -x "$$JAVA_HOME/bin/java" ] || echo "note: no Java \
	runtime, the Spark tests will be skipped (Debian: apt-get install default-jre-headless)"

# The whole suite but Spark (pyproject's addopts leave the `spark` marker out), spread over the
# machine's cores (at most 4) by pytest-xdist, a test file per worker; `make test WORKERS=0` runs
# it in one process.
WORKERS ?= auto
test: $(STAMP) lint
	$(BIN)/pytest -q -n $(WORKERS) --maxprocesses 4 --dist loadfile

# The generated Spark SQL on Apache Spark in local mode (tests/test_sql_spark.py, one session).
test-spark: $(STAMP) check-java
	$(BIN)/pytest -q -m spark

# The docs site: build (strict) into site/build, then serve it on http://localhost:8000 and
# rebuild whenever a definition, template or site file changes.
site-build: $(STAMP)
	$(BIN)/kpi site build

site: site-build
	$(BIN)/kpi site serve --no-build

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .venv-latest site/build site/docs
