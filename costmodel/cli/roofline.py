"""CLI commands over the per-operator roofline: ``analyze``, ``ai``, ``specdec``, ``sweep``.

Every time comes from :mod:`costmodel.roofline` / :mod:`costmodel.grid` (priced by
:func:`costmodel.pricing.price`); every phase is a substitution of :mod:`costmodel.workload`.
``analyze`` builds its rows from the :class:`~costmodel.roofline.Analysis` arrays, so a query
never imports pandas; ``--plot`` files are rendered to bytes first and written all-or-nothing
(:class:`costmodel.files.OutputSet`) at exactly the path given.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import numpy as np

from costmodel.checks import MAX_COUNT
from costmodel.cli.args import (
    add_architecture_arguments,
    add_efficiency_arguments,
    add_engine_argument,
    add_hardware_argument,
    add_model_arguments,
    add_precision_arguments,
    add_weight_arguments,
    alpha,
    check_rows,
    check_values,
    cost_ratio,
    count,
    dim,
    efficiency_kwargs,
    element_bytes,
    fraction,
    gamma,
    model_from_args,
    model_spec,
    nonneg_count,
    precision_text,
    unused_notes,
    weight_kwargs,
)
from costmodel.cli.registry import Result, subcommand
from costmodel.decoding import generation, speculative_speedup
from costmodel.files import OutputSet
from costmodel.grid import sweep
from costmodel.intensity import attention_counts
from costmodel.ops import ATTENTION, CAUSAL, LM_HEAD, PARTS
from costmodel.params import resolve_weight_bytes
from costmodel.plots import intensity_vs_batch, intensity_vs_n, roofline_chart, speedup_vs_gamma
from costmodel.presets import engine, hardware
from costmodel.roofline import Analysis, analyze_phase, decode_step
from costmodel.specs import EngineProfile
from costmodel.speculative import expected_tokens, optimal_gamma, speedup
from costmodel.units import GB, band_text, exact_number, time_text
from costmodel.workload import PHASES

PHASE_HELP = ("prefill: q = context, c = 0; decode: q = 1, c = context; no_cache: re-encode "
              "context tokens, c = 0, no cache kept; verify: q = gamma + 1, c = context; "
              "chunk: q = --chunk, c = context")


def png_bytes(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (150 dpi), rendered before any file is touched."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150)
    return buf.getvalue()


def _check_png_path(path: str) -> Path:
    if "\x00" in path:
        raise ValueError(f"plot: {path!r} is not a file name (it holds a NUL character)")
    p = Path(path)
    if p.suffix and p.suffix.lower() != ".png":
        raise ValueError(f"plot: {path} — the chart is a PNG; give a name ending in .png (or "
                         "no extension)")
    return p


def write_pngs(figures: dict[Path, Any]) -> list[Path]:
    """Render every figure, then write them all-or-nothing at exactly the paths given."""
    data = {path: png_bytes(fig) for path, fig in figures.items()}
    with OutputSet() as out:
        for path, png in data.items():
            out.write_bytes(path, png)
    return list(data)


# --------------------------------------------------------------------------- shared arguments
def _add_causal(p: argparse.ArgumentParser) -> None:
    p.add_argument("--causal", choices=CAUSAL, default="full",
                   help="count all q×(c+q) scores (default) or only the causal half")


def _add_structure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attention", choices=[a for a in ATTENTION if a != "eager"],
                   default=None,
                   help="standard (scores in memory) or fused (FlashAttention-style); "
                        "default: the engine's, else standard")
    _add_causal(p)
    p.add_argument("--lm-head", choices=LM_HEAD, default="last",
                   help="logits for the last position (nanoGPT) or all positions (HF)")
    add_architecture_arguments(p)


def _add_workload(p: argparse.ArgumentParser) -> None:
    add_hardware_argument(p)
    p.add_argument("--tp", type=dim, default=1, help="tensor-parallel degree; default 1")
    add_engine_argument(p)
    add_precision_arguments(p)
    _add_structure(p)
    add_efficiency_arguments(p)


def _structure_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The engine, weight formats, parallelism and structural options the arguments give."""
    kw: dict[str, Any] = dict(causal=args.causal, experts=args.experts, mla=args.mla,
                              ep=args.ep, **weight_kwargs(args))
    if args.engine is not None:
        kw["engine"] = args.engine
    if getattr(args, "attention", None) is not None:
        kw["attention"] = args.attention
    return kw


def _workload_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(tp=args.tp, kv_bytes=args.kv_bytes, act_bytes=args.act_bytes,
                dtype=args.dtype, lm_head=args.lm_head, **_structure_kwargs(args),
                **efficiency_kwargs(args))


def engine_text(name: str | None) -> str:
    """What an engine profile applies, and its source (shortened), or that there is none."""
    if name is None:
        return ("no engine profile (--engine NAME): the hardware's own efficiencies, no "
                "per-pass overhead, no error band")
    e: EngineProfile = engine(name)
    source = e.source if len(e.source) <= 160 else e.source[:157] + "..."
    return f"engine {e.name}: {e.describe()}. Source: {source}"


def time_band_note(a: Analysis, what: str = "time") -> str:
    """'time 7.40 ms, 80 % band 6.30–8.90 ms (regime decode_b1, engine tuned)'."""
    engine_name = a.efficiency.engine
    why = (f"regime {a.regime}, engine {engine_name}" if engine_name
           else f"regime {a.regime}, no engine profile")
    return f"{what} {band_text(a.time, a.time_interval)} ({why})"


def _band_columns(interval: tuple[float, float] | None, prefix: str = "time",
                  scale: float = 1.0, unit: str = "s") -> dict[str, float | None]:
    lo, hi = (None, None) if interval is None else (interval[0] * scale, interval[1] * scale)
    return {f"{prefix}_lo_{unit}": lo, f"{prefix}_hi_{unit}": hi}


# --------------------------------------------------------------------------- analyze
def _add_analyze(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--phase", choices=PHASES, default="decode", help=PHASE_HELP)
    p.add_argument("--context", type=nonneg_count, default=1024,
                   help="prompt length (prefill, no_cache) or tokens in the cache (decode, "
                        "verify, chunk); default 1024")
    p.add_argument("--batch", "-b", type=count, default=1, help="sequences; default 1")
    p.add_argument("--gamma", type=gamma, default=4,
                   help="drafted tokens (verify), at most 1024; default 4")
    p.add_argument("--chunk", type=count, default=512,
                   help="new tokens of one chunk (chunk); default 512")
    p.add_argument("--generate", type=count, default=None,
                   help="also report TTFT, time per output token and throughput for this many "
                        "generated tokens after a --context-token prompt")
    p.add_argument("--plot", metavar="FILE.png",
                   help="write the roofline chart with the operators to exactly this file")
    _add_workload(p)


#: Columns of the TOTAL row alone (the pass's time in seconds, its band and regime): empty on
#: the operator rows, so every row has the same columns.
PASS_ONLY = dict.fromkeys(("time_s", "time_lo_s", "time_hi_s", "regime"))


def operator_rows(a: Analysis) -> list[dict[str, Any]]:
    """One row per operator that does something (totals over its layers), from the analysis's
    arrays; intensity is None where an operator moves no bytes (an all-reduce)."""
    qty, times, bounds = a.quantities, a.priced.time, a.op_bounds()
    rows = []
    for i, name in enumerate(a.names):
        flops, parts, comm = qty[i, 0], qty[i, 1:6], qty[i, 6]
        nbytes = parts.sum()
        if flops == 0 and nbytes == 0 and comm == 0:
            continue
        row: dict[str, Any] = {"op": name, "count": int(a.count[i]),
                               "flops": exact_number(flops), "bytes": exact_number(nbytes)}
        row.update({part: exact_number(v) for part, v in zip(PARTS, parts, strict=True)})
        row.update({"comm_bytes": exact_number(comm),
                    "intensity": round(float(flops / nbytes), 3) if nbytes > 0 else None,
                    "time_us": float(times[i]) * 1e6, "bound": str(bounds[i]),
                    **PASS_ONLY})
        rows.append(row)
    if a.fixed:
        rows.append({"op": "engine_overhead", "count": 1, "flops": 0, "bytes": 0,
                     **dict.fromkeys(PARTS, 0), "comm_bytes": 0, "intensity": None,
                     "time_us": a.fixed * 1e6, "bound": "overhead", **PASS_ONLY})
    rows.append({"op": "TOTAL", "count": None, "flops": exact_number(a.flops),
                 "bytes": exact_number(a.bytes), "comm_bytes": exact_number(a.comm_bytes),
                 "intensity": round(a.intensity, 3) if a.bytes > 0 else None,
                 "time_us": a.time * 1e6, "bound": a.bound, "time_s": a.time,
                 **_band_columns(a.time_interval), "regime": a.regime})
    return rows


@subcommand("analyze", "per-operator FLOPs, bytes, intensity, time and bound of one pass",
            _add_analyze)
def _run_analyze(args: argparse.Namespace) -> list[Result]:
    plot = _check_png_path(args.plot) if args.plot else None
    m, hw = model_from_args(args), hardware(args.hardware)
    kw = _workload_kwargs(args)
    a = analyze_phase(m, hw, args.phase, args.context, args.batch, gamma=args.gamma,
                      chunk=args.chunk, **kw)
    w = a.workload
    ep = f", EP={w['ep']}" if "ep" in w else ""
    notes = [f"{m.name} on {hw.name} ({a.dtype} peak {hw.peak(a.dtype) / 1e12:g} TFLOP/s, "
             f"{hw.bandwidth / GB:g} GB/s, ridge {a.ridge_point:.1f} FLOPs/byte); "
             f"B={w['batch']}, q={w['new_tokens']}, c={w['cached_tokens']}, TP={w['tp']}{ep} "
             "(per-GPU figures)",
             precision_text(m, resolve_weight_bytes(m, **weight_kwargs(args)), args),
             engine_text(args.engine),
             time_band_note(a),
             "FLOPs count a multiply-add as 2; bytes are exact; time_us = roofline time in µs; "
             "intensity '-' = no bytes moved (an all-reduce); time_lo_s/time_hi_s: the 80 % "
             "band of the TOTAL (CSV/JSON)."]
    notes.extend(unused_notes(m, args))
    results = [Result(operator_rows(a), title=f"{args.phase} pass", notes=notes,
                      table_columns=["op", "count", "flops", "bytes", "intensity", "time_us",
                                     "bound"], name="operators")]
    if args.generate:
        if args.context + args.generate > MAX_COUNT:
            raise ValueError(f"generate: the sequence reaches --context + --generate = "
                             f"{args.context + args.generate} tokens; at most 2**53")
        g = generation(m, hw, args.context, args.generate, args.batch, **kw)
        row = {"ttft_ms": g.ttft * 1e3, "tpot_first_ms": g.tpot_first * 1e3,
               "tpot_mean_ms": g.tpot_mean * 1e3, "total_s": g.total_time, "tokens": g.tokens,
               "throughput_tok_s": g.throughput,
               **_band_columns(g.ttft_interval, "ttft", 1e3, "ms"),
               **_band_columns(g.tpot_first_interval, "tpot_first", 1e3, "ms"),
               **_band_columns(g.tpot_mean_interval, "tpot_mean", 1e3, "ms"),
               **_band_columns(g.total_interval, "total", 1.0, "s")}
        results.append(Result(
            [row], title=f"generation: prompt {args.context}, {args.generate} tokens",
            notes=["decode steps summed in closed form over the growing context",
                   f"TTFT {band_text(g.ttft, g.ttft_interval)}; time per output token "
                   f"{band_text(g.tpot_first, g.tpot_first_interval)} (first), "
                   f"{band_text(g.tpot_mean, g.tpot_mean_interval)} (mean); total "
                   f"{band_text(g.total_time, g.total_interval)}",
                   "the *_lo/*_hi columns (CSV/JSON): the 80 % bands; a sum of passes takes "
                   "the sum of their bands' ends"],
            table_columns=["ttft_ms", "tpot_first_ms", "tpot_mean_ms", "total_s", "tokens",
                           "throughput_tok_s"], name="generation"))
    if plot is not None:
        write_pngs({plot: roofline_chart(a)})
        results[0].notes.append(f"roofline chart written to {plot}")
    return results


# --------------------------------------------------------------------------- ai
def _add_ai(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=count, nargs="+", default=[1024], help="sequence lengths N")
    p.add_argument("--d", type=dim, default=128, help="head dimension d")
    p.add_argument("--phase", choices=("prefill", "decode", "both"), default="both")
    p.add_argument("--batch", "-b", type=count, nargs="+", default=[1],
                   help="batch sizes B (decode)")
    p.add_argument("--bytes", type=element_bytes, default=2,
                   help="bytes per element, in [0.125, 8]; default 2")
    p.add_argument("--kv", choices=("per_request", "shared"), default="per_request")
    p.add_argument("--attention", choices=("standard", "fused"), default="standard")
    p.add_argument("--convention", choices=("exact", "e0294", "both"), default="both",
                   help="exact counts, the E0294 text's counts, or both side by side")
    p.add_argument("--plot", metavar="FILE.png", help="write AI vs N (prefill) and AI vs B "
                   "(decode) as two PNGs: FILE-n.png and FILE-b.png")


@subcommand("ai", "arithmetic intensity of attention for prefill and decode (E0294 1(c)/(d))",
            _add_ai)
def _run_ai(args: argparse.Namespace) -> Result:
    check_values("n", args.n)
    check_values("batch", args.batch)
    phases = ("prefill", "decode") if args.phase == "both" else (args.phase,)
    conventions = ("e0294", "exact") if args.convention == "both" else (args.convention,)
    n_rows = len(args.n) * len(conventions) * sum(len(args.batch) if ph == "decode" else 1
                                                  for ph in phases)
    check_rows(n_rows, "ai")
    rows = []
    for phase in phases:
        for n in args.n:
            for b in (args.batch if phase == "decode" else [1]):
                for conv in conventions:
                    r = attention_counts(n, args.d, phase, b, args.bytes, args.kv,
                                         args.attention, conv)
                    rows.append({"phase": phase, "N": n, "d": args.d, "B": b,
                                 "convention": conv, "flops": exact_number(r["flops"]),
                                 "bytes": float(r["bytes"]),
                                 "intensity": round(float(r["intensity"]), 4)})
    notes = [f"{args.attention} attention, {args.kv} K/V, {args.bytes:g} bytes per element; "
             "see costmodel.intensity for why the E0294 counts differ"]
    if args.plot:
        stem = args.plot[:-4] if args.plot.lower().endswith(".png") else args.plot
        by_n, by_b = _check_png_path(f"{stem}-n.png"), _check_png_path(f"{stem}-b.png")
        write_pngs({by_n: intensity_vs_n(args.d, bytes_per_element=args.bytes),
                    by_b: intensity_vs_batch(args.n[0], args.d, bytes_per_element=args.bytes)})
        notes.append(f"plots written to {by_n} and {by_b}")
    return Result(rows, title="attention arithmetic intensity (FLOPs/byte)", notes=notes)


# --------------------------------------------------------------------------- specdec
def _add_specdec(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=alpha, default=0.75, help="acceptance rate in [0, 1)")
    p.add_argument("--gamma", type=gamma, nargs="+", default=list(range(1, 9)),
                   help="drafted tokens per iteration, each in [1, 1024]; default 1 … 8")
    p.add_argument("--cost-ratio", type=cost_ratio, default=None,
                   help="c = T_draft / T_target in [0, 1e6]; default: derived from "
                        "--target/--draft on --hardware through the roofline")
    p.add_argument("--target", default="gpt2-xl", help="target model preset or config.json")
    p.add_argument("--draft", default="gpt2", help="draft model preset or config.json")
    add_hardware_argument(p, default="t4")
    p.add_argument("--context", type=nonneg_count, default=1024,
                   help="tokens in the cache; default 1024")
    p.add_argument("--no-bonus", action="store_true",
                   help="the CS229S variant without the bonus token")
    p.add_argument("--plot", metavar="FILE.png", help="write speedup vs gamma")
    add_engine_argument(p)
    add_weight_arguments(p)
    add_architecture_arguments(p)
    _add_causal(p)


@subcommand("specdec", "speculative decoding: expected tokens, speedup vs gamma, optimal gamma",
            _add_specdec)
def _run_specdec(args: argparse.Namespace) -> Result:
    check_values("gamma", args.gamma)
    plot = _check_png_path(args.plot) if args.plot else None
    notes = []
    bonus = not args.no_bonus
    roofline: dict[int, float] = {}
    if args.cost_ratio is None:
        target, draft = model_spec(args.target, "--target"), model_spec(args.draft, "--draft")
        hw = hardware(args.hardware)
        kw = _structure_kwargs(args)
        draft_options = {"ep": 1}          # the draft runs whole on one GPU
        for g in dict.fromkeys(args.gamma):
            r = speculative_speedup(target, draft, hw, args.alpha, g, context=args.context,
                                    draft_options=draft_options, **kw)
            roofline[g] = r["speedup"]
        c = r["cost_ratio"]
        a_target = decode_step(target, hw, args.context, **kw)
        a_draft = decode_step(draft, hw, args.context, **{**kw, **draft_options})
        notes.append(f"cost ratio c = {c:.4f}: {draft.name} step "
                     f"{band_text(a_draft.time, a_draft.time_interval)} / {target.name} step "
                     f"{band_text(a_target.time, a_target.time_interval)} on {hw.name} at "
                     f"context {args.context} (roofline; {time_text(r['verify_s'])} to verify "
                     f"γ + 1 = {g + 1} tokens at the last γ)")
        notes.append(engine_text(args.engine))
        notes.extend(unused_notes(target, args))
    else:
        c = args.cost_ratio
        given = [name for name, value in (("--engine", args.engine), ("--ep", args.ep != 1),
                                          ("--mla", args.mla != "absorbed"),
                                          ("--experts", args.experts != "uniform"),
                                          ("--causal", args.causal != "full"))
                 if value] + [f"--{k.replace('_', '-')}" for k in weight_kwargs(args)]
        if given:
            notes.append(f"{', '.join(given)}: no effect with --cost-ratio (no roofline)")
    gammas = np.asarray(args.gamma, dtype=np.int64)
    tokens = np.atleast_1d(expected_tokens(args.alpha, gammas, bonus))
    gains = np.atleast_1d(speedup(args.alpha, gammas, c, bonus))
    rows = []
    for i, g in enumerate(args.gamma):
        row = {"gamma": g, "expected_tokens": float(tokens[i]), "speedup": float(gains[i])}
        if roofline:
            row["speedup_roofline"] = roofline[g]
        rows.append(row)
    if c == 0 and args.alpha > 0:
        notes.append("c = 0: every drafted token is free, so the improvement grows with γ "
                     "without a maximum (no optimal gamma)")
    else:
        best = optimal_gamma(args.alpha, c, bonus=bonus)
        notes.append(f"optimal gamma = {best} (alpha = {args.alpha:g}, c = {c:.4g}"
                     f"{', no bonus token' if not bonus else ''})")
    if plot is not None:
        write_pngs({plot: speedup_vs_gamma(args.alpha, c, args.gamma)})
        notes.append(f"plot written to {plot}")
    return Result(rows, title="speculative decoding", notes=notes)


# --------------------------------------------------------------------------- sweep
def _add_sweep(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    add_hardware_argument(p, many=True)
    p.add_argument("--batch", "-b", type=count, nargs="+", default=[1, 8, 64])
    p.add_argument("--context", type=count, nargs="+", default=[512, 2048, 8192])
    p.add_argument("--tp", type=dim, nargs="+", default=[1])
    p.add_argument("--phase", choices=PHASES, default="decode", help=PHASE_HELP)
    p.add_argument("--gamma", type=gamma, default=4,
                   help="drafted tokens (verify), at most 1024; default 4")
    p.add_argument("--chunk", type=count, default=512, help="new tokens of one chunk (chunk)")
    p.add_argument("--mem-util", type=fraction, default=1.0,
                   help="usable fraction of memory for `fits`, in (0, 1]; default 1")
    add_engine_argument(p)
    add_precision_arguments(p)
    _add_structure(p)
    add_efficiency_arguments(p)


@subcommand("sweep", "vectorised roofline over batch × context × TP × hardware", _add_sweep)
def _run_sweep(args: argparse.Namespace) -> Result:
    for name in ("hardware", "batch", "context", "tp"):
        check_values(name, getattr(args, name))
    check_rows(len(args.hardware) * len(args.batch) * len(args.context) * len(args.tp),
               "sweep")
    hws = [hardware(h) for h in args.hardware]
    m = model_from_args(args)
    df = sweep(m, hws, batch=args.batch, context=args.context, tp=args.tp, phase=args.phase,
               gamma=args.gamma, chunk=args.chunk, kv_bytes=args.kv_bytes,
               act_bytes=args.act_bytes, dtype=args.dtype, lm_head=args.lm_head,
               mem_util=args.mem_util, **_structure_kwargs(args), **efficiency_kwargs(args))
    # the columns in the sweep's order, its `time` (seconds) shown as time_ms, its band's
    # ends (seconds) as time_lo_s and time_hi_s (empty without a band)
    names = {"time": "time_ms", "time_lo": "time_lo_s", "time_hi": "time_hi_s"}
    data = {names.get(c, c):
            (df[c] * 1e3).tolist() if c == "time"
            else df[c].astype(str).tolist() if str(df[c].dtype) == "category"
            else df[c].tolist() for c in df.columns}
    for c in ("flops", "bytes"):                # exact counts print as integers
        data[c] = [exact_number(v) for v in data[c]]
    if "time_lo_s" not in data:
        at = list(data).index("time_ms") + 1
        data = dict([*list(data.items())[:at], ("time_lo_s", [None] * len(df)),
                     ("time_hi_s", [None] * len(df)), *list(data.items())[at:]])
    rows = [dict(zip(data, values, strict=True)) for values in zip(*data.values(), strict=True)]
    weights = "weights/TP" if not m.moe else \
        "weights per GPU (experts over EP with --ep)"
    notes = [f"fits: {weights} + requests per GPU × KV per request per GPU ≤ mem_util × "
             "reported memory",
             precision_text(m, resolve_weight_bytes(m, **weight_kwargs(args)), args),
             engine_text(args.engine),
             "time_lo_s, time_hi_s: the 80 % band of each point's regime ('-': no band)"]
    notes.extend(unused_notes(m, args))
    return Result(rows, title=f"{args.phase} sweep", notes=notes)


__all__ = ["operator_rows", "png_bytes", "write_pngs"]
