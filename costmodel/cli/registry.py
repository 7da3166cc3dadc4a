"""The CLI's command registry and its output: a command returns :class:`Result` tables, which
:func:`emit` renders as a plain-text table, CSV or JSON.

Adding a subcommand: write two functions and register them with :func:`subcommand`::

    def _add_foo(p: argparse.ArgumentParser) -> None:
        add_model_arguments(p)                      # --model / --config, if it needs a model
        p.add_argument("--bar", type=count, default=1)

    @subcommand("foo", "one line of help", _add_foo)
    def _run_foo(args: argparse.Namespace) -> Result | list[Result]:
        m = model_from_args(args)
        return Result(rows=[{"name": m.name, "bar": args.bar}], notes=["how it was computed"])

``run`` returns rows (dicts, one per table row; values stay exact: ints for bytes and counts) and
never prints. Raise ``ValueError`` for bad input: :func:`costmodel.cli.main` prints it as one line
``costmodel: error: ...`` and exits 2. Units are in the column names (``_bytes``, ``_gb`` = 1e9
bytes, ``_gib`` = 2**30 bytes).

Output of several tables: the table format prints them one after the other; JSON prints one
object whose keys are the tables' names and whose values are their rows; CSV prints one table
with a leading ``table`` column naming each row's table (the columns are the union, in order of
first appearance). One table: a JSON list of rows, a plain CSV. JSON never holds NaN or
infinities: a value that is not a finite number is written as ``null`` (``-`` in a table, an
empty cell in CSV).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import numbers
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

FORMATS = ("table", "csv", "json")


@dataclass
class Result:
    """One table of output: ``rows`` (dicts), an optional ``title``, ``notes`` printed under the
    table (table format only), ``table_columns``: the keys the table format shows (CSV and JSON
    always carry every key), and ``name``: the table's key in JSON/CSV output of several tables
    (default: the title in snake_case)."""

    rows: list[dict[str, Any]]
    title: str = ""
    notes: list[str] = field(default_factory=list)
    table_columns: Sequence[str] | None = None
    name: str = ""

    def key(self, index: int) -> str:
        if self.name:
            return self.name
        slug = re.sub(r"[^0-9a-z]+", "_", self.title.lower()).strip("_")
        return slug or f"table_{index + 1}"


def plain(value: Any) -> Any:
    """A value as JSON/CSV/tabulate take it: numpy scalars → Python numbers, non-finite numbers
    → None, bools stay bools."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()                # numpy scalar
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        x = float(value)
        return x if math.isfinite(x) else None
    return value if isinstance(value, (str, list, dict)) else str(value)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for row in rows:
        cols.update(dict.fromkeys(row))
    return list(cols)


def _cell(value: Any) -> str:
    """A table cell: '-' for a missing or non-finite value, 6 significant digits for a float
    (``format(x, "g")``), integers in full."""
    value = plain(value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def _is_number(value: Any) -> bool:
    value = plain(value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def text_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Columns separated by two spaces under a dashed rule; numeric columns right-aligned."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    numeric = [all(_is_number(row.get(c)) or plain(row.get(c)) is None for row in rows)
               and any(_is_number(row.get(c)) for row in rows) for c in columns]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([line(list(columns)), line(["-" * w for w in widths]),
                      *(line(r) for r in cells)])


def _table(result: Result) -> str:
    cols = list(result.table_columns or _columns(result.rows))
    parts = []
    if result.title:
        parts.append(result.title)
    parts.append(text_table(result.rows, cols))
    parts.extend(result.notes)
    return "\n".join(parts)


def _csv(results: list[Result]) -> str:
    several = len(results) > 1
    rows = [({"table": r.key(i)} if several else {}) | row
            for i, r in enumerate(results) for row in r.rows]
    fieldnames = _columns(rows)            # "table" first when there are several
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: plain(v) for k, v in row.items()} for row in rows)
    return buf.getvalue().rstrip("\n")


def _json_rows(result: Result) -> list[dict[str, Any]]:
    return [{k: plain(v) for k, v in row.items()} for row in result.rows]


def _json(results: list[Result]) -> str:
    if len(results) == 1:
        data: Any = _json_rows(results[0])
    else:
        data = {}
        for i, r in enumerate(results):
            key = r.key(i)
            while key in data:              # two tables of one name stay apart
                key += "_"
            data[key] = _json_rows(r)
    return json.dumps(data, indent=2, allow_nan=False)


def render(results: Result | list[Result], fmt: str) -> str:
    """The text of ``results`` in ``fmt`` (table, csv or json); "" when there is no table."""
    results = [results] if isinstance(results, Result) else list(results)
    if not results:                         # the command printed its own output
        return ""
    if fmt == "table":
        return "\n\n".join(_table(r) for r in results)
    if fmt == "csv":
        return _csv(results)
    if fmt == "json":
        return _json(results)
    raise ValueError(f"format: unknown {fmt!r} (choose from {', '.join(FORMATS)})")


def emit(results: Result | list[Result], fmt: str, out=None) -> None:
    """Print one or more results in ``fmt`` (table, csv or json)."""
    text = render(results, fmt)
    if text:
        print(text, file=out or sys.stdout)


def add_format_argument(p: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    """``--format/-f table|csv|json``. Under a command the default is SUPPRESS: given there it
    wins, otherwise the value given before the command (or "table") stays."""
    p.add_argument("--format", "-f", choices=FORMATS, default=default,
                   help="output format (default table)")


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Result | list[Result]]


#: Subcommand name → Command, in the order they are listed.
COMMANDS: dict[str, Command] = {}


def subcommand(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Register ``run`` as the subcommand ``name`` (see the module docstring)."""

    def register(run: Callable[[argparse.Namespace], Result | list[Result]]):
        if name in COMMANDS:
            raise RuntimeError(f"subcommand {name!r} registered twice")
        COMMANDS[name] = Command(name, help, add_arguments, run)
        return run

    return register


__all__ = ["COMMANDS", "FORMATS", "Command", "Result", "add_format_argument", "emit", "plain",
           "render", "subcommand", "text_table"]
