"""Benchmark of :func:`costmodel.roofline.analyze`: warm configurations per second over a varied
set (models × phases × batches × contexts × TP), once reading only the totals (``.time``) and
once building the per-operator table too (``.ops``), beside the target and the peers' figures.

Target (issue 10): ≥ 20,000 configurations/s (≤ 50 µs each) when the table is not read.
Peers, measured per configuration on the same kind of machine and workload and quoted from
issue 10: LLM-Viewer's ``analyze`` 12,500/s, llm-analysis 4,100/s. The benchmark also checks
that every ``.ops`` table holds exactly the analysis's arrays (operators that do nothing left
out).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from costmodel.batch import check_tp
from costmodel.bench.report import BenchTable, ratio_text
from costmodel.checks import check_int
from costmodel.ops import PARTS
from costmodel.presets import hardware, model
from costmodel.roofline import Analysis, analyze
from costmodel.specs import HardwareSpec, ModelSpec
from costmodel.workload import PHASES, phase_pass

MODELS = ("gpt2", "gpt2-xl", "llama2-7b", "llama3-8b", "llama3-70b", "mistral-7b")
HARDWARE = ("a100-80gb", "h100-sxm", "t4")
BATCHES = (1, 16)
CONTEXTS = (512, 4096)
TPS = (1, 4, 8)
#: Target of issue 10: configurations per second with the table not read.
TARGET_PER_S = 20_000
#: Peers' per-configuration figures (configurations/s) quoted from issue 10.
PEERS = {"LLM-Viewer": 12_500, "llm-analysis": 4_100}


@dataclass(frozen=True)
class Config:
    """One ``analyze`` call: model, hardware and keyword arguments."""

    model: ModelSpec
    hardware: HardwareSpec
    kwargs: dict[str, Any]


def configurations() -> list[Config]:
    """The benchmark's configurations: every model × phase × batch × context × TP (valid TP
    degrees only), the hardware cycling through :data:`HARDWARE`."""
    out = []
    hws = [hardware(h) for h in HARDWARE]
    for mi, name in enumerate(MODELS):
        m = model(name)
        for pi, phase in enumerate(PHASES):
            for batch in BATCHES:
                for context in CONTEXTS:
                    p = phase_pass(phase, context, batch, gamma=4, chunk=256)
                    for tp in TPS:
                        try:
                            check_tp(m, tp)
                        except ValueError:
                            continue
                        hw = hws[(mi + pi + tp) % len(hws)]
                        out.append(Config(m, hw, {**p.kwargs(), "tp": tp}))
    return out


def ops_match_arrays(a: Analysis) -> bool:
    """Whether ``a.ops`` holds exactly the analysis's arrays: the operators that do something,
    their counts, FLOPs, byte parts, comm bytes and priced times."""
    q = a.quantities
    keep = (q[:, 0] != 0) | (q[:, 1:6].sum(axis=1) != 0) | (q[:, 6] != 0)
    ops = a.ops
    return (list(ops["op"]) == [n for n, k in zip(a.names, keep, strict=True) if k]
            and np.array_equal(ops["count"].to_numpy(), a.count[keep].astype(int))
            and np.array_equal(ops["flops"].to_numpy(), q[keep, 0])
            and np.array_equal(ops[list(PARTS)].to_numpy(), q[keep, 1:6])
            and np.array_equal(ops["comm_bytes"].to_numpy(), q[keep, 6])
            and np.array_equal(ops["time"].to_numpy(), a.priced.time[keep]))


def _rates(configs: list[Config], runs: int, read_ops: bool) -> list[float]:
    rates = []
    for _ in range(runs):
        t0 = time.perf_counter()
        if read_ops:
            for c in configs:
                _ = analyze(c.model, c.hardware, **c.kwargs).ops
        else:
            for c in configs:
                _ = analyze(c.model, c.hardware, **c.kwargs).time
        rates.append(len(configs) / (time.perf_counter() - t0))
    return rates


def run(runs: int = 5) -> list[BenchTable]:
    """Time ``runs`` passes over the configurations (after one warm-up pass) with and without
    the table; the median rate of the passes is reported."""
    runs = check_int("runs", runs, 1, 1000)
    configs = configurations()
    warm = [analyze(c.model, c.hardware, **c.kwargs) for c in configs]   # compile caches
    matching = sum(ops_match_arrays(a) for a in warm)
    totals = _rates(configs, runs, read_ops=False)
    table = _rates(configs, runs, read_ops=True)
    rows = []
    for label, rates, target in (("analyze, totals only (.time)", totals, TARGET_PER_S),
                                 ("analyze + per-operator table (.ops)", table, None)):
        rate = statistics.median(rates)
        row: dict[str, Any] = {"measure": label, "configs_per_s": round(rate),
                               "us_per_config": round(1e6 / rate, 1),
                               "best_configs_per_s": round(max(rates))}
        row["target"] = f">= {target:,}/s" if target else "-"
        row["met"] = ("yes" if rate >= target else "NO") if target else "-"
        for peer, figure in PEERS.items():
            row[f"vs_{peer}"] = ratio_text(rate / figure)
        rows.append(row)
    models = sorted({c.model.name for c in configs})
    notes = [f"{len(configs)} configurations: models {', '.join(models)}; phases "
             f"{', '.join(PHASES)}; batch {', '.join(map(str, BATCHES))}; context "
             f"{', '.join(map(str, CONTEXTS))}; TP {', '.join(map(str, TPS))} where valid; "
             f"hardware {', '.join(HARDWARE)}",
             f"median of {runs} timed passes after one warm-up pass (compiled expressions "
             "cached); one fresh analyze() per configuration",
             "peers (configurations/s, per-configuration analyze, same kind of machine and "
             "workload, quoted from issue 10): "
             + ", ".join(f"{k} {v:,}" for k, v in PEERS.items()),
             f".ops identical to the analysis's arrays: {matching}/{len(configs)} "
             "configurations"]
    return [BenchTable("analyze", "analyze() speed (warm)", rows, notes)]


__all__ = ["BATCHES", "CONTEXTS", "Config", "HARDWARE", "MODELS", "PEERS", "TARGET_PER_S",
           "TPS", "configurations", "ops_match_arrays", "run"]
