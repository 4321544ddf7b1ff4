# minify: developer and CI entry points. Every target is idempotent.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.minify-install.stamp
PYTEST_ARGS ?=
# Parallel test workers: the e2e tests mostly wait on containers, so more workers than
# cores pays (tests/conftest.py keeps each module, and the shared builds, on one worker).
TEST_WORKERS ?= 3

.PHONY: help install engine sandbox test-tools demo test test-unit bench lint clean

help:
	@echo "make install   create .venv and install minify with test extras"
	@echo "make engine    make sure a Docker engine answers (installs/starts docker.io if needed)"
	@echo "make sandbox   build the offline sandbox images minify-sandbox/*:latest"
	@echo "make test-tools install podman and chromium for their e2e tests (if missing)"
	@echo "make demo      minify doctor, then minify the nginx sandbox image with an HTTP probe"
	@echo "make test      run the test suite (TEST_WORKERS=3 parallel workers, PYTEST_ARGS=...)"
	@echo "make test-unit the fast engine-free tests (pytest -m \"not e2e\"): no engine, no sandbox"
	@echo "make bench     run the benchmarks"
	@echo "make lint      ruff check"
	@echo "make clean     remove leftover minify containers and the venv stamp"

# Byte-compiled as a regular (non-editable) pip install would: an editable install leaves
# it to the first run, and never with PYTHONDONTWRITEBYTECODE set (every start of minify
# and of its tracer would then compile its modules again). Only changed modules are redone.
install: $(STAMP)
	$(VENV)/bin/python -m compileall -q minifier probes

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

engine:
	bash sandbox/engine.sh

sandbox: engine
	bash sandbox/build.sh

# Debian's podman and chromium, driven by tests/e2e/test_podman.py and test_report_html.py.
test-tools:
	bash sandbox/test-tools.sh

# The doctor first: it says what to fix on this host before a build is tried.
demo: install engine sandbox
	$(VENV)/bin/minify doctor
	$(VENV)/bin/minify build --http-probe minify-sandbox/nginx:latest --report-html demo-report.html

test: install engine sandbox test-tools
	$(VENV)/bin/ruff check minifier probes tests bench
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) tests $(PYTEST_ARGS)

# The fast suite for contributors: no engine, no sandbox images, seconds.
test-unit: install
	$(VENV)/bin/pytest -q -m "not e2e" tests $(PYTEST_ARGS)

bench: install engine sandbox
	$(VENV)/bin/python -m bench

lint: install
	$(VENV)/bin/ruff check minifier probes tests

clean:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
		ids=$$(docker ps -aq --filter label=minify.run); \
		if [[ -n $$ids ]]; then echo "removing containers: $$ids"; docker rm -f $$ids >/dev/null; fi; \
	fi
	rm -f $(STAMP)

# The minify container image minify:latest (docs/ci.md; a second run takes seconds).
.PHONY: image
image:
	bash scripts/build-image.sh
