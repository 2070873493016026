# Every target sets itself up: a fresh clone needs only `make test` or `make site`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test lint format site site-build bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/kpi fmt --check definitions

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) lint
	$(BIN)/pytest -q

# The docs site: build (strict) into site/build, then serve it on http://localhost:8000 and
# rebuild whenever a definition, template or site file changes.
site-build: $(STAMP)
	$(BIN)/kpi site build

site: site-build
	$(BIN)/kpi site serve --no-build

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) site/build site/docs
