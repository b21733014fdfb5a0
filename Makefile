# Two entry points for a fresh machine (see README):
#   make run   - create .venv, install phytoscope, open it on the bundled model and samples
#                (headless: classifies the samples and prints counts and alerts)
#   make test  - create .venv, install phytoscope with every CPU extra, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SAMPLES ?= resources/samples

.PHONY: run test venv lint bench deb clean

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
	rm -rf $(VENV) build dist *.egg-info
