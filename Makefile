# The two commands a new user needs: `make run` and `make test`.
# Everything below installs itself: Python 3.10 from pyenv (or python3.10 on PATH),
# uv into a bootstrap venv, then the hashed lock into .venv, compiled to bytecode at install: with
# PYTHONDONTWRITEBYTECODE set (as in CI), every process would otherwise compile TensorFlow and
# TFX from source (measured: 28 s to import a run's modules, 11 s from bytecode).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
UV := .uv/bin/uv
PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
PYTHON310 ?= $(firstword $(shell ls -d $(PYENV_ROOT)/versions/3.10.*/bin/python3 2>/dev/null | sort -V | tail -1) $(shell command -v python3.10 2>/dev/null))
LOCK := requirements/lock.txt
# The Dataflow/Vertex worker image's lock (Dockerfile): the base dependencies only, no extras.
WORKER_LOCK := requirements/worker-lock.txt
ARGS ?=
PYTEST_ARGS ?=

.PHONY: run compare lint test test-fast bench bench-serving bench-runners bench-monitor bench-release bench-fairness bench-student bench-stats bench-scale lock env chromium mariadb clean print-python

$(UV):
	@test -n "$(PYTHON310)" || { echo "error: Python 3.10 not found (install it with pyenv, or set PYTHON310=/path/to/python3.10)"; exit 1; }
	"$(PYTHON310)" -m venv .uv
	.uv/bin/pip install --quiet --disable-pip-version-check "uv==0.13.9"

$(VENV)/.installed: $(LOCK) requirements/fairness-indicators.txt pyproject.toml | $(UV)
	test -x $(PY) || $(UV) venv --python "$(PYTHON310)" $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --compile-bytecode --require-hashes $(LOCK)
	VIRTUAL_ENV=$(VENV) $(UV) pip install --compile-bytecode --no-deps --require-hashes -r requirements/fairness-indicators.txt
	VIRTUAL_ENV=$(VENV) $(UV) pip install --no-deps --no-build-isolation -e .
	touch $@

env: $(VENV)/.installed

run: env
	$(VENV)/bin/fairway run $(ARGS)

# Baseline vs MinDiff teacher vs student on the full data (the config's [compare] targets;
# ~10 min on 2 cores).
compare: env
	$(VENV)/bin/fairway compare $(ARGS)

# Headless Chromium (Debian package) renders `fairway report` in the tests.
CHROMIUM ?= $(firstword $(shell command -v chromium chromium-browser 2>/dev/null))
chromium:
	@test -n "$(CHROMIUM)" || { echo "installing chromium (apt) for the report tests"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q chromium; }

# MariaDB (Debian package mariadb-server): the tests start a private server of their own for ML
# Metadata on MySQL (tests/mariadb_support.py); its system service is not used.
MARIADBD ?= $(firstword $(shell PATH="$$PATH:/usr/sbin:/usr/local/sbin" command -v mariadbd 2>/dev/null))
mariadb:
	@test -n "$(MARIADBD)" || { echo "installing mariadb-server (apt) for the ML Metadata on MySQL tests"; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update -q && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q mariadb-server; }

# ruff (errors only: syntax, undefined names, unused imports) and the import contract (the
# layers and forbidden imports in pyproject.toml's [tool.importlinter]); both from the lock.
lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: env chromium mariadb
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: env
	$(PY) -m pytest -m "not e2e" $(PYTEST_ARGS)

bench: env
	$(PY) -m benchmarks.pipeline_bench $(ARGS)

# The pipeline on the in-process Beam runner vs a local Spark cluster (same data, no cache).
bench-runners: env
	$(PY) -m benchmarks.runner_bench $(ARGS)

# REST/gRPC latency and throughput of `fairway serve` vs the in-process call (needs `make run`).
bench-serving: env
	$(PY) -m benchmarks.serving_bench $(ARGS)

# Drift/performance monitoring vs Evidently and NannyML (own venv) on the same windows of a
# reference pipeline run (~30 min on 2 cores; ARGS="--quick" for a smoke run).
bench-monitor: env
	$(PY) -m benchmarks.monitor_bench $(ARGS)

# Rollback latency under load: `fairway serve --registry` with client threads on 127.0.0.1 while
# production is promoted and rolled back (needs `make run`; target <= 2 s, 0 failed requests).
bench-release: env
	$(PY) -m benchmarks.release_bench $(ARGS)

# Student settings over seeds on real pipeline runs (docs/fair-student.md; ~10 min a seed on
# census, 2 cores).
bench-student: env
	$(PY) -m benchmarks.student_sweep $(ARGS)

# FPR gap and AUC of Fairway's baseline / MinDiff teacher / student vs Fairlearn (own venv:
# ThresholdOptimizer, ExponentiatedGradient) on the same splits (~10 min; ARGS="--seeds 3").
bench-fairness: env
	$(PY) -m benchmarks.fairness_bench $(ARGS)

# The statistics view's page weight and time to render at 15 and 200 features in headless
# Chromium (ARGS="--plotly PATH/plotly.min.js" draws the same charts with Plotly beside it).
bench-stats: env
	$(PY) -m benchmarks.stats_page_bench $(ARGS)

# The default pipeline at 48,842, 1M and 5M rows in one session: per component seconds, rows/s
# and peak RSS, and the Evaluator against scoring + numpy metrics on the same eval rows
# (outputs/bench-scale/scale.md; 5M rows take hours on 2 cores: ARGS="--rows 0,1000000").
bench-scale: env
	$(PY) -m benchmarks.scale_bench $(ARGS)

# Regenerate the pinned, hashed locks (no index URLs are written): $(LOCK) is everything (the
# base set, the driver CLI's and the tests' extras) for .venv; $(WORKER_LOCK) is the base set at
# the same versions (constrained by $(LOCK)) for the worker image, without pyspark, matplotlib,
# pytest or pip.
lock: | $(UV)
	$(UV) pip compile pyproject.toml --extra cli --extra test --python-version 3.10 \
	  --override requirements/overrides.txt --generate-hashes --no-header -o $(LOCK)
	$(UV) pip compile pyproject.toml --python-version 3.10 -c $(LOCK) \
	  --override requirements/overrides.txt --generate-hashes --no-header -o $(WORKER_LOCK)
	@! grep -iE '^(pyspark|matplotlib|pytest|pip|ruff|import-linter)==' $(WORKER_LOCK) \
	  || { echo "error: $(WORKER_LOCK) has driver or test packages (above)"; exit 1; }
	$(UV) pip compile requirements/fairness-indicators.in --no-deps --python-version 3.10 \
	  --generate-hashes --no-header -o requirements/fairness-indicators.txt

clean:
	rm -rf $(VENV) .uv

print-python:
	@echo $(PYTHON310)
