"""Argument types and the arguments several commands share (model, memory)."""

from __future__ import annotations

import argparse
import math

from costmodel.hfconfig import spec_from_hf_config
from costmodel.presets import hardware, model
from costmodel.units import GB, GIB, exact_number

DEFAULT_MODEL = "llama3-8b"
DEFAULT_HARDWARE = "a100-80gb"


def _number(text: str) -> int | float:
    """A real number from the command line: an int when it is integral (2 → 2, 0.5 → 0.5)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def positive_number(text: str) -> int | float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def nonneg_number(text: str) -> int | float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


# --------------------------------------------------------------------------- shared arguments


def add_model_arguments(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--model NAME`` (a preset) or ``--config PATH`` (a Hugging Face config.json)."""
    group = p.add_mutually_exclusive_group(required=default is None)
    group.add_argument("--model", "-m", default=default,
                       help="model preset (see `costmodel presets models`)"
                            + (f"; default {default}" if default else ""))
    group.add_argument("--config", metavar="PATH",
                       help="a local Hugging Face config.json (or a folder holding one) instead "
                            "of a preset; model types gpt2, llama, mistral, qwen2")


def model_from_args(args: argparse.Namespace):
    if getattr(args, "config", None):
        return spec_from_hf_config(args.config)
    return model(args.model)


def add_memory_arguments(p: argparse.ArgumentParser) -> None:
    """``--hardware NAME|FILE.json`` or ``--memory-gib X`` or ``--memory-bytes N`` (one GPU)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--hardware", "-H", metavar="NAME",
                       help=f"hardware preset or a calibrated .json file; default "
                            f"{DEFAULT_HARDWARE} (reports 80 GiB)")
    group.add_argument("--memory-gib", type=positive_number, metavar="X",
                       help="memory of one GPU in GiB (2**30 bytes)")
    group.add_argument("--memory-bytes", type=positive_int, metavar="N",
                       help="memory of one GPU in bytes")


def memory_from_args(args: argparse.Namespace) -> tuple[int | float, str]:
    """(bytes of one GPU, a description of where the figure came from)."""
    if args.memory_bytes is not None:
        return args.memory_bytes, f"{args.memory_bytes} bytes (--memory-bytes)"
    if args.memory_gib is not None:
        value = exact_number(args.memory_gib * GIB)
        return value, f"{args.memory_gib} GiB = {value} bytes (--memory-gib)"
    hw = hardware(args.hardware or DEFAULT_HARDWARE)
    marketed = f", marketed {hw.memory_marketed}" if hw.memory_marketed else ""
    return hw.memory_bytes, (f"{hw.name}: reports {hw.memory_bytes} bytes = "
                             f"{hw.memory_bytes / GIB:g} GiB = {hw.memory_bytes / GB:.2f} GB"
                             f"{marketed}")


def exact_number(n: float) -> int | float:
    """An int when ``n`` is integral (byte counts print as 248879616, not 248879616.0)."""
    return int(n) if float(n).is_integer() else float(n)


def _gb(n: float) -> float:
    return n / GB


def _gib(n: float) -> float:
    return n / GIB


