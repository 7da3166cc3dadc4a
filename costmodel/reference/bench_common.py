"""Shared helpers of the reference benchmarks (:mod:`costmodel.reference.bench`): the machine
record, the CSV writer, the median timer, a preset model with random weights, and the figure.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import torch

from costmodel.lazy import deferred
from costmodel.reference.gpt import GPT, GPTConfig
from costmodel.reference.timing import (
    describe_device,
    synchronizer,
    time_call,
)

mfigure = deferred("matplotlib.figure")

SEED001_CONTEXTS = (64, 128, 256, 512, 1024, 1536)


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


def plot_series(
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

