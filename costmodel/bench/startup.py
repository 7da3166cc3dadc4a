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

try:
    import resource
except ImportError:  # pragma: no cover - Windows has no getrusage
    resource = None

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


def _child_cpu() -> float | None:
    """CPU seconds (user + system) of the finished child processes so far (None where the
    platform does not say)."""
    if resource is None:  # pragma: no cover - Windows
        return None
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timings(argv: list[str], runs: int, warmup: int = 1) -> list[tuple[float, float | None]]:
    """(wall seconds from the start of ``python argv`` to its exit, CPU seconds it used), for
    ``runs`` runs after ``warmup`` untimed ones; raises if the process fails."""
    cmd, env = [sys.executable, *argv], _env()
    out = []
    for i in range(warmup + runs):
        cpu0, t0 = _child_cpu(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, env=env, timeout=120)
        wall, cpu1 = time.perf_counter() - t0, _child_cpu()
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip().splitlines()
            raise ValueError(f"startup: {' '.join(argv)} exited with status {proc.returncode}"
                             f"{': ' + err[-1] if err else ''}")
        if i >= warmup:
            out.append((wall, None if cpu0 is None or cpu1 is None else cpu1 - cpu0))
    return out


def wall_times(argv: list[str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` runs of ``python argv`` after one untimed run."""
    return [wall for wall, _ in timings(argv, runs)]


def run(runs: int = 7) -> list[BenchTable]:
    """Median and best wall time (and median CPU time) of each query and yardstick over
    ``runs`` runs, interleaved so that load from elsewhere falls on all of them alike. The CPU
    time is what the process itself used: on a busy machine the wall time exceeds it by the
    time spent waiting for a core."""
    runs = check_int("runs", runs, 1, 100)
    commands = {**QUERIES, **YARDSTICKS}
    samples: dict[str, list[tuple[float, float | None]]] = {k: [] for k in commands}
    for argv in commands.values():                          # warm the file cache once
        timings(argv, 0)
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].extend(timings(argv, 1, warmup=0))
    rows = []
    for name in commands:
        walls = [w for w, _ in samples[name]]
        cpus = [c for _, c in samples[name] if c is not None]
        med = statistics.median(walls)
        query = name in QUERIES
        rows.append({"command": name, "median_s": round(med, 3), "best_s": round(min(walls), 3),
                     "median_cpu_s": round(statistics.median(cpus), 3) if cpus else None,
                     "target_s": TARGET_S if query else None,
                     "met": ("yes" if med <= TARGET_S else "NO") if query else "-"})
    notes = [f"wall time from process start to exit, median and best of {runs} runs each "
             f"(interleaved, after one untimed run); cpu: user + system time of the process; "
             f"{sys.executable.rsplit(os.sep, 1)[-1]} {sys.version.split()[0]}, "
             f"{os.cpu_count()} CPUs, load average "
             + (", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg")
                else "unknown"),
             f"quoted from issue 10: the CLI before the restructuring {BEFORE_S} s; the peers "
             f"(LLM-Viewer, llm-analysis) {PEERS_S} s"]
    return [BenchTable("startup", "CLI start-up (one query from process start)", rows, notes)]


__all__ = ["BEFORE_S", "PEERS_S", "QUERIES", "TARGET_S", "YARDSTICKS", "run", "timings",
           "wall_times"]
