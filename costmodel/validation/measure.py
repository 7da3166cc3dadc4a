"""Measure the PyTorch reference model over a grid, one CSV row per point, and time its
speculative decoding (:mod:`costmodel.validation.measure_speculative`).

    rows = measure("small", device="cpu", dtype="fp32", out_csv="data/measurements/cpu.csv")
    rows = measure("gpu", device="cuda", dtype="bf16", budget=240)    # the GPU grid, trimmed

A point is (model, batch B, context s, phase, dtype, engine). The phases are the reference
model's measured passes, :data:`costmodel.workload.MEASURED_PHASES` (q and c by
:func:`costmodel.workload.substitute`):

    phase            q   c   cache     what is run (passes.reference_pass)
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

The grids and their points: :mod:`costmodel.validation.grids`; one pass:
:mod:`costmodel.validation.passes`; the budget: :mod:`costmodel.validation.budget`.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from costmodel.checks import (
    check_int,
    check_number,
    check_positive_int,
)
from costmodel.files import OutputSet
from costmodel.specs import HardwareSpec
from costmodel.validation.budget import default_hardware, estimate_seconds, group_seconds, trim
from costmodel.validation.grids import Point, gpt_config, grid_points
from costmodel.validation.io import (
    BYTES_PER_DTYPE,
    COLUMNS,
    ENGINES,
    MODERN_SPEC_COLUMNS,
    SPEC_COLUMNS,
    TIME_COLUMN,
    csv_text,
)
from costmodel.validation.passes import engine_pass, meta_flops
from costmodel.workload import reference_options

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
        need.update({(p.model, p.dtype, p.engine): group_seconds(p.model, p.engine, p.dtype,
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


__all__ = ["appended_text", "build_engine", "measure", "measure_point", "measurements_text"]
