# The verbs people guess. Everything installs into .venv from requirements.txt.
#   make demo   set up and run the whole pipeline on the bundled data
#   make test   set up (incl. Chromium for browser tests) and run the whole test suite
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV := $(BIN)/python -m uv
PYTEST_ARGS ?=
YEARS ?= 1
SEED ?= 42

.PHONY: help setup setup-ui setup-test demo run test lint fmt docs serve airflow airflow-stop \
	airflow-status screenshots data sample bench bench-quick lock clean sync

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

setup: ## create .venv, install the pinned requirements and the dq package, generate the source models
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(UV) --version >/dev/null 2>&1 || { $(BIN)/python -m ensurepip -q >/dev/null 2>&1; \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check uv; }
	@$(UV) pip install --quiet -p $(BIN)/python -r requirements.txt
	@$(UV) pip install --quiet -p $(BIN)/python --no-deps -e .
	@$(BIN)/python -m dq sync >/dev/null

setup-ui: ## pinned front-end assets so GX Data Docs render offline (npm ci)
	@test -d node_modules/bootstrap || npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

setup-test: setup setup-ui ## also install what the tests need beyond Python: Chromium, assets
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: run 'sudo apt-get install -y chromium'" >&2; exit 2; fi; }

demo: setup run ## set up, then run the whole pipeline on the bundled data

run: ## the whole pipeline: preflight, seed, validate, transform, validate, publish, docs
	$(BIN)/python -m dq run

test: setup-test ## the whole test suite (what .ci/run calls)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

screenshots: setup-test ## re-shoot docs/img/*.png (the README's pictures) with the browser tests
	DQ_UPDATE_README_IMAGES=1 $(BIN)/python -m pytest -m browser

lint: setup ## ruff and SQLFluff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DQ_BUILD_DB=$(CURDIR)/dbt_project/dev/jaffle_shop.db DQ_BUILD_DIR=$(CURDIR)/dbt_project/dev \
	  $(BIN)/sqlfluff lint dbt_project/models  # the dbt templater connects: the dev sandbox

fmt: setup ## apply ruff's formatting
	$(BIN)/ruff format .

docs: setup ## dbt docs (GX Data Docs are written by every run)
	$(BIN)/python -m dq docs

serve: setup setup-ui ## serve dbt docs + GX Data Docs on 127.0.0.1:8765 (port: $DQ_DOCS_PORT)
	$(BIN)/python -m dq serve

airflow: setup ## start Airflow locally on 127.0.0.1:8080 (port: $DQ_AIRFLOW_PORT; prints URL + login)
	$(BIN)/python -m dq airflow start

airflow-stop: ## stop every Airflow process `make airflow` started
	$(BIN)/python -m dq airflow stop

airflow-status: ## health and memory of the local Airflow
	$(BIN)/python -m dq airflow status

bench: setup ## dbt seed: stock dbt-sqlite vs project loader vs sqlite3 .import (~15 min)
	$(BIN)/python bench/bench_seeds.py --skip-stock-above 2

bench-quick: setup ## a 30-second smoke run of the seed benchmark
	$(BIN)/python bench/bench_seeds.py --quick

sync: setup ## regenerate dbt_project/generated/ from the source declarations seeds/*.yml
	$(BIN)/python -m dq sync

data: setup ## reproducible benchmark data: make data YEARS=1 -> .cache/data/years-1
	$(BIN)/python -m dq data --years $(YEARS) --seed $(SEED) --out .cache/data/years-$(YEARS) --overwrite

sample: setup ## regenerate the bundled sample in seeds/ (what tests/test_data.py checks)
	$(BIN)/python -m dq data --years 0.08 --seed 42 --out seeds --overwrite

lock: ## re-pin requirements.txt from requirements.in
	$(UV) pip compile -q requirements.in -p $(BIN)/python -o requirements.txt --no-header
	sed -i '1i # Exact pins of requirements.in for Python 3.11 (make lock).' requirements.txt

clean: ## remove build outputs (not the venv)
	rm -rf warehouse dbt_project/target dbt_project/logs gx/uncommitted/validations gx/uncommitted/data_docs artifacts
