"""A griffe extension for the project's docstrings: one-word ``Example:`` sections (STYLE.md)
render as Google-style ``Examples:`` (doctest code, not prose), and Sphinx roles such as
``:meth:`step``` as plain code."""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:meth|class|func|attr|mod|obj|data):`~?([^`]+)`")


class ExampleSections(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _EXAMPLE.sub(r"\1Examples:", obj.docstring.value)
            obj.docstring.value = _ROLE.sub(r"`\1`", text)
