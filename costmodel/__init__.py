"""costmodel — an analytical inference-cost calculator for decoder-only transformers.

    import costmodel as cm
    m = cm.model("llama3-8b"); hw = cm.hardware("a100-80gb")
    cm.param_count(m)                                     # 8030261248
    cm.kv_cache_bytes(m, context=1024)                    # 134217728
    cm.max_batch_size(m, hw, context=1024, tp=1)          # 520
    a = cm.analyze(m, hw, batch=1, new_tokens=1, cached_tokens=1023)
    a.flops, a.bytes, a.time, a.bound, a.ops

Every quantity is one sympy expression, evaluated exactly, vectorised with numpy and printed
as LaTeX (see docs/ARCHITECTURE.md). The names below are loaded on first use, so that
``import costmodel`` (and a CLI query) costs only what it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: Public name → the module that defines it.
_API: dict[str, str] = {
    "ModelSpec": "costmodel.specs", "HardwareSpec": "costmodel.specs",
    "model": "costmodel.presets", "hardware": "costmodel.presets",
    "model_presets": "costmodel.presets", "hardware_presets": "costmodel.presets",
    "engine": "costmodel.presets", "engine_presets": "costmodel.presets",
    "EngineProfile": "costmodel.specs",
    "Formula": "costmodel.formula",
    "Pass": "costmodel.workload", "phase_pass": "costmodel.workload",
    "Options": "costmodel.ops", "operators": "costmodel.ops",
    "param_breakdown": "costmodel.params", "param_count": "costmodel.params",
    "weight_memory": "costmodel.params", "active_param_count": "costmodel.params",
    "kv_by_layer_type": "costmodel.kvcache",
    "kv_bytes_per_token": "costmodel.kvcache", "kv_cache_bytes": "costmodel.kvcache",
    "BatchPlan": "costmodel.batch", "batch_plan": "costmodel.batch",
    "max_batch_formula": "costmodel.batch", "max_batch_size": "costmodel.batch",
    "e0294_param_count": "costmodel.conventions",
    "attention_counts": "costmodel.intensity", "attention_formulas": "costmodel.intensity",
    "attention_intensity": "costmodel.intensity",
    "Efficiency": "costmodel.pricing",
    "Analysis": "costmodel.roofline", "Generation": "costmodel.decoding",
    "analyze": "costmodel.roofline", "analyze_phase": "costmodel.roofline",
    "prefill": "costmodel.roofline", "decode_step": "costmodel.roofline",
    "no_cache_step": "costmodel.roofline", "verify_step": "costmodel.roofline",
    "chunk_step": "costmodel.roofline", "generation": "costmodel.decoding",
    "decode_steps_time": "costmodel.decoding",
    "critical_batch": "costmodel.decoding", "critical_batch_formula": "costmodel.decoding",
    "decode_time_formula": "costmodel.decoding",
    "speculative_speedup": "costmodel.decoding",
    "sweep": "costmodel.grid",
    "formulas": "costmodel.catalog",
    "plan": "costmodel.plan",
}
#: Submodules reachable as attributes (``cm.speculative.speedup``).
_MODULES = ("speculative", "plots", "workload", "units", "quant")

__all__ = sorted([*_API, *_MODULES])


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
    elif name in _MODULES:
        value = importlib.import_module(f"costmodel.{name}")
    else:
        raise AttributeError(f"module 'costmodel' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
