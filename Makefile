# Two entry points for a fresh machine: `make demo` trains on the bundled digits, `make test` runs
# the whole suite. Both create (or reuse) .venv and install torch before anything that needs it,
# so pip takes the local CPU build instead of the CUDA wheels.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test doctest lint bench docs

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

# The overhead table (tiny MLP, small CNN; progress bar off and on), the import cost and the
# checkpoint's data position at 10M samples. benchmarks/README.md has the latest figures.
bench: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/overhead.py
	$(PY) benchmarks/import_time.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/data_position.py

# The documentation site, built strictly (a broken link or reference fails) into site/.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict
