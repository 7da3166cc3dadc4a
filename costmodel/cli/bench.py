"""``costmodel bench NAME [OPTIONS]``: the benchmarks (figures, not tests).

``analyze``, ``startup`` and ``sweep`` measure the core (:mod:`costmodel.bench`) and print
their figures as tables beside their targets (``--format csv|json`` too). ``kv``, ``position``,
``static``, ``speculative``, ``hfcompare`` and ``mbu`` run the PyTorch reference model
(:mod:`costmodel.reference.bench`, needs the ``torch`` extra) and ``e0294`` the E0294 teaching
model's benchmark mode; those print their own tables and write CSV/PNG under ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from collections.abc import Callable

from costmodel.bench import analyze as analyze_bench
from costmodel.bench import plan as plan_bench
from costmodel.bench import startup as startup_bench
from costmodel.bench import sweep as sweep_bench
from costmodel.bench.report import BenchTable
from costmodel.cli.args import count
from costmodel.cli.registry import Result, add_format_argument, subcommand

#: Benchmarks of the core: name → one line of help.
CORE = {
    "analyze": "warm analyze() configurations per second, with and without the table, vs "
               "the target and the peers",
    "startup": "wall time of one CLI query from process start, beside python -c pass and the "
               "imports of pandas and of numpy + sympy",
    "sweep": "1,000,000-point roofline sweep vs a Python loop of decode_step",
    "plan": "SLO-aware deployment search: candidates per second vs the target",
}
#: Benchmarks of the reference model: name → one line of help.
REFERENCE = {
    "kv": "seed-001 benchmark.py table: no-KV vs KV step latency, gpt-mini and gpt2",
    "position": "per-token generation time vs position, with and without cache (seed 000)",
    "static": "static vs dynamic KV cache step latency vs context",
    "speculative": "tokens/s target-only vs speculative for gamma = 1..8, measured acceptance",
    "hfcompare": "our gpt2 KV decode step vs Hugging Face transformers' GPT-2",
    "mbu": "decode-step bandwidth utilisation vs the copy bandwidth, and the dynamic cache vs "
           "Hugging Face's GPT-2 (gpt2 fp32, one thread)",
    "e0294": "E0294 2-layer model: latency with and without KV cache vs sequence length",
}
BENCHMARKS = {**CORE, **REFERENCE}


def _add_core(name: str, p: argparse.ArgumentParser) -> None:
    if name == "analyze":
        p.add_argument("--runs", type=count, default=5,
                       help="timed passes over the configurations, at most 1000; default 5")
    elif name == "plan":
        p.add_argument("--runs", type=count, default=3, help="timed searches, at most 100")
    elif name == "startup":
        p.add_argument("--runs", type=count, default=7,
                       help="timed runs of each command, at most 100; default 7")
    else:
        p.add_argument("--runs", type=count, default=5, help="timed sweeps, at most 100")
        p.add_argument("--loop-points", type=count, default=300,
                       help="points of the Python loop, at most 100,000; default 300")
        p.add_argument("--batches", type=count, default=50, help="batch values; default 50")
        p.add_argument("--contexts", type=count, default=1250,
                       help="context values; default 1250 (batches × contexts ≤ 250,000)")


def _add_bench(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, text in CORE.items():
        q = sub.add_parser(name, help=text, description=text)
        add_format_argument(q)
        _add_core(name, q)
    for name, text in REFERENCE.items():
        q = sub.add_parser(name, help=text, description=text, add_help=False)
        q.add_argument("benchmark_options", nargs=argparse.REMAINDER, metavar="OPTIONS",
                       help=f"options of the benchmark (see `costmodel bench {name} --help`)")


def _result(table: BenchTable) -> Result:
    return Result(table.rows, title=table.title, notes=table.notes, name=table.name)


def _core(args: argparse.Namespace) -> list[BenchTable]:
    if args.benchmark == "analyze":
        return analyze_bench.run(runs=args.runs)
    if args.benchmark == "startup":
        return startup_bench.run(runs=args.runs)
    if args.benchmark == "plan":
        return plan_bench.run(runs=args.runs)
    return sweep_bench.run(runs=args.runs, loop_points=args.loop_points, batches=args.batches,
                           contexts=args.contexts)


def _reference_main(name: str) -> Callable[[list[str]], int]:
    try:
        if name == "e0294":
            from costmodel.reference.e0294 import main as e0294_main

            return lambda argv: e0294_main(["--mode", "benchmark", *argv])
        from costmodel.reference.bench import main as ref_main
    except ModuleNotFoundError as e:
        if e.name == "torch":
            raise ValueError(f"bench {name}: this benchmark needs PyTorch (pip install "
                             "'costmodel[torch]')") from None
        raise
    return lambda argv: ref_main([name, *argv])


def _run_reference(name: str, options: list[str]) -> None:
    """Run a reference benchmark; its own argument and input errors become one ValueError
    line (its stderr is held back while it runs and replayed when it succeeds)."""
    main = _reference_main(name)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            rc = main(options)
    except SystemExit as e:                 # its argparse: --help (0) or a usage error (2)
        rc = e.code if isinstance(e.code, int) else 2
        if rc == 0:
            sys.stderr.write(err.getvalue())
            return
    if rc:
        lines = [x for x in err.getvalue().splitlines() if x.strip()]
        said = next((x.split("error:", 1)[1].strip() for x in reversed(lines)
                     if "error:" in x), lines[-1] if lines else "")
        raise ValueError(f"bench {name}: {said or f'the benchmark exited with status {rc}'}")
    sys.stderr.write(err.getvalue())


@subcommand("bench", "run a benchmark (analyze, startup, sweep, plan; reference model: kv, "
            "position, static, speculative, hfcompare, mbu, e0294)", _add_bench)
def _run_bench(args: argparse.Namespace) -> list[Result]:
    if args.benchmark in CORE:
        return [_result(t) for t in _core(args)]
    if args.format != "table":
        raise ValueError(f"bench {args.benchmark}: the reference-model benchmarks print their "
                         "own tables and write CSV under --out; --format "
                         f"{args.format} applies to analyze, startup and sweep")
    _run_reference(args.benchmark, list(args.benchmark_options))
    return []


__all__ = ["BENCHMARKS", "CORE", "REFERENCE"]
