"""The 80 % band on every time (``Analysis.time_interval``, ``Generation``'s intervals, the
sweep's ``time_lo`` / ``time_hi``) from an engine profile's factors per regime, the regime of a
grid of passes, and the sweep with expert parallelism and expert formats.

Expected numbers: the factors of a profile made here (the bundled profiles' bands are fitted
elsewhere), hand algebra, and ``cm.analyze`` / ``cm.max_batch_size`` for the same passes."""

from __future__ import annotations

import numpy as np
import pytest

import costmodel as cm
from costmodel.pricing import Efficiency
from costmodel.specs import EngineProfile
from costmodel.workload import regime

BANDED = EngineProfile("banded-core-test", eta_c=0.6, eta_m=0.7, layer_overhead=2e-5,
                       bands={"decode_b1": (0.8, 1.25), "prefill": (0.9, 1.1),
                              "quantized": (0.7, 1.5), "all": (0.5, 2.0)})


def test_the_band_of_a_regime_falls_back_to_all_then_none():
    eff = Efficiency.of(cm.hardware("h100-sxm"), BANDED)
    assert eff.band("decode_b1") == (0.8, 1.25)
    assert eff.band("tp") == (0.5, 2.0)                       # none of its own: "all"
    assert Efficiency.of(cm.hardware("h100-sxm")).band("decode_b1") is None


def test_time_interval_is_the_factors_times_the_time():
    a = cm.decode_step("llama3-8b", "h100-sxm", 1024, engine=BANDED)
    assert a.regime == "decode_b1"
    assert a.time_interval == (a.time * 0.8, a.time * 1.25)
    q = cm.decode_step("llama3-8b", "h100-sxm", 1024, engine=BANDED, quant="int4-g128")
    assert q.regime == "quantized" and q.time_interval == (q.time * 0.7, q.time * 1.5)
    assert cm.decode_step("llama3-8b", "h100-sxm", 1024).time_interval is None


def test_generation_intervals():
    g = cm.generation("llama3-8b", "h100-sxm", 512, 64, engine=BANDED)
    assert g.ttft_interval == (0.9 * g.ttft, 1.1 * g.ttft)
    assert g.tpot_first_interval == (0.8 * g.tpot_first, 1.25 * g.tpot_first)
    assert g.decode_interval == (0.8 * g.decode_time, 1.25 * g.decode_time)
    assert g.tpot_mean_interval == (0.8 * g.tpot_mean, 1.25 * g.tpot_mean)
    # the total: the two bands' ends added
    lo, hi = g.total_interval
    assert lo == pytest.approx(0.9 * g.ttft + 0.8 * g.decode_time, rel=1e-15)
    assert hi == pytest.approx(1.1 * g.ttft + 1.25 * g.decode_time, rel=1e-15)
    assert cm.generation("gpt2", "t4", 128, 4).total_interval is None


def test_regime_of_a_grid_is_the_regime_of_each_pass():
    batch = np.array([1, 2, 1, 1, 4])
    q = np.array([1, 1, 7, 1, 1])
    tp = np.array([1, 1, 1, 2, 1])
    names = regime(batch, q, tp, 2)
    assert list(names) == [regime(int(b), int(n), int(t)) for b, n, t in zip(batch, q, tp,
                                                                             strict=True)]
    assert list(names) == ["decode_b1", "decode_batched", "prefill", "tp", "decode_batched"]
    assert set(regime(batch, q, tp, 1.0)) == {"quantized"}


def test_sweep_bands_follow_each_points_regime():
    df = cm.sweep("gpt2", "a100-80gb", batch=[1, 8], context=[64], engine=BANDED)
    one, eight = df.itertuples()
    assert (one.time_lo, one.time_hi) == (one.time * 0.8, one.time * 1.25)
    assert (eight.time_lo, eight.time_hi) == (eight.time * 0.5, eight.time * 2.0)
    plain = cm.sweep("gpt2", "a100-80gb", batch=[1], context=[64])
    assert "time_lo" not in plain.columns
    bandless = cm.sweep("gpt2", "a100-80gb", batch=[1], context=[64],
                        engine=BANDED.replace(name="bandless-core-test", bands={}))
    assert bandless["time_lo"].isna().all() and bandless["time_hi"].isna().all()


def test_sweep_with_expert_parallelism_is_analyze_and_fits_as_batch_plan():
    m, hw = cm.model("mixtral-8x7b"), cm.hardware("h100-sxm")
    top = cm.max_batch_size(m, hw, 4096, tp=2, ep=8)
    # EP/TP = 4 attention replicas each hold their own requests' KV: the sweep's `fits` is
    # batch_plan's max batch, to the request
    df = cm.sweep(m, hw, batch=[1, 64, top, top + 1], context=4096, tp=2, ep=8)
    assert list(df["fits"]) == [True, True, True, False]
    for row in df.itertuples():
        a = cm.analyze(m, hw, batch=int(row.batch), new_tokens=1, cached_tokens=4096, tp=2,
                       ep=8)
        assert row.time == pytest.approx(a.time, rel=1e-12) and row.flops == a.flops


def test_sweep_expert_formats():
    m, hw = cm.model("gpt-oss-20b"), cm.hardware("h100-sxm")
    for kw in ({}, {"expert_quant": "int4-g128"}, {"expert_weight_bytes": 1},
               {"quant": "fp8"}):
        row = cm.sweep(m, hw, batch=[16], context=[512], **kw).iloc[0]
        a = cm.decode_step(m, hw, 512, 16, **kw)
        assert row["time"] == pytest.approx(a.time, rel=1e-12), kw
        assert row["bytes"] == pytest.approx(a.bytes, rel=1e-12), kw
