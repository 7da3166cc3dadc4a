"""Benchmark of the E0294 model: generation latency with and without the KV cache vs prompt
length, as rows, a printed line per length, a CSV file and a plot."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from costmodel.lazy import deferred
from costmodel.reference.e0294_model import DecoderOnlyTransformer
from costmodel.reference.timing import synchronizer, time_once

mfigure = deferred("matplotlib.figure")

BENCHMARK_CSV_FILENAME = "e0294_benchmark.csv"
PLOT_FILENAME = "e0294_latency.png"
DEFAULT_SEQ_LENS: tuple[int, ...] = (10, 50, 100, 500, 1000)



def benchmark(
    model: DecoderOnlyTransformer,
    seq_lens: Sequence[int] = DEFAULT_SEQ_LENS,
    num_tokens: int = 8,
    repeats: int = 5,
    *,
    warmup: int = 1,
    batch_size: int = 1,
    seed: int = 0,
) -> list[dict[str, float | int | str]]:
    """Median latency (s) of ``generate`` (greedy, ``num_tokens`` new tokens) after a random
    prompt of each length in ``seq_lens``, without and with the KV cache.

    Each length gets ``warmup`` untimed runs of both variants, then ``repeats`` timed runs that
    alternate the two. Returns one dict per length: ``seq_len``, ``num_tokens``, ``batch_size``,
    ``repeats``, ``no_kv_s``, ``with_kv_s``, ``speedup`` (no_kv / with_kv), ``device``,
    ``threads``. Raises ValueError when a length plus ``num_tokens`` exceeds ``max_seq_len``.
    """
    for name, value in (
        ("num_tokens", num_tokens),
        ("repeats", repeats),
        ("batch_size", batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: must be an integer >= 0, got {warmup!r}")
    if not seq_lens:
        raise ValueError("seq_lens: must not be empty")
    for s in seq_lens:
        if isinstance(s, bool) or not isinstance(s, int) or s <= 0:
            raise ValueError(f"seq_lens: must be positive integers, got {s!r}")
        if s + num_tokens > model.max_seq_len:
            raise ValueError(
                f"seq_len {s} + num_tokens {num_tokens} exceeds max_seq_len={model.max_seq_len}"
            )
    device = next(model.parameters()).device
    sync = synchronizer(device)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, float | int | str]] = []
    for seq_len in seq_lens:
        prompt = torch.randint(0, model.vocab_size, (batch_size, seq_len), generator=gen)
        prompt = prompt.to(device)

        def run(use_cache: bool, prompt: torch.Tensor = prompt) -> float:
            return time_once(lambda: model.generate(prompt, num_tokens, use_cache=use_cache,
                                                    do_sample=False), sync)

        for _ in range(warmup):
            run(False)
            run(True)
        no_kv, with_kv = [], []
        for _ in range(repeats):
            no_kv.append(run(False))
            with_kv.append(run(True))
        no_kv_s, with_kv_s = statistics.median(no_kv), statistics.median(with_kv)
        rows.append(
            {
                "seq_len": seq_len,
                "num_tokens": num_tokens,
                "batch_size": batch_size,
                "repeats": repeats,
                "no_kv_s": no_kv_s,
                "with_kv_s": with_kv_s,
                "speedup": no_kv_s / with_kv_s if with_kv_s > 0 else float("inf"),
                "device": str(device),
                "threads": torch.get_num_threads(),
            }
        )
    return rows


def format_benchmark_row(row: Mapping[str, float | int | str]) -> str:
    """``Seq Len: 10 | No KV: 0.6300s | With KV: 0.2501s | Speedup: 2.52x``."""
    return (
        f"Seq Len: {row['seq_len']} | No KV: {row['no_kv_s']:.4f}s | "
        f"With KV: {row['with_kv_s']:.4f}s | Speedup: {row['speedup']:.2f}x"
    )


def write_benchmark_csv(rows: Sequence[Mapping[str, float | int | str]], path: Path) -> Path:
    """Write the :func:`benchmark` rows as CSV (one header line, one line per length)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_benchmark(rows: Sequence[Mapping[str, float | int | str]], path: Path) -> Path:
    """Draw latency vs prompt length with and without the KV cache to a PNG at ``path``."""
    seq = [int(r["seq_len"]) for r in rows]
    fig = mfigure.Figure(figsize=(7, 5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(seq, [float(r["no_kv_s"]) for r in rows], marker="o", label="Without KV cache")
    ax.plot(seq, [float(r["with_kv_s"]) for r in rows], marker="s", label="With KV cache")
    ax.set_xlabel("Prompt length (tokens)")
    ax.set_ylabel(f"Latency to generate {rows[0]['num_tokens']} tokens (s)")
    ax.set_title(
        f"E0294 2-layer model: generation latency vs prompt length "
        f"({rows[0]['device']}, {rows[0]['threads']} thread(s), "
        f"median of {rows[0]['repeats']})",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
