"""Formula: the lambdify path, the exact path and a plain-Python hand formula agree; LaTeX and
"show your work" carry the expected pieces."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel as cm
from costmodel.batch import MAX_BATCH
from costmodel.formula import Formula
from costmodel.kvcache import KV_BATCH, KV_PER_REQUEST, KV_PER_TOKEN
from costmodel.params import param_count_formula
from costmodel.symbols import L, d, model_values

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def specs(draw):
    n_heads = draw(st.sampled_from([1, 2, 3, 4, 8, 12, 16, 25, 32, 64]))
    n_kv = draw(st.sampled_from([k for k in range(1, n_heads + 1) if n_heads % k == 0]))
    head_dim = draw(st.sampled_from([16, 64, 80, 128]))
    explicit_head_dim = draw(st.booleans())  # head_dim · heads ≠ d_model is allowed
    d_model = n_heads * head_dim if not explicit_head_dim else draw(st.integers(8, 8192))
    llama_like = draw(st.booleans())
    common = dict(n_layers=draw(st.integers(1, 128)), d_model=d_model, n_heads=n_heads,
                  n_kv_heads=n_kv, head_dim=head_dim, d_ff=draw(st.integers(1, 60_000)),
                  vocab_size=draw(st.integers(1, 260_000)),
                  max_context=draw(st.integers(1, 1 << 17)))
    if llama_like:
        return cm.ModelSpec("llama-like", gated_mlp=True, activation="silu", norm="rmsnorm",
                            qkv_bias=False, out_bias=False, mlp_bias=False,
                            tied_embeddings=draw(st.booleans()), positions="rotary", **common)
    return cm.ModelSpec("gpt2-like", **common)


def hand_params(m: cm.ModelSpec) -> int:
    """Parameter count written out in plain Python, one architecture family at a time."""
    L_, d_, H_, K_, h_, f_, V_, S_ = (m.n_layers, m.d_model, m.n_heads, m.n_kv_heads, m.head_dim,
                                      m.d_ff, m.vocab_size, m.max_context)
    attention = d_ * H_ * h_ + 2 * d_ * K_ * h_ + H_ * h_ * d_          # Wq, Wk, Wv, Wo
    if m.gated_mlp:  # Llama: SwiGLU (3 matrices), 2 RMSNorm weights per layer + final
        per_layer = attention + 3 * d_ * f_ + 2 * d_
        head = 0 if m.tied_embeddings else V_ * d_
        return V_ * d_ + L_ * per_layer + d_ + head
    # GPT-2: biases everywhere, 2 LayerNorms (weight + bias) per layer + final, learned positions
    per_layer = (attention + (H_ + 2 * K_) * h_ + d_
                 + 2 * d_ * f_ + f_ + d_ + 2 * 2 * d_)
    return V_ * d_ + S_ * d_ + L_ * per_layer + 2 * d_


@SETTINGS
@given(specs())
def test_param_count_three_ways(m):
    f = param_count_formula(m)
    values = model_values(m)
    expected = hand_params(m)
    assert f.exact(**values) == expected
    assert cm.param_count(m) == expected
    assert int(f(**values)) == expected  # lambdify on Python ints stays exact


@SETTINGS
@given(specs(), st.sampled_from([0.5, 1, 2, 4]), st.integers(1, 1 << 17), st.integers(1, 256))
def test_kv_three_ways(m, b, s, batch):
    values = model_values(m)
    per_token = 2 * m.n_layers * m.n_kv_heads * m.head_dim * b
    assert KV_PER_TOKEN.exact(**values, kv_bytes=b) == per_token
    assert KV_PER_TOKEN(**values, kv_bytes=b) == pytest.approx(per_token, rel=1e-12)
    assert KV_PER_REQUEST.exact(**values, kv_bytes=b, context=s) == s * per_token
    total = KV_BATCH.exact(**values, kv_bytes=b, context=s, batch=batch)
    assert total == batch * s * per_token
    assert KV_BATCH(**values, kv_bytes=b, context=s, batch=batch) == pytest.approx(total)


@SETTINGS
@given(specs(), st.integers(1 << 30, 1 << 38), st.integers(1, 1 << 15))
def test_max_batch_numeric_and_exact(m, memory, context):
    values = dict(model_values(m), context=context, tp=1, weight_bytes=2, kv_bytes=2,
                  memory=memory, mem_util=1, reserved=0, params=cm.param_count(m))
    hand = (memory - 2 * values["params"]) // (context * 2 * m.n_layers * m.n_kv_heads
                                               * m.head_dim * 2)
    assert MAX_BATCH.exact(**values) == hand
    assert int(MAX_BATCH(**values)) == hand


def test_numpy_broadcast():
    values = model_values(cm.model("llama3-8b"))
    got = KV_PER_REQUEST(**values, kv_bytes=2, context=np.array([1024, 2048, 4096]))
    # 131,072 bytes per token (2·32·8·128·2) × 1024, 2048, 4096
    np.testing.assert_array_equal(got, [134_217_728, 268_435_456, 536_870_912])


def test_free_names_and_missing_values():
    assert KV_PER_TOKEN.free_names == ("head_dim", "kv_bytes", "n_kv_heads", "n_layers")
    with pytest.raises(ValueError, match="kv_bytes"):
        KV_PER_TOKEN.exact(n_layers=1, n_kv_heads=1, head_dim=1)
    with pytest.raises(ValueError, match="missing"):
        KV_PER_TOKEN(n_layers=1, n_kv_heads=1)


def test_exact_types():
    f = Formula("f", L * d / 2)
    assert f.exact(n_layers=3, d_model=4) == 6
    assert isinstance(f.exact(n_layers=3, d_model=4), int)
    assert f.exact(n_layers=3, d_model=3) == 4.5
    assert f.exact(n_layers=1, d_model=0.5) == 0.25       # 0.5 is read as exactly 1/2
    with pytest.raises(ValueError, match="d_model"):      # every symbol needs a number
        Formula("g", L * d).exact(n_layers=2)


def test_latex_pieces():
    text = param_count_formula(cm.model("llama3-8b")).latex()
    assert text.startswith("P = ")
    for piece in ("V", "d_{ff}", "H_{kv}", "d_{h}", "L"):
        assert piece in text, piece
    assert "S" not in text.split("=", 1)[1]  # rotary: no position table
    kv = KV_PER_TOKEN.latex()
    assert kv.startswith(r"\mathrm{KV}_{\mathrm{token}} = ")
    assert "b_{kv}" in kv and "H_{kv}" in kv


def test_show_gpt2_count():
    # GPT-2: 124,439,808 parameters (Hugging Face's count for openai-community/gpt2)
    m = cm.model("gpt2")
    shown = param_count_formula(m).show(**model_values(m))
    assert shown.startswith("P = ")
    assert shown.endswith("= 124439808")
    for number in ("50257", "768", "3072", "1024"):  # V, d, d_ff, S substituted
        assert number in shown


def test_show_kv_per_token():
    # 2 · 32 · 8 · 128 · 2 = 131,072 bytes per token for Llama-3-8B
    shown = KV_PER_TOKEN.show(**model_values(cm.model("llama3-8b")), kv_bytes=2)
    assert shown.endswith("= 131072")
    assert r"\cdot" in shown and "128" in shown


def test_show_non_integer_result():
    f = Formula("x", L / 3)
    assert f.show(n_layers=1).endswith("= 0.333333")
