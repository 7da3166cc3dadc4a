"""Time speculative decoding of the committed target/draft text pair against the target alone
(one row per γ, with the measured acceptance) and its CSV text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from costmodel.checks import (
    MAX_GAMMA,
    check_choice,
    check_int,
    check_positive_int,
)
from costmodel.files import OutputSet
from costmodel.validation.io import (
    SPECULATIVE_COLUMNS,
    csv_text,
)
from costmodel.workload import reference_options

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
