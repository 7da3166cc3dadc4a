r"""The roofline over a grid (`sweep`): batch × context × TP × hardware, vectorised.

The same operator expressions as :func:`costmodel.analyze` (one compiled function per model
structure, evaluated on numpy arrays) and the same pricing (:func:`costmodel.pricing.price`,
operator by operator so a million points never need an (operators × points) array). Counts are
float64 (exact up to 2**53, which the checks enforce), so no product can wrap around as int64
would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from costmodel.batch import batch_formulas, check_parallel, check_tp
from costmodel.checks import (
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
from costmodel.roofline import ARGS, default_act_bytes, model_args
from costmodel.specs import DTYPES, HardwareSpec, ModelSpec
from costmodel.symbols import model_values
from costmodel.workload import PHASES, REGIMES, regime, substitute, writes_cache

pd = deferred("pandas")
BOUNDS = ("compute", "memory", "communication")


@dataclass(frozen=True)
class _Totals:
    ops: tuple[Op, ...]
    fn: object


@cache
def _compiled_totals(flags, options: Options) -> _Totals:
    """Per operator (flops, bytes, comm bytes, rows, count) per occurrence."""
    ops = _operators(flags, options)
    return _Totals(ops, compile_numeric(ARGS, [x for op in ops for x in (
        op.flops, op.bytes, op.comm_bytes, op.rows, op.count)]))


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
    B_, C_, T_ = np.meshgrid(bs, cs, tps, indexing="ij")
    DP_ = np.vectorize(dps.get, otypes=[np.int64])(T_)
    qv, cv = substitute(phase, C_, gamma, chunk)
    comp = _compiled_totals(spec_flags(m), opts)
    vals = comp.fn(*model_args(m), B_, qv, cv, T_, ep, DP_, weight_bytes, expert_weight_bytes,
                   act_bytes, kv_bytes)
    per_op = []
    for i, op in enumerate(comp.ops):
        f, b, comm, rows, count = (np.asarray(v, dtype=float) for v in vals[5 * i:5 * i + 5])
        per_op.append((op, f * count, b * count, comm, rows, count))
    shape = B_.shape
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
    need = weights_gpu + (requests_gpu * kv_gpu if opts.kv_cache else 0)
    regimes = regime(B_, qv, T_, min(weight_bytes, expert_weight_bytes))
    new_tokens = B_ * qv if opts.kv_cache else B_
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
        terms = mach.efficiency.terms
        time = np.full(shape, mach.efficiency.pass_overhead(m.n_layers))
        sums = {"compute": np.zeros(shape), "memory": np.zeros(shape),
                "communication": np.zeros(shape)}
        for op, f, b, comm, rows, count in per_op:
            skinny, streaming = op_classes(op.kind, rows, mach.efficiency.skinny_rows)
            op_bytes = expert_weight_bytes if op.name.startswith("experts_") else weight_bytes
            quantized = op.kind == "matmul" and op_bytes < mach.element_bytes
            comm_t = comm_time(comm, op.comm == "alltoall", T_, ep, mach.link_bandwidth,
                               mach.link_latency) * count
            kernels = op.kernels * count * ((f + b) > 0)
            p = price(f / mach.peak, b / mach.bandwidth, comm_t, kernels, skinny, streaming,
                      quantized, **terms)
            time += p.time
            sums["compute"] += p.compute
            sums["memory"] += p.memory
            sums["communication"] += p.comm
        bound = np.where(sums["communication"] > np.maximum(sums["compute"], sums["memory"]),
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
                np.full(B_.size, names.index(h.name), dtype=np.int16), names),
            "dtype": pd.Categorical.from_codes(
                np.full(B_.size, DTYPES.index(mach.dtype), dtype=np.int8), DTYPES),
            "batch": B_.ravel().astype(np.int64), "context": C_.ravel().astype(np.int64),
            "tp": T_.ravel().astype(np.int64),
            "flops": flops.ravel(), "bytes": nbytes.ravel(), "intensity": intensity.ravel(),
            "time": time.ravel(), **bands,
            "bound": pd.Categorical.from_codes(bound.ravel().astype(np.int8), BOUNDS),
            "tokens_per_s": (new_tokens / time).ravel(),
            "fits": (need <= mem_util * h.memory_bytes).ravel(),
        }))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


__all__ = ["sweep"]
