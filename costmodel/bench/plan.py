"""Benchmark of :func:`costmodel.plan.search.plan`: the SLO-aware search over GPU type × TP ×
PP × EP × weight format × max_num_batched_tokens × max_num_seqs × replicas for Llama-3.1-70B
at 50 requests/s of 2,048 / 256 tokens (TTFT ≤ 1 s, TPOT ≤ 50 ms) on the default four GPUs.

Reports the candidates, the search's median and best seconds over ``runs`` timed runs (after
one warm-up) and candidates per second, beside the targets: at least 100,000 candidates in at
most 2 s on a 2-core machine — and the answer (the cheapest configuration).
"""

from __future__ import annotations

import statistics
import time

from costmodel.bench.report import BenchTable
from costmodel.checks import check_int
from costmodel.plan.search import plan

MODEL = "llama3.1-70b"
QUERY = {"rate": 50, "input_len": 2048, "output_len": 256, "ttft": 1.0, "tpot": 0.05}
TARGET_CANDIDATES, TARGET_SECONDS = 100_000, 2.0


def run(runs: int = 3) -> list[BenchTable]:
    """The search benchmark (see the module docstring)."""
    runs = check_int("runs", runs, 1, 100)
    plan(MODEL, **QUERY)                                   # warm-up: compiled expressions
    times, df = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        df = plan(MODEL, **QUERY)
        times.append(time.perf_counter() - t0)
    n = df.attrs["candidates"]
    med, best = statistics.median(times), min(times)
    rows = [
        {"measure": "candidates", "median": n, "best": n,
         "target": f">= {TARGET_CANDIDATES:,}", "met": "yes" if n >= TARGET_CANDIDATES else "NO"},
        {"measure": "search seconds", "median": round(med, 3), "best": round(best, 3),
         "target": f"<= {TARGET_SECONDS:g} s", "met": "yes" if med <= TARGET_SECONDS else "NO"},
        {"measure": "candidates per second", "median": round(n / med),
         "best": round(n / best), "target": f">= {TARGET_CANDIDATES / TARGET_SECONDS:,.0f}",
         "met": "yes" if n / med >= TARGET_CANDIDATES / TARGET_SECONDS else "NO"},
    ]
    top = df.iloc[0]
    notes = [f"every candidate is checked for memory; the {df.attrs['solved']:,} that fit have "
             "their steady state solved (vectorised)",
             f"{MODEL}, {QUERY['rate']} requests/s of {QUERY['input_len']}/"
             f"{QUERY['output_len']} tokens, TTFT ≤ {QUERY['ttft']} s, TPOT ≤ "
             f"{QUERY['tpot'] * 1e3:g} ms; {runs} timed runs after one warm-up",
             f"cheapest: {top['gpu']} × {top['gpus']} (TP{top['tp']} PP{top['pp']} "
             f"{top['quant']}, K={top['max_batched_tokens']}, N={top['max_concurrency']}): "
             f"TTFT {top['ttft_s'] * 1e3:.0f} ms, TPOT {top['tpot_s'] * 1e3:.1f} ms, "
             f"${top['usd_per_hour']:.2f}/h, ${top['usd_per_mtok']:.3f}/Mtok"]
    return [BenchTable("plan", "plan() search speed vs the target", rows, notes)]


__all__ = ["MODEL", "QUERY", "TARGET_CANDIDATES", "TARGET_SECONDS", "run"]
