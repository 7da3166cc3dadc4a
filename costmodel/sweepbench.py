"""Sweep benchmark: a 1,000,000-point roofline sweep (batch × context × TP × hardware) of
``cm.sweep`` against a plain Python loop calling ``cm.decode_step`` point by point.

    costmodel bench sweep [--runs 5] [--loop-points 300]

Prints the number of points, the sweep's median and best seconds over ``--runs`` timed runs
(after one warm-up), µs per point, the loop's µs per point (extrapolated from a random sample)
and the ratio. Targets: sweep < 1 s on a 2-core machine, ≥ 1000× faster per point than the loop.
Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import costmodel as cm

MODEL = "llama3-8b"
HARDWARE = ("a100-80gb", "h100-sxm", "h200", "mi300x")
TPS = (1, 2, 4, 8)


def grid(n_batches: int = 50, n_contexts: int = 1250):
    batches = np.arange(1, n_batches + 1) * 4          # 4 … 200
    contexts = np.linspace(1, 8192, n_contexts).round().astype(np.int64)
    return batches, contexts


def time_sweep(batches, contexts, runs: int) -> tuple[list[float], int]:
    cm.sweep(MODEL, list(HARDWARE), batch=batches, context=contexts, tp=TPS)   # warm-up
    times = []
    n = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        df = cm.sweep(MODEL, list(HARDWARE), batch=batches, context=contexts, tp=TPS)
        times.append(time.perf_counter() - t0)
        n = len(df)
    return times, n


def time_loop(batches, contexts, n_points: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    points = [(int(rng.choice(batches)), int(rng.choice(contexts)), int(rng.choice(TPS)),
               HARDWARE[int(rng.integers(len(HARDWARE)))]) for _ in range(n_points)]
    cm.decode_step(MODEL, HARDWARE[0], context=16, batch=1)                  # warm-up
    t0 = time.perf_counter()
    out = [cm.decode_step(MODEL, hw, context=ctx, batch=b, tp=tp).time
           for b, ctx, tp, hw in points]
    assert len(out) == n_points
    return (time.perf_counter() - t0) / n_points


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--loop-points", type=int, default=300)
    ap.add_argument("--batches", type=int, default=50)
    ap.add_argument("--contexts", type=int, default=1250)
    args = ap.parse_args(argv)
    batches, contexts = grid(args.batches, args.contexts)
    times, n = time_sweep(batches, contexts, args.runs)
    med, best = statistics.median(times), min(times)
    loop = time_loop(batches, contexts, args.loop_points)
    print(f"model {MODEL}, phase decode, hardware {', '.join(HARDWARE)}, TP {TPS}")
    print(f"points            {n:,}")
    print(f"sweep seconds     median {med:.3f}, best {best:.3f} over {args.runs} runs")
    print(f"sweep µs/point    median {med / n * 1e6:.4f}, best {best / n * 1e6:.4f}")
    print(f"loop µs/point     {loop * 1e6:.1f} (decode_step, {args.loop_points} sampled points)")
    print(f"ratio             {loop / (med / n):,.0f}× (median), {loop / (best / n):,.0f}× (best)")
    print(f"targets           sweep < 1 s: {'met' if med < 1 else 'MISSED'}; "
          f"≥ 1000× per point: {'met' if loop / (med / n) >= 1000 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
