# The single entry point. Every target sets up what it needs, so on a fresh machine
# `make demo` and `make test` work with nothing installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
ENV ?= dev
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: install test lint typecheck unit handlers-test local-test bench demo local clean schema

## install: create .venv and install everything (quick when nothing changed)
install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
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
demo: install
	$(PY) -m tools.demo

## local: serve local mode until Ctrl-C
local: install
	$(PY) -m img2img_local

clean:
	rm -rf $(VENV) .build cdk.out .pytest_cache .mypy_cache .ruff_cache .coverage local-output

# Each area keeps its own targets in mk/<area>.mk (infra, local, client, ...).
-include mk/*.mk

## schema: regenerate docs/metadata.schema.json and docs/job-finished.schema.json from the typed models (tests keep them current)
schema: install
	$(PY) -c 'import json; from img2img.domain.records import metadata_schema; print(json.dumps(metadata_schema(), indent=2))' > docs/metadata.schema.json
	$(PY) -c 'import json; from img2img.domain.job_events import job_finished_schema; print(json.dumps(job_finished_schema(), indent=2))' > docs/job-finished.schema.json
