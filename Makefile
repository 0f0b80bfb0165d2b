# Every target creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q

# Debian packages the test suite needs (installed only when missing).
APT_TEST  :=
# Debian packages the benchmarks need.
APT_BENCH := nginx wrk util-linux

.PHONY: demo test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: pyproject.toml | $(VENV)/bin/python
	$(PIP) -e .
	@touch $@

$(VENV)/.test: pyproject.toml | $(VENV)/bin/python
	$(PIP) -e '.[test]'
	@touch $@

$(VENV)/.lint: pyproject.toml | $(VENV)/bin/python
	$(PIP) -e '.[test,lint]'
	@touch $@

$(VENV)/.bench: pyproject.toml | $(VENV)/bin/python
	$(PIP) -e '.[test,bench]'
	@touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/canary demo

test: $(VENV)/.test
	@scripts/apt-ensure $(APT_TEST)
	$(PY) -m pytest

lint: $(VENV)/.lint
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: $(VENV)/.bench
	@scripts/apt-ensure $(APT_BENCH)
	$(PY) bench/rollback_paths.py
	$(PY) bench/balancer.py
	$(PY) bench/decisions.py
	$(PY) bench/local_stack.py
	$(PY) bench/rollout_local.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
