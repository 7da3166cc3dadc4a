"""``costmodel bench NAME [OPTIONS]``: the benchmarks (they print figures and write CSV/PNG;
they are not tests). ``sweep`` times the vectorised roofline; the others run the PyTorch
reference model (``costmodel.reference.bench``, needs the ``torch`` extra); ``e0294`` runs the
E0294 teaching model's benchmark mode."""

from __future__ import annotations

import argparse

from costmodel.cli.registry import Result, subcommand

BENCHMARKS = {
    "sweep": "1,000,000-point roofline sweep vs a Python loop (costmodel.sweepbench)",
    "kv": "seed-001 benchmark.py table: no-KV vs KV step latency, gpt-mini and gpt2",
    "position": "per-token generation time vs position, with and without cache (seed 000)",
    "static": "static vs dynamic KV cache step latency vs context",
    "speculative": "tokens/s target-only vs speculative for gamma = 1..8, measured acceptance",
    "hfcompare": "our gpt2 KV decode step vs Hugging Face transformers' GPT-2",
    "e0294": "E0294 2-layer model: latency with and without KV cache vs sequence length",
}


def _add_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=sorted(BENCHMARKS),
                   help="; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()))
    p.add_argument("options", nargs=argparse.REMAINDER,
                   help="options passed to the benchmark (see `costmodel bench NAME --help`)")


@subcommand("bench", "run a benchmark (sweep, kv, position, static, speculative, hfcompare, "
            "e0294)", _add_bench)
def _run_bench(args: argparse.Namespace) -> list[Result]:
    if args.name == "sweep":
        from costmodel.sweepbench import main
    elif args.name == "e0294":
        from costmodel.reference.e0294 import main as e0294_main

        def main(argv):
            return e0294_main(["--mode", "benchmark", *argv])
    else:
        try:
            from costmodel.reference.bench import main as ref_main
        except ModuleNotFoundError as e:
            if e.name == "torch":
                raise ValueError("bench: this benchmark needs PyTorch (pip install "
                                 "'costmodel[torch]')") from None
            raise

        def main(argv):
            return ref_main([args.name, *argv])
    rc = main(list(args.options))
    if rc:
        raise ValueError(f"bench {args.name}: the benchmark exited with status {rc}")
    return []
