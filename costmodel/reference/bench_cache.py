"""Reference benchmarks of the KV cache: ``kv`` (seed 001's table), ``position`` (seed 000:
per-token time vs position) and ``static`` (static vs dynamic cache step vs context).
"""

from __future__ import annotations

import argparse
import statistics

import torch

from costmodel.reference.bench_common import (
    build_model,
    machine_info,
    plot_series,
    time_ms,
    write_csv,
)
from costmodel.reference.gpt import GPT
from costmodel.reference.timing import (
    synchronizer,
    time_once,
)

HEADER = "Context T  no KV (ms)  KV (ms)  speedup"
RULE = "-" * 50


# ----------------------------------------------------------------------------- kv (seed 001)


@torch.inference_mode()
def kv_step_times(
    model: GPT, T: int, device: torch.device, repeats: int, warmup: int
) -> tuple[float, float]:
    """(no-KV ms, KV ms) for one generation step at context ``T`` (batch 1)."""
    idx = torch.randint(model.config.vocab_size, (1, T), device=device)
    no_kv = time_ms(lambda: model(idx), device, repeats, warmup)
    _, _, cache = model(idx[:, :-1], kv_cache=model.empty_kv_cache())  # T-1 cached tokens
    last = idx[:, -1:]
    kv = time_ms(lambda: model(last, kv_cache=cache), device, repeats, warmup)
    return no_kv, kv


def format_kv_table(
    device: torch.device, blocks: list[tuple[str, float, list[tuple[int, float, float]]]]
) -> str:
    """Seed 001's ``benchmark_results.txt`` layout."""
    lines = [f"device: {device.type}"]
    for name, params_m, rows in blocks:
        lines += [f"{name} ({params_m:.1f}M params)", HEADER, RULE]
        for T, a, b in rows:
            lines.append(f"{T:>9}  {a:>10.2f}  {b:>7.2f}  {a / b:>6.2f}x")
    return "\n".join(lines) + "\n"


def bench_kv(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    info = machine_info(device, dtype)
    print("# " + ", ".join(f"{k}: {v}" for k, v in info.items()))
    blocks, rows_csv = [], []
    print(f"device: {device.type}", flush=True)
    for name in args.models.split(","):
        model = build_model(
            name, device, dtype, block_size=max(2048, max(args.contexts)), seed=args.seed
        )
        params_m = model.get_num_params(non_embedding=False) / 1e6
        print(f"{name} ({params_m:.1f}M params)\n{HEADER}\n{RULE}", flush=True)
        rows = []
        for T in args.contexts:
            a, b = kv_step_times(model, T, device, args.repeats, args.warmup)
            rows.append((T, a, b))
            rows_csv.append(
                {
                    "model": name,
                    "params_M": round(params_m, 3),
                    "context": T,
                    "no_kv_ms": round(a, 4),
                    "kv_ms": round(b, 4),
                    "speedup": round(a / b, 3),
                }
            )
            print(f"{T:>9}  {a:>10.2f}  {b:>7.2f}  {a / b:>6.2f}x", flush=True)
        blocks.append((name, params_m, rows))
        del model
    (args.out / "benchmark_results.txt").write_text(format_kv_table(device, blocks))
    write_csv(args.out / "benchmark_results.csv", rows_csv, info)
    for name, _, rows in blocks:
        plot_series(
            args.out / f"kv_{name}.png",
            [r[0] for r in rows],
            {
                "no KV (re-encode T tokens)": [r[1] for r in rows],
                "KV cache (1 token, T-1 cached)": [r[2] for r in rows],
            },
            "context T",
            "ms per step",
            f"{name}: one generation step, {info['cpu']}, {info['torch_threads']} threads",
            logy=True,
        )
    return 0


# ----------------------------------------------------------------------------- position (seed 000)


@torch.inference_mode()
def bench_position(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    """Per-token generation time vs position for no cache / dynamic / static (greedy, batch 1)."""
    info = machine_info(device, dtype)
    name = args.models.split(",")[0] if args.models != "gpt-mini,gpt2" else "gpt-mini"
    n_new = args.new_tokens
    model = build_model(
        name, device, dtype, block_size=max(1024, n_new + args.prompt_len), seed=args.seed
    )
    prompt = torch.randint(model.config.vocab_size, (1, args.prompt_len), device=device)
    series: dict[str, list[float]] = {}
    sync = synchronizer(device)
    for mode in ("none", "dynamic", "static"):
        state: dict = {"idx": prompt, "kv": None}
        times = []
        if mode == "static":
            model.setup_static_cache(1, args.prompt_len + n_new)

        def step(i: int, mode: str = mode, state: dict = state) -> None:
            idx, kv = state["idx"], state["kv"]
            if mode == "none":
                logits, _ = model(idx)
            elif mode == "dynamic":
                if kv is None:
                    logits, _, kv = model(idx, kv_cache=model.empty_kv_cache())
                else:
                    logits, _, kv = model(idx[:, -1:], kv_cache=kv)
            else:
                pos = idx.size(1)
                logits, _ = model(
                    idx if i == 0 else idx[:, -1:], input_pos=0 if i == 0 else pos - 1
                )
            nxt = torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)
            state["idx"], state["kv"] = torch.cat((idx, nxt), dim=1), kv

        for i in range(n_new):
            times.append(time_once(lambda i=i: step(i), sync) * 1e3)
        series[mode] = times
    positions = list(range(args.prompt_len, args.prompt_len + n_new))
    rows = [
        {
            "position": p,
            "no_cache_ms": round(a, 4),
            "dynamic_kv_ms": round(b, 4),
            "static_kv_ms": round(c, 4),
        }
        for p, a, b, c in zip(
            positions, series["none"], series["dynamic"], series["static"], strict=True
        )
    ]
    write_csv(args.out / "position_benchmark.csv", rows, info)
    plot_series(
        args.out / "position_benchmark.png",
        positions,
        {
            "no cache": series["none"],
            "dynamic KV cache": series["dynamic"],
            "static KV cache": series["static"],
        },
        "position of the generated token",
        "ms per token",
        f"{name}: per-token generation time, {info['cpu']}, {info['torch_threads']} threads",
    )
    for label, ys in series.items():
        q = len(ys) // 4 or 1
        print(
            f"{label:>8}: first quarter median {statistics.median(ys[1 : q + 1]):.2f} ms, "
            f"last quarter median {statistics.median(ys[-q:]):.2f} ms"
        )
    print(f"wrote {args.out / 'position_benchmark.csv'} and .png")
    return 0


def _static_point(model: GPT, T: int, device: torch.device, repeats: int, warmup: int):
    """(dynamic ms, static ms, dynamic cache bytes) for one decode step with T-1 cached tokens."""
    idx = torch.randint(model.config.vocab_size, (1, T), device=device)
    _, _, cache = model(idx[:, :-1], kv_cache=model.empty_kv_cache())
    model(idx[:, :-1], input_pos=0)
    last = idx[:, -1:]
    t_dyn = time_ms(lambda: model(last, kv_cache=cache), device, repeats, warmup)
    t_st = time_ms(lambda: model(last, input_pos=T - 1), device, repeats, warmup)
    return t_dyn, t_st, cache.nbytes


# ----------------------------------------------------------------------------- static vs dynamic


@torch.inference_mode()
def bench_static(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    info = machine_info(device, dtype)
    print("# " + ", ".join(f"{k}: {v}" for k, v in info.items()))
    rows = []
    print(
        f"{'model':>9}  {'Context T':>9}  {'dynamic (ms)':>12}  {'static (ms)':>11}  "
        f"{'static/dyn':>10}"
    )
    for name in args.models.split(","):
        model = build_model(
            name, device, dtype, block_size=max(2048, max(args.contexts)), seed=args.seed
        )
        model.setup_static_cache(1, max(args.contexts))
        for T in args.contexts:
            t_dyn, t_st, dyn_bytes = _static_point(model, T, device, args.repeats, args.warmup)
            rows.append(
                {
                    "model": name,
                    "context": T,
                    "dynamic_ms": round(t_dyn, 4),
                    "static_ms": round(t_st, 4),
                    "dynamic_cache_bytes": dyn_bytes,
                    "static_cache_bytes": model.static_cache_nbytes,
                }
            )
            print(
                f"{name:>9}  {T:>9}  {t_dyn:>12.2f}  {t_st:>11.2f}  {t_st / t_dyn:>10.3f}",
                flush=True,
            )
        del model
    write_csv(args.out / "static_vs_dynamic.csv", rows, info)
    series = {}
    for name in args.models.split(","):
        series[f"{name} dynamic"] = [r["dynamic_ms"] for r in rows if r["model"] == name]
        series[f"{name} static"] = [r["static_ms"] for r in rows if r["model"] == name]
    plot_series(
        args.out / "static_vs_dynamic.png",
        list(args.contexts),
        series,
        "context T",
        "ms per decode step",
        f"static vs dynamic KV cache, {info['cpu']}, {info['torch_threads']} threads",
        logy=True,
    )
    return 0
