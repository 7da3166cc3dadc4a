"""Read a local Hugging Face ``config.json`` into a ModelSpec (model types gpt2, llama,
mistral, qwen2). Nothing is downloaded: give a path to a file or folder, or the parsed dict.

A field that changes the cost and that the operator model does not describe (a sliding window in
use, experts, a quantization scheme, latent attention, linear-attention or state-space layers) is
refused by name, never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from costmodel.checks import MAX_DIM
from costmodel.files import read_json
from costmodel.specs import ModelSpec

SUPPORTED = ("gpt2", "llama", "mistral", "qwen2")

# Fields each reader uses, and fields it knows carry no cost information.
_GPT2_FIELDS = {"n_layer", "n_embd", "n_head", "n_inner", "vocab_size", "n_positions",
                "activation_function", "tie_word_embeddings"}
_LLAMA_FIELDS = {"num_hidden_layers", "hidden_size", "num_attention_heads",
                 "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size",
                 "max_position_embeddings", "hidden_act", "attention_bias", "mlp_bias",
                 "tie_word_embeddings"}
_HARMLESS = {"model_type", "architectures", "torch_dtype", "dtype", "transformers_version",
             "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range",
             "layer_norm_epsilon", "rms_norm_eps", "rope_theta", "rope_scaling", "use_cache",
             "attention_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "summary_type",
             "summary_use_proj", "summary_activation", "summary_proj_to_labels",
             "summary_first_dropout", "task_specific_params", "n_ctx", "scale_attn_weights",
             "reorder_and_upcast_attn", "scale_attn_by_inverse_layer_idx", "sliding_window",
             "use_sliding_window", "max_window_layers", "pretraining_tp", "name_or_path",
             "_name_or_path", "output_past", "bias", "layer_types", "tokenizer_class"}
#: Fields that change the cost of a pass and are not modelled: refused by name.
_NOT_MODELLED = {
    "num_local_experts": "mixture of experts", "num_experts": "mixture of experts",
    "n_routed_experts": "mixture of experts", "num_experts_per_tok": "mixture of experts",
    "moe_intermediate_size": "mixture of experts", "n_shared_experts": "mixture of experts",
    "quantization_config": "quantized weights",
    "kv_lora_rank": "multi-head latent attention", "q_lora_rank": "multi-head latent attention",
    "linear_conv_kernel_dim": "linear-attention layers", "mamba_d_state": "Mamba layers",
    "ssm_cfg": "state-space layers", "attn_layer_indices": "hybrid attention layers",
}


def load_config(path_or_dict: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The config as a dict, from a dict, a ``config.json`` path, or a folder holding one."""
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict)
    p = Path(path_or_dict)
    if p.is_dir():
        p = p / "config.json"
    data = read_json(p, "config.json")
    if not isinstance(data, dict):
        raise ValueError("config.json: the file must hold a JSON object")
    return data


def _get_int(cfg: Mapping[str, Any], key: str, default: Any = None) -> int:
    value = default if cfg.get(key) is None else cfg[key]  # JSON null = absent (n_inner)
    if value is None:
        raise ValueError(f"config.json: missing field {key!r}")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_DIM:
        raise ValueError(f"config.json: field {key!r} must be a positive integer (at most "
                         f"2**31 - 1), got {value!r}")
    return value


def _get_bool(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"config.json: field {key!r} must be true or false, got {value!r}")
    return value


def _activation(name: Any) -> str:
    text = str(name).lower()
    if "gelu" in text:
        return "gelu"
    if text in ("silu", "swish"):
        return "silu"
    if text == "relu":
        return "relu"
    raise ValueError(f"config.json: activation {name!r} is not understood (gelu, silu, relu)")


def _refuse_unmodelled(cfg: Mapping[str, Any]) -> None:
    """Raise naming the first field that changes the cost and is not modelled."""
    for key, what in _NOT_MODELLED.items():
        if cfg.get(key) not in (None, 0, False, {}):
            raise ValueError(f"config.json: field {key!r} ({what}) changes the cost and is not "
                             "modelled; describe the model with a custom ModelSpec instead")
    window = cfg.get("sliding_window")
    in_use = cfg.get("use_sliding_window", cfg.get("model_type") != "qwen2")
    max_len = cfg.get("max_position_embeddings") or cfg.get("n_positions")
    if window not in (None, 0) and in_use and not (isinstance(max_len, int)
                                                    and isinstance(window, int)
                                                    and window >= max_len):
        raise ValueError(f"config.json: field 'sliding_window' ({window!r}: attention limited "
                         "to a window) changes the KV cache and is not modelled")
    types = cfg.get("layer_types")
    if isinstance(types, list) and any(t != "full_attention" for t in types):
        raise ValueError("config.json: field 'layer_types' (layers other than full attention) "
                         "changes the cost and is not modelled")


def spec_from_hf_config(path_or_dict: str | Path | Mapping[str, Any],
                        name: str | None = None) -> ModelSpec:
    """ModelSpec from a Hugging Face config (see module docstring)."""
    cfg = load_config(path_or_dict)
    model_type = cfg.get("model_type")
    label = name or str(cfg.get("_name_or_path") or model_type or "custom")[:200]
    source = f"Hugging Face config.json (model_type {model_type})"
    if model_type in SUPPORTED:
        _refuse_unmodelled(cfg)
    if model_type == "gpt2":
        d = _get_int(cfg, "n_embd")
        return ModelSpec(
            name=label, n_layers=_get_int(cfg, "n_layer"), d_model=d,
            n_heads=_get_int(cfg, "n_head"), d_ff=_get_int(cfg, "n_inner", 4 * d),
            vocab_size=_get_int(cfg, "vocab_size"), max_context=_get_int(cfg, "n_positions"),
            activation=_activation(cfg.get("activation_function", "gelu_new")),
            norm="layernorm", positions="learned",
            tied_embeddings=_get_bool(cfg, "tie_word_embeddings", True), source=source)
    if model_type in ("llama", "mistral", "qwen2"):
        heads = _get_int(cfg, "num_attention_heads")
        hidden = _get_int(cfg, "hidden_size")
        qkv_bias = model_type == "qwen2" or _get_bool(cfg, "attention_bias", False)
        return ModelSpec(
            name=label, n_layers=_get_int(cfg, "num_hidden_layers"), d_model=hidden,
            n_heads=heads, n_kv_heads=_get_int(cfg, "num_key_value_heads", heads),
            head_dim=_get_int(cfg, "head_dim", hidden // heads if hidden % heads == 0 else None),
            d_ff=_get_int(cfg, "intermediate_size"), vocab_size=_get_int(cfg, "vocab_size"),
            max_context=_get_int(cfg, "max_position_embeddings"), gated_mlp=True,
            activation=_activation(cfg.get("hidden_act", "silu")), norm="rmsnorm",
            qkv_bias=qkv_bias,
            out_bias=model_type != "qwen2" and _get_bool(cfg, "attention_bias", False),
            mlp_bias=_get_bool(cfg, "mlp_bias", False), lm_head_bias=False,
            tied_embeddings=_get_bool(cfg, "tie_word_embeddings", False), positions="rotary",
            source=source)
    known = _GPT2_FIELDS | _LLAMA_FIELDS | _HARMLESS
    unknown = sorted(str(k) for k in cfg if k not in known)
    raise ValueError(
        f"config.json: model_type {model_type!r} is not supported ({', '.join(SUPPORTED)}); "
        f"fields not understood: {', '.join(unknown) if unknown else 'none'} — "
        "describe the model with a custom ModelSpec instead")
