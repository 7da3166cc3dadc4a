"""The ``costmodel`` command line.

    costmodel                                   summary (Llama-3-8B on an A100-80GB) + commands
    costmodel presets [models|hardware]         the bundled presets and their sources
    costmodel params --model llama3-8b          parameters by component, weight memory
    costmodel kv --model llama3-8b --context 4096 --batch 8
    costmodel batch --model llama3-8b --hardware a100-80gb --contexts 1024 2048 --tp 1 2 4 8
    costmodel --format json batch ...           (or csv; ``--format`` also works after the command)

Adding a subcommand
-------------------
Write two functions and register them with :func:`subcommand`::

    def _add_foo(p: argparse.ArgumentParser) -> None:
        add_model_arguments(p)                      # --model / --config, if it needs a model
        p.add_argument("--bar", type=positive_int, default=1)

    @subcommand("foo", "one line of help", _add_foo)
    def _run_foo(args: argparse.Namespace) -> Result | list[Result]:
        m = model_from_args(args)
        return Result(rows=[{"name": m.name, "bar": args.bar}], notes=["how it was computed"])

``run`` returns rows (dicts, one per table row; values stay exact: ints for bytes and counts) and
never prints; :func:`emit` renders them as a table (tabulate, with the notes underneath), CSV or
JSON. Raise ``ValueError`` for bad input: :func:`main` prints it as one line
``costmodel: error: ...`` and exits 2. Units are in the column names (``_bytes``, ``_gb`` = 1e9
bytes, ``_gib`` = 2**30 bytes).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tabulate import tabulate

GIB = 2**30
GB = 10**9
FORMATS = ("table", "csv", "json")
DEFAULT_MODEL = "llama3-8b"
DEFAULT_HARDWARE = "a100-80gb"


# --------------------------------------------------------------------------- output


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


# --------------------------------------------------------------------------- argument types


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
    import costmodel as cm

    if getattr(args, "config", None):
        return cm.ModelSpec.from_hf_config(args.config)
    return cm.model(args.model)


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
    import costmodel as cm

    if args.memory_bytes is not None:
        return args.memory_bytes, f"{args.memory_bytes} bytes (--memory-bytes)"
    if args.memory_gib is not None:
        value = exact_number(args.memory_gib * GIB)
        return value, f"{args.memory_gib} GiB = {value} bytes (--memory-gib)"
    hw = cm.hardware(args.hardware or DEFAULT_HARDWARE)
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


# --------------------------------------------------------------------------- registry


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


# --------------------------------------------------------------------------- presets


def _add_presets(p: argparse.ArgumentParser) -> None:
    p.add_argument("which", nargs="?", choices=("models", "hardware"),
                   help="which presets (default: both; csv/json need one)")


def _short_source(source: str, width: int = 40) -> str:
    short = re.split(r"\s*[(;]", source, maxsplit=1)[0].strip()
    return short if len(short) <= width else short[: width - 1] + "…"


def _models_result() -> Result:
    import costmodel as cm

    rows = [{"name": m.name, "layers": m.n_layers, "d_model": m.d_model, "heads": m.n_heads,
             "kv_heads": m.n_kv_heads, "d_ff": m.d_ff, "vocab": m.vocab_size,
             "params": m.param_count, "source": m.source}
            for m in cm.model_presets().values()]
    return Result(rows, title="Model presets (params: exact count, embeddings and norms included)",
                  table_columns=[k for k in rows[0] if k != "source"])


def _hardware_result() -> Result:
    import costmodel as cm

    rows = []
    for hw in cm.hardware_presets().values():
        bf16, fp16 = hw.peak_flops.get("bf16"), hw.peak_flops.get("fp16")
        rows.append({
            "name": hw.name, "marketed": hw.memory_marketed,
            "memory_gib": hw.memory_bytes / GIB, "bandwidth_gbs": hw.bandwidth / GB,
            "bf16_tflops": None if bf16 is None else bf16 / 1e12,
            "fp16_tflops": None if fp16 is None else fp16 / 1e12,
            "source_short": _short_source(hw.source), "source": hw.source, "notes": hw.notes,
        })
    return Result(rows, title="Hardware presets (memory as the device reports it; dense peaks, "
                              "a multiply-add = 2 FLOPs)",
                  table_columns=[k for k in rows[0] if k not in ("source", "notes")])


@subcommand("presets", "list the model and hardware presets with their sources", _add_presets)
def _run_presets(args: argparse.Namespace) -> list[Result]:
    which = args.which
    out = []
    if which in (None, "models"):
        out.append(_models_result())
    if which in (None, "hardware"):
        out.append(_hardware_result())
    return out


# --------------------------------------------------------------------------- params


def _add_params(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--weight-bytes", type=positive_number, default=2, metavar="B",
                   help="bytes per weight (2 = fp16/bf16, 1 = int8/fp8, 0.5 = int4); default 2")


@subcommand("params", "parameters by component and weight memory", _add_params)
def _run_params(args: argparse.Namespace) -> Result:
    import costmodel as cm

    m = model_from_args(args)
    b = args.weight_bytes
    breakdown = cm.param_breakdown(m)
    total = cm.param_count(m)

    def row(component: str, n: int) -> dict[str, Any]:
        nbytes = exact_number(n * b)
        return {"component": component, "params": n, "weight_bytes": nbytes,
                "weight_gb": _gb(nbytes), "weight_gib": _gib(nbytes)}

    rows = [row(k, v) for k, v in breakdown.items()] + [row("total", total)]
    notes = [f"{m.name}: {total} parameters × {b} bytes per weight = {rows[-1]['weight_bytes']} "
             f"bytes = {rows[-1]['weight_gb']:.3f} GB (1e9) = {rows[-1]['weight_gib']:.3f} GiB "
             "(2**30)"]
    return Result(rows, title=f"Parameters of {m.name}", notes=notes)


# --------------------------------------------------------------------------- kv


def _add_kv(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--context", "-c", type=positive_int, required=True, metavar="N",
                   help="tokens held in the cache per request")
    p.add_argument("--batch", "-b", type=positive_int, default=1, metavar="B",
                   help="concurrent requests; default 1")
    p.add_argument("--kv-bytes", type=positive_number, default=2, metavar="B",
                   help="bytes per KV element (2 = fp16/bf16, 1 = fp8/int8, 0.5 = int4); "
                        "default 2")


@subcommand("kv", "KV-cache bytes per token, per request and for a batch", _add_kv)
def _run_kv(args: argparse.Namespace) -> Result:
    import costmodel as cm

    m = model_from_args(args)
    per_token = cm.kv_bytes_per_token(m, kv_bytes=args.kv_bytes)
    per_request = cm.kv_cache_bytes(m, context=args.context, kv_bytes=args.kv_bytes)
    batch = cm.kv_cache_bytes(m, context=args.context, batch=args.batch, kv_bytes=args.kv_bytes)
    rows = [
        {"quantity": "per token", "tokens": 1, "requests": 1, "bytes": per_token},
        {"quantity": "per request", "tokens": args.context, "requests": 1, "bytes": per_request},
        {"quantity": "batch", "tokens": args.context, "requests": args.batch, "bytes": batch},
    ]
    for r in rows:
        r["gb"] = _gb(r["bytes"])
        r["gib"] = _gib(r["bytes"])
    notes = [f"per token = 2 (K and V) · {m.n_layers} layers · {m.n_kv_heads} KV heads · "
             f"{m.head_dim} head dim · {args.kv_bytes} bytes = {per_token} bytes; "
             f"× {args.context} tokens × {args.batch} requests",
             "GB = 1e9 bytes, GiB = 2**30 bytes"]
    return Result(rows, title=f"KV cache of {m.name}", notes=notes)


# --------------------------------------------------------------------------- batch


def _add_batch(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    add_memory_arguments(p)
    p.add_argument("--contexts", "-c", type=positive_int, nargs="+", default=[1024, 2048, 4096],
                   metavar="N", help="context lengths; default 1024 2048 4096")
    p.add_argument("--tp", type=positive_int, nargs="+", default=None, metavar="X",
                   help="tensor-parallel degrees; default those of 1 2 4 8 valid for the model")
    p.add_argument("--weight-bytes", type=positive_number, default=2, metavar="B",
                   help="bytes per weight; default 2")
    p.add_argument("--kv-bytes", type=positive_number, default=2, metavar="B",
                   help="bytes per KV element; default 2")
    p.add_argument("--mem-util", type=positive_number, default=1.0, metavar="U",
                   help="usable fraction of GPU memory, in (0, 1]; default 1.0 (vLLM uses 0.9)")
    p.add_argument("--reserved-gib", type=nonneg_number, default=0, metavar="X",
                   help="GiB per GPU kept for the runtime and activations; default 0")
    p.add_argument("--convention", choices=("exact", "e0294"), default="exact",
                   help="exact: the model's exact parameter count (default). e0294: count "
                        "parameters as E0294 Assignment 4 Problem 1 does (no SwiGLU gate, no "
                        "W_O, MLP biases, no norms; costmodel.conventions.e0294_param_count). "
                        "The text reads '80 GB' as 80 GiB, which is what an A100-80GB reports; "
                        "pass --memory-gib 80 (or the a100-80gb preset) to reproduce its table")


@subcommand("batch", "maximum batch size per (context, TP) under a GPU's memory", _add_batch)
def _run_batch(args: argparse.Namespace) -> Result:
    import costmodel as cm
    from costmodel.batch import check_tp

    m = model_from_args(args)
    memory, memory_note = memory_from_args(args)
    notes = [f"memory per GPU: {memory_note}"]
    if args.tp is None:
        tps = []
        for tp in (1, 2, 4, 8):
            try:
                tps.append(check_tp(m, tp))
            except ValueError:
                pass
    else:
        tps = [check_tp(m, tp) for tp in args.tp]
    params = None
    exact = cm.param_count(m)
    if args.convention == "e0294":
        params = cm.e0294_param_count(m)
        notes.append(
            f"--convention e0294: {params} parameters as E0294 Assignment 4 counts them "
            f"(exact count {exact}, difference {exact - params}); "
            "see costmodel.conventions")
    reserved = args.reserved_gib * GIB
    rows, reasons = [], []
    for context in args.contexts:
        for tp in tps:
            plan = cm.batch_plan(m, memory, context, tp=tp, weight_bytes=args.weight_bytes,
                                 kv_bytes=args.kv_bytes, mem_util=args.mem_util,
                                 reserved=reserved, params=params)
            rows.append({
                "context": context, "tp": tp,
                "weights_per_gpu_gib": _gib(plan.weight_bytes_per_gpu),
                "kv_per_request_per_gpu_gib": _gib(plan.kv_bytes_per_request_per_gpu),
                "max_batch": plan.max_batch,
                "kv_heads_per_gpu": plan.kv_heads_per_gpu,
                "kv_replication": plan.kv_replication,
                "weights_per_gpu_bytes": exact_number(plan.weight_bytes_per_gpu),
                "kv_per_request_per_gpu_bytes": exact_number(plan.kv_bytes_per_request_per_gpu),
                "params": plan.params,
                "reason": plan.reason,
            })
            if plan.max_batch == 0 and plan.reason not in reasons:
                reasons.append(plan.reason)
    notes.append(f"u = {args.mem_util}, reserved = {args.reserved_gib} GiB per GPU; "
                 "B_max = floor((u·M − R − P·b_w/TP) / (s · 2·L·ceil(H_kv/TP)·d_h·b_kv)), "
                 "the number of requests the whole TP group serves")
    replicated = sorted({r["tp"] for r in rows if r["kv_replication"] > 1})
    if replicated:
        notes.append(f"TP {', '.join(map(str, replicated))} > n_kv_heads={m.n_kv_heads}: each "
                     "KV head is replicated on TP/n_kv_heads GPUs, so the KV cache per GPU "
                     "stops shrinking")
    notes.extend(f"max batch 0: {r}" for r in reasons)
    return Result(rows, title=f"Maximum batch of {m.name}", notes=notes,
                  table_columns=["context", "tp", "weights_per_gpu_gib",
                                 "kv_per_request_per_gpu_gib", "max_batch", "kv_heads_per_gpu",
                                 "kv_replication"])


# --------------------------------------------------------------------------- main


def _summary() -> str:
    import costmodel as cm

    m, hw = cm.model(DEFAULT_MODEL), cm.hardware(DEFAULT_HARDWARE)
    n = cm.param_count(m)
    w = cm.weight_bytes(m, 2)
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


#: Modules that register more subcommands when imported (each may be absent).
COMMAND_MODULES = ("costmodel.roofline_commands", "costmodel.validation_commands",
                   "costmodel.bench_commands")


def _load_command_modules() -> None:
    import importlib

    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
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


if __name__ == "__main__":  # run through the package module so plugins register in one place
    from costmodel.cli import main as _main

    sys.exit(_main())
