"""Benchmark of :func:`costmodel.grid.sweep`: a 1,000,000-point roofline grid (batch × context
× TP × hardware) against a plain Python loop calling :func:`costmodel.roofline.decode_step`
point by point.

Reports the number of points, the sweep's median and best seconds over ``runs`` timed runs
(after one warm-up), µs per point, the loop's µs per point (extrapolated from a random sample)
and the ratio, beside the targets: the sweep under 1 s on a 2-core machine, ≥ 1000× faster per
point than the loop.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from costmodel.bench.report import BenchTable, ratio_text
from costmodel.checks import check_int
from costmodel.grid import sweep
from costmodel.roofline import decode_step

MODEL = "llama3-8b"
HARDWARE = ("a100-80gb", "h100-sxm", "h200", "mi300x")
TPS = (1, 2, 4, 8)
#: Targets: the sweep's seconds, and its per-point speed-up over the loop.
TARGET_SWEEP_S = 1.0
TARGET_RATIO = 1000
#: Most (batch × context) grid cells (× 16 TP and hardware combinations = 4,000,000 points).
MAX_CELLS = 250_000


def grid(n_batches: int = 50, n_contexts: int = 1250) -> tuple[np.ndarray, np.ndarray]:
    """Batches 4, 8, … 4·n_batches and n_contexts contexts spread over 1 … 8192."""
    batches = np.arange(1, n_batches + 1) * 4
    contexts = np.unique(np.linspace(1, 8192, n_contexts).round().astype(np.int64))
    return batches, contexts


def time_sweep(batches: np.ndarray, contexts: np.ndarray, runs: int) -> tuple[list[float], int]:
    """Seconds of each of ``runs`` sweeps (after one warm-up) and the number of points."""
    sweep(MODEL, list(HARDWARE), batch=batches, context=contexts, tp=TPS)   # warm-up
    times, n = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        df = sweep(MODEL, list(HARDWARE), batch=batches, context=contexts, tp=TPS)
        times.append(time.perf_counter() - t0)
        n = len(df)
    return times, n


def time_loop(batches: np.ndarray, contexts: np.ndarray, n_points: int, seed: int = 0) -> float:
    """Seconds per point of a Python loop of ``decode_step`` over ``n_points`` random points."""
    rng = np.random.default_rng(seed)
    points = [(int(rng.choice(batches)), int(rng.choice(contexts)), int(rng.choice(TPS)),
               HARDWARE[int(rng.integers(len(HARDWARE)))]) for _ in range(n_points)]
    decode_step(MODEL, HARDWARE[0], context=16, batch=1)                    # warm-up
    t0 = time.perf_counter()
    out = [decode_step(MODEL, hw, context=ctx, batch=b, tp=tp).time for b, ctx, tp, hw in points]
    if len(out) != n_points:  # pragma: no cover - a list comprehension keeps every point
        raise RuntimeError("loop lost points")
    return (time.perf_counter() - t0) / n_points


def run(runs: int = 5, loop_points: int = 300, batches: int = 50,
        contexts: int = 1250) -> list[BenchTable]:
    """The sweep benchmark (see the module docstring); every option is checked first."""
    runs = check_int("runs", runs, 1, 100)
    loop_points = check_int("loop_points", loop_points, 1, 100_000)
    batches = check_int("batches", batches, 1, MAX_CELLS)
    contexts = check_int("contexts", contexts, 1, MAX_CELLS)
    if batches * contexts > MAX_CELLS:
        raise ValueError(f"batches × contexts: at most {MAX_CELLS:,} grid cells "
                         f"(× {len(TPS) * len(HARDWARE)} TP and hardware combinations), got "
                         f"{batches * contexts:,}")
    b, c = grid(batches, contexts)
    times, n = time_sweep(b, c, runs)
    med, best = statistics.median(times), min(times)
    loop = time_loop(b, c, loop_points)
    ratio = loop / (med / n)
    rows = [
        {"measure": "sweep seconds", "median": round(med, 4), "best": round(best, 4),
         "target": f"< {TARGET_SWEEP_S:g} s", "met": "yes" if med < TARGET_SWEEP_S else "NO"},
        {"measure": "sweep µs per point", "median": round(med / n * 1e6, 4),
         "best": round(best / n * 1e6, 4), "target": "-", "met": "-"},
        {"measure": "loop µs per point", "median": round(loop * 1e6, 1), "best": None,
         "target": "-", "met": "-"},
        {"measure": "sweep vs loop per point", "median": ratio_text(ratio),
         "best": ratio_text(loop / (best / n)), "target": f">= {TARGET_RATIO:,}×",
         "met": "yes" if ratio >= TARGET_RATIO else "NO"},
    ]
    notes = [f"model {MODEL}, phase decode, hardware {', '.join(HARDWARE)}, TP "
             f"{', '.join(map(str, TPS))}: {n:,} points; {runs} timed runs after one warm-up",
             f"loop: decode_step over {loop_points} random points of the grid"]
    return [BenchTable("sweep", "sweep() vs a Python loop", rows, notes)]


__all__ = ["HARDWARE", "MAX_CELLS", "MODEL", "TPS", "grid", "run", "time_loop", "time_sweep"]
