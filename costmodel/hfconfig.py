"""Read a local Hugging Face ``config.json`` into a ModelSpec. Nothing is downloaded: give a path
to a file or folder, or the parsed dict.

Model types read: gpt2; the Llama family (llama, mistral, qwen2, qwen3, phi3); mixtures of
experts (mixtral, qwen3_moe, gpt_oss); Gemma-2 and Gemma-3 (gemma2, gemma3_text, and gemma3's
text_config); DeepSeek-V2/V3 latent attention (deepseek_v2, deepseek_v3). Every field that
changes the cost is read (sizes, heads, head_dim, biases, norms, windows and the layer pattern,
experts, latent ranks, sinks, q/k norms, partial rotary, the checkpoint's quantization); a field
that changes the cost and is not modelled (linear-attention or state-space layers, an expert
layout other than leading dense layers, an unknown quantization method) is refused by name,
never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from costmodel.checks import MAX_DIM
from costmodel.files import read_json
from costmodel.specs import ModelSpec

LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "phi3")
MOE = ("mixtral", "qwen3_moe", "gpt_oss")
GEMMA = ("gemma2", "gemma3_text")
DEEPSEEK = ("deepseek_v2", "deepseek_v3")
SUPPORTED = ("gpt2", *LLAMA_LIKE, *MOE, *GEMMA, "gemma3", *DEEPSEEK)


#: Fields that change the cost of a pass and are not modelled: refused by name.
_NOT_MODELLED = {
    "linear_conv_kernel_dim": "linear-attention layers", "mamba_d_state": "Mamba layers",
    "ssm_cfg": "state-space layers", "attn_layer_indices": "hybrid attention layers",
    "num_nextn_predict_layers": None,          # DeepSeek's MTP module: not built by HF, no cost
}
#: Fields a public config.json may leave out because the family's configuration class has a
#: default (transformers' Gemma2Config / Gemma3TextConfig defaults).
FAMILY_DEFAULTS = {
    "gemma2": {"tie_word_embeddings": True, "hidden_activation": "gelu_pytorch_tanh"},
    "gemma3_text": {"vocab_size": 262_208, "max_position_embeddings": 131_072,
                    "sliding_window_pattern": 6, "tie_word_embeddings": True,
                    "hidden_activation": "gelu_pytorch_tanh"},
}
_GPT2_FIELDS = {"n_layer", "n_embd", "n_head", "n_inner", "vocab_size", "n_positions",
                "activation_function", "tie_word_embeddings"}
#: Fields the decoder readers use, and fields known to carry no cost information.
_UNDERSTOOD = _GPT2_FIELDS | {
    "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
    "head_dim", "intermediate_size", "max_position_embeddings", "hidden_act",
    "hidden_activation", "attention_bias", "mlp_bias", "partial_rotary_factor",
    "sliding_window", "use_sliding_window", "max_window_layers", "layer_types",
    "sliding_window_pattern", "num_local_experts", "num_experts", "num_experts_per_tok",
    "experts_per_token", "moe_intermediate_size", "decoder_sparse_step", "mlp_only_layers",
    "n_routed_experts", "n_shared_experts", "first_k_dense_replace", "moe_layer_freq",
    "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
    "quantization_config", "text_config",
    "model_type", "architectures", "torch_dtype", "dtype", "transformers_version",
    "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range", "layer_norm_epsilon",
    "rms_norm_eps", "rope_theta", "rope_scaling", "rope_parameters", "use_cache",
    "attention_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop", "bias", "name_or_path",
    "_name_or_path", "tokenizer_class", "pretraining_tp", "n_ctx"}


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


def _get_int(cfg: Mapping[str, Any], key: str, default: Any = None, zero: bool = False) -> int:
    value = default if cfg.get(key) is None else cfg[key]  # JSON null = absent (n_inner)
    if value is None:
        raise ValueError(f"config.json: missing field {key!r}")
    lo = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= MAX_DIM:
        kind = "an integer >= 0" if zero else "a positive integer"
        raise ValueError(f"config.json: field {key!r} must be {kind} (at most 2**31 - 1), got "
                         f"{value!r}")
    return value


def _get_bool(cfg: Mapping[str, Any], key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if value is None:
        value = default
    if not isinstance(value, bool):
        raise ValueError(f"config.json: field {key!r} must be true or false, got {value!r}")
    return value


def _get_number(cfg: Mapping[str, Any], key: str, default: float) -> float:
    value = cfg.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"config.json: field {key!r} must be a number in (0, 1], got {value!r}")
    return float(value)


def _activation(name: Any) -> str:
    text = str(name).lower()
    if "gelu" in text:
        return "gelu"
    if text in ("silu", "swish"):
        return "silu"
    if text == "relu":
        return "relu"
    raise ValueError(f"config.json: activation {name!r} is not understood (gelu, silu, relu)")


#: Cost fields of the families that have them: a config of another family carrying one is
#: refused (its reader would not use it).
_WINDOW_FIELDS = {"sliding_window": "a sliding window", "layer_types": "per-layer attention"}
_MOE_FIELDS = {f: "mixture of experts" for f in (
    "num_local_experts", "num_experts", "n_routed_experts", "num_experts_per_tok",
    "experts_per_token", "moe_intermediate_size", "n_shared_experts", "first_k_dense_replace")}
_MLA_FIELDS = {f: "multi-head latent attention" for f in (
    "kv_lora_rank", "q_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")}
_FAMILY_COST_FIELDS = {
    "gpt2": set(), "llama": set(),
    **{t: set(_WINDOW_FIELDS) for t in ("mistral", "qwen2", "qwen3", "phi3", *GEMMA)},
    **{t: set(_WINDOW_FIELDS) | set(_MOE_FIELDS) for t in MOE},
    **{t: set(_MOE_FIELDS) | set(_MLA_FIELDS) for t in DEEPSEEK},
}


def _refuse_unmodelled(cfg: Mapping[str, Any], model_type: str) -> None:
    for key, what in _NOT_MODELLED.items():
        if what and cfg.get(key) not in (None, 0, False, {}, []):
            raise ValueError(f"config.json: field {key!r} ({what}) changes the cost and is not "
                             "modelled; describe the model with a custom ModelSpec instead")
    allowed = _FAMILY_COST_FIELDS.get(model_type, set())
    for key, what in {**_WINDOW_FIELDS, **_MOE_FIELDS, **_MLA_FIELDS}.items():
        if key in allowed or cfg.get(key) in (None, 0, False, [], {}):
            continue
        if key == "layer_types" and all(t == "full_attention" for t in cfg[key] or []):
            continue
        longest = cfg.get("max_position_embeddings") or 0
        if key == "sliding_window" and isinstance(cfg[key], int) and cfg[key] >= longest:
            continue                     # a window as long as the context limits nothing
        raise ValueError(f"config.json: field {key!r} ({what}) is not part of model_type "
                         f"{model_type!r} and changes the cost; it is not modelled for that "
                         "family — describe the model with a custom ModelSpec instead")


def _layer_types(cfg: Mapping[str, Any], n_layers: int, model_type: str) -> list[str]:
    """Each layer's attention: "full_attention" or "sliding_attention" — from ``layer_types``
    when given, else as the family's configuration class derives it."""
    types = cfg.get("layer_types")
    window = cfg.get("sliding_window")
    if types is not None:
        if not isinstance(types, list) or len(types) != n_layers:
            raise ValueError(f"config.json: field 'layer_types' must list the {n_layers} "
                             f"layers, got {str(types)[:60]!r}")
        unknown = sorted({t for t in types} - {"full_attention", "sliding_attention"})
        if unknown:
            raise ValueError(f"config.json: field 'layer_types' has {unknown} (layers other "
                             "than full or sliding-window attention) and is not modelled")
        return list(types)
    if not window:
        return ["full_attention"] * n_layers
    if model_type in ("qwen2", "qwen3", "qwen3_moe"):
        if not cfg.get("use_sliding_window", False):
            return ["full_attention"] * n_layers
        first = _get_int(cfg, "max_window_layers", n_layers, zero=True)
        return ["sliding_attention" if i >= first else "full_attention"
                for i in range(n_layers)]
    if model_type == "gemma2":
        return ["sliding_attention" if (i + 1) % 2 else "full_attention"
                for i in range(n_layers)]
    if model_type == "gemma3_text":
        period = _get_int(cfg, "sliding_window_pattern", 6)
        return ["sliding_attention" if (i + 1) % period else "full_attention"
                for i in range(n_layers)]
    if model_type == "gpt_oss":
        return ["sliding_attention" if i % 2 == 0 else "full_attention"
                for i in range(n_layers)]
    return ["sliding_attention"] * n_layers     # mistral, mixtral, phi3: every layer


def _window(cfg: Mapping[str, Any], n_layers: int, model_type: str, max_len: int) -> dict:
    types = _layer_types(cfg, n_layers, model_type)
    n = sum(t == "sliding_attention" for t in types)
    if not n:
        return {}
    window = _get_int(cfg, "sliding_window")
    if window >= max_len:          # a window as long as the context never limits anything
        return {}
    return {"sliding_window": window, "window_layers": n}


def _quantization(cfg: Mapping[str, Any], moe: bool) -> dict:
    """The checkpoint's weight formats (:mod:`costmodel.quant`) from ``quantization_config``:
    MXFP4 experts (GPT-OSS), block FP8 (DeepSeek-V3)."""
    q = cfg.get("quantization_config")
    if not q:
        return {}
    if not isinstance(q, Mapping):
        raise ValueError("config.json: field 'quantization_config' must be an object")
    method = str(q.get("quant_method", "")).lower()
    if method == "mxfp4":
        # GPT-OSS: the routed experts in MXFP4; attention, router, embeddings, head in bf16
        if not moe:
            raise ValueError("config.json: quantization_config mxfp4 without experts is not "
                             "modelled")
        return {"expert_weight_format": "mxfp4"}
    if method == "fp8" and list(q.get("weight_block_size") or []) == [128, 128]:
        return {"weight_format": "fp8-block128"}
    raise ValueError(f"config.json: field 'quantization_config' (quant_method {method!r}) is "
                     f"not modelled; known: mxfp4, fp8 with 128×128 blocks")


def _moe(cfg: Mapping[str, Any], model_type: str, n_layers: int) -> dict:
    if model_type == "mixtral":
        return {"n_experts": _get_int(cfg, "num_local_experts"),
                "experts_per_token": _get_int(cfg, "num_experts_per_tok"),
                "d_ff_expert": _get_int(cfg, "intermediate_size")}
    if model_type == "gpt_oss":
        return {"n_experts": _get_int(cfg, "num_local_experts"),
                "experts_per_token": _get_int(cfg, "num_experts_per_tok",
                                              cfg.get("experts_per_token")),
                "d_ff_expert": _get_int(cfg, "intermediate_size"), "router_bias": True,
                "mlp_bias": True}
    if model_type == "qwen3_moe":
        step = _get_int(cfg, "decoder_sparse_step", 1)
        only = cfg.get("mlp_only_layers") or []
        dense = [i for i in range(n_layers) if i in only or (i + 1) % step]
        if dense != list(range(len(dense))):
            raise ValueError("config.json: fields 'mlp_only_layers'/'decoder_sparse_step' put "
                             "dense layers between expert layers; only leading dense layers "
                             "are modelled")
        return {"n_experts": _get_int(cfg, "num_experts"),
                "experts_per_token": _get_int(cfg, "num_experts_per_tok"),
                "d_ff_expert": _get_int(cfg, "moe_intermediate_size"),
                "dense_layers": len(dense)}
    # deepseek_v2 / v3
    if _get_int(cfg, "moe_layer_freq", 1) != 1:
        raise ValueError("config.json: field 'moe_layer_freq' other than 1 is not modelled")
    shared = _get_int(cfg, "n_shared_experts", 0, zero=True)
    width = _get_int(cfg, "moe_intermediate_size")
    out = {"n_experts": _get_int(cfg, "n_routed_experts"),
           "experts_per_token": _get_int(cfg, "num_experts_per_tok"), "d_ff_expert": width,
           "dense_layers": _get_int(cfg, "first_k_dense_replace", 0, zero=True)}
    if shared:
        out.update(n_shared_experts=shared, d_ff_shared=shared * width)
    return out


def _decoder(cfg: Mapping[str, Any], model_type: str, label: str, source: str) -> ModelSpec:
    """Every decoder family but gpt2."""
    cfg = {**FAMILY_DEFAULTS.get(model_type, {}), **{k: v for k, v in cfg.items()
                                                    if v is not None}}
    n_layers = _get_int(cfg, "num_hidden_layers")
    heads = _get_int(cfg, "num_attention_heads")
    hidden = _get_int(cfg, "hidden_size")
    max_len = _get_int(cfg, "max_position_embeddings")
    attention_bias = _get_bool(cfg, "attention_bias", False)
    kw: dict[str, Any] = dict(
        name=label, n_layers=n_layers, d_model=hidden, n_heads=heads,
        n_kv_heads=_get_int(cfg, "num_key_value_heads", heads),
        head_dim=_get_int(cfg, "head_dim", hidden // heads if hidden % heads == 0 else None),
        d_ff=_get_int(cfg, "intermediate_size"), vocab_size=_get_int(cfg, "vocab_size"),
        max_context=max_len, gated_mlp=True,
        activation=_activation(cfg.get("hidden_activation") or cfg.get("hidden_act", "silu")),
        norm="rmsnorm", qkv_bias=attention_bias or model_type == "qwen2",
        out_bias=attention_bias, mlp_bias=_get_bool(cfg, "mlp_bias", False),
        lm_head_bias=False, positions="rotary",
        tied_embeddings=_get_bool(cfg, "tie_word_embeddings", model_type in GEMMA),
        rotary_fraction=_get_number(cfg, "partial_rotary_factor", 1.0), source=source)
    kw.update(_window(cfg, n_layers, model_type, max_len))
    if model_type in ("qwen3", "qwen3_moe", "gemma3_text"):
        kw["qk_norm"] = True
    if model_type in GEMMA:
        kw["norms_per_layer"] = 4
    if model_type == "gpt_oss":
        kw["attention_sinks"] = True
    if model_type in MOE or model_type in DEEPSEEK:
        kw.update(_moe(cfg, model_type, n_layers))
    if model_type in DEEPSEEK:
        kw.update(kv_lora_rank=_get_int(cfg, "kv_lora_rank"),
                  q_lora_rank=_get_int(cfg, "q_lora_rank", 0, zero=True),
                  qk_nope_head_dim=_get_int(cfg, "qk_nope_head_dim"),
                  qk_rope_head_dim=_get_int(cfg, "qk_rope_head_dim"),
                  v_head_dim=_get_int(cfg, "v_head_dim"), n_kv_heads=heads,
                  qkv_bias=False, out_bias=False)
        kw["head_dim"] = kw["qk_rope_head_dim"]
    kw.update(_quantization(cfg, bool(kw.get("n_experts"))))
    return ModelSpec(**kw)


def spec_from_hf_config(path_or_dict: str | Path | Mapping[str, Any],
                        name: str | None = None) -> ModelSpec:
    """ModelSpec from a Hugging Face config (see module docstring)."""
    cfg = load_config(path_or_dict)
    model_type = cfg.get("model_type")
    label = name or str(cfg.get("_name_or_path") or model_type or "custom")[:200]
    if model_type == "gemma3" and isinstance(cfg.get("text_config"), Mapping):
        cfg = {"model_type": "gemma3_text", **cfg["text_config"]}   # the text decoder
        model_type = "gemma3_text"
    source = f"Hugging Face config.json (model_type {model_type})"
    if model_type in SUPPORTED:
        _refuse_unmodelled(cfg, model_type)
    if model_type == "gpt2":
        if cfg.get("quantization_config"):
            _quantization(cfg, False)
        d = _get_int(cfg, "n_embd")
        return ModelSpec(
            name=label, n_layers=_get_int(cfg, "n_layer"), d_model=d,
            n_heads=_get_int(cfg, "n_head"), d_ff=_get_int(cfg, "n_inner", 4 * d),
            vocab_size=_get_int(cfg, "vocab_size"), max_context=_get_int(cfg, "n_positions"),
            activation=_activation(cfg.get("activation_function", "gelu_new")),
            norm="layernorm", positions="learned",
            tied_embeddings=_get_bool(cfg, "tie_word_embeddings", True), source=source)
    if model_type in SUPPORTED:
        return _decoder(cfg, model_type, label, source)
    unknown = sorted(str(k) for k in cfg if k not in _UNDERSTOOD)[:20]
    raise ValueError(
        f"config.json: model_type {model_type if model_type is None else str(model_type)[:40]!r} "
        "is not supported "
        f"({', '.join(SUPPORTED)}); fields not understood: "
        f"{', '.join(unknown) if unknown else 'none'} — describe the model with a custom "
        "ModelSpec instead")
