"""The result of a benchmark: named tables of figures with notes (the CLI renders them as a
table, CSV or JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchTable:
    """One table of a benchmark's figures: ``name`` (its key in JSON/CSV), ``title``, ``rows``
    (dicts) and ``notes`` (how it was measured, what it is compared with)."""

    name: str
    title: str
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def ratio_text(value: float) -> str:
    """A speed ratio for a table cell: '2.0×', '0.31×'."""
    return f"{value:.2f}×" if value < 10 else f"{value:,.0f}×"


__all__ = ["BenchTable", "ratio_text"]
