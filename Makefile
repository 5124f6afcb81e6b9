# The single entry point. Every target sets up what it needs, so on a fresh machine
# `make demo` and `make test` work with nothing installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ENV ?= dev
export PYTHONDONTWRITEBYTECODE := 1
# jsii (under aws-cdk-lib) warns on every synth when Node is older than it prefers.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: install test lint typecheck unit handlers-test local-test bench demo local clean schema

## install: create .venv and install everything (quick when nothing changed)
install: $(VENV)/.installed

# What the demo and local mode need, and no more (requirements-local.txt): pip's chatter and
# setuptools' warnings go to $(INSTALL_LOG), the demo's screen stays its own.
INSTALL_LOG := $(VENV)/install.log
$(VENV)/.runtime-installed: requirements.txt requirements-local.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing what local mode needs (log: $(INSTALL_LOG))"
	@$(PY) -m pip install --disable-pip-version-check -r requirements-local.txt > $(INSTALL_LOG) 2>&1 \
	  && $(PY) -m pip install --disable-pip-version-check --no-deps -e . >> $(INSTALL_LOG) 2>&1 \
	  || { tail -n 20 $(INSTALL_LOG); exit 1; }
	@touch $@

$(VENV)/.installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## test: every offline check: lint, types, unit, infra and local-mode tests
test: install lint typecheck
	$(PY) -m pytest --cov --cov-branch --cov-report=term --cov-fail-under=90 tests

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit tests/domain

handlers-test: install
	$(PY) -m pytest tests/handlers

local-test: install
	$(PY) -m pytest tests/local

## bench: in one run: per-job overhead over the seed's bare path and peak memory, cold imports
## and the function asset's size, local-mode throughput for 100 dropped images
bench: install
	$(PY) -m tools.bench
	$(PY) -m tools.bench_startup
	$(PY) -m tools.bench_load --images 100

## demo: start local mode, run one image through both doors, copy results to local-output/
demo: $(VENV)/.runtime-installed
	@$(PY) -m tools.demo

## local: serve local mode until Ctrl-C (ARGS=--verbose: the JSON logs on the screen too)
local: $(VENV)/.runtime-installed
	@$(PY) -m img2img_local $(ARGS)

clean:
	rm -rf $(VENV) .build cdk.out .pytest_cache .mypy_cache .ruff_cache .coverage local-output

# Each area keeps its own targets in mk/<area>.mk (infra, local, client, ...).
-include mk/*.mk

## schema: regenerate docs/metadata.schema.json from the typed metadata (a test keeps it current)
schema: install
	$(PY) -c 'import json; from img2img.domain.records import metadata_schema; print(json.dumps(metadata_schema(), indent=2))' > docs/metadata.schema.json
