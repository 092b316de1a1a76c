# spark-ml-pipeline: every command a learner or CI needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
UV          := $(VENV)/bin/uv
STAMP       := $(VENV)/.installed
# uv.lock pins every package (uv included: the dev extra) for every role; constraints.txt is the
# same pins for pip (conda, the Dockerfile's uv, the bootstrap below). Both come from `make lock`.
LOCK        := uv.lock
CONSTRAINTS := constraints.txt
LOCK_ARGS   ?=
CAMPAIGN_ID ?= 1
# Whom `make score` says to contact: 500 (users) or 30% (of the treatment group); empty: 30%.
BUDGET      ?=
# Where the config API is served (`make api`, `make up`, `make lab`); every client (the job, the
# runner, the notebooks) finds it there unless CONFIG_API_URL is set (lib.settings).
API_HOST    ?= 127.0.0.1
API_PORT    ?= 8000
export API_HOST API_PORT
PYTEST_ARGS ?=
# Two pytest-xdist workers for the two cores; the tests that share the suite's JVMs run on
# one of them (tests/conftest.py). TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2
BENCH_USERS ?= 5000000

# Spark must bind to loopback and run its Python workers with the venv's interpreter.
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

.PHONY: help setup lock demo test test-fast data train api migrate score spark up down lab lint format bench bench-scale clean check-java

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

check-java:
	@command -v java >/dev/null 2>&1 || { echo "❌ Java 17+ is required by PySpark: install OpenJDK 17 (e.g. apt-get install openjdk-17-jre-headless) and retry"; exit 1; }

# uv comes from PyPI as a package, into the project's own venv, at the version the lock holds;
# after that, uv keeps itself at that version like any other locked package. The venv is made
# by the machine's Python (a real interpreter path for Spark's workers); uv never downloads one.
$(UV):
	@$(PYTHON_BOOT) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "❌ Python 3.11+ is required (found " + sys.version.split()[0] + ")")'
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) uv

# Re-runs when the lock or pyproject changes. --locked refuses a lock that no longer matches
# pyproject (run `make lock`); the last sync is exact: the venv holds the lock's packages only.
# Bytecode is compiled here, as pip does: uv leaves it to the first import, which under
# PYTHONDONTWRITEBYTECODE (set on CI machines and in containers) recompiles pandas, pyspark & co.
# in every process. pyspark is a 456 MB source archive that uv builds on one core (about 20 s
# of a cold setup), so the other packages go in first and compile meanwhile; packages' own
# tests are never imported and not compiled. A file that does not compile is only left as is.
UV_SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV) sync --locked --extra dev --quiet
COMPILE := $(PY) -m compileall -qq -j 0
NO_TESTS := /tests?/
$(STAMP): $(LOCK) pyproject.toml | $(UV)
	$(UV_SYNC) --inexact --no-install-package pyspark
	@echo "$(UV) sync --locked --extra dev: pyspark, while the rest compiles to bytecode"
	@site=$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
	  { $(COMPILE) -x '$(NO_TESTS)|/site-packages/pyspark/' "$$site" || true; } & compiling=$$!; \
	  $(UV_SYNC); synced=$$?; wait $$compiling; test $$synced -eq 0 || exit $$synced; \
	  $(COMPILE) -x '$(NO_TESTS)' "$$site/pyspark" || true
	@# The notebooks' "python3" kernel must be this venv's interpreter (papermill, JupyterLab).
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (spark-ml-pipeline)" >/dev/null
	@# Classic Spark starts a few seconds faster with a class-data archive; recorded once here.
	@if command -v java >/dev/null 2>&1; then $(PY) -m lib.spark record-class-cache; fi
	@touch $(STAMP)

setup: $(STAMP) ## create .venv and install the locked versions (again when uv.lock or pyproject.toml changes)

# Keeps every locked version pyproject still allows; LOCK_ARGS=--upgrade moves all to the newest
# allowed, LOCK_ARGS="--upgrade-package pandas" one. The next `make setup` installs the result.
lock: | $(UV) ## re-resolve uv.lock (+ constraints.txt) after editing pyproject.toml
	UV_PYTHON_DOWNLOADS=never $(UV) lock $(LOCK_ARGS)
	$(UV) export --frozen --all-extras --no-emit-project --no-hashes --quiet -o $(CONSTRAINTS)

data: setup ## generate data/sample_users.parquet (1,000 users)
	$(PY) -m lib.data

train: setup ## train and register models/campaign_model_v1.{pkl,cbm}
	$(PY) -m lib.training

demo: setup check-java ## the whole pipeline on embedded defaults
	$(PY) scripts/demo.py

test: setup check-java ## run the whole test suite
	$(PY) -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Markers are set by tests/conftest.py from each test's folder and fixtures.
FAST_TESTS := not spark and not notebooks and not e2e and not postgres
test-fast: setup ## unit tests only: no Spark, servers, notebooks or PostgreSQL (~2 min)
	$(PY) -m pytest -n $(TEST_WORKERS) -m "$(FAST_TESTS)" $(PYTEST_ARGS)

.PHONY: fuzz
FUZZ_EXAMPLES ?= 2000
fuzz: setup check-java ## larger fuzzing budgets: audience filters (FUZZ_EXAMPLES=2000) and the API
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) API_FUZZ_EXAMPLES=200 API_FUZZ_SCENARIOS=300 \
		$(PY) -m pytest tests/lib/test_audience_fuzz.py tests/api/test_fuzz.py $(PYTEST_ARGS)

migrate: setup ## apply database migrations (DATABASE_URL, default SQLite under data/)
	$(PY) -m api.migrate

api: setup migrate ## serve the config API on API_HOST:API_PORT (127.0.0.1:8000; docs at /docs)
	$(PY) -m uvicorn api.main:app --host $(API_HOST) --port $(API_PORT)

score: setup check-java ## score CAMPAIGN_ID with notebook 04 (papermill) and render the report
	$(PY) -m lib.runner --campaign-id $(CAMPAIGN_ID)$(if $(BUDGET), --contact-budget '$(BUDGET)')

spark: setup check-java ## run the local Spark Connect server in this terminal (Ctrl-C stops it)
	$(PY) -m lib.connect_server run

up: setup check-java ## start the config API and Spark Connect in the background (idempotent)
	$(PY) -m lib.services up

down: ## stop what `make up` started
	@test -x $(PY) && $(PY) -m lib.services down || true

# JupyterLab's project settings (jupyter-config/, read by tests/browser too): open on notebooks/,
# no news pop-up or update check (nothing fetched from the internet), startable as root.
# JUPYTER_CONFIG_PATH adds them to ~/.jupyter's; settings and workspaces stay in the home.
LAB_CONFIG := $(CURDIR)/jupyter-config

lab: up ## start the services, then open JupyterLab on the repository (notebooks/ first)
	env $$($(PY) -m lib.connect_server env) \
	  JUPYTER_CONFIG_PATH="$(LAB_CONFIG)$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	  $(VENV)/bin/jupyter lab --ServerApp.root_dir="$(CURDIR)"

lint: setup ## ruff check + format check, mypy, notebooks stripped
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/nbstripout --verify notebooks/*.ipynb

format: setup ## ruff fix + format, strip notebook outputs
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(VENV)/bin/nbstripout notebooks/*.ipynb

bench: setup check-java ## benchmarks: scoring vs the single-process limit, cold run, API load
	$(PY) -m bench.scoring --n-users $(BENCH_USERS) --variants
	$(PY) -m bench.teaching_run
	$(PY) -m bench.api_load

bench-scale: setup check-java ## scale benchmark: 10M, 30M, 100M users (long; ~4 GB of disk)
	$(PY) -m bench.scale

clean: ## remove generated data, models, outputs and caches (keeps .venv)
	rm -rf data models output catboost_info .pytest_cache .ruff_cache .mypy_cache spark-warehouse metastore_db derby.log
	@test -x $(PY) && $(PY) -c 'from lib.settings import get_settings; d = get_settings().cache_dir; [p.unlink() for p in d.glob("*spark-driver-*.jsa*")]' || true
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
