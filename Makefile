# The two commands of the README: `make demo` and `make test`. Both set up what they need.
PY := .venv/bin/python
export TTSCALE_HOME ?= $(CURDIR)/.ttscale

.PHONY: setup demo test test-all test-fast system-deps

setup:
	bash scripts/setup.sh

# Debian packages the browser tests need (chromium); PostgreSQL 15 comes with the machine image.
system-deps:
	bash scripts/system-deps.sh

demo: setup
	bash scripts/demo.sh

# The default suite: unit + integration (real vLLM on CPU, real PostgreSQL, Prefect, MLflow) + browser.
test: setup system-deps
	$(PY) -m pytest -m "not slow and not gpu"

# Everything CI runs, slow fault/load suites included.
test-all: setup system-deps
	$(PY) -m pytest -m "not gpu"

# Seconds: pure code only.
test-fast: setup
	$(PY) -m pytest tests/unit
