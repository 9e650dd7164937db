# Two commands for a fresh machine: `make serve` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt
HOST ?= 127.0.0.1
PORT ?= 8080
ARGS ?=

.PHONY: serve test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip setuptools wheel

# Stamps re-run the install only when the dependency lists change.
$(VENV)/.stamp-serve: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[vcam]'
	touch $@

$(VENV)/.stamp-test: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[vcam,train,dev]'
	touch $@

serve: $(VENV)/.stamp-serve
	$(VENV)/bin/tricam serve --host $(HOST) --port $(PORT) $(ARGS)

test: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check streamer engine scripts tests
	$(VENV)/bin/mypy
	$(PY) -m pytest

lint: $(VENV)/.stamp-test
	$(VENV)/bin/ruff check streamer engine scripts tests
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build *.egg-info
