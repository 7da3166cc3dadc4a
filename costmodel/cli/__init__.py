"""The ``costmodel`` command line: the parser and :func:`main`.

    costmodel                                   summary (Llama-3-8B on an A100-80GB) + commands
    costmodel presets [models|hardware]         the bundled presets and their sources
    costmodel params --model llama3-8b          parameters by component, weight memory
    costmodel kv --model llama3-8b --context 4096 --batch 8
    costmodel batch --model llama3-8b --hardware a100-80gb --contexts 1024 2048 --tp 1 2 4 8
    costmodel --format json batch ...           (or csv; ``--format`` also works after the command)

Commands live in the modules of this package, each registered with
:func:`costmodel.cli.registry.subcommand`; :data:`COMMAND_MODULES` says which module defines
which command, and a query imports that module alone (a ``kv`` query never pays for the
roofline, the benchmarks or the validation — the start-up of a query is a measured target,
``costmodel bench startup``). Every error — a bad argument found by argparse, a ``ValueError``
from the API or a file reader, anything unexpected — is one line ``costmodel: error: …`` on
stderr with exit status 2, never a usage dump or a traceback.
"""

from __future__ import annotations

import importlib
import os
import sys

from costmodel.cli.args import Parser, UsageError
from costmodel.cli.registry import COMMANDS, add_format_argument, render

#: Longest error line printed (a message quoting a huge input is cut).
MAX_ERROR_CHARS = 1000
#: Command → the module of this package that defines it; also the order the commands are
#: listed in (by the summary and ``--help``).
COMMAND_MODULES = {"presets": "memory", "params": "memory", "kv": "memory", "batch": "memory",
                   "analyze": "roofline", "ai": "roofline", "specdec": "roofline",
                   "sweep": "roofline", "calibrate": "validation", "measure": "validation",
                   "validate": "validation", "bench": "bench", "plan": "plan"}
LISTING = tuple(COMMAND_MODULES)


def load_commands(name: str | None = None) -> None:
    """Register the command ``name`` (importing only its module), or every command."""
    modules = [COMMAND_MODULES[name]] if name in COMMAND_MODULES \
        else list(dict.fromkeys(COMMAND_MODULES.values()))
    for module in modules:
        importlib.import_module(f"costmodel.cli.{module}")
    for key in sorted(COMMANDS, key=lambda n: LISTING.index(n) if n in LISTING else 99):
        COMMANDS[key] = COMMANDS.pop(key)


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
    load_commands(name)
    if name not in COMMANDS:       # no command, --help, or a typo: list them all
        load_commands()
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
        text = importlib.import_module("costmodel.cli.memory").summary(args.format, COMMANDS)
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


__all__ = ["COMMANDS", "COMMAND_MODULES", "LISTING", "build_parser", "load_commands", "main"]
