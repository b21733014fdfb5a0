# Two entry points for a fresh machine (see README):
#   make run   - create .venv, install phytoscope, open it on the bundled model and samples
#                (headless: classifies the samples and prints counts and alerts)
#   make test  - create .venv, install phytoscope with every CPU extra, run the test suite
#   make test-fast - the inner loop: every test but the slow, GUI and .deb ones (README: test tiers)
#   make test-core - the fast tier again in .venv-core, a venv with only the core dependencies
#                (no TensorFlow, no Qt), so that it keeps running there (CI runs it)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
CORE_VENV ?= .venv-core
SAMPLES ?= resources/samples
FAST    = -m "not slow and not gui and not deb"

.PHONY: run test test-fast test-core venv lint bench deb clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files re-run the install whenever pyproject.toml changes.
$(VENV)/.run-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[gui]"
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[gui,tensorflow,archive,dev]"
	touch $@

run: $(VENV)/.run-installed
	$(BIN)/phytoscope gui --open $(SAMPLES)

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

# -p no:pytestqt: the inner loop has no Qt test, so it need not import PySide6 either
test-fast: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q $(FAST) -p no:pytestqt

# matplotlib: `phytoscope evaluate` writes its confusion PNG with it unconditionally (its
# tests are in the fast tier); everything else here is the package's core dependencies.
$(CORE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CORE_VENV)/bin/pip install --quiet -e . "pytest>=8" "matplotlib>=3.7"
	touch $@

test-core: $(CORE_VENV)/.installed
	$(CORE_VENV)/bin/python -c "import importlib.util as u, sys; extra = [m for m in ('tensorflow', 'keras', 'PySide6', 'pyqtgraph', 'pytestqt') if u.find_spec(m)]; sys.exit(f'$(CORE_VENV) must not have {extra}') if extra else None"
	$(CORE_VENV)/bin/python -m pytest -q $(FAST)

# ruff (lint and format), mypy, and the import contracts of pyproject.toml (DESIGN section 3)
lint: $(VENV)/.test-installed
	$(BIN)/ruff check phytoscope tests
	$(BIN)/ruff format --check phytoscope tests
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(VENV)/.test-installed
	$(BIN)/phytoscope bench

# dist/phytoscope_<version>_<arch>.deb; DEB_ARCH=arm64 cross-builds the Jetson (JetPack 6) one.
deb:
	PYTHON=$(PYTHON) bash packaging/build_deb.sh $(if $(DEB_ARCH),--arch $(DEB_ARCH))

clean:
	rm -rf $(VENV) $(CORE_VENV) build dist *.egg-info
