"""Specs: what a model, a machine and a workload are (plain frozen dataclasses, validated).

Units inside the package are SI and exact: bytes, bytes/s, FLOP/s, seconds. GB (1e9) and GiB
(2**30) appear only when something is displayed, and are then named.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from costmodel.errors import check_choice, check_positive_int, check_positive_number

NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("learned", "rotary")
ACTIVATIONS = ("gelu", "silu", "relu")
DTYPES = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer, as far as cost is concerned.

    ``n_kv_heads`` defaults to ``n_heads`` (MHA), ``head_dim`` to ``d_model / n_heads`` and
    ``d_ff`` to ``4 * d_model``. ``gated_mlp`` means SwiGLU (three d×d_ff matrices: gate, up,
    down); otherwise the MLP has two (up, down). ``norm`` is ``layernorm`` (weight and bias)
    or ``rmsnorm`` (weight only). ``qkv_bias``/``out_bias``/``mlp_bias``/``lm_head_bias`` say
    which linears carry a bias. ``tied_embeddings`` shares the LM head with the token table.
    ``positions`` is ``learned`` (a ``max_context × d_model`` table) or ``rotary`` (no weights).
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
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("n_layers", "d_model", "n_heads", "vocab_size", "max_context"):
            check_positive_int(name, getattr(self, name))
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        check_positive_int("n_kv_heads", self.n_kv_heads)
        if self.head_dim is None:
            if self.d_model % self.n_heads:
                raise ValueError(
                    f"n_heads: {self.n_heads} heads do not divide d_model={self.d_model}; "
                    "choose n_heads dividing d_model or give head_dim explicitly"
                )
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        check_positive_int("head_dim", self.head_dim)
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", 4 * self.d_model)
        check_positive_int("d_ff", self.d_ff)
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_kv_heads: {self.n_kv_heads} KV heads do not divide n_heads={self.n_heads} "
                "(grouped-query attention needs n_heads to be a multiple of n_kv_heads)"
            )
        check_choice("norm", self.norm, NORMS)
        check_choice("positions", self.positions, POSITIONS)
        check_choice("activation", self.activation, ACTIVATIONS)
        for name in ("gated_mlp", "qkv_bias", "out_bias", "mlp_bias", "lm_head_bias",
                     "tied_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: must be true or false, got {getattr(self, name)!r}")

    @property
    def param_count(self) -> int:
        """Exact number of parameters (see :func:`costmodel.params.param_count`)."""
        from costmodel.params import param_count

        return param_count(self)

    @property
    def group_size(self) -> int:
        """Query heads per KV head (1 = MHA, n_heads = MQA)."""
        return self.n_heads // self.n_kv_heads

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model spec: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_hf_config(cls, path_or_dict: str | Path | Mapping[str, Any],
                       name: str | None = None) -> ModelSpec:
        """Read a Hugging Face ``config.json`` (gpt2, llama, mistral, qwen2) into a ModelSpec."""
        from costmodel.hfconfig import spec_from_hf_config

        return spec_from_hf_config(path_or_dict, name=name)


@dataclass(frozen=True)
class HardwareSpec:
    """One accelerator (or CPU) as the roofline sees it.

    ``memory_bytes`` is what the device reports (an "80 GB" A100 reports 80 GiB), with the
    marketed figure in ``memory_marketed``. ``bandwidth`` is memory bandwidth in bytes/s.
    ``peak_flops`` maps a dtype (fp32, tf32, fp16, bf16, fp8, int8) to the *dense* peak in
    FLOP/s (a multiply-add counts 2). ``interconnect_bandwidth`` is bytes/s per direction per GPU
    for tensor-parallel all-reduce, ``interconnect_latency`` seconds per all-reduce.
    ``kernel_overhead`` is a fixed cost per operator (seconds; 0 for datasheet presets, measured by
    ``costmodel calibrate``).
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
    source: str = ""
    notes: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_positive_int("memory_bytes", self.memory_bytes)
        check_positive_number("bandwidth", self.bandwidth)
        if not self.peak_flops:
            raise ValueError("peak_flops: give at least one dtype's peak FLOP/s")
        for dtype, value in self.peak_flops.items():
            check_choice("peak_flops dtype", dtype, DTYPES)
            check_positive_number(f"peak_flops[{dtype}]", value)
        for name in ("interconnect_bandwidth", "interconnect_latency", "tdp_watts",
                     "kernel_overhead"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise ValueError(f"{name}: must be a number >= 0, got {value!r}")
        object.__setattr__(self, "peak_flops", dict(self.peak_flops))

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype``; ValueError if this hardware has no such path."""
        if dtype not in self.peak_flops:
            raise ValueError(
                f"dtype: {self.name} has no {dtype!r} peak; it has {sorted(self.peak_flops)}"
            )
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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"hardware spec: unknown field(s) {unknown}; known: {sorted(known)}")
        missing = sorted({"name", "memory_bytes", "bandwidth", "peak_flops"} - set(data))
        if missing:
            raise ValueError(f"hardware spec: missing field(s) {missing}")
        return cls(**dict(data))

    def save(self, path: str | Path) -> None:
        """Write as JSON (atomically: a temp file renamed into place)."""
        from costmodel.errors import atomic_write_text

        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path) -> HardwareSpec:
        """Read a JSON hardware file (e.g. written by ``costmodel calibrate``)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except FileNotFoundError:
            raise ValueError(f"hardware file: {p} does not exist") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"hardware file: {p} is not valid JSON ({e.msg}, line {e.lineno})")\
                from None
        if not isinstance(data, dict):
            raise ValueError(f"hardware file: {p} must hold a JSON object")
        return cls.from_dict(data)


def dtype_for_bytes(hw: HardwareSpec, nbytes: float) -> str:
    """The compute dtype a weight width implies on ``hw``: 4 bytes → fp32; anything narrower →
    the 16-bit tensor path (bf16, else fp16), because weight-only int8/int4 kernels dequantise
    to 16 bits before the matmul. Ask for fp8/int8 compute explicitly with ``dtype=``."""
    order = ("fp32",) if nbytes >= 4 else ("bf16", "fp16", "fp32")
    for dtype in order:
        if dtype in hw.peak_flops:
            return dtype
    return next(iter(hw.peak_flops))
