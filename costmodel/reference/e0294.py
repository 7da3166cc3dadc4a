"""E0294 (Assignment 4, Problem 2) command line: evaluate, kv_evaluate, benchmark and plot.

The model is in :mod:`costmodel.reference.e0294_model`, the reference files and evaluation in
:mod:`costmodel.reference.e0294_cases`, the benchmark in :mod:`costmodel.reference.e0294_bench`.
This module re-exports the names read as ``e0294.X`` (:class:`DecoderOnlyTransformer`,
:func:`causal_mask`, :func:`benchmark`, :func:`format_benchmark_row`).

Command line (``python -m costmodel.reference.e0294 --mode MODE``):

* ``evaluate``: logits of the prompt, computed without a cache, against the test-case file.
* ``kv_evaluate``: the same logits computed incrementally with the KV cache (the first half of
  the prompt as one chunk, up to 3 more tokens as a second chunk on top of the cache, then one
  token at a time: :func:`~costmodel.reference.e0294_cases.incremental_logits`) against the
  same file.
* ``benchmark``: latency of generating ``--num_tokens`` tokens (greedy) after prompts of each
  ``--seq_lens`` length, with and without the cache (warm-up, repeats, median); prints a table
  and writes ``e0294_benchmark.csv`` to ``--out``.
* ``plot``: the same measurements, also drawn to ``e0294_latency.png`` in ``--out``.

Bad input (missing file, state dict with missing/unexpected keys or wrong shapes, prompt too
long, ids out of range, unavailable device) prints one ``error: ...`` line to stderr and exits 2;
a failed evaluation exits 1.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from costmodel.reference.e0294_bench import (
    BENCHMARK_CSV_FILENAME,
    DEFAULT_SEQ_LENS,
    PLOT_FILENAME,
    benchmark,
    format_benchmark_row,
    plot_benchmark,
    write_benchmark_csv,
)
from costmodel.reference.e0294_cases import DEFAULT_ATOL, evaluate, load_test_cases
from costmodel.reference.e0294_model import (
    DATA_DIR,
    DEFAULT_CONFIG,
    STATE_DICT_FILENAME,
    TEST_CASES_FILENAME,
    DecoderOnlyTransformer,
    causal_mask,
    load_model,
)
from costmodel.reference.timing import resolve_device

__all__ = ["DecoderOnlyTransformer", "benchmark", "causal_mask", "format_benchmark_row", "main"]


def _parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m costmodel.reference.e0294",
        description="E0294 2-layer decoder: evaluate, kv_evaluate, benchmark, plot.",
    )
    p.add_argument(
        "--mode", required=True, choices=["evaluate", "kv_evaluate", "benchmark", "plot"]
    )
    p.add_argument(
        "--model_state_dict",
        default=None,
        help="state dict (.pt); default: the committed reference for evaluate modes, "
        "a randomly initialised default-dims model for benchmark/plot",
    )
    p.add_argument(
        "--test_cases", default=None, help="test-case JSON; default: the committed reference"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (default cpu)")
    p.add_argument("--out", default=".", help="folder for the CSV and PNG (default: .)")
    p.add_argument("--num_tokens", type=int, default=8, help="tokens to generate (default 8)")
    p.add_argument("--seq_lens", type=int, nargs="+", default=list(DEFAULT_SEQ_LENS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    for name in ("vocab_size", "d_model", "d_ff", "num_layers", "max_seq_len"):
        p.add_argument(
            f"--{name}",
            type=int,
            default=None,
            help="default: read off the state dict, else the preset's value",
        )
    return p


def _run(args: argparse.Namespace) -> int:
    """Carry out one CLI mode; returns the exit code."""
    device = resolve_device(args.device)
    if args.threads is not None:
        if args.threads <= 0:
            raise ValueError(f"threads: must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in asdict(DEFAULT_CONFIG)}
    if args.mode in ("evaluate", "kv_evaluate"):
        sd_path = args.model_state_dict or str(DATA_DIR / STATE_DICT_FILENAME)
        tc_path = args.test_cases or str(DATA_DIR / TEST_CASES_FILENAME)
        model = load_model(sd_path, device, overrides)
        print(f"Successfully loaded model state dictionary from {sd_path}")
        cases = load_test_cases(tc_path)
        print(f"Test cases loaded from {tc_path}")
        results = evaluate(model, cases, use_cache=args.mode == "kv_evaluate", atol=args.atol)
        passed = sum(results)
        print("Evaluation Results:")
        print(f"  Num test cases: {len(results)}")
        print(f"  All tests passed: {passed == len(results)}")
        print(f"  Pass rate: {100.0 * passed / len(results):.2f}% ({passed}/{len(results)})")
        return 0 if passed == len(results) else 1

    if args.model_state_dict:
        model = load_model(args.model_state_dict, device, overrides)
        print(f"Successfully loaded model state dictionary from {args.model_state_dict}")
    else:
        torch.manual_seed(args.seed)
        cfg = {**asdict(DEFAULT_CONFIG), **{k: v for k, v in overrides.items() if v is not None}}
        model = DecoderOnlyTransformer(**cfg).to(device).eval()
        print(f"Randomly initialised model {model.config} (seed {args.seed})")
    print("Benchmarking...")
    rows = benchmark(
        model,
        args.seq_lens,
        args.num_tokens,
        args.repeats,
        warmup=args.warmup,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    for row in rows:
        print(format_benchmark_row(row))
    out = Path(args.out)
    print(f"CSV written to {write_benchmark_csv(rows, out / BENCHMARK_CSV_FILENAME)}")
    if args.mode == "plot":
        print(f"Plot written to {plot_benchmark(rows, out / PLOT_FILENAME)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; 0 on success, 1 when an evaluation fails, 2 on bad input (one stderr line)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
