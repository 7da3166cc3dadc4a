r"""Exact parameter count by component, and weight bytes.

With L layers, width d, H query heads and H_kv KV heads of size d_h, MLP width d_ff, vocabulary V
and a learned position table of S rows:

    embeddings   V d
    positions    S d                                 (learned positions only)
    attention    L (d H d_h + 2 d H_kv d_h + H d_h d)  (Q, K, V, O; GQA shrinks K and V)
    attn biases  L ((H + 2 H_kv) d_h + d)            (where the linears carry biases)
    mlp          L k d d_ff                          (k = 3 gated/SwiGLU, 2 otherwise)
    mlp biases   L ((k - 1) d_ff + d)
    norms        (2L + 1) n_norm d                   (n_norm = 2 LayerNorm, 1 RMSNorm)
    lm head      V d (+ V bias)                      (0 when tied to the embeddings)

The structure (which terms exist) comes from the spec's flags; the sizes stay symbolic.
"""

from __future__ import annotations

from functools import cache, lru_cache

import sympy as sp

from costmodel.checks import check_element_bytes
from costmodel.formula import Formula
from costmodel.presets import model as model_preset
from costmodel.specs import ModelSpec
from costmodel.symbols import H, H_kv, L, S, V, b_w, d, d_ff, d_h, model_values
from costmodel.units import exact_number


def _flags(spec: ModelSpec) -> tuple:
    return (spec.gated_mlp, spec.norm, spec.qkv_bias, spec.out_bias, spec.mlp_bias,
            spec.lm_head_bias, spec.tied_embeddings, spec.positions)


@cache
def _components(flags: tuple) -> dict[str, sp.Expr]:
    gated, norm, qkv_bias, out_bias, mlp_bias, lm_head_bias, tied, positions = flags
    k = 3 if gated else 2
    n_norm = 2 if norm == "layernorm" else 1
    zero = sp.Integer(0)
    return {
        "embeddings": V * d,
        "positions": S * d if positions == "learned" else zero,
        "attention": L * (d * H * d_h + 2 * d * H_kv * d_h + H * d_h * d),
        "attention_bias": L * ((H + 2 * H_kv) * d_h * int(qkv_bias) + d * int(out_bias)),
        "mlp": L * k * d * d_ff,
        "mlp_bias": L * ((k - 1) * d_ff + d) if mlp_bias else zero,
        "norms": (2 * L + 1) * n_norm * d,
        "lm_head": (zero if tied else V * d) + (V if lm_head_bias else zero),
    }


def param_components(spec: ModelSpec | str) -> dict[str, Formula]:
    """One Formula per component (embeddings, positions, attention, ..., lm_head)."""
    spec = model_preset(spec)
    return {name: Formula(f"params_{name}", expr, "parameters", f"{name} parameters",
                          symbol=rf"P_{{\mathrm{{{name.replace('_', ' ')}}}}}")
            for name, expr in _components(_flags(spec)).items()}


def param_count_formula(spec: ModelSpec | str) -> Formula:
    """The total parameter count of ``spec``'s architecture as one Formula."""
    spec = model_preset(spec)
    total = sp.Add(*_components(_flags(spec)).values())
    return Formula("param_count", total, "parameters", "total parameters", symbol="P")


@lru_cache(maxsize=4096)
def _breakdown(spec: ModelSpec) -> tuple[tuple[str, int], ...]:
    values = model_values(spec)
    return tuple((name, f.exact(**values)) for name, f in param_components(spec).items())


def param_breakdown(spec: ModelSpec | str) -> dict[str, int]:
    """Exact parameters per component (sums to :func:`param_count`)."""
    return dict(_breakdown(model_preset(spec)))


def param_count(spec: ModelSpec | str) -> int:
    """Exact parameter count (e.g. 124,439,808 for GPT-2, 8,030,261,248 for Llama-3-8B)."""
    return int(sum(v for _, v in _breakdown(model_preset(spec))))


def weight_memory_formula(spec: ModelSpec | str) -> Formula:
    """Weight memory: W = P · b_w bytes."""
    return Formula("weight_memory", param_count_formula(spec).expr * b_w, "bytes",
                   "weight memory", symbol="W")


def weight_memory(spec: ModelSpec | str, weight_bytes: float = 2) -> int | float:
    """Weight memory in bytes: param_count · b_w, for ``weight_bytes`` = b_w bytes per weight
    (int when integral)."""
    return exact_number(param_count(spec) * check_element_bytes("weight_bytes", weight_bytes))
