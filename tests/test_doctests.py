"""Every docstring example runs and passes: ``pytest --doctest-modules`` over the package, with
``trainer.callbacks`` imported by its installed name (its source folder is ``callbacks/``)."""

from __future__ import annotations

import doctest
import importlib

import pytest

from tests.test_layout import MODULES

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes files writes them here
    module = importlib.import_module(name)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_the_public_classes_have_examples():
    """STYLE: one runnable ``Example:`` per public class; these modules hold the main ones."""
    finder = doctest.DocTestFinder()
    with_examples = {name for name in MODULES
                     if any(t.examples for t in finder.find(importlib.import_module(name)))}
    assert len(with_examples) >= 28, sorted(set(MODULES) - with_examples)
