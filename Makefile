# The verbs people guess. Everything installs into .venv from requirements.txt.
#   make demo   set up and run the whole pipeline on the bundled data
#   make test   set up (incl. Chromium for browser tests) and run the whole test suite
#   make ci     the CI/CD stages in order, as the Jenkinsfile runs them (docs/cicd.md)
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
UV := $(BIN)/python -m uv
PYTEST_ARGS ?=
YEARS ?= 1
SEED ?= 42
#: The CI/CD stages, in order: each is a target below, `make ci` runs them one after
#: the other, and the Jenkinsfile has one stage per entry (tests/test_cicd.py checks).
CI_STAGES := lint test validate model deploy
OUTCOME ?= failure
#: `make bench BENCH=--pipeline` runs bench/pipeline.py $(BENCH_ARGS) (= `make bench-pipeline`)
#: instead of the seed benchmark; nothing else is a value of BENCH.
BENCH ?=
BENCH_ARGS ?=

.PHONY: help setup setup-ui setup-test demo run test lint lint-jenkins fmt docs serve airflow \
	airflow-stop airflow-status airflow-distributed lint-docker postgres postgres-stop screenshots data sample bench bench-pipeline bench-quick lock clean sync \
	validate model deploy rollback ci ci-notify quality-eval bench-monitors bench-targets bench-seed-step \
	bench-seed-typed

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

setup: ## create .venv, install the pinned requirements and the dq package, generate the source models
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(UV) --version >/dev/null 2>&1 || { $(BIN)/python -m ensurepip -q >/dev/null 2>&1; \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check uv; }
	@$(UV) pip install --quiet -p $(BIN)/python -r requirements.txt
	@$(UV) pip install --quiet -p $(BIN)/python --no-deps -e .
	@# Bytecode of every installed package (uv writes none, and PYTHONDONTWRITEBYTECODE
	@# keeps Python from caching it): without it each process compiles dbt, GX and
	@# pandas from source, 10-12 s of a bundled run (issue 13). Once per requirements change.
	@test $(VENV)/.bytecode -nt requirements.txt || { \
	  $(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1; touch $(VENV)/.bytecode; }
	@$(BIN)/python -m dq sync >/dev/null

setup-ui: ## pinned front-end assets so GX Data Docs render offline, and npm-groovy-lint (npm ci)
	@test -d node_modules/bootstrap -a -d node_modules/npm-groovy-lint || \
	  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

#: Debian packages the tests need beyond Python: a browser, the PostgreSQL server, the
#: Redis broker of the distributed Airflow and Java for Spark (and npm-groovy-lint),
#: each named by a program it installs.
TEST_DEBS := chromium:chromium postgresql:/usr/lib/postgresql redis-server:redis-server \
	default-jre-headless:java

setup-test: setup setup-ui ## also install what the tests need beyond Python: Chromium, PostgreSQL, Redis, Java, assets
	@missing=; for entry in $(TEST_DEBS); do deb=$${entry%%:*}; probe=$${entry#*:}; \
	  command -v $$probe >/dev/null 2>&1 || test -e $$probe || missing="$$missing $$deb"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing:$$missing; run 'sudo apt-get install -y$$missing'" >&2; exit 2; fi; fi

demo: setup run ## set up, then run the whole pipeline on the bundled data

run: ## the whole pipeline: preflight, seed, validate, transform, validate, publish, docs
	$(BIN)/python -m dq run

test: setup-test ## the whole test suite (what .ci/run calls)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

screenshots: setup-test ## re-shoot docs/img/*.png (the README's pictures) with the browser tests
	DQ_UPDATE_README_IMAGES=1 $(BIN)/python -m pytest -m browser

lint: setup lint-docker ## ruff, SQLFluff, pylint (fails under the score in pyproject.toml), hadolint (CI stage)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DQ_BUILD_DB=$(CURDIR)/dbt_project/dev/jaffle_shop.db DQ_BUILD_DIR=$(CURDIR)/dbt_project/dev \
	  $(BIN)/sqlfluff lint dbt_project/models  # the dbt templater connects: the dev sandbox
	$(BIN)/pylint dq dags

lint-docker: setup ## hadolint on the Dockerfile (fails on any finding; no Docker engine needed, <1 s)
	$(BIN)/hadolint Dockerfile

lint-jenkins: setup-ui ## lint the Jenkinsfile with npm-groovy-lint (needs Java 17; ~20 s)
	npx --no-install npm-groovy-lint --noserver --failon error Jenkinsfile

validate: setup ## the data pipeline (CI stage): what `make run` does
	$(BIN)/python -m dq run

model: setup ## features -> train -> F1 gate on the published warehouse (CI stage)
	$(BIN)/python -m dq model

deploy: setup ## promote the gated model and its data release into production/ (CI stage)
	$(BIN)/python -m dq deploy

rollback: setup ## put the release before the current one back into force
	$(BIN)/python -m dq rollback

ci: ## the CI/CD pipeline locally, as Jenkins runs it: lint test validate model deploy
	@for stage in $(CI_STAGES); do \
	  echo "=== make $$stage"; $(MAKE) --no-print-directory $$stage || exit $$?; \
	done

ci-notify: ## notify a CI build's outcome (the Jenkinsfile's post steps): OUTCOME=success|failure
	@test -x $(BIN)/python || { echo "no $(BIN)/python: cannot notify" >&2; exit 0; }
	@build="$${JOB_NAME:-local} #$${BUILD_NUMBER:-0} ($$(git rev-parse --short HEAD 2>/dev/null))"; \
	if [ "$(OUTCOME)" = success ]; then \
	  release="$$($(BIN)/python -m dq releases --current)"; \
	  message="$$build: $(CI_STAGES) passed; release $$release is in force. $${BUILD_URL:-}"; \
	else \
	  message="$$build: stage $${DQ_STAGE:-?} failed; this build left production as it was. $${BUILD_URL:-}"; \
	fi; \
	$(BIN)/python -m dq notify ci $(OUTCOME) "$$message"

fmt: setup ## apply ruff's formatting
	$(BIN)/ruff format .

docs: setup ## dbt docs (GX Data Docs are written by every run)
	$(BIN)/python -m dq docs

serve: setup setup-ui ## serve dbt docs + GX Data Docs on 127.0.0.1:8765 (port: $DQ_DOCS_PORT)
	$(BIN)/python -m dq serve

airflow: setup ## start Airflow locally on 127.0.0.1:8080 (port: $DQ_AIRFLOW_PORT; prints URL + login)
	$(BIN)/python -m dq airflow start

airflow-distributed: setup ## the same DAG on CeleryExecutor: Redis, PostgreSQL, 2 workers (127.0.0.1:8080, port: $DQ_AIRFLOW_PORT)
	$(BIN)/python -m dq airflow start --distributed

postgres: setup ## start the project's own PostgreSQL (127.0.0.1, port DQ_PG_PORT or 55432) for DQ_TARGET=postgres
	$(BIN)/python -m dq postgres start

postgres-stop: ## stop the project's PostgreSQL (its data stays in .services/postgres/)
	$(BIN)/python -m dq postgres stop

airflow-stop: ## stop every Airflow process `make airflow` or `make airflow-distributed` started (Redis too)
	$(BIN)/python -m dq airflow stop

airflow-status: ## health and memory of the local Airflow
	$(BIN)/python -m dq airflow status

bench: setup ## dbt seed: stock dbt-sqlite vs project loader vs sqlite3 .import (~15 min); BENCH=--pipeline: make bench-pipeline
	@case "$(BENCH)" in ""|--pipeline) ;; *) echo "BENCH=$(BENCH): only --pipeline (or nothing)" >&2; exit 2;; esac
	$(if $(filter --pipeline,$(BENCH)),$(BIN)/python bench/pipeline.py $(BENCH_ARGS),$(BIN)/python bench/bench_seeds.py --skip-stock-above 2)

bench-pipeline: setup ## the pipeline on bundled, 1 and 3 years vs the previous release: time, peak RSS, growth, budgets (~10 min)
	$(BIN)/python bench/pipeline.py $(BENCH_ARGS)

bench-quick: setup ## a 30-second smoke run of the seed benchmark
	$(BIN)/python bench/bench_seeds.py --quick

bench-seed-step: setup ## the pipeline's seed step on 1 and 3 years, agate vs streamed CSV reading: time, peak RSS (~3 min)
	$(BIN)/python bench/seed_step.py $(BENCH_ARGS)

bench-seed-typed: setup ## plain dbt seed of 1 year's raw_orders with inferred types, stock vs project loader (~4 min)
	$(BIN)/python bench/seed_typed.py $(BENCH_ARGS)

quality-eval: setup ## silent defects + clean next days through the pipeline: caught/warned/missed, false alarms (~22 min)
	$(BIN)/python -m dq.quality_eval $(EVAL_ARGS)

bench-targets: setup ## the whole pipeline per target (sqlite, postgres) on the bundled data and one year
	$(BIN)/python bench/targets.py $(BENCH_ARGS)

bench-monitors: setup ## the anomaly monitors' cost: the last day of one year of data, DQ_MONITORS=off vs on
	$(BIN)/python bench/monitor_overhead.py

sync: setup ## regenerate dbt_project/generated/ from the source declarations seeds/*.yml
	$(BIN)/python -m dq sync

data: setup ## reproducible benchmark data: make data YEARS=1 -> .cache/data/years-1
	$(BIN)/python -m dq data --years $(YEARS) --seed $(SEED) --out .cache/data/years-$(YEARS) --overwrite

sample: setup ## regenerate the bundled sample in seeds/ (what tests/test_data.py checks)
	$(BIN)/python -m dq data --years 0.08 --seed 42 --out seeds --overwrite

lock: ## re-pin requirements.txt from requirements.in
	$(UV) pip compile -q requirements.in -p $(BIN)/python -o requirements.txt --no-header
	sed -i '1i # Exact pins of requirements.in for Python 3.11 (make lock).' requirements.txt

clean: ## remove build outputs (not the venv, not production/)
	rm -rf warehouse dbt_project/target dbt_project/logs gx/uncommitted/validations gx/uncommitted/data_docs artifacts
