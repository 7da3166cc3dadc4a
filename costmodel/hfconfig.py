"""Read a local Hugging Face ``config.json`` into a ModelSpec (model types gpt2, llama, mistral,
qwen2). Nothing is downloaded: give a path to a file or folder, or the parsed dict."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def load_config(path_or_dict: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """The config as a dict, from a dict, a ``config.json`` path, or a folder holding one."""
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict)
    p = Path(path_or_dict)
    if p.is_dir():
        p = p / "config.json"
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"config.json: {p} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config.json: {p.name} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError("config.json: the file must hold a JSON object")
    return data


def _get_int(cfg: Mapping[str, Any], key: str, default: Any = None) -> int:
    value = default if cfg.get(key) is None else cfg[key]  # JSON null = absent (n_inner)
    if value is None:
        raise ValueError(f"config.json: missing field {key!r}")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"config.json: field {key!r} must be a positive integer, got {value!r}")
    return value


def _get_bool(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"config.json: field {key!r} must be true or false, got {value!r}")
    return value


def _activation(name: Any) -> str:
    name = str(name).lower()
    if "gelu" in name:
        return "gelu"
    if name in ("silu", "swish"):
        return "silu"
    if name == "relu":
        return "relu"
    raise ValueError(f"config.json: activation {name!r} is not understood (gelu, silu, relu)")


def spec_from_hf_config(path_or_dict: str | Path | Mapping[str, Any],
                        name: str | None = None) -> ModelSpec:
    """ModelSpec from a Hugging Face config (see module docstring)."""
    cfg = load_config(path_or_dict)
    model_type = cfg.get("model_type")
    label = name or str(cfg.get("_name_or_path") or model_type or "custom")
    source = f"Hugging Face config.json (model_type {model_type})"
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
    unknown = sorted(k for k in cfg if k not in known)
    raise ValueError(
        f"config.json: model_type {model_type!r} is not supported ({', '.join(SUPPORTED)}); "
        f"fields not understood: {', '.join(unknown) if unknown else 'none'} — "
        "describe the model with a custom ModelSpec instead")
