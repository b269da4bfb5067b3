# Everything a newcomer needs: `make demo` and `make test` build their own virtual
# environment from pyproject.toml on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck pytest services clean azurite zenml apps-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[all,test]'
	touch $(STAMP)

# Azure Blob emulator for the object-store tests, installed into the project (.azurite/).
AZURITE := .azurite/node_modules/.bin/azurite-blob

$(AZURITE):
	@command -v npm >/dev/null || { echo "npm is needed for azurite (install Node.js >= 18)"; exit 1; }
	npm install --prefix .azurite --no-audit --no-fund --loglevel=error azurite

azurite: $(AZURITE)

# ZenML's own file backup engine, for tests/integration/test_zenml_dumps.py (dumps made and
# restored by ZenML itself). A venv of its own: ZenML pins its own SQLAlchemy, pydantic and
# click, and nothing of this project imports it. The `local` extra is what its backup engine
# imports (sqlmodel, SQLAlchemy, pymysql); no other extra. About 15 s to build.
ZENML_VENV := .zenml-venv
ZENML_VERSION ?= 0.98.0
ZENML_STAMP := $(ZENML_VENV)/.installed-$(ZENML_VERSION)

$(ZENML_STAMP):
	rm -rf $(ZENML_VENV)
	$(PYTHON) -m venv $(ZENML_VENV)
	$(ZENML_VENV)/bin/pip install --quiet --upgrade pip
	$(ZENML_VENV)/bin/pip install --quiet 'zenml[local]==$(ZENML_VERSION)'
	touch $(ZENML_STAMP)

zenml: $(ZENML_STAMP)

# Real applications (MLflow, Optuna, JupyterHub) for tests/apps: their own databases are built,
# backed up, restored and read back by the apps. A venv of their own, every version pinned in
# tests/apps/requirements.txt, so their dependencies never meet Airflow's.
APPS_VENV := build/apps-venv
APPS_STAMP := $(APPS_VENV)/.installed

$(APPS_STAMP): tests/apps/requirements.txt
	rm -rf $(APPS_VENV)
	$(PYTHON) -m venv $(APPS_VENV)
	$(APPS_VENV)/bin/pip install --quiet --upgrade pip
	$(APPS_VENV)/bin/pip install --quiet --no-deps -r tests/apps/requirements.txt
	$(APPS_VENV)/bin/pip check
	touch $(APPS_STAMP)

apps-venv: $(APPS_STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/zenmigrate-demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

# Two workers, each taking whole test files (module fixtures stay in one process): the
# suite waits on the servers as much as it computes (0.6x the serial time on two cores). Tests
# name their own databases and count only what they made; PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 2

pytest: venv azurite zenml apps-venv
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=25

test: lint typecheck pytest

# The unit tier (tests/unit mirrors the package): no database server, object store, azurite,
# ZenML or apps venv, and under a minute. `make test` runs it too, with everything else.
.PHONY: unit
unit: venv
	$(BIN)/pytest tests/unit

services:
	bash .ci/services

# Our backup/restore next to mariadb-dump, mydumper, pg_dump (see bench/compare.py); quick:
# make bench BENCH_ARGS="--rows 100000 --runs 1". Tables also go to build/bench/results.txt.
.PHONY: bench
BENCH_ARGS ?=
BENCH_TOOLS := mariadb-dump:mariadb-client mydumper:mydumper pg_dump:postgresql-client \
	zstd:zstd /usr/bin/time:time mariadb_config:libmariadb-dev pkg-config:pkg-config
bench: bench-deps
	$(BIN)/python -m bench $(BENCH_ARGS)

# Where the time of each issue 27 target case goes, under pyinstrument (bench/profile.py);
# PROFILE_ARGS="--source ../before --source ." compares an earlier checkout with this one.
.PHONY: profile bench-deps
PROFILE_ARGS ?=
profile: bench-deps
	$(BIN)/python -c 'import pyinstrument' 2>/dev/null || $(BIN)/pip install --quiet pyinstrument
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

bench-deps: venv
	@missing=""; for pair in $(BENCH_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends $$missing; fi
	@# Dataset (g) runs Airflow itself on MariaDB, which wants MySQLdb and aiomysql (bench only).
	$(BIN)/python -c 'import MySQLdb, aiomysql' 2>/dev/null || \
	  $(BIN)/pip install --quiet mysqlclient aiomysql

# End to end (tests/e2e): a real Airflow 3 deployment, its REST API and its UI in Debian's
# headless Chromium (apt package; browsers are never downloaded). Under 10 minutes.
.PHONY: e2e
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$sudo apt-get update && $$sudo apt-get install -y chromium
e2e: venv $(CHROMIUM)
	ZENMIGRATE_E2E=1 ZENMIGRATE_CHROMIUM=$(CHROMIUM) $(BIN)/pytest tests/e2e

clean:
	rm -rf $(VENV) $(ZENML_VENV) build .mypy_cache .ruff_cache .pytest_cache
