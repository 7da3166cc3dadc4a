"""Benchmark of the CLI's start-up: wall time from process start to exit of one query
(``costmodel kv …``, ``costmodel analyze …``), each a fresh ``python -m costmodel`` process,
beside Python's own start-up (``python -c pass``), the import of pandas, and the import of
numpy and sympy (the floor of a query: the formulas are sympy expressions) as yardsticks, all
measured in the same run.

Target (issue 10): one query ≤ 0.5 s from process start. Quoted from issue 10 for comparison:
the CLI before the restructuring took 0.93 s, the peers (LLM-Viewer, llm-analysis) 0.95–0.99 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from costmodel.bench.report import BenchTable
from costmodel.checks import check_int

#: Target of issue 10: seconds from process start for one CLI query.
TARGET_S = 0.5
#: Quoted from issue 10 (seconds from process start of one query).
BEFORE_S = 0.93
PEERS_S = "0.95–0.99"

QUERIES = {
    "costmodel kv --model llama3-8b --context 4096":
        ["-m", "costmodel", "kv", "--model", "llama3-8b", "--context", "4096"],
    "costmodel analyze --model llama3-8b --phase decode --context 4096":
        ["-m", "costmodel", "analyze", "--model", "llama3-8b", "--phase", "decode",
         "--context", "4096"],
}
YARDSTICKS = {
    "python -c pass": ["-c", "pass"],
    'python -c "import pandas"': ["-c", "import pandas"],
    'python -c "import numpy, sympy"': ["-c", "import numpy, sympy"],
}


def _env() -> dict[str, str]:
    """The environment of the measured processes: this costmodel first on the path."""
    root = str(Path(__file__).resolve().parent.parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def wall_times(argv: list[str], runs: int) -> list[float]:
    """Seconds from the start of ``python argv`` to its exit, ``runs`` times (after one untimed
    run that warms the file cache); raises if the process fails."""
    cmd, env = [sys.executable, *argv], _env()
    times = []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise ValueError(f"startup: {' '.join(argv)} exited with status {proc.returncode}"
                             f"{': ' + err[-1] if err else ''}")
        if i:
            times.append(elapsed)
    return times


def run(runs: int = 7) -> list[BenchTable]:
    """Median and best wall time of each query and yardstick over ``runs`` runs, interleaved
    so that load from elsewhere falls on all of them alike."""
    runs = check_int("runs", runs, 1, 100)
    commands = {**QUERIES, **YARDSTICKS}
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for argv in commands.values():                          # warm the file cache once
        wall_times(argv, 0)
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].extend(wall_times(argv, 1))
    rows = []
    for name in commands:
        med = statistics.median(samples[name])
        query = name in QUERIES
        rows.append({"command": name, "median_s": round(med, 3),
                     "best_s": round(min(samples[name]), 3),
                     "target_s": TARGET_S if query else None,
                     "met": ("yes" if med <= TARGET_S else "NO") if query else "-"})
    notes = [f"wall time from process start to exit, median and best of {runs} runs each "
             f"(interleaved, after one untimed run); {sys.executable.rsplit(os.sep, 1)[-1]} "
             f"{sys.version.split()[0]}",
             f"quoted from issue 10: the CLI before the restructuring {BEFORE_S} s; the peers "
             f"(LLM-Viewer, llm-analysis) {PEERS_S} s"]
    return [BenchTable("startup", "CLI start-up (one query from process start)", rows, notes)]


__all__ = ["BEFORE_S", "PEERS_S", "QUERIES", "TARGET_S", "YARDSTICKS", "run", "wall_times"]
