"""Reading a local Hugging Face config.json: round trips, and errors that name the field."""

from __future__ import annotations

import json

import pytest

import costmodel as cm
from costmodel.hfconfig import load_config, spec_from_hf_config

# As published on the Hugging Face hub (abridged to the fields that matter plus some noise).
GPT2 = {  # openai-community/gpt2/config.json
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
    "attn_pdrop": 0.1, "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256,
    "initializer_range": 0.02, "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024,
    "n_embd": 768, "n_head": 12, "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1,
    "summary_activation": None, "summary_first_dropout": 0.1, "summary_proj_to_labels": True,
    "summary_type": "cls_index", "summary_use_proj": True, "vocab_size": 50257,
}
LLAMA3_8B = {  # meta-llama/Meta-Llama-3-8B/config.json
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None,
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.40.0.dev0", "use_cache": True, "vocab_size": 128256,
}
MISTRAL_7B = {  # mistralai/Mistral-7B-v0.1/config.json
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.34.0",
    "use_cache": True, "vocab_size": 32000,
}
QWEN2_05B = {  # Qwen/Qwen2-0.5B/config.json
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
    "intermediate_size": 4864, "max_position_embeddings": 131072, "max_window_layers": 24,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "sliding_window": 131072, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "transformers_version": "4.40.1", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936,
}
COST_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "vocab_size",
               "max_context", "gated_mlp", "activation", "norm", "qkv_bias", "out_bias",
               "mlp_bias", "lm_head_bias", "tied_embeddings", "positions")


def write(tmp_path, data) -> str:
    path = tmp_path / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


@pytest.mark.parametrize(("config", "preset"), [
    (GPT2, "gpt2"), (LLAMA3_8B, "llama3-8b"), (MISTRAL_7B, "mistral-7b")])
def test_round_trip_equals_preset(tmp_path, config, preset):
    path = write(tmp_path, config)
    for where in (path, tmp_path, config):  # a file, its folder, or the parsed dict
        spec = spec_from_hf_config(where, name=preset)
        expected = cm.model(preset)
        for field in COST_FIELDS:
            assert getattr(spec, field) == getattr(expected, field), field
        assert cm.param_count(spec) == cm.param_count(expected)


def test_qwen2(tmp_path):
    spec = spec_from_hf_config(write(tmp_path, QWEN2_05B))
    assert (spec.n_layers, spec.d_model, spec.n_heads, spec.n_kv_heads, spec.head_dim) == \
        (24, 896, 14, 2, 64)                      # 896 / 14 = 64
    assert spec.qkv_bias and not spec.out_bias    # Qwen2: bias on q, k, v only
    assert spec.tied_embeddings and spec.gated_mlp and spec.norm == "rmsnorm"
    assert spec.source.startswith("Hugging Face config.json")
    # Hand algebra: 151936·896 + 24·(896·896 + 2·896·128 + 896·896 + (896 + 256) bias
    #   + 3·896·4864 + 2·896) + 896 = 136,134,656 + 24·14,912,384 + 896 = 494,032,768
    assert cm.param_count(spec) == 494_032_768


def test_name_defaults(tmp_path):
    assert spec_from_hf_config(GPT2).name == "gpt2"  # the model_type
    named = GPT2 | {"_name_or_path": "openai-community/gpt2"}
    assert spec_from_hf_config(named).name == "openai-community/gpt2"


def test_null_optional_fields_use_defaults():
    # save_pretrained writes "n_inner": null (= 4 · n_embd) and may write "head_dim": null
    spec = spec_from_hf_config(GPT2 | {"n_inner": None})
    assert spec.d_ff == 4 * 768
    spec = spec_from_hf_config(LLAMA3_8B | {"head_dim": None})
    assert spec.head_dim == 128


def test_explicit_head_dim_and_gqa_default():
    spec = spec_from_hf_config(LLAMA3_8B | {"head_dim": 256})
    assert spec.head_dim == 256
    mha = {k: v for k, v in LLAMA3_8B.items() if k != "num_key_value_heads"}
    assert spec_from_hf_config(mha).n_kv_heads == 32  # absent → MHA


def test_transformers_configs_round_trip():
    transformers = pytest.importorskip("transformers")
    gpt2 = spec_from_hf_config(transformers.GPT2Config().to_dict())
    assert cm.param_count(gpt2) == 124_439_808   # GPT2Config's defaults are GPT-2 small
    llama = spec_from_hf_config(transformers.LlamaConfig(**{
        k: v for k, v in LLAMA3_8B.items() if k not in ("architectures", "model_type")
    }).to_dict())
    assert cm.param_count(llama) == 8_030_261_248


# --- errors -----------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        spec_from_hf_config(tmp_path / "config.json")
    with pytest.raises(ValueError, match="does not exist"):
        spec_from_hf_config(tmp_path)  # a folder without config.json


@pytest.mark.parametrize(("content", "message"), [
    ("{\"model_type\": \"gpt2\",", "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2, 3]", "JSON object"),
    ("\"gpt2\"", "JSON object"),
])
def test_malformed_file(tmp_path, content, message):
    with pytest.raises(ValueError, match=message):
        spec_from_hf_config(write(tmp_path, content))


def test_binary_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ValueError, match="not valid JSON"):
        spec_from_hf_config(path)


@pytest.mark.parametrize(("config", "field"), [
    ({k: v for k, v in GPT2.items() if k != "n_embd"}, "n_embd"),
    ({k: v for k, v in LLAMA3_8B.items() if k != "hidden_size"}, "hidden_size"),
    ({k: v for k, v in MISTRAL_7B.items() if k != "intermediate_size"}, "intermediate_size"),
])
def test_missing_field(config, field):
    with pytest.raises(ValueError, match=f"missing field '{field}'"):
        spec_from_hf_config(config)


@pytest.mark.parametrize(("config", "field"), [
    (GPT2 | {"n_layer": "12"}, "n_layer"),
    (GPT2 | {"n_head": 12.5}, "n_head"),
    (GPT2 | {"n_positions": 0}, "n_positions"),
    (LLAMA3_8B | {"num_attention_heads": True}, "num_attention_heads"),
    (LLAMA3_8B | {"tie_word_embeddings": "no"}, "tie_word_embeddings"),
    (LLAMA3_8B | {"attention_bias": 1}, "attention_bias"),
])
def test_wrong_type(config, field):
    with pytest.raises(ValueError, match=field):
        spec_from_hf_config(config)


def test_unknown_activation():
    with pytest.raises(ValueError, match="activation"):
        spec_from_hf_config(LLAMA3_8B | {"hidden_act": "tanh"})


def test_inconsistent_dims_name_the_spec_field():
    with pytest.raises(ValueError, match="n_kv_heads"):
        spec_from_hf_config(LLAMA3_8B | {"num_key_value_heads": 5})


def test_unsupported_model_type_names_what_it_did_not_understand():
    falcon = {"model_type": "falcon", "hidden_size": 4544, "num_attention_heads": 71,
              "num_hidden_layers": 32, "multi_query": True, "new_decoder_architecture": False,
              "parallel_attn": True, "vocab_size": 65024, "bias": False}
    with pytest.raises(ValueError) as e:
        spec_from_hf_config(falcon)
    msg = str(e.value)
    assert "'falcon'" in msg and "not supported" in msg
    assert "gpt2, llama, mistral, qwen2" in msg
    for field in ("multi_query", "new_decoder_architecture", "parallel_attn"):
        assert field in msg
    for understood in ("hidden_size", "vocab_size", "bias"):
        assert understood not in msg.split("not understood:")[1]


def test_missing_model_type():
    with pytest.raises(ValueError, match="model_type None"):
        spec_from_hf_config({"hidden_size": 8})


def test_load_config_passes_dicts_through():
    assert load_config(GPT2) == GPT2 and load_config(GPT2) is not GPT2
