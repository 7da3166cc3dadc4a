"""Measure the PyTorch reference model over a grid, one CSV row per point, and time its
speculative decoding.

    rows = measure("small", device="cpu", dtype="fp32", out_csv="data/measurements/cpu.csv")
    rows = measure("gpu", device="cuda", dtype="bf16", budget=240)    # the GPU grid, trimmed

A point is (model, batch B, context s, phase, dtype, engine). The phases are the reference
model's measured passes, :data:`costmodel.workload.MEASURED_PHASES` (q and c by
:func:`costmodel.workload.substitute`):

    phase            q   c   cache     what is run (:func:`reference_pass`)
    prefill          s   0   dynamic   model(idx, kv_cache=empty)  (K, V kept: a cache is built)
    decode_dynamic   1   s   dynamic   one step on a growing cache holding s tokens
    decode_static    1   s   static    one step writing in place into a preallocated cache
    no_cache         s   0   none      model(idx): the no-KV-cache baseline re-encodes s tokens

The engines (:mod:`costmodel.reference.engines`): ``eager`` (the reference model), ``compiled``
(its blocks under ``torch.compile``; CUDA graphs on a GPU) and ``hf`` (Hugging Face's model of
the same config). Models have random weights (seeded). The CPU grids run ``attn_impl="eager"``
(explicit matmuls); the GPU grid's models run SDPA at real sizes (GPT2-XL, a Llama-3-8B-shaped
GQA model, a small mixture of experts, and GPT-2 beside GPT2-XL as CS229S compares them).

Each point is timed with warm-up and repeats (median, p10, p90, quartiles; CUDA events on a
GPU), with torch limited to ``threads`` intra-op threads, and its FLOPs counted by
FlopCounterMode during a warm-up call (:mod:`costmodel.reference.flops`; the compiled engine's
on the meta device, where the same pass costs nothing). A row carries everything needed to
predict it (see :mod:`costmodel.validation.io`). With ``budget`` seconds the grid is trimmed,
largest points first, to what the estimate (the roofline on the machine's calibration) says
fits, and points the clock no longer leaves time for are skipped. Files are written
all-or-nothing (:class:`costmodel.files.OutputSet`).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costmodel.checks import (
    MAX_GAMMA,
    check_choice,
    check_int,
    check_number,
    check_positive_int,
)
from costmodel.files import OutputSet
from costmodel.params import param_count
from costmodel.roofline import analyze
from costmodel.specs import HardwareSpec
from costmodel.validation.calibrate import datasheet_for
from costmodel.validation.io import (
    BYTES_PER_DTYPE,
    COLUMNS,
    ENGINES,
    MODERN_SPEC_COLUMNS,
    SPEC_COLUMNS,
    SPECULATIVE_COLUMNS,
    TIME_COLUMN,
    csv_text,
    measured_workload,
)
from costmodel.workload import MEASURED_PHASES, reference_options

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
    the reference model's cache holds zeros: the same step, see :func:`reference_pass`)."""

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


# --------------------------------------------------------------------------- one pass


@dataclass
class ReferencePass:
    """A pass of the reference model ready to run: ``run()`` is the forward call that is
    timed (and FLOP-counted); ``kv_cache_bytes`` the bytes its cache holds; ``static_max_len``
    the static cache's length (0 without one)."""

    run: Callable[[], Any]
    kv_cache_bytes: int
    static_max_len: int
    after: Callable[[], Any] | None = None
    exclude: tuple = field(default_factory=tuple)


@contextmanager
def reference_pass(model, phase: str, context_ids, next_ids,
                   static_max_len: int | None = None, fill=None,
                   prefill_cache: bool = True) -> Iterator[ReferencePass]:
    """Set up the pass of ``phase`` on ``model`` (a ``costmodel.reference.gpt.GPT``) with
    ``context_ids`` (B, s) and ``next_ids`` (B, 1): prefill and no-cache run the s context
    tokens; a decode step runs one token on a cache holding them (dynamic: the growing cache,
    left unchanged by the step, which rewrites row s of its buffer; static: a preallocated
    cache of ``static_max_len`` positions, default the block size, the step rewriting position
    s). The KV bytes are those the cache holds after the pass (dynamic: the rows it holds;
    static: the allocation). The static cache is released on exit. ``fill``: a context
    manager the cache is filled in (the compiled engine fills it eagerly);
    ``prefill_cache=False``: a decode step's cache is not filled by a prefill but holds zeros
    (``GPT.blank_kv_cache``; a static cache as allocated) — the same step, without paying for
    the prefill. Call inside ``torch.inference_mode()``."""
    B, s = context_ids.shape
    q, c, cache = measured_workload(phase, s)
    kv_bytes, max_len = 0, 0
    fill = fill or nullcontext
    try:
        if phase == "prefill":
            def run():
                return model(context_ids, kv_cache=model.empty_kv_cache())
            kv_bytes = run()[2].nbytes
        elif cache == "dynamic":
            if prefill_cache:
                with fill():
                    _, _, kv = model(context_ids, kv_cache=model.empty_kv_cache())
            else:
                kv = model.blank_kv_cache(B, s)

            def run():
                return model(next_ids, kv_cache=kv)   # writes row s of the buffer each call
            kv_bytes = run()[2].nbytes
        elif cache == "static":
            max_len = model.config.block_size if static_max_len is None else static_max_len
            model.setup_static_cache(B, max_len)
            if prefill_cache:
                with fill():
                    model(context_ids, input_pos=0)

            def run():
                return model(next_ids, input_pos=c)   # rewrites position c each call
            run()
            kv_bytes = model.static_cache_nbytes
        else:
            def run():
                return model(context_ids)
        yield ReferencePass(run, int(kv_bytes), int(max_len))
    finally:
        model.clear_static_cache()


@contextmanager
def engine_pass(engine: str, model, phase: str, context_ids, next_ids,
                static_max_len: int | None = None,
                prefill_cache: bool = True) -> Iterator[ReferencePass]:
    """:func:`reference_pass` for the reference model's engines, the Hugging Face pass
    (:func:`costmodel.reference.engines.hf_pass`, whose caches are always filled by a
    prefill) for ``hf``."""
    if engine == "hf":
        from costmodel.reference.engines import hf_pass

        with hf_pass(model, phase, context_ids, next_ids, static_max_len) as p:
            yield ReferencePass(p.run, p.kv_cache_bytes, p.static_max_len, p.after, p.exclude)
    else:
        fill = None
        if engine == "compiled":
            from costmodel.reference.engines import eager_stance

            fill = eager_stance
        with reference_pass(model, phase, context_ids, next_ids, static_max_len, fill,
                            prefill_cache) as p:
            yield p


def meta_flops(config, phase: str, batch: int, context: int, static_max_len: int = 0,
               models: dict | None = None) -> int:
    """FLOPs FlopCounterMode counts for one measured pass of the reference model (``phase`` at
    ``context`` s, ``batch`` sequences) built on the meta device (no weights, no work; a
    mixture of experts spreads its assignments evenly there — the same FLOPs). ``models``
    caches the built models by config."""
    import torch

    from costmodel.reference.flops import count_flops
    from costmodel.reference.gpt import GPT

    measured_workload(phase, context)          # a ValueError naming a bad phase or context
    key = json.dumps(config.to_dict(), sort_keys=True)
    store = models if models is not None else {}
    if key not in store:
        with torch.device("meta"):
            store[key] = GPT(config).eval()
    model = store[key]
    ids = torch.zeros(batch, context, dtype=torch.long, device="meta")
    nxt = torch.zeros(batch, 1, dtype=torch.long, device="meta")
    with torch.inference_mode(), \
            reference_pass(model, phase, ids, nxt, static_max_len or None) as p:
        return count_flops(p.run)[0]


# --------------------------------------------------------------------------- measuring


def build_engine(engine: str, config, dtype: str, device: str, seed: int = 0,
                 base=None, compile_backend: str | None = None):
    """The model a point of ``engine`` runs: the reference GPT (``eager``; ``compiled``: with
    its blocks compiled — ``base``, an eager model already built, is compiled in place) or
    Hugging Face's (``hf``), on ``device`` in ``dtype``."""
    from costmodel.reference.engines import build_gpt, build_hf, compile_blocks
    from costmodel.reference.gpt import parse_dtype

    tdt = parse_dtype(dtype)
    if engine == "hf":
        return build_hf(config, device, tdt, seed)
    model = base if base is not None else build_gpt(config, device, tdt, seed)
    if engine == "compiled":
        backend = compile_backend or ("inductor" if device.startswith("cuda") else "eager")
        mode = "reduce-overhead" if device.startswith("cuda") else None
        compile_blocks(model, backend, mode)
    return model


def measure_point(model, config, point: Point, device: str, repeats: int = 9, warmup: int = 2,
                  min_time: float = 0.02, max_time: float = 6.0, seed: int = 0,
                  clock: str = "wall") -> dict:
    """Time one point on an already built model of ``point.engine`` (and count its FLOPs);
    returns the measured fields."""
    import torch

    from costmodel.reference.flops import count_flops
    from costmodel.reference.timing import synchronizer, time_call

    gen = torch.Generator(device="cpu").manual_seed(seed)
    B, s = point.batch, point.context
    V = config.vocab_size
    idx = torch.randint(V, (B, s), generator=gen).to(device)
    nxt = torch.randint(V, (B, 1), generator=gen).to(device)
    with torch.inference_mode(), \
            engine_pass(point.engine, model, point.phase, idx, nxt, point.static_max_len,
                        point.prefill_cache) as p:
        if point.engine == "compiled":
            for _ in range(3):           # compile, record the CUDA graph, replay it once
                p.run()
            flops = meta_flops(config, point.phase, B, s, p.static_max_len)
        else:
            flops = count_flops(p.run, p.exclude)[0]   # a warm-up call, counted
            if p.after is not None:
                p.after()
        t = time_call(p.run, repeats=repeats, warmup=warmup, min_time=min_time,
                      sync=synchronizer(device), max_time=max_time, clock=clock, after=p.after)
    return {"time": t, "kv_cache_bytes_measured": p.kv_cache_bytes,
            "static_max_len": p.static_max_len, "flops_counted": int(flops)}


def _kv_update(engine: str, cache: str) -> str:
    """How the engine's cache of this strategy grows: Hugging Face's dynamic cache by
    ``torch.cat``; the reference model's in place."""
    return "concat" if engine == "hf" and cache == "dynamic" else \
        reference_options(cache)["kv_update"]


def _row(point: Point, config, meas: dict, info: dict, warmup: int) -> dict:
    spec = config.to_spec()
    q, c, cache = point.workload
    nbytes = BYTES_PER_DTYPE[point.dtype]
    t = meas["time"]
    row = {"point_id": point.point_id, "model": point.model}
    row.update({col: getattr(spec, col) for col in SPEC_COLUMNS + MODERN_SPEC_COLUMNS})
    row.update(reference_options(cache, config.attn_impl, _kv_update(point.engine, cache)))
    row.update({
        "engine": point.engine,
        "phase": point.phase, "cache": cache, "batch": point.batch, "new_tokens": q,
        "cached_tokens": c, "context": point.context, "static_max_len": meas["static_max_len"],
        "dtype": point.dtype, "weight_bytes": nbytes, "act_bytes": nbytes, "kv_bytes": nbytes,
        "device": info["device"], "device_name": info["device_name"],
        "torch_version": info["torch_version"], "threads": info["threads"], "warmup": warmup,
        "repeats": t["repeats"], "inner": t["inner"], TIME_COLUMN: t["median"],
        "time_p10_s": t["p10"], "time_p90_s": t["p90"], "time_q25_s": t["q25"],
        "time_q75_s": t["q75"], "time_wall_s": t["wall_median"], "clock": t["clock"],
        "rounds": t.get("rounds", 1), "flops_counted": meas["flops_counted"],
        "kv_cache_bytes_measured": meas["kv_cache_bytes_measured"],
        "param_bytes_measured": meas["param_bytes"],
        "gpt_config": json.dumps(config.to_dict(), sort_keys=True),
    })
    return {col: row[col] for col in COLUMNS}


def measure(grid: str | Iterable[Point | dict] = "small", device: str = "cpu",
            dtype: str = "fp32", out_csv: str | Path | None = None, repeats: int = 9,
            warmup: int = 2, threads: int | None = 1, min_time: float = 0.02,
            max_time: float = 6.0, rounds: int = 1, clock: str | None = None,
            progress=None, budget: float | None = None, hardware: HardwareSpec | None = None,
            skipped: list | None = None, compile_backend: str | None = None) -> list[dict]:
    """Measure every point of ``grid`` and (optionally) write the CSV (all-or-nothing: a
    failure leaves any file at ``out_csv`` as it was; a folder given as ``out_csv`` fails
    before anything is measured).

    ``grid``: 'tiny' (4 gpt-nano points), 'small' (32 points, seconds), 'full' (5 models ×
    B ∈ {1, 4} × s ∈ {32, 128, 512} × 4 phases = 120 points, minutes), 'modern' (the MoE and
    sliding-window models on the same batches and contexts: 96 points), 'gpu' (real sizes, B ∈
    {1, 8, 64} × s ∈ {128, 1024, 4096}, three engines), 'kit-tiny' (the GPU grid's code paths
    at tiny sizes) or a list of :class:`Point` / dicts. ``threads``: torch intra-op threads
    while measuring (default 1; ``None`` keeps torch's setting). ``max_time`` caps the seconds
    of timed repeats per point and round (at least 3 are kept). ``rounds``: the grid is swept
    that many times and each point's samples pooled, so a burst of load from other processes
    hits a slice of every point instead of all samples of a few. ``clock``: ``thread``
    (default with one CPU thread: CPU time of the measuring thread), ``wall``, or ``cuda``
    (events; the default on a GPU); the wall-clock median is recorded either way.
    ``progress``: called with (i, n, point_id, seconds) after each point of each round.

    ``budget``: seconds the measurement may take: the grid is trimmed to fit (largest points
    first, by :func:`estimate_seconds` on ``hardware``, default the datasheet or calibration
    of this machine), points the clock no longer leaves time for are skipped, and an engine
    that fails on a model (out of memory, a compiler error, Hugging Face absent) is skipped
    with its reason instead of failing the run; ``skipped`` (a list) receives (point_id,
    reason) of every point left out. ``compile_backend``: torch.compile's backend for the
    compiled engine (default inductor on a GPU, ``eager`` — Dynamo's capture alone — on the
    CPU).
    """
    with OutputSet() as out:
        if out_csv is not None:
            out.write_bytes(out_csv, b"")          # the destination is checked now
        rows = _measure(grid, device, dtype, repeats, warmup, threads, min_time, max_time,
                        rounds, clock, progress, budget, hardware, skipped, compile_backend)
        if out_csv is not None:
            out.write_text(out_csv, measurements_text(rows))
    return rows


def measurements_text(rows: Sequence[dict]) -> str:
    """The measurement CSV of :func:`measure`'s rows."""
    return csv_text(rows, COLUMNS)


#: What a row written before a column existed held there (a dense model, its FLOPs not
#: recorded, the eager engine; ``moe_dispatch`` unrecorded).
_OLDER_COLUMNS = {"sliding_window": "0", "window_layers": "0", "n_experts": "0",
                  "experts_per_token": "0", "d_ff_expert": "", "n_shared_experts": "0",
                  "d_ff_shared": "", "dense_layers": "0", "router_bias": "False",
                  "moe_dispatch": "", "engine": "eager", "flops_counted": ""}


def appended_text(existing: str | Path, rows: Sequence[dict]) -> str:
    """The measurement CSV ``existing`` with ``rows`` added after its own, which are kept as
    they are, cell for cell (a file from before the newer columns gets them with the values
    its rows had: dense, eager, FLOPs not recorded). A point measured again is refused."""
    path = Path(existing)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"append: {path} cannot be read ({e})") from None
    old = list(csv.DictReader(io.StringIO(text)))
    if not old:
        raise ValueError(f"append: {path} has no measurement rows")
    unknown = sorted(set(old[0]) - set(COLUMNS))
    missing = sorted(set(COLUMNS) - set(old[0]) - set(_OLDER_COLUMNS))
    if unknown or missing:
        raise ValueError(f"append: {path} is not a measurement CSV of this version (unknown "
                         f"columns {unknown}, missing {missing})")
    ids = {r["point_id"] for r in old}
    again = sorted(ids & {r["point_id"] for r in rows})
    if again:
        raise ValueError(f"append: {path} already has {len(again)} of these points (first: "
                         f"{again[0]}); measure the others or write another file")
    merged = [{c: r.get(c, _OLDER_COLUMNS.get(c, "")) for c in COLUMNS} for r in old]
    return csv_text(merged + list(rows), COLUMNS)


# --------------------------------------------------------------------------- the budget


#: Seconds assumed for building a model (besides its weights at 5 GB/s) and for compiling one
#: model's blocks (regional compilation with CUDA graphs) — estimates for the budget — and the
#: factor on a point's roofline estimate (before a point starts, the clock is checked against
#: its estimate too, so a late point is skipped rather than run past the budget).
BUILD_SECONDS = 2.0
COMPILE_SECONDS = {"cuda": 60.0, "cpu": 5.0}
SAFETY = 1.5


def estimate_seconds(point: Point, hw: HardwareSpec, repeats: int, warmup: int,
                     max_time: float) -> float:
    """Seconds a point should take: the pass (``cm.analyze`` on ``hw``, with its kernel
    overhead) run for the warm-up, the FLOP-counted call and the timed repeats (``max_time``
    caps them, but at least 3 run), plus the prefill that fills a decode step's cache; ×
    :data:`SAFETY`."""
    config = gpt_config(point.model)
    spec = config.to_spec()
    q, c, cache = point.workload
    nbytes = BYTES_PER_DTYPE[point.dtype]
    kw = dict(weight_bytes=nbytes, kv_bytes=nbytes, act_bytes=nbytes, dtype=point.dtype)
    dtype = point.dtype if point.dtype in hw.peak_flops else next(iter(hw.peak_flops))
    kw["dtype"] = dtype
    t = analyze(spec, hw, batch=point.batch, new_tokens=q, cached_tokens=c,
                **reference_options(cache, config.attn_impl), **kw).time
    fill = 0.0
    if c and (point.prefill_cache or point.engine == "hf"):
        fill = analyze(spec, hw, batch=point.batch, new_tokens=c, cached_tokens=0,
                       **reference_options(cache, config.attn_impl), **kw).time
    calls = warmup + 2 + (3 if point.engine == "compiled" else 0)
    return SAFETY * (fill + calls * t + max(min(max_time, repeats * t), 3 * t))


def _group_seconds(model: str, engine: str, dtype: str, device: str) -> float:
    """Seconds to build (and compile) one model for one engine: :data:`BUILD_SECONDS` plus its
    weights at 5 GB/s, plus :data:`COMPILE_SECONDS` for the compiled engine."""
    weights = param_count(gpt_config(model).to_spec()) * BYTES_PER_DTYPE[dtype]
    t = BUILD_SECONDS + weights / 5e9
    if engine == "compiled":
        t += COMPILE_SECONDS["cuda" if device.startswith("cuda") else "cpu"]
    return t


def trim(points: list[Point], budget: float, hw: HardwareSpec, device: str, repeats: int,
         warmup: int, max_time: float) -> tuple[list[Point], list[Point]]:
    """(kept, dropped): the points whose estimated seconds, with their models' build and
    compile time, fit ``budget``. The largest go first — by what dropping them saves: a point's
    own seconds, plus its model's build and compile time when it is that model's last point
    (so a model kept for one point does not cost a compilation)."""
    check_number("budget", budget, 0.0)
    cost = {p: estimate_seconds(p, hw, repeats, warmup, max_time) for p in points}
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault((p.model, p.engine, p.dtype), []).append(p)
    overhead = {g: _group_seconds(g[0], g[1], g[2], device) for g in groups}
    left = {g: len(members) for g, members in groups.items()}
    kept = set(points)
    total = sum(cost.values()) + sum(overhead.values())

    def saving(p: Point) -> float:
        g = (p.model, p.engine, p.dtype)
        return cost[p] + (overhead[g] if left[g] == 1 else 0.0)

    while total > budget and kept:
        p = max(kept, key=lambda x: (saving(x), x.point_id))
        total -= saving(p)
        kept.discard(p)
        left[(p.model, p.engine, p.dtype)] -= 1
    return [p for p in points if p in kept], [p for p in points if p not in kept]


def default_hardware(device: str) -> HardwareSpec:
    """A machine to estimate with when none is given: the datasheet preset of the GPU
    (:func:`costmodel.validation.calibrate.datasheet_for`), else an order-of-magnitude CPU
    (100 GFLOP/s, 20 GB/s, 5 µs per op call: the committed CPU calibration's shape)."""
    from costmodel.reference.timing import describe_device

    if device.startswith("cuda"):
        sheet = datasheet_for(describe_device(device)["device_name"])
        if sheet is not None:
            return sheet.replace(kernel_overhead=5e-6)
    return HardwareSpec(name="estimate", memory_bytes=2**34, bandwidth=2e10,
                        peak_flops={"fp32": 1e11, "bf16": 1e11, "fp16": 1e11},
                        kernel_overhead=5e-6, source="an order-of-magnitude CPU estimate")


def _measure(grid, device, dtype, repeats, warmup, threads, min_time, max_time, rounds, clock,
             progress, budget=None, hardware=None, skipped=None,
             compile_backend=None) -> list[dict]:
    from costmodel.reference.timing import (
        check_device,
        default_clock,
        describe_device,
        get_clock,
        require_torch,
        summarize,
    )

    t_start = time.perf_counter()
    device = check_device(device)
    check_positive_int("repeats", repeats)
    check_positive_int("rounds", rounds)
    check_int("warmup", warmup, 0, 10**6)
    points = grid_points(grid, dtype)
    for p in points:
        if p.dtype == "fp16" and device == "cpu":
            raise ValueError("dtype: fp16 matmuls are not a supported fast path on the CPU; "
                             "use fp32 or bf16")
    skipped = skipped if skipped is not None else []
    need = None
    if budget is not None:
        check_number("budget", budget, 0.0)
        hw = hardware if hardware is not None else default_hardware(device)
        points, dropped = trim(points, budget, hw, device, repeats, warmup, max_time)
        skipped.extend((p.point_id, "trimmed to fit the budget") for p in dropped)
        need = {p: estimate_seconds(p, hw, repeats, warmup, max_time) for p in points}
        need.update({(p.model, p.dtype, p.engine): _group_seconds(p.model, p.engine, p.dtype,
                                                                  device) for p in points})
    torch = require_torch("measuring the reference model")
    prev = torch.get_num_threads()
    pooled: dict[str, dict] = {}
    try:
        if threads is not None:
            check_positive_int("threads", threads)
            torch.set_num_threads(threads)
        clock = clock or default_clock(device, torch.get_num_threads())
        get_clock(clock)
        info = describe_device(device)
        n = len(points) * rounds
        k = 0
        for _ in range(rounds):
            k = _sweep(points, device, repeats, warmup, min_time, max_time, clock, progress,
                       pooled, k, n, budget, t_start, skipped, compile_backend, need)
    finally:
        torch.set_num_threads(prev)
    rows = []
    for point in points:
        meas = pooled.get(point.point_id)
        if meas is None:
            continue
        t = meas["time"]
        t.update(summarize(t["samples"]))
        t["wall_median"] = float(summarize(t["walls"])["median"])
        t["rounds"] = rounds
        rows.append(_row(point, meas["config"], meas, info, warmup))
    if not rows:
        raise ValueError("measure: no point was measured (" + "; ".join(
            f"{pid}: {why}" for pid, why in skipped[:3]) + ")")
    return rows


#: What an engine may raise on a model it cannot run (the budget run skips it).
_ENGINE_ERRORS = (RuntimeError, ValueError, ImportError, NotImplementedError, TypeError,
                  AssertionError, MemoryError)


def _sweep(points, device, repeats, warmup, min_time, max_time, clock, progress, pooled, k, n,
           budget, t_start, skipped, compile_backend, need=None) -> int:
    """One round over the points, one model in memory at a time (grouped by model, dtype and
    engine; the compiled engine compiles the eager model in place after its points). With a
    budget, a point (and its model's build) starts only if its estimate (``need``) fits the
    time left."""
    import torch

    order = sorted(range(len(points)), key=lambda i: (
        points[i].model, points[i].dtype, ENGINES.index(points[i].engine)))
    built: dict[tuple, tuple] = {}
    failed: dict[tuple, str] = {}
    tolerant = budget is not None
    need = need or {}
    for i in order:
        point = points[i]
        key = (point.model, point.dtype, point.engine)
        if tolerant:
            ahead = need.get(point, 0.0) + (need.get(key, 0.0) if key not in built else 0.0)
            if time.perf_counter() - t_start + ahead > budget:
                skipped.append((point.point_id, "the budget's time ran out"))
                continue
        if key in failed:
            skipped.append((point.point_id, failed[key]))
            continue
        if key not in built:
            base = None
            eager = built.get((point.model, point.dtype, "eager"))
            if point.engine == "compiled" and eager is not None:
                base = eager[1]
            built.clear()                  # one model in memory at a time
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            config = gpt_config(point.model)
            try:
                model = build_engine(point.engine, config, point.dtype, device, base=base,
                                     compile_backend=compile_backend)
            except _ENGINE_ERRORS as e:
                if not tolerant:
                    raise
                failed[key] = f"{point.engine} engine: {' '.join(str(e).split())[:200]}"
                skipped.append((point.point_id, failed[key]))
                continue
            built[key] = (config, model, int(sum(p.nbytes for p in model.parameters())))
        config, model, pbytes = built[key]
        if point.context + 1 > config.block_size:
            raise ValueError(f"context: {point.context} exceeds {point.model}'s block size "
                             f"{config.block_size}")
        try:
            meas = measure_point(model, config, point, device, repeats, warmup, min_time,
                                 max_time, clock=clock)
        except _ENGINE_ERRORS as e:
            if not tolerant:
                raise
            reason = f"{point.engine} engine: {' '.join(str(e).split())[:200]}"
            if "out of memory" in reason.lower():
                reason = "out of memory"
            skipped.append((point.point_id, reason))
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            continue
        meas["param_bytes"] = pbytes
        prev_meas = pooled.get(point.point_id)
        if prev_meas is not None:
            meas["time"]["samples"] = prev_meas["time"]["samples"] + meas["time"]["samples"]
            meas["time"]["walls"] = prev_meas["time"]["walls"] + meas["time"]["walls"]
        meas["config"] = config
        pooled[point.point_id] = meas
        k += 1
        if progress is not None:
            progress(k, n, point.point_id, meas["time"]["median"])
    return k


# --------------------------------------------------------------------------- speculative


def _acceptance(res, gamma: int) -> tuple[int, int]:
    """(accepted, at risk) over all iterations: a drafted token is at risk when every earlier
    one of its iteration was accepted. accepted / at risk is the maximum-likelihood per-token
    acceptance α of the i.i.d. model behind E = (1 − α^(γ+1)) / (1 − α)."""
    acc = list(res.accepted_counts)
    prop = list(res.proposed_counts)
    at_risk = prop[0] if prop else 0
    for i in range(1, gamma):
        # proposed at i AND all earlier accepted = accepted at i-1, capped by proposals at i
        at_risk += min(acc[i - 1], prop[i])
    return int(sum(acc)), int(at_risk)


def speculative_text(rows: Sequence[dict]) -> str:
    """The speculative CSV of :func:`measure_speculative`'s rows."""
    return csv_text(rows, SPECULATIVE_COLUMNS)


def measure_speculative(out_csv: str | Path | None = None, gammas: Sequence[int] = range(1, 9),
                        new_tokens: int | None = None, prompt_chars: int = 32, n_prompts: int = 3,
                        repeats: int = 7, device: str = "cpu", threads: int | None = 1,
                        cache: str = "dynamic", models=None) -> list[dict]:
    """Time greedy speculative decoding of the committed target/draft text pair against the
    target alone, for each γ; rows carry the measured acceptance (see :func:`_acceptance`).

    ``models``: optional (target, draft) GPT pair (default: ``reference.train.load_textpair``).
    Time per method = median over ``repeats`` of the total over ``n_prompts`` prompts.
    ``new_tokens`` defaults to what the models' block size leaves after the prompt and γ.
    ``out_csv`` is written all-or-nothing.
    """
    with OutputSet() as out:
        if out_csv is not None:
            out.write_bytes(out_csv, b"")
        rows = _measure_speculative(gammas, new_tokens, prompt_chars, n_prompts, repeats,
                                    device, threads, cache, models)
        if out_csv is not None:
            out.write_text(out_csv, speculative_text(rows))
    return rows


def _measure_speculative(gammas, new_tokens, prompt_chars, n_prompts, repeats, device, threads,
                         cache, models) -> list[dict]:
    from costmodel.reference.timing import (
        check_device,
        default_clock,
        describe_device,
        require_torch,
        time_call,
    )

    device = check_device(device)
    torch = require_torch("measuring speculative decoding")
    from costmodel.reference.speculative import generate_speculative

    gammas = [check_int("gamma", g, 1, MAX_GAMMA) for g in gammas]
    if not gammas:
        raise ValueError("gammas: give at least one γ")
    check_positive_int("repeats", repeats)
    check_positive_int("n_prompts", n_prompts)
    check_positive_int("prompt_chars", prompt_chars)
    check_choice("cache", cache, ("dynamic", "static"))
    if models is None:
        try:
            from costmodel.reference.train import load_corpus, load_textpair
            target, draft, tok = load_textpair(device=device)
        except (FileNotFoundError, OSError) as e:
            raise ValueError(f"speculative: the trained target/draft pair is not available "
                             f"({e})") from None
        text = load_corpus()
        lines = [ln for ln in text.splitlines() if len(ln) >= prompt_chars][:200]
        if not lines:
            raise ValueError(f"prompt_chars: no corpus line has {prompt_chars} characters")
        prompts = [tok.encode(lines[(17 * i) % len(lines)][:prompt_chars])
                   for i in range(n_prompts)]
    else:
        target, draft = models
        gen = torch.Generator().manual_seed(0)
        prompts = [torch.randint(target.config.vocab_size, (prompt_chars,),
                                 generator=gen).tolist() for _ in range(n_prompts)]
    target.eval()
    draft.eval()
    room = min(target.config.block_size, draft.config.block_size) - prompt_chars - max(gammas)
    if new_tokens is None:
        new_tokens = room
    if isinstance(new_tokens, bool) or not isinstance(new_tokens, int) or not 1 <= new_tokens \
            <= room:
        raise ValueError(f"new_tokens: {new_tokens!r} does not fit the block size (at most "
                         f"{room} after a {prompt_chars}-token prompt and γ = {max(gammas)})")
    prev = torch.get_num_threads()
    rows: list[dict] = []
    try:
        if threads is not None:
            check_positive_int("threads", threads)
            torch.set_num_threads(threads)
        info = describe_device(device)
        clock = default_clock(device, torch.get_num_threads())
        idxs = [torch.tensor([p], device=device) for p in prompts]

        def run_target():
            with torch.inference_mode():
                for idx in idxs:
                    target.generate(idx, new_tokens, cache=cache)

        base = {"tokens": new_tokens * len(idxs), "prompts": len(idxs),
                "prompt_tokens": prompt_chars, "context_mean": prompt_chars + new_tokens / 2,
                "threads": info["threads"], "clock": clock, "cache": cache,
                "kv_update": reference_options(cache)["kv_update"],
                "device": info["device"],
                "device_name": info["device_name"], "torch_version": info["torch_version"],
                "target_config": json.dumps(target.config.to_dict(), sort_keys=True),
                "draft_config": json.dumps(draft.config.to_dict(), sort_keys=True)}
        # the cost of each pass on its own, at the mean context, as the runner calls it
        ctx = int(prompt_chars + new_tokens // 2)
        ids = torch.randint(target.config.vocab_size, (1, ctx + max(gammas) + 1),
                            generator=torch.Generator().manual_seed(1)).to(device)

        def pass_time(model, q):
            with torch.inference_mode():
                _, _, kv = model(ids[:, :ctx], kv_cache=model.empty_kv_cache())
                new = ids[:, ctx:ctx + q]
                return time_call(lambda: model(new, kv_cache=kv, all_logits=True), repeats=9,
                                 warmup=2, min_time=0.02, clock=clock)["median"]

        t_step, t_draft = pass_time(target, 1), pass_time(draft, 1)
        base.update(target_step_s=t_step, draft_step_s=t_draft, pass_context=ctx)
        t = time_call(run_target, repeats=repeats, warmup=1, clock=clock)
        rows.append({"gamma": 0, "method": "target_only", "verify_s": t_step, "time_s": t["median"],
                     "time_p10_s": t["p10"], "time_p90_s": t["p90"], "iterations": 0,
                     "accepted": 0, "at_risk": 0, "alpha_hat": float("nan"),
                     "tokens_per_iteration": 1.0, **base})
        for g in gammas:
            stats: dict[str, int] = {}

            def run_spec(g=g, stats=stats):
                it = acc = risk = 0
                for idx in idxs:
                    res = generate_speculative(target, draft, idx, new_tokens, g, cache=cache)
                    a, r = _acceptance(res, g)
                    it, acc, risk = it + res.iterations, acc + a, risk + r
                stats.update(iterations=it, accepted=acc, at_risk=risk)

            t = time_call(run_spec, repeats=repeats, warmup=1, clock=clock)
            rows.append({"gamma": g, "method": "speculative", "verify_s": pass_time(target, g + 1),
                         "time_s": t["median"],
                         "time_p10_s": t["p10"], "time_p90_s": t["p90"],
                         "iterations": stats["iterations"], "accepted": stats["accepted"],
                         "at_risk": stats["at_risk"],
                         "alpha_hat": stats["accepted"] / max(stats["at_risk"], 1),
                         "tokens_per_iteration": base["tokens"] / max(stats["iterations"], 1),
                         **base})
    finally:
        torch.set_num_threads(prev)
    return [{col: r[col] for col in SPECULATIVE_COLUMNS} for r in rows]


__all__ = ["GRIDS", "MODELS", "PHASES", "Point", "ReferencePass", "build_engine",
           "default_hardware", "engine_pass", "estimate_seconds", "gpt_config", "grid_models",
           "appended_text", "grid_points", "measure", "measure_point", "measure_speculative",
           "measurements_text", "meta_flops", "reference_pass", "speculative_text", "trim"]
