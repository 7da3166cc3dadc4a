r"""Maximum batch size on one GPU and under tensor parallelism.

Under TP the weights are split evenly, W / TP per GPU, and so are the KV heads: each GPU holds
⌈H_kv / TP⌉ of them. When TP > H_kv there are fewer KV heads than GPUs, so each one is held by
TP / H_kv GPUs (replicated) and the per-GPU cache stops shrinking. A GPU of M bytes, of which
a fraction u is usable and R bytes are reserved, serves

    B_max = ⌊ (u·M − R − P·b_w / TP) / (s · 2 · L · ⌈H_kv / TP⌉ · d_h · b_kv) ⌋

concurrent requests of s tokens — the number the whole TP group serves, since every request is
spread over all TP GPUs. With TP = 1 this is the single-GPU formula. When the weights alone do not
fit the answer is 0, with the reason, never a negative number.

The course texts' idealisation is u = 1, R = 0 (the defaults). A real server keeps a few GiB for
the CUDA context, activations and fragmentation (vLLM's default u is 0.9).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import sympy as sp

from costmodel.checks import (
    check_element_bytes,
    check_fraction,
    check_int,
    check_nonneg_number,
    check_positive_int,
    check_positive_number,
)
from costmodel.formula import Formula
from costmodel.params import param_count, param_count_formula
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.specs import MAX_MEMORY_BYTES, HardwareSpec, ModelSpec
from costmodel.symbols import TP, H_kv, L, M, P, R, b_kv, b_w, d_h, model_values, s, u
from costmodel.units import GIB

KV_HEADS_PER_GPU = sp.ceiling(H_kv / TP)
KV_PER_REQUEST_PER_GPU = Formula(
    "kv_bytes_per_request_per_gpu", s * 2 * L * KV_HEADS_PER_GPU * d_h * b_kv, "bytes",
    "KV-cache bytes of one request on one GPU of the TP group",
    symbol=r"\mathrm{KV}_{\mathrm{GPU}}")
WEIGHTS_PER_GPU = Formula("weight_bytes_per_gpu", P * b_w / TP, "bytes",
                          "weight bytes on one GPU of the TP group", symbol=r"W_{\mathrm{GPU}}")
MAX_BATCH = Formula(
    "max_batch_size",
    sp.floor((u * M - R - WEIGHTS_PER_GPU.expr) / KV_PER_REQUEST_PER_GPU.expr),
    "requests", "largest batch whose weights and KV cache fit", symbol=r"B_{\max}")


@dataclass(frozen=True)
class BatchPlan:
    """What fits on each GPU of a TP group, and why."""

    max_batch: int
    tp: int
    context: int
    memory_bytes: int | float           # per GPU, as given
    usable_bytes: float                 # u·M − R
    weight_bytes_per_gpu: float
    kv_bytes_per_request_per_gpu: float
    kv_heads_per_gpu: int
    kv_replication: int                 # GPUs holding each KV head (1 = no replication)
    params: int
    reason: str

    @property
    def fits(self) -> bool:
        return self.max_batch > 0

    @property
    def kv_bytes_per_gpu(self) -> float:
        """KV bytes on one GPU at the maximum batch."""
        return self.max_batch * self.kv_bytes_per_request_per_gpu


def check_tp(m: ModelSpec, tp: int) -> int:
    """TP must divide the query heads, and either divide the KV heads or be a multiple of them."""
    tp = check_int("tp", tp, 1, 2**31 - 1)
    if tp > m.n_heads or m.n_heads % tp:
        raise ValueError(f"tp: {tp} does not divide n_heads={m.n_heads} of {m.name}; "
                         "each GPU must hold a whole number of attention heads")
    if m.n_kv_heads % tp and tp % m.n_kv_heads:
        raise ValueError(f"tp: {tp} neither divides nor is a multiple of n_kv_heads="
                         f"{m.n_kv_heads} of {m.name}")
    return tp


def memory_of(hw: HardwareSpec | str | int | float) -> int | float:
    """Device memory in bytes from a HardwareSpec, a preset name, or a number of bytes."""
    if isinstance(hw, numbers.Integral) and not isinstance(hw, bool):
        return check_int("memory", hw, 1, MAX_MEMORY_BYTES)
    if isinstance(hw, numbers.Real) and not isinstance(hw, bool):
        return check_positive_number("memory", hw, MAX_MEMORY_BYTES)
    return hardware_preset(hw).memory_bytes


def batch_plan(m: ModelSpec, hw: HardwareSpec | str | int | float, context: int, tp: int = 1,
               weight_bytes: float = 2, kv_bytes: float = 2, mem_util: float = 1.0,
               reserved: float = 0, params: int | None = None) -> BatchPlan:
    """The maximum batch with everything that went into it (see the module docstring).

    ``hw`` is a HardwareSpec, a preset name, or the memory of one GPU in bytes. ``params``
    overrides the parameter count (e.g. a course text's own count, see
    :mod:`costmodel.conventions`).
    """
    m = model_preset(m)
    check_positive_int("context", context)
    check_tp(m, tp)
    check_element_bytes("weight_bytes", weight_bytes)
    check_element_bytes("kv_bytes", kv_bytes)
    check_fraction("mem_util", mem_util)
    check_nonneg_number("reserved", reserved, MAX_MEMORY_BYTES)
    memory = memory_of(hw)
    n_params = param_count(m) if params is None else check_positive_int("params", params)
    values = dict(model_values(m), context=context, tp=tp, weight_bytes=weight_bytes,
                  kv_bytes=kv_bytes, memory=memory, mem_util=mem_util, reserved=reserved,
                  params=n_params)
    w_gpu = WEIGHTS_PER_GPU.exact(**values)
    kv_gpu = KV_PER_REQUEST_PER_GPU.exact(**values)
    usable = float(sp.nsimplify(mem_util) * sp.nsimplify(memory)) - reserved
    heads_per_gpu = math.ceil(m.n_kv_heads / tp)
    replication = max(1, tp // m.n_kv_heads)
    batch = max(0, int(MAX_BATCH.exact(**values)))
    if usable <= w_gpu:
        reason = (f"the weights alone ({w_gpu / GIB:.2f} GiB per GPU) do not fit in the "
                  f"{usable / GIB:.2f} GiB usable per GPU; raise tp or use fewer weight bytes")
    elif batch == 0:
        reason = (f"one request's KV cache ({kv_gpu / GIB:.3f} GiB per GPU) does not fit in "
                  f"the {(usable - w_gpu) / GIB:.3f} GiB left after the weights")
    else:
        reason = (f"{(usable - w_gpu) / GIB:.3f} GiB left per GPU after the weights / "
                  f"{kv_gpu / GIB:.4f} GiB per request = {batch}")
    if replication > 1:
        reason += (f"; TP={tp} exceeds n_kv_heads={m.n_kv_heads}, so each KV head is "
                   f"replicated on {replication} GPUs")
    return BatchPlan(max_batch=batch, tp=tp, context=context, memory_bytes=memory,
                     usable_bytes=usable, weight_bytes_per_gpu=float(w_gpu),
                     kv_bytes_per_request_per_gpu=float(kv_gpu), kv_heads_per_gpu=heads_per_gpu,
                     kv_replication=replication, params=n_params, reason=reason)


def max_batch_size(m: ModelSpec, hw: HardwareSpec | str | int | float, context: int,
                   tp: int = 1, weight_bytes: float = 2, kv_bytes: float = 2,
                   mem_util: float = 1.0, reserved: float = 0, params: int | None = None) -> int:
    """Largest number of concurrent requests of ``context`` tokens a TP group serves (0 if none).

    >>> import costmodel as cm
    >>> cm.max_batch_size(cm.model("llama3-8b"), cm.hardware("a100-80gb"), context=1024)
    520
    """
    return batch_plan(m, hw, context, tp, weight_bytes, kv_bytes, mem_util, reserved,
                      params).max_batch


def max_batch_formula(m: ModelSpec | None = None) -> Formula:
    """B_max as a Formula; with a spec, P is expanded into that architecture's count."""
    if m is None:
        return MAX_BATCH
    return Formula(MAX_BATCH.name, MAX_BATCH.expr.xreplace({P: param_count_formula(m).expr}),
                   MAX_BATCH.unit, MAX_BATCH.description, MAX_BATCH.symbol)
