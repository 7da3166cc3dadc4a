r"""Exact parameter count by component, and weight bytes.

With L layers, width d, H query heads and H_kv KV heads of size d_h, MLP width d_ff, vocabulary V
and a learned position table of S rows:

    embeddings   V d
    positions    S d                                 (learned positions only)
    attention    L (d H d_h + 2 d H_kv d_h + H d_h d)  (Q, K, V, O; GQA shrinks K and V)
    attn biases  L ((H + 2 H_kv) d_h + d)            (where the linears carry biases)
    mlp          L k d d_ff                          (k = 3 gated/SwiGLU, 2 otherwise)
    mlp biases   L ((k - 1) d_ff + d)
    norms        (n L + 1) n_norm d                  (n = 2 norms per layer, 4 in Gemma-2/3;
                                                      n_norm = 2 LayerNorm, 1 RMSNorm)
    lm head      V d (+ V bias)                      (0 when tied to the embeddings)

and where a model has them:

    qk norms     2 L d_h                             (per-head q and k RMSNorm weights)
    sinks        L H                                 (one sink logit per head)
    attention    L (d r_q + r_q + r_q H (d_n + d_r)   (multi-head latent attention: q through
      (MLA)        + d (r_kv + d_r) + r_kv             a rank-r_q latent or d H (d_n + d_r)
                   + r_kv H (d_n + d_v) + H d_v d)     directly; K, V through rank r_kv)
    mlp          L_d k d d_ff                        (dense layers only in a MoE: L_d of them)
    router       (L − L_d)(d E (+ E bias))
    experts      (L − L_d) E k d f_e (+ E ((k − 1) f_e + d) biases)
    shared       (L − L_d) k d f_s

The *active* parameters of a MoE are those one token uses: every expert's share replaced by
k of the E experts. The structure (which terms exist) comes from the spec; the sizes stay
symbolic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache

import sympy as sp

from costmodel.checks import check_element_bytes
from costmodel.formula import Formula
from costmodel.ops import Structure, layer_counts, spec_flags
from costmodel.presets import model as model_preset
from costmodel.quant import Format, weight_format
from costmodel.specs import ModelSpec
from costmodel.symbols import (
    E,
    H,
    H_kv,
    L,
    L_d,
    S,
    V,
    b_w,
    b_we,
    d,
    d_ff,
    d_h,
    d_n,
    d_r,
    d_v,
    f_e,
    f_s,
    k_e,
    model_values,
    r_kv,
    r_q,
)
from costmodel.units import exact_number

#: Components that only a mixture of experts has, and the routed experts among them.
EXPERT_COMPONENTS = ("experts", "expert_bias")


def _flags(spec: ModelSpec) -> tuple[Structure, bool]:
    return spec_flags(spec), spec.tied_embeddings


@cache
def _components(flags: tuple[Structure, bool]) -> dict[str, sp.Expr]:
    st, tied = flags
    k = 3 if st.gated else 2
    n_norm = 2 if st.norm == "layernorm" else 1
    zero = sp.Integer(0)
    dense_layers, moe_layers = layer_counts(st.moe, L - L_d)
    if st.mla:
        q_part = (d * r_q + r_q + r_q * H * (d_n + d_r)) if st.q_lora else d * H * (d_n + d_r)
        attention = L * (q_part + d * (r_kv + d_r) + r_kv + r_kv * H * (d_n + d_v) + H * d_v * d)
    else:
        attention = L * (d * H * d_h + 2 * d * H_kv * d_h + H * d_h * d)
    out = {
        "embeddings": V * d,
        "positions": S * d if st.positions == "learned" else zero,
        "attention": attention,
        "attention_bias": zero if st.mla else
        L * ((H + 2 * H_kv) * d_h * int(st.qkv_bias) + d * int(st.out_bias)),
        "mlp": dense_layers * k * d * d_ff,
        "mlp_bias": dense_layers * ((k - 1) * d_ff + d) if st.mlp_bias else zero,
        "norms": (st.norms_per_layer * L + 1) * n_norm * d,
        "lm_head": (zero if tied else V * d) + (V if st.lm_head_bias else zero),
    }
    if st.qk_norm:
        out["qk_norm"] = L * 2 * d_h
    if st.sinks:
        out["sinks"] = L * H
    if st.moe != "none":
        out["router"] = moe_layers * (d * E + (E if st.router_bias else 0))
        out["experts"] = moe_layers * E * k * d * f_e
        if st.mlp_bias:
            out["expert_bias"] = moe_layers * E * ((k - 1) * f_e + d)
        if st.shared_experts:
            out["shared_experts"] = moe_layers * k * d * f_s
    return out


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


def expert_param_count(spec: ModelSpec | str) -> int:
    """Parameters of the routed experts (0 for a dense model)."""
    return int(sum(v for name, v in _breakdown(model_preset(spec))
                   if name in EXPERT_COMPONENTS))


def active_param_formula(spec: ModelSpec | str) -> Formula:
    """Active parameters, those one token uses: every parameter but the routed experts', plus
    k of the E experts of every MoE layer, P_act = P − (1 − k/E)·P_e (= P for a dense model).
    The input embedding counts (one row of it is read per token); vendors differ on that."""
    spec = model_preset(spec)
    comps = _components(_flags(spec))
    experts = sp.Add(*(comps[name] for name in EXPERT_COMPONENTS if name in comps))
    active = sp.Add(*comps.values()) - (1 - k_e / E) * experts if spec.moe \
        else sp.Add(*comps.values())
    return Formula("active_param_count", active, "parameters",
                   "active parameters per token (all but the routed experts, plus k/E of them)",
                   symbol=r"P_{\mathrm{active}}")


@lru_cache(maxsize=4096)
def _active(spec: ModelSpec) -> int:
    return int(active_param_formula(spec).exact(**model_values(spec)))


def active_param_count(spec: ModelSpec | str) -> int:
    """Parameters one token uses: all but the routed experts, plus k of the E experts of every
    MoE layer (P − (1 − k/E)·P_experts, :func:`active_param_formula`; = P for a dense model)."""
    return _active(model_preset(spec))


@dataclass(frozen=True)
class Precision:
    """Bytes per weight and per routed-expert weight of an analysis, and the formats they come
    from (None: a bare byte width)."""

    weight_bytes: float
    expert_weight_bytes: float
    format: Format | None = None
    expert_format: Format | None = None


def resolve_weight_bytes(spec: ModelSpec, weight_bytes: float | None = None,
                         expert_weight_bytes: float | None = None, quant: str | None = None,
                         expert_quant: str | None = None) -> Precision:
    """The weight widths of an analysis, first found of: a format given (``quant``, and
    ``expert_quant`` for the routed experts), a byte width given (``weight_bytes``,
    ``expert_weight_bytes``), the published checkpoint's formats (``spec.weight_format``,
    ``spec.expert_weight_format``), 16-bit. A dense width or format given alone applies to the
    experts too."""
    if quant is not None and weight_bytes is not None:
        raise ValueError("quant: give a weight format or weight_bytes, not both")
    if expert_quant is not None and expert_weight_bytes is not None:
        raise ValueError("expert_quant: give a format or expert_weight_bytes, not both")
    given = quant is not None or weight_bytes is not None
    fmt = weight_format(quant) if quant is not None else None
    if fmt is None and not given and spec.weight_format:
        fmt = weight_format(spec.weight_format)
    wb = fmt.weight_bytes if fmt else (weight_bytes if weight_bytes is not None else 2)
    efmt = weight_format(expert_quant) if expert_quant is not None else None
    if efmt is None and expert_weight_bytes is None:
        if not given and spec.expert_weight_format:
            efmt = weight_format(spec.expert_weight_format)
        elif fmt is not None:
            efmt = fmt
    ewb = efmt.weight_bytes if efmt else (expert_weight_bytes if expert_weight_bytes
                                          is not None else wb)
    return Precision(check_element_bytes("weight_bytes", wb),
                     check_element_bytes("expert_weight_bytes", ewb), fmt, efmt)


def weight_memory_formula(spec: ModelSpec | str) -> Formula:
    """Weight memory: W = P · b_w bytes (routed experts at b_we: (P − P_e)·b_w + P_e·b_we)."""
    spec = model_preset(spec)
    total = param_count_formula(spec).expr
    if spec.moe:
        experts = sp.Add(*(f.expr for name, f in param_components(spec).items()
                           if name in EXPERT_COMPONENTS))
        return Formula("weight_memory", (total - experts) * b_w + experts * b_we, "bytes",
                       "weight memory", symbol="W")
    return Formula("weight_memory", total * b_w, "bytes", "weight memory", symbol="W")


def weight_memory(spec: ModelSpec | str, weight_bytes: float | None = None,
                  expert_weight_bytes: float | None = None) -> int | float:
    """Weight memory in bytes: (P − P_e)·b_w + P_e·b_we, for b_w = ``weight_bytes`` bytes per
    weight and b_we per routed-expert weight (see :func:`resolve_weight_bytes`; int when
    integral)."""
    spec = model_preset(spec)
    p = resolve_weight_bytes(spec, weight_bytes, expert_weight_bytes)
    experts = expert_param_count(spec)
    return exact_number((param_count(spec) - experts) * p.weight_bytes
                        + experts * p.expert_weight_bytes)
