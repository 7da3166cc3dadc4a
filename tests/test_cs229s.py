"""CS229S Project 1 §2 (seeds/003): the inference-math answers, derived from the API and held
against hand algebra from the operator definitions in costmodel/ops.py's docstring.

GPT2-XL: d = 1600, H = 25, L = 48, d_ff = 6400 (= 4d), V = 50257, 16-bit everything (b = 2).
T4 as the text gives it: 300 GB/s, 65 TFLOPS fp16 → ridge 65e12 / 300e9 = 216.67 FLOPs/byte.
FLOPs count a multiply-add as 2.
"""

from __future__ import annotations

import pytest
import sympy as sp

import costmodel as cm
from costmodel.ops import Options, total
from costmodel.symbols import TP, B, H, H_kv, L, b_a, b_kv, b_w, c, d, d_ff, d_h, q

N = sp.Symbol("N", positive=True, integer=True)

D, HEADS, LAYERS, DFF, VOCAB = 1600, 25, 48, 6400, 50257
PEAK, BW = 65e12, 300e9
RIDGE = PEAK / BW  # 216.666... FLOPs/byte
CASES = [(1, 32), (1, 1024), (64, 32), (64, 1024)]

# ---- the constants, by hand from ops.py's operator table (per layer, q = N, c = 0, TP = 1,
# kv_cache=False so K and V are read as activations; H·d_h = d; GPT-2 has QKV/out biases):
#   FLOPs: qkv_proj 2·BN·d·3d = 6d²BN, out_proj 2·BN·d·d = 2d²BN        → C1 = 8d²
#          qk_scores 2·B·H·N·N·d_h = 2d·BN², attn_v the same, softmax 5·B·H·N²
#                                                                      → C2 = 4d + 5H
#   bytes (b per element): weights W_qkv (3d² + 3d) + W_o (d² + d)      → C3 = (4d² + 4d)·b
#          per token: qkv reads x (d) writes QKV (3d); qk_scores reads Q (d) and K (d);
#          attn_v reads V (d) writes O (d); out_proj reads O (d) writes y (d)
#                                                                      → C4 = 10d·b
#          per (sequence, N²): S written, S read, P written, P read, per head → C5 = 4H·b
#          the causal mask, N×N, shared by the batch                   → C6 = b
#   MLP: mlp_up + mlp_down 2·BN·d·4d each = 16d²·BN (matmuls); GELU 8 FLOPs/element on the
#        BN×d_ff hidden (ops.py's ELEMENTWISE_FLOPS) → 8·d_ff·BN more for the whole block;
#        bytes: weights 2·d·d_ff + d_ff + d (with biases); per token: up reads d writes d_ff,
#        GELU reads d_ff writes d_ff, down reads d_ff writes d → (2d + 4·d_ff)·b.
b = 2
C1 = 8 * D**2                       # 20,480,000
C2 = 4 * D + 5 * HEADS              # 6,525
C3 = (4 * D**2 + 4 * D) * b         # 20,492,800 bytes
C4 = 10 * D * b                     # 32,000
C5 = 4 * HEADS * b                  # 200
C6 = b                              # 2
MLP_FLOPS_PER_TOKEN = 16 * D**2 + 8 * DFF            # 41,011,200
MLP_WEIGHT_BYTES = (2 * D * DFF + DFF + D) * b       # 40,976,000
MLP_ACT_BYTES_PER_TOKEN = (2 * D + 4 * DFF) * b      # 57,600


@pytest.fixture(scope="module")
def xl():
    return cm.model("gpt2-xl")


def _same(poly, expected):
    """The polynomial's coefficients equal ``expected`` {(deg_B, deg_N): coefficient}."""
    got = poly.as_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert sp.expand(got[key] - value) == 0, (key, got[key], value)


def _subs_mha(expr):
    """GPT2-XL's structure in symbols: MHA (H_kv = H), d_h = d/H, TP = 1, q = N, c = 0, b = 2."""
    return sp.expand(expr.subs({q: N, c: 0, TP: 1}).subs(
        {H_kv: H, d_h: d / H, b_a: 2, b_w: 2, b_kv: 2}))


def test_mha_flops_coefficients(xl):
    f = _subs_mha(total(xl, "flops", Options(kv_cache=False), blocks=("attention",)))
    poly = sp.Poly(f, B, N)
    # per layer × L: FLOPs = C1·BN + C2·BN², nothing else
    _same(poly, {(1, 1): 8 * L * d**2, (1, 2): (4 * d + 5 * H) * L})
    collected = sp.collect(sp.expand(f / L), [B * N, B * N**2])
    print("MHA FLOPs per layer:", sp.latex(collected))
    assert sp.simplify(collected - (8 * d**2 * B * N + (4 * d + 5 * H) * B * N**2)) == 0
    nums = {d: D, H: HEADS, L: 1}
    assert poly.coeff_monomial(B * N).subs(nums) == C1
    assert poly.coeff_monomial(B * N**2).subs(nums) == C2


def test_mha_memory_coefficients(xl):
    m = _subs_mha(total(xl, "bytes", Options(kv_cache=False), blocks=("attention",)))
    poly = sp.Poly(m, B, N)
    print("MHA bytes per layer:", sp.latex(sp.collect(sp.expand(m / L), [B * N, B * N**2, N**2])))
    # MEM = C3 + C4·BN + C5·BN² + C6·N², per layer
    _same(poly, {(0, 0): (8 * d**2 + 8 * d) * L, (1, 1): 20 * d * L, (1, 2): 8 * H * L,
                 (0, 2): 2 * L})
    nums = {d: D, H: HEADS, L: 1}
    assert poly.coeff_monomial(1).subs(nums) == C3
    assert poly.coeff_monomial(B * N).subs(nums) == C4
    assert poly.coeff_monomial(B * N**2).subs(nums) == C5
    assert poly.coeff_monomial(N**2).subs(nums) == C6


def test_mlp_coefficients(xl):
    f = sp.expand(total(xl, "flops", Options(kv_cache=False), blocks=("mlp",),
                        kinds=("matmul",)).subs({q: N, c: 0, TP: 1, d_ff: 4 * d}))
    _same(sp.Poly(f, B, N), {(1, 1): 16 * d**2 * L})      # 16d²·BN
    whole = _subs_mha(total(xl, "flops", Options(kv_cache=False), blocks=("mlp",)))
    assert whole.subs({d: D, d_ff: DFF, H: HEADS, L: 1}) == MLP_FLOPS_PER_TOKEN * B * N
    mem = _subs_mha(total(xl, "bytes", Options(kv_cache=False), blocks=("mlp",)))
    assert sp.expand(mem.subs({d: D, d_ff: DFF, L: 1})
                     - (MLP_WEIGHT_BYTES + MLP_ACT_BYTES_PER_TOKEN * B * N)) == 0


def _hand_no_cache(batch, n):
    """Attention + MLP blocks of the whole model (× L), from the constants above."""
    t = batch * n
    flops = LAYERS * (C1 * t + C2 * batch * n**2 + MLP_FLOPS_PER_TOKEN * t)
    nbytes = LAYERS * (C3 + C4 * t + C5 * batch * n**2 + C6 * n**2 + MLP_WEIGHT_BYTES
                       + MLP_ACT_BYTES_PER_TOKEN * t)
    return flops, nbytes


@pytest.mark.parametrize(("batch", "n"), CASES)
def test_naive_forward_on_t4(xl, batch, n):
    # Hand figures (FLOPs, bytes, intensity, bound by intensity vs 216.67):
    #   (1, 32):    94,771,200,000      3,098,056,704    30.6  memory
    #   (1, 1024):  3,350,829,465,600   17,521,514,496  191.2  memory
    #   (64, 32):   6,065,356,800,000   12,387,784,704  489.6  compute
    #   (64, 1024): 214,453,085,798,400 929,153,488,896 230.8  compute (just)
    a = cm.no_cache_step(xl, "t4", context=n, batch=batch)
    assert a.hardware.peak("fp16") == PEAK and a.hardware.bandwidth == BW
    assert a.ridge_point == pytest.approx(RIDGE)
    flops, nbytes = _hand_no_cache(batch, n)
    blocks = a.by_block().loc[["attention", "mlp"]].sum()
    assert blocks["flops"] == flops
    assert blocks["bytes"] == nbytes
    intensity = flops / nbytes
    hand_bound = "compute" if intensity > RIDGE else "memory"
    rows = a.ops[a.ops["block"].isin(["attention", "mlp"])]
    model_bound = ("compute" if rows["compute_time"].sum() > rows["memory_time"].sum()
                   else "memory")
    assert model_bound == hand_bound
    # the CS229S estimate max(F/π, Q/β) ≤ Σ per-operator max ≤ F/π + Q/β
    t_hand = max(flops / PEAK, nbytes / BW)
    assert t_hand * (1 - 1e-12) <= blocks["time"] <= (flops / PEAK + nbytes / BW) * (1 + 1e-12)
    # whole model: the blocks plus embedding, norms, residuals and the LM head (last position)
    assert a.flops >= flops and a.bytes >= nbytes
    assert a.bound == ("compute" if a.intensity > RIDGE else "memory")
    print(f"B={batch} N={n}: {flops:.4g} FLOPs, {nbytes:.4g} B, AI {intensity:.1f}, "
          f"{hand_bound}-bound, ~{t_hand * 1e3:.2f} ms (blocks, roofline {blocks['time'] * 1e3:.2f}"
          f" ms; whole model {a.time * 1e3:.2f} ms)")


def test_expected_bounds_by_hand():
    # the table above, recomputed from the C's only (guards the hand numbers themselves)
    assert [_hand_no_cache(bb, n)[0] for bb, n in CASES] == [
        94_771_200_000, 3_350_829_465_600, 6_065_356_800_000, 214_453_085_798_400]
    assert [_hand_no_cache(bb, n)[1] for bb, n in CASES] == [
        3_098_056_704, 17_521_514_496, 12_387_784_704, 929_153_488_896]


@pytest.mark.parametrize(("batch", "n"), CASES)
def test_decode_with_kv_cache(xl, batch, n):
    # §2.2: B new tokens, N−1 cached. Per layer (q = 1, K = N keys):
    #   FLOPs = 8d²·B + (4d + 5H)·B·N  (attention)  +  (16d² + 8·d_ff)·B  (MLP) — no N² term.
    a = cm.decode_step(xl, "t4", context=n - 1, batch=batch)
    expected = LAYERS * (C1 * batch + C2 * batch * n + MLP_FLOPS_PER_TOKEN * batch)
    assert a.by_block().loc[["attention", "mlp"], "flops"].sum() == expected
    # linear in B: the B-fold batch has exactly B times the one-sequence block FLOPs
    one = cm.decode_step(xl, "t4", context=n - 1, batch=1)
    assert a.by_block().loc[["attention", "mlp"], "flops"].sum() == \
        batch * one.by_block().loc[["attention", "mlp"], "flops"].sum()
    # KV cache read per step: 2 (K, V) · B · N · d · b per layer
    assert a.ops.set_index("op").loc[["qk_scores", "attn_v"], "kv_read"].sum() == \
        LAYERS * 2 * batch * n * D * b
    assert a.bound == "memory"   # at most 64 tokens per weight read: far below 216.67


def test_decode_symbolic_has_no_n_squared(xl):
    f = sp.expand(total(xl, "flops", blocks=("attention", "mlp")).subs(
        {q: 1, c: N - 1, TP: 1, H_kv: H, d_h: d / H}))
    poly = sp.Poly(f, B, N)
    assert max(deg_n for (_, deg_n) in poly.as_dict()) == 1
    assert all(deg_b == 1 for (deg_b, _) in poly.as_dict())


def test_speedup_over_recompute(xl):
    for batch in (1, 64):
        ratios = [cm.no_cache_step(xl, "t4", context=n, batch=batch).time
                  / cm.decode_step(xl, "t4", context=n - 1, batch=batch).time
                  for n in (32, 1024)]
        print(f"B={batch}: KV-cache speedup {ratios[0]:.2f}× at N=32, {ratios[1]:.2f}× at N=1024")
        assert ratios[0] > 1
        assert ratios[1] > ratios[0]


def test_speculative_latency_shortcut():
    # §2.3: B = 1 decode is weight-read bound: latency ≈ 2·P / 300 GB/s (P counted by HF):
    #   GPT2     2 · 124,439,808 / 300e9   = 0.8296 ms
    #   GPT2-XL  2 · 1,557,611,200 / 300e9 = 10.384 ms
    # The model reads the LM head (tied, V·d) but only one row of each embedding table, and a
    # little KV and activation traffic: within 3 % at a 31-token context.
    t_small = cm.decode_step("gpt2", "t4", context=31).time
    t_xl = cm.decode_step("gpt2-xl", "t4", context=31).time
    assert t_small == pytest.approx(2 * 124_439_808 / 300e9, rel=0.03)
    assert t_xl == pytest.approx(2 * 1_557_611_200 / 300e9, rel=0.03)
    ratio = t_small / t_xl
    assert ratio == pytest.approx(124_439_808 / 1_557_611_200, rel=0.03)   # 0.0799
    print(f"GPT2 {t_small * 1e6:.0f} µs, GPT2-XL {t_xl * 1e3:.2f} ms, c = {ratio:.4f}")
    # α = 0.75: improvement (1 − α^(γ+1)) / ((1 − α)(γc + 1)), by hand at c = 0.0799:
    #   γ=4: 0.76270 / (0.25 · 1.3196) = 2.312;  γ=5: 0.82202 / (0.25 · 1.3995) = 2.349;
    #   γ=6: 0.86652 / (0.25 · 1.4794) = 2.343.  γ=5 beats 6 iff c > 0.0742 and beats 4 iff
    #   c < 0.1129, so the optimum is 5 for the whole band around 0.08.
    assert cm.speculative.optimal_gamma(alpha=0.75, cost_ratio=ratio) == 5
    c_hand = 124_439_808 / 1_557_611_200
    for g, expected in ((4, 2.312), (5, 2.349), (6, 2.343)):
        assert cm.speculative.speedup(0.75, g, c_hand) == pytest.approx(expected, abs=1e-3)
    assert cm.speculative.optimal_gamma(alpha=0.75, cost_ratio=c_hand) == 5
