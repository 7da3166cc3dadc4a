"""The measurement grids of the reference model: the grid models (:data:`MODELS`), the named
grids, a grid :class:`Point`, and a grid model's ``GPTConfig``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from costmodel.checks import (
    check_choice,
    check_int,
    check_positive_int,
)
from costmodel.validation.io import (
    BYTES_PER_DTYPE,
    ENGINES,
    measured_workload,
)
from costmodel.workload import MEASURED_PHASES

PHASES = tuple(MEASURED_PHASES)
GRIDS = ("tiny", "small", "full", "modern", "gpu", "kit-tiny")
#: The models of the grids: a preset of ``costmodel/data/models.csv`` with GPTConfig overrides,
#: or Llama-style GPTConfig keyword arguments (``llama``). ``llama-gqa`` is the Llama-style
#: variant: RMSNorm, rotary, SwiGLU, no biases, untied head and grouped-query attention (6
#: query heads share 2 KV heads), Llama's vocabulary. The modern CPU models: ``moe-llama``
#: (8 experts, top-2, a shared expert, the first layer dense), ``moe-gpt`` (GPT-style experts
#: with biases, top-1 of 4, a router bias), ``window-llama`` (a 96-token window on 3 of 6
#: layers, Gemma-2's alternation) and ``window-gpt`` (a 64-token window on every layer,
#: Mistral's). The GPU models are real sizes: GPT-2 and GPT2-XL (Radford et al. 2019; learned
#: positions extended to 4160), ``llama3-8b-shape`` (Llama-3-8B's published config: 32 layers,
#: d 4096, 32 heads, 8 KV heads, d_ff 14336, vocabulary 128256, rope θ 500000) and
#: ``moe-small`` (a Mixtral-shaped 16-layer, 8-expert top-2 model). ``tiny-*``: the kit's CPU
#: run of the same code paths.
MODELS: dict[str, dict[str, Any]] = {
    "gpt-nano": {"preset": "gpt-nano", "block_size": 1024},
    "gpt-micro": {"preset": "gpt-micro", "block_size": 1024},
    "gpt-mini": {"preset": "gpt-mini", "block_size": 1024},
    "gpt2": {"preset": "gpt2", "block_size": 1024},
    "llama-gqa": {"llama": dict(n_layer=6, n_head=6, n_kv_head=2, n_embd=384, d_ff=1024,
                                vocab_size=32000, block_size=1024)},
    "moe-llama": {"llama": dict(n_layer=4, n_head=4, n_kv_head=2, n_embd=128, d_ff=384,
                                vocab_size=32000, block_size=1024, n_experts=8,
                                experts_per_token=2, d_ff_expert=128, n_shared_experts=1,
                                dense_layers=1)},
    "moe-gpt": {"preset": "gpt-micro", "block_size": 1024, "n_experts": 4,
                "experts_per_token": 1, "d_ff_expert": 256, "router_bias": True},
    "window-llama": {"llama": dict(n_layer=6, n_head=6, n_kv_head=2, n_embd=384, d_ff=1024,
                                   vocab_size=32000, block_size=1024, sliding_window=96,
                                   window_layers=3)},
    "window-gpt": {"preset": "gpt-mini", "block_size": 1024, "sliding_window": 64},
    "gpu-gpt2": {"preset": "gpt2", "block_size": 4160, "attn_impl": "sdpa"},
    "gpu-gpt2-xl": {"preset": "gpt2-xl", "block_size": 4160, "attn_impl": "sdpa"},
    "llama3-8b-shape": {"llama": dict(n_layer=32, n_head=32, n_kv_head=8, n_embd=4096,
                                      d_ff=14336, vocab_size=128256, block_size=8192,
                                      rope_theta=500000.0, attn_impl="sdpa")},
    "moe-small": {"llama": dict(n_layer=16, n_head=16, n_kv_head=4, n_embd=2048, d_ff=2816,
                                vocab_size=32000, block_size=8192, n_experts=8,
                                experts_per_token=2, attn_impl="sdpa")},
    "tiny-gpt": {"preset": "gpt-nano", "block_size": 64, "attn_impl": "sdpa"},
    "tiny-llama": {"llama": dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, d_ff=128,
                                 vocab_size=256, block_size=64, attn_impl="sdpa")},
    "tiny-moe": {"llama": dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, d_ff=64,
                               vocab_size=256, block_size=64, n_experts=4,
                               experts_per_token=2, attn_impl="sdpa")},
}
#: The grids: models × batches × contexts × phases (default the four) × engines (default
#: eager); ``static="context"``: a decode_static point's cache holds s + 1 positions;
#: ``compiled_models``: the models the compiled engine runs (default all); ``blank``: the
#: reference model's decode steps run on caches of zeros instead of prefilled ones.
_GRIDS: dict[str, dict[str, Any]] = {
    "tiny": dict(models=["gpt-nano"], batches=[1], contexts=[16]),
    "small": dict(models=["gpt-nano", "gpt-micro"], batches=[1, 2], contexts=[32, 128]),
    "full": dict(models=["gpt-nano", "gpt-micro", "gpt-mini", "gpt2", "llama-gqa"],
                 batches=[1, 4], contexts=[32, 128, 512]),
    "modern": dict(models=["moe-llama", "moe-gpt", "window-llama", "window-gpt"],
                   batches=[1, 4], contexts=[32, 128, 512]),
    "gpu": dict(models=["gpu-gpt2", "gpu-gpt2-xl", "llama3-8b-shape", "moe-small"],
                batches=[1, 8, 64], contexts=[128, 1024, 4096],
                phases=("prefill", "decode_dynamic", "decode_static"),
                engines={"eager": ("prefill", "decode_dynamic", "decode_static"),
                         "compiled": ("decode_static",),
                         "hf": ("prefill", "decode_dynamic", "decode_static")},
                static="context", blank=True),
    "kit-tiny": dict(models=["tiny-gpt", "tiny-llama", "tiny-moe"], batches=[1, 2],
                     contexts=[8, 24], phases=("prefill", "decode_dynamic", "decode_static"),
                     engines={"eager": ("prefill", "decode_dynamic", "decode_static"),
                              "compiled": ("decode_static",),
                              "hf": ("prefill", "decode_dynamic", "decode_static")},
                     static="context", blank=True, compiled_models=["tiny-moe"]),
}


@dataclass(frozen=True)
class Point:
    """One grid point: a model, a batch, a context, a phase, a dtype and an engine;
    ``static_max_len`` the static cache's positions (None: the engine's default — the block
    size for the reference model, s + 1 for Hugging Face, which attends to all of them);
    ``prefill_cache``: whether a decode step's cache is filled by running the prefill (else
    the reference model's cache holds zeros: the same step, see
    :func:`costmodel.validation.passes.reference_pass`)."""

    model: str
    batch: int
    context: int
    phase: str
    dtype: str = "fp32"
    engine: str = "eager"
    static_max_len: int | None = None
    prefill_cache: bool = True

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        check_positive_int("batch", self.batch)
        check_positive_int("context", self.context)
        check_choice("phase", self.phase, PHASES)
        check_choice("dtype", self.dtype, BYTES_PER_DTYPE)
        check_choice("engine", self.engine, ENGINES)
        if self.static_max_len is not None:
            check_int("static_max_len", self.static_max_len, self.context + 1, 2**31 - 1)

    @property
    def workload(self) -> tuple[int, int, str]:
        """(q, c, cache strategy): :func:`costmodel.validation.io.measured_workload`."""
        return measured_workload(self.phase, self.context)

    @property
    def point_id(self) -> str:
        base = f"{self.model}|B{self.batch}|s{self.context}|{self.phase}|{self.dtype}"
        return base if self.engine == "eager" else f"{base}|{self.engine}"


def grid_points(grid: str | Iterable[Point | dict], dtype: str = "fp32") -> list[Point]:
    """The points of a named grid (tiny, small, full, modern, gpu, kit-tiny) or of an explicit
    list."""
    if isinstance(grid, str):
        check_choice("grid", grid, GRIDS)
        g = _GRIDS[grid]
        engines = g.get("engines", {"eager": PHASES})
        compiled = g.get("compiled_models", g["models"])
        return [Point(m, b, s, p, dtype, e, s + 1 if g.get("static") and p == "decode_static"
                      else None, not g.get("blank") or e == "hf")
                for m in g["models"] for e, phases in engines.items()
                if e != "compiled" or m in compiled
                for b in g["batches"] for s in g["contexts"] for p in phases]
    points = [p if isinstance(p, Point) else Point(**p) for p in grid]
    if not points:
        raise ValueError("grid: no points to measure")
    return points


def grid_models(grid: str) -> list[str]:
    """The models of a named grid."""
    return list(_GRIDS[check_choice("grid", grid, GRIDS)]["models"])


def gpt_config(model: str, **overrides: Any):
    """The reference ``GPTConfig`` of a grid model (eager attention unless the model or
    ``overrides`` say otherwise)."""
    from costmodel.reference.config import GPTConfig

    check_choice("model", model, MODELS)
    entry = dict(MODELS[model])
    if "preset" in entry:
        kw = {"attn_impl": "eager", **overrides}
        return GPTConfig.from_preset(entry.pop("preset"), **{**entry, **kw})
    kw = {"attn_impl": "eager", **entry["llama"], "name": model, **overrides}
    return GPTConfig.llama_style(**kw)
