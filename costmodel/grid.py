r"""The roofline over a grid (`sweep`: batch × context × TP × hardware) and over many steps
point by point (`steps`: continuous-batching steps for the planner), vectorised.

The same operator expressions as :func:`costmodel.analyze` (one compiled function per model
structure, evaluated on numpy arrays) and the same pricing (:func:`costmodel.pricing.price`,
operator by operator so a million points never need an (operators × points) array). Counts are
float64 (exact up to 2**53, which the checks enforce), so no product can wrap around as int64
would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from costmodel.batch import batch_formulas, check_parallel, check_tp
from costmodel.checks import (
    MAX_COUNT,
    MAX_GAMMA,
    check_choice,
    check_element_bytes,
    check_fraction,
    check_int,
    check_ints,
)
from costmodel.formula import compile_numeric
from costmodel.lazy import deferred
from costmodel.ops import Op, Options, _operators, spec_flags
from costmodel.params import expert_param_count, param_count, resolve_weight_bytes, weight_memory
from costmodel.presets import engine as engine_preset
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.pricing import Machine, comm_time, op_classes, price
from costmodel.roofline import ARGS, default_act_bytes, model_args, step_values
from costmodel.specs import DTYPES, HardwareSpec, ModelSpec
from costmodel.symbols import model_values
from costmodel.workload import PHASES, REGIMES, regime, substitute, writes_cache

pd = deferred("pandas")
BOUNDS = ("compute", "memory", "communication")


#: The per-operator values a grid prices (per occurrence), in the order of the compiled outputs.
VALUES = ("flops", "weight_read", "other_bytes", "comm_bytes", "rows", "count")


@dataclass(frozen=True)
class _Totals:
    ops: tuple[Op, ...]
    fn: object


@cache
def _compiled_totals(flags, options: Options) -> _Totals:
    """Per operator (:data:`VALUES`) per occurrence: FLOPs, weight bytes, the other bytes
    (activations and KV), communication bytes, rows and count."""
    ops = _operators(flags, options)
    return _Totals(ops, compile_numeric(ARGS, [x for op in ops for x in (
        op.flops, op.weight_read, op.bytes - op.weight_read, op.comm_bytes, op.rows,
        op.count)]))


@dataclass(frozen=True)
class Steps:
    """Priced steps (arrays shaped like the broadcast inputs; seconds, FLOPs, bytes)."""

    time: np.ndarray             # Σ operator times + the fixed per-pass overhead
    compute: np.ndarray          # Σ operator compute times
    memory: np.ndarray           # Σ operator memory times
    comm: np.ndarray             # Σ operator communication times
    layer_time: np.ndarray       # Σ times of the per-layer operators (count ≠ 1)
    fixed: float                 # the engine's t_step + L · t_layer
    flops: np.ndarray
    bytes: np.ndarray
    dtype: str


def _values(m: ModelSpec, opts: Options, groups, tp, ep, dp, weight_bytes, expert_weight_bytes,
            act_bytes, kv_bytes) -> list[tuple]:
    """Per operator: (op, FLOPs × count, bytes × count, comm bytes, rows, count) of a step of
    ``groups`` (the one mixed-step rule, :func:`costmodel.roofline.step_values`)."""
    comp = _compiled_totals(spec_flags(m), opts)
    vals = step_values(comp.fn, VALUES, model_args(m), groups, tp, ep, dp, weight_bytes,
                       expert_weight_bytes, act_bytes, kv_bytes)
    n = len(VALUES)
    out = []
    for i, op in enumerate(comp.ops):
        f, wr, other, comm, rows, count = (np.asarray(v, dtype=float)
                                           for v in vals[n * i:n * i + n])
        out.append((op, f * count, (wr + other) * count, comm, rows, count))
    return out


def _price_ops(per_op: list[tuple], mach: Machine, n_layers: int, shape, tp, ep,
               weight_bytes: float, expert_weight_bytes: float) -> dict:
    """Every operator priced by :func:`costmodel.pricing.price` and summed: time (with the
    fixed per-pass overhead), compute, memory, comm, and the per-layer operators' time."""
    terms = mach.efficiency.terms
    fixed = mach.efficiency.pass_overhead(n_layers)
    out = {"time": np.full(shape, fixed), "compute": np.zeros(shape), "memory": np.zeros(shape),
           "comm": np.zeros(shape), "layer_time": np.zeros(shape)}
    partial: dict[tuple, np.ndarray] = {}     # sums of the operators of one shape, per field

    def add(name: str, value) -> None:
        value = np.asarray(value, dtype=float)
        key = (name, value.shape)
        if key in partial:
            partial[key] += value
        else:
            partial[key] = value.copy()
    for op, f, b, comm, rows, count in per_op:
        skinny, streaming = op_classes(op.kind, rows, mach.efficiency.skinny_rows)
        op_bytes = expert_weight_bytes if op.name.startswith("experts_") else weight_bytes
        quantized = op.kind == "matmul" and op_bytes < mach.element_bytes
        comm_t = comm_time(comm, op.comm == "alltoall", tp, ep, mach.link_bandwidth,
                           mach.link_latency) * count
        kernels = op.kernels * count * ((f + b) > 0)
        p = price(f / mach.peak, b / mach.bandwidth, comm_t, kernels, skinny, streaming,
                  quantized, **terms)
        add("time", p.time)
        add("compute", p.compute)
        add("memory", p.memory)
        add("comm", p.comm)
        if op.per_layer:
            add("layer_time", p.time)
    for (name, _), total in partial.items():   # each shape's sum broadcast onto the grid once
        out[name] += total
    return out


def steps(m: ModelSpec | str, hw: HardwareSpec | str, batch, new_tokens, cached_tokens,
          tp=1, ep: int = 1, groups=(), weight_bytes: float | None = None,
          kv_bytes: float = 2, act_bytes: float | None = None, dtype: str | None = None,
          quant: str | None = None, engine=None, eta_c: float | None = None,
          eta_m: float | None = None, eta_c_skinny: float | None = None,
          eta_m_elementwise: float | None = None, eta_m_quant: float | None = None,
          kernel_overhead: float | None = None, step_overhead: float | None = None,
          layer_overhead: float | None = None, **options) -> Steps:
    """The roofline of many steps at once, point by point (not a cartesian product): every
    argument among ``batch``, ``new_tokens``, ``cached_tokens``, ``tp`` and the groups' entries
    is a number or an array, and they broadcast together (a group of 0 sequences, or of 0
    new tokens, adds nothing but its share of the weights). ``groups`` adds further groups of
    sequences to each step, ((B, q, c), ...) (continuous batching: decode rows beside a prefill
    chunk), with the one mixed-step rule of :func:`costmodel.analyze` (weights read once at
    all the step's tokens, everything else summed). The same operator expressions and the same
    pricing as :func:`costmodel.analyze`: at each point ``time`` equals
    ``analyze(...).time`` of that point's step (batch sizes may be fractional here, a mean
    number of sequences)."""
    m, h = model_preset(m), hardware_preset(hw)
    arrays = [np.asarray(v, dtype=float) for v in (batch, new_tokens, cached_tokens, tp)]
    for name, arr in (("batch", arrays[0]), ("new_tokens", arrays[1]),
                      ("cached_tokens", arrays[2])):
        if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0) \
                or np.any(arr > MAX_COUNT):
            raise ValueError(f"{name}: every value must be a finite number ≥ 0 and at most "
                             f"{MAX_COUNT}")
    for t in np.unique(arrays[3]):
        check_tp(m, int(t))
    extra = []
    for i, g in enumerate(groups):
        if len(g) != 3:
            raise ValueError(f"groups[{i}]: give (batch, new_tokens, cached_tokens)")
        gb, gq, gc = (np.asarray(v, dtype=float) for v in g)
        if np.any(gb < 0) or np.any(gq < 0) or np.any(gc < 0) or not (
                np.all(np.isfinite(gb)) and np.all(np.isfinite(gq)) and np.all(np.isfinite(gc))):
            raise ValueError(f"groups[{i}]: batch, new_tokens and cached_tokens must be finite "
                             "and ≥ 0")
        extra.append((gb, gq, gc))
    dp = check_parallel(m, int(np.max(arrays[3])), ep) if ep > 1 else 1
    if ep > 1 and np.any(arrays[3] != np.max(arrays[3])):
        raise ValueError("tp: with ep > 1 give one tp value")
    profile = None if engine is None else engine_preset(engine)
    if "attention" not in options and profile is not None:
        options["attention"] = profile.attention
    prec = resolve_weight_bytes(m, weight_bytes, quant=quant)
    weight_bytes, expert_weight_bytes = prec.weight_bytes, prec.expert_weight_bytes
    act_bytes = default_act_bytes(weight_bytes) if act_bytes is None else act_bytes
    for name, value in (("weight_bytes", weight_bytes), ("kv_bytes", kv_bytes),
                        ("act_bytes", act_bytes)):
        check_element_bytes(name, value)
    if (np.any(arrays[3] > 1) or ep > 1) and h.interconnect_bandwidth <= 0:
        raise ValueError(f"tp: {h.name} has no interconnect bandwidth")
    opts = Options(**{"expert_parallel": ep > 1, **options})
    shape = np.broadcast_shapes(*(a.shape for a in arrays),
                                *(x.shape for g in extra for x in g))
    per_op = _values(m, opts, [tuple(arrays[:3]), *extra], arrays[3], ep, dp, weight_bytes,
                     expert_weight_bytes, act_bytes, kv_bytes)
    mach = Machine.of(h, dtype, weight_bytes, profile, prec.format, eta_c=eta_c, eta_m=eta_m,
                      eta_c_skinny=eta_c_skinny, eta_m_elementwise=eta_m_elementwise,
                      eta_m_quant=eta_m_quant, kernel_overhead=kernel_overhead,
                      step_overhead=step_overhead, layer_overhead=layer_overhead)
    priced = _price_ops(per_op, mach, m.n_layers, shape, arrays[3], ep, weight_bytes,
                        expert_weight_bytes)
    flops = sum(np.broadcast_to(f, shape) for _, f, *_ in per_op)
    nbytes = sum(np.broadcast_to(b, shape) for _, _, b, *_ in per_op)
    return Steps(priced["time"], priced["compute"], priced["memory"], priced["comm"],
                 priced["layer_time"], mach.efficiency.pass_overhead(m.n_layers),
                 np.asarray(flops), np.asarray(nbytes), mach.dtype)


def sweep(m: ModelSpec | str, hw: HardwareSpec | str | Sequence, batch=1, context=1024, tp=1,
          phase: str = "decode", gamma: int = 4, chunk: int = 1,
          weight_bytes: float | None = None, kv_bytes: float = 2,
          act_bytes: float | None = None, dtype: str | None = None,
          quant: str | None = None, engine=None, eta_c: float | None = None,
          eta_m: float | None = None, eta_c_skinny: float | None = None,
          eta_m_elementwise: float | None = None, eta_m_quant: float | None = None,
          kernel_overhead: float | None = None, step_overhead: float | None = None,
          layer_overhead: float | None = None, mem_util: float = 1.0, ep: int = 1,
          expert_weight_bytes: float | None = None, expert_quant: str | None = None,
          **options):
    """The roofline over the cartesian product batch × context × tp × hardware.

    ``phase`` substitutes (q, c) (:mod:`costmodel.workload`). Returns a DataFrame with one row
    per point: hardware, dtype, batch, context, tp, flops, bytes, intensity, time (seconds),
    bound, tokens_per_s and whether weights + KV cache fit in ``mem_util`` of the memory
    (``fits``); with an ``engine``, also ``time_lo`` and ``time_hi``, the ends of its 80 % band
    for the point's regime (NaN where it has none). Precision, ``engine`` and ``ep`` (expert
    parallelism of a mixture of experts: a multiple of every ``tp``, the attention running as
    EP/TP replicas, each holding its own requests' KV cache) as in :func:`costmodel.analyze`.
    """
    check_choice("phase", phase, PHASES)
    m = model_preset(m)
    hws = [hardware_preset(h) for h in (hw if isinstance(hw, (list, tuple)) else [hw])]
    if not hws:
        raise ValueError("hardware: give at least one")
    bs = check_ints("batch", batch)
    cs = check_ints("context", context, 1)
    tps = check_ints("tp", tp)
    for t in np.unique(tps):
        check_tp(m, int(t))
    gamma = check_int("gamma", gamma, 1, MAX_GAMMA)
    chunk = check_int("chunk", chunk)
    profile = None if engine is None else engine_preset(engine)
    if "attention" not in options and profile is not None:
        options["attention"] = profile.attention
    dps = {int(t): check_parallel(m, int(t), ep) for t in np.unique(tps)}
    prec = resolve_weight_bytes(m, weight_bytes, expert_weight_bytes, quant, expert_quant)
    weight_bytes, expert_weight_bytes = prec.weight_bytes, prec.expert_weight_bytes
    act_bytes = default_act_bytes(weight_bytes) if act_bytes is None else act_bytes
    for name, value in (("weight_bytes", weight_bytes), ("kv_bytes", kv_bytes),
                        ("act_bytes", act_bytes)):
        check_element_bytes(name, value)
    check_fraction("mem_util", mem_util)
    opts = Options(**{"kv_cache": writes_cache(phase), **options, "expert_parallel": ep > 1})
    # sparse axes (B × 1 × 1, 1 × C × 1, 1 × 1 × T): each operator is priced on the axes it
    # depends on, and the sums broadcast to the full grid
    B_, C_, T_ = np.meshgrid(bs, cs, tps, indexing="ij", sparse=True)
    shape = np.broadcast_shapes(B_.shape, C_.shape, T_.shape)
    DP_ = np.vectorize(dps.get, otypes=[np.int64])(T_)
    # a q or c the phase fixes (decode's q = 1, prefill's c = 0) is a number, not an axis
    qv, cv = (v.flat[0] if np.all(v == v.flat[0]) else v
              for v in substitute(phase, C_, gamma, chunk))
    per_op = _values(m, opts, [(B_, qv, cv)], T_, ep, DP_, weight_bytes, expert_weight_bytes,
                     act_bytes, kv_bytes)
    flops = np.zeros(shape)
    nbytes = np.zeros(shape)
    for _, f, b, *_ in per_op:
        flops += f
        nbytes += b
    per_gpu = batch_formulas(spec_flags(m), opts.mla, ep > 1)
    kv_gpu = per_gpu["kv_per_request_per_gpu"](**{**model_values(m), "context": cv + qv,
                                                 "tp": T_, "kv_bytes": kv_bytes})
    if ep > 1:   # experts split over EP; each of the DP replicas holds its requests' KV
        weights_gpu = per_gpu["weights_per_gpu"](
            params=param_count(m), expert_params=expert_param_count(m), tp=T_, ep=ep,
            weight_bytes=weight_bytes, expert_weight_bytes=expert_weight_bytes)
        requests_gpu = np.ceil(B_ / DP_)
    else:
        weights_gpu = weight_memory(m, weight_bytes, expert_weight_bytes) / T_
        requests_gpu = B_
    # the no-cache baseline keeps no KV cache between steps: only the weights must fit
    need = np.broadcast_to(weights_gpu + (requests_gpu * kv_gpu if opts.kv_cache else 0),
                           shape)
    regimes = regime(B_, qv, T_, min(weight_bytes, expert_weight_bytes))
    new_tokens = B_ * qv if opts.kv_cache else B_
    n = math.prod(shape)
    tp_axis = T_
    B_, C_, T_ = (np.broadcast_to(a, shape) for a in (B_, C_, T_))
    names = list(dict.fromkeys(h.name for h in hws))
    frames = []
    for h in hws:
        if (tps > 1).any() and h.interconnect_bandwidth <= 0:
            raise ValueError(f"tp: {h.name} has no interconnect bandwidth")
        mach = Machine.of(h, dtype, weight_bytes, profile, prec.format, eta_c=eta_c,
                          eta_m=eta_m, eta_c_skinny=eta_c_skinny,
                          eta_m_elementwise=eta_m_elementwise, eta_m_quant=eta_m_quant,
                          kernel_overhead=kernel_overhead, step_overhead=step_overhead,
                          layer_overhead=layer_overhead)
        sums = _price_ops(per_op, mach, m.n_layers, shape, tp_axis, ep, weight_bytes,
                          expert_weight_bytes)
        time = sums["time"]
        bound = np.where(sums["comm"] > np.maximum(sums["compute"], sums["memory"]),
                         2, np.where(sums["compute"] < sums["memory"], 1, 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            intensity = np.where(nbytes > 0, flops / np.where(nbytes > 0, nbytes, 1), 0.0)
        bands = {}
        if profile is not None:
            lo, hi = np.full(shape, np.nan), np.full(shape, np.nan)
            for name in REGIMES:
                band = mach.efficiency.band(name)
                if band is not None:
                    lo = np.where(regimes == name, band[0], lo)
                    hi = np.where(regimes == name, band[1], hi)
            bands = {"time_lo": (time * lo).ravel(), "time_hi": (time * hi).ravel()}
        frames.append(pd.DataFrame({
            "hardware": pd.Categorical.from_codes(
                np.full(n, names.index(h.name), dtype=np.int16), names),
            "dtype": pd.Categorical.from_codes(
                np.full(n, DTYPES.index(mach.dtype), dtype=np.int8), DTYPES),
            "batch": B_.ravel().astype(np.int64), "context": C_.ravel().astype(np.int64),
            "tp": T_.ravel().astype(np.int64),
            "flops": flops.ravel(), "bytes": nbytes.ravel(), "intensity": intensity.ravel(),
            "time": time.ravel(), **bands,
            "bound": pd.Categorical.from_codes(bound.ravel().astype(np.int8), BOUNDS),
            "tokens_per_s": (new_tokens / time).ravel(),
            "fits": (need <= mem_util * h.memory_bytes).ravel(),
        }))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


__all__ = ["VALUES", "Steps", "steps", "sweep"]
