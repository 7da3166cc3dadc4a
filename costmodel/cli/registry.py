"""The CLI's command registry and its output: a command returns :class:`Result` tables, which
:func:`emit` renders as a table (tabulate), CSV or JSON.

Adding a subcommand: write two functions and register them with :func:`subcommand`::

    def _add_foo(p: argparse.ArgumentParser) -> None:
        add_model_arguments(p)                      # --model / --config, if it needs a model
        p.add_argument("--bar", type=positive_int, default=1)

    @subcommand("foo", "one line of help", _add_foo)
    def _run_foo(args: argparse.Namespace) -> Result | list[Result]:
        m = model_from_args(args)
        return Result(rows=[{"name": m.name, "bar": args.bar}], notes=["how it was computed"])

``run`` returns rows (dicts, one per table row; values stay exact: ints for bytes and counts) and
never prints. Raise ``ValueError`` for bad input: :func:`costmodel.cli.main` prints it as one line
``costmodel: error: ...`` and exits 2. Units are in the column names (``_bytes``, ``_gb`` = 1e9
bytes, ``_gib`` = 2**30 bytes).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

FORMATS = ("table", "csv", "json")


@dataclass
class Result:
    """One table of output: ``rows`` (dicts with the same keys), an optional ``title``, ``notes``
    printed under the table (table format only), and ``table_columns``: the keys the table format
    shows (CSV and JSON always carry every key)."""

    rows: list[dict[str, Any]]
    title: str = ""
    notes: list[str] = field(default_factory=list)
    table_columns: Sequence[str] | None = None


def _table(result: Result) -> str:
    cols = list(result.table_columns or (result.rows[0].keys() if result.rows else []))
    body = [[row.get(c) for c in cols] for row in result.rows]
    parts = []
    if result.title:
        parts.append(result.title)
    parts.append(tabulate(body, headers=cols, tablefmt="simple", missingval="-"))
    parts.extend(result.notes)
    return "\n".join(parts)


def _csv(result: Result) -> str:
    buf = io.StringIO()
    fieldnames = list(result.rows[0].keys()) if result.rows else []
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result.rows)
    return buf.getvalue().rstrip("\n")


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json(result: Result) -> str:
    rows = [{k: _json_value(v) for k, v in row.items()} for row in result.rows]
    return json.dumps(rows, indent=2)


def emit(results: Result | list[Result], fmt: str, out=None) -> None:
    """Print one or more results in ``fmt`` (table, csv or json)."""
    out = out or sys.stdout
    results = [results] if isinstance(results, Result) else list(results)
    if not results:  # the command printed its own output (benchmarks)
        return
    if fmt != "table" and len(results) != 1:
        raise ValueError(f"format: --format {fmt} prints one table; this command made "
                         f"{len(results)} — narrow the command to one of them")
    render = {"table": _table, "csv": _csv, "json": _json}[fmt]
    print("\n\n".join(render(r) for r in results), file=out)


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


