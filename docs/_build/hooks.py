"""MkDocs hooks: the docs' runnable blocks (```python test, run by tests/test_docs.py) render
as ordinary Python code, and griffe's note about a computed ``__all__`` (``trainer.schedulers``
exports its table's names with ``*SCHEDULERS``, which static analysis cannot expand; the API
page lists them) does not fail the strict build."""

from __future__ import annotations

import logging
import re
from typing import Any

_TEST_FENCE = re.compile(r"^([ \t]*)```python[ \t]+test[ \t]*$", re.MULTILINE)


class _ComputedAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Unsupported item in trainer.schedulers.__all__" not in record.getMessage()


def on_startup(**kwargs: Any) -> None:
    for name in ("griffe", "mkdocs.plugins.griffe", "mkdocs.plugins.mkdocstrings"):
        logging.getLogger(name).addFilter(_ComputedAll())


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _TEST_FENCE.sub(r"\1```python", markdown)
