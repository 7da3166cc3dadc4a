"""Every formula of the core for one model, by name: what the app's Formulas page and the
notebooks show. Each entry is the same Formula object the numbers come from."""

from __future__ import annotations

from costmodel.batch import batch_formulas, max_batch_formula
from costmodel.decoding import critical_batch_formula, decode_time_formula
from costmodel.formula import Formula
from costmodel.intensity import attention_formulas
from costmodel.kvcache import kv_formulas
from costmodel.ops import Options, experts_touched, spec_flags, total, total_expr
from costmodel.params import (
    active_param_formula,
    param_components,
    param_count_formula,
    weight_memory_formula,
)
from costmodel.presets import model as model_preset
from costmodel.specs import ModelSpec
from costmodel.speculative import EXPECTED_TOKENS, SPEEDUP
from costmodel.symbols import TP, B, c, q, s
from costmodel.workload import substitute

#: The parts of a modern architecture :func:`architecture_formulas` groups its formulas by.
PARTS = {"moe": "Mixture of experts", "mla": "Multi-head latent attention",
         "window": "Sliding-window attention"}


def architecture_formulas(m: ModelSpec | str,
                          options: Options | None = None) -> dict[str, dict[str, Formula]]:
    """The formulas of ``m``'s modern-architecture parts (:data:`PARTS`), those it has:

    * moe — router and routed-expert parameters (and the shared experts'), the active
      parameters P − (1 − k/E)·P_e, the experts a decode step of B sequences touches,
      U = E (1 − (1 − k/E)^T) with T = B·q = B routed tokens (the operator model's own
      expression), and the MoE weight bytes that step reads;
    * mla — KV bytes per token with the latent cache (r_kv + d_r per layer, serving engines)
      and the expanded one (H (d_n + d_r + d_v), Hugging Face);
    * window — the layer-tokens a request holds, (L − L_w)·s + L_w·min(s, W − 1), and its KV
      bytes in the full-attention and the window layers.
    """
    m = model_preset(m)
    options = options or Options()
    out: dict[str, dict[str, Formula]] = {}
    if m.moe:
        parts = param_components(m)
        moe = {f"params_{k}": parts[k] for k in ("router", "experts", "shared_experts")
               if k in parts}
        moe["active_param_count"] = active_param_formula(m)
        moe["experts_touched"] = Formula(
            "experts_touched", experts_touched(B * q, options.experts).subs(q, 1), "experts",
            "distinct routed experts a decode step of B sequences reaches per MoE layer (each "
            "token picks k of E uniformly; T = B routed tokens)"
            if options.experts == "uniform" else "routed experts read per MoE layer (all: the "
            "pessimistic bound)", symbol="U")
        q_, c_ = substitute("decode", s)
        moe["moe_weight_read_decode"] = Formula(
            "moe_weight_read_decode",
            total_expr(spec_flags(m), "weight_read", options, ("moe",)).subs({q: q_, c: c_}),
            "bytes", "weight bytes a decode step reads in the MoE layers (router, the experts "
            "it touches, shared experts) on one GPU", symbol=r"Q_{\mathrm{w,MoE}}")
        out["moe"] = moe
    if m.mla:
        out["mla"] = {f"kv_per_token_{layout}": kv_formulas(m, layout)["per_token"]
                      for layout in ("absorbed", "expanded")}
    if m.sliding_window and m.window_layers:
        kv = kv_formulas(m, options.mla)
        out["window"] = {"kv_layer_tokens": kv["layer_tokens"],
                         "kv_full_layers": kv["full_layers"],
                         "kv_window_layers": kv["window_layers"]}
    return out


def formulas(m: ModelSpec | str, options: Options | None = None,
             symbolic_solve: bool = False) -> dict[str, Formula]:
    """Name → Formula for ``m``: parameters (total and by component), weights, KV cache (of the
    model's own architecture and ``options.mla`` cache layout), max batch under TP, FLOPs and
    bytes of prefill and of a decode step, attention intensity, speculative decoding, the
    formulas of its modern-architecture parts (:func:`architecture_formulas`); with
    ``symbolic_solve`` also B_crit and the closed-form decode sum (these take a few seconds of
    sympy the first time)."""
    m = model_preset(m)
    options = options or Options()
    out: dict[str, Formula] = {"param_count": param_count_formula(m)}
    out.update({f.name: f for f in param_components(m).values()})
    out["weight_memory"] = weight_memory_formula(m)
    kv = kv_formulas(m, options.mla)
    for key in ("per_token", "per_request", "batch"):
        out[kv[key].name] = kv[key]
    per_gpu = batch_formulas(spec_flags(m), options.mla, options.expert_parallel)
    for key in ("weights_per_gpu", "kv_per_request_per_gpu"):
        out[per_gpu[key].name] = per_gpu[key]
    out["max_batch_size"] = max_batch_formula(m, options.mla, options.expert_parallel)
    for phase in ("prefill", "decode"):
        q_, c_ = substitute(phase, s)
        for quantity, unit in (("flops", "FLOPs"), ("bytes", "bytes")):
            expr = total(m, quantity, options).subs({q: q_, c: c_, TP: 1})
            out[f"{phase}_{quantity}"] = Formula(
                f"{phase}_{quantity}", expr, unit, f"{quantity} of a {phase} pass (all operators)",
                symbol=rf"{'F' if quantity == 'flops' else 'Q'}_{{\mathrm{{{phase}}}}}")
    for phase in ("prefill", "decode"):
        out[f"attention_intensity_{phase}"] = attention_formulas(phase)["intensity"]
    out["expected_tokens"] = EXPECTED_TOKENS
    out["speedup"] = SPEEDUP
    for part in architecture_formulas(m, options).values():
        out.update(part)
    if symbolic_solve:
        out["critical_batch"] = critical_batch_formula(m)
        out["decode_time"] = decode_time_formula(m)
    return out


__all__ = ["PARTS", "architecture_formulas", "formulas"]
