r"""The roofline of one forward pass and its phases — every time priced by
:func:`costmodel.pricing.price` (a whole generation, speculative decoding and B_crit:
:mod:`costmodel.decoding`).

:func:`analyze` evaluates the per-operator expressions of :mod:`costmodel.ops` (one cached,
compiled function per model structure), prices each operator and returns an :class:`Analysis`
holding numpy arrays and totals; its per-operator table (``.ops``, a DataFrame) is built on first
access. Phases are substitutions (:mod:`costmodel.workload`): ``prefill``, ``decode_step``,
``no_cache_step``, ``verify_step``, ``chunk_step``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

import numpy as np

from costmodel.batch import check_parallel, check_tp
from costmodel.checks import (
    check_element_bytes,
    check_nonneg_int,
    check_positive_int,
)
from costmodel.formula import compile_numeric
from costmodel.lazy import deferred
from costmodel.ops import PARTS, Op, Options, _operators, spec_flags
from costmodel.params import resolve_weight_bytes
from costmodel.presets import engine as engine_preset
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.pricing import Efficiency, Machine, comm_time, op_classes, price
from costmodel.specs import EngineProfile, HardwareSpec, ModelSpec
from costmodel.symbols import (
    BY_NAME,
    DP,
    EP,
    MODEL_SIZES,
    TP,
    B,
    b_a,
    b_kv,
    b_w,
    b_we,
    c,
    model_values,
    q,
)
from costmodel.units import GB, GIGA, time_text
from costmodel.workload import phase_pass, regime

pd = deferred("pandas")

#: The compiled functions' arguments: the model's sizes, then the workload.
MODEL_ARGS = tuple(BY_NAME[name] for name in MODEL_SIZES)
WORKLOAD_ARGS = (B, q, c, TP, EP, DP, b_w, b_we, b_a, b_kv)
ARGS = (*MODEL_ARGS, *WORKLOAD_ARGS)
QUANTITIES = ("flops", *PARTS, "comm_bytes", "rows", "count")
#: The quantity a step holds once whatever groups of sequences share it (continuous batching:
#: decode rows beside a prefill chunk): the weights are read once per step (and the experts a
#: step touches depend on all its tokens). Every other quantity is a sum over the groups.
STEP_QUANTITIES = ("weight_read",)
OPS_COLUMNS = ["op", "kind", "block", "count", "flops", "bytes", *PARTS, "comm_bytes",
               "intensity", "compute_time", "memory_time", "comm_time", "overhead_time", "time",
               "bound"]


@dataclass(frozen=True)
class Compiled:
    """The operators of one model structure with their quantities compiled to one function."""

    ops: tuple[Op, ...]
    fn: Any
    names: tuple[str, ...]
    kinds: np.ndarray
    blocks: tuple[str, ...]
    kernels: np.ndarray
    weight_matmul: np.ndarray     # weight matmuls (may be skinny)
    streaming: np.ndarray         # elementwise and copy passes
    alltoall: np.ndarray | bool   # communication over the EP group (else TP all-reduce);
    #                               False when no operator all-to-alls (a dense model)
    expert: np.ndarray            # routed-expert weight matmuls (their weights at b_we)


@cache
def compiled(flags: tuple, options: Options) -> Compiled:
    """``fn(*model sizes, B, q, c, TP, EP, DP, b_w, b_we, b_a, b_kv)`` → per operator (flops,
    five byte parts, comm bytes, rows) per occurrence and its count, flattened."""
    ops = _operators(flags, options)
    fn = compile_numeric(ARGS, [getattr(op, name) for op in ops for name in QUANTITIES])
    kinds = np.array([op.kind for op in ops])
    weight_matmul, streaming = op_classes(kinds, 0, 0)
    alltoall = np.array([op.comm == "alltoall" for op in ops])
    return Compiled(ops, fn, tuple(op.name for op in ops), kinds,
                    tuple(op.block for op in ops),
                    np.array([op.kernels for op in ops], dtype=float), weight_matmul,
                    streaming, alltoall if alltoall.any() else False,
                    weight_matmul & np.array([op.name.startswith("experts_") for op in ops]))


def model_args(m: ModelSpec) -> tuple:
    """The model's sizes in the order of :data:`MODEL_ARGS`."""
    return _resolved(m)[1]


def _resolved(m: ModelSpec) -> tuple:
    """(structure, sizes) of a spec, kept for the last few spec objects (specs are immutable;
    holding the spec keeps its id from being reused)."""
    hit = _SPECS.get(id(m))
    if hit is not None and hit[0] is m:
        return hit[1:]
    values = model_values(m)
    entry = (m, spec_flags(m), tuple(values[name] for name in MODEL_SIZES))
    if len(_SPECS) >= 1024:
        _SPECS.pop(next(iter(_SPECS)))
    _SPECS[id(m)] = entry
    return entry[1:]


_SPECS: dict[int, tuple] = {}




@cache
def _options(attention, causal, lm_head, fused_qkv, kv_cache, kv_sharing, mask, kv_update,
             experts, mla, expert_parallel, moe_dispatch="grouped"):
    return Options(attention=attention, causal=causal, lm_head=lm_head, fused_qkv=fused_qkv,
                   kv_cache=kv_cache, kv_sharing=kv_sharing, mask=mask, kv_update=kv_update,
                   experts=experts, mla=mla, expert_parallel=expert_parallel,
                   moe_dispatch=moe_dispatch)


def step_values(fn, names: tuple[str, ...], sizes: tuple, groups, *workload) -> list:
    """``fn``'s per-operator values (``names`` repeated per operator, :data:`QUANTITIES` or a
    subset) for one step that runs several groups of sequences ``groups`` = ((B, q, c), ...)
    (numbers or broadcasting arrays) after the model's ``sizes``, with ``workload`` = (TP, EP,
    DP, b_w, b_we, b_a, b_kv).

    The one rule of a mixed step: every quantity is the sum over the groups, except
    :data:`STEP_QUANTITIES` (the weights read), evaluated once at all the step's tokens
    T = Σ B·q (as B = 1, q = T, c = 0); ``count`` is the same for every group."""
    groups = list(groups)
    per_group = [fn(*sizes, b, q_, c_, *workload) for b, q_, c_ in groups]
    if len(groups) == 1:
        return per_group[0]
    tokens = sum(b * q_ for b, q_, _ in groups)
    whole = fn(*sizes, 1, tokens, 0, *workload)
    cycle = len(names)
    return [whole[i] if names[i % cycle] in STEP_QUANTITIES
            else per_group[0][i] if names[i % cycle] == "count"
            else sum(g[i] for g in per_group) for i in range(len(whole))]


def check_groups(groups) -> tuple[tuple[int, int, int], ...]:
    """Further groups of sequences in one step: (batch, new_tokens, cached_tokens) each."""
    try:
        rows = [tuple(g) for g in groups]
    except TypeError:
        raise ValueError("groups: give (batch, new_tokens, cached_tokens) triples") from None
    out = []
    for i, row in enumerate(rows):
        if len(row) != 3:
            raise ValueError(f"groups[{i}]: give (batch, new_tokens, cached_tokens), got {row!r}")
        out.append((check_positive_int(f"groups[{i}] batch", row[0]),
                    check_positive_int(f"groups[{i}] new_tokens", row[1]),
                    check_nonneg_int(f"groups[{i}] cached_tokens", row[2])))
    return tuple(out)


def default_act_bytes(weight_bytes: float) -> int:
    """Activations are 16-bit unless the weights are fp32 (then 32-bit)."""
    return 4 if weight_bytes >= 4 else 2


@dataclass(eq=False)
class Analysis:
    """One forward pass on one GPU of the TP group: per-operator arrays, totals and, on first
    access, the per-operator table ``ops``.

    ``ops`` has one row per operator with its totals over the layers (``count`` = L or 1):
    flops, bytes and its five parts, comm_bytes, intensity (FLOPs/byte), compute/memory/comm/
    overhead time, time and bound. Totals: ``flops``, ``bytes``, ``time`` (Σ operator times, s),
    ``bound`` (what dominates the pass: compute, memory or communication time summed over
    operators).
    """

    model: ModelSpec
    hardware: HardwareSpec
    workload: dict
    dtype: str
    options: Options
    efficiency: Efficiency
    names: tuple[str, ...] = field(repr=False)
    kinds: np.ndarray = field(repr=False)
    blocks: tuple[str, ...] = field(repr=False)
    count: np.ndarray = field(repr=False)
    quantities: np.ndarray = field(repr=False)        # (n_ops, 7): flops, 5 parts, comm; × count
    terms: dict = field(repr=False)                   # the arguments of pricing.price
    priced: Any = field(repr=False)
    fixed: float = 0.0                                # an engine's t_step + L · t_layer

    def reprice(self, **efficiency: Any):
        """The operators priced again with other efficiencies (numbers or broadcasting arrays;
        the ones not given keep this analysis's): what a fit searches over."""
        return price(**{**self.terms, **self.efficiency.terms, **efficiency})

    # ---- totals
    @cached_property
    def flops(self) -> float:
        return float(self.quantities[:, 0].sum())

    @cached_property
    def bytes(self) -> float:
        return float(self.quantities[:, 1:6].sum())

    @property
    def comm_bytes(self) -> float:
        return float(self.quantities[:, 6].sum())

    @cached_property
    def time(self) -> float:
        """Seconds for the pass: Σ over operators of their roofline time (+ an engine's fixed
        per-pass overhead)."""
        return float(self.priced.time.sum()) + self.fixed

    @property
    def regime(self) -> str:
        """The regime of the pass (:func:`costmodel.workload.regime`)."""
        w = self.workload
        q_max = max([w["new_tokens"], *(g[1] for g in w.get("groups", ()))])
        return regime(w["batch"], q_max, w["tp"],
                      min(w["weight_bytes"], w.get("expert_weight_bytes", w["weight_bytes"])))

    @property
    def time_interval(self) -> tuple[float, float] | None:
        """The 80 % band on ``time`` (seconds) from the engine profile's cross-validated
        residuals for this regime (``costmodel validate --published``); None without a band."""
        return self.interval_of(self.time)

    def interval_of(self, seconds: float) -> tuple[float, float] | None:
        """The band of this pass's regime on ``seconds`` (a time made of passes of this
        regime, e.g. a sum of decode steps); None without a band."""
        band = self.efficiency.band(self.regime)
        if band is None:
            return None
        return seconds * band[0], seconds * band[1]

    @property
    def compute_time(self) -> float:
        return float(self.priced.compute.sum())

    @property
    def memory_time(self) -> float:
        return float(self.priced.memory.sum())

    @property
    def comm_time(self) -> float:
        return float(self.priced.comm.sum())

    @property
    def overhead_time(self) -> float:
        return float(self.priced.overhead.sum())

    @property
    def intensity(self) -> float:
        """FLOPs per byte of the whole pass."""
        return self.flops / self.bytes

    @property
    def ridge_point(self) -> float:
        """Peak FLOP/s / bandwidth (FLOPs per byte) for the dtype used."""
        return self.hardware.ridge_point(self.dtype)

    @property
    def bound(self) -> str:
        times = {"compute": self.compute_time, "memory": self.memory_time,
                 "communication": self.comm_time}
        return max(times, key=times.get)

    @property
    def tokens(self) -> int:
        """New tokens of the step: B·q, plus those of its further groups."""
        w = self.workload
        return int(w["batch"] * w["new_tokens"]
                   + sum(g[0] * g[1] for g in w.get("groups", ())))

    # ---- per operator
    def op_bounds(self) -> np.ndarray:
        p = self.priced
        return np.where(p.comm > 0, "communication",
                        np.where(p.compute >= p.memory, "compute", "memory"))

    @cached_property
    def ops(self):
        """The per-operator table (pandas DataFrame), operators that do nothing left out."""
        qty = self.quantities
        p = self.priced
        nbytes = qty[:, 1:6].sum(axis=1)
        data = {"op": list(self.names), "kind": list(self.kinds), "block": list(self.blocks),
                "count": self.count.astype(int), "flops": qty[:, 0], "bytes": nbytes}
        data.update({part: qty[:, 1 + i] for i, part in enumerate(PARTS)})
        data["comm_bytes"] = qty[:, 6]
        with np.errstate(divide="ignore", invalid="ignore"):
            data["intensity"] = np.where(nbytes > 0, qty[:, 0] / np.where(nbytes > 0, nbytes, 1),
                                         0.0)
        data.update({"compute_time": p.compute, "memory_time": p.memory, "comm_time": p.comm,
                     "overhead_time": p.overhead, "time": p.time, "bound": self.op_bounds()})
        df = pd.DataFrame(data, columns=OPS_COLUMNS)
        keep = (qty[:, 0] != 0) | (nbytes != 0) | (qty[:, 6] != 0)
        df = df[keep].reset_index(drop=True)
        if self.fixed:
            row = {c: 0.0 for c in OPS_COLUMNS} | {
                "op": "engine_overhead", "kind": "overhead", "block": "engine", "count": 1,
                "overhead_time": self.fixed, "time": self.fixed, "bound": "overhead"}
            df = pd.concat([df, pd.DataFrame([row], columns=OPS_COLUMNS)], ignore_index=True)
        return df

    def by_block(self):
        """FLOPs, bytes and time summed per block (attention, mlp, norm, ...)."""
        cols = ["flops", "bytes", *PARTS, "comm_bytes", "time"]
        return self.ops.groupby("block", sort=False)[cols].sum()

    def summary(self) -> dict:
        return {"model": self.model.name, "hardware": self.hardware.name, "dtype": self.dtype,
                **self.workload, "flops": self.flops, "bytes": self.bytes,
                "intensity": self.intensity, "ridge_point": self.ridge_point,
                "time": self.time, "bound": self.bound}

    def __repr__(self) -> str:
        w = self.workload
        return (f"Analysis({self.model.name} on {self.hardware.name}, B={w['batch']} "
                f"q={w['new_tokens']} c={w['cached_tokens']} TP={w['tp']}: "
                f"{self.flops / GIGA:.4g} GFLOP, {self.bytes / GB:.4g} GB, "
                f"{time_text(self.time)}, {self.bound}-bound)")


def _check_workload(m, batch, new_tokens, cached_tokens, tp, weight_bytes, kv_bytes, act_bytes):
    check_positive_int("batch", batch)
    check_positive_int("new_tokens", new_tokens)
    check_nonneg_int("cached_tokens", cached_tokens)
    check_tp(m, tp)
    check_element_bytes("weight_bytes", weight_bytes)
    check_element_bytes("kv_bytes", kv_bytes)
    check_element_bytes("act_bytes", act_bytes)


def analyze(m: ModelSpec | str, hw: HardwareSpec | str, batch: int = 1, new_tokens: int = 1,
            cached_tokens: int = 0, tp: int = 1, weight_bytes: float | None = None,
            kv_bytes: float = 2, act_bytes: float | None = None, dtype: str | None = None,
            attention: str | None = None, causal: str = "full", lm_head: str = "last",
            fused_qkv: bool = True, kv_cache: bool = True, kv_sharing: str = "per_request",
            mask: bool = True, kv_update: str = "inplace", ep: int = 1,
            expert_weight_bytes: float | None = None, experts: str = "uniform",
            mla: str = "absorbed", quant: str | None = None, expert_quant: str | None = None,
            engine: str | EngineProfile | None = None, eta_c: float | None = None,
            eta_m: float | None = None, eta_c_skinny: float | None = None,
            eta_m_elementwise: float | None = None, eta_m_quant: float | None = None,
            kernel_overhead: float | None = None, step_overhead: float | None = None,
            layer_overhead: float | None = None, groups=(),
            moe_dispatch: str = "grouped") -> Analysis:
    """Roofline analysis of one forward pass: ``batch`` sequences each adding ``new_tokens``
    tokens (q) on top of ``cached_tokens`` (c) already in the KV cache, on one GPU of a group of
    ``tp`` (and, for a mixture of experts, ``ep`` GPUs holding E/ep experts each, the attention
    running as ep/tp replicas of batch·tp/ep sequences).

    ``groups``: further groups of sequences in the same step, ((B, q, c), ...) — a continuous-
    batching step of decode rows beside a prefill chunk. Each operator's FLOPs and bytes are
    summed over the groups, its weights read once at all the step's tokens
    (:func:`step_values`), and the step priced once.

    Precision: a weight format (``quant``, e.g. "fp8", "int4-g128"; ``expert_quant`` for the
    routed experts) or bare widths (``weight_bytes``, ``expert_weight_bytes``), defaulting to
    the checkpoint's formats, else 16-bit (:func:`costmodel.params.resolve_weight_bytes`). The
    compute dtype that picks the peak is ``dtype``, else the format's (where the hardware has
    it), else the one the width implies (:mod:`costmodel.quant`). ``act_bytes`` defaults to 2
    (16-bit activations) unless weights are fp32 (then 4).

    Efficiencies: the hardware's (1 for datasheet presets), then ``engine``'s (a profile name,
    :func:`costmodel.presets.engine`, or an EngineProfile), then those given here. The
    attention implementation defaults to the engine's (else "standard"). See
    :mod:`costmodel.ops` for the structural options (``experts``: uniform | all; ``mla``:
    absorbed | naive | expanded; ``moe_dispatch``: grouped | loop).
    """
    m, hw = model_preset(m), hardware_preset(hw)
    profile = None if engine is None else engine_preset(engine)
    if attention is None:
        attention = profile.attention if profile is not None else "standard"
    if (weight_bytes is None or expert_weight_bytes is not None or quant is not None
            or expert_quant is not None or m.moe):
        prec = resolve_weight_bytes(m, weight_bytes, expert_weight_bytes, quant, expert_quant)
        weight_bytes, expert_weight_bytes, fmt = (prec.weight_bytes, prec.expert_weight_bytes,
                                                  prec.format)
    else:
        expert_weight_bytes, fmt = weight_bytes, None
    act_bytes = default_act_bytes(weight_bytes) if act_bytes is None else act_bytes
    _check_workload(m, batch, new_tokens, cached_tokens, tp, weight_bytes, kv_bytes, act_bytes)
    groups = check_groups(groups)
    dp = check_parallel(m, tp, ep)
    if max(tp, ep) > 1 and hw.interconnect_bandwidth <= 0:
        raise ValueError(f"tp: {hw.name} has no interconnect bandwidth, so TP={tp}, EP={ep} "
                         "cannot be modelled; give interconnect_bandwidth")
    options = _options(attention, causal, lm_head, fused_qkv, kv_cache, kv_sharing, mask,
                       kv_update, experts, mla, ep > 1, moe_dispatch)
    mach = Machine.of(hw, dtype, weight_bytes, profile, fmt, eta_c=eta_c, eta_m=eta_m,
                      eta_c_skinny=eta_c_skinny, eta_m_elementwise=eta_m_elementwise,
                      eta_m_quant=eta_m_quant, kernel_overhead=kernel_overhead,
                      step_overhead=step_overhead, layer_overhead=layer_overhead)
    structure, sizes = _resolved(m)
    comp = compiled(structure, options)
    vals = step_values(comp.fn, QUANTITIES, sizes,
                       ((batch, new_tokens, cached_tokens), *groups), tp, ep, dp, weight_bytes,
                       expert_weight_bytes, act_bytes, kv_bytes)
    per_occ = np.array(vals, dtype=float).reshape(len(comp.ops), len(QUANTITIES))
    count = per_occ[:, 8]
    qty = per_occ[:, :7] * count[:, None]
    # no group, no communication: an operator all-to-alls over the EP group where marked,
    # else all-reduces over the TP group
    qty[:, 6] *= tp > 1 if comp.alltoall is False else np.where(comp.alltoall, ep > 1, tp > 1)
    flops, nbytes = qty[:, 0], qty[:, 1:6].sum(axis=1)
    active = (flops + nbytes) > 0
    terms = {"compute_ideal": flops / mach.peak, "memory_ideal": nbytes / mach.bandwidth,
             "comm": comm_time(per_occ[:, 6], comp.alltoall, tp, ep, mach.link_bandwidth,
                               mach.link_latency) * count,
             "kernels": comp.kernels * count * active,
             "skinny": comp.weight_matmul & (per_occ[:, 7] <= mach.efficiency.skinny_rows),
             "streaming": comp.streaming,
             "quantized": comp.weight_matmul & (
                 weight_bytes < mach.element_bytes if expert_weight_bytes == weight_bytes
                 else np.where(comp.expert, expert_weight_bytes, weight_bytes)
                 < mach.element_bytes)}
    priced = price(**terms, **mach.efficiency.terms)
    workload = {"batch": batch, "new_tokens": new_tokens, "cached_tokens": cached_tokens,
                "tp": tp, "weight_bytes": weight_bytes, "kv_bytes": kv_bytes,
                "act_bytes": act_bytes}
    if groups:
        workload["groups"] = groups
    if ep > 1:
        workload["ep"] = ep
    if expert_weight_bytes != weight_bytes:
        workload["expert_weight_bytes"] = expert_weight_bytes
    if mach.efficiency.engine:
        workload["engine"] = mach.efficiency.engine
    return Analysis(m, hw, workload, mach.dtype, options, mach.efficiency, comp.names,
                    comp.kinds, comp.blocks, count, qty, terms, priced,
                    mach.efficiency.pass_overhead(m.n_layers))


# ---------------------------------------------------------------- phases are substitutions
def analyze_phase(m, hw, phase: str, context: int, batch: int = 1, gamma: int = 4,
                  chunk: int = 1, **kw) -> Analysis:
    """The pass of ``phase`` (prefill, decode, no_cache, verify, chunk) at context s."""
    p = phase_pass(phase, context, batch, gamma, chunk)
    return analyze(m, hw, **{**p.kwargs(), **kw})


def prefill(m, hw, context: int, batch: int = 1, **kw) -> Analysis:
    """Prefill of a ``context``-token prompt: q = s, c = 0."""
    return analyze_phase(m, hw, "prefill", context, batch, **kw)


def decode_step(m, hw, context: int, batch: int = 1, **kw) -> Analysis:
    """One decode step with ``context`` tokens in the cache: q = 1, c = s."""
    return analyze_phase(m, hw, "decode", context, batch, **kw)


def no_cache_step(m, hw, context: int, batch: int = 1, **kw) -> Analysis:
    """One step of the no-KV-cache baseline that re-encodes all ``context`` tokens: q = s,
    c = 0, nothing written to a cache."""
    return analyze_phase(m, hw, "no_cache", context, batch, **kw)


def verify_step(m, hw, gamma: int, context: int, batch: int = 1, **kw) -> Analysis:
    """The target's speculative verification of γ drafted tokens: q = γ + 1, c = s."""
    return analyze_phase(m, hw, "verify", context, batch, gamma=gamma, **kw)


def chunk_step(m, hw, chunk: int, context: int, batch: int = 1, **kw) -> Analysis:
    """One chunk of a chunked prefill: q = chunk new tokens after s = ``context`` done."""
    return analyze_phase(m, hw, "chunk", context, batch, chunk=chunk, **kw)


__all__ = ["STEP_QUANTITIES", "Analysis", "Compiled", "analyze", "analyze_phase",
           "check_groups", "chunk_step", "compiled", "decode_step", "default_act_bytes",
           "no_cache_step", "prefill", "step_values", "verify_step"]
