"""Attention arithmetic intensity: E0294 Assignment 4 Problem 1(c)/(d) (seeds/002) — the text's
printed values, the exact counts beside them, batched decode, and the limits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel as cm

SETTINGS = settings(max_examples=30, deadline=None)
NN, DD = 1024, 128


def test_e0294_printed_values():
    # The text (ques1d.py): prefill (4N²d + 5N²) / ((4Nd + 3N² + Nd)·2)
    #   = 542,113,792 / (3,801,088 · 2) = 71.310;  decode (4Nd + 5N) / (((2N+1)d + 3N)·2)
    #   = 529,408 / (265,344 · 2) = 0.998
    assert round(cm.attention_intensity(NN, DD, "prefill", convention="e0294"), 3) == 71.310
    assert round(cm.attention_intensity(NN, DD, "decode", convention="e0294"), 3) == 0.998
    counts = cm.attention_counts(NN, DD, "prefill", convention="e0294")
    assert counts["flops"] == 542_113_792
    assert counts["bytes"] == 3_801_088 * 2


def test_exact_counts_beside_them():
    # Algorithm 0 counted in full (one head, b = 2):
    #   prefill FLOPs 4N²d + 5N² = 536,870,912 + 5,242,880 = 542,113,792
    #           bytes (4Nd + 4N²)·2 = (524,288 + 4,194,304)·2 = 9,437,184 → 57.4444…
    #   decode  FLOPs 4Nd + 5N = 524,288 + 5,120 = 529,408
    #           bytes (2Nd + 2d + 4N)·2 = (262,144 + 256 + 4,096)·2 = 532,992 → 0.99328
    pre = cm.attention_counts(NN, DD, "prefill")
    assert pre["flops"] == 542_113_792
    assert pre["bytes"] == 9_437_184
    assert pre["intensity"] == pytest.approx(542_113_792 / 9_437_184, rel=1e-12)  # 57.444
    dec = cm.attention_counts(NN, DD, "decode")
    assert dec["flops"] == 529_408
    assert dec["bytes"] == 532_992
    assert dec["intensity"] == pytest.approx(529_408 / 532_992, rel=1e-12)        # 0.99328


def test_symbolic_formulas_are_the_hand_ones():
    import sympy as sp

    from costmodel.symbols import B, N, b_e
    from costmodel.symbols import d_h as d
    f = cm.attention_formulas("prefill")
    assert sp.expand(f["flops"].expr - (4 * N**2 * d + 5 * N**2)) == 0
    assert sp.expand(f["bytes"].expr - (4 * N * d + 4 * N**2) * b_e) == 0
    g = cm.attention_formulas("decode")
    # decode of B requests, each with its own K/V: both × B
    assert sp.expand(g["flops"].expr - B * (4 * N * d + 5 * N)) == 0
    assert sp.expand(g["bytes"].expr - B * (2 * N * d + 2 * d + 4 * N) * b_e) == 0
    shared = cm.attention_formulas("decode", kv="shared")
    assert sp.expand(shared["bytes"].expr - (2 * N * d + B * (2 * d + 4 * N)) * b_e) == 0


def test_batched_decode_per_request_is_flat():
    # each request reads its own K and V: FLOPs and bytes both × B → intensity independent of B
    bs = np.array([1, 2, 4, 8, 16, 64, 256])
    ai = np.broadcast_to(cm.attention_intensity(NN, DD, "decode", bs), bs.shape)
    assert np.allclose(ai, 529_408 / 532_992, rtol=1e-12)


def test_batched_decode_shared_kv_rises_to_limit():
    # one K/V shared by B queries: bytes (2Nd + B(2d + 4N))·b, FLOPs B(4Nd + 5N).
    # B → ∞: (4Nd + 5N)/((2d + 4N)·b) = 529,408/8,704 = 60.82 at N=1024, d=128, b=2;
    # then N → ∞: (4d + 5)/(4b) = 517/8 = 64.625 (not 128.125: that is neither limit).
    bs = np.array([1, 2, 4, 8, 16, 64, 256, 4096, 10**6])
    ai = cm.attention_intensity(NN, DD, "decode", bs, kv="shared")
    assert np.all(np.diff(ai) > 0)
    assert ai[0] == pytest.approx(529_408 / 532_992)
    hand = bs * 529_408 / ((2 * NN * DD + bs * (2 * DD + 4 * NN)) * 2)
    assert np.allclose(ai, hand, rtol=1e-12)
    b_limit = 529_408 / 8_704
    assert ai[-1] < b_limit and ai[-1] == pytest.approx(b_limit, rel=1e-4)
    assert b_limit < (4 * DD + 5) / (4 * 2) == 64.625


@SETTINGS
@given(d=st.integers(1, 512), b=st.sampled_from([1, 2, 4]), n=st.integers(1, 5000))
def test_prefill_intensity_rises_toward_limit(d, b, n):
    # exact prefill AI = N(4d + 5) / ((4d + 4N)·b): increasing in N, below (4d + 5)/(4b)
    lo = cm.attention_intensity(n, d, "prefill", bytes_per_element=b)
    hi = cm.attention_intensity(n + 1, d, "prefill", bytes_per_element=b)
    limit = (4 * d + 5) / (4 * b)
    assert lo < hi < limit
    assert lo == pytest.approx(n * (4 * d + 5) / ((4 * d + 4 * n) * b), rel=1e-12)


def test_prefill_limit_reached():
    big = cm.attention_intensity(10**9, DD, "prefill")
    assert big == pytest.approx(64.625, rel=1e-6)


def test_fused_prefill_drops_quadratic_traffic():
    # FlashAttention: read Q, K, V and write O only → 4Nd·b bytes, same FLOPs
    f = cm.attention_counts(NN, DD, "prefill", attention="fused")
    assert f["bytes"] == 4 * NN * DD * 2
    assert f["flops"] == 542_113_792


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"phase": "verify"}, "phase"), ({"kv": "global"}, "kv"),
    ({"convention": "cs229s"}, "convention"), ({"n": 0}, "n"), ({"d": -1}, "d"),
    ({"batch": 0}, "batch"), ({"bytes_per_element": 0}, "bytes_per_element")])
def test_bad_input_names_field(kwargs, field):
    args = {"n": NN, "d": DD, "phase": "prefill", **kwargs}
    with pytest.raises(ValueError, match=field):
        cm.attention_intensity(**args)


def test_lists_broadcast_like_arrays():
    # plain Python lists are accepted wherever numpy arrays are
    from_list = cm.attention_intensity([128, 1024], 128, "decode", batch=[1, 2], kv="shared")
    from_array = cm.attention_intensity(np.array([128, 1024]), 128, "decode",
                                        batch=np.array([1, 2]), kv="shared")
    assert np.allclose(from_list, from_array)
