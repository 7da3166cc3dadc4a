"""KV-cache bytes: per token 2·L·H_kv·d_h·b_kv, per request × s, batch × B."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel as cm

SETTINGS = settings(max_examples=60, deadline=None)


def test_llama3_8b_per_token():
    # 2 (K, V) · 32 layers · 8 KV heads · 128 head dim · 2 bytes = 131,072 bytes
    assert cm.kv_bytes_per_token(cm.model("llama3-8b")) == 131_072


def test_llama3_8b_per_request_at_1024():
    # 2·32·8·128·2·1024 = 134,217,728 bytes = 2**27 = 0.125 GiB — the E0294 text's
    # "KV cache per request (GB) 0.125", its "GB" being 1024**3 bytes
    got = cm.kv_cache_bytes(cm.model("llama3-8b"), context=1024)
    assert got == 134_217_728
    assert got / 2**30 == 0.125
    # E0294 (a): 2048 → 0.25, 4096 → 0.5 ("GB" = GiB)
    assert cm.kv_cache_bytes(cm.model("llama3-8b"), context=2048) / 2**30 == 0.25
    assert cm.kv_cache_bytes(cm.model("llama3-8b"), context=4096) / 2**30 == 0.5


def test_gpt2_xl_per_token():
    # MHA (25 KV heads = 25 query heads): 2 · 48 · 25 · 64 · 2 = 2 · L · d · 2 = 307,200 bytes
    assert cm.kv_bytes_per_token(cm.model("gpt2-xl")) == 307_200
    # fp32 cache: twice that
    assert cm.kv_bytes_per_token(cm.model("gpt2-xl"), kv_bytes=4) == 614_400


def test_gpt2_xl_per_request_and_batch():
    # 307,200 · 1024 tokens = 314,572,800 bytes; × 8 requests = 2,516,582,400 bytes
    m = cm.model("gpt2-xl")
    assert cm.kv_cache_bytes(m, context=1024) == 314_572_800
    assert cm.kv_cache_bytes(m, context=1024, batch=8) == 2_516_582_400


@pytest.mark.parametrize(("kv_bytes", "per_token", "per_request"), [
    (1, 65_536, 67_108_864),        # fp8 / int8: 2·32·8·128·1 = 65,536; × 1024 = 2**26
    (0.5, 32_768, 33_554_432),      # int4: 2·32·8·128·0.5 = 32,768; × 1024 = 2**25
])
def test_llama3_8b_quantized(kv_bytes, per_token, per_request):
    m = cm.model("llama3-8b")
    assert cm.kv_bytes_per_token(m, kv_bytes=kv_bytes) == per_token
    got = cm.kv_cache_bytes(m, context=1024, kv_bytes=kv_bytes)
    assert got == per_request
    assert isinstance(got, int)  # exact bytes stay ints


def test_int4_odd_element_count_gives_half_bytes():
    # e0294-2layer: 2 · 2 layers · 1 KV head · 128 · 0.5 = 256 bytes per token; 1 token → 256
    m = cm.model("e0294-2layer")
    assert cm.kv_bytes_per_token(m, kv_bytes=0.5) == 256
    # a model with an odd element count: 2 · 1 · 1 · 1 · 0.5 = 1 → still exact
    tiny = cm.ModelSpec("tiny", n_layers=1, d_model=1, n_heads=1, vocab_size=2, max_context=4)
    assert cm.kv_bytes_per_token(tiny, kv_bytes=0.25) == 0.5


def test_gqa_shrinks_by_group_size():
    # Llama-3-8B has 32 query heads and 8 KV heads: an MHA cache would be 4× larger
    m = cm.model("llama3-8b")
    mha = m.replace(n_kv_heads=32)
    assert cm.kv_bytes_per_token(mha) == 4 * cm.kv_bytes_per_token(m)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"context": 0}, "context"),
    ({"context": -1}, "context"),
    ({"context": 1.5}, "context"),
    ({"context": 10, "batch": 0}, "batch"),
    ({"context": 10, "kv_bytes": 0}, "kv_bytes"),
    ({"context": 10, "kv_bytes": float("nan")}, "kv_bytes"),
])
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        cm.kv_cache_bytes(cm.model("gpt2"), **kwargs)


# --- properties ---------------------------------------------------------------------------

heads_and_groups = st.sampled_from([1, 2, 4, 8, 16, 32]).flatmap(
    lambda h: st.tuples(st.just(h), st.sampled_from([g for g in (1, 2, 4, 8) if h % g == 0])))


@st.composite
def specs(draw, mha: bool = False):
    n_heads, group = draw(heads_and_groups)
    head_dim = draw(st.sampled_from([16, 32, 64, 80, 128]))
    return cm.ModelSpec(
        "random", n_layers=draw(st.integers(1, 96)), d_model=n_heads * head_dim,
        n_heads=n_heads, n_kv_heads=n_heads if mha else n_heads // group,
        vocab_size=draw(st.integers(2, 200_000)), max_context=4096)


kv_widths = st.sampled_from([0.5, 1, 2, 4])


@SETTINGS
@given(specs(), st.integers(1, 1 << 17), st.integers(1, 1 << 17), st.integers(1, 512), kv_widths)
def test_linear_in_context_and_batch(m, c1, c2, batch, b):
    per_token = cm.kv_bytes_per_token(m, kv_bytes=b)
    one = cm.kv_cache_bytes(m, context=c1, kv_bytes=b)
    assert one == c1 * per_token
    assert cm.kv_cache_bytes(m, context=c1, batch=batch, kv_bytes=b) == batch * one
    assert (cm.kv_cache_bytes(m, context=c1 + c2, kv_bytes=b)
            == one + cm.kv_cache_bytes(m, context=c2, kv_bytes=b))


@SETTINGS
@given(specs(mha=True), kv_widths)
def test_mha_equals_2_L_d_bkv_per_token(m, b):
    # with n_kv_heads = n_heads, H_kv · d_h = d: 2 · L · d · b_kv bytes per token
    assert cm.kv_bytes_per_token(m, kv_bytes=b) == 2 * m.n_layers * m.d_model * b


@SETTINGS
@given(specs(), kv_widths)
def test_per_token_hand_formula(m, b):
    assert cm.kv_bytes_per_token(m, kv_bytes=b) == 2 * m.n_layers * m.n_kv_heads * m.head_dim * b
