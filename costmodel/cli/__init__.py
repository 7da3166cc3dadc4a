"""The ``costmodel`` command line: the parser and :func:`main`.

    costmodel                                   summary (Llama-3-8B on an A100-80GB) + commands
    costmodel presets [models|hardware]         the bundled presets and their sources
    costmodel params --model llama3-8b          parameters by component, weight memory
    costmodel kv --model llama3-8b --context 4096 --batch 8
    costmodel batch --model llama3-8b --hardware a100-80gb --contexts 1024 2048 --tp 1 2 4 8
    costmodel --format json batch ...           (or csv; ``--format`` also works after the command)

Commands live in the modules of this package, each registered with
:func:`costmodel.cli.registry.subcommand`. Every error — a bad argument found by argparse, a
``ValueError`` from the API or a file reader, anything unexpected — is one line
``costmodel: error: …`` on stderr with exit status 2, never a usage dump or a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from costmodel.batch import max_batch_size
from costmodel.cli import bench, memory, roofline, validation  # noqa: F401 - they register
from costmodel.cli.args import DEFAULT_HARDWARE, DEFAULT_MODEL, Parser, UsageError
from costmodel.cli.registry import COMMANDS, Result, add_format_argument, render
from costmodel.kvcache import kv_cache_bytes
from costmodel.params import param_count, weight_memory
from costmodel.presets import hardware, model
from costmodel.units import GB, GIB

#: Longest error line printed (a message quoting a huge input is cut).
MAX_ERROR_CHARS = 1000
#: The order the commands are listed in (by the summary and ``--help``); others follow.
LISTING = ("presets", "params", "kv", "batch", "analyze", "ai", "specdec", "sweep", "calibrate",
           "measure", "validate", "bench")
for _name in sorted(COMMANDS, key=lambda n: LISTING.index(n) if n in LISTING else len(LISTING)):
    COMMANDS[_name] = COMMANDS.pop(_name)


def _summary(fmt: str) -> str:
    m, hw = model(DEFAULT_MODEL), hardware(DEFAULT_HARDWARE)
    n = param_count(m)
    w = weight_memory(m, 2)
    kv = kv_cache_bytes(m, context=1024)
    b = max_batch_size(m, hw, context=1024)
    if fmt != "table":
        rows: list[dict[str, Any]] = [
            {"quantity": "parameters", "value": n},
            {"quantity": "weight_bytes (16-bit)", "value": w},
            {"quantity": "kv_bytes_per_request@1024 (16-bit)", "value": kv},
            {"quantity": "max_batch@1024 tp1", "value": b}]
        return render(Result(rows, title=f"{m.name} on {hw.name}", name="summary"), fmt)
    width = max(len(c) for c in COMMANDS)
    lines = [
        "costmodel — analytical inference cost of decoder-only transformers",
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


def build_parser(only: str | None = None) -> Parser:
    """The parser of every command, or (``only``) with the options of that command alone (the
    others listed by name: a query does not pay for building every command's options)."""
    parser = Parser(prog="costmodel",
                    description="Analytical inference-cost calculator for decoder-only "
                                "transformers.")
    add_format_argument(parser, default="table")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.values():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        if only is None or cmd.name == only:
            add_format_argument(p)
            cmd.add_arguments(p)
    return parser


def _command_named(argv: list[str]) -> str | None:
    """The command word of ``argv`` (the first word that is not a global option), if any."""
    words = iter(argv)
    for word in words:
        if word in ("--format", "-f"):
            next(words, None)
        elif word == "--":
            return next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _error(message: object) -> int:
    text = " ".join(str(message).split()) or "unexpected error"
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3] + "..."
    print(f"costmodel: error: {text}", file=sys.stderr)
    return 2


def _run(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    name = _command_named(argv)
    parser = build_parser(name if name in COMMANDS else None)
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and getattr(args, "benchmark_options", None) is not None:
            args.benchmark_options = [*extra, *args.benchmark_options]  # its own options
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:                 # --help printed its text
        return e.code if isinstance(e.code, int) else 0
    if args.command is None:
        text = _summary(args.format)
    else:
        text = render(COMMANDS[args.command].run(args), args.format)
    if text:
        print(text)
        sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``costmodel`` console script; returns the exit status."""
    try:
        return _run(argv)
    except (ValueError, UsageError) as e:
        return _error(e)
    except BrokenPipeError:                 # `costmodel presets | head`: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more is written
        return 0
    except OSError as e:                    # a file that cannot be read or written
        name = f" {e.filename}" if getattr(e, "filename", None) else ""
        return _error(f"{e.strerror or e}{':' if name else ''}{name}")
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as e:  # noqa: BLE001 - the promise: one line, never a traceback
        detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return _error(f"internal error ({detail})")


__all__ = ["COMMANDS", "LISTING", "build_parser", "main"]
