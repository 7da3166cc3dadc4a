"""costmodel — an analytical inference-cost calculator for decoder-only transformers.

    import costmodel as cm
    m = cm.model("llama3-8b"); hw = cm.hardware("a100-80gb")
    m.param_count                                         # 8030261248
    cm.kv_cache_bytes(m, context=1024)                    # 134217728
    cm.max_batch_size(m, hw, context=1024, tp=1)          # 520
    a = cm.analyze(m, hw, batch=1, new_tokens=1, cached_tokens=1023)
    a.ops, a.flops, a.bytes, a.time, a.bound

Every quantity is one sympy expression, evaluated exactly, vectorised with numpy and printed
as LaTeX (see docs/ARCHITECTURE.md).
"""

from costmodel import speculative
from costmodel.batch import BatchPlan, batch_plan, max_batch_formula, max_batch_size
from costmodel.conventions import e0294_param_count
from costmodel.formula import Formula
from costmodel.intensity import attention_counts, attention_formulas, attention_intensity
from costmodel.kvcache import kv_bytes_per_token, kv_cache_bytes
from costmodel.ops import Options, operators
from costmodel.params import param_breakdown, param_count, weight_bytes
from costmodel.presets import hardware, hardware_presets, model, model_presets
from costmodel.roofline import (
    Analysis,
    Generation,
    analyze,
    critical_batch,
    critical_batch_formula,
    decode_step,
    decode_time_formula,
    generation,
    no_cache_step,
    prefill,
    sweep,
    verify_step,
)
from costmodel.specs import HardwareSpec, ModelSpec

__all__ = [
    "Analysis", "BatchPlan", "Formula", "Generation", "HardwareSpec", "ModelSpec", "Options",
    "analyze", "attention_counts", "critical_batch", "critical_batch_formula",
    "decode_time_formula", "attention_formulas", "attention_intensity", "batch_plan",
    "decode_step", "e0294_param_count", "generation", "hardware", "hardware_presets",
    "kv_bytes_per_token", "kv_cache_bytes", "max_batch_formula", "max_batch_size", "model",
    "model_presets", "no_cache_step", "operators", "param_breakdown", "param_count", "prefill",
    "speculative", "sweep", "verify_step", "weight_bytes",
]
__version__ = "0.1.0"
