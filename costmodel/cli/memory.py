"""CLI commands of the memory model: ``presets``, ``params``, ``kv``, ``batch``."""

from __future__ import annotations

import argparse
import re
from typing import Any

from costmodel.batch import batch_plan, check_parallel, check_tp, max_batch_size
from costmodel.cli.args import (
    DEFAULT_HARDWARE,
    DEFAULT_MODEL,
    add_architecture_arguments,
    add_memory_arguments,
    add_model_arguments,
    add_weight_arguments,
    check_rows,
    check_values,
    count,
    dim,
    element_bytes,
    fraction,
    gb,
    gib,
    memory_from_args,
    model_from_args,
    precision_text,
    reserved_gib,
    unused_notes,
    weight_kwargs,
)
from costmodel.cli.registry import Result, render, subcommand
from costmodel.conventions import e0294_param_count
from costmodel.kvcache import kv_by_layer_type, kv_bytes_per_token, kv_cache_bytes
from costmodel.params import (
    EXPERT_COMPONENTS,
    active_param_count,
    expert_param_count,
    param_breakdown,
    param_count,
    resolve_weight_bytes,
    weight_memory,
)
from costmodel.presets import engine_presets, hardware, hardware_presets, model, model_presets
from costmodel.specs import ModelSpec
from costmodel.units import GB, GIB, exact_number


def _add_presets(p: argparse.ArgumentParser) -> None:
    p.add_argument("which", nargs="?", choices=("models", "hardware", "engines"),
                   help="which presets (default: all)")


def _short_source(source: str, width: int = 40) -> str:
    short = re.split(r"\s*[(;]", source, maxsplit=1)[0].strip()
    return short if len(short) <= width else short[: width - 1] + "…"


def _models_result() -> Result:
    rows = [{"name": m.name, "layers": m.n_layers, "d_model": m.d_model, "heads": m.n_heads,
             "kv_heads": m.n_kv_heads, "d_ff": m.d_ff, "vocab": m.vocab_size,
             "params": param_count(m), "source": m.source}
            for m in model_presets().values()]
    return Result(rows, title="Model presets (params: exact count, embeddings and norms included)",
                  table_columns=[k for k in rows[0] if k != "source"], name="models")


def _hardware_result() -> Result:
    rows = []
    for hw in hardware_presets().values():
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
                  table_columns=[k for k in rows[0] if k not in ("source", "notes")],
                  name="hardware")


def _engines_result() -> Result:
    rows = [{"name": e.name, "applies": e.describe(), "source": e.source, "notes": e.notes}
            for e in engine_presets().values()]
    return Result(rows, title="Engine profiles (what each applies on top of the datasheet "
                              "roofline; the bands: 80 % of measured/predicted time ratios)",
                  table_columns=["name", "applies"], name="engines")


@subcommand("presets", "list the model, hardware and engine presets with their sources",
            _add_presets)
def _run_presets(args: argparse.Namespace) -> list[Result]:
    which = args.which
    out = []
    if which in (None, "models"):
        out.append(_models_result())
    if which in (None, "hardware"):
        out.append(_hardware_result())
    if which in (None, "engines"):
        out.append(_engines_result())
    return out


# --------------------------------------------------------------------------- params


def _add_params(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    add_weight_arguments(p)


ACTIVE_NOTE = ("active parameters = those one token uses: every parameter but the routed "
               "experts', plus k/E of them (each token reaches k of the E experts of a MoE "
               "layer); the input embedding counts (one row is read per token) — vendors "
               "differ on whether it does")


@subcommand("params", "parameters by component (total and active), weight formats and memory",
            _add_params)
def _run_params(args: argparse.Namespace) -> Result:
    m = model_from_args(args)
    prec = resolve_weight_bytes(m, **weight_kwargs(args))
    b, be = prec.weight_bytes, prec.expert_weight_bytes
    breakdown = param_breakdown(m)
    total, active = param_count(m), active_param_count(m)

    def row(component: str, n: int, width: float, nbytes: int | float) -> dict[str, Any]:
        return {"component": component, "params": n, "weight_bytes": nbytes,
                "weight_gb": gb(nbytes), "weight_gib": gib(nbytes), "bytes_per_weight": width,
                "active_params": None}

    rows = []
    for name, n in breakdown.items():
        width = be if name in EXPERT_COMPONENTS else b
        rows.append(row(name, n, width, exact_number(n * width)))
    rows.append(row("total", total, b if b == be else None, weight_memory(m, b, be)))
    rows[-1]["active_params"] = active
    w = rows[-1]["weight_bytes"]
    width = f"× {b:g} bytes per weight" if b == be else \
        f"at {b:g} bytes per weight, the routed experts at {be:g}"
    notes = [f"{m.name}: {total} parameters {width} = {w} bytes = {gb(w):.3f} GB (1e9) = "
             f"{gib(w):.3f} GiB (2**30)",
             precision_text(m, prec, args)]
    if m.moe:
        experts = expert_param_count(m)
        embeddings = breakdown.get("embeddings", 0)
        notes.append(
            f"active parameters per token: {active} ({100 * active / total:.1f} % of the "
            f"total) = {total - experts} non-expert + {m.experts_per_token}/{m.n_experts} of "
            f"the {experts} routed-expert parameters; without the input embedding "
            f"({embeddings}): {active - embeddings}")
    else:
        notes.append(f"active parameters per token: {active} (dense: all of them)")
    notes.append(ACTIVE_NOTE)
    notes.extend(unused_notes(m, args))
    return Result(rows, title=f"Parameters of {m.name}", notes=notes,
                  table_columns=["component", "params", "weight_bytes", "weight_gb",
                                 "weight_gib", "bytes_per_weight"])


# --------------------------------------------------------------------------- kv


def _add_kv(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--context", "-c", type=count, required=True, metavar="N",
                   help="tokens held in the cache per request (at most 2**53)")
    p.add_argument("--batch", "-b", type=count, default=1, metavar="B",
                   help="concurrent requests; default 1")
    p.add_argument("--kv-bytes", type=element_bytes, default=2, metavar="B",
                   help="bytes per KV element, in [0.125, 8] (2 = fp16/bf16, 1 = fp8/int8, "
                        "0.5 = int4); default 2")
    add_architecture_arguments(p, ep=False, experts=False)


def _per_layer_elements(m: ModelSpec, mla: str) -> int:
    """KV elements one layer caches per token (K and V, or the latent)."""
    return int(kv_bytes_per_token(m, kv_bytes=1, mla=mla)) // m.n_layers


@subcommand("kv", "KV-cache bytes per token, per request, per layer type and for a batch",
            _add_kv)
def _run_kv(args: argparse.Namespace) -> Result:
    m = model_from_args(args)
    s, b, mla = args.context, args.kv_bytes, args.mla
    per_token = kv_bytes_per_token(m, kv_bytes=b, mla=mla)
    per_request = kv_cache_bytes(m, context=s, kv_bytes=b, mla=mla)
    batch = kv_cache_bytes(m, context=s, batch=args.batch, kv_bytes=b, mla=mla)
    rows = [
        {"quantity": "per token", "tokens": 1, "requests": 1, "bytes": per_token},
        {"quantity": "per request", "tokens": s, "requests": 1, "bytes": per_request},
        {"quantity": "batch", "tokens": s, "requests": args.batch, "bytes": batch},
    ]
    windowed = bool(m.sliding_window and m.window_layers)
    if windowed:
        layers = kv_by_layer_type(m, s, kv_bytes=b, mla=mla)
        rows += [
            {"quantity": "full-attention layers", "tokens": s, "requests": 1,
             "bytes": layers["full_layers"]},
            {"quantity": "window layers", "tokens": s, "requests": 1,
             "bytes": layers["window_layers"]},
            {"quantity": "per token at context", "tokens": 1, "requests": 1,
             "bytes": exact_number(per_request / s)},
        ]
    for r in rows:
        r["gb"] = gb(r["bytes"])
        r["gib"] = gib(r["bytes"])
    e = _per_layer_elements(m, mla)
    if m.mla:
        layout = {"absorbed": "the latent r_kv + d_r", "naive": "the latent r_kv + d_r",
                  "expanded": "per-head K and V, H·(d_n + d_r + d_v)"}[mla]
        other = "expanded" if mla != "expanded" else "absorbed"
        other_bytes = kv_bytes_per_token(m, kv_bytes=b, mla=other)
        notes = [f"per token = {m.n_layers} layers · {e} elements ({layout}, --mla {mla}) · "
                 f"{b:g} bytes = {per_token} bytes; --mla {other}: {other_bytes} bytes "
                 f"({other_bytes / per_token:.3g}×)",
                 "latent attention: serving engines (vLLM, SGLang) cache the latent "
                 f"({m.kv_lora_rank} + {m.qk_rope_head_dim} per layer); Hugging Face's "
                 f"implementation caches the expanded K and V ({m.n_heads} heads · "
                 f"({m.qk_nope_head_dim} + {m.qk_rope_head_dim} + {m.v_head_dim}))"]
    else:
        notes = [f"per token = 2 (K and V) · {m.n_layers} layers · {m.n_kv_heads} KV heads · "
                 f"{m.head_dim} head dim · {b:g} bytes = {per_token} bytes"]
    if windowed:
        full_layers = m.n_layers - m.window_layers
        held = full_layers * s + m.window_layers * min(s, m.sliding_window - 1)
        notes.append(
            f"sliding window W = {m.sliding_window} on {m.window_layers} of {m.n_layers} "
            f"layers: a request holds (L − L_w)·s + L_w·min(s, W − 1) = {full_layers}·{s} + "
            f"{m.window_layers}·{min(s, m.sliding_window - 1)} = {held} layer-tokens; "
            f"'per token' is within the window, 'per token at context' = per request / s "
            f"(the window layers saturate at W − 1 = {m.sliding_window - 1} tokens)")
        notes.append(f"× {args.batch} requests")
    else:
        notes[0] += f"; × {s} tokens × {args.batch} requests"
    notes.append("GB = 1e9 bytes, GiB = 2**30 bytes")
    notes.extend(unused_notes(m, args))
    return Result(rows, title=f"KV cache of {m.name}", notes=notes)


# --------------------------------------------------------------------------- batch


def _add_batch(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    add_memory_arguments(p)
    p.add_argument("--contexts", "-c", type=count, nargs="+", default=[1024, 2048, 4096],
                   metavar="N", help="context lengths; default 1024 2048 4096")
    p.add_argument("--tp", type=dim, nargs="+", default=None, metavar="X",
                   help="tensor-parallel degrees; default those of 1 2 4 8 valid for the model "
                        "(and dividing --ep)")
    add_weight_arguments(p, expert_formats=False)
    p.add_argument("--kv-bytes", type=element_bytes, default=2, metavar="B",
                   help="bytes per KV element, in [0.125, 8]; default 2")
    add_architecture_arguments(p, experts=False)
    p.add_argument("--mem-util", type=fraction, default=1.0, metavar="U",
                   help="usable fraction of GPU memory, in (0, 1]; default 1.0 (vLLM uses 0.9)")
    p.add_argument("--reserved-gib", type=reserved_gib, default=0, metavar="X",
                   help="GiB per GPU kept for the runtime and activations, in [0, 2**30]; "
                        "default 0")
    p.add_argument("--convention", choices=("exact", "e0294"), default="exact",
                   help="exact: the model's exact parameter count (default). e0294: count "
                        "parameters as E0294 Assignment 4 Problem 1 does (no SwiGLU gate, no "
                        "W_O, MLP biases, no norms; costmodel.conventions.e0294_param_count). "
                        "The text reads '80 GB' as 80 GiB, which is what an A100-80GB reports; "
                        "pass --memory-gib 80 (or the a100-80gb preset) to reproduce its table")


def _batch_notes(m: ModelSpec, ep: int, prec, mla: str) -> list[str]:
    """How B_max is computed for ``m``'s architecture, and how EP splits the experts."""
    if not (m.moe or m.mla or m.sliding_window):
        return ["B_max = floor((u·M − R − P·b_w/TP) / (s · 2·L·ceil(H_kv/TP)·d_h·b_kv)), the "
                "number of requests the whole TP group serves"]
    if m.mla:
        kv = ("(r_kv + d_r)·b_kv per layer-token, the whole latent on every GPU"
              if mla != "expanded" else "(H/TP)·(d_n + d_r + d_v)·b_kv per layer-token")
    else:
        kv = "2·ceil(H_kv/TP)·d_h·b_kv per layer-token"
    held = ("(L − L_w)·s + L_w·min(s, W − 1) layer-tokens per request"
            if m.sliding_window and m.window_layers else "L·s layer-tokens per request")
    weights = "P·b_w/TP"
    if m.moe:
        weights = "(P − P_e)·b_w/TP + P_e·b_we/" + ("EP" if ep > 1 else "TP")
    notes = [f"B_max = {'DP · ' if ep > 1 else ''}floor((u·M − R − W_GPU) / KV_GPU) with "
             f"W_GPU = {weights} and KV_GPU = {kv}, {held}"]
    if m.moe:
        experts = expert_param_count(m)
        if ep > 1:
            notes.append(
                f"expert split: the {experts} routed-expert parameters P_e (at "
                f"{prec.expert_weight_bytes:g} bytes each) lie whole on the EP = {ep} GPUs, "
                f"{m.n_experts // ep} of the {m.n_experts} experts on each; the other "
                f"{param_count(m) - experts} are split over TP; the attention runs as DP = "
                "EP/TP replicas, each holding the KV cache of its own requests, so the group "
                "serves DP × the batch of one replica")
        else:
            notes.append(f"expert split: every one of the {m.n_experts} experts is sliced over "
                         f"the TP GPUs ({experts} routed-expert parameters at "
                         f"{prec.expert_weight_bytes:g} bytes each); --ep N holds them whole "
                         "on N GPUs")
    return notes


@subcommand("batch", "maximum batch size per (context, TP) under a GPU's memory", _add_batch)
def _run_batch(args: argparse.Namespace) -> Result:
    check_values("contexts", args.contexts)
    if args.tp is not None:
        check_values("tp", args.tp)
    m = model_from_args(args)
    memory, memory_note = memory_from_args(args)
    notes = [f"memory per GPU: {memory_note}"]
    ep = args.ep
    if args.tp is None:
        tps = []
        for tp in (1, 2, 4, 8):
            try:
                check_tp(m, tp)
                check_parallel(m, tp, ep)
            except ValueError:
                continue
            tps.append(tp)
        if not tps:
            check_parallel(m, 1, ep)            # says why no degree fits
    else:
        tps = [check_tp(m, tp) for tp in args.tp]
    check_rows(len(args.contexts) * len(tps), "batch")
    params = None
    exact = param_count(m)
    if args.convention == "e0294":
        params = e0294_param_count(m)
        notes.append(
            f"--convention e0294: {params} parameters as E0294 Assignment 4 counts them "
            f"(exact count {exact}, difference {exact - params}); "
            "see costmodel.conventions")
    prec = resolve_weight_bytes(m, **weight_kwargs(args))
    reserved = args.reserved_gib * GIB
    rows, reasons = [], []
    for context in args.contexts:
        for tp in tps:
            plan = batch_plan(m, memory, context, tp=tp, kv_bytes=args.kv_bytes,
                              mem_util=args.mem_util, reserved=reserved, params=params,
                              ep=ep, mla=args.mla, **weight_kwargs(args))
            rows.append({
                "context": context, "tp": tp,
                "weights_per_gpu_gib": gib(plan.weight_bytes_per_gpu),
                "kv_per_request_per_gpu_gib": gib(plan.kv_bytes_per_request_per_gpu),
                "max_batch": plan.max_batch,
                "kv_heads_per_gpu": plan.kv_heads_per_gpu,
                "kv_replication": plan.kv_replication,
                "ep": plan.ep, "dp": plan.dp,
                "weights_per_gpu_bytes": exact_number(plan.weight_bytes_per_gpu),
                "kv_per_request_per_gpu_bytes": exact_number(plan.kv_bytes_per_request_per_gpu),
                "params": plan.params,
                "reason": plan.reason,
            })
            if plan.max_batch == 0 and plan.reason not in reasons:
                reasons.append(plan.reason)
    notes.append(f"u = {args.mem_util:g}, reserved = {args.reserved_gib:g} GiB per GPU; "
                 + precision_text(m, prec, args))
    notes.extend(_batch_notes(m, ep, prec, args.mla))
    replicated = sorted({r["tp"] for r in rows if r["kv_replication"] > 1})
    if replicated and not (m.mla and args.mla != "expanded"):
        notes.append(f"TP {', '.join(map(str, replicated))} > n_kv_heads={m.n_kv_heads}: each "
                     "KV head is replicated on TP/n_kv_heads GPUs, so the KV cache per GPU "
                     "stops shrinking")
    notes.extend(f"max batch 0: {r}" for r in reasons)
    notes.extend(unused_notes(m, args))
    columns = ["context", "tp", "weights_per_gpu_gib", "kv_per_request_per_gpu_gib",
               "max_batch", "kv_heads_per_gpu", "kv_replication"]
    if ep > 1:
        columns += ["ep", "dp"]
    return Result(rows, title=f"Maximum batch of {m.name}", notes=notes,
                  table_columns=columns)


def summary(fmt: str, commands: dict) -> str:
    """What ``costmodel`` alone prints: Llama-3-8B on an A100-80GB in four numbers, and the
    commands."""
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
    width = max(len(c) for c in commands)
    lines = [
        "costmodel — analytical inference cost of decoder-only transformers",
        "",
        f"{m.name} on {hw.name} ({hw.memory_bytes / GIB:g} GiB reported), 16-bit weights and KV:",
        f"  parameters            {n:,}  ({w:,} bytes = {w / GB:.2f} GB = {w / GIB:.2f} GiB)",
        f"  KV per request @1024  {kv:,} bytes = {kv / GIB:g} GiB",
        f"  max batch @1024, TP 1 {b}",
        "",
        "commands:",
        *(f"  {c.name:<{width}}  {c.help}" for c in commands.values()),
        "",
        "`costmodel COMMAND --help` for options; `--format table|csv|json` on every command.",
    ]
    return "\n".join(lines)
