"""The roofline: a memory-bound decode by hand, the batch where decode turns compute-bound vs the
ridge point, efficiencies, sweep vs analyze, TP = 1 without communication, and bad input (a whole
generation: tests/test_decoding.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel as cm

SETTINGS = settings(max_examples=25, deadline=None)
A100_PEAK, A100_BW = 312e12, 2.039e12   # bf16 dense, HBM2e (A100 SXM4 80 GB datasheet)


@pytest.fixture(scope="module")
def llama():
    return cm.model("llama3-8b")


def test_ridge_point():
    hw = cm.hardware("a100-80gb")
    assert hw.ridge_point("bf16") == pytest.approx(A100_PEAK / A100_BW)      # 153.0
    assert cm.hardware("t4").ridge_point("fp16") == pytest.approx(65e12 / 300e9)  # 216.7
    a = cm.decode_step("llama3-8b", hw, context=1)
    assert a.ridge_point == pytest.approx(153.016, rel=1e-4)


def test_decode_b1_is_weight_read_by_hand(llama):
    # Llama-3-8B, B = 1, one new token on a 1-token context, bf16 on the A100-80GB.
    # Weights read: every parameter except the untied embedding table, of which one row is
    # read: P − V·d + d = 8,030,261,248 − 525,336,576 + 4,096 = 7,504,928,768 → ×2 bytes.
    a = cm.decode_step(llama, "a100-80gb", context=1)
    assert a.ops["weight_read"].sum() == 2 * (8_030_261_248 - 128_256 * 4096 + 4096)
    # every operator is memory-bound at B = 1, so time = Σ bytes / BW exactly
    assert set(a.ops["bound"]) == {"memory"}
    assert a.time == pytest.approx(a.bytes / A100_BW, rel=1e-12)
    # and the bytes are the weights plus < 1 % activations and KV: ≈ 15.01 GB / 2.039 TB/s
    assert a.bytes == pytest.approx(2 * 7_504_928_768, rel=0.01)
    assert a.time == pytest.approx(2 * 7_504_928_768 / A100_BW, rel=0.01)   # 7.36 ms


def test_batch_where_decode_turns_compute_bound(llama):
    # Weights-dominated decode (context 1): FLOPs ≈ 2·P'·B, bytes ≈ 2·P' + a·B with a the
    # activation bytes per token. Compute-bound when 2P'B/π > (2P' + aB)/β, i.e.
    # B > r / (1 − r·a/(2P')) with r = π/β = 153. The activation traffic only delays the flip.
    # Per token a ≈ 32 layers × ~140k activation elements read/written (qkv 4096 in + 6144 out,
    # out_proj 2·4096, gate/up 2·(4096 + 14336), SiLU·product 3·14336, down 14336 + 4096,
    # norms and residuals ~8·4096) × 2 B ≈ 9 MB, plus 256 kB of logits; 2P' ≈ 15 GB, so
    # r·a/(2P') ≈ 0.1 and B* ≈ 153/0.9 ≈ 170: within [r, 1.25 r].
    # scan B = 1 … 400 with the sweep (same totals), then check Analysis.bound at the flip
    df = cm.sweep(llama, "a100-80gb", batch=np.arange(1, 401), context=1)
    bounds = list(df["bound"])
    flips = [i for i in range(1, len(bounds)) if bounds[i] != bounds[i - 1]]
    assert len(flips) == 1, "the bound changes exactly once"
    b_star = int(df["batch"].iloc[flips[0]])
    assert bounds[0] == "memory" and bounds[-1] == "compute"
    assert cm.decode_step(llama, "a100-80gb", context=1, batch=b_star - 1).bound == "memory"
    assert cm.decode_step(llama, "a100-80gb", context=1, batch=b_star).bound == "compute"
    r = A100_PEAK / A100_BW
    assert r <= b_star <= 1.25 * r
    print(f"decode turns compute-bound at B = {b_star} (ridge {r:.1f})")


def test_efficiencies_scale_times(llama):
    base = cm.decode_step(llama, "a100-80gb", context=512, batch=8)
    half = cm.decode_step(llama, "a100-80gb", context=512, batch=8, eta_c=0.5, eta_m=0.5)
    assert half.time == pytest.approx(2 * base.time, rel=1e-12)
    mem = cm.decode_step(llama, "a100-80gb", context=512, batch=8, eta_m=0.7)
    assert mem.memory_time == pytest.approx(base.memory_time / 0.7, rel=1e-12)
    assert mem.compute_time == pytest.approx(base.compute_time, rel=1e-12)
    pre = cm.prefill(llama, "a100-80gb", context=2048)
    pre_c = cm.prefill(llama, "a100-80gb", context=2048, eta_c=0.7)
    assert pre_c.compute_time == pytest.approx(pre.compute_time / 0.7, rel=1e-12)


@SETTINGS
@given(ctx=st.integers(1, 8000), step=st.integers(1, 4000), batch=st.integers(1, 128),
       name=st.sampled_from(["gpt2", "llama3-8b"]), hw=st.sampled_from(["t4", "h100-sxm"]))
def test_decode_time_non_decreasing_in_context(ctx, step, batch, name, hw):
    t0 = cm.decode_step(name, hw, context=ctx, batch=batch).time
    t1 = cm.decode_step(name, hw, context=ctx + step, batch=batch).time
    assert t1 >= t0


@SETTINGS
@given(batch=st.integers(1, 64), q=st.integers(1, 512), c=st.integers(0, 4096),
       name=st.sampled_from(["gpt2", "llama3-8b"]))
def test_tp1_has_no_communication(batch, q, c, name):
    a = cm.analyze(name, "a100-80gb", batch=batch, new_tokens=q, cached_tokens=c, tp=1)
    assert a.comm_bytes == 0 and a.comm_time == 0
    assert not (a.ops["kind"] == "communication").any()
    two = cm.analyze("llama3-8b", "a100-80gb", batch=batch, new_tokens=q, cached_tokens=c, tp=2)
    # two all-reduces of the B·q×d activations (2 bytes) per layer
    assert two.comm_bytes == 32 * 2 * batch * q * 4096 * 2


# dense GQA; sliding-window + global layers; a mixture of experts; latent attention (MLA)
@pytest.mark.parametrize("model", ["llama3-8b", "gemma3-27b", "mixtral-8x7b",
                                   "deepseek-v2-lite"])
@pytest.mark.parametrize("phase", ["decode", "prefill", "no_cache", "verify"])
def test_sweep_rows_equal_analyze(phase, model):
    batches, contexts, tps = [1, 7, 64], [1, 300, 4096], [1, 2, 8]
    hws = ["a100-80gb", "h100-sxm"]
    df = cm.sweep(model, hws, batch=batches, context=contexts, tp=tps, phase=phase,
                  gamma=3)
    assert len(df) == len(batches) * len(contexts) * len(tps) * len(hws)
    step = {"decode": lambda s: (1, s, True), "prefill": lambda s: (s, 0, True),
            "no_cache": lambda s: (s, 0, False), "verify": lambda s: (4, s, True)}[phase]
    for row in df.itertuples():
        q, c, kv_cache = step(int(row.context))
        a = cm.analyze(model, row.hardware, batch=int(row.batch), new_tokens=q,
                       cached_tokens=c, tp=int(row.tp), kv_cache=kv_cache)
        assert row.flops == pytest.approx(a.flops, rel=1e-12)
        assert row.bytes == pytest.approx(a.bytes, rel=1e-12)
        assert row.time == pytest.approx(a.time, rel=1e-12)


def test_sweep_matches_analyze_with_overheads():
    kw = {"eta_c": 0.7, "eta_m": 0.8, "kernel_overhead": 5e-6}
    df = cm.sweep("gpt2", "t4", batch=[1, 32], context=[16, 1000], **kw)
    for row in df.itertuples():
        a = cm.decode_step("gpt2", "t4", context=int(row.context), batch=int(row.batch), **kw)
        assert row.time == pytest.approx(a.time, rel=1e-12)


# ---- bad input: ValueError naming the field ------------------------------------------------
@pytest.mark.parametrize(("kwargs", "field"), [
    ({"new_tokens": 0}, "new_tokens"), ({"new_tokens": -3}, "new_tokens"),
    ({"cached_tokens": -1}, "cached_tokens"), ({"batch": 0}, "batch"),
    ({"tp": 64}, "tp"), ({"tp": 3}, "tp"),
    ({"attention": "paged"}, "attention"), ({"causal": "quarter"}, "causal"),
    ({"lm_head": "first"}, "lm_head"), ({"eta_c": 1.5}, "eta_c"), ({"eta_m": 0}, "eta_m"),
])
def test_bad_workload(kwargs, field):
    with pytest.raises(ValueError, match=field):
        cm.analyze("llama3-8b", "a100-80gb", **kwargs)


def test_unknown_dtype_for_hardware():
    with pytest.raises(ValueError, match="dtype"):
        cm.decode_step("gpt2", "t4", context=10, dtype="bf16")   # the T4 has no bf16 path
    with pytest.raises(ValueError, match="dtype"):
        cm.sweep("gpt2", "t4", batch=[1], context=[10], dtype="bf16")


def test_sweep_bad_input():
    with pytest.raises(ValueError, match="phase"):
        cm.sweep("gpt2", "t4", phase="decoding")
    with pytest.raises(ValueError, match="batch"):
        cm.sweep("gpt2", "t4", batch=[0, 1])
    with pytest.raises(ValueError, match="context"):
        cm.sweep("gpt2", "t4", context=[-1])
    with pytest.raises(ValueError, match="tp"):
        cm.sweep("gpt2", "a100-80gb", tp=[1, 24])
    with pytest.raises(ValueError, match="generate"):
        cm.generation("gpt2", "t4", context=10, generate=0)


def test_sweep_fits_no_cache_needs_only_the_weights():
    # GPT2-XL fp16 weights: 2 × 1,557,611,200 = 3,115,222,400 bytes < the T4's 15 GiB. A decode
    # batch of 200 at context 1024 adds 200 × 1025 × 2·48·1600·2 bytes ≈ 63 GB of KV: no fit.
    # The no-cache baseline keeps no KV cache, so the same batch fits (activations aside).
    dec = cm.sweep("gpt2-xl", "t4", batch=[200], context=[1024], phase="decode")
    nc = cm.sweep("gpt2-xl", "t4", batch=[200], context=[1024], phase="no_cache")
    assert not dec["fits"].iloc[0] and nc["fits"].iloc[0]
