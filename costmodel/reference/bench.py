"""Benchmarks of the reference model (measurements, not tests).

Each writes a txt/CSV (+ PNG) into ``--out``:

    python -m costmodel.reference.bench kv           # seed 001's table -> benchmark_results.txt
    python -m costmodel.reference.bench position     # seed 000: per-token time vs position
    python -m costmodel.reference.bench static       # static vs dynamic cache step vs context
    python -m costmodel.reference.bench speculative  # target-only vs speculative, gamma = 1..8
    python -m costmodel.reference.bench hfcompare    # our gpt2 KV step vs Hugging Face GPT-2's
    python -m costmodel.reference.bench mbu          # decode MBU vs copy bandwidth; vs HF

Latencies are per generation step: warm-up calls, then ``--repeats`` timed calls, median reported.
Every CSV starts with ``#`` lines recording the machine (CPU, cores, torch version and threads).
"""

from __future__ import annotations

import argparse
import csv
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from costmodel.lazy import deferred
from costmodel.reference.gpt import GPT, GPTConfig, parse_dtype
from costmodel.reference.timing import (
    describe_device,
    resolve_device,
    synchronizer,
    time_call,
    time_once,
)
from costmodel.roofline import analyze
from costmodel.specs import HardwareSpec
from costmodel.workload import reference_options

mfigure = deferred("matplotlib.figure")

SEED001_CONTEXTS = (64, 128, 256, 512, 1024, 1536)
HEADER = "Context T  no KV (ms)  KV (ms)  speedup"
RULE = "-" * 50


# ----------------------------------------------------------------------------- helpers


def machine_info(device: torch.device, dtype: torch.dtype) -> dict[str, str]:
    """What the numbers were measured on (:func:`costmodel.reference.timing.describe_device`)."""
    d = describe_device(str(device))
    info = {"cpu": d["cpu_model"], "cores": str(d["cores"]), "torch": d["torch_version"],
            "torch_threads": str(d["threads"]), "python": d["python_version"],
            "device": str(device), "dtype": str(dtype).replace("torch.", "")}
    if device.type == "cuda":
        info["gpu"] = d["device_name"]
    return info


def write_csv(path: Path, rows: list[dict], info: dict[str, str]) -> None:
    """CSV with ``# key: value`` machine lines first."""
    with path.open("w", newline="") as f:
        for k, v in info.items():
            f.write(f"# {k}: {v}\n")
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


def time_ms(
    fn: Callable[[], object],
    device: torch.device,
    repeats: int = 10,
    warmup: int = 2,
    after: Callable[[], object] | None = None,
) -> float:
    """Median wall time of ``fn()`` in ms over ``repeats`` calls after ``warmup`` untimed ones
    (``after()`` runs untimed after each call): :func:`costmodel.reference.timing.time_call`."""
    t = time_call(fn, repeats=repeats, warmup=warmup, sync=synchronizer(device), after=after)
    return t["median"] * 1e3


def build_model(
    name: str,
    device: torch.device,
    dtype: torch.dtype,
    block_size: int = 2048,
    seed: int = 0,
    **overrides,
) -> GPT:
    """A preset GPT with random weights (no downloads)."""
    torch.manual_seed(seed)
    config = GPTConfig.from_preset(name, block_size=block_size, **overrides)
    return GPT(config).to(device=device, dtype=dtype).eval()


def _plot(
    path: Path,
    x,
    series: dict[str, list[float]],
    xlabel: str,
    ylabel: str,
    title: str,
    logy: bool = False,
) -> None:
    fig = mfigure.Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, ys in series.items():
        ax.plot(x, ys, marker="." if len(x) < 60 else None, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda, mps or auto")
    p.add_argument("--dtype", default="fp32", help="fp32, bf16 or fp16")
    p.add_argument("--out", type=Path, default=Path("."), help="output directory")
    p.add_argument("--repeats", type=int, default=10, help="timed repeats per point (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=0)


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


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
        _plot(
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


# ----------------------------------------------------------------------------- hfcompare


def _hf_point(ours: GPT, hf, T: int, device: torch.device, repeats: int, warmup: int):
    """(ours ms, HF ms) for one KV decode step with T-1 cached tokens, batch 1.

    The two models are timed alternately, call by call, so background load hits both alike.
    """
    idx = torch.randint(ours.config.vocab_size, (1, T), device=device)
    _, _, cache = ours(idx[:, :-1], kv_cache=ours.empty_kv_cache())
    last = idx[:, -1:]
    pkv = hf(idx[:, :-1], use_cache=True).past_key_values

    def rollback() -> None:  # HF's cache grows in place: cut it back to T-1 tokens, untimed
        excess = pkv.get_seq_length() - (T - 1)
        if excess > 0:
            pkv.crop(-excess)

    t_ours, t_hf = [], []
    for _ in range(repeats):
        t_ours.append(time_ms(lambda: ours(last, kv_cache=cache), device, 1, warmup))
        t_hf.append(
            time_ms(
                lambda: hf(last, past_key_values=pkv, use_cache=True),
                device,
                1,
                warmup,
                after=rollback,
            )
        )
        warmup = 0
    return statistics.median(t_ours), statistics.median(t_hf)


def _static_point(model: GPT, T: int, device: torch.device, repeats: int, warmup: int):
    """(dynamic ms, static ms, dynamic cache bytes) for one decode step with T-1 cached tokens."""
    idx = torch.randint(model.config.vocab_size, (1, T), device=device)
    _, _, cache = model(idx[:, :-1], kv_cache=model.empty_kv_cache())
    model(idx[:, :-1], input_pos=0)
    last = idx[:, -1:]
    t_dyn = time_ms(lambda: model(last, kv_cache=cache), device, repeats, warmup)
    t_st = time_ms(lambda: model(last, input_pos=T - 1), device, repeats, warmup)
    return t_dyn, t_st, cache.nbytes


@torch.inference_mode()
def bench_hfcompare(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    """Our gpt2 KV decode step vs ``transformers``' GPT2LMHeadModel with its cache, same weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from costmodel.reference.loading import (
        GPT_TIED,
        convert_hf_gpt2_state_dict,
        gpt_config_from_hf,
        load_state_dict_checked,
    )

    info = machine_info(device, dtype)
    name = args.models.split(",")[0] if args.models != "gpt-mini,gpt2" else "gpt2"
    preset = GPTConfig.from_preset(name)
    n_pos = max(2048, max(args.contexts))
    torch.manual_seed(args.seed)
    hf_cfg = GPT2Config(
        n_layer=preset.n_layer, n_head=preset.n_head, n_embd=preset.n_embd, n_positions=n_pos
    )
    hf = (
        GPT2LMHeadModel._from_config(hf_cfg, attn_implementation="sdpa")
        .to(device=device, dtype=dtype)
        .eval()
    )
    ours = GPT(gpt_config_from_hf(hf_cfg.to_dict()))
    load_state_dict_checked(ours, convert_hf_gpt2_state_dict(hf.state_dict()), GPT_TIED)
    ours = ours.to(device=device, dtype=dtype).eval()
    print("# " + ", ".join(f"{k}: {v}" for k, v in info.items()))
    print(f"{name}: KV decode step at batch 1 (ms, median of {args.repeats})")
    print(f"{'Context T':>9}  {'ours (ms)':>9}  {'HF (ms)':>8}  {'ours/HF':>7}")
    rows = []
    for T in args.contexts:
        t_ours, t_hf = _hf_point(ours, hf, T, device, args.repeats, args.warmup)
        rows.append(
            {
                "model": name,
                "context": T,
                "ours_ms": round(t_ours, 4),
                "hf_ms": round(t_hf, 4),
                "ours_over_hf": round(t_ours / t_hf, 4),
            }
        )
        print(f"{T:>9}  {t_ours:>9.2f}  {t_hf:>8.2f}  {t_ours / t_hf:>7.3f}", flush=True)
    write_csv(args.out / "hfcompare.csv", rows, info)
    _plot(
        args.out / "hfcompare.png",
        [r["context"] for r in rows],
        {
            "ours (dynamic cache)": [r["ours_ms"] for r in rows],
            "transformers GPT-2": [r["hf_ms"] for r in rows],
        },
        "context T",
        "ms per decode step",
        f"{name} KV decode step, batch 1, {info['torch_threads']} threads",
    )
    return 0


# ----------------------------------------------------------------------------- mbu

#: What the MBU benchmark aims for (issue "GPU kit"): the static decode step at T = 1024 reads
#: its weights and KV at ≥ 70 % of the copy bandwidth; the dynamic step is at least as fast as
#: Hugging Face's GPT-2 at every context.
MBU_TARGET = 0.70
MBU_CONTEXTS = (128, 512, 1024)
COPY_BYTES = 256 * 2**20


def decode_bytes_read(config: GPTConfig, context: int, nbytes: int, cache: str) -> dict:
    """Weight and KV bytes one decode step reads with ``context`` positions after it (q = 1,
    c = context − 1), from the operator model (``cm.analyze``, the reference model's
    options)."""
    hw = HardwareSpec(name="bytes-only", memory_bytes=2**30, bandwidth=1e10,
                      peak_flops={"fp32": 1e11, "bf16": 1e11, "fp16": 1e11})
    dtype = {4: "fp32", 2: "bf16"}[nbytes]
    a = analyze(config.to_spec(), hw, batch=1, new_tokens=1, cached_tokens=context - 1,
                weight_bytes=nbytes, kv_bytes=nbytes, act_bytes=nbytes, dtype=dtype,
                **reference_options(cache, config.attn_impl))
    return {"weight_read": float(a.quantities[:, 1].sum()),
            "kv_read": float(a.quantities[:, 4].sum())}


def _alternate(fns: list[Callable[[], object]], repeats: int, warmup: int, clock: str,
               device: torch.device, after: list | None = None) -> list[float]:
    """Median seconds of each of ``fns``, timed call by call in turn (so load from other
    processes hits all of them alike)."""
    sync = synchronizer(device)
    after = after or [None] * len(fns)
    samples: list[list[float]] = [[] for _ in fns]
    for r in range(warmup + repeats):
        for i, fn in enumerate(fns):
            t = time_once(fn, sync, clock)
            if after[i] is not None:
                after[i]()
            if r >= warmup:
                samples[i].append(t)
    return [statistics.median(x) for x in samples]


@torch.inference_mode()
def bench_mbu(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    """The decode step's memory-bandwidth utilisation and the dynamic cache against Hugging
    Face's GPT-2, side by side, on one machine in one run (``--models``: a GPT-2-family
    preset, default gpt2).

    * copy bandwidth: ``dst.copy_(src)`` of 256 MiB, read + write bytes per second;
    * static-cache decode at T (default 1024) positions: MBU = (weight bytes + KV bytes read,
      from the operator model) / step time / copy bandwidth — target ≥ 70 %;
    * dynamic-cache decode step vs ``transformers``' GPT2LMHeadModel (same weights, its
      default SDPA attention and ``DynamicCache``) at each T — target: ours ≤ HF's.

    Both models run one thread unless ``--threads`` says otherwise; times are medians of
    alternating calls (clock: CPU time of the thread with one CPU thread, else wall)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from costmodel.reference.engines import cache_kwarg
    from costmodel.reference.loading import (
        GPT_TIED,
        convert_hf_gpt2_state_dict,
        gpt_config_from_hf,
        load_state_dict_checked,
    )
    from costmodel.reference.timing import copy_pass, default_clock

    info = machine_info(device, dtype)
    nbytes = torch.tensor([], dtype=dtype).element_size()
    contexts = list(MBU_CONTEXTS) if args.contexts == list(SEED001_CONTEXTS) else args.contexts
    T_mbu = max(contexts)
    clock = default_clock(str(device), torch.get_num_threads())
    torch.manual_seed(args.seed)
    name = args.models.split(",")[0] if args.models != "gpt-mini,gpt2" else "gpt2"
    preset = GPTConfig.from_preset(name)
    hf_cfg = GPT2Config(n_layer=preset.n_layer, n_head=preset.n_head, n_embd=preset.n_embd,
                        n_positions=max(1024, T_mbu))
    hf = GPT2LMHeadModel._from_config(hf_cfg, attn_implementation="sdpa").to(
        device=device, dtype=dtype).eval()
    config = gpt_config_from_hf(hf_cfg.to_dict(), attn_impl="eager")
    ours = GPT(config)
    load_state_dict_checked(ours, convert_hf_gpt2_state_dict(hf.state_dict()), GPT_TIED)
    ours = ours.to(device=device, dtype=dtype).eval()
    print("# " + ", ".join(f"{k}: {v}" for k, v in info.items()) + f", clock: {clock}")

    copy, moved = copy_pass(COPY_BYTES, device)
    idx = torch.randint(config.vocab_size, (1, T_mbu), device=device)
    ours.setup_static_cache(1, T_mbu)
    ours(idx[:, :-1], input_pos=0)
    last = idx[:, -1:]
    t_copy, t_static = _alternate([copy, lambda: ours(last, input_pos=T_mbu - 1)],
                                  args.repeats, args.warmup, clock, device)
    ours.clear_static_cache()
    bw = moved / t_copy
    read = decode_bytes_read(config, T_mbu, nbytes, "static")
    total = read["weight_read"] + read["kv_read"]
    mbu = total / t_static / bw
    print(f"copy bandwidth (read + write, {COPY_BYTES / 2**20:.0f} MiB): {bw / 1e9:.2f} GB/s")
    print(f"static-cache decode step at T = {T_mbu}: {t_static * 1e3:.2f} ms reading "
          f"{read['weight_read'] / 1e6:.1f} MB of weights + {read['kv_read'] / 1e6:.1f} MB of KV "
          f"= {total / t_static / 1e9:.2f} GB/s → MBU {100 * mbu:.1f} % of the copy bandwidth "
          f"(target ≥ {100 * MBU_TARGET:.0f} %: {'met' if mbu >= MBU_TARGET else 'NOT met'})")
    rows = [{"what": "static_decode", "model": name, "context": T_mbu,
             "ours_ms": round(t_static * 1e3, 4), "hf_ms": "", "ours_over_hf": "",
             "bytes_read": int(total),
             "copy_gb_s": round(bw / 1e9, 3), "mbu": round(mbu, 4)}]
    print(f"{name}: dynamic-cache decode step vs transformers GPT-2 (ms, median of "
          f"{args.repeats}):")
    print(f"{'Context T':>9}  {'ours (ms)':>9}  {'HF (ms)':>8}  {'ours/HF':>7}  "
          f"{'ours MBU':>8}")
    worst = 0.0
    for T in contexts:
        ids = torch.randint(config.vocab_size, (1, T), device=device)
        _, _, cache = ours(ids[:, :-1], kv_cache=ours.empty_kv_cache())
        pkv = hf(ids[:, :-1], use_cache=True).past_key_values
        nxt = ids[:, -1:]

        def rollback(pkv=pkv, T=T) -> None:   # HF's cache grows in place: cut back, untimed
            excess = pkv.get_seq_length() - (T - 1)
            if excess > 0:
                pkv.crop(-excess)

        t_ours, t_hf = _alternate(
            [lambda cache=cache, nxt=nxt: ours(nxt, kv_cache=cache),
             lambda pkv=pkv, nxt=nxt: hf(nxt, use_cache=True, **{cache_kwarg(hf): pkv})],
            args.repeats, args.warmup, clock, device, after=[None, rollback])
        r = decode_bytes_read(config, T, nbytes, "dynamic")
        mbu_t = (r["weight_read"] + r["kv_read"]) / t_ours / bw
        worst = max(worst, t_ours / t_hf)
        print(f"{T:>9}  {t_ours * 1e3:>9.2f}  {t_hf * 1e3:>8.2f}  {t_ours / t_hf:>7.3f}  "
              f"{100 * mbu_t:>7.1f}%", flush=True)
        rows.append({"what": "dynamic_decode", "model": name, "context": T,
                     "ours_ms": round(t_ours * 1e3, 4), "hf_ms": round(t_hf * 1e3, 4),
                     "ours_over_hf": round(t_ours / t_hf, 4),
                     "bytes_read": int(r["weight_read"] + r["kv_read"]),
                     "copy_gb_s": round(bw / 1e9, 3), "mbu": round(mbu_t, 4)})
    print(f"dynamic cache at least as fast as Hugging Face at every T: "
          f"{'met' if worst <= 1 else 'NOT met'} (worst ours/HF {worst:.3f})")
    info["clock"] = clock
    write_csv(args.out / "mbu.csv", rows, info)
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
    _plot(
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
    _plot(
        args.out / "static_vs_dynamic.png",
        list(args.contexts),
        series,
        "context T",
        "ms per decode step",
        f"static vs dynamic KV cache, {info['cpu']}, {info['torch_threads']} threads",
        logy=True,
    )
    return 0


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
    _plot(
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


# ----------------------------------------------------------------------------- CLI

BENCHMARKS = {
    "kv": bench_kv,
    "position": bench_position,
    "static": bench_static,
    "speculative": bench_speculative,
    "hfcompare": bench_hfcompare,
    "mbu": bench_mbu,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="costmodel bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("benchmark", choices=sorted(BENCHMARKS))
    _common(p)
    p.add_argument("--models", default="gpt-mini,gpt2", help="comma-separated presets (kv, static)")
    p.add_argument("--contexts", type=_ints, default=list(SEED001_CONTEXTS), help="e.g. 64,128,256")
    p.add_argument(
        "--new-tokens",
        type=int,
        default=None,
        help="tokens to generate (position: 1000, speculative: 96)",
    )
    p.add_argument("--prompt-len", type=int, default=1, help="position: prompt length")
    p.add_argument(
        "--gammas", type=_ints, default=list(range(1, 9)), help="speculative: gamma values"
    )
    p.add_argument("--prompts", type=int, default=8, help="speculative: number of prompts")
    p.add_argument(
        "--prompt-chars", type=int, default=24, help="speculative: prompt length (chars)"
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    elif args.benchmark == "mbu":
        torch.set_num_threads(1)
    if args.new_tokens is None:
        args.new_tokens = 96 if args.benchmark == "speculative" else 1000
    if args.benchmark == "speculative" and args.repeats == 10:
        args.repeats = 3
    if args.benchmark == "mbu" and args.repeats == 10:
        args.repeats = 21
    device, dtype = resolve_device(args.device), parse_dtype(args.dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    return BENCHMARKS[args.benchmark](args, device, dtype)


if __name__ == "__main__":
    raise SystemExit(main())
