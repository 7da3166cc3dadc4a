"""The analyze benchmark (``costmodel.bench.analyze``): its configurations are varied and valid,
its table check can fail, and its report carries the target and the peers' figures. The speed
itself is a measurement, printed by ``costmodel bench analyze``, not asserted here."""

from __future__ import annotations

import pytest

from costmodel.batch import check_tp
from costmodel.bench import analyze as bench
from costmodel.roofline import analyze
from costmodel.workload import PHASES


def test_configurations_are_varied_and_valid():
    configs = bench.configurations()
    assert len(configs) >= 200
    assert len({c.model.name for c in configs}) >= 5
    assert len({c.hardware.name for c in configs}) >= 3
    assert {c.kwargs["tp"] for c in configs} == set(bench.TPS)
    assert {c.kwargs["batch"] for c in configs} == set(bench.BATCHES)
    # every phase appears: decode (q = 1), prefill and no_cache (c = 0), verify (q = γ + 1 = 5),
    # chunk (q = 256)
    assert {c.kwargs["new_tokens"] for c in configs} >= {1, 5, 256, *bench.CONTEXTS}
    assert any(not c.kwargs["kv_cache"] for c in configs)          # the no_cache phase
    for c in configs:
        assert check_tp(c.model, c.kwargs["tp"]) == c.kwargs["tp"]
    assert len(PHASES) == 5


def test_ops_check_passes_and_can_fail():
    a = analyze("llama3-8b", "a100-80gb", batch=4, new_tokens=1, cached_tokens=100, tp=2)
    assert bench.ops_match_arrays(a)
    a.ops.loc[0, "flops"] += 1                  # the cached table no longer holds the arrays
    assert not bench.ops_match_arrays(a)


def test_report_has_target_and_peers():
    (table,) = bench.run(runs=1)
    assert table.name == "analyze"
    totals, with_ops = table.rows
    assert totals["configs_per_s"] > 0 and with_ops["configs_per_s"] > 0
    assert totals["us_per_config"] == pytest.approx(1e6 / totals["configs_per_s"], rel=0.01)
    assert totals["target"] == ">= 20,000/s"
    assert totals["met"] == ("yes" if totals["configs_per_s"] >= 20_000 else "NO")
    # the ratios are the measured rate over the peers' quoted 12,500/s and 4,100/s
    for key, peer in (("vs_LLM-Viewer", 12_500), ("vs_llm-analysis", 4_100)):
        ratio = float(totals[key].rstrip("×").replace(",", ""))
        assert ratio == pytest.approx(totals["configs_per_s"] / peer, rel=0.01, abs=0.01)
    notes = " ".join(table.notes)
    assert "LLM-Viewer 12,500" in notes and "llm-analysis 4,100" in notes
    n = len(bench.configurations())
    assert f"identical to the analysis's arrays: {n}/{n}" in notes


def test_runs_are_checked():
    with pytest.raises(ValueError, match="runs"):
        bench.run(runs=0)
