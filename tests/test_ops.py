"""The per-operator model: hand counts for one layer, MHA as H_kv = H, tensor-parallel splits,
fused vs standard attention traffic, and the substitution identities of docs/ARCHITECTURE.md."""

from __future__ import annotations

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel as cm
from costmodel.ops import Options, operators, total
from costmodel.symbols import TP, B, H, H_kv, L, V, b_a, b_kv, b_w, c, d, d_ff, d_h, q

SETTINGS = settings(max_examples=30, deadline=None)
MATMULS = ("qkv_proj", "out_proj", "mlp_up", "mlp_gate", "mlp_down", "lm_head")


@pytest.fixture(scope="module")
def llama():
    return cm.model("llama3-8b")


def _flops(a, names):
    return a.ops.set_index("op").loc[list(names), "flops"]


def test_llama_layer_matmuls_by_hand(llama):
    # Llama-3-8B, one decode token (B = 1, q = 1, c = 0), per layer (2 FLOPs per multiply-add):
    #   qkv_proj 2·d·(H + 2H_kv)·d_h = 2·4096·(32 + 16)·128 = 50,331,648
    #   out_proj 2·d·d              = 2·4096·4096           = 33,554,432
    #   mlp_up = mlp_gate = mlp_down 2·d·d_ff = 2·4096·14336 = 117,440,512
    #   lm_head 2·d·V = 2·4096·128256 = 1,050,673,152 (once)
    a = cm.analyze(llama, "a100-80gb", batch=1, new_tokens=1, cached_tokens=0)
    f = _flops(a, MATMULS)
    assert f["qkv_proj"] == 32 * 50_331_648
    assert f["out_proj"] == 32 * 33_554_432
    assert f["mlp_up"] == f["mlp_gate"] == f["mlp_down"] == 32 * 117_440_512
    assert f["lm_head"] == 1_050_673_152
    # weights read per layer (bf16): (6144 + 4096)·4096 + 3·4096·14336 + 2 norm vectors
    per_layer = ((6144 + 4096) * 4096 + 3 * 4096 * 14336 + 2 * 4096) * 2
    layer_ops = a.ops[a.ops["count"] == 32]
    assert layer_ops["weight_read"].sum() == 32 * per_layer


def test_mha_when_kv_heads_equal_heads(llama):
    # H_kv = H: qkv_proj = 2·T·d·3d, K/V cache read 2·B·K·d per layer (times b_kv)
    mha = llama.replace(n_kv_heads=32)
    a = cm.analyze(mha, "a100-80gb", batch=3, new_tokens=1, cached_tokens=99)
    ops = a.ops.set_index("op")
    assert ops.loc["qkv_proj", "flops"] == 32 * 2 * 3 * 4096 * 3 * 4096
    assert ops.loc["qk_scores", "kv_read"] == 32 * 3 * 100 * 4096 * 2
    assert ops.loc["kv_write", "kv_write"] == 32 * 2 * 3 * 4096 * 2
    # symbolically: GQA's expression with H_kv = H is the MHA one
    expr = sp.expand(total(llama, "flops", blocks=("attention",)).subs({H_kv: H, TP: 1}))
    mha_hand = L * (2 * B * q * d * 3 * H * d_h + 2 * B * q * H * d_h * d
                    + 4 * B * H * q * (c + q) * d_h + 5 * B * H * q * (c + q)
                    + 3 * B * q * 2 * H * d_h)                      # rotary on q and k
    assert sp.expand(expr - mha_hand) == 0


@SETTINGS
@given(batch=st.integers(1, 64), q_=st.integers(1, 600), c_=st.integers(0, 5000))
def test_tp2_halves_matmul_flops(llama, batch, q_, c_):
    # Megatron TP: heads, KV heads (8/2 = 4), MLP columns and vocabulary rows split in two, so
    # every matmul and the attention products halve exactly; norms, residuals and the
    # embedding are replicated (unchanged).
    kw = {"batch": batch, "new_tokens": q_, "cached_tokens": c_}
    one = cm.analyze(llama, "a100-80gb", tp=1, **kw).ops.set_index("op")
    two = cm.analyze(llama, "a100-80gb", tp=2, **kw).ops.set_index("op")
    for name in (*MATMULS, "qk_scores", "attn_v", "softmax", "rotary", "activation"):
        assert two.loc[name, "flops"] * 2 == one.loc[name, "flops"], name
    for name in ("norm_1", "norm_2", "final_norm", "residual_1", "residual_2", "embedding"):
        assert two.loc[name, "flops"] == one.loc[name, "flops"], name
        assert two.loc[name, "bytes"] == one.loc[name, "bytes"], name


def test_tp_beyond_kv_heads_replicates_kv(llama):
    # TP = 16 > H_kv = 8: each GPU holds ⌈8/16⌉ = 1 KV head (shared by 2 GPUs), 2 query heads:
    # qkv_proj per GPU 2·T·d·(2 + 2·1)·128, not 1/16 of 2·T·d·(32 + 16)·128 (= (1.5 + 1.5)...)
    a = cm.analyze(llama, "h100-sxm", batch=1, new_tokens=1, cached_tokens=0, tp=16)
    assert a.ops.set_index("op").loc["qkv_proj", "flops"] == 32 * 2 * 4096 * 4 * 128
    assert a.ops.set_index("op").loc["out_proj", "flops"] == 32 * 2 * 4096 * 4096 / 16


@SETTINGS
@given(batch=st.integers(1, 128), q_=st.integers(1, 4096), c_=st.integers(0, 8192),
       causal=st.sampled_from(["full", "half"]), kv_cache=st.booleans())
def test_fused_never_moves_more_bytes(llama, batch, q_, c_, causal, kv_cache):
    kw = {"batch": batch, "new_tokens": q_, "cached_tokens": c_, "causal": causal,
          "kv_cache": kv_cache}
    std = cm.analyze(llama, "a100-80gb", **kw)
    fused = cm.analyze(llama, "a100-80gb", attention="fused", **kw)
    assert fused.bytes <= std.bytes
    assert fused.flops == std.flops   # same arithmetic, less traffic


def test_fused_difference_is_the_score_traffic():
    # standard − fused = S written, read, P written, read (4·B·H·q·K·b_a) + the mask (q·K·b_a)
    std = total(cm.model("gpt2"), "bytes", Options())
    fused = total(cm.model("gpt2"), "bytes", Options(attention="fused"))
    diff = sp.expand(std - fused)
    assert sp.expand(diff - L * (4 * B * H / TP * q * (c + q) * b_a + q * (c + q) * b_a)) == 0


def test_causal_half_counts_lower_triangle():
    # prefill of s tokens: A = s(s+1)/2 score pairs instead of s²
    half = cm.prefill("gpt2", "t4", context=100, causal="half").ops.set_index("op")
    full = cm.prefill("gpt2", "t4", context=100).ops.set_index("op")
    assert half.loc["qk_scores", "flops"] * 200 == full.loc["qk_scores", "flops"] * 101


def test_phases_are_substitutions():
    m = cm.model("gpt2")
    pre = cm.prefill(m, "t4", context=64, batch=2)
    same = cm.analyze(m, "t4", batch=2, new_tokens=64, cached_tokens=0)
    assert pre.flops == same.flops and pre.bytes == same.bytes
    ver = cm.verify_step(m, "t4", gamma=4, context=100)
    assert ver.flops == cm.analyze(m, "t4", new_tokens=5, cached_tokens=100).flops
    # the no-cache step writes nothing to a cache and reads none: the K, V it just computed are
    # activations (b_a bytes, act_read): 2 (QKᵀ, PV) · L · B · K · d · 2 bytes of them
    nc = cm.no_cache_step(m, "t4", context=64, batch=2)
    assert nc.ops["kv_write"].sum() == 0 and nc.ops["kv_read"].sum() == 0
    kv_act = 2 * 12 * 2 * 64 * 768 * 2
    with_cache = cm.prefill(m, "t4", context=64, batch=2)  # same reads, from the cache
    assert with_cache.ops["kv_read"].sum() == kv_act
    att = ["qk_scores", "attn_v"]
    assert (nc.ops.set_index("op").loc[att, "act_read"].sum()
            - with_cache.ops.set_index("op").loc[att, "act_read"].sum()) == kv_act
    assert nc.bytes == cm.no_cache_step(m, "t4", context=64, batch=2, kv_bytes=1).bytes


def test_operator_expressions_use_known_symbols():
    allowed = {TP, B, H, H_kv, L, V, b_a, b_kv, b_w, c, d, d_ff, d_h, q}
    for op in operators(cm.model("llama3-8b")):
        for part in ("flops", "bytes", "comm_bytes"):
            assert getattr(op, part).free_symbols <= allowed, (op.name, part)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"attention": "flash3"}, "attention"), ({"causal": "none"}, "causal"),
    ({"lm_head": "first"}, "lm_head"), ({"kv_sharing": "pooled"}, "kv_sharing")])
def test_bad_options(kwargs, field):
    with pytest.raises(ValueError, match=field):
        Options(**kwargs)
