"""The ``costmodel`` command line.

    costmodel                                   summary (Llama-3-8B on an A100-80GB) + commands
    costmodel presets [models|hardware]         the bundled presets and their sources
    costmodel params --model llama3-8b          parameters by component, weight memory
    costmodel kv --model llama3-8b --context 4096 --batch 8
    costmodel batch --model llama3-8b --hardware a100-80gb --contexts 1024 2048 --tp 1 2 4 8
    costmodel --format json batch ...           (or csv; ``--format`` also works after the command)

Commands live in the modules of this package, each registered with
:func:`costmodel.cli.registry.subcommand`.
"""

from __future__ import annotations

import argparse
import os
import sys

from costmodel.cli import bench, memory, roofline, validation  # noqa: F401 - they register
from costmodel.cli.args import DEFAULT_HARDWARE, DEFAULT_MODEL
from costmodel.cli.registry import COMMANDS, FORMATS, emit
from costmodel.units import GB, GIB


def _summary() -> str:
    import costmodel as cm

    m, hw = cm.model(DEFAULT_MODEL), cm.hardware(DEFAULT_HARDWARE)
    n = cm.param_count(m)
    w = cm.weight_memory(m, 2)
    kv = cm.kv_cache_bytes(m, context=1024)
    b = cm.max_batch_size(m, hw, context=1024)
    width = max(len(c) for c in COMMANDS)
    lines = [
        f"costmodel {cm.__version__} — analytical inference cost of decoder-only transformers",
        "",
        f"{m.name} on {hw.name} ({hw.memory_bytes / GIB:g} GiB reported), 16-bit weights and KV:",
        f"  parameters            {n:,}  ({w:,} bytes = {w / GB:.2f} GB = {w / GIB:.2f} GiB)",
        f"  KV per request @1024  {kv:,} bytes = {kv / GIB:g} GiB",
        f"  max batch @1024, TP 1 {b}",
        "",
        "commands:",
        *(f"  {c.name:<{width}}  {c.help}" for c in COMMANDS.values()),
        "",
        "`costmodel COMMAND --help` for options; `--format table|csv|json` on every command.",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="costmodel",
        description="Analytical inference-cost calculator for decoder-only transformers.")
    parser.add_argument("--format", "-f", choices=FORMATS, default="table",
                        help="output format (default table)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        # SUPPRESS: given after the command it wins, otherwise the global value stays
        p.add_argument("--format", "-f", choices=FORMATS, default=argparse.SUPPRESS,
                       help="output format (default table)")
        cmd.add_arguments(p)
    return parser


def _error(message: object) -> int:
    text = " ".join(str(message).split()) or "unexpected error"
    print(f"costmodel: error: {text}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``costmodel`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            print(_summary())
            return 0
        emit(COMMANDS[args.command].run(args), args.format)
    except ValueError as e:
        return _error(e)
    except OSError as e:  # a file that cannot be read
        if isinstance(e, BrokenPipeError):  # `costmodel presets | head`: stop quietly
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is written
            return 0
        name = f" {e.filename}" if getattr(e, "filename", None) else ""
        return _error(f"{e.strerror or e}{':' if name else ''}{name}")
    return 0


