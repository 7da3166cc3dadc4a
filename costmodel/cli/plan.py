"""``costmodel plan``: the cheapest deployments that serve a rate within TTFT and TPOT targets
(:func:`costmodel.plan.search.plan`), as a ranked table (``--format csv|json`` too), with the
chosen configuration's memory terms and an optional Pareto chart (``--plot``, written
all-or-nothing at exactly the path given).

    costmodel plan --model llama3.1-70b --gpus h100-sxm h200 mi300x l40s \\
        --rate 50 --input-len 2048 --output-len 256 --ttft 1 --tpot 0.05
"""

from __future__ import annotations

import argparse
from pathlib import Path

from costmodel.checks import check_number, check_positive_number
from costmodel.cli.args import _checked, add_model_arguments, count, dim, model_from_args
from costmodel.cli.registry import Result, subcommand
from costmodel.cli.roofline import write_pngs
from costmodel.plan.batching import ARRIVALS
from costmodel.plan.figures import pareto_chart
from costmodel.plan.memory import serving_memory
from costmodel.plan.search import (
    BATCHED_TOKENS,
    CONCURRENCIES,
    EPS,
    GPUS,
    MAX_REPLICAS,
    MAX_UTILIZATION,
    PPS,
    TPS,
    plan,
)
from costmodel.plan.serving import PERCENTILES

#: A positive number (requests/s, tokens, seconds, dollars).
positive = _checked("number", check_positive_number, 1e9)
#: A number ≥ 0 (a spread in tokens).
nonneg = _checked("number", check_number, 0.0, 1e9, open_lo=False)
#: A fraction in (0, 1].
share = _checked("fraction", check_number, 0.0, 1.0)
SHOWN = ("rank", "gpu", "gpus", "replicas", "tp", "pp", "ep", "quant", "max_batched_tokens",
         "max_concurrency", "ttft_ms", "tpot_ms", "utilization", "usd_per_hour",
         "usd_per_mtok", "usd_per_mtok_input", "usd_per_mtok_output", "tokens_per_s_per_gpu",
         "tokens_per_s_per_user", "j_per_token", "pareto")


def _price(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"give GPU=DOLLARS_PER_HOUR, got {text!r}")
    return name, positive(value)


def _add_plan(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p, default="llama3.1-70b")
    p.add_argument("--gpus", nargs="+", default=list(GPUS), metavar="NAME",
                   help=f"GPU types to consider (default {' '.join(GPUS)})")
    p.add_argument("--rate", type=positive, required=True, help="requests per second")
    p.add_argument("--input-len", type=positive, required=True, help="prompt tokens (mean)")
    p.add_argument("--output-len", type=positive, required=True, help="output tokens (mean)")
    p.add_argument("--input-spread", type=nonneg, default=0.0,
                   help="standard deviation of the prompt length, tokens; default 0")
    p.add_argument("--ttft", type=positive, required=True, help="TTFT target, seconds")
    p.add_argument("--tpot", type=positive, required=True, help="TPOT target, seconds")
    p.add_argument("--percentile", type=int, choices=PERCENTILES, default=50,
                   help="targets at this percentile of the engine's error band (default 50)")
    p.add_argument("--arrivals", choices=ARRIVALS, default="poisson")
    p.add_argument("--quants", nargs="+", default=["default", "fp8", "int4-g128"],
                   help="weight formats ('default': the checkpoint's)")
    p.add_argument("--tp", type=dim, nargs="+", default=list(TPS))
    p.add_argument("--pp", type=dim, nargs="+", default=list(PPS))
    p.add_argument("--ep", type=dim, nargs="+", default=list(EPS))
    p.add_argument("--concurrencies", type=count, nargs="+", default=list(CONCURRENCIES),
                   help="max_num_seqs values to consider")
    p.add_argument("--batched-tokens", type=count, nargs="+", default=list(BATCHED_TOKENS),
                   help="max_num_batched_tokens values to consider")
    p.add_argument("--max-replicas", type=count, default=MAX_REPLICAS)
    p.add_argument("--max-utilization", type=share, default=MAX_UTILIZATION,
                   help=f"highest λ/λ_sat kept, in (0, 1]; default {MAX_UTILIZATION}")
    p.add_argument("--engine", default="tuned", help="engine profile (default tuned)")
    p.add_argument("--price", type=_price, nargs="+", default=[], metavar="GPU=USD",
                   help="$ per GPU-hour overriding the bundled defaults")
    p.add_argument("--top", type=count, default=20, help="rows shown; default 20")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="write the Pareto chart to this PNG")


@subcommand("plan", "the cheapest deployment that serves a rate within TTFT/TPOT targets",
            _add_plan)
def _run_plan(args: argparse.Namespace) -> list[Result]:
    m = model_from_args(args)
    df = plan(m, args.gpus, rate=args.rate, input_len=args.input_len,
              output_len=args.output_len, ttft=args.ttft, tpot=args.tpot,
              quants=args.quants, tps=args.tp, pps=args.pp, eps=args.ep,
              concurrencies=args.concurrencies, batched_tokens=args.batched_tokens,
              max_replicas=args.max_replicas, engine=args.engine,
              arrivals=args.arrivals, input_spread=args.input_spread,
              percentile=args.percentile, max_utilization=args.max_utilization,
              prices=dict(args.price) or None)
    notes = [f"{df.attrs['candidates']:,} candidate configurations searched in "
             f"{df.attrs['seconds']:.2f} s; {len(df):,} meet TTFT ≤ {args.ttft:g} s and "
             f"TPOT ≤ {args.tpot:g} s at {args.rate:g} requests/s ({args.arrivals} arrivals, "
             f"utilisation ≤ {args.max_utilization:.0%})"]
    if args.plot is not None:
        write_pngs({args.plot: pareto_chart(df, f"{m.name}: {args.rate:g} requests/s")})
        notes.append(f"plot written to {args.plot}")
    shown = df.head(args.top).assign(ttft_ms=df["ttft_s"] * 1e3, tpot_ms=df["tpot_s"] * 1e3)
    rows = [{c: (round(v, 4) if isinstance(v, float) else v) for c, v in row.items()}
            for row in shown[list(SHOWN)].to_dict("records")]
    best = df.iloc[0]
    sm = serving_memory(m, best["gpu"], tp=int(best["tp"]), pp=int(best["pp"]),
                        ep=int(best["ep"]), quant=None if best["quant"] == (
                            m.weight_format or "bf16") else best["quant"],
                        max_num_batched_tokens=int(best["max_batched_tokens"]),
                        max_num_seqs=int(best["max_concurrency"]),
                        request_len=int(-(-(args.input_len + args.output_len) // 1)))
    terms = [{"term": t["term"], "GiB": t["GiB"], "how": t["how"]}
             for t in sm.terms().to_dict("records")]
    return [Result(rows, title=f"plan: {m.name}", notes=notes, name="plan"),
            Result(terms, title=f"memory of the cheapest ({best['gpu']} TP{best['tp']}, "
                                f"per GPU)", notes=[sm.reason], name="memory")]


__all__ = ["SHOWN"]
