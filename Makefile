# Two entry points for a fresh machine: `make demo` trains on the bundled digits, `make test` runs
# the whole suite. Both create (or reuse) .venv and install torch before anything that needs it,
# so pip takes the local CPU build instead of the CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test doctest lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m trainer.demo

# The suite includes tests/test_doctests.py: every docstring example in trainer/ and callbacks/
# runs (pytest --doctest-modules, importing callbacks/ by its installed name trainer.callbacks).
test: $(STAMP)
	$(VENV)/bin/ruff check trainer callbacks tests benchmarks
	$(PY) -m pytest -q -n 2

doctest: $(STAMP)
	$(PY) -m pytest -q tests/test_doctests.py

bench: $(STAMP)
	$(PY) benchmarks/overhead.py
