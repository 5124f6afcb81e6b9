# The single entry point. Every target sets up what it needs, so on a fresh machine
# `make demo` and `make test` work with nothing installed by hand.
SHELL := /bin/bash
comma := ,
VENV := .venv
# .venv runs the functions' Lambda runtime (python3.13, infra/asset.py), so `make test` runs the
# function code on the Python that runs it deployed. Found on PATH, then under pyenv; or PYTHON=...
RUNTIME_PYTHON := 3.13
PYTHON ?= $(shell for p in python$(RUNTIME_PYTHON) "$$(pyenv prefix $(RUNTIME_PYTHON) 2>/dev/null)/bin/python$(RUNTIME_PYTHON)" $(HOME)/.pyenv/versions/$(RUNTIME_PYTHON)*/bin/python$(RUNTIME_PYTHON); do "$$p" -c 'import sys; assert sys.version_info[:2] == ($(subst .,$(comma),$(RUNTIME_PYTHON)))' 2>/dev/null && command -v "$$p" && break; done)
PY := $(VENV)/bin/python
ENV ?= dev
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test lint typecheck unit handlers-test local-test bench demo local clean schema

## install: create .venv and install everything (quick when nothing changed)
install: $(VENV)/.installed

# A .venv of another Python (an older checkout's) lacks bin/python3.13: it is rebuilt.
$(VENV)/bin/python$(RUNTIME_PYTHON):
	@test -n "$(PYTHON)" || { echo "make: no CPython $(RUNTIME_PYTHON) (the Lambda runtime's Python): run 'pyenv install $(RUNTIME_PYTHON)' or install your distro's python$(RUNTIME_PYTHON) package" >&2; exit 1; }
	@rm -rf $(VENV)
	@$(PYTHON) -m venv $(VENV)

# What the demo and local mode need, and no more (requirements-local.txt): pip's chatter and
# setuptools' warnings go to $(INSTALL_LOG), the demo's screen stays its own.
INSTALL_LOG := $(VENV)/install.log
$(VENV)/.runtime-installed: $(VENV)/bin/python$(RUNTIME_PYTHON) requirements.txt requirements-local.txt pyproject.toml
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

## bench: in one run: per-job overhead over the seed's bare path and peak memory, cold starts
## (times and, with valgrind, instructions) and the function asset's size, local-mode throughput for 100 dropped images
bench: install
	$(PY) -m tools.bench
	$(PY) -m tools.bench_startup --instructions
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

## schema: regenerate docs/metadata.schema.json and docs/job-finished.schema.json from the typed models (tests keep them current)
schema: install
	$(PY) -c 'import json; from img2img.domain.records import metadata_schema; print(json.dumps(metadata_schema(), indent=2))' > docs/metadata.schema.json
	$(PY) -c 'import json; from img2img.domain.job_events import job_finished_schema; print(json.dumps(job_finished_schema(), indent=2))' > docs/job-finished.schema.json
