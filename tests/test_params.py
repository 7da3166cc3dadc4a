"""Exact parameter counts against Hugging Face's own count and the published totals.

Hugging Face models are built from hand-written configs on the meta device (no memory is
allocated, no weights are downloaded) and counted with ``sum(p.numel() for p in
model.parameters())``. ``parameters()`` yields a shared tensor once, so GPT-2's tied LM head is
counted once, as it should be; Llama and Mistral have a separate ``lm_head``.
"""

from __future__ import annotations

from functools import cache

import pytest

import costmodel as cm
from costmodel.hfconfig import spec_from_hf_config
from costmodel.params import param_components, param_count_formula
from costmodel.symbols import model_values

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def _gpt2_config(n_layer: int, n_embd: int, n_head: int):
    # openai-community/gpt2*/config.json: vocab 50257, n_positions 1024, n_inner null (= 4 d)
    return transformers.GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                                   n_positions=1024, vocab_size=50257)


# Published dims (the Hugging Face config.json of each model).
HF_CONFIGS = {
    "gpt2": lambda: _gpt2_config(12, 768, 12),
    "gpt2-medium": lambda: _gpt2_config(24, 1024, 16),
    "gpt2-large": lambda: _gpt2_config(36, 1280, 20),
    "gpt2-xl": lambda: _gpt2_config(48, 1600, 25),
    # meta-llama/Meta-Llama-3-8B/config.json
    "llama3-8b": lambda: transformers.LlamaConfig(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
        max_position_embeddings=8192, tie_word_embeddings=False),
    # meta-llama/Llama-2-7b-hf/config.json
    "llama2-7b": lambda: transformers.LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
        max_position_embeddings=4096, tie_word_embeddings=False),
    # mistralai/Mistral-7B-v0.1/config.json
    "mistral-7b": lambda: transformers.MistralConfig(
        hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, vocab_size=32000,
        max_position_embeddings=32768, tie_word_embeddings=False),
}


def hf_count(config) -> int:
    """Hugging Face's own parameter count of the causal-LM model for ``config``."""
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


@cache
def hf_count_of(name: str) -> int:
    return hf_count(HF_CONFIGS[name]())


@pytest.mark.parametrize("name", list(HF_CONFIGS))
def test_exact_count_equals_hugging_face(name):
    assert cm.param_count(cm.model(name)) == hf_count_of(name)


@pytest.mark.parametrize("name", list(HF_CONFIGS))
def test_preset_dims_equal_the_hf_config(name):
    # the preset read back from the same config.json fields gives the same spec
    spec = spec_from_hf_config(HF_CONFIGS[name]().to_dict())
    preset = cm.model(name)
    for field in ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff",
                  "vocab_size", "max_context", "gated_mlp", "norm", "tied_embeddings"):
        assert getattr(spec, field) == getattr(preset, field), field


@pytest.mark.parametrize(("name", "published"), [
    # GPT-2 small: 124,439,808 (the count Hugging Face reports for openai-community/gpt2).
    # Hand algebra: V d + S d + L(12 d² + 13 d) + 2 d with V=50257, S=1024, d=768, L=12
    #   = 38,597,376 + 786,432 + 12 · 7,087,872 + 1,536 = 124,439,808
    ("gpt2", 124_439_808),
    # GPT-2 XL: 1,557,611,200 (Hugging Face's count for openai-community/gpt2-xl)
    ("gpt2-xl", 1_557_611_200),
    # Llama-3-8B: 8,030,261,248 (meta-llama/Meta-Llama-3-8B safetensors total).
    # Hand algebra: 2 V d + L(2 d² + 2 d·8·128 + 3 d d_ff + 2 d) + d
    #   = 1,050,673,152 + 32 · 218,112,000 + 4,096 = 8,030,261,248
    ("llama3-8b", 8_030_261_248),
])
def test_published_totals(name, published):
    assert cm.param_count(cm.model(name)) == published
    assert hf_count_of(name) == published


def test_gpt2_hand_algebra_per_component():
    # V d, S d, L(4d² ... ) with d=768, L=12, d_ff=3072, V=50257, S=1024
    b = cm.param_breakdown(cm.model("gpt2"))
    assert b["embeddings"] == 50257 * 768                    # 38,597,376
    assert b["positions"] == 1024 * 768                      # 786,432
    assert b["attention"] == 12 * 4 * 768 * 768              # Q, K, V, O
    assert b["attention_bias"] == 12 * (3 * 768 + 768)      # c_attn and c_proj biases
    assert b["mlp"] == 12 * 2 * 768 * 3072                   # c_fc, c_proj
    assert b["mlp_bias"] == 12 * (3072 + 768)
    assert b["norms"] == (2 * 12 + 1) * 2 * 768              # ln_1, ln_2 per layer + ln_f
    assert b["lm_head"] == 0                                 # tied to wte


def test_llama3_hand_algebra_per_component():
    b = cm.param_breakdown(cm.model("llama3-8b"))
    assert b["embeddings"] == b["lm_head"] == 128256 * 4096  # untied: 525,336,576 each
    assert b["positions"] == 0                               # rotary
    assert b["attention"] == 32 * (2 * 4096 * 4096 + 2 * 4096 * 8 * 128)
    assert b["mlp"] == 32 * 3 * 4096 * 14336                 # gate, up, down
    assert b["attention_bias"] == b["mlp_bias"] == 0
    assert b["norms"] == (2 * 32 + 1) * 4096                 # RMSNorm: weight only


@pytest.mark.parametrize("tie", [False, True])
def test_qwen2_small_config_equals_hugging_face(tie):
    cfg = transformers.Qwen2Config(
        hidden_size=256, intermediate_size=704, num_hidden_layers=3, num_attention_heads=8,
        num_key_value_heads=2, vocab_size=1000, max_position_embeddings=512,
        tie_word_embeddings=tie)
    spec = spec_from_hf_config(cfg.to_dict())
    assert spec.qkv_bias and not spec.out_bias       # Qwen2: q/k/v carry a bias, o_proj not
    assert spec.tied_embeddings is tie
    assert cm.param_count(spec) == hf_count(cfg)


@pytest.mark.parametrize("name", sorted(cm.model_presets()))
def test_breakdown_sums_to_total_and_to_formula(name):
    m = cm.model(name)
    breakdown = cm.param_breakdown(m)
    assert sum(breakdown.values()) == cm.param_count(m) == cm.param_count(m)
    assert set(breakdown) == set(param_components(m))
    assert param_count_formula(m).exact(**model_values(m)) == cm.param_count(m)


@pytest.mark.parametrize("name", ["gpt2", "llama3-8b", "mistral-7b"])
@pytest.mark.parametrize("nbytes", [4, 2, 1, 0.5])
def test_weight_memory_is_count_times_bytes(name, nbytes):
    m = cm.model(name)
    got = cm.weight_memory(m, nbytes)
    assert got == cm.param_count(m) * nbytes
    # every count here is even, so even int4 (0.5 byte) gives a whole number of bytes
    assert isinstance(got, int)


def test_weight_memory_default_is_16_bit():
    # Llama-3-8B in bf16: 2 · 8,030,261,248 = 16,060,522,496 bytes
    assert cm.weight_memory(cm.model("llama3-8b")) == 16_060_522_496


def test_weight_memory_half_byte_of_odd_count_is_a_float():
    # e0294-2layer (V=1000, d=128, L=2, H=1, d_ff=512, S=2048; MLP and LM-head biases, untied,
    # LayerNorm): 128,000 + 262,144 + 131,072 + 262,144 + 1,280 (mlp bias) + 1,280 (norms)
    #   + 129,000 (lm head + bias) = 914,920.  With V=1001: + 128 + 128 + 1 = 915,177 (odd)
    m = cm.model("e0294-2layer")
    assert cm.param_count(m) == 914_920
    odd = m.replace(vocab_size=1001)
    assert cm.param_count(odd) == 915_177
    assert cm.weight_memory(odd, 0.5) == 457_588.5
    assert isinstance(cm.weight_memory(odd, 0.5), float)
