# Tradebot — every entry point a developer needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
# Never fetch a Python build: the machine's own Python 3.11 is the one we use.
export UV_PYTHON_DOWNLOADS := never
UV_VERSION := 0.13.8
# uv from PATH when present, otherwise a private copy bootstrapped with pip into .tools/.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced
PROTO_STAMP := gen/.stamp
PROTOS := $(shell find proto -name '*.proto')

.PHONY: help run test lint browser proto bench soak clean

help: ## List every target
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON_BOOT) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON_BOOT)
	@touch $@

$(PROTO_STAMP): $(PROTOS) scripts/gen_proto.py $(STAMP)
	$(PY) scripts/gen_proto.py
	@touch $@

proto: $(STAMP) ## Generate Python code and .pyi stubs from proto/ into gen/
	$(PY) scripts/gen_proto.py
	@touch $(PROTO_STAMP)

run: $(STAMP) $(PROTO_STAMP) ## Start the whole platform locally (embedded PostgreSQL, NATS, OpenBao, simulator, services)
	$(PY) -m services.devstack

lint: $(STAMP) $(PROTO_STAMP) ## ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services tests bench scripts

test: lint browser ## Lint, type-check, then the full test suite (real PostgreSQL, NATS, OpenBao, gRPC, Chromium)
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

browser: ## Debian's Chromium for the dashboard's browser tests (installed once, needs root)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "the browser tests need Debian's chromium: sudo apt-get install chromium chromium-driver"; exit 1; fi; }

soak: $(STAMP) $(PROTO_STAMP) ## Slow load and soak tests
	$(VENV)/bin/pytest -q -m slow $(PYTEST_ARGS)

bench: $(STAMP) $(PROTO_STAMP) ## Benchmarks, side by side with baselines; results in bench/results/
	$(PY) -m bench

clean: ## Remove the virtual environment, generated code and caches (keeps .data/)
	rm -rf $(VENV) .tools gen .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
