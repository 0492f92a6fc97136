# ELo — two commands: `make demo` and `make test`. Both build the venv when needed.
# The venv installs the ranges of pyproject.toml at the exact pins of constraints.txt;
# other OpenCV wheels are removed first (only one may own cv2).
# VENV may point anywhere. With DEPS_VENV set (CI: one per pin set, shared between
# clones), DEPS_VENV holds the dependencies only and VENV is a light overlay of it that
# installs this checkout, editable: each clone's console scripts run its own code.
VENV ?= .venv
DEPS_VENV ?=
PYTHON ?= python3.11
PY := $(VENV)/bin/python
PINS := $(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
# the dependency venv's key: dependency ranges and pins only (.ci/deps_key.py)
DEPS_KEY = $(shell $(PYTHON) .ci/deps_key.py)
STAMP := $(VENV)/.elo-install-stamp
STAMP_VALUE := $(PINS):$(CURDIR)$(if $(DEPS_VENV),:$(DEPS_VENV))
export RAY_AUTH_MODE ?= disabled
export PYTHONDONTWRITEBYTECODE := 1

DEMO_DIR ?= data/demo
DEMO_RUN ?= runs/demo
DEMO_ARGS ?=

.PHONY: venv deps-venv deps-key overlay test test-fast lint typecheck pytest demo clean help

help:
	@echo "make demo   build the venv, make the demo dataset and run the main job"
	@echo "make test   build the venv, run ruff, mypy and the whole test suite"
	@echo "make test-fast   the suite without the tests marked slow (inner loop)"

venv:
	@if [ -f "$(STAMP)" ] && [ "$$(cat $(STAMP))" = "$(STAMP_VALUE)" ]; then \
		echo "venv $(VENV) is up to date"; \
	elif [ -n "$(DEPS_VENV)" ]; then \
		$(MAKE) --no-print-directory overlay; \
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

# DEPS_VENV: the dependencies and dev tools of pyproject.toml at the pins, not the
# project itself; built once per pin set (under a lock: clones may start together).
DEPS_PY := $(DEPS_VENV)/bin/python
deps-venv:
	@[ -n "$(DEPS_VENV)" ] || { echo "deps-venv needs DEPS_VENV=PATH"; exit 2; }
	@mkdir -p "$$(dirname "$(DEPS_VENV)")"
	@flock "$(DEPS_VENV).lock" sh -c ' \
		set -e; \
		if [ -f "$(DEPS_VENV)/.elo-deps-stamp" ] && \
		   [ "$$(cat "$(DEPS_VENV)/.elo-deps-stamp")" = "$(DEPS_KEY)" ]; then exit 0; fi; \
		[ -x "$(DEPS_PY)" ] || $(PYTHON) -m venv "$(DEPS_VENV)"; \
		"$(DEPS_PY)" -m pip install --quiet --upgrade pip; \
		"$(DEPS_PY)" -m pip uninstall --quiet --yes opencv-contrib-python-headless \
			opencv-python opencv-contrib-python 2>/dev/null || true; \
		"$(DEPS_PY)" -c "import tomllib; p = tomllib.load(open(\"pyproject.toml\", \"rb\"))[\"project\"]; \
			print(chr(10).join(p[\"dependencies\"] + p[\"optional-dependencies\"][\"dev\"]))" \
			> "$(DEPS_VENV)/requirements.txt"; \
		"$(DEPS_PY)" -m pip install --quiet -c constraints.txt -r "$(DEPS_VENV)/requirements.txt"; \
		echo "$(DEPS_KEY)" > "$(DEPS_VENV)/.elo-deps-stamp"; \
		echo "dependencies in $(DEPS_VENV)"'

deps-key:
	@echo $(DEPS_KEY)

# VENV over DEPS_VENV: no packages of its own but this checkout (editable, --no-deps);
# DEPS_VENV's site-packages (and its .pth files) come after VENV's own. DEPS_VENV's
# commands (ray, mypy, ...) run with VENV's python, so what they start sees the checkout.
overlay: deps-venv
	@set -e; \
	rm -rf "$(VENV)"; \
	$(PYTHON) -m venv --without-pip "$(VENV)"; \
	site=$$("$(PY)" -c "import sysconfig; print(sysconfig.get_path('purelib'))"); \
	deps=$$("$(DEPS_PY)" -c "import sysconfig; print(sysconfig.get_path('purelib'))"); \
	echo "import site; site.addsitedir('$$deps')" > "$$site/elo_deps.pth"; \
	"$(DEPS_PY)" -m pip --python "$(PY)" install --quiet --no-deps -e .; \
	for f in "$(DEPS_VENV)"/bin/*; do \
		name=$$(basename "$$f"); \
		case "$$name" in python*|pip*|activate*|Activate*|elo-*) continue;; esac; \
		if head -n 1 "$$f" | grep -q "^#!$(DEPS_VENV)/bin/python"; then \
			sed "1s|.*|#!$(abspath $(VENV))/bin/python|" "$$f" > "$(VENV)/bin/$$name"; \
			chmod +x "$(VENV)/bin/$$name"; \
		else ln -sf "$$f" "$(VENV)/bin/$$name"; fi; \
	done; \
	echo "$(STAMP_VALUE)" > "$(STAMP)"; \
	echo "venv $(VENV): this checkout over $(DEPS_VENV)"

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
