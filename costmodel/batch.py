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

Beyond dense attention the same formula holds with the per-GPU terms of the architecture:

* sliding windows: a request holds (L − L_w)·s + L_w·min(s, W − 1) layer-tokens
  (:mod:`costmodel.kvcache`);
* latent attention (MLA): each GPU holds the whole latent, r_kv + d_r per layer-token, whatever
  the TP (the latent is shared by the heads), or H/TP · (d_n + d_r + d_v) when expanded;
* mixture of experts: the routed-expert parameters P_e are split over the GPUs that hold them —
  W_GPU = (P − P_e)·b_w / TP + P_e·b_we / S_e with S_e = TP (experts sliced) or EP (whole
  experts, expert parallelism). With EP > TP the attention runs as DP = EP / TP replicas, each
  holding the KV cache of its own requests, so the group serves DP times the batch of one GPU.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import cache

import sympy as sp

from costmodel.checks import (
    check_choice,
    check_element_bytes,
    check_fraction,
    check_int,
    check_nonneg_number,
    check_positive_int,
    check_positive_number,
)
from costmodel.formula import Formula
from costmodel.kvcache import held_tokens
from costmodel.ops import MLA, Structure, spec_flags
from costmodel.params import (
    expert_param_count,
    param_count,
    param_count_formula,
    resolve_weight_bytes,
)
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.specs import MAX_MEMORY_BYTES, HardwareSpec, ModelSpec
from costmodel.symbols import (
    DP,
    EP,
    TP,
    H,
    H_kv,
    L,
    M,
    P,
    P_e,
    R,
    b_kv,
    b_w,
    b_we,
    d_h,
    d_n,
    d_r,
    d_v,
    model_values,
    r_kv,
    s,
    u,
)
from costmodel.units import GIB


@cache
def _dense() -> dict[str, Formula]:
    """The dense-attention formulas (built on first use: sympy evaluates a floor at
    construction, and a CLI query that never asks for a max batch should not pay for it)."""
    kv = Formula("kv_bytes_per_request_per_gpu", s * 2 * L * sp.ceiling(H_kv / TP) * d_h * b_kv,
                 "bytes", "KV-cache bytes of one request on one GPU of the TP group",
                 symbol=r"\mathrm{KV}_{\mathrm{GPU}}")
    w = Formula("weight_bytes_per_gpu", P * b_w / TP, "bytes",
                "weight bytes on one GPU of the TP group", symbol=r"W_{\mathrm{GPU}}")
    return {"KV_PER_REQUEST_PER_GPU": kv, "WEIGHTS_PER_GPU": w, "MAX_BATCH": Formula(
        "max_batch_size", sp.floor((u * M - R - w.expr) / kv.expr), "requests",
        "largest batch whose weights and KV cache fit", symbol=r"B_{\max}")}


def __getattr__(name: str) -> Formula:
    """``KV_PER_REQUEST_PER_GPU``, ``WEIGHTS_PER_GPU`` and ``MAX_BATCH``: the dense formulas."""
    if name in ("KV_PER_REQUEST_PER_GPU", "WEIGHTS_PER_GPU", "MAX_BATCH"):
        return _dense()[name]
    raise AttributeError(f"module 'costmodel.batch' has no attribute {name!r}")


@cache
def batch_formulas(structure: Structure, mla: str = "absorbed",
                   expert_parallel: bool = False) -> dict[str, Formula]:
    """weights_per_gpu, kv_per_request_per_gpu and max_batch of an architecture (the dense
    ones are :data:`WEIGHTS_PER_GPU`, :data:`KV_PER_REQUEST_PER_GPU`, :data:`MAX_BATCH`)."""
    dense = _dense()
    if structure.window == "none" and not structure.mla and structure.moe == "none":
        return {"weights_per_gpu": dense["WEIGHTS_PER_GPU"],
                "kv_per_request_per_gpu": dense["KV_PER_REQUEST_PER_GPU"],
                "max_batch": dense["MAX_BATCH"]}
    if structure.mla:
        e_gpu = H / TP * (d_n + d_r + d_v) if mla == "expanded" else r_kv + d_r
    else:
        e_gpu = 2 * sp.ceiling(H_kv / TP) * d_h
    kv = Formula("kv_bytes_per_request_per_gpu", e_gpu * b_kv * sp.Add(*held_tokens(structure)),
                 "bytes", "KV-cache bytes of one request on one GPU of the group",
                 symbol=r"\mathrm{KV}_{\mathrm{GPU}}")
    if structure.moe == "none":
        weights = dense["WEIGHTS_PER_GPU"].expr
    else:
        weights = (P - P_e) * b_w / TP + P_e * b_we / (EP if expert_parallel else TP)
    w = Formula("weight_bytes_per_gpu", weights, "bytes", "weight bytes on one GPU of the group",
                symbol=r"W_{\mathrm{GPU}}")
    per_gpu = sp.floor((u * M - R - weights) / kv.expr)
    return {"weights_per_gpu": w, "kv_per_request_per_gpu": kv,
            "max_batch": Formula("max_batch_size", DP * per_gpu if expert_parallel else per_gpu,
                                 "requests", "largest batch whose weights and KV cache fit",
                                 symbol=r"B_{\max}")}


@dataclass(frozen=True)
class BatchPlan:
    """What fits on each GPU of a TP (and EP) group, and why."""

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
    ep: int = 1
    dp: int = 1                         # attention replicas (EP / TP with expert parallelism)

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


def check_parallel(m: ModelSpec, tp: int, ep: int) -> int:
    """The expert-parallel degree: 1, or (for a mixture of experts) a multiple of ``tp`` that
    divides the experts; returns the attention replicas DP = EP / TP."""
    ep = check_int("ep", ep, 1, 2**31 - 1)
    if ep == 1:
        return 1
    if not m.moe:
        raise ValueError(f"ep: {m.name} has no experts; expert parallelism needs a mixture of "
                         "experts (use ep=1)")
    if m.n_experts % ep:
        raise ValueError(f"ep: {ep} does not divide the {m.n_experts} experts of {m.name}")
    if ep % tp:
        raise ValueError(f"ep: {ep} must be a multiple of tp={tp} (the attention runs as "
                         "ep/tp tensor-parallel replicas)")
    return ep // tp


def batch_plan(m: ModelSpec | str, hw: HardwareSpec | str | int | float, context: int,
               tp: int = 1, weight_bytes: float | None = None, kv_bytes: float = 2,
               mem_util: float = 1.0, reserved: float = 0, params: int | None = None,
               ep: int = 1, expert_weight_bytes: float | None = None,
               mla: str = "absorbed", quant: str | None = None) -> BatchPlan:
    """The maximum batch with everything that went into it (see the module docstring).

    ``hw`` is a HardwareSpec, a preset name, or the memory of one GPU in bytes. ``params``
    overrides the parameter count (e.g. a course text's own count, see
    :mod:`costmodel.conventions`). ``ep``, ``expert_weight_bytes`` (default ``weight_bytes``)
    and ``mla`` (the latent-attention cache layout) as in :func:`costmodel.analyze`.
    """
    m = model_preset(m)
    check_positive_int("context", context)
    check_tp(m, tp)
    dp = check_parallel(m, tp, ep)
    prec = resolve_weight_bytes(m, weight_bytes, expert_weight_bytes, quant)
    weight_bytes, expert_weight_bytes = prec.weight_bytes, prec.expert_weight_bytes
    check_element_bytes("kv_bytes", kv_bytes)
    check_choice("mla", mla, MLA)
    check_fraction("mem_util", mem_util)
    check_nonneg_number("reserved", reserved, MAX_MEMORY_BYTES)
    memory = memory_of(hw)
    n_params = param_count(m) if params is None else check_positive_int("params", params)
    formulas = batch_formulas(spec_flags(m), mla, ep > 1)
    values = dict(model_values(m), context=context, tp=tp, weight_bytes=weight_bytes,
                  kv_bytes=kv_bytes, memory=memory, mem_util=mem_util, reserved=reserved,
                  params=n_params, ep=ep, dp=dp, expert_weight_bytes=expert_weight_bytes,
                  expert_params=expert_param_count(m))
    w_gpu = formulas["weights_per_gpu"].exact(**values)
    kv_gpu = formulas["kv_per_request_per_gpu"].exact(**values)
    usable = float(sp.nsimplify(mem_util) * sp.nsimplify(memory)) - reserved
    heads_per_gpu = 1 if m.mla and mla != "expanded" else math.ceil(m.n_kv_heads / tp)
    replication = tp if m.mla and mla != "expanded" else max(1, tp // m.n_kv_heads)
    batch = max(0, int(formulas["max_batch"].exact(**values)))
    if usable <= w_gpu:
        reason = (f"the weights alone ({w_gpu / GIB:.2f} GiB per GPU) do not fit in the "
                  f"{usable / GIB:.2f} GiB usable per GPU; raise tp or use fewer weight bytes")
    elif batch == 0:
        reason = (f"one request's KV cache ({kv_gpu / GIB:.3f} GiB per GPU) does not fit in "
                  f"the {(usable - w_gpu) / GIB:.3f} GiB left after the weights")
    else:
        reason = (f"{(usable - w_gpu) / GIB:.3f} GiB left per GPU after the weights / "
                  f"{kv_gpu / GIB:.4f} GiB per request = {batch}")
    if dp > 1 and batch:
        reason += f" per replica × {dp} attention replicas (EP={ep} / TP={tp})"
    if replication > 1 and m.mla and mla != "expanded":
        reason += f"; the MLA latent cache is held whole on each of the {tp} TP GPUs"
    elif replication > 1:
        reason += (f"; TP={tp} exceeds n_kv_heads={m.n_kv_heads}, so each KV head is "
                   f"replicated on {replication} GPUs")
    return BatchPlan(max_batch=batch, tp=tp, context=context, memory_bytes=memory,
                     usable_bytes=usable, weight_bytes_per_gpu=float(w_gpu),
                     kv_bytes_per_request_per_gpu=float(kv_gpu), kv_heads_per_gpu=heads_per_gpu,
                     kv_replication=replication, params=n_params, reason=reason, ep=ep, dp=dp)


def max_batch_size(m: ModelSpec | str, hw: HardwareSpec | str | int | float, context: int,
                   tp: int = 1, weight_bytes: float | None = None, kv_bytes: float = 2,
                   mem_util: float = 1.0, reserved: float = 0, params: int | None = None,
                   **kw) -> int:
    """Largest number of concurrent requests of ``context`` tokens a TP (and EP) group serves
    (0 if none); ``kw``: ``ep``, ``expert_weight_bytes``, ``mla`` (see :func:`batch_plan`).

    >>> import costmodel as cm
    >>> cm.max_batch_size(cm.model("llama3-8b"), cm.hardware("a100-80gb"), context=1024)
    520
    """
    return batch_plan(m, hw, context, tp, weight_bytes, kv_bytes, mem_util, reserved,
                      params, **kw).max_batch


def max_batch_formula(m: ModelSpec | str | None = None, mla: str = "absorbed",
                      expert_parallel: bool = False) -> Formula:
    """B_max as a Formula; with a spec, its architecture's terms and P expanded into its count
    (P_e, the routed-expert share, stays a symbol)."""
    if m is None:
        return _dense()["MAX_BATCH"]
    m = model_preset(m)
    f = batch_formulas(spec_flags(m), mla, expert_parallel)["max_batch"]
    return Formula(f.name, f.expr.xreplace({P: param_count_formula(m).expr}),
                   f.unit, f.description, f.symbol)
