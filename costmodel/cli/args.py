"""The CLI's argument parser, its checked argument types and the arguments several commands share
(model, memory, workload, efficiencies).

:class:`Parser` turns every argparse error (unknown option, missing or bad value, bad choice, in
a subcommand too) into :class:`UsageError`, which :func:`costmodel.cli.main` prints as one line.
Every numeric argument goes through :mod:`costmodel.checks`, so a bad value is refused with the
allowed range: counts are integers up to 2**53, ``--gamma`` at most ``MAX_GAMMA``, bytes per
element in [0.125, 8], fractions in (0, 1], memory and overheads bounded.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any, NoReturn

from costmodel.checks import (
    MAX_COUNT,
    MAX_DIM,
    MAX_GAMMA,
    check_element_bytes,
    check_fraction,
    check_int,
    check_nonneg_number,
    check_number,
    check_positive_number,
)
from costmodel.hfconfig import SUPPORTED as HF_MODEL_TYPES
from costmodel.hfconfig import spec_from_hf_config
from costmodel.ops import EXPERTS, MLA
from costmodel.params import Precision
from costmodel.presets import engine, engine_presets, hardware, model
from costmodel.quant import FORMATS, weight_format
from costmodel.specs import DTYPES, MAX_LATENCY, MAX_MEMORY_BYTES, ModelSpec
from costmodel.speculative import check_alpha
from costmodel.units import GB, GIB, exact_number

DEFAULT_MODEL = "llama3-8b"
DEFAULT_HARDWARE = "a100-80gb"
#: Most rows one command prints (a larger grid belongs to the Python API, ``cm.sweep``).
MAX_ROWS = 10_000
#: Most values one list option takes.
MAX_VALUES = 1_000
#: Longest text read as a number.
MAX_NUMBER_CHARS = 100


class UsageError(Exception):
    """A command-line error found by argparse (printed as one line, exit 2)."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise :class:`UsageError` instead of printing the usage
    and exiting; subparsers inherit it."""

    def error(self, message: str) -> NoReturn:
        prog = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        raise UsageError(f"{prog}{message}")


# --------------------------------------------------------------------------- argument types


def _parse_number(text: str) -> int | float:
    """The number a text names: an int for an integer literal or for a decimal that names an
    integer exactly ("1e3", "2.0"; exact, however large, so "9007199254740993.0" is not rounded
    to 2**53), else a float. The checks then decide whether it is in range."""
    text = text.strip()
    if len(text) > MAX_NUMBER_CHARS:
        raise argparse.ArgumentTypeError(f"not a number: {text[:20]!r}... ({len(text):,} "
                                         f"characters; at most {MAX_NUMBER_CHARS})")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isfinite(value) and value.is_integer():
        try:
            exact = Fraction(text)          # the text's value, not the float's rounding
        except (ValueError, ZeroDivisionError):
            return value
        if exact.denominator == 1:
            return int(exact)
    return value


def _checked(name: str, check: Callable[..., Any], *a: Any, **kw: Any) -> Callable[[str], Any]:
    """An argparse type: the text parsed as a number, then ``check("value", number, ...)``; a
    refusal becomes argparse's message ``argument --opt: must be ..., got ...``."""

    def parse(text: str) -> Any:
        value = _parse_number(text)
        try:
            checked = check("value", value, *a, **kw)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix("value: ")) from None
        checked = value if checked is None else checked
        return exact_number(checked) if isinstance(checked, float) else checked

    parse.__name__ = name
    return parse


#: An integer in [1, 2**53]: tokens, requests, sizes.
count = _checked("count", check_int, 1, MAX_COUNT)
#: An integer in [0, 2**53].
nonneg_count = _checked("count", check_int, 0, MAX_COUNT)
#: A model dimension or a tensor-parallel degree: an integer in [1, 2**31 - 1].
dim = _checked("dimension", check_int, 1, MAX_DIM)
#: Drafted tokens per speculative iteration: an integer in [1, MAX_GAMMA].
gamma = _checked("gamma", check_int, 1, MAX_GAMMA)
#: Bytes per element (weight, KV, activation): a number in [0.125, 8].
element_bytes = _checked("bytes", check_element_bytes)
#: A fraction in (0, 1]: efficiencies, memory utilisation.
fraction = _checked("fraction", check_fraction)
#: Seconds per kernel launch: a number in [0, 1].
overhead_seconds = _checked("seconds", check_nonneg_number, MAX_LATENCY)
#: GiB of one GPU's memory: a number in (0, 2**30] (2**60 bytes).
memory_gib = _checked("GiB", check_positive_number, MAX_MEMORY_BYTES / GIB)
#: Bytes of one GPU's memory: an integer in [1, 2**60].
memory_bytes = _checked("bytes", check_int, 1, MAX_MEMORY_BYTES)
#: GiB kept back per GPU: a number in [0, 2**30].
reserved_gib = _checked("GiB", check_nonneg_number, MAX_MEMORY_BYTES / GIB)
#: The speculative acceptance rate α in [0, 1).
alpha = _checked("alpha", lambda _name, v: check_alpha(v) or float(v))
#: The speculative cost ratio c = T_draft / T_target: a number in [0, 1e6].
cost_ratio = _checked("cost ratio", check_number, 0.0, 1e6, open_lo=False)



def _named(kind: str, lookup: Callable[[str], Any], field: str) -> Callable[[str], str]:
    """An argparse type: a name ``lookup`` accepts (its canonical name), else argparse's message
    with the lookup's reason (its ``field: `` prefix left out)."""

    def parse(text: str) -> str:
        try:
            found = lookup(text.strip())
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(f"{field}: ")) from None
        return found.name

    parse.__name__ = kind
    return parse


#: A weight format (costmodel.quant): bf16, fp8, int4-g128, …
quant_format = _named("format", weight_format, "quant")
#: An engine profile name (costmodel.presets.engine_presets).
engine_name = _named("engine", engine, "engine")

# names kept for command modules written against the first CLI package
positive_int = count
positive_number = _checked("number", check_positive_number, float(MAX_COUNT))


def check_values(name: str, values: list, limit: int = MAX_VALUES) -> list:
    """A list option holds at most ``limit`` values."""
    if len(values) > limit:
        raise ValueError(f"{name}: at most {limit:,} values, got {len(values):,}")
    return values


def check_rows(n: int, what: str) -> None:
    """A command prints at most :data:`MAX_ROWS` rows."""
    if n > MAX_ROWS:
        raise ValueError(f"{what}: {n:,} rows; the command line prints at most {MAX_ROWS:,} "
                         "(narrow the lists, or use the Python API for larger grids)")


# --------------------------------------------------------------------------- shared arguments


def add_model_arguments(p: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--model NAME`` (a preset) or ``--config PATH`` (a Hugging Face config.json)."""
    group = p.add_mutually_exclusive_group(required=default is None)
    group.add_argument("--model", "-m", default=default,
                       help="model preset (see `costmodel presets models`)"
                            + (f"; default {default}" if default else ""))
    group.add_argument("--config", metavar="PATH",
                       help="a local Hugging Face config.json (or a folder holding one) instead "
                            f"of a preset; model types {', '.join(HF_MODEL_TYPES)}")


def model_spec(name: str, option: str = "--model") -> ModelSpec:
    """A model from a preset name or a config.json path; an error in a file names the file."""
    try:
        return model(name)
    except ValueError as e:
        if name in str(e) or not (name.endswith(".json") or "/" in name):
            raise
        raise ValueError(f"{option} {name}: {e}") from None


def model_from_args(args: argparse.Namespace) -> ModelSpec:
    """The model of ``--model NAME`` or ``--config PATH``."""
    if getattr(args, "config", None):
        try:
            return spec_from_hf_config(args.config)
        except ValueError as e:
            if args.config in str(e):
                raise
            raise ValueError(f"--config {args.config}: {e}") from None
    return model_spec(args.model)


def add_memory_arguments(p: argparse.ArgumentParser) -> None:
    """``--hardware NAME|FILE.json`` or ``--memory-gib X`` or ``--memory-bytes N`` (one GPU)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--hardware", "-H", metavar="NAME",
                       help=f"hardware preset or a calibrated .json file; default "
                            f"{DEFAULT_HARDWARE} (reports 80 GiB)")
    group.add_argument("--memory-gib", type=memory_gib, metavar="X",
                       help="memory of one GPU in GiB (2**30 bytes)")
    group.add_argument("--memory-bytes", type=memory_bytes, metavar="N",
                       help="memory of one GPU in bytes")


def memory_from_args(args: argparse.Namespace) -> tuple[int | float, str]:
    """(bytes of one GPU, a description of where the figure came from)."""
    if args.memory_bytes is not None:
        return args.memory_bytes, f"{args.memory_bytes} bytes (--memory-bytes)"
    if args.memory_gib is not None:
        value = exact_number(args.memory_gib * GIB)
        return value, f"{exact_number(args.memory_gib)} GiB = {value} bytes (--memory-gib)"
    hw = hardware(args.hardware or DEFAULT_HARDWARE)
    marketed = f", marketed {hw.memory_marketed}" if hw.memory_marketed else ""
    return hw.memory_bytes, (f"{hw.name}: reports {hw.memory_bytes} bytes = "
                             f"{hw.memory_bytes / GIB:g} GiB = {hw.memory_bytes / GB:.2f} GB"
                             f"{marketed}")


def add_hardware_argument(p: argparse.ArgumentParser, default: str = DEFAULT_HARDWARE,
                          many: bool = False) -> None:
    p.add_argument("--hardware", "-H", default=[default] if many else default,
                   nargs="+" if many else None, metavar="NAME",
                   help=f"hardware preset or a calibrated .json file (default {default})")


FORMAT_NAMES = ", ".join([*FORMATS, "int4-gG (e.g. int4-g128)"])


def add_weight_arguments(p: argparse.ArgumentParser, expert_formats: bool = True) -> None:
    """The weights' widths: ``--quant FORMAT`` or ``--weight-bytes B``, and for the routed
    experts of a mixture of experts ``--expert-quant FORMAT`` (with ``expert_formats``) or
    ``--expert-weight-bytes B``. Default: the checkpoint's formats, else 16-bit."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quant", type=quant_format, default=None, metavar="FORMAT",
                       help=f"weight format: {FORMAT_NAMES} (bytes per weight with scales; "
                            "the compute dtype picks the peak); default: the checkpoint's "
                            "format, else 16-bit")
    group.add_argument("--weight-bytes", type=element_bytes, default=None, metavar="B",
                       help="bytes per weight, in [0.125, 8] (2 = fp16/bf16, 1 = int8/fp8, "
                            "0.5 = int4), instead of a format; default: the checkpoint's "
                            "format, else 2")
    experts = p.add_mutually_exclusive_group()
    if expert_formats:
        experts.add_argument("--expert-quant", type=quant_format, default=None,
                             metavar="FORMAT",
                             help="format of the routed experts' weights (a mixture of "
                                  "experts); default: the checkpoint's, else --quant / "
                                  "--weight-bytes")
    experts.add_argument("--expert-weight-bytes", type=element_bytes, default=None,
                         metavar="B", help="bytes per routed-expert weight, in [0.125, 8]; "
                                           "default: the checkpoint's, else the weights'")


def weight_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The weight-width keywords of the API (``quant``, ``weight_bytes``, ``expert_quant``,
    ``expert_weight_bytes``) the arguments give (those not given are left out)."""
    names = ("quant", "weight_bytes", "expert_quant", "expert_weight_bytes")
    return {k: getattr(args, k) for k in names if getattr(args, k, None) is not None}


def precision_text(m: ModelSpec, prec: Precision, args: argparse.Namespace) -> str:
    """'weights fp8-block128 (1.00024 bytes per weight, the checkpoint's format); routed
    experts the same': the widths an analysis used and where they came from."""
    given = weight_kwargs(args)
    dense_given = "quant" in given or "weight_bytes" in given

    def one(fmt, width: float, where: str) -> str:
        name = fmt.name if fmt is not None else f"{width:g} bytes" if where == "given" \
            else "16-bit"
        return f"{name} ({width:.6g} bytes per weight, {where})"

    text = "weights " + one(prec.format, prec.weight_bytes,
                            "given" if dense_given else "the checkpoint's format"
                            if m.weight_format else "the default")
    if m.moe:
        expert_given = "expert_quant" in given or "expert_weight_bytes" in given
        if expert_given:
            where = "given"
        elif dense_given:
            where = "as the weights"
        elif m.expert_weight_format:
            where = "the checkpoint's format"
        else:
            where = "as the weights"
        if where == "as the weights":
            text += "; routed experts the same"
        else:
            text += "; routed experts " + one(prec.expert_format, prec.expert_weight_bytes,
                                              where)
    return text


def add_engine_argument(p: argparse.ArgumentParser) -> None:
    """``--engine NAME``: an engine profile's efficiencies, overheads, attention and 80 %
    bands."""
    p.add_argument("--engine", type=engine_name, default=None, metavar="NAME",
                   help=f"engine profile: {', '.join(engine_presets())} (its efficiencies, "
                        "per-pass overheads, attention and 80 %% error bands); default none: "
                        "the hardware's own efficiencies (the ideal roofline for a preset)")


def add_architecture_arguments(p: argparse.ArgumentParser, ep: bool = True,
                               experts: bool = True) -> None:
    """``--ep`` and ``--experts`` (a mixture of experts), ``--mla`` (latent attention)."""
    if ep:
        p.add_argument("--ep", type=dim, default=1, metavar="N",
                       help="expert-parallel degree of a mixture of experts: E/EP whole experts "
                            "per GPU, a multiple of --tp dividing the experts, the attention "
                            "running as EP/TP replicas; default 1 (experts sliced by TP)")
    if experts:
        p.add_argument("--experts", choices=EXPERTS, default="uniform",
                       help="expert weights a pass reads: those a uniform top-k routing of its "
                            "tokens touches, E(1 - (1 - k/E)^T) (default), or all E (the "
                            "pessimistic bound)")
    p.add_argument("--mla", choices=MLA, default="absorbed",
                   help="latent-attention KV cache: absorbed (the latent r_kv + d_r, "
                        "up-projections folded; serving engines; default), naive (the latent, "
                        "up-projected every pass) or expanded (per-head K and V, as Hugging "
                        "Face caches them)")


def unused_notes(m: ModelSpec, args: argparse.Namespace) -> list[str]:
    """A note for each architecture option given that ``m`` has nothing to apply it to (never
    a field dropped silently)."""
    notes = []
    if not m.moe:
        given = [f"--{k.replace('_', '-')}" for k in ("expert_quant", "expert_weight_bytes")
                 if getattr(args, k, None) is not None]
        if getattr(args, "experts", "uniform") != "uniform":
            given.append("--experts")
        if given:
            notes.append(f"{', '.join(given)}: no effect, {m.name} has no routed experts")
    if not m.mla and getattr(args, "mla", "absorbed") != "absorbed":
        notes.append(f"--mla: no effect, {m.name} has no latent attention")
    return notes


def add_precision_arguments(p: argparse.ArgumentParser) -> None:
    """Weight formats or widths, bytes per KV element and activation, and the compute
    dtype."""
    add_weight_arguments(p)
    p.add_argument("--kv-bytes", type=element_bytes, default=2, metavar="B",
                   help="bytes per KV element, in [0.125, 8]; default 2")
    p.add_argument("--act-bytes", type=element_bytes, default=None, metavar="B",
                   help="bytes per activation, in [0.125, 8] (default 2, or 4 with fp32 "
                        "weights)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="compute dtype for the peak; default: the weight format's (where the "
                        "hardware has it), else the one the weight width implies")


def add_efficiency_arguments(p: argparse.ArgumentParser) -> None:
    """The pricing's efficiencies and per-kernel overhead (default: the hardware's own)."""
    p.add_argument("--eta-c", type=fraction, default=None, metavar="X",
                   help="compute efficiency in (0, 1] (default: the hardware's, 1 for presets)")
    p.add_argument("--eta-m", type=fraction, default=None, metavar="X",
                   help="bandwidth efficiency in (0, 1] (default: the hardware's)")
    p.add_argument("--eta-c-skinny", type=fraction, default=None, metavar="X",
                   help="compute efficiency of weight matmuls with few rows, in (0, 1]")
    p.add_argument("--eta-m-elementwise", type=fraction, default=None, metavar="X",
                   help="bandwidth efficiency of elementwise and copy passes, in (0, 1]")
    p.add_argument("--kernel-overhead", type=overhead_seconds, default=None, metavar="S",
                   help="seconds per kernel launch, in [0, 1] (default: the hardware's, 0 for "
                        "presets)")


def efficiency_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"eta_c": args.eta_c, "eta_m": args.eta_m, "eta_c_skinny": args.eta_c_skinny,
            "eta_m_elementwise": args.eta_m_elementwise,
            "kernel_overhead": args.kernel_overhead}


def gb(n: float) -> float:
    """Bytes → GB (1e9 bytes)."""
    return n / GB


def gib(n: float) -> float:
    """Bytes → GiB (2**30 bytes)."""
    return n / GIB


__all__ = ["DEFAULT_HARDWARE", "DEFAULT_MODEL", "FORMAT_NAMES", "MAX_ROWS", "MAX_VALUES",
           "Parser", "UsageError", "add_architecture_arguments", "add_efficiency_arguments",
           "add_engine_argument", "add_hardware_argument", "add_memory_arguments",
           "add_model_arguments", "add_precision_arguments", "add_weight_arguments", "alpha",
           "check_rows", "check_values", "cost_ratio", "count", "dim", "efficiency_kwargs",
           "element_bytes", "engine_name", "fraction", "gamma", "gb", "gib", "memory_bytes",
           "memory_from_args", "memory_gib", "model_from_args", "model_spec", "nonneg_count",
           "overhead_seconds", "positive_int", "positive_number", "precision_text",
           "quant_format", "reserved_gib", "unused_notes", "weight_kwargs"]
