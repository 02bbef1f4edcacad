"""MkDocs hooks: the docs' runnable blocks (```python test, run by tests/test_docs.py) render
as ordinary Python code."""

from __future__ import annotations

import re
from typing import Any

_TEST_FENCE = re.compile(r"^([ \t]*)```python[ \t]+test[ \t]*$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _TEST_FENCE.sub(r"\1```python", markdown)
