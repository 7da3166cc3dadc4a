"""Deferred loading of the heavy table and plotting libraries (pandas, matplotlib).

A module declares them at its top like any import::

    pd = deferred("pandas")

and the library is imported on the first attribute access (``pd.DataFrame``). A CLI query that
prints a table with tabulate therefore never pays pandas' or matplotlib's import time (about
0.4 s each here), which keeps ``costmodel kv …`` and ``costmodel analyze …`` well under half a
second from process start. The import-graph test reads these declarations as imports.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class Deferred:
    """A module imported on first attribute access."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<deferred module {self._name!r} ({state})>"


def deferred(name: str) -> Deferred:
    """``name`` (e.g. "pandas", "matplotlib.figure"), imported when first used."""
    return Deferred(name)


__all__ = ["Deferred", "deferred"]
