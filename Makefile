# ELo — two commands: `make demo` and `make test`. Both build the venv when needed.
# VENV may point anywhere (CI shares one between clones, keyed by the pins).
# The venv installs the ranges of pyproject.toml at the exact pins of constraints.txt;
# other OpenCV wheels are removed first (only one may own cv2).
VENV ?= .venv
PYTHON ?= python3.11
PY := $(VENV)/bin/python
STAMP := $(VENV)/.elo-install-stamp
STAMP_VALUE := $(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16):$(CURDIR)
export RAY_AUTH_MODE ?= disabled
export PYTHONDONTWRITEBYTECODE := 1

DEMO_DIR ?= data/demo
DEMO_RUN ?= runs/demo
DEMO_ARGS ?=

.PHONY: venv test test-fast lint typecheck pytest demo clean help

help:
	@echo "make demo   build the venv, make the demo dataset and run the main job"
	@echo "make test   build the venv, run ruff, mypy and the whole test suite"
	@echo "make test-fast   the suite without the tests marked slow (inner loop)"

venv:
	@if [ -f "$(STAMP)" ] && [ "$$(cat $(STAMP))" = "$(STAMP_VALUE)" ]; then \
		echo "venv $(VENV) is up to date"; \
	else \
		set -e; \
		[ -x "$(PY)" ] || $(PYTHON) -m venv "$(VENV)"; \
		"$(PY)" -m pip install --quiet --upgrade pip; \
		"$(PY)" -m pip uninstall --quiet --yes opencv-contrib-python-headless \
			opencv-python opencv-contrib-python 2>/dev/null || true; \
		"$(PY)" -m pip install --quiet -c constraints.txt -e '.[dev]'; \
		echo "$(STAMP_VALUE)" > "$(STAMP)"; \
		echo "venv $(VENV) installed"; \
	fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy elo

pytest: venv
	$(PY) -m pytest -q --timeout=600 $(PYTEST_ARGS)

test: lint typecheck pytest

# The inner loop: everything but the end-to-end runs marked slow (`make test` runs all).
test-fast: venv
	$(PY) -m pytest -q --timeout=600 -m "not slow" $(PYTEST_ARGS)

demo: venv
	$(PY) -m elo.demo --data $(DEMO_DIR) --run $(DEMO_RUN) $(DEMO_ARGS)

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
