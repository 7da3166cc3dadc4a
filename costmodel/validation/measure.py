"""Measure the PyTorch reference model over a grid, one CSV row per point, and time its
speculative decoding.

    rows = measure("small", device="cpu", dtype="fp32", out_csv="data/measurements/cpu.csv")

A point is (model, batch B, context s, phase, dtype). The phases are the reference model's
measured passes, :data:`costmodel.workload.MEASURED_PHASES` (q and c by
:func:`costmodel.workload.substitute`):

    phase            q   c   cache     what is run (:func:`reference_pass`)
    prefill          s   0   dynamic   model(idx, kv_cache=empty)  (K, V kept: a cache is built)
    decode_dynamic   1   s   dynamic   one step on a concatenating cache holding s tokens
    decode_static    1   s   static    one step writing in place into a preallocated cache
    no_cache         s   0   none      model(idx): the no-KV-cache baseline re-encodes s tokens

Models have random weights (seeded) and ``attn_impl="eager"`` (explicit matmuls). Each point is
timed with warm-up and repeats (median, p10, p90, quartiles), with torch limited to ``threads``
intra-op threads. A row carries everything needed to predict it (see
:mod:`costmodel.validation.io`). The exact FLOP check runs the same :func:`reference_pass` on
the meta device. Files are written all-or-nothing (:class:`costmodel.files.OutputSet`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costmodel.checks import MAX_GAMMA, check_choice, check_int, check_positive_int
from costmodel.files import OutputSet
from costmodel.validation.io import (
    BYTES_PER_DTYPE,
    COLUMNS,
    SPEC_COLUMNS,
    SPECULATIVE_COLUMNS,
    TIME_COLUMN,
    csv_text,
    measured_workload,
)
from costmodel.workload import MEASURED_PHASES, reference_options

PHASES = tuple(MEASURED_PHASES)
GRIDS = ("tiny", "small", "full")
#: The models of the grid: a preset of ``costmodel/data/models.csv`` with GPTConfig overrides
#: (the grid's models have a 1024-token block), or GPTConfig keyword arguments. ``llama-gqa``
#: is the Llama-style variant: RMSNorm, rotary, SwiGLU, no biases, untied head and
#: grouped-query attention (6 query heads share 2 KV heads), Llama's vocabulary.
MODELS: dict[str, dict[str, Any]] = {
    "gpt-nano": {"preset": "gpt-nano", "block_size": 1024},
    "gpt-micro": {"preset": "gpt-micro", "block_size": 1024},
    "gpt-mini": {"preset": "gpt-mini", "block_size": 1024},
    "gpt2": {"preset": "gpt2", "block_size": 1024},
    "llama-gqa": {"llama": dict(n_layer=6, n_head=6, n_kv_head=2, n_embd=384, d_ff=1024,
                                vocab_size=32000, block_size=1024)},
}


@dataclass(frozen=True)
class Point:
    """One grid point: a model, a batch, a context, a phase and a dtype."""

    model: str
    batch: int
    context: int
    phase: str
    dtype: str = "fp32"

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        check_positive_int("batch", self.batch)
        check_positive_int("context", self.context)
        check_choice("phase", self.phase, PHASES)
        check_choice("dtype", self.dtype, BYTES_PER_DTYPE)

    @property
    def workload(self) -> tuple[int, int, str]:
        """(q, c, cache strategy): :func:`costmodel.validation.io.measured_workload`."""
        return measured_workload(self.phase, self.context)

    @property
    def point_id(self) -> str:
        return f"{self.model}|B{self.batch}|s{self.context}|{self.phase}|{self.dtype}"


def grid_points(grid: str | Iterable[Point | dict], dtype: str = "fp32") -> list[Point]:
    """The points of a named grid (tiny, small, full) or of an explicit list."""
    if isinstance(grid, str):
        check_choice("grid", grid, GRIDS)
        if grid == "tiny":
            models, batches, contexts = ["gpt-nano"], [1], [16]
        elif grid == "small":
            models, batches, contexts = ["gpt-nano", "gpt-micro"], [1, 2], [32, 128]
        else:
            models, batches, contexts = list(MODELS), [1, 4], [32, 128, 512]
        return [Point(m, b, s, p, dtype) for m in models for b in batches for s in contexts
                for p in PHASES]
    points = [p if isinstance(p, Point) else Point(**p) for p in grid]
    if not points:
        raise ValueError("grid: no points to measure")
    return points


def gpt_config(model: str, **overrides: Any):
    """The reference ``GPTConfig`` of a grid model (eager attention unless overridden)."""
    from costmodel.reference.config import GPTConfig

    check_choice("model", model, MODELS)
    entry = dict(MODELS[model])
    kw = {"attn_impl": "eager", **overrides}
    if "preset" in entry:
        return GPTConfig.from_preset(entry.pop("preset"), **{**entry, **kw})
    return GPTConfig.llama_style(**{**entry["llama"], "name": model, **kw})


# --------------------------------------------------------------------------- one pass


@dataclass
class ReferencePass:
    """A pass of the reference model ready to run: ``run()`` is the forward call that is
    timed (and FLOP-counted); ``kv_cache_bytes`` the bytes its cache holds; ``static_max_len``
    the static cache's length (0 without one)."""

    run: Callable[[], Any]
    kv_cache_bytes: int
    static_max_len: int


@contextmanager
def reference_pass(model, phase: str, context_ids, next_ids,
                   static_max_len: int | None = None) -> Iterator[ReferencePass]:
    """Set up the pass of ``phase`` on ``model`` (a ``costmodel.reference.gpt.GPT``) with
    ``context_ids`` (B, s) and ``next_ids`` (B, 1): prefill and no-cache run the s context
    tokens; a decode step runs one token on a cache holding them (dynamic: a
    ``torch.cat``-grown cache, left unchanged by the step; static: a preallocated cache of
    ``static_max_len`` positions, default the block size, the step rewriting position s).
    The static cache is released on exit. Call inside ``torch.inference_mode()``."""
    B, s = context_ids.shape
    q, c, cache = measured_workload(phase, s)
    kv_bytes, max_len = 0, 0
    try:
        if phase == "prefill":
            def run():
                return model(context_ids, kv_cache=model.empty_kv_cache())
            kv_bytes = run()[2].nbytes
        elif cache == "dynamic":
            _, _, kv = model(context_ids, kv_cache=model.empty_kv_cache())

            def run():
                return model(next_ids, kv_cache=kv)   # functional: ``kv`` is not modified
            kv_bytes = run()[2].nbytes
        elif cache == "static":
            max_len = model.config.block_size if static_max_len is None else static_max_len
            model.setup_static_cache(B, max_len)
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


# --------------------------------------------------------------------------- measuring


def _build(model: str, dtype: str, device: str, seed: int = 0):
    import torch

    from costmodel.reference.gpt import GPT, parse_dtype

    config = gpt_config(model)
    torch.manual_seed(seed)
    m = GPT(config).to(device=device, dtype=parse_dtype(dtype)).eval()
    return config, m


def measure_point(model, config, point: Point, device: str, repeats: int = 9, warmup: int = 2,
                  min_time: float = 0.02, max_time: float = 6.0, seed: int = 0,
                  clock: str = "wall") -> dict:
    """Time one point on an already built reference model; returns the measured fields."""
    import torch

    from costmodel.reference.timing import synchronizer, time_call

    gen = torch.Generator(device="cpu").manual_seed(seed)
    B, s = point.batch, point.context
    V = config.vocab_size
    idx = torch.randint(V, (B, s), generator=gen).to(device)
    nxt = torch.randint(V, (B, 1), generator=gen).to(device)
    with torch.inference_mode(), reference_pass(model, point.phase, idx, nxt) as p:
        t = time_call(p.run, repeats=repeats, warmup=warmup, min_time=min_time,
                      sync=synchronizer(device), max_time=max_time, clock=clock)
    return {"time": t, "kv_cache_bytes_measured": p.kv_cache_bytes,
            "static_max_len": p.static_max_len}


def _row(point: Point, config, meas: dict, info: dict, warmup: int) -> dict:
    spec = config.to_spec()
    q, c, cache = point.workload
    nbytes = BYTES_PER_DTYPE[point.dtype]
    t = meas["time"]
    row = {"point_id": point.point_id, "model": point.model}
    row.update({col: getattr(spec, col) for col in SPEC_COLUMNS})
    row.update(reference_options(cache, config.attn_impl))
    row.update({
        "phase": point.phase, "cache": cache, "batch": point.batch, "new_tokens": q,
        "cached_tokens": c, "context": point.context, "static_max_len": meas["static_max_len"],
        "dtype": point.dtype, "weight_bytes": nbytes, "act_bytes": nbytes, "kv_bytes": nbytes,
        "device": info["device"], "device_name": info["device_name"],
        "torch_version": info["torch_version"], "threads": info["threads"], "warmup": warmup,
        "repeats": t["repeats"], "inner": t["inner"], TIME_COLUMN: t["median"],
        "time_p10_s": t["p10"], "time_p90_s": t["p90"], "time_q25_s": t["q25"],
        "time_q75_s": t["q75"], "time_wall_s": t["wall_median"], "clock": t["clock"],
        "rounds": t.get("rounds", 1), "kv_cache_bytes_measured": meas["kv_cache_bytes_measured"],
        "param_bytes_measured": meas["param_bytes"],
        "gpt_config": json.dumps(config.to_dict(), sort_keys=True),
    })
    return {col: row[col] for col in COLUMNS}


def measure(grid: str | Iterable[Point | dict] = "small", device: str = "cpu",
            dtype: str = "fp32", out_csv: str | Path | None = None, repeats: int = 9,
            warmup: int = 2, threads: int | None = 1, min_time: float = 0.02,
            max_time: float = 6.0, rounds: int = 1, clock: str | None = None,
            progress=None) -> list[dict]:
    """Measure every point of ``grid`` and (optionally) write the CSV (all-or-nothing: a
    failure leaves any file at ``out_csv`` as it was; a folder given as ``out_csv`` fails
    before anything is measured).

    ``grid``: 'tiny' (4 gpt-nano points), 'small' (32 points, seconds), 'full' (5 models ×
    B ∈ {1, 4} × s ∈ {32, 128, 512} × 4 phases = 120 points, minutes) or a list of
    :class:`Point` / dicts. ``threads``: torch intra-op threads while measuring (default 1;
    ``None`` keeps torch's setting). ``max_time`` caps the seconds of timed repeats per point
    and round (at least 3 are kept). ``rounds``: the grid is swept that many times and each
    point's samples pooled, so a burst of load from other processes hits a slice of every point
    instead of all samples of a few. ``clock``: ``thread`` (default with one CPU thread: CPU
    time of the measuring thread) or ``wall``; the wall-clock median is recorded either way.
    ``progress``: called with (i, n, point_id, seconds) after each point of each round.
    """
    with OutputSet() as out:
        if out_csv is not None:
            out.write_bytes(out_csv, b"")          # the destination is checked now
        rows = _measure(grid, device, dtype, repeats, warmup, threads, min_time, max_time,
                        rounds, clock, progress)
        if out_csv is not None:
            out.write_text(out_csv, measurements_text(rows))
    return rows


def measurements_text(rows: Sequence[dict]) -> str:
    """The measurement CSV of :func:`measure`'s rows."""
    return csv_text(rows, COLUMNS)


def _measure(grid, device, dtype, repeats, warmup, threads, min_time, max_time, rounds, clock,
             progress) -> list[dict]:
    from costmodel.reference.timing import (
        check_device,
        default_clock,
        describe_device,
        get_clock,
        require_torch,
        summarize,
    )

    device = check_device(device)
    check_positive_int("repeats", repeats)
    check_positive_int("rounds", rounds)
    check_int("warmup", warmup, 0, 10**6)
    points = grid_points(grid, dtype)
    for p in points:
        if p.dtype == "fp16" and device == "cpu":
            raise ValueError("dtype: fp16 matmuls are not a supported fast path on the CPU; "
                             "use fp32 or bf16")
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
            built: dict[tuple[str, str], tuple] = {}
            for point in points:
                key = (point.model, point.dtype)
                if key not in built:
                    built.clear()   # one model in memory at a time (points grouped by model)
                    config, model = _build(point.model, point.dtype, device)
                    built[key] = (config, model,
                                  int(sum(p.nbytes for p in model.parameters())))  # tied once
                config, model, pbytes = built[key]
                if point.context > config.block_size:
                    raise ValueError(f"context: {point.context} exceeds {point.model}'s block "
                                     f"size {config.block_size}")
                meas = measure_point(model, config, point, device, repeats, warmup, min_time,
                                     max_time, clock=clock)
                meas["param_bytes"] = pbytes
                prev_meas = pooled.get(point.point_id)
                if prev_meas is not None:
                    meas["time"]["samples"] = prev_meas["time"]["samples"] + \
                        meas["time"]["samples"]
                    meas["time"]["walls"] = prev_meas["time"]["walls"] + meas["time"]["walls"]
                meas["config"] = config
                pooled[point.point_id] = meas
                k += 1
                if progress is not None:
                    progress(k, n, point.point_id, meas["time"]["median"])
    finally:
        torch.set_num_threads(prev)
    rows = []
    for point in points:
        meas = pooled[point.point_id]
        t = meas["time"]
        t.update(summarize(t["samples"]))
        t["wall_median"] = float(summarize(t["walls"])["median"])
        t["rounds"] = rounds
        rows.append(_row(point, meas["config"], meas, info, warmup))
    return rows


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


__all__ = ["GRIDS", "MODELS", "PHASES", "Point", "ReferencePass", "gpt_config", "grid_points",
           "measure", "measure_point", "measure_speculative", "measurements_text",
           "reference_pass", "speculative_text"]
