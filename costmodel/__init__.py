"""costmodel — an analytical inference-cost calculator for decoder-only transformers.

    import costmodel as cm
    m = cm.model("llama3-8b"); hw = cm.hardware("a100-80gb")
    m.param_count                                         # 8030261248
    cm.kv_cache_bytes(m, context=1024)                    # 134217728
    cm.max_batch_size(m, hw, context=1024, tp=1)          # 520

Every quantity is one sympy expression (see :mod:`costmodel.formulas`), evaluated exactly,
vectorised with numpy, and printed as LaTeX.
"""

from costmodel.batch import BatchPlan, batch_plan, max_batch_formula, max_batch_size
from costmodel.conventions import e0294_param_count
from costmodel.formula import Formula
from costmodel.kvcache import kv_bytes_per_token, kv_cache_bytes
from costmodel.params import param_breakdown, param_count, weight_bytes
from costmodel.presets import hardware, hardware_presets, model, model_presets
from costmodel.specs import HardwareSpec, ModelSpec

__all__ = [
    "BatchPlan", "Formula", "HardwareSpec", "ModelSpec", "batch_plan", "e0294_param_count",
    "hardware", "hardware_presets", "kv_bytes_per_token", "kv_cache_bytes", "max_batch_formula",
    "max_batch_size", "model", "model_presets", "param_breakdown", "param_count", "weight_bytes",
]
__version__ = "0.1.0"
