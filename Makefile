# straxd: one entry point for developers and CI (.ci/run calls `make test`).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# strax 2.2.3 supports Python 3.10-3.12; straxd needs 3.11+.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# straxen's dependency utilix pins pydantic<2, which straxd cannot share an environment with, so
# the straxen oracle lives in its own environment and tests call it in a subprocess.
ORACLE_VENV := .venv-straxen
STAMP := $(VENV)/.straxd-setup
ORACLE_STAMP := $(ORACLE_VENV)/.straxd-setup
PIP_QUIET := --quiet --disable-pip-version-check

.PHONY: help setup test lint format demo clean

help:
	@echo "make demo   - set up if needed, start a local database and fakedaq, run the suite end to end"
	@echo "make test   - set up if needed and run the whole test suite"
	@echo "make lint   - ruff and mypy"
	@echo "make setup  - create .venv (straxd + test tools) and .venv-straxen (the straxen oracle)"
	@echo "make clean  - remove the environments and caches"

setup: $(STAMP) $(ORACLE_STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_QUIET) -e '.[dev]' 2>&1 | grep -v 'is ignored: it is neither' || true
	@$(BIN)/python -c 'import straxd.core, strax, secantus' || { echo "setup failed: see pip output above"; exit 1; }
	$(BIN)/python -m straxd.core.warmup
	@touch $@

$(ORACLE_STAMP): tests/oracle-requirements.txt
	@test -x $(ORACLE_VENV)/bin/python || $(PYTHON) -m venv $(ORACLE_VENV)
	$(ORACLE_VENV)/bin/pip install $(PIP_QUIET) -r tests/oracle-requirements.txt 2>&1 | grep -v 'is ignored: it is neither' || true
	@$(ORACLE_VENV)/bin/python -c 'import straxen' 2>/dev/null || { echo "oracle setup failed"; exit 1; }
	@touch $@

test: setup
	$(BIN)/pytest

lint: setup
	$(BIN)/ruff check core daemons tests bench
	$(BIN)/ruff format --check core daemons tests bench
	@# mypy cannot follow the editable install's core/ -> straxd.core mapping; give it a tree.
	@mkdir -p build/typecheck/straxd
	@ln -sfn ../../../core build/typecheck/straxd/core
	@ln -sfn ../../../daemons build/typecheck/straxd/daemons
	MYPYPATH=build/typecheck $(BIN)/mypy -p straxd.core -p straxd.daemons

format: setup
	$(BIN)/ruff check --fix core daemons tests bench
	$(BIN)/ruff format core daemons tests bench

demo: setup
	$(BIN)/python -m straxd.daemons.demo

clean:
	rm -rf $(VENV) $(ORACLE_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .demo *.egg-info
