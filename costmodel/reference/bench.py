"""The command line of the reference model's benchmarks (measurements, not tests).

Each writes a txt/CSV (+ PNG) into ``--out``:

    python -m costmodel.reference.bench kv           # seed 001's table -> benchmark_results.txt
    python -m costmodel.reference.bench position     # seed 000: per-token time vs position
    python -m costmodel.reference.bench static       # static vs dynamic cache step vs context
    python -m costmodel.reference.bench speculative  # target-only vs speculative, gamma = 1..8
    python -m costmodel.reference.bench hfcompare    # our gpt2 KV step vs Hugging Face GPT-2's
    python -m costmodel.reference.bench mbu          # decode MBU vs copy bandwidth; vs HF

Latencies are per generation step: warm-up calls, then ``--repeats`` timed calls, median reported.
Every CSV starts with ``#`` lines recording the machine (CPU, cores, torch version and threads).
The benchmarks live in :mod:`~costmodel.reference.bench_cache` (kv, position, static),
:mod:`~costmodel.reference.bench_hf` (hfcompare, mbu) and
:mod:`~costmodel.reference.bench_speculative`; their helpers in
:mod:`~costmodel.reference.bench_common`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from costmodel.reference.bench_cache import bench_kv, bench_position, bench_static
from costmodel.reference.bench_common import SEED001_CONTEXTS
from costmodel.reference.bench_hf import bench_hfcompare, bench_mbu
from costmodel.reference.bench_speculative import bench_speculative
from costmodel.reference.gpt import parse_dtype
from costmodel.reference.timing import resolve_device


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    p.add_argument("--dtype", default="fp32", help="fp32, bf16 or fp16")
    p.add_argument("--out", type=Path, default=Path("."), help="output directory")
    p.add_argument("--repeats", type=int, default=10, help="timed repeats per point (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


# ----------------------------------------------------------------------------- CLI

BENCHMARKS = {
    "kv": bench_kv,
    "position": bench_position,
    "static": bench_static,
    "speculative": bench_speculative,
    "hfcompare": bench_hfcompare,
    "mbu": bench_mbu,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="costmodel bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("benchmark", choices=sorted(BENCHMARKS))
    _common(p)
    p.add_argument("--models", default="gpt-mini,gpt2", help="comma-separated presets (kv, static)")
    p.add_argument("--contexts", type=_ints, default=list(SEED001_CONTEXTS), help="e.g. 64,128,256")
    p.add_argument(
        "--new-tokens",
        type=int,
        default=None,
        help="tokens to generate (position: 1000, speculative: 96)",
    )
    p.add_argument("--prompt-len", type=int, default=1, help="position: prompt length")
    p.add_argument(
        "--gammas", type=_ints, default=list(range(1, 9)), help="speculative: gamma values"
    )
    p.add_argument("--prompts", type=int, default=8, help="speculative: number of prompts")
    p.add_argument(
        "--prompt-chars", type=int, default=24, help="speculative: prompt length (chars)"
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.benchmark == "mbu":
        torch.set_num_threads(1)
    if args.new_tokens is None:
        args.new_tokens = 96 if args.benchmark == "speculative" else 1000
    if args.benchmark == "speculative" and args.repeats == 10:
        args.repeats = 3
    if args.benchmark == "mbu" and args.repeats == 10:
        args.repeats = 21
    device, dtype = resolve_device(args.device), parse_dtype(args.dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    return BENCHMARKS[args.benchmark](args, device, dtype)


if __name__ == "__main__":
    raise SystemExit(main())
