"""Reference benchmark of speculative decoding: target-only vs speculative, γ = 1..8, with the
committed text pair.
"""

from __future__ import annotations

import argparse

import torch

from costmodel.reference.bench_common import (
    machine_info,
    plot_series,
    write_csv,
)
from costmodel.reference.timing import (
    synchronizer,
    time_call,
)

# ----------------------------------------------------------------------------- speculative


@torch.inference_mode()
def bench_speculative(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    """Target-only greedy decoding vs speculative decoding with the committed text pair."""
    from costmodel.reference.speculative import generate_speculative
    from costmodel.reference.train import load_corpus, load_textpair

    info = machine_info(device, dtype)
    target, draft, tok = load_textpair(device, dtype)
    info["target"] = (
        f"{target.config.n_layer}x{target.config.n_embd} ({target.get_num_params() / 1e6:.2f}M)"
    )
    info["draft"] = (
        f"{draft.config.n_layer}x{draft.config.n_embd} ({draft.get_num_params() / 1e6:.3f}M)"
    )
    print("# " + ", ".join(f"{k}: {v}" for k, v in info.items()))
    lines = [ln for ln in load_corpus().splitlines()[-200:] if len(ln) > args.prompt_chars]
    prompts = [
        torch.tensor([tok.encode(ln[: args.prompt_chars])], device=device)
        for ln in lines[: args.prompts]
    ]
    n = args.new_tokens

    def run_all(fn) -> float:
        """Median over repeats of the total time to decode every prompt (s)."""
        return time_call(lambda: [fn(p) for p in prompts], repeats=args.repeats, warmup=0,
                         sync=synchronizer(device))["median"]

    total_tokens = n * len(prompts)
    for p in prompts[:1]:  # warm-up
        target.generate(p, 8, cache="dynamic")
    refs = [target.generate(p, n, cache="dynamic") for p in prompts]
    t_target = run_all(lambda p: target.generate(p, n, cache="dynamic"))
    t_draft = run_all(lambda p: draft.generate(p, n, cache="dynamic"))
    base_ms = t_target / total_tokens * 1e3
    print(
        f"target-only greedy (dynamic KV): {base_ms:.3f} ms/token "
        f"({total_tokens / t_target:.1f} tok/s); "
        f"draft-only {t_draft / total_tokens * 1e3:.3f} ms/token"
    )
    print(
        f"{'gamma':>5}  {'ms/token':>8}  {'tok/s':>7}  {'speedup':>7}  {'accept':>6}  "
        f"{'acc/iter':>8}  "
        f"{'tok/iter':>8}  {'match':>5}  per-position acceptance"
    )
    rows = [
        {
            "gamma": 0,
            "ms_per_token": round(base_ms, 4),
            "tokens_per_s": round(total_tokens / t_target, 2),
            "speedup": 1.0,
            "acceptance_rate": "",
            "mean_accepted": "",
            "tokens_per_iteration": "",
            "target_calls": "",
            "draft_calls": "",
            "greedy_match": True,
            "per_position_acceptance": "",
        }
    ]
    for gamma in args.gammas:
        stats = [generate_speculative(target, draft, p, n, gamma) for p in prompts]
        match = all(torch.equal(s.tokens, r) for s, r in zip(stats, refs, strict=True))
        t = run_all(lambda p, g=gamma: generate_speculative(target, draft, p, n, g))
        ms = t / total_tokens * 1e3
        acc = sum(s.accepted_total for s in stats) / sum(sum(s.proposed_counts) for s in stats)
        iters = sum(s.iterations for s in stats)
        mean_acc = sum(s.accepted_total for s in stats) / iters
        tpi = (sum(s.accepted_total for s in stats) + iters) / iters
        per_pos = [
            sum(s.accepted_counts[i] for s in stats)
            / max(1, sum(s.proposed_counts[i] for s in stats))
            for i in range(gamma)
        ]
        per_pos_s = " ".join(f"{x:.2f}" for x in per_pos)
        print(
            f"{gamma:>5}  {ms:>8.3f}  {total_tokens / t:>7.1f}  {base_ms / ms:>6.2f}x  "
            f"{acc:>6.3f}  {mean_acc:>8.2f}  "
            f"{tpi:>8.2f}  {str(match):>5}  {per_pos_s}",
            flush=True,
        )
        rows.append(
            {
                "gamma": gamma,
                "ms_per_token": round(ms, 4),
                "tokens_per_s": round(total_tokens / t, 2),
                "speedup": round(base_ms / ms, 3),
                "acceptance_rate": round(acc, 4),
                "mean_accepted": round(mean_acc, 3),
                "tokens_per_iteration": round(tpi, 3),
                "target_calls": sum(s.target_calls for s in stats),
                "draft_calls": sum(s.draft_calls for s in stats),
                "greedy_match": match,
                "per_position_acceptance": per_pos_s,
            }
        )
    write_csv(args.out / "speculative_benchmark.csv", rows, info)
    plot_series(
        args.out / "speculative_benchmark.png",
        [r["gamma"] for r in rows[1:]],
        {
            "speedup vs target-only": [r["speedup"] for r in rows[1:]],
            "tokens per target call": [r["tokens_per_iteration"] for r in rows[1:]],
        },
        "gamma (drafted tokens per iteration)",
        "x",
        f"speculative decoding, text pair, {info['cpu']}, {info['torch_threads']} threads",
    )
    return 0
