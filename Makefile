# Every target creates .venv when missing and installs what it needs.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q

# Debian packages the test suite needs (installed only when missing).
APT_TEST  := chromium
# Debian packages the benchmarks need.
APT_BENCH := nginx wrk util-linux
# Which benchmarks `make bench` runs: `make bench BENCH=balancer` runs one.
BENCH ?= rollback_paths balancer decisions local_stack rollout_local verdicts demo_acts

.PHONY: demo test lint bench compile clean

# checkov (IaC static analysis of the CloudFormation template) in a virtualenv of its own:
# its pins never fight boto3's, moto's or cfn-lint's in .venv. tests/aws/test_checkov.py
# runs it (CHECKOV overrides where it is).
CHECKOV_VENV := .venv-checkov
CHECKOV_SPEC := checkov>=3.2,<4

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

# The balancer's hot modules compiled with mypyc (canary_deploy.speedups), rebuilt when
# they change; without a C compiler or mypy the balancer runs as pure Python.
SPEEDUP_SRC := $(wildcard src/canary_deploy/balancer/*.py) src/canary_deploy/speedups.py

$(VENV)/.compiled: $(SPEEDUP_SRC) | $(VENV)/.test
	$(PY) -m canary_deploy.speedups build
	@touch $@

compile: $(VENV)/.compiled

$(CHECKOV_VENV)/bin/checkov:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --disable-pip-version-check -q '$(CHECKOV_SPEC)'

demo: $(VENV)/.runtime
	$(VENV)/bin/canary demo

# The suite in TEST_WORKERS processes (pytest-xdist), a whole test file to each worker (its
# module fixtures, e.g. one browser, serve all its tests): most end-to-end tests wait on
# processes and sockets, so two workers halve the time even on two cores.
TEST_WORKERS ?= 2

test: $(VENV)/.test $(VENV)/.compiled $(CHECKOV_VENV)/bin/checkov
	@scripts/apt-ensure $(APT_TEST)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(VENV)/.lint
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

bench: $(VENV)/.bench $(VENV)/.compiled
	@scripts/apt-ensure $(APT_BENCH)
	@for name in $(BENCH); do echo "== bench/$$name.py"; $(PY) bench/$$name.py || exit 1; done

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache

# The balancer's fuzz harness, long: thousands of examples per property (CANARY_FUZZ=long,
# no per-test timeout), then FUZZ_SECONDS of coverage-guided atheris on the pure parsers.
FUZZ_SECONDS ?= 600

.PHONY: fuzz

$(VENV)/.fuzz: pyproject.toml | $(VENV)/bin/python
	$(PIP) -e '.[test,fuzz]'
	@touch $@

fuzz: $(VENV)/.fuzz
	CANARY_FUZZ=long $(PY) -m pytest tests/balancer/fuzz -q --timeout=0
	@mkdir -p .pytest_cache/atheris-corpus
	$(PY) tests/balancer/fuzz/atheris_parsers.py -max_total_time=$(FUZZ_SECONDS) \
		-artifact_prefix=.pytest_cache/atheris- .pytest_cache/atheris-corpus tests/balancer/fuzz/seeds
