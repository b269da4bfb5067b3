# Everything a newcomer needs: `make demo` and `make test` build their own virtual
# environment from pyproject.toml on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck pytest services clean azurite

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Azure Blob emulator for the object-store tests, installed into the project (.azurite/).
AZURITE := .azurite/node_modules/.bin/azurite-blob

$(AZURITE):
	@command -v npm >/dev/null || { echo "npm is needed for azurite (install Node.js >= 18)"; exit 1; }
	npm install --prefix .azurite --no-audit --no-fund --loglevel=error azurite

azurite: $(AZURITE)

venv: $(STAMP)

demo: venv
	$(BIN)/zenmigrate-demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: venv azurite
	$(BIN)/pytest

test: lint typecheck pytest

services:
	bash .ci/services

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache
