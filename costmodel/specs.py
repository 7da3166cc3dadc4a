"""Specs: what a model and a machine are, as far as cost is concerned (frozen, validated data).

Units are SI and exact: bytes, bytes/s, FLOP/s, seconds. GB (1e9) and GiB (2**30) appear only
when something is displayed, and are then named. Nothing here computes a cost: the formulas
live in the modules above (params, kvcache, ops, pricing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from costmodel.checks import (
    MAX_DIM,
    check_bool,
    check_choice,
    check_dim,
    check_fraction,
    check_int,
    check_mapping,
    check_nonneg_number,
    check_positive_number,
    check_text,
)
from costmodel.files import atomic_write_text, read_json
from costmodel.quant import weight_format

NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("learned", "rotary")
ACTIVATIONS = ("gelu", "silu", "relu")
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8", "fp4")
MODEL_FLAGS = ("gated_mlp", "qkv_bias", "out_bias", "mlp_bias", "lm_head_bias",
               "tied_embeddings")
#: Physical bounds of a machine description (refused beyond: they are typos, not machines).
MAX_MEMORY_BYTES = 2**60          # 1 EiB per device
MAX_BANDWIDTH = 1e17              # bytes/s (100 PB/s)
MAX_PEAK = 1e21                   # FLOP/s (1 ZFLOP/s)
MAX_LATENCY = 1.0                 # seconds per all-reduce or per kernel
MAX_WATTS = 1e6


#: The efficiency fields a pricing reads, wherever they are held (HardwareSpec, EngineProfile,
#: costmodel.pricing.Efficiency): fractions in (0, 1]; fractions that default to a general one
#: (None); seconds in [0, MAX_LATENCY] (comm_latency: None = the hardware's); a row count.
EFFICIENCY_FRACTIONS = ("eta_c", "eta_m")
OPTIONAL_FRACTIONS = ("eta_c_skinny", "eta_m_elementwise", "eta_m_quant", "eta_c_8bit")
OVERHEADS = ("kernel_overhead", "step_overhead", "layer_overhead", "comm_latency")


def check_efficiencies(obj: Any) -> None:
    """Check and normalise, in place on a frozen dataclass, whichever efficiency fields ``obj``
    has (see :data:`EFFICIENCY_FRACTIONS`, :data:`OPTIONAL_FRACTIONS`, :data:`OVERHEADS`)."""
    put = object.__setattr__
    for name in EFFICIENCY_FRACTIONS:
        if hasattr(obj, name):
            put(obj, name, check_fraction(name, getattr(obj, name)))
    for name in OPTIONAL_FRACTIONS:
        if getattr(obj, name, None) is not None:
            put(obj, name, check_fraction(name, getattr(obj, name)))
    for name in OVERHEADS:
        if getattr(obj, name, None) is not None:
            put(obj, name, check_nonneg_number(name, getattr(obj, name), MAX_LATENCY))
    if hasattr(obj, "skinny_rows"):
        put(obj, "skinny_rows", check_int("skinny_rows", obj.skinny_rows, 1, 2**31 - 1))


@dataclass(frozen=True, repr=False)
class ModelSpec:
    """A decoder-only transformer.

    ``n_kv_heads`` defaults to ``n_heads`` (MHA), ``head_dim`` to ``d_model / n_heads`` and
    ``d_ff`` to ``4 * d_model``. ``gated_mlp`` means SwiGLU (three d×d_ff matrices: gate, up,
    down); otherwise the MLP has two (up, down). ``norm`` is ``layernorm`` (weight and bias)
    or ``rmsnorm`` (weight only). ``qkv_bias``/``out_bias``/``mlp_bias``/``lm_head_bias`` say
    which linears carry a bias. ``tied_embeddings`` shares the LM head with the token table.
    ``positions`` is ``learned`` (a ``max_context × d_model`` table) or ``rotary`` (no weights).
    Sizes are integers in [1, 2**31 - 1].

    What modern configs carry (every default is the dense 2023 decoder):

    * ``norms_per_layer`` — 2 (before attention and MLP) or 4 (Gemma-2/3 add one after each);
      ``qk_norm`` — an RMSNorm over each query and key head (Qwen3, Gemma-3);
      ``attention_sinks`` — a learned sink logit per head (GPT-OSS); ``rotary_fraction`` — the
      share of each head's dims that rotary rotates (partial rotary).
    * Sliding-window attention: ``sliding_window`` = W > 0 makes ``window_layers`` layers (all by
      default) attend to the last W tokens (the new token and W − 1 cached ones); the others
      attend to everything (Gemma-2 and GPT-OSS alternate, Gemma-3 has 5 window layers per
      global one).
    * Mixture of experts: ``n_experts`` routed experts of width ``d_ff_expert`` per MoE layer, of
      which each token uses ``experts_per_token``; ``n_shared_experts`` always-on experts of
      total width ``d_ff_shared`` (default n_shared · d_ff_expert); the first ``dense_layers``
      layers keep a dense MLP of width ``d_ff`` (DeepSeek's first_k_dense_replace); the router
      is a d × E linear (``router_bias`` adds E biases).
    * Multi-head latent attention (DeepSeek-V2/V3): ``kv_lora_rank`` > 0 compresses K and V into
      a latent of that rank plus a shared rotary key of ``qk_rope_head_dim``; queries have
      ``qk_nope_head_dim + qk_rope_head_dim`` dims per head (through a ``q_lora_rank`` latent
      when > 0), values ``v_head_dim``.
    * The published checkpoint's precision, where it has one: ``weight_format`` for every
      weight and ``expert_weight_format`` for the routed experts (:mod:`costmodel.quant`:
      GPT-OSS ships its experts in ``mxfp4``, DeepSeek-V3 in ``fp8-block128``). ``None``: not
      stated — an analysis then assumes 16-bit weights unless told otherwise.
    """

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    vocab_size: int
    max_context: int
    n_kv_heads: int | None = None
    head_dim: int | None = None
    d_ff: int | None = None
    gated_mlp: bool = False
    activation: str = "gelu"
    norm: str = "layernorm"
    qkv_bias: bool = True
    out_bias: bool = True
    mlp_bias: bool = True
    lm_head_bias: bool = False
    tied_embeddings: bool = True
    positions: str = "learned"
    norms_per_layer: int = 2
    qk_norm: bool = False
    attention_sinks: bool = False
    rotary_fraction: float = 1.0
    sliding_window: int = 0
    window_layers: int | None = None
    n_experts: int = 0
    experts_per_token: int = 0
    n_shared_experts: int = 0
    d_ff_expert: int | None = None
    d_ff_shared: int | None = None
    dense_layers: int = 0
    router_bias: bool = False
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    weight_format: str | None = None
    expert_weight_format: str | None = None
    source: str = ""

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "name", check_text("name", self.name))
        for name in ("n_layers", "d_model", "n_heads", "vocab_size", "max_context"):
            put(self, name, check_dim(name, getattr(self, name)))
        if self.n_kv_heads is None:
            put(self, "n_kv_heads", self.n_heads)
        put(self, "n_kv_heads", check_dim("n_kv_heads", self.n_kv_heads))
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"n_heads: {self.n_heads} heads do not divide d_model={self.d_model}; "
                    "choose n_heads dividing d_model or give head_dim explicitly")
            put(self, "head_dim", self.d_model // self.n_heads)
        put(self, "head_dim", check_dim("head_dim", self.head_dim))
        if self.d_ff is None:
            put(self, "d_ff", 4 * self.d_model)
        put(self, "d_ff", check_dim("d_ff", self.d_ff))
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_kv_heads: {self.n_kv_heads} KV heads do not divide n_heads={self.n_heads} "
                "(grouped-query attention needs n_heads to be a multiple of n_kv_heads)")
        check_choice("norm", self.norm, NORMS)
        check_choice("positions", self.positions, POSITIONS)
        check_choice("activation", self.activation, ACTIVATIONS)
        for name in MODEL_FLAGS:
            check_bool(name, getattr(self, name))
        self._check_architecture()
        if not isinstance(self.source, str):
            raise ValueError(f"source: must be text, got {type(self.source).__name__}")

    def _check_architecture(self) -> None:
        put = object.__setattr__
        if check_int("norms_per_layer", self.norms_per_layer, 1, 8) not in (2, 4):
            raise ValueError(f"norms_per_layer: must be 2 or 4, got {self.norms_per_layer!r}")
        for name in ("qk_norm", "attention_sinks", "router_bias"):
            check_bool(name, getattr(self, name))
        put(self, "rotary_fraction", check_fraction("rotary_fraction", self.rotary_fraction))
        for name in ("sliding_window", "n_experts", "experts_per_token", "n_shared_experts",
                     "dense_layers", "q_lora_rank", "kv_lora_rank", "qk_nope_head_dim",
                     "qk_rope_head_dim", "v_head_dim"):
            put(self, name, check_int(name, getattr(self, name), 0, MAX_DIM))
        if self.window_layers is None:
            put(self, "window_layers", self.n_layers if self.sliding_window else 0)
        put(self, "window_layers", check_int("window_layers", self.window_layers, 0,
                                             self.n_layers))
        if self.window_layers and not self.sliding_window:
            raise ValueError(f"window_layers: {self.window_layers} window layers need a "
                             "sliding_window > 0")
        if self.n_experts:
            if not 1 <= self.experts_per_token <= self.n_experts:
                raise ValueError(f"experts_per_token: must lie in [1, n_experts="
                                 f"{self.n_experts}], got {self.experts_per_token!r}")
            if self.d_ff_expert is None:
                put(self, "d_ff_expert", self.d_ff)
            put(self, "d_ff_expert", check_dim("d_ff_expert", self.d_ff_expert))
            put(self, "dense_layers", check_int("dense_layers", self.dense_layers, 0,
                                                self.n_layers))
        else:
            for name in ("experts_per_token", "n_shared_experts", "dense_layers"):
                if getattr(self, name):
                    raise ValueError(f"{name}: needs n_experts > 0 (a mixture of experts)")
            if self.d_ff_expert is not None or self.router_bias:
                raise ValueError("d_ff_expert, router_bias: need n_experts > 0")
        if self.n_shared_experts:
            if self.d_ff_shared is None:
                put(self, "d_ff_shared", self.n_shared_experts * self.d_ff_expert)
            put(self, "d_ff_shared", check_dim("d_ff_shared", self.d_ff_shared))
        elif self.d_ff_shared is not None:
            raise ValueError("d_ff_shared: needs n_shared_experts > 0")
        if self.kv_lora_rank:
            for name in ("qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"):
                if not getattr(self, name):
                    raise ValueError(f"{name}: multi-head latent attention (kv_lora_rank > 0) "
                                     "needs it > 0")
        elif self.q_lora_rank:
            raise ValueError("q_lora_rank: needs kv_lora_rank > 0 (multi-head latent attention)")
        for name in ("weight_format", "expert_weight_format"):
            if getattr(self, name) is not None:
                try:
                    weight_format(getattr(self, name))
                except ValueError as e:
                    raise ValueError(f"{name}: {e}") from None
        if self.expert_weight_format is not None and not self.moe:
            raise ValueError("expert_weight_format: needs n_experts > 0")

    def __repr__(self) -> str:
        """The name and the fields that differ from their defaults (short)."""
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                 if f.name not in ("name", "source")
                 and (f.name in ("n_layers", "d_model", "n_heads", "vocab_size", "max_context")
                      or getattr(self, f.name) != _DEFAULTS.get(f.name))]
        return f"ModelSpec({self.name!r}, {', '.join(shown)})"

    @property
    def group_size(self) -> int:
        """Query heads per KV head (1 = MHA, n_heads = MQA)."""
        return self.n_heads // self.n_kv_heads

    @property
    def moe(self) -> bool:
        """A mixture of experts (routed experts in the MoE layers)."""
        return self.n_experts > 0

    @property
    def mla(self) -> bool:
        """Multi-head latent attention (DeepSeek-V2/V3)."""
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        """Layers with routed experts (the others have a dense MLP)."""
        return self.n_layers - self.dense_layers if self.moe else 0

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        check_mapping("model spec", data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ValueError(f"model spec: unknown field(s) {unknown}; known: {sorted(known)}")
        missing = sorted({"name", "n_layers", "d_model", "n_heads", "vocab_size",
                          "max_context"} - set(data))
        if missing:
            raise ValueError(f"model spec: missing field(s) {missing}")
        return cls(**dict(data))


#: ModelSpec defaults (a field derived from others is shown when it differs from its default).
_DEFAULTS = {"gated_mlp": False, "activation": "gelu", "norm": "layernorm", "qkv_bias": True,
             "out_bias": True, "mlp_bias": True, "lm_head_bias": False,
             "tied_embeddings": True, "positions": "learned", "norms_per_layer": 2,
             "qk_norm": False, "attention_sinks": False, "rotary_fraction": 1.0,
             "sliding_window": 0, "window_layers": 0, "n_experts": 0, "experts_per_token": 0,
             "n_shared_experts": 0, "d_ff_expert": None, "d_ff_shared": None,
             "dense_layers": 0, "router_bias": False, "q_lora_rank": 0, "kv_lora_rank": 0,
             "qk_nope_head_dim": 0, "qk_rope_head_dim": 0, "v_head_dim": 0,
             "weight_format": None, "expert_weight_format": None}


@dataclass(frozen=True, repr=False)
class HardwareSpec:
    """One accelerator (or CPU) as the roofline sees it, with the efficiencies it reaches.

    ``memory_bytes`` is what the device reports (an "80 GB" A100 reports 80 GiB), with the
    marketed figure in ``memory_marketed``. ``bandwidth`` is memory bandwidth in bytes/s.
    ``peak_flops`` maps a dtype (fp32, tf32, fp16, bf16, fp8, int8, fp4) to the *dense* peak in
    FLOP/s (a multiply-add counts 2). ``interconnect_bandwidth`` is bytes/s per direction per GPU
    for tensor-parallel all-reduce, ``interconnect_latency`` seconds per all-reduce.

    Efficiencies (the typed fields that :mod:`costmodel.pricing` applies to every operator;
    datasheet presets are ideal: all 1, no overhead; ``costmodel validate`` fits them):

    * ``eta_c`` — fraction of the peak a matmul reaches; ``eta_c_skinny`` the fraction a weight
      matmul of at most ``skinny_rows`` rows reaches (decode GEMVs; ``None`` = ``eta_c``);
    * ``eta_m`` — fraction of the bandwidth a matmul or attention operator streams at;
      ``eta_m_elementwise`` the fraction of the elementwise and copy passes (``None`` =
      ``eta_m``);
    * ``kernel_overhead`` — a fixed cost in seconds per modelled kernel launch.
    """

    name: str
    memory_bytes: int
    bandwidth: float
    peak_flops: Mapping[str, float]
    memory_marketed: str = ""
    interconnect_bandwidth: float = 0.0
    interconnect_latency: float = 0.0
    tdp_watts: float = 0.0
    kernel_overhead: float = 0.0
    eta_c: float = 1.0
    eta_m: float = 1.0
    eta_c_skinny: float | None = None
    eta_m_elementwise: float | None = None
    skinny_rows: int = 8
    source: str = ""
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "name", check_text("name", self.name))
        put(self, "memory_bytes", check_int("memory_bytes", self.memory_bytes, 1,
                                            MAX_MEMORY_BYTES))
        put(self, "bandwidth", check_positive_number("bandwidth", self.bandwidth,
                                                     MAX_BANDWIDTH))
        check_mapping("peak_flops", self.peak_flops)
        if not self.peak_flops:
            raise ValueError("peak_flops: give at least one dtype's peak FLOP/s")
        peaks = {}
        for dtype, value in self.peak_flops.items():
            check_choice("peak_flops dtype", dtype, DTYPES)
            peaks[dtype] = check_positive_number(f"peak_flops[{dtype}]", value, MAX_PEAK)
        put(self, "peak_flops", peaks)
        put(self, "interconnect_bandwidth", check_nonneg_number(
            "interconnect_bandwidth", self.interconnect_bandwidth, MAX_BANDWIDTH))
        for name, hi in (("interconnect_latency", MAX_LATENCY), ("tdp_watts", MAX_WATTS)):
            put(self, name, check_nonneg_number(name, getattr(self, name), hi))
        check_efficiencies(self)
        for name in ("memory_marketed", "source", "notes"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name}: must be text, got {type(getattr(self, name)).__name__}")
        put(self, "extra", dict(check_mapping("extra", self.extra)))

    def __repr__(self) -> str:
        peaks = ", ".join(f"{k} {v / 1e12:g}" for k, v in self.peak_flops.items())
        eff = "" if (self.eta_c, self.eta_m, self.kernel_overhead) == (1.0, 1.0, 0.0) else \
            f", η_c {self.eta_c:g}, η_m {self.eta_m:g}, t_k {self.kernel_overhead:g} s"
        return (f"HardwareSpec({self.name!r}: {self.memory_bytes / 2**30:g} GiB, "
                f"{self.bandwidth / 1e9:g} GB/s, TFLOP/s {peaks}{eff})")

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype``; ValueError if this hardware has no such path."""
        if dtype not in self.peak_flops:
            raise ValueError(
                f"dtype: {self.name} has no {dtype!r} peak; it has {sorted(self.peak_flops)}")
        return self.peak_flops[dtype]

    def ridge_point(self, dtype: str) -> float:
        """FLOPs per byte where the roofline bends: peak / bandwidth."""
        return self.peak(dtype) / self.bandwidth

    def replace(self, **changes: Any) -> HardwareSpec:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["peak_flops"] = dict(self.peak_flops)
        d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HardwareSpec:
        check_mapping("hardware spec", data)
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(k) for k in set(data) - known)
        if unknown:
            raise ValueError(f"hardware spec: unknown field(s) {unknown}; known: {sorted(known)}")
        missing = sorted({"name", "memory_bytes", "bandwidth", "peak_flops"} - set(data))
        if missing:
            raise ValueError(f"hardware spec: missing field(s) {missing}")
        return cls(**dict(data))

    def save(self, path: str | Path) -> None:
        """Write as JSON (atomically: a temp file renamed into place)."""
        atomic_write_text(path, to_json(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> HardwareSpec:
        """Read a JSON hardware file (e.g. written by ``costmodel calibrate``); errors name the
        file and the field."""
        data = read_json(path, "hardware file")
        if not isinstance(data, dict):
            raise ValueError(f"hardware file {path}: must hold a JSON object")
        try:
            return cls.from_dict(data)
        except ValueError as e:
            raise ValueError(f"hardware file {path}: {e}") from None


REGIMES = ("decode_b1", "decode_batched", "prefill", "tp", "quantized")


@dataclass(frozen=True, kw_only=True)
class Efficiencies:
    """The efficiency fields a pricing reads, declared once (keyword-only; checked by
    :func:`check_efficiencies`): an :class:`EngineProfile` adds what names and describes an
    engine, :class:`costmodel.pricing.Efficiency` what one pricing resolved them from."""

    eta_c: float = 1.0
    eta_m: float = 1.0
    eta_c_skinny: float | None = None
    eta_m_elementwise: float | None = None
    eta_m_quant: float | None = None
    skinny_rows: int = 8
    kernel_overhead: float = 0.0
    step_overhead: float = 0.0
    layer_overhead: float = 0.0
    comm_latency: float | None = None

    def __post_init__(self) -> None:
        check_efficiencies(self)


@dataclass(frozen=True, repr=False)
class EngineProfile(Efficiencies):
    """How a class of inference engine runs a model, in a handful of global, physically
    meaningful numbers (no per-model or per-row parameter) — the typed efficiencies
    :mod:`costmodel.pricing` applies on top of a datasheet machine:

    * ``eta_c`` / ``eta_m`` — fractions of the peak and of the bandwidth its kernels reach;
      ``eta_c_8bit`` — the fraction of the peak its GEMMs reach when they compute in an 8- or
      4-bit dtype (fp8, int8, fp4: those peaks are twice and four times the 16-bit one, and
      harder to reach; ``None``: ``eta_c``);
      ``eta_m_quant`` — the bandwidth fraction of weight-only quantized GEMMs (dequantizing
      int4/int8 on the fly); ``eta_c_skinny`` / ``eta_m_elementwise`` as on HardwareSpec;
    * ``step_overhead`` — seconds per forward pass outside the kernels (scheduling, sampling,
      launch gaps); ``layer_overhead`` — seconds per layer per pass; ``kernel_overhead`` —
      seconds per modelled kernel;
    * ``comm_latency`` — seconds per all-reduce or all-to-all (``None``: the hardware's);
    * ``attention`` — its attention implementation (``fused`` for FlashAttention-style
      engines, ``eager`` for PyTorch eager code, ``standard`` for the textbook one);
    * ``bands`` — per regime (decode_b1, decode_batched, prefill, tp, quantized, all) the
      (low, high) factors of an 80 % band on a predicted time, from the cross-validated
      residuals of the published measurements (``costmodel validate --published``).
    """

    name: str
    attention: str = "standard"
    bands: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    source: str = ""
    notes: str = ""
    eta_c_8bit: float | None = None

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "name", check_text("name", self.name))
        super().__post_init__()
        check_choice("attention", self.attention, ("standard", "fused", "eager"))
        bands = {}
        for regime, band in dict(check_mapping("bands", self.bands)).items():
            check_choice("band regime", regime, (*REGIMES, "all"))
            lo, hi = band
            lo = check_positive_number(f"bands[{regime}] low", lo, 1e3)
            hi = check_positive_number(f"bands[{regime}] high", hi, 1e3)
            if lo > hi:
                raise ValueError(f"bands[{regime}]: low {lo} exceeds high {hi}")
            bands[regime] = (lo, hi)
        put(self, "bands", bands)

    def __repr__(self) -> str:
        return (f"EngineProfile({self.name!r}: η_c {self.eta_c:g}, η_m {self.eta_m:g}, "
                f"step {self.step_overhead:g} s, layer {self.layer_overhead:g} s, "
                f"{self.attention} attention)")

    def describe(self) -> str:
        """What the profile applies, in words: 'η_c 0.68, η_c 0.455 in 8-bit dtypes, η_m 0.714,
        …, 53.7 µs per layer per pass, fused attention; 80 % bands: decode_b1 ×0.85–1.2, …'
        (the one text the CLI and the app show)."""
        parts = [f"η_c {self.eta_c:.3g}"]
        if self.eta_c_8bit is not None:
            parts.append(f"η_c {self.eta_c_8bit:.3g} in 8-bit dtypes")
        parts.append(f"η_m {self.eta_m:.3g}")
        if self.eta_m_quant is not None:
            parts.append(f"η_m {self.eta_m_quant:.3g} on weight-only quantized matmuls")
        for seconds, unit in ((self.step_overhead, "per pass"),
                              (self.layer_overhead, "per layer per pass"),
                              (self.kernel_overhead, "per kernel"),
                              (self.comm_latency, "per all-reduce")):
            if seconds:
                parts.append(f"{seconds * 1e6:.3g} µs {unit}")
        parts.append(f"{self.attention} attention")
        bands = ", ".join(f"{k} ×{lo:.3g}–{hi:.3g}" for k, (lo, hi) in self.bands.items())
        return f"{', '.join(parts)}; 80 % bands: {bands or 'none (no fitted band yet)'}"

    def replace(self, **changes: Any) -> EngineProfile:
        return replace(self, **changes)


def to_json(data: Any) -> str:
    """Pretty, sorted JSON; non-finite floats are refused (JSON has none)."""
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False)




__all__ = ["ACTIVATIONS", "DTYPES", "EngineProfile", "HardwareSpec", "MODEL_FLAGS", "ModelSpec",
           "NORMS", "POSITIONS", "REGIMES", "to_json"]
