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

from functools import cache

import sympy as sp

from costmodel.formula import Formula
from costmodel.specs import ModelSpec
from costmodel.symbols import H, H_kv, L, S, V, b_w, d, d_ff, d_h, model_values


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


def param_components(spec: ModelSpec) -> dict[str, Formula]:
    """One Formula per component (embeddings, positions, attention, ..., lm_head)."""
    return {name: Formula(f"params_{name}", expr, "parameters", f"{name} parameters",
                          symbol=rf"P_{{\mathrm{{{name.replace('_', ' ')}}}}}")
            for name, expr in _components(_flags(spec)).items()}


def param_count_formula(spec: ModelSpec) -> Formula:
    """The total parameter count of ``spec``'s architecture as one Formula."""
    total = sp.Add(*_components(_flags(spec)).values())
    return Formula("param_count", total, "parameters", "total parameters", symbol="P")


def param_breakdown(spec: ModelSpec) -> dict[str, int]:
    """Exact parameters per component (sums to :func:`param_count`)."""
    values = model_values(spec)
    return {name: f.exact(**values) for name, f in param_components(spec).items()}


def param_count(spec: ModelSpec) -> int:
    """Exact parameter count (e.g. 124,439,808 for GPT-2, 8,030,261,248 for Llama-3-8B)."""
    return int(sum(param_breakdown(spec).values()))


def weight_bytes_formula(spec: ModelSpec) -> Formula:
    """Weight memory: W = P · b_w bytes."""
    return Formula("weight_bytes", param_count_formula(spec).expr * b_w, "bytes",
                   "weight memory", symbol="W")


def weight_bytes(spec: ModelSpec, bytes_per_weight: float = 2) -> int | float:
    """Weight memory in bytes: param_count · bytes_per_weight (int when integral)."""
    total = param_count(spec) * bytes_per_weight
    return int(total) if float(total).is_integer() else float(total)
