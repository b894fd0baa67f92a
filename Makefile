# The two commands a newcomer needs: `make run` and `make test`. Both build the virtual
# environment from pyproject.toml first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test unit integration e2e lint format bench bench-quick bench-scale profile clean help

help:
	@echo "make run     start the whole CRM on this machine (Ctrl-C stops it)"
	@echo "make test    run every test: unit, integration and end-to-end"
	@echo "make bench   benchmarks with same-run ceilings (bench-quick: small sizes)"
	@echo "make bench-scale   the read models at 1,000,000 customers (two and a half hours)"
	@echo "make profile flame graphs of a service under the command load (PROFILE_ARGS='--process projector')"
	@echo "make lint    ruff (lint and format) and mypy"
	@echo "make clean   remove the virtual environment and local data (.run/)"

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	@bash deploy/local/ensure-services.sh
	$(BIN)/python -m crm_cli.system

test: $(STAMP)
	@bash deploy/local/ensure-services.sh
	@bash deploy/local/ensure-browser.sh
	$(BIN)/python -m pytest -q tests

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

e2e: $(STAMP)
	@bash deploy/local/ensure-services.sh
	@bash deploy/local/ensure-browser.sh
	$(BIN)/python -m pytest -q tests/e2e

bench: $(STAMP)
	@bash deploy/local/ensure-services.sh
	$(BIN)/python -m bench.run

bench-scale: $(STAMP)
	@bash deploy/local/ensure-services.sh
	$(BIN)/python -m bench.scale

bench-quick: $(STAMP)
	@bash deploy/local/ensure-services.sh
	$(BIN)/python -m bench.run --quick

profile: $(STAMP)
	@bash deploy/local/ensure-services.sh
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .run
