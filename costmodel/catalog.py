"""Every formula of the core for one model, by name: what the app's Formulas page and the
notebooks show. Each entry is the same Formula object the numbers come from."""

from __future__ import annotations

from costmodel.batch import batch_formulas, max_batch_formula
from costmodel.formula import Formula
from costmodel.intensity import attention_formulas
from costmodel.kvcache import KV_BATCH, KV_PER_REQUEST, KV_PER_TOKEN
from costmodel.ops import Options, spec_flags, total
from costmodel.params import param_components, param_count_formula, weight_memory_formula
from costmodel.presets import model as model_preset
from costmodel.roofline import critical_batch_formula, decode_time_formula
from costmodel.specs import ModelSpec
from costmodel.speculative import EXPECTED_TOKENS, SPEEDUP
from costmodel.symbols import TP, c, q, s
from costmodel.workload import substitute


def formulas(m: ModelSpec | str, options: Options | None = None,
             symbolic_solve: bool = False) -> dict[str, Formula]:
    """Name → Formula for ``m``: parameters (total and by component), weights, KV cache, max
    batch under TP, FLOPs and bytes of prefill and of a decode step, attention intensity,
    speculative decoding; with ``symbolic_solve`` also B_crit and the closed-form decode sum
    (these take a few seconds of sympy the first time)."""
    m = model_preset(m)
    options = options or Options()
    out: dict[str, Formula] = {"param_count": param_count_formula(m)}
    out.update({f.name: f for f in param_components(m).values()})
    out["weight_memory"] = weight_memory_formula(m)
    for f in (KV_PER_TOKEN, KV_PER_REQUEST, KV_BATCH):
        out[f.name] = f
    per_gpu = batch_formulas(spec_flags(m))
    for key in ("weights_per_gpu", "kv_per_request_per_gpu"):
        out[per_gpu[key].name] = per_gpu[key]
    out["max_batch_size"] = max_batch_formula(m)
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
    if symbolic_solve:
        out["critical_batch"] = critical_batch_formula(m)
        out["decode_time"] = decode_time_formula(m)
    return out
