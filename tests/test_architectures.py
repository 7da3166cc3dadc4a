"""Modern architectures held against Hugging Face's own implementations (tests/hf_oracle.py): for
each of the fifteen public configs, the exact parameter count of the full model (HF's class on
the meta device), and on a tiny scale-down of the same structure the matmul FLOPs
FlopCounterMode counts for a prefill and three decode steps and the bytes of the cache object HF
builds — window layers, experts and latent attention included. Then the invariants: one expert
with k = 1 is dense, a window longer than the context is full attention, EP = 1 is TP, MLA's
three modes, and hand-counted MoE, window and MLA numbers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel as cm
from costmodel.hfconfig import spec_from_hf_config

hf_oracle = pytest.importorskip("hf_oracle")
pytest.importorskip("transformers")
FIXTURES = hf_oracle.FIXTURE_NAMES
BATCH, PROMPT, STEPS = hf_oracle.REPORT_BATCH, hf_oracle.REPORT_PROMPT, hf_oracle.REPORT_STEPS
#: How Hugging Face's eager code runs a pass: every q×K score computed (masked afterwards),
#: logits on every position, latent attention re-expanding the whole latent cache each pass.
HF = {"attention": "eager", "causal": "full", "lm_head": "all", "mla": "naive",
      "weight_bytes": 4}
SETTINGS = settings(max_examples=25, deadline=None)


def matmul_flops(a) -> int:
    """Σ FLOPs of the operators FlopCounterMode sees (matmuls and attention products)."""
    return int(round(a.ops.loc[a.ops["kind"].isin(("matmul", "attention")), "flops"].sum()))


@pytest.mark.parametrize("name", FIXTURES)
def test_parameters_exact_against_hf(name):
    cfg = hf_oracle.load_fixture(name)
    assert cm.param_count(spec_from_hf_config(cfg)) == hf_oracle.hf_param_count(cfg).total


@pytest.mark.parametrize("name", FIXTURES)
def test_flops_and_kv_exact_against_hf_at_tiny_scale(name):
    tiny = hf_oracle.tiny_config(hf_oracle.load_fixture(name))
    m = spec_from_hf_config(tiny)
    run = hf_oracle.hf_run(tiny, BATCH, PROMPT, STEPS)
    kw = {**HF, "kv_bytes": run.element_bytes}
    assert cm.param_count(m) == hf_oracle.hf_param_count(tiny).total
    pre = cm.analyze(m, "a100-80gb", batch=BATCH, new_tokens=PROMPT, cached_tokens=0, **kw)
    assert matmul_flops(pre) == run.prefill.total
    for i, counted in enumerate(run.decode):
        step = cm.analyze(m, "a100-80gb", batch=BATCH, new_tokens=1, cached_tokens=PROMPT + i,
                          **kw)
        assert matmul_flops(step) == counted.total, f"decode step {i}"
    # the cache after the prefill and after each step (window layers hold W − 1 tokens)
    totals = [sum(x.nbytes for x in layers)
              for layers in (run.cache_after_prefill, *run.cache_after_steps)]
    assert totals == [cm.kv_cache_bytes(m, PROMPT + i, BATCH, kv_bytes=run.element_bytes,
                                        mla="naive") for i in range(STEPS + 1)]


def test_the_window_layers_hold_w_minus_1_tokens_as_hf_does():
    tiny = hf_oracle.tiny_config(hf_oracle.load_fixture("gemma-3-27b"))
    m = spec_from_hf_config(tiny)
    run = hf_oracle.hf_run(tiny, BATCH, PROMPT, STEPS)
    parts = cm.kv_by_layer_type(m, PROMPT + STEPS, kv_bytes=run.element_bytes)
    window = [x.nbytes for x in run.cache_after_steps[-1]
              if x.layer_class == "DynamicSlidingWindowLayer"]
    full = [x.nbytes for x in run.cache_after_steps[-1]
            if x.layer_class != "DynamicSlidingWindowLayer"]
    assert BATCH * parts["window_layers"] == sum(window)
    assert BATCH * parts["full_layers"] == sum(full)
    assert len(window) == m.window_layers == 5 and len(full) == 1


# ---- hand counts ---------------------------------------------------------------------------
def mixtral():
    return spec_from_hf_config(hf_oracle.load_fixture("mixtral-8x7b-v0.1"))


def test_mixtral_total_and_active_parameters_by_hand():
    # 32 layers × 8 experts × 3 × 4096 × 14336 = 45,097,156,608 routed-expert parameters (HF's
    # split of the same total, RESULTS.md); one token uses 2 of 8: active = total − 6/8 of them
    m = mixtral()
    assert cm.param_count(m) == 46_702_792_704
    assert cm.active_param_count(m) == 46_702_792_704 - 45_097_156_608 * 6 // 8


def test_moe_weights_read_grow_as_experts_fill_up():
    # uniform routing: a decode batch of B tokens touches E(1 − (1 − k/E)^B) experts per layer;
    # Mixtral B = 1: exactly k = 2; B = 4: 8 (1 − 0.75⁴) = 5.46875 of the 8
    m = mixtral()
    per_expert = 3 * 4096 * 14336 * 2          # gate, up, down at 2 bytes
    for batch, touched in ((1, 2), (4, 8 * (1 - 0.75**4))):
        a = cm.decode_step(m, "h100-sxm", 100, batch)
        experts = a.ops[a.ops["op"].str.startswith("experts_") & (a.ops["kind"] == "matmul")]
        assert experts["weight_read"].sum() == pytest.approx(32 * touched * per_expert,
                                                            rel=1e-12)
    every = cm.decode_step(m, "h100-sxm", 100, 1, experts="all")
    experts = every.ops[every.ops["op"].str.startswith("experts_")
                        & (every.ops["kind"] == "matmul")]
    assert experts["weight_read"].sum() == 32 * 8 * per_expert


def test_expert_flops_do_not_depend_on_the_routing_assumption():
    # each token reaches exactly k experts: the FLOPs are the same under either assumption; the
    # weights read differ while the batch touches fewer than all experts (a decode of B = 2),
    # not once it touches them all (a prefill of 2048 tokens: 1 − 0.75^2048 = 1 in float64)
    m = mixtral()
    for a, b, fewer in ((cm.decode_step(m, "h100-sxm", 512, 2),
                         cm.decode_step(m, "h100-sxm", 512, 2, experts="all"), True),
                        (cm.prefill(m, "h100-sxm", 512, 4),
                         cm.prefill(m, "h100-sxm", 512, 4, experts="all"), False)):
        assert a.flops == b.flops
        assert (a.bytes < b.bytes) if fewer else (a.bytes == b.bytes)


def test_expert_parallelism_splits_the_experts_and_adds_all_to_alls():
    m = mixtral()
    tp8 = cm.decode_step(m, "h100-sxm", 1000, 64, tp=8)
    ep8 = cm.decode_step(m, "h100-sxm", 1000, 64, tp=8, ep=8)
    experts = ("experts_up", "experts_gate", "experts_down")
    one, two = tp8.ops.set_index("op"), ep8.ops.set_index("op")
    # the same expert FLOPs per GPU either way: T·k/TP vs T·k/EP assignments, full width vs 1/TP
    for name in experts:
        assert one.loc[name, "flops"] == pytest.approx(two.loc[name, "flops"], rel=1e-12)
    assert "moe_dispatch" in two.index and "moe_dispatch" not in one.index
    # DP attention (TP 1, EP 8): each GPU holds all the attention weights and 1/8 of the batch
    dp = cm.decode_step(m, "h100-sxm", 1000, 64, tp=1, ep=8).ops.set_index("op")
    assert dp.loc["qkv_proj", "flops"] == pytest.approx(8 * one.loc["qkv_proj", "flops"] / 8,
                                                        rel=1e-12)


def test_window_kv_by_hand():
    # Mistral-7B-v0.1 (window 4096 on all 32 layers) at 32k context: 4095 tokens per layer of
    # 2·8·128·2 = 4096 bytes → 32 · 4095 · 4096 = 536,739,840 bytes (0.5 GiB), not the
    # 32 · 32768 · 4096 = 4 GiB a window-less count gives.
    m = cm.model("mistral-7b")
    assert cm.kv_cache_bytes(m, 32_768) == 32 * 4095 * 4096
    assert cm.kv_cache_bytes(m.replace(sliding_window=0, window_layers=0), 32_768) \
        == 32 * 32_768 * 4096


def test_mla_latent_cache_by_hand():
    # DeepSeek-V3: (512 + 64) elements per token per layer × 61 layers × 2 bytes = 70,272 bytes
    # per token, whatever the TP (the latent is shared by the heads); expanded per head:
    # 128 × (128 + 64 + 128) × 61 × 2 = 4,997,120 bytes per token
    m = spec_from_hf_config(hf_oracle.load_fixture("deepseek-v3"))
    assert cm.kv_bytes_per_token(m) == 70_272
    assert cm.kv_bytes_per_token(m, mla="expanded") == 4_997_120
    plan = cm.batch_plan(m, "h200", 4096, tp=8)
    assert plan.kv_bytes_per_request_per_gpu == 4096 * 70_272


def test_mla_modes_differ_where_they_should():
    m = spec_from_hf_config(hf_oracle.load_fixture("deepseek-v3"))
    kw = {"batch": 1, "new_tokens": 1, "cached_tokens": 4096, "tp": 8}
    absorbed, naive = (cm.analyze(m, "h200", mla=x, **kw) for x in ("absorbed", "naive"))
    # naive up-projects the whole latent cache every step: 2·K·r_kv·(H/TP)·(d_n + d_v) per layer
    extra = 61 * 2 * 4097 * 512 * (128 / 8) * (128 + 128)
    up = naive.ops.set_index("op").loc["kv_up", "flops"]
    assert up == pytest.approx(extra, rel=1e-12)
    assert naive.flops > absorbed.flops
    assert absorbed.ops.set_index("op").loc["qk_scores", "kv_read"] == \
        pytest.approx(61 * 4097 * (512 + 64) * 2, rel=1e-12)


# ---- invariants ----------------------------------------------------------------------------
@st.composite
def dense_specs(draw):
    heads = draw(st.sampled_from([2, 4, 8]))
    kv = draw(st.sampled_from([k for k in (1, 2, 4, 8) if heads % k == 0]))
    return cm.ModelSpec("d", draw(st.integers(1, 6)), heads * 16, heads, 512, 4096,
                        n_kv_heads=kv, d_ff=draw(st.sampled_from([64, 96, 128])),
                        gated_mlp=True, activation="silu", norm="rmsnorm", qkv_bias=False,
                        out_bias=False, mlp_bias=False, positions="rotary")


@SETTINGS
@given(dense_specs(), st.integers(1, 16), st.integers(1, 64), st.integers(0, 500))
def test_one_expert_with_k_1_is_dense(m, batch, q, c):
    moe = m.replace(n_experts=1, experts_per_token=1)
    assert cm.param_count(moe) == cm.param_count(m) + m.n_layers * m.d_model   # + the router
    a = cm.analyze(m, "a100-80gb", batch=batch, new_tokens=q, cached_tokens=c)
    b = cm.analyze(moe, "a100-80gb", batch=batch, new_tokens=q, cached_tokens=c)
    router = b.ops.set_index("op").loc["router"]
    mlp = a.ops[a.ops["block"] == "mlp"]
    experts = b.ops[b.ops["op"].str.startswith("experts_")
                    & (b.ops["op"] != "experts_combine")]
    assert experts["flops"].sum() == pytest.approx(mlp["flops"].sum(), rel=1e-12)
    assert experts["weight_read"].sum() == pytest.approx(mlp["weight_read"].sum(), rel=1e-12)
    assert b.flops - router["flops"] == pytest.approx(
        a.flops + b.ops.set_index("op").loc["experts_combine", "flops"], rel=1e-12)


@SETTINGS
@given(dense_specs(), st.integers(1, 8), st.integers(1, 64), st.integers(0, 500),
       st.sampled_from(["full", "half"]))
def test_a_window_longer_than_the_context_is_full_attention(m, batch, q, c, causal):
    windowed = m.replace(sliding_window=c + q + 1 + 7)     # never fills during this pass
    kw = {"batch": batch, "new_tokens": q, "cached_tokens": c, "causal": causal}
    a, b = (cm.analyze(x, "a100-80gb", **kw) for x in (m, windowed))
    assert b.flops == pytest.approx(a.flops, rel=1e-12)
    assert b.bytes == pytest.approx(a.bytes, rel=1e-12)
    assert cm.kv_cache_bytes(windowed, c + q) == cm.kv_cache_bytes(m, c + q)


@SETTINGS
@given(st.integers(1, 64), st.integers(1, 4096))
def test_ep1_is_tp(batch, context):
    m = mixtral()
    a = cm.decode_step(m, "h100-sxm", context, batch, tp=4)
    b = cm.decode_step(m, "h100-sxm", context, batch, tp=4, ep=1)
    assert a.time == b.time


@SETTINGS
@given(st.integers(1, 256), st.integers(1, 8192), st.sampled_from(["full", "half"]))
def test_window_decode_is_monotonic_and_saturates(batch, context, causal):
    m = cm.model("mistral-7b")
    t0 = cm.decode_step(m, "h100-sxm", context, batch, causal=causal).time
    t1 = cm.decode_step(m, "h100-sxm", context + 1, batch, causal=causal).time
    assert t1 >= t0
    if context >= m.sliding_window:
        assert t1 == pytest.approx(t0, rel=1e-12)      # the window is full: constant cost


@SETTINGS
@given(st.integers(1, 300), st.integers(1, 60), st.integers(1, 4))
def test_closed_form_decode_sum_across_the_window_kink(context, steps, batch):
    m = cm.ModelSpec("w", 3, 64, 4, 300, 4096, n_kv_heads=2, gated_mlp=True, norm="rmsnorm",
                     positions="rotary", sliding_window=40, window_layers=2)
    loop = sum(cm.decode_step(m, "a100-80gb", context + k, batch).time for k in range(steps))
    assert cm.decode_steps_time(m, "a100-80gb", context, steps, batch) == pytest.approx(
        loop, rel=1e-9)


def test_moe_decode_intensity_rises_as_experts_fill_up():
    # decode intensity vs batch for Mixtral: the expert weights read grow like 1 − (1 − k/E)^B
    # and saturate at all 8 experts, so intensity keeps rising with B until decode turns
    # compute-bound
    df = cm.sweep(mixtral(), "h100-sxm", batch=np.arange(1, 2049), context=[16])
    assert np.all(np.diff(df["intensity"].to_numpy()) > 0)
    assert df["bound"].iloc[0] == "memory" and df["bound"].iloc[-1] == "compute"
    # a dense model of the same active size flips near the ridge point π/β ≈ 295; the MoE reads
    # more weights per token until its experts are all touched, so it flips far later
    flip = int(df.loc[df["bound"] == "compute", "batch"].iloc[0])
    assert flip > 2 * 989.5e12 / 3.35e12
