r"""The one roofline pricing: every time in the package is priced by :func:`price`.

Per operator occurrence, on one GPU of a tensor-parallel group of TP:

    t_op = max( F / (η_c · π),  Q / (η_m · β) ) + t_comm + k · t_kernel

* π is the dense peak FLOP/s of the compute dtype, β the memory bandwidth (bytes/s);
* η_c is the compute efficiency — η_c,skinny for a weight matmul of at most ``skinny_rows``
  rows (decode GEMVs run far below the square-GEMM rate), else η_c (an engine's η_c,8bit when
  the matmuls compute in fp8, int8 or fp4);
* η_m is the bandwidth efficiency — η_m,elementwise for the elementwise and copy passes
  (norms, activations, softmax, residuals, cache writes), else η_m;
* t_comm is a ring all-reduce of m bytes over TP GPUs: 2 (TP − 1) / TP · m / β_link + latency
  (0 when TP = 1); an all-to-all over the EP group; a pipeline stage's point-to-point hand-over
  m / β_link + latency (:func:`p2p_time`);
* k is the operator's kernel launches and t_kernel a fixed cost per launch;
* a weight matmul whose weights are quantized weight-only (dequantized on the fly) streams at
  η_m,quant instead of η_m;
* a pass adds a fixed t_step + L · t_layer (an engine's scheduling, sampling and launch gaps).

Efficiencies come from the hardware (its typed fields), from an engine profile
(:class:`~costmodel.specs.EngineProfile`: ``engine="tuned"``) and from explicit arguments, the
later overriding the earlier.

The datasheet presets are the *ideal* roofline (every η = 1, no overhead); a calibrated or
fitted :class:`~costmodel.specs.HardwareSpec` carries its efficiencies as typed fields, and
:class:`Efficiency` resolves them (with any explicit overrides) for one call. ``analyze``, the
sweep, the generation sums, the speculative cost ratio and the validation's fit all price
through :func:`price`, so a fitted hardware JSON gives the same time everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np

from costmodel.quant import DTYPE_BYTES, Format, dtype_for_bytes
from costmodel.specs import Efficiencies, EngineProfile, HardwareSpec

#: Compute dtypes narrower than 16 bits: an engine profile's ``eta_c_8bit`` prices their GEMMs.
NARROW_DTYPES = ("fp8", "int8", "fp4")
#: Operator kinds priced at the matmul rates; every other kind is an elementwise or copy pass.
MATMUL_KINDS = ("matmul", "attention")
#: The efficiency fields a pricing reads (those of :class:`~costmodel.specs.Efficiencies`).
EFFICIENCY_FIELDS = tuple(f.name for f in fields(Efficiencies))


@dataclass(frozen=True, kw_only=True)
class Efficiency(Efficiencies):
    """The efficiencies one pricing applies (see the module docstring): the hardware's, an
    engine profile's (``engine`` its name, ``bands`` its error bands) and explicit ones."""

    engine: str = ""
    bands: Mapping[str, tuple[float, float]] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, hw: HardwareSpec, engine: EngineProfile | None = None,
           dtype: str | None = None, **overrides: Any) -> Efficiency:
        """The hardware's efficiencies, then the engine profile's, then ``overrides`` (those
        not None) put in. With a narrow compute ``dtype`` (:data:`NARROW_DTYPES`) an engine's
        ``eta_c_8bit`` (where it has one) is its η_c."""
        values = {f.name: getattr(hw, f.name) for f in fields(cls) if hasattr(hw, f.name)}
        if engine is not None:
            values.update({f.name: getattr(engine, f.name) for f in fields(cls)
                           if hasattr(engine, f.name) and f.name != "engine"})
            if dtype in NARROW_DTYPES and engine.eta_c_8bit is not None:
                values["eta_c"] = engine.eta_c_8bit
            values["engine"] = engine.name
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def ideal(self) -> bool:
        return (self.eta_c == 1 and self.eta_m == 1 and self.kernel_overhead == 0
                and self.eta_c_skinny in (None, 1) and self.eta_m_elementwise in (None, 1)
                and self.eta_m_quant in (None, 1) and self.step_overhead == 0
                and self.layer_overhead == 0)

    @cached_property
    def terms(self) -> dict:
        """Keyword arguments of :func:`price`."""
        return {"eta_c": self.eta_c, "eta_m": self.eta_m,
                "eta_c_skinny": self.eta_c if self.eta_c_skinny is None else self.eta_c_skinny,
                "eta_m_elementwise": self.eta_m if self.eta_m_elementwise is None
                else self.eta_m_elementwise,
                "eta_m_quant": self.eta_m if self.eta_m_quant is None else self.eta_m_quant,
                "kernel_overhead": self.kernel_overhead}

    def band(self, regime: str) -> tuple[float, float] | None:
        """The (low, high) factors of the 80 % band on a time of this ``regime``
        (:func:`costmodel.workload.regime`): the engine's band for the regime, else its band
        over all regimes, else None."""
        return self.bands.get(regime, self.bands.get("all"))

    def pass_overhead(self, n_layers: int) -> float:
        """The fixed seconds a pass adds outside its operators: t_step + L · t_layer."""
        return self.step_overhead + n_layers * self.layer_overhead


@dataclass(frozen=True)
class Machine:
    """The numbers of a HardwareSpec one pricing uses, resolved for one compute dtype."""

    peak: float
    bandwidth: float
    link_bandwidth: float
    link_latency: float
    dtype: str
    efficiency: Efficiency

    @property
    def element_bytes(self) -> float:
        """Bytes of one element of the compute dtype: a weight narrower than this is
        dequantized on the fly (weight-only quantization)."""
        return DTYPE_BYTES[self.dtype]

    @classmethod
    def of(cls, hw: HardwareSpec, dtype: str | None = None, weight_bytes: float = 2,
           engine: EngineProfile | None = None, fmt: Format | None = None,
           **overrides: Any) -> Machine:
        """``hw`` priced in ``dtype`` (default: the weight format's compute dtype, else the one
        the weight width implies, :func:`~costmodel.quant.dtype_for_bytes`), with an engine
        profile's efficiencies and explicit ``overrides``. Resolved machines are kept for the
        last few hardware objects (specs are immutable)."""
        key = (id(hw), dtype, weight_bytes >= 4, id(engine), fmt,
               tuple(item for item in overrides.items() if item[1] is not None))
        hit = _MACHINES.get(key)
        if hit is not None and hit[0] is hw and hit[2] is engine:
            return hit[1]
        if dtype is None and fmt is not None:
            dtype = fmt.compute_dtype(hw)
        dtype = resolve_dtype(hw, dtype, weight_bytes)
        eff = Efficiency.of(hw, engine, dtype=dtype, **overrides)
        latency = hw.interconnect_latency if eff.comm_latency is None else eff.comm_latency
        mach = cls(hw.peak(dtype), hw.bandwidth, hw.interconnect_bandwidth, latency, dtype, eff)
        if len(_MACHINES) >= 256:
            _MACHINES.pop(next(iter(_MACHINES)))
        _MACHINES[key] = (hw, mach, engine)   # holding them keeps their ids from being reused
        return mach


_MACHINES: dict[tuple, tuple] = {}


def resolve_dtype(hw: HardwareSpec, dtype: str | None, weight_bytes: float) -> str:
    """The compute dtype: given, or implied by the weight width (see dtype_for_bytes)."""
    if dtype is None:
        return dtype_for_bytes(hw, weight_bytes)
    hw.peak(dtype)  # ValueError naming the dtype if this hardware lacks it
    return dtype


def allreduce_time(comm_bytes, tp, link_bandwidth: float, latency: float):
    """Ring all-reduce of ``comm_bytes`` over ``tp`` GPUs: 2 (TP − 1)/TP · m / β_link + latency,
    0 where there is nothing to reduce or TP = 1 (arrays broadcast)."""
    return _collective(comm_bytes, tp, 2, link_bandwidth, latency)


def alltoall_time(comm_bytes, group, link_bandwidth: float, latency: float):
    """All-to-all of ``comm_bytes`` per GPU over ``group`` GPUs: a share (G − 1)/G of them leaves
    the GPU, (G − 1)/G · m / β_link + latency; 0 where G = 1 (arrays broadcast)."""
    return _collective(comm_bytes, group, 1, link_bandwidth, latency)


def _collective(comm_bytes, group, passes: int, link_bandwidth: float, latency: float):
    """passes · (G − 1)/G · m / β_link + latency over a group of G GPUs; 0 where there is
    nothing to send or G = 1 (arrays broadcast)."""
    scalar = isinstance(group, (int, float, np.integer, np.floating))
    g = float(group) if scalar else np.asarray(group, dtype=float)
    comm = np.asarray(comm_bytes, dtype=float)
    if (scalar and g == 1) or (comm.ndim == 0 and comm <= 0):
        return np.zeros(np.broadcast_shapes(comm.shape, np.shape(g)))
    # (G − 1)/G; an array may hold G = 1 (then 0), a number here is > 1
    share = passes * (g - 1) / (g if scalar else np.maximum(g, 1))
    if link_bandwidth > 0:
        per_byte = share / link_bandwidth
    else:                                   # no link (refused by the callers): infinite time
        with np.errstate(divide="ignore", invalid="ignore"):
            per_byte = np.divide(share, link_bandwidth)
    active = comm > 0 if scalar else (comm > 0) & (g > 1)
    return np.where(active, comm * per_byte + latency, 0.0)


def p2p_time(comm_bytes, link_bandwidth: float, latency: float):
    """Point-to-point send of ``comm_bytes`` to the next GPU (a pipeline stage handing its
    activations on): m / β_link + latency, 0 where there is nothing to send (arrays
    broadcast)."""
    comm = np.asarray(comm_bytes, dtype=float)
    return np.where(comm > 0, comm / link_bandwidth + latency, 0.0)


def comm_time(comm_bytes, alltoall, tp, ep, link_bandwidth: float, latency: float):
    """Communication time of operators: an all-reduce over the TP group, or (where
    ``alltoall``, a mask or ``False`` for none) an all-to-all over the EP group."""
    ar = allreduce_time(comm_bytes, tp, link_bandwidth, latency)
    if alltoall is False or not np.any(alltoall):
        return ar
    return np.where(alltoall, alltoall_time(comm_bytes, ep, link_bandwidth, latency), ar)


def roofline_time(compute_t, memory_t, comm_t=0.0, overhead_t=0.0):
    """max(compute time, memory time) + communication + fixed overhead (arrays broadcast)."""
    return np.maximum(compute_t, memory_t) + comm_t + overhead_t


@dataclass(frozen=True)
class Priced:
    """Times of operator occurrences (arrays shaped like the inputs), in seconds."""

    compute: np.ndarray
    memory: np.ndarray
    comm: np.ndarray
    overhead: np.ndarray
    time: np.ndarray


def price(compute_ideal, memory_ideal, comm, kernels, skinny, streaming, quantized=False, *,
          eta_c=1.0, eta_m=1.0, eta_c_skinny=1.0, eta_m_elementwise=1.0, eta_m_quant=1.0,
          kernel_overhead=0.0) -> Priced:
    """The roofline of operator occurrences.

    ``compute_ideal`` = F / π and ``memory_ideal`` = Q / β (seconds at η = 1), ``comm`` the
    communication time, ``kernels`` the launches of each (0 for an operator that does nothing),
    ``skinny`` / ``streaming`` / ``quantized`` mark weight matmuls of few rows, elementwise and
    copy passes, and weight-only quantized matmuls. The efficiencies may be numbers or arrays
    that broadcast against the operators (the fit searches over them that way).
    """
    ec = np.where(skinny, eta_c_skinny, eta_c)
    em = np.where(streaming, eta_m_elementwise, np.where(quantized, eta_m_quant, eta_m))
    compute = compute_ideal / ec
    memory = memory_ideal / em
    overhead = kernels * kernel_overhead
    return Priced(compute, memory, comm, overhead,
                  roofline_time(compute, memory, comm, overhead))


def op_classes(kinds, rows, skinny_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(skinny, streaming) masks: weight matmuls of at most ``skinny_rows`` rows, and operators
    that are not matmuls or attention matmuls."""
    kinds = np.asarray(kinds)
    skinny = (kinds == "matmul") & (np.asarray(rows) <= skinny_rows)
    streaming = (kinds != MATMUL_KINDS[0]) & (kinds != MATMUL_KINDS[1])
    return skinny, streaming


__all__ = ["EFFICIENCY_FIELDS", "Efficiency", "MATMUL_KINDS", "Machine", "NARROW_DTYPES", "Priced",
           "allreduce_time", "alltoall_time", "comm_time", "op_classes", "p2p_time", "price",
           "resolve_dtype", "roofline_time"]
