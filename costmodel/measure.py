"""Measure the bundled PyTorch reference model over a grid, one CSV row per point.

    rows = measure("small", device="cpu", dtype="fp32", out_csv="data/measurements/cpu.csv")

A point is (model, batch B, context s, phase, dtype). Phases are the substitutions of the one
per-operator model (B sequences add q new tokens to c cached ones):

    phase            q   c   cache     what is timed
    prefill          s   0   dynamic   model(idx, kv_cache=empty)  (K, V kept: a cache is built)
    decode_dynamic   1   s   dynamic   one step on a concatenating cache holding s tokens
    decode_static    1   s   static    one step writing in place into a preallocated cache
    no_cache         s   0   none      model(idx): the no-KV-cache baseline re-encodes s tokens

Models have random weights (seeded) and ``attn_impl="eager"`` (explicit matmuls: the
per-operator model's ``attention="eager"``; the dynamic cache is ``kv_update="concat"``). Each
point is timed with warm-up and repeats (median, p10, p90, quartiles), with torch limited to
``threads`` intra-op threads. A row carries everything needed to predict it: the exact ModelSpec
fields, the options (attention, causal, lm_head, kv_cache, kv_update), the workload (batch,
new_tokens q, cached_tokens c, cache strategy, dtype and byte widths), the device description,
torch version and threads, the measured bytes of the KV cache and of the parameters, and the
reference ``GPTConfig`` as JSON (so validation can rebuild the model).

Files are written to a temp file and renamed: a reader never sees a partial CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costmodel.calibrate import (
    _clock,
    check_device,
    default_clock,
    describe_device,
    summarize,
    synchronizer,
    time_call,
)
from costmodel.errors import atomic_write_text, check_choice, check_positive_int
from costmodel.specs import ModelSpec

PHASES = ("prefill", "decode_dynamic", "decode_static", "no_cache")
GRIDS = ("tiny", "small", "full")
BYTES_PER_DTYPE = {"fp32": 4, "bf16": 2, "fp16": 2}
#: The models of the grid (reference GPTConfig keyword arguments; vocabularies are GPT-2's and
#: Llama's). ``llama-gqa`` is the Llama-style variant: RMSNorm, rotary, SwiGLU, no biases,
#: untied head and grouped-query attention (6 query heads share 2 KV heads).
MODELS: dict[str, dict[str, Any]] = {
    "gpt-nano": {"preset": "gpt-nano"},
    "gpt-micro": {"preset": "gpt-micro"},
    "gpt-mini": {"preset": "gpt-mini"},
    "gpt2": {"preset": "gpt2"},
    "llama-gqa": {"llama": dict(n_layer=6, n_head=6, n_kv_head=2, n_embd=384, d_ff=1024,
                                vocab_size=32000, block_size=1024)},
}
SPEC_COLUMNS = ("n_layers", "d_model", "n_heads", "vocab_size", "max_context", "n_kv_heads",
                "head_dim", "d_ff", "gated_mlp", "activation", "norm", "qkv_bias", "out_bias",
                "mlp_bias", "lm_head_bias", "tied_embeddings", "positions")
OPTION_COLUMNS = ("attention", "causal", "lm_head", "kv_cache")
TIME_COLUMN = "time_s"
COLUMNS = ("point_id", "model", *SPEC_COLUMNS, *OPTION_COLUMNS, "kv_update", "phase", "cache",
           "batch",
           "new_tokens", "cached_tokens", "context", "static_max_len", "dtype", "weight_bytes",
           "act_bytes", "kv_bytes", "device", "device_name", "torch_version", "threads",
           "warmup", "repeats", "inner", TIME_COLUMN, "time_p10_s", "time_p90_s", "time_q25_s",
           "time_q75_s", "time_wall_s", "clock", "rounds", "kv_cache_bytes_measured",
           "param_bytes_measured", "gpt_config")


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
    def new_tokens(self) -> int:
        return 1 if self.phase.startswith("decode") else self.context

    @property
    def cached_tokens(self) -> int:
        return self.context if self.phase.startswith("decode") else 0

    @property
    def cache(self) -> str:
        return {"prefill": "dynamic", "decode_dynamic": "dynamic", "decode_static": "static",
                "no_cache": "none"}[self.phase]

    @property
    def point_id(self) -> str:
        return f"{self.model}|B{self.batch}|s{self.context}|{self.phase}|{self.dtype}"


# --------------------------------------------------------------------------- grids


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


# --------------------------------------------------------------------------- configs


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover
        raise ValueError("measuring needs torch (pip install 'costmodel[reference]')") from e
    return torch


def gpt_config(model: str, **overrides):
    """The reference ``GPTConfig`` of a grid model (eager attention unless overridden)."""
    from costmodel.reference.gpt import GPTConfig

    check_choice("model", model, MODELS)
    entry = MODELS[model]
    kw = {"attn_impl": "eager", **overrides}
    if "preset" in entry:
        return GPTConfig.from_preset(entry["preset"], **kw)
    return GPTConfig.llama_style(**{**entry["llama"], "name": model, **kw})


def spec_for(config) -> ModelSpec:
    """The :class:`ModelSpec` of a reference ``GPTConfig``.

    Inference options that go with it (see :func:`options_for`): nanoGPT computes the LM head on
    the last position only (``lm_head="last"``); eager attention materialises the scores and
    probabilities with separate scale and mask passes and K/V layout copies
    (``attention="eager"``) and counts every q×K pair (``causal="full"``).
    """
    if config.norm == "layernorm" and not config.bias:
        raise ValueError("config: LayerNorm without bias has no ModelSpec equivalent (a "
                         "ModelSpec LayerNorm carries weight and bias)")
    swiglu = config.mlp == "swiglu"
    return ModelSpec(name=config.name, n_layers=config.n_layer, d_model=config.n_embd,
                     n_heads=config.n_head, vocab_size=config.vocab_size,
                     max_context=config.block_size, n_kv_heads=config.n_kv_head,
                     head_dim=config.head_dim, d_ff=config.d_ff, gated_mlp=swiglu,
                     activation="silu" if swiglu else "gelu", norm=config.norm,
                     qkv_bias=config.bias, out_bias=config.bias, mlp_bias=config.bias,
                     lm_head_bias=False, tied_embeddings=config.tie_embeddings,
                     positions=config.positions, source="costmodel.reference.gpt.GPTConfig")


def options_for(config, phase: str) -> dict:
    """``cm.analyze`` options that describe how the reference model runs ``phase``."""
    check_choice("phase", phase, PHASES)
    return {"attention": attention_for(config), "causal": "full", "lm_head": "last",
            "kv_cache": phase != "no_cache", "kv_update": kv_update_for(PHASE_CACHE[phase])}


PHASE_CACHE = {"prefill": "dynamic", "decode_dynamic": "dynamic", "decode_static": "static",
               "no_cache": "none"}


def attention_for(config) -> str:
    """The ``cm.analyze`` attention option of a reference config: its eager path is
    ``attention="eager"`` (scale, mask, layout copies as operators), SDPA is ``"fused"``."""
    return "eager" if config.attn_impl == "eager" else "fused"


def kv_update_for(cache: str) -> str:
    """The ``cm.analyze`` kv_update of a reference cache strategy: the dynamic cache grows by
    ``torch.cat`` (``"concat"``), the static one is written in place (``"inplace"``)."""
    return "concat" if cache == "dynamic" else "inplace"


def spec_from_row(row) -> ModelSpec:
    """The ModelSpec written in a measurement row (the inverse of the CSV's spec columns)."""
    def as_bool(v):
        if isinstance(v, str):
            return v.strip().lower() in ("true", "1")
        return bool(v)

    kw = {}
    for col in SPEC_COLUMNS:
        v = row[col]
        if col in ("gated_mlp", "qkv_bias", "out_bias", "mlp_bias", "lm_head_bias",
                   "tied_embeddings"):
            kw[col] = as_bool(v)
        elif col in ("activation", "norm", "positions"):
            kw[col] = str(v)
        else:
            kw[col] = int(v)
    return ModelSpec(name=str(row["model"]), **kw)


# --------------------------------------------------------------------------- measuring


def _build(model: str, dtype: str, device: str, seed: int = 0):
    torch = _torch()
    from costmodel.reference.gpt import GPT, parse_dtype

    config = gpt_config(model)
    torch.manual_seed(seed)
    m = GPT(config).to(device=device, dtype=parse_dtype(dtype)).eval()
    return config, m


def _param_bytes(model) -> int:
    return int(sum(p.nbytes for p in model.parameters()))  # tied weights once


def measure_point(model, config, point: Point, device: str, repeats: int = 9, warmup: int = 2,
                  min_time: float = 0.02, max_time: float = 6.0, seed: int = 0,
                  clock: str = "wall") -> dict:
    """Time one point on an already built reference model; returns the measured fields."""
    torch = _torch()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    B, s = point.batch, point.context
    V = config.vocab_size
    idx = torch.randint(V, (B, s), generator=gen).to(device)
    nxt = torch.randint(V, (B, 1), generator=gen).to(device)
    sync = synchronizer(device)
    static_max_len = 0
    with torch.inference_mode():
        if point.phase == "prefill":
            def fn():
                return model(idx, kv_cache=model.empty_kv_cache())
            kv_bytes = fn()[2].nbytes
        elif point.phase == "decode_dynamic":
            _, _, cache = model(idx, kv_cache=model.empty_kv_cache())

            def fn():
                return model(nxt, kv_cache=cache)   # functional: ``cache`` is not modified
            kv_bytes = fn()[2].nbytes
        elif point.phase == "decode_static":
            static_max_len = config.block_size
            model.setup_static_cache(B, static_max_len)
            model(idx, input_pos=0)

            def fn():
                return model(nxt, input_pos=s)      # rewrites position s each call
            fn()
            kv_bytes = model.static_cache_nbytes
        else:
            def fn():
                return model(idx)
            kv_bytes = 0
        try:
            t = time_call(fn, repeats=repeats, warmup=warmup, min_time=min_time, sync=sync,
                          max_time=max_time, clock=clock)
        finally:
            model.clear_static_cache()
    return {"time": t, "kv_cache_bytes_measured": int(kv_bytes), "static_max_len":
            static_max_len}


def _row(point: Point, config, meas: dict, info: dict, warmup: int) -> dict:
    spec = spec_for(config)
    opts = options_for(config, point.phase)
    nbytes = BYTES_PER_DTYPE[point.dtype]
    t = meas["time"]
    row = {"point_id": point.point_id, "model": point.model}
    row.update({c: getattr(spec, c) for c in SPEC_COLUMNS})
    row.update(opts)
    row.update({
        "phase": point.phase, "cache": point.cache, "batch": point.batch,
        "new_tokens": point.new_tokens, "cached_tokens": point.cached_tokens,
        "context": point.context, "static_max_len": meas["static_max_len"],
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
    return row


def rows_to_csv(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    buf = io.StringIO()
    cols = list(columns or (rows[0].keys() if rows else COLUMNS))
    writer = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def measure(grid: str | Iterable[Point | dict] = "small", device: str = "cpu",
            dtype: str = "fp32", out_csv: str | Path | None = None, repeats: int = 9,
            warmup: int = 2, threads: int | None = 1, min_time: float = 0.02,
            max_time: float = 6.0, rounds: int = 1, clock: str | None = None,
            progress=None) -> list[dict]:
    """Measure every point of ``grid`` and (optionally) write the CSV atomically.

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
    device = check_device(device)
    check_positive_int("repeats", repeats)
    check_positive_int("rounds", rounds)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: must be an integer >= 0, got {warmup!r}")
    points = grid_points(grid, dtype)
    for p in points:
        if p.dtype == "fp16" and device == "cpu":
            raise ValueError("dtype: fp16 matmuls are not a supported fast path on the CPU; "
                             "use fp32 or bf16")
    torch = _torch()
    prev = torch.get_num_threads()
    pooled: dict[str, dict] = {}
    try:
        if threads is not None:
            check_positive_int("threads", threads)
            torch.set_num_threads(threads)
        clock = clock or default_clock(device, torch.get_num_threads())
        _clock(clock)
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
                    built[key] = (config, model, _param_bytes(model))
                config, model, pbytes = built[key]
                if point.cached_tokens + point.new_tokens > config.block_size:
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
    if out_csv is not None:
        atomic_write_text(Path(out_csv), rows_to_csv(rows, COLUMNS))
        Path(out_csv).chmod(0o644)      # the temp file's 0600 would keep others out
    return rows


# --------------------------------------------------------------------------- speculative

SPEC_COLUMNS_SPECULATIVE = ("gamma", "method", "time_s", "time_p10_s", "time_p90_s", "tokens",
                            "prompts", "iterations", "accepted", "at_risk", "alpha_hat",
                            "tokens_per_iteration", "prompt_tokens", "context_mean", "threads",
                            "clock", "cache", "target_step_s", "draft_step_s", "verify_s",
                            "pass_context",
                            "device", "device_name", "torch_version", "target_config",
                            "draft_config")


def point_hash(text: str) -> int:
    """A stable integer hash of a string (for train/test splits)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


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


def measure_speculative(out_csv: str | Path | None = None, gammas: Sequence[int] = range(1, 9),
                        new_tokens: int | None = None, prompt_chars: int = 32, n_prompts: int = 3,
                        repeats: int = 7, device: str = "cpu", threads: int | None = 1,
                        cache: str = "dynamic", models=None) -> list[dict]:
    """Time greedy speculative decoding of the committed target/draft text pair against the
    target alone, for each γ; rows carry the measured acceptance (see :func:`_acceptance`).

    ``models``: optional (target, draft) GPT pair (default: ``reference.train.load_textpair``).
    Time per method = median over ``repeats`` of the total over ``n_prompts`` prompts.
    ``new_tokens`` defaults to what the models' block size leaves after the prompt and γ.
    """
    device = check_device(device)
    torch = _torch()
    from costmodel.reference.speculative import generate_speculative

    if models is None:
        try:
            from costmodel.reference.train import load_textpair
            target, draft, tok = load_textpair(device=device)
        except (FileNotFoundError, OSError, ImportError) as e:
            raise ValueError(f"speculative: the trained target/draft pair is not available "
                             f"({e})") from None
        corpus_ids = None
        from costmodel.reference.train import load_corpus
        text = load_corpus()
        lines = [ln for ln in text.splitlines() if len(ln) >= prompt_chars][:200]
        prompts = [tok.encode(lines[(17 * i) % len(lines)][:prompt_chars])
                   for i in range(n_prompts)]
    else:
        target, draft = models
        corpus_ids = torch.Generator().manual_seed(0)
        prompts = [torch.randint(target.config.vocab_size, (prompt_chars,),
                                 generator=corpus_ids).tolist() for _ in range(n_prompts)]
    target.eval()
    draft.eval()
    gammas = list(gammas)
    room = min(target.config.block_size, draft.config.block_size) - prompt_chars - max(gammas)
    if new_tokens is None:
        new_tokens = room
    if new_tokens < 1 or new_tokens > room:
        raise ValueError(f"new_tokens: {new_tokens} does not fit the block size (at most "
                         f"{room} after a {prompt_chars}-token prompt and γ = {max(gammas)})")
    prev = torch.get_num_threads()
    rows: list[dict] = []
    try:
        if threads is not None:
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
    if out_csv is not None:
        atomic_write_text(Path(out_csv), rows_to_csv(rows, ["gamma", "method", *[
            c for c in SPEC_COLUMNS_SPECULATIVE if c not in ("gamma", "method")]]))
        Path(out_csv).chmod(0o644)
    return rows


def speculative_path(measurements_csv: str | Path) -> Path:
    """Where the speculative measurements sit beside a grid CSV: ``<stem>_speculative.csv``."""
    p = Path(measurements_csv)
    return p.with_name(f"{p.stem}_speculative.csv")


__all__ = ["COLUMNS", "GRIDS", "MODELS", "PHASES", "Point", "grid_points", "gpt_config",
           "measure", "measure_point", "measure_speculative", "options_for", "point_hash",
           "spec_for", "spec_from_row", "speculative_path"]
