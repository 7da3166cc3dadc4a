"""CLI subcommands over the per-operator roofline: ``analyze``, ``ai``, ``specdec``, ``sweep``
(registered into :mod:`costmodel.cli`)."""

from __future__ import annotations

import argparse

from costmodel.cli.args import (
    DEFAULT_HARDWARE,
    add_model_arguments,
    model_from_args,
    nonneg_number,
    positive_int,
    positive_number,
)
from costmodel.cli.registry import Result, subcommand
from costmodel.units import GB

PHASE_HELP = ("prefill: q = context, c = 0; decode: q = 1, c = context; no-cache: re-encode "
              "context tokens, c = 0; verify: q = gamma + 1, c = context")


def _add_workload(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hardware", "-H", default=DEFAULT_HARDWARE,
                   help=f"hardware preset or calibrated .json (default {DEFAULT_HARDWARE})")
    p.add_argument("--tp", type=positive_int, default=1, help="tensor-parallel degree")
    p.add_argument("--weight-bytes", type=positive_number, default=2)
    p.add_argument("--kv-bytes", type=positive_number, default=2)
    p.add_argument("--act-bytes", type=positive_number, default=None,
                   help="bytes per activation (default 2, or 4 with fp32 weights)")
    p.add_argument("--dtype", default=None, help="compute dtype for the peak (fp32, tf32, "
                   "fp16, bf16, fp8, int8); default from --weight-bytes")
    p.add_argument("--attention", choices=("standard", "fused"), default="standard")
    p.add_argument("--causal", choices=("full", "half"), default="full",
                   help="count all q×(c+q) scores (default) or only the causal half")
    p.add_argument("--lm-head", choices=("last", "all"), default="last",
                   help="logits for the last position (nanoGPT) or all positions (HF)")
    p.add_argument("--eta-c", type=positive_number, default=1.0, help="compute efficiency")
    p.add_argument("--eta-m", type=positive_number, default=1.0, help="bandwidth efficiency")
    p.add_argument("--kernel-overhead", type=nonneg_number, default=None,
                   help="seconds per kernel launch (default: the hardware's, 0 for presets)")


def _workload_kwargs(args: argparse.Namespace) -> dict:
    return dict(tp=args.tp, weight_bytes=args.weight_bytes, kv_bytes=args.kv_bytes,
                act_bytes=args.act_bytes, dtype=args.dtype, attention=args.attention,
                causal=args.causal, lm_head=args.lm_head, eta_c=args.eta_c, eta_m=args.eta_m,
                kernel_overhead=args.kernel_overhead)


def _phase_qc(phase: str, context: int, gamma: int) -> dict:
    return {"prefill": dict(new_tokens=context, cached_tokens=0),
            "decode": dict(new_tokens=1, cached_tokens=context),
            "no-cache": dict(new_tokens=context, cached_tokens=0, kv_cache=False),
            "verify": dict(new_tokens=gamma + 1, cached_tokens=context)}[phase]


# --------------------------------------------------------------------------- analyze
def _add_analyze(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--phase", choices=("prefill", "decode", "no-cache", "verify"),
                   default="decode", help=PHASE_HELP)
    p.add_argument("--context", type=positive_int, default=1024,
                   help="prompt length (prefill, no-cache) or tokens in the cache (decode, "
                        "verify)")
    p.add_argument("--batch", "-b", type=positive_int, default=1)
    p.add_argument("--gamma", type=positive_int, default=4, help="drafted tokens (verify)")
    p.add_argument("--generate", type=positive_int, default=None,
                   help="also report TTFT, time per output token and throughput for this many "
                        "generated tokens after a --context-token prompt")
    p.add_argument("--plot", metavar="PNG", help="write the roofline chart with the operators")
    _add_workload(p)


@subcommand("analyze", "per-operator FLOPs, bytes, intensity, time and bound of one pass",
            _add_analyze)
def _run_analyze(args: argparse.Namespace) -> list[Result]:
    import costmodel as cm

    m = model_from_args(args)
    kw = _workload_kwargs(args)
    a = cm.analyze(m, args.hardware, batch=args.batch,
                   **_phase_qc(args.phase, args.context, args.gamma), **kw)
    rows = [{"op": r.op, "count": int(r.count), "flops": r.flops, "bytes": r.bytes,
             "weight_read": r.weight_read, "act_read": r.act_read, "act_write": r.act_write,
             "kv_read": r.kv_read, "kv_write": r.kv_write, "comm_bytes": r.comm_bytes,
             "intensity": round(float(r.intensity), 3), "time_us": r.time * 1e6,
             "bound": r.bound} for r in a.ops.itertuples()]
    rows.append({"op": "TOTAL", "count": None, "flops": a.flops, "bytes": a.bytes,
                 "comm_bytes": a.comm_bytes, "intensity": round(a.intensity, 3),
                 "time_us": a.time * 1e6, "bound": a.bound})
    w = a.workload
    notes = [f"{m.name} on {a.hardware.name} ({a.dtype} peak {a.hardware.peak(a.dtype) / 1e12:g}"
             f" TFLOP/s, {a.hardware.bandwidth / GB:g} GB/s, ridge {a.ridge_point:.1f} FLOPs/"
             f"byte); B={w['batch']}, q={w['new_tokens']}, c={w['cached_tokens']}, TP={w['tp']}"
             " (per-GPU figures)",
             "FLOPs count a multiply-add as 2; bytes are exact; time_us = roofline time in µs."]
    results = [Result(rows, title=f"{args.phase} pass", notes=notes,
                      table_columns=["op", "count", "flops", "bytes", "intensity", "time_us",
                                     "bound"])]
    if args.generate:
        g = cm.generation(m, args.hardware, args.context, args.generate, args.batch, **kw)
        results.append(Result([{"ttft_ms": g.ttft * 1e3, "tpot_first_ms": g.tpot_first * 1e3,
                                "tpot_mean_ms": g.tpot_mean * 1e3,
                                "total_s": g.total_time, "tokens": g.tokens,
                                "throughput_tok_s": g.throughput}],
                              title=f"generation: prompt {args.context}, {args.generate} tokens",
                              notes=["decode steps summed in closed form over the growing "
                                     "context"]))
    if args.plot:
        from costmodel import plots

        plots.save(plots.roofline_chart(a), args.plot)
        results[0].notes.append(f"roofline chart written to {args.plot}")
    return results


# --------------------------------------------------------------------------- ai
def _add_ai(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=positive_int, nargs="+", default=[1024],
                   help="sequence lengths N")
    p.add_argument("--d", type=positive_int, default=128, help="head dimension d")
    p.add_argument("--phase", choices=("prefill", "decode", "both"), default="both")
    p.add_argument("--batch", "-b", type=positive_int, nargs="+", default=[1],
                   help="batch sizes B (decode)")
    p.add_argument("--bytes", type=positive_number, default=2, help="bytes per element")
    p.add_argument("--kv", choices=("per_request", "shared"), default="per_request")
    p.add_argument("--attention", choices=("standard", "fused"), default="standard")
    p.add_argument("--convention", choices=("exact", "e0294", "both"), default="both",
                   help="exact counts, the E0294 text's counts, or both side by side")
    p.add_argument("--plot", metavar="PNG", help="write AI vs N (prefill) and AI vs B "
                   "(decode) as PNG (a '-n' and '-b' suffix are added)")


@subcommand("ai", "arithmetic intensity of attention for prefill and decode (E0294 1(c)/(d))",
            _add_ai)
def _run_ai(args: argparse.Namespace) -> Result:
    import costmodel as cm

    phases = ("prefill", "decode") if args.phase == "both" else (args.phase,)
    conventions = ("e0294", "exact") if args.convention == "both" else (args.convention,)
    rows = []
    for phase in phases:
        for n in args.n:
            for b in (args.batch if phase == "decode" else [1]):
                for conv in conventions:
                    r = cm.attention_counts(n, args.d, phase, b, args.bytes, args.kv,
                                            args.attention, conv)
                    rows.append({"phase": phase, "N": n, "d": args.d, "B": b,
                                 "convention": conv, "flops": int(r["flops"]),
                                 "bytes": float(r["bytes"]),
                                 "intensity": round(float(r["intensity"]), 4)})
    notes = [f"{args.attention} attention, {args.kv} K/V, {args.bytes:g} bytes per element; "
             "see costmodel.intensity for why the E0294 counts differ"]
    if args.plot:
        from costmodel import plots

        stem = args.plot[:-4] if args.plot.endswith(".png") else args.plot
        plots.save(plots.intensity_vs_n(args.d, bytes_per_element=args.bytes), f"{stem}-n.png")
        plots.save(plots.intensity_vs_batch(args.n[0], args.d, bytes_per_element=args.bytes),
                   f"{stem}-b.png")
        notes.append(f"plots written to {stem}-n.png and {stem}-b.png")
    return Result(rows, title="attention arithmetic intensity (FLOPs/byte)", notes=notes)


# --------------------------------------------------------------------------- specdec
def _add_specdec(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=float, default=0.75, help="acceptance rate in [0, 1)")
    p.add_argument("--gamma", type=positive_int, nargs="+", default=list(range(1, 9)))
    p.add_argument("--cost-ratio", type=nonneg_number, default=None,
                   help="c = T_draft / T_target; default: derived from --target/--draft on "
                        "--hardware through the roofline")
    p.add_argument("--target", default="gpt2-xl")
    p.add_argument("--draft", default="gpt2")
    p.add_argument("--hardware", "-H", default="t4")
    p.add_argument("--context", type=positive_int, default=1024)
    p.add_argument("--no-bonus", action="store_true",
                   help="the CS229S variant without the bonus token")
    p.add_argument("--plot", metavar="PNG", help="write speedup vs gamma")


@subcommand("specdec", "speculative decoding: expected tokens, speedup vs gamma, optimal gamma",
            _add_specdec)
def _run_specdec(args: argparse.Namespace) -> Result:
    from costmodel import speculative as sd

    notes = []
    if args.cost_ratio is None:
        r = sd.speedup_roofline(args.target, args.draft, args.hardware, args.alpha, 1,
                                context=args.context)
        c = r["cost_ratio"]
        notes.append(f"cost ratio c = {c:.4f}: {args.draft} step {r['draft_step_s'] * 1e3:.3f}"
                     f" ms / {args.target} step {r['target_step_s'] * 1e3:.3f} ms on "
                     f"{args.hardware} at context {args.context} (roofline)")
    else:
        c = args.cost_ratio
    bonus = not args.no_bonus
    rows = []
    for g in args.gamma:
        row = {"gamma": g, "expected_tokens": float(sd.expected_tokens(args.alpha, g, bonus)),
               "speedup": float(sd.speedup(args.alpha, g, c, bonus))}
        if args.cost_ratio is None:
            row["speedup_roofline"] = sd.speedup_roofline(
                args.target, args.draft, args.hardware, args.alpha, g,
                context=args.context)["speedup"]
        rows.append(row)
    best = sd.optimal_gamma(args.alpha, c, bonus=bonus)
    notes.append(f"optimal gamma = {best} (alpha = {args.alpha:g}, c = {c:.4g}"
                 f"{', no bonus token' if not bonus else ''})")
    if args.plot:
        from costmodel import plots

        plots.save(plots.speedup_vs_gamma(args.alpha, c, args.gamma), args.plot)
        notes.append(f"plot written to {args.plot}")
    return Result(rows, title="speculative decoding", notes=notes)


# --------------------------------------------------------------------------- sweep
def _add_sweep(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--hardware", "-H", nargs="+", default=[DEFAULT_HARDWARE])
    p.add_argument("--batch", "-b", type=positive_int, nargs="+", default=[1, 8, 64])
    p.add_argument("--context", type=positive_int, nargs="+", default=[512, 2048, 8192])
    p.add_argument("--tp", type=positive_int, nargs="+", default=[1])
    p.add_argument("--phase", choices=("decode", "prefill", "no_cache", "verify"),
                   default="decode")
    p.add_argument("--gamma", type=positive_int, default=4)
    p.add_argument("--weight-bytes", type=positive_number, default=2)
    p.add_argument("--kv-bytes", type=positive_number, default=2)
    p.add_argument("--attention", choices=("standard", "fused"), default="standard")


@subcommand("sweep", "vectorised roofline over batch × context × TP × hardware", _add_sweep)
def _run_sweep(args: argparse.Namespace) -> Result:
    import costmodel as cm

    df = cm.sweep(model_from_args(args), args.hardware, batch=args.batch,
                  context=args.context, tp=args.tp, phase=args.phase, gamma=args.gamma,
                  weight_bytes=args.weight_bytes, kv_bytes=args.kv_bytes,
                  attention=args.attention)
    df["time_ms"] = df.pop("time_s") * 1e3
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in df.astype({"hardware": str, "dtype": str, "bound": str})
            .to_dict("records")]
    return Result(rows, title=f"{args.phase} sweep", notes=[
        "fits: weights/TP + batch × KV per request per GPU ≤ reported memory"])
