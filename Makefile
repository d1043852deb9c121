# evalkit: the single list of commands. Every target sets up .venv by itself on first use.
#   make bench                      run the embedded default suite (tiny world, DPO, scoring, report)
#   make bench SUITE=suites/x.yaml  run another suite
#   make test                       unit + integration tests (offline)
#   make lint                       ruff + mypy
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch, installed before everything else so nothing pulls a CUDA build.
TORCH ?= torch==2.13.0
SUITE ?= suites/default.yaml
INSTALLED := $(VENV)/.installed

.PHONY: install bench report test test-slow lint schema clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(INSTALLED)

bench: $(INSTALLED)
	$(BIN)/evalkit bench $(SUITE)

test: $(INSTALLED)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

test-slow: $(INSTALLED)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m slow

lint: $(INSTALLED)
	$(BIN)/ruff check evalkit tests
	$(BIN)/ruff format --check evalkit tests
	$(BIN)/mypy

# Regenerate the shipped JSON Schema of results.json after changing evalkit/results.py.
schema: $(INSTALLED)
	$(BIN)/python -c "import json; from evalkit.results import SCHEMA_FILE, json_schema; SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + '\n')"

clean:
	rm -rf .evalkit reports/default .pytest_cache .mypy_cache .ruff_cache
