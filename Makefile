# Two entry points for a fresh machine: `make demo` trains on the bundled digits, `make test` runs
# the whole suite. Both create (or reuse) .venv and install torch before anything that needs it,
# so pip takes the local CPU build instead of the CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench docs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m trainer.demo

test: $(STAMP)
	$(VENV)/bin/ruff check trainer callbacks tests benchmarks
	$(PY) -m pytest -q -n 2

bench: $(STAMP)
	$(PY) benchmarks/overhead.py

# The documentation site, built strictly (a broken link or reference fails) into site/.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict
