r"""The roofline over the per-operator model, for one configuration or a million at once.

Per operator, on one GPU of the TP group:

    t_op = max( F / (η_c · π),  Q / (η_m · β) ) + t_comm + k · t_kernel

with π the dense peak FLOP/s of the compute dtype, β the memory bandwidth, η_c, η_m efficiencies
(default 1: the ideal roofline), k the operator's kernel launches and t_kernel a fixed cost per
kernel (0 for datasheet presets; measured by ``costmodel calibrate``). A ring all-reduce of m
bytes over TP GPUs costs t_comm = 2 (TP − 1) / TP · m / β_link + latency (0 when TP = 1).
An operator is compute-bound when F / Q exceeds the ridge point π / β (scaled by η_c / η_m).
The pass takes Σ t_op; L layers repeat the per-layer operators.

Everything is evaluated through one ``lambdify`` of the operator expressions (numpy broadcasts),
so a single configuration and a sweep of a million take the same code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
import sympy as sp

from costmodel.batch import check_tp
from costmodel.errors import (
    check_fraction,
    check_nonneg_int,
    check_positive_int,
    check_positive_number,
)
from costmodel.formula import Formula
from costmodel.ops import PARTS, Op, Options, _operators, spec_flags
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.specs import DTYPES, HardwareSpec, ModelSpec, dtype_for_bytes
from costmodel.symbols import TP, B, H, H_kv, L, V, b_a, b_kv, b_w, c, d, d_ff, d_h, q

_ARGS = (L, d, H, H_kv, d_h, d_ff, V, B, q, c, TP, b_w, b_a, b_kv)
_QUANTITIES = ("flops", *PARTS, "comm_bytes")


@cache
def _compiled(flags: tuple, options: Options) -> tuple[tuple[Op, ...], object]:
    ops = _operators(flags, options)
    exprs = [getattr(op, name) for op in ops for name in _QUANTITIES]
    return ops, sp.lambdify(_ARGS, exprs, modules="numpy", cse=True)


@cache
def _compiled_totals(flags: tuple, options: Options) -> tuple[tuple[Op, ...], object]:
    """Per operator (flops, bytes, comm bytes) only — the sweep's fast path."""
    ops = _operators(flags, options)
    exprs = [x for op in ops for x in (op.flops, op.bytes, op.comm_bytes)]
    return ops, sp.lambdify(_ARGS, exprs, modules="numpy", cse=True)


def evaluate_ops(m: ModelSpec, options: Options, batch, new_tokens, cached_tokens, tp,
                 weight_bytes, act_bytes, kv_bytes) -> tuple[tuple[Op, ...], np.ndarray]:
    """Per-operator quantities, shape (n_ops, 7, *broadcast shape): flops, five byte parts,
    comm bytes — per occurrence (multiply per-layer operators by L for the pass)."""
    ops, fn = _compiled(spec_flags(m), options)
    values = fn(m.n_layers, m.d_model, m.n_heads, m.n_kv_heads, m.head_dim, m.d_ff,
                m.vocab_size, batch, new_tokens, cached_tokens, tp, weight_bytes, act_bytes,
                kv_bytes)
    shape = np.broadcast_shapes(*(np.shape(x) for x in (batch, new_tokens, cached_tokens, tp,
                                                        weight_bytes, act_bytes, kv_bytes)))
    arr = np.empty((len(ops), len(_QUANTITIES), *shape))
    for i, v in enumerate(values):
        arr[divmod(i, len(_QUANTITIES))] = v
    arr[:, -1] *= np.asarray(tp) > 1      # no communication without tensor parallelism
    return ops, arr


@dataclass(frozen=True)
class Machine:
    """The numbers of a HardwareSpec the roofline uses, resolved for one dtype."""

    peak: float
    bandwidth: float
    link_bandwidth: float
    link_latency: float
    kernel_overhead: float
    dtype: str

    @classmethod
    def of(cls, hw: HardwareSpec, dtype: str, kernel_overhead: float | None = None) -> Machine:
        return cls(hw.peak(dtype), hw.bandwidth, hw.interconnect_bandwidth,
                   hw.interconnect_latency,
                   hw.kernel_overhead if kernel_overhead is None else kernel_overhead, dtype)


def roofline_time(compute_t, memory_t, comm_t=0.0, overhead_t=0.0):
    """The roofline of an operator: max(compute time, memory time) + communication + fixed
    overhead (arrays broadcast). Every timing in the package goes through this line."""
    return np.maximum(compute_t, memory_t) + comm_t + overhead_t


def op_times(arr: np.ndarray, ops: Sequence[Op], tp, peak, bandwidth, link_bandwidth,
             link_latency, kernel_overhead, eta_c=1.0, eta_m=1.0) -> dict[str, np.ndarray]:
    """Roofline times per operator occurrence (arrays shaped like ``arr[:, 0]``)."""
    flops = arr[:, 0]
    nbytes = arr[:, 1:6].sum(axis=1)
    comm = arr[:, 6]
    compute_t = flops / (eta_c * peak)
    memory_t = nbytes / (eta_m * bandwidth)
    tp = np.asarray(tp, dtype=float)
    ring = np.where(tp > 1, 2 * (tp - 1) / tp, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        comm_t = np.where(comm > 0, ring * comm / link_bandwidth + np.where(tp > 1,
                                                                          link_latency, 0), 0.0)
    kernels = np.array([op.kernels for op in ops], dtype=float).reshape(
        (-1,) + (1,) * (arr.ndim - 2))
    active = (flops + nbytes) > 0
    overhead = np.where(active, kernels * kernel_overhead, 0.0)
    time = roofline_time(compute_t, memory_t, comm_t, overhead)
    return {"flops": flops, "bytes": nbytes, "comm_bytes": comm, "compute_time": compute_t,
            "memory_time": memory_t, "comm_time": comm_t, "overhead_time": overhead,
            "time": time}


@dataclass
class Analysis:
    """One forward pass on one GPU of the TP group: per-operator table and totals.

    ``ops`` has one row per operator with its totals over the layers (``count`` = L or 1):
    flops, bytes and its five parts, comm_bytes, intensity (FLOPs/byte), compute/memory/comm
    time, time and bound. Totals: ``flops``, ``bytes``, ``time`` (Σ operator times), ``bound``
    (what dominates the pass: compute, memory or communication time summed over operators).
    """

    model: ModelSpec
    hardware: HardwareSpec
    workload: dict
    dtype: str
    ops: pd.DataFrame
    options: Options = field(default_factory=Options)

    @property
    def flops(self) -> float:
        return float(self.ops["flops"].sum())

    @property
    def bytes(self) -> float:
        return float(self.ops["bytes"].sum())

    @property
    def comm_bytes(self) -> float:
        return float(self.ops["comm_bytes"].sum())

    @property
    def time(self) -> float:
        """Seconds for the pass: Σ over operators of their roofline time."""
        return float(self.ops["time"].sum())

    @property
    def compute_time(self) -> float:
        return float(self.ops["compute_time"].sum())

    @property
    def memory_time(self) -> float:
        return float(self.ops["memory_time"].sum())

    @property
    def comm_time(self) -> float:
        return float(self.ops["comm_time"].sum())

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
        return int(self.workload["batch"] * self.workload["new_tokens"])

    def by_block(self) -> pd.DataFrame:
        """FLOPs, bytes and time summed per block (attention, mlp, norm, ...)."""
        cols = ["flops", "bytes", *PARTS, "comm_bytes", "time"]
        return self.ops.groupby("block", sort=False)[cols].sum()

    def summary(self) -> dict:
        return {"model": self.model.name, "hardware": self.hardware.name, "dtype": self.dtype,
                **self.workload, "flops": self.flops, "bytes": self.bytes,
                "intensity": self.intensity, "ridge_point": self.ridge_point,
                "time_s": self.time, "bound": self.bound}


def _check_workload(m, batch, new_tokens, cached_tokens, tp, weight_bytes, kv_bytes, act_bytes,
                    eta_c, eta_m):
    check_positive_int("batch", batch)
    if isinstance(new_tokens, (int, np.integer)) and not isinstance(new_tokens, bool) \
            and new_tokens < 0:
        raise ValueError(f"new_tokens: must be a positive integer (q >= 1), got {new_tokens}")
    check_positive_int("new_tokens", new_tokens)
    if isinstance(cached_tokens, (int, np.integer)) and cached_tokens < 0:
        raise ValueError(f"cached_tokens: must be an integer >= 0 (c >= 0), got {cached_tokens}")
    check_nonneg_int("cached_tokens", cached_tokens)
    check_tp(m, tp)
    check_positive_number("weight_bytes", weight_bytes)
    check_positive_number("kv_bytes", kv_bytes)
    check_positive_number("act_bytes", act_bytes)
    check_fraction("eta_c", eta_c)
    check_fraction("eta_m", eta_m)


def resolve_dtype(hw: HardwareSpec, dtype: str | None, weight_bytes: float) -> str:
    """The compute dtype: given, or implied by the weight width (see dtype_for_bytes)."""
    if dtype is None:
        return dtype_for_bytes(hw, weight_bytes)
    hw.peak(dtype)  # ValueError naming the dtype if this hardware lacks it
    return dtype


def analyze(m: ModelSpec | str, hw: HardwareSpec | str, batch: int = 1, new_tokens: int = 1,
            cached_tokens: int = 0, tp: int = 1, weight_bytes: float = 2, kv_bytes: float = 2,
            act_bytes: float | None = None, dtype: str | None = None,
            attention: str = "standard", causal: str = "full", lm_head: str = "last",
            fused_qkv: bool = True, kv_cache: bool = True, kv_sharing: str = "per_request",
            mask: bool = True, kv_update: str = "inplace", eta_c: float = 1.0, eta_m: float = 1.0,
            kernel_overhead: float | None = None) -> Analysis:
    """Roofline analysis of one forward pass: ``batch`` sequences each adding ``new_tokens``
    tokens (q) on top of ``cached_tokens`` (c) already in the KV cache.

    ``act_bytes`` defaults to 2 (16-bit activations) unless weights are fp32 (then 4).
    ``dtype`` picks the peak FLOP/s (default from ``weight_bytes``). See :mod:`costmodel.ops`
    for the other options.
    """
    m, hw = model_preset(m), hardware_preset(hw)
    act_bytes = act_bytes if act_bytes is not None else (4 if weight_bytes >= 4 else 2)
    _check_workload(m, batch, new_tokens, cached_tokens, tp, weight_bytes, kv_bytes, act_bytes,
                    eta_c, eta_m)
    if tp > 1 and hw.interconnect_bandwidth <= 0:
        raise ValueError(f"tp: {hw.name} has no interconnect bandwidth, so TP={tp} cannot be "
                         "modelled; give interconnect_bandwidth")
    dtype = resolve_dtype(hw, dtype, weight_bytes)
    options = Options(attention=attention, causal=causal, lm_head=lm_head, fused_qkv=fused_qkv,
                      kv_cache=kv_cache, kv_sharing=kv_sharing, mask=mask, kv_update=kv_update)
    ops, arr = evaluate_ops(m, options, batch, new_tokens, cached_tokens, tp, weight_bytes,
                            act_bytes, kv_bytes)
    mach = Machine.of(hw, dtype, kernel_overhead)
    t = op_times(arr, ops, tp, mach.peak, mach.bandwidth, mach.link_bandwidth,
                 mach.link_latency, mach.kernel_overhead, eta_c, eta_m)
    count = np.array([m.n_layers if op.per_layer else 1 for op in ops], dtype=float)
    df = pd.DataFrame({"op": [op.name for op in ops], "kind": [op.kind for op in ops],
                       "block": [op.block for op in ops], "count": count.astype(int)})
    for i, part in enumerate(PARTS, start=1):
        df[part] = arr[:, i] * count
    for key in ("flops", "bytes", "comm_bytes", "compute_time", "memory_time", "comm_time",
                "overhead_time", "time"):
        df[key] = t[key] * count
    with np.errstate(divide="ignore", invalid="ignore"):
        df["intensity"] = np.where(df["bytes"] > 0, df["flops"] / df["bytes"].where(
            df["bytes"] > 0, 1), np.nan)
    df["bound"] = np.select(
        [df["comm_time"] > 0, df["compute_time"] >= df["memory_time"]],
        ["communication", "compute"], "memory")
    df.loc[(df["flops"] == 0) & (df["bytes"] == 0) & (df["comm_bytes"] == 0), "bound"] = "-"
    df = df[~((df["flops"] == 0) & (df["bytes"] == 0) & (df["comm_bytes"] == 0))]
    cols = ["op", "kind", "block", "count", "flops", "bytes", *PARTS, "comm_bytes", "intensity",
            "compute_time", "memory_time", "comm_time", "overhead_time", "time", "bound"]
    workload = {"batch": batch, "new_tokens": new_tokens, "cached_tokens": cached_tokens,
                "tp": tp, "weight_bytes": weight_bytes, "kv_bytes": kv_bytes,
                "act_bytes": act_bytes, "eta_c": eta_c, "eta_m": eta_m}
    return Analysis(m, hw, workload, dtype, df[cols].reset_index(drop=True), options)


# ---------------------------------------------------------------- phases are substitutions
def prefill(m, hw, prompt: int, batch: int = 1, **kw) -> Analysis:
    """Prefill of a ``prompt``-token prompt: q = s, c = 0."""
    return analyze(m, hw, batch=batch, new_tokens=prompt, cached_tokens=0, **kw)


def decode_step(m, hw, context: int, batch: int = 1, **kw) -> Analysis:
    """One decode step with ``context`` tokens in the cache: q = 1, c = s."""
    return analyze(m, hw, batch=batch, new_tokens=1, cached_tokens=context, **kw)


def no_cache_step(m, hw, context: int, batch: int = 1, **kw) -> Analysis:
    """One step of the no-KV-cache baseline that re-encodes all ``context`` tokens: q = T,
    c = 0, nothing written to a cache."""
    return analyze(m, hw, batch=batch, new_tokens=context, cached_tokens=0, kv_cache=False, **kw)


def verify_step(m, hw, gamma: int, context: int, batch: int = 1, **kw) -> Analysis:
    """The target's speculative verification of γ drafted tokens: q = γ + 1, c = s."""
    return analyze(m, hw, batch=batch, new_tokens=gamma + 1, cached_tokens=context, **kw)


# ---------------------------------------------------------------- generation over a context
def sum_max_linear(a0, a1, b0, b1, lo, n):
    """Σ_{k=0}^{n-1} max(a0 + a1·x, b0 + b1·x) with x = lo + k, in closed form (arrays OK).

    The difference of two lines changes sign at most once, so the sum splits into two
    arithmetic series at the crossing."""
    a0, a1, b0, b1, lo, n = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                  for v in (a0, a1, b0, b1, lo, n)))

    def series(x0, x1, start, count):  # Σ_{k=0}^{count-1} x0 + x1·(start + k)
        return count * x0 + x1 * (count * start + count * (count - 1) / 2)

    da0, da1 = a0 - b0, a1 - b1        # a − b = da0 + da1·x, changes sign at x = root
    first_a = (da0 + da1 * lo) >= 0     # which line is on top at the first term
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rel = np.where(da1 != 0, -da0 / np.where(da1 != 0, da1, 1), 0) - lo
    # j = number of leading terms that stay on the first term's side
    j = np.where(first_a & (da1 < 0), np.floor(rel) + 1,
                 np.where(~first_a & (da1 > 0), np.ceil(rel), n))
    j = np.clip(j, 0, n)
    head_a = series(a0, a1, lo, j)
    head_b = series(b0, b1, lo, j)
    tail_a = series(a0, a1, lo + j, n - j)
    tail_b = series(b0, b1, lo + j, n - j)
    return np.where(first_a, head_a + tail_b, head_b + tail_a)


@dataclass(frozen=True)
class Generation:
    """Serving one batch: prefill, then ``generate − 1`` decode steps over a growing context."""

    prefill: Analysis
    first_decode: Analysis
    ttft: float                   # seconds to the first token (the prefill pass)
    tpot_first: float             # seconds per output token at context = prompt
    decode_time: float            # seconds for all decode steps (closed-form sum)
    total_time: float             # ttft + decode_time
    tokens: int                   # batch · generate
    batch: int
    generate: int

    @property
    def tpot_mean(self) -> float:
        return self.decode_time / max(self.generate - 1, 1)

    @property
    def throughput(self) -> float:
        """Generated tokens per second over the whole request (all sequences)."""
        return self.tokens / self.total_time


def generation(m, hw, prompt: int, generate: int, batch: int = 1, **kw) -> Generation:
    """TTFT, time per output token and total time for ``generate`` tokens after a ``prompt``.

    The first token comes from the prefill; token k+1 (k = 1 … g−1) from a decode step with
    c = s + k − 1. Each operator's compute and memory time are linear in c, so the sum over the
    growing context is an arithmetic series on each side of the compute/memory crossing
    (:func:`sum_max_linear`): no loop over tokens.
    """
    check_positive_int("prompt", prompt)
    check_positive_int("generate", generate)
    pre = prefill(m, hw, prompt, batch, **kw)
    d0 = decode_step(m, hw, prompt, batch, **kw)
    d1 = decode_step(m, hw, prompt + 1, batch, **kw)
    n = generate - 1
    o0, o1 = d0.ops, d1.ops
    fixed = o0["comm_time"] + o0["overhead_time"]
    per_op = sum_max_linear(o0["compute_time"], o1["compute_time"] - o0["compute_time"],
                            o0["memory_time"], o1["memory_time"] - o0["memory_time"], 0, n)
    decode_time = float(np.sum(per_op) + n * fixed.sum())
    return Generation(pre, d0, pre.time, d0.time, decode_time, pre.time + decode_time,
                      batch * generate, batch, generate)


# ---------------------------------------------------------------- sweeps
PHASES = ("decode", "prefill", "no_cache", "verify")


def sweep(m: ModelSpec | str, hw: HardwareSpec | str | Sequence, batch=1, context=1024, tp=1,
          phase: str = "decode", gamma: int = 4, weight_bytes: float = 2, kv_bytes: float = 2,
          act_bytes: float | None = None, dtype: str | None = None, eta_c: float = 1.0,
          eta_m: float = 1.0, kernel_overhead: float | None = None, mem_util: float = 1.0,
          **options) -> pd.DataFrame:
    """The roofline over the cartesian product batch × context × tp × hardware, vectorised.

    ``phase`` substitutes (q, c): decode (1, s), prefill (s, 0), no_cache (s, 0, no cache
    writes), verify (γ+1, s). Returns one row per point: flops, bytes, intensity, time, bound,
    tokens_per_s and whether weights + KV cache fit in memory (``fits``).
    """
    from costmodel.batch import KV_PER_REQUEST_PER_GPU
    from costmodel.params import param_count

    if phase not in PHASES:
        from costmodel.errors import check_choice
        check_choice("phase", phase, PHASES)
    m = model_preset(m)
    hws = [hardware_preset(h) for h in (hw if isinstance(hw, (list, tuple)) else [hw])]
    bs = np.atleast_1d(np.asarray(batch, dtype=np.int64))
    cs = np.atleast_1d(np.asarray(context, dtype=np.int64))
    tps = np.atleast_1d(np.asarray(tp, dtype=np.int64))
    if (bs <= 0).any():
        raise ValueError("batch: every value must be a positive integer")
    if (cs <= 0).any():
        raise ValueError("context: every value must be a positive integer")
    for t in np.unique(tps):
        check_tp(m, int(t))
    act_bytes = act_bytes if act_bytes is not None else (4 if weight_bytes >= 4 else 2)
    opts = Options(**{"kv_cache": phase != "no_cache", **options})
    B_, C_, T_ = np.meshgrid(bs, cs, tps, indexing="ij")
    if phase == "decode":
        qv, cv = np.ones_like(C_), C_
    elif phase == "verify":
        qv, cv = np.full_like(C_, gamma + 1), C_
    else:
        qv, cv = C_, np.zeros_like(C_)
    ops, fn = _compiled_totals(spec_flags(m), opts)
    vals = fn(m.n_layers, m.d_model, m.n_heads, m.n_kv_heads, m.head_dim, m.d_ff, m.vocab_size,
              B_, qv, cv, T_, weight_bytes, act_bytes, kv_bytes)
    # per op: (flops, bytes, comm) × occurrences, left un-broadcast where they can be
    per_op = [(op, *(np.asarray(v, dtype=float) * (m.n_layers if op.per_layer else 1)
                     for v in vals[3 * i:3 * i + 3])) for i, op in enumerate(ops)]
    shape = B_.shape
    flops = np.zeros(shape)
    nbytes = np.zeros(shape)
    for _, f, b, _ in per_op:
        flops += f
        nbytes += b
    n_params = param_count(m)
    kv_gpu = KV_PER_REQUEST_PER_GPU(n_layers=m.n_layers, n_kv_heads=m.n_kv_heads,
                                    head_dim=m.head_dim, context=cv + qv, tp=T_,
                                    kv_bytes=kv_bytes)
    # the no-cache baseline keeps no KV cache between steps: only the weights must fit
    need = n_params * weight_bytes / T_ + (0 if phase == "no_cache" else B_ * kv_gpu)
    tpf = T_.astype(float)
    ring = np.where(tpf > 1, 2 * (tpf - 1) / tpf, 0.0)
    new_tokens = B_ * qv if phase != "no_cache" else B_
    frames = []
    names = list(dict.fromkeys(h.name for h in hws))
    for h in hws:
        if (tps > 1).any() and h.interconnect_bandwidth <= 0:
            raise ValueError(f"tp: {h.name} has no interconnect bandwidth")
        mach = Machine.of(h, resolve_dtype(h, dtype, weight_bytes), kernel_overhead)
        peak, bw = eta_c * mach.peak, eta_m * mach.bandwidth
        ratio = peak / bw
        time = np.zeros(shape)       # accumulates peak · t (divided by peak at the end)
        comm_time = np.zeros(shape)
        compute = flops / peak
        for op, f, b, comm in per_op:
            t = roofline_time(f, b * ratio)   # in units of peak · seconds
            time += t
            if op.kernels and mach.kernel_overhead:
                time += op.kernels * mach.kernel_overhead * peak * \
                    (m.n_layers if op.per_layer else 1) * ((f + b) > 0)
            if comm.any() and (tpf > 1).any():
                comm_time += comm * ring / max(mach.link_bandwidth, 1e-30) + \
                    np.where(tpf > 1, mach.link_latency, 0) * (m.n_layers if op.per_layer else 1)
        time = time / peak + comm_time
        memory = nbytes / bw
        bound = np.where(comm_time > np.maximum(compute, memory), 2,
                         np.where(compute < memory, 1, 0))
        frames.append(pd.DataFrame({
            "hardware": pd.Categorical.from_codes(
                np.full(B_.size, names.index(h.name), dtype=np.int16), names),
            "dtype": pd.Categorical.from_codes(
                np.full(B_.size, DTYPES.index(mach.dtype), dtype=np.int8), DTYPES),
            "batch": B_.ravel(), "context": C_.ravel(), "tp": T_.ravel(),
            "flops": flops.ravel(), "bytes": nbytes.ravel(),
            "intensity": (flops / nbytes).ravel(), "time_s": time.ravel(),
            "bound": pd.Categorical.from_codes(bound.ravel().astype(np.int8),
                                               ["compute", "memory", "communication"]),
            "tokens_per_s": (new_tokens / time).ravel(),
            "fits": (need <= mem_util * h.memory_bytes).ravel(),
        }))
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def sweep_grid_size(*axes: Sequence) -> int:
    """Number of points of a cartesian product (for benchmarks and progress messages)."""
    return int(np.prod([len(a) for a in axes]))


def loop_reference(m, hw, points: Sequence[tuple[int, int, int]], **kw) -> list[float]:
    """A plain Python loop over (batch, context, tp) calling :func:`decode_step` point by point —
    the baseline the sweep benchmark compares against."""
    return [decode_step(m, hw, context=ctx, batch=b, tp=t, **kw).time
            for b, ctx, t in points]


__all__ = ["Analysis", "Generation", "Machine", "analyze", "decode_step", "evaluate_ops",
           "generation", "no_cache_step", "op_times", "prefill", "roofline_time",
           "sum_max_linear", "sweep", "verify_step"]


# ---------------------------------------------------------------- symbolic: B_crit, Σ decode
@cache
def _critical_batch_expr(flags: tuple, options: Options) -> sp.Expr:
    from costmodel.ops import total_expr
    from costmodel.symbols import beta, eta_c, eta_m, pi, s

    F = total_expr(flags, "flops", options).subs({q: 1, c: s, TP: 1})
    Q = total_expr(flags, "bytes", options).subs({q: 1, c: s, TP: 1})
    (solution,) = sp.solve(sp.Eq(F / (eta_c * pi), Q / (eta_m * beta)), B)
    return sp.simplify(solution)


def critical_batch_formula(m: ModelSpec | str, **options) -> Formula:
    """B_crit: the decode batch at which the pass's compute time equals its memory time,
    F(B)/(η_c·π) = Q(B)/(η_m·β) solved for B (TP = 1, context s). Both sides are linear in B;
    with weights dominating, B_crit ≈ (π/β)·(b_w/2) — the ridge point (scaling-book)."""
    m = model_preset(m)
    return Formula("critical_batch", _critical_batch_expr(spec_flags(m), Options(**options)),
                   "requests", "decode batch where compute time = memory time",
                   symbol=r"B_{\mathrm{crit}}")


def critical_batch(m: ModelSpec | str, hw: HardwareSpec | str, context: int,
                   weight_bytes: float = 2, kv_bytes: float = 2, act_bytes: float | None = None,
                   dtype: str | None = None, eta_c: float = 1.0, eta_m: float = 1.0,
                   **options) -> float:
    """Numeric B_crit (float; ``inf`` when decode never turns compute-bound, e.g. when each
    request's KV reads alone keep the intensity under the ridge point)."""
    from costmodel.symbols import model_values

    m, hw = model_preset(m), hardware_preset(hw)
    check_positive_int("context", context)
    act_bytes = act_bytes if act_bytes is not None else (4 if weight_bytes >= 4 else 2)
    f = critical_batch_formula(m, **options)
    values = dict(model_values(m), context=context, weight_bytes=weight_bytes,
                  kv_bytes=kv_bytes, act_bytes=act_bytes, eta_c=eta_c, eta_m=eta_m,
                  peak=hw.peak(resolve_dtype(hw, dtype, weight_bytes)),
                  bandwidth=hw.bandwidth)
    value = float(f(**{k: v for k, v in values.items() if k in f.free_names}))
    return value if value > 0 else float("inf")


def decode_time_formula(m: ModelSpec | str, **options) -> Formula:
    """Σ_{j=0}^{g−2} Q(q=1, c=s+j) / (η_m·β): all decode steps of a g-token generation after an
    s-token prompt when every step is memory-bound, summed in closed form (sympy)."""
    from costmodel.ops import total_expr
    from costmodel.symbols import beta, eta_m, g, s

    m = model_preset(m)
    j = sp.Symbol("j", nonnegative=True, integer=True)
    Q = total_expr(spec_flags(m), "bytes", Options(**options)).subs({q: 1, TP: 1, c: s + j})
    total_bytes = sp.factor_terms(sp.expand(sp.summation(sp.expand(Q), (j, 0, g - 2))))
    return Formula("decode_time", total_bytes / (eta_m * beta), "s",
                   "memory-bound time of all decode steps (closed form)",
                   symbol=r"T_{\mathrm{decode}}")
