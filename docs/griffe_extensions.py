"""Griffe extension for the API pages: examples rendered as code, defaults shown as values.

* A Google-style ``Example:`` section is an admonition to griffe, whose ``>>>`` lines render as
  one run-on paragraph; it is renamed ``Examples:``, which griffe parses into code blocks.
* A default given by a module constant (``k: int = DEFAULT_K``) is shown as its value
  (``k: int = 32``), looked up in the imported module.
"""

from __future__ import annotations

import importlib
import re

import griffe

_EXAMPLE_HEADING = re.compile(r"^(\s*)Example:\s*$", re.MULTILINE)
_CONSTANT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class RuntimeDocs(griffe.Extension):
    """Renames ``Example:`` sections and replaces constant defaults by their values."""

    def on_instance(self, *, obj, **kwargs) -> None:
        """Rewrites ``Example:`` headings of every object's docstring."""
        docstring = getattr(obj, "docstring", None)
        if docstring is not None and "Example:" in docstring.value:
            docstring.value = _EXAMPLE_HEADING.sub(r"\1Examples:", docstring.value)

    def on_function_instance(self, *, func, **kwargs) -> None:
        """Shows defaults that name a module constant as the constant's value."""
        for parameter in func.parameters:
            value = _constant_value(func.module.path, parameter.default)
            if value is not None:
                parameter.default = value

    def on_attribute_instance(self, *, attr, **kwargs) -> None:
        """The same for class attributes (dataclass fields, whose values are ``__init__``
        defaults)."""
        if attr.parent is not None and attr.parent.is_class:
            value = _constant_value(attr.module.path, attr.value)
            if value is not None:
                attr.value = value


def _constant_value(module_path: str, default) -> str | None:
    """``repr`` of the number or string a default expression names, or None."""
    text = None if default is None else str(default)
    if not text or not _CONSTANT.match(text) or text in ("None", "True", "False"):
        return None
    try:
        value = importlib.import_module(module_path)
        for part in text.split("."):
            value = getattr(value, part)
    except Exception:
        return None
    if isinstance(value, (bool, int, float, str)):
        return repr(value)
    return None
