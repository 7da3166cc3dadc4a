r"""One configuration served: its memory, its steady state under continuous batching, its
cost and energy — :func:`serve`.

A *deployment* is one engine instance: a GPU type, TP × PP GPUs (with expert parallelism, EP
GPUs per stage hold the experts and the attention runs as EP/TP replicas), a weight format, a
KV-cache width and an engine profile. Its steps are priced by :func:`costmodel.grid.steps` (the
pricing of :func:`costmodel.analyze` with ``groups``): D decode rows at the mean decode context
beside P prompt tokens as P/s prompts of s tokens; with PP > 1 the step of one micro-batch is a
pipeline cycle (:mod:`costmodel.plan.pipeline`) and the engine runs PP micro-batches, each
serving 1/PP of the arrivals with its own max_num_seqs and token budget.

An error band turns a point into a percentile: ``percentile=90`` prices every step at the upper
edge of the engine profile's 80 % band for its regime (10: the lower edge; 50: the point).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import costmodel.plan.batching as batching
import costmodel.plan.cost as cost
from costmodel.batch import check_parallel, check_tp
from costmodel.checks import check_choice, check_element_bytes, check_int, check_positive_int
from costmodel.grid import steps
from costmodel.params import resolve_weight_bytes
from costmodel.plan.memory import (
    BLOCK_SIZE,
    GPU_MEMORY_UTILIZATION,
    ServingMemory,
    serving_memory,
)
from costmodel.plan.pipeline import cycle_time
from costmodel.presets import engine as engine_preset
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.pricing import Efficiency
from costmodel.roofline import default_act_bytes
from costmodel.specs import EngineProfile, HardwareSpec, ModelSpec
from costmodel.workload import regime

PERCENTILES = (10, 50, 90)
DEFAULT_ENGINE = "tuned"


@dataclass(frozen=True)
class Deployment:
    """One engine instance: hardware, parallelism, precision and engine profile."""

    model: ModelSpec
    hardware: HardwareSpec
    tp: int = 1
    pp: int = 1
    ep: int = 1
    quant: str | None = None
    kv_bytes: float = 2
    engine: EngineProfile | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "model", model_preset(self.model))
        put(self, "hardware", hardware_preset(self.hardware))
        m = self.model
        check_tp(m, self.tp)
        put(self, "pp", check_int("pp", self.pp, 1, m.n_layers))
        check_parallel(m, self.tp, self.ep)
        check_element_bytes("kv_bytes", self.kv_bytes)
        if self.engine is not None:
            put(self, "engine", engine_preset(self.engine))
        if self.gpus > 1 and self.hardware.interconnect_bandwidth <= 0:
            raise ValueError(f"tp: {self.hardware.name} has no interconnect bandwidth, so a "
                             f"group of {self.gpus} GPUs cannot be modelled")
        resolve_weight_bytes(m, quant=self.quant)

    @property
    def gpus(self) -> int:
        """GPUs of one instance: max(TP, EP) per stage × PP stages."""
        return max(self.tp, self.ep) * self.pp

    @property
    def precision(self):
        return resolve_weight_bytes(self.model, quant=self.quant)

    def label(self) -> str:
        ep = f" EP{self.ep}" if self.ep > 1 else ""
        pp = f" PP{self.pp}" if self.pp > 1 else ""
        return (f"{self.hardware.name} TP{self.tp}{pp}{ep} "
                f"{self.quant or self.model.weight_format or 'bf16'}")


def band_factors(dep: Deployment, percentile: int) -> tuple[float, float]:
    """(decode-step factor, prompt-step factor) of a percentile from the engine's 80 % band
    for the regime of each kind of step; (1, 1) at the 50th."""
    check_choice("percentile", str(percentile), [str(p) for p in PERCENTILES])
    if percentile == 50:
        return 1.0, 1.0
    eff = Efficiency.of(dep.hardware, dep.engine)
    wb = min(dep.precision.weight_bytes, dep.precision.expert_weight_bytes)
    out = []
    for q in (1, 2):
        name = regime(2, q, dep.tp * dep.pp, wb)
        band = eff.bands.get(name, eff.bands.get("all"))
        if band is None:
            engine = dep.engine.name if dep.engine is not None else "none"
            raise ValueError(f"percentile: engine {engine!r} has no error band for the "
                             f"{name!r} regime (bands come from `costmodel validate "
                             "--published`); use percentile=50")
        out.append(band[1] if percentile == 90 else band[0])
    return out[0], out[1]


def step_function(dep: Deployment, input_len: float, output_len: float,
                  percentile: int = 50):
    """``step(D, P)``: seconds of a step of D decoding requests (at the mean decode context)
    and P prompt tokens, for one micro-batch of ``dep`` — arrays in, arrays out."""
    m, h = dep.model, dep.hardware
    s = float(input_len)
    context = float(batching.decode_context(input_len, output_len))
    prec = dep.precision
    act_bytes = default_act_bytes(prec.weight_bytes)
    f_decode, f_prompt = band_factors(dep, percentile)

    def step(D, P):
        D = np.asarray(D, dtype=float)
        P = np.asarray(P, dtype=float)
        st = steps(m, h, D, 1.0, context, dep.tp, dep.ep,
                   groups=[(P / s, np.where(P > 0, s, 0.0), 0.0)], quant=dep.quant,
                   kv_bytes=dep.kv_bytes, engine=dep.engine)
        t = cycle_time(st.time, st.layer_time, D + P, m.n_layers, dep.pp, m.d_model,
                       act_bytes, h.interconnect_bandwidth, h.interconnect_latency)
        return t * np.where(P > 0, f_prompt, f_decode)

    return step


@dataclass(frozen=True)
class Serving:
    """One deployment serving a traffic: memory, steady state, cost and energy."""

    deployment: Deployment
    traffic: batching.Traffic
    replicas: int
    max_batched_tokens: int
    max_concurrency: int
    memory: ServingMemory
    ttft: float
    tpot: float
    step: float
    decode_step: float
    prompt_step: float
    decode_batch: float
    prompt_tokens: float
    prefill_share: float
    saturation_rate: float          # per instance, requests/s
    utilization: float
    usd_per_gpu_hour: float
    money: dict = field(repr=False)
    energy: dict = field(repr=False)
    percentile: int = 50

    @property
    def gpus(self) -> int:
        return self.replicas * self.deployment.gpus

    @property
    def output_tokens_per_s(self) -> float:
        return self.traffic.rate * self.traffic.output_len

    @property
    def tokens_per_s_per_gpu(self) -> float:
        """Output tokens per second per GPU."""
        return self.output_tokens_per_s / self.gpus

    @property
    def tokens_per_s_per_user(self) -> float:
        """Output tokens per second one request sees while it decodes: 1 / TPOT."""
        return 1 / self.tpot

    def summary(self) -> dict:
        return {"deployment": self.deployment.label(), "replicas": self.replicas,
                "gpus": self.gpus, "max_batched_tokens": self.max_batched_tokens,
                "max_concurrency": self.max_concurrency, "ttft_s": self.ttft,
                "tpot_s": self.tpot, "utilization": self.utilization,
                "saturation_rate": self.saturation_rate,
                "kv_tokens": self.memory.kv_tokens,
                "tokens_per_s_per_gpu": self.tokens_per_s_per_gpu,
                "tokens_per_s_per_user": self.tokens_per_s_per_user,
                **{k: float(v) for k, v in self.money.items()},
                **{k: float(v) for k, v in self.energy.items()}}


def utilisation(ttft, tpot, output_len, rate):
    """Power-model utilisation: the share of time the engine runs steps, 1 − e^(−L) with
    L = λ·(TTFT + (n − 1)·TPOT) requests in the system (a step running counts as full load,
    so the power is an upper bound for decode-heavy steps)."""
    in_system = np.asarray(rate, dtype=float) * (np.asarray(ttft) + (np.asarray(output_len) - 1)
                                                 * np.asarray(tpot))
    return -np.expm1(-np.where(np.isfinite(in_system), in_system, 1e9))


def serve(m: ModelSpec | str, hw: HardwareSpec | str, rate: float, input_len: float,
          output_len: float, *, tp: int = 1, pp: int = 1, ep: int = 1,
          quant: str | None = None, kv_bytes: float = 2, engine=DEFAULT_ENGINE,
          replicas: int = 1, max_batched_tokens: int = 8192, max_concurrency: int = 256,
          arrivals: str = "poisson", input_spread: float = 0.0, output_spread: float = 0.0,
          percentile: int = 50, gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
          block_size: int = BLOCK_SIZE, prices: dict | None = None) -> Serving:
    """``replicas`` instances of one deployment serving ``rate`` requests/s in all: memory,
    TTFT, TPOT, saturation, $ and J (see :mod:`costmodel.plan`). A max_concurrency the KV
    cache cannot hold is refused with what it holds."""
    dep = Deployment(m, hw, tp, pp, ep, quant, kv_bytes, engine)
    traffic = batching.Traffic(rate, input_len, output_len, input_spread, output_spread,
                               arrivals)
    replicas = check_positive_int("replicas", replicas)
    K = check_int("max_batched_tokens", max_batched_tokens, 1, 2**24)
    N = check_int("max_concurrency", max_concurrency, 1, 2**24)
    mem = serving_memory(dep.model, dep.hardware, tp=tp, pp=pp, ep=ep, quant=quant,
                         kv_bytes=kv_bytes, gpu_memory_utilization=gpu_memory_utilization,
                         max_num_batched_tokens=K, max_num_seqs=N,
                         request_len=traffic.request_len, block_size=block_size)
    if mem.max_requests < N * dep.pp:
        raise ValueError(f"max_concurrency: {N} requests of {traffic.request_len:,} tokens "
                         f"(× {dep.pp} micro-batches) need more KV cache than "
                         f"{dep.label()} holds ({mem.max_requests} requests: {mem.reason})")
    if K < N:
        raise ValueError(f"max_batched_tokens: {K} is below max_concurrency={N}; a step must "
                         "hold one token of every running request")
    step = step_function(dep, traffic.input_len, traffic.output_len, percentile)
    lam = traffic.rate / replicas / dep.pp
    ss = batching.steady_state(step, lam, traffic.input_len, traffic.output_len, K, N,
                               traffic.arrivals, traffic.input_spread)
    val = {k: float(np.asarray(v)) for k, v in ss.items()}
    share = val["prefill_share"] * (val["t1"] - val["t0"]) / val["step"]
    usd = cost.gpu_price(dep.hardware, cost.check_prices(prices))
    gpus = replicas * dep.gpus
    money = cost.money(gpus, usd, traffic.rate, traffic.input_len, traffic.output_len, share)
    util = utilisation(val["ttft"], val["tpot"], traffic.output_len, lam)
    energy = cost.energy(dep.hardware, gpus, util, traffic.rate, traffic.input_len,
                         traffic.output_len)
    return Serving(dep, traffic, replicas, K, N, mem, val["ttft"], val["tpot"], val["step"],
                   val["t0"], val["t1"], val["decode_batch"], val["prompt_tokens"],
                   val["prefill_share"], val["saturation_rate"] * dep.pp,
                   val["utilization"], usd,
                   {k: float(v) for k, v in money.items()},
                   {k: float(v) for k, v in energy.items()}, percentile)


__all__ = ["DEFAULT_ENGINE", "PERCENTILES", "Deployment", "Serving", "band_factors", "serve",
           "step_function", "utilisation"]
