"""Calibrate the machine at hand: achievable matmul FLOP/s, copy bandwidth, per-op overhead.

    hw = calibrate("cpu", "fp32")                  # a HardwareSpec named e.g. cpu-amd-epyc
    hw = calibrate("cpu", "fp32", quick=True, out="data/hardware/cpu.json")

What is measured (PyTorch, eager, on ``device``, with ``threads`` intra-op threads):

* **peak FLOP/s per dtype** — ``torch.matmul`` of large square matrices and of skinny ones
  (a few rows times a large weight: the shapes of batched decode); a multiply-add counts 2
  FLOPs (2·m·k·n per GEMM). The peak is the best size's median rate: what this machine can
  reach, not a datasheet figure.
* **memory bandwidth** — ``dst.copy_(src)`` of a buffer much larger than the last-level cache,
  counting bytes read + bytes written (2 × size), the convention of the per-operator model
  (its bytes are reads + writes). The best buffer size's median rate.
* **kernel_overhead** — the fixed cost of one PyTorch op call on a one-element tensor
  (``torch.add(a, b, out=c)``): dispatcher + launch (on a GPU, timed with synchronisation over
  a long loop, so it is the launch throughput). A small ``nn.Linear`` call is recorded beside it.

Timings are medians of repeats (each repeat times enough back-to-back calls to last
``min_time``); p10 and p90 are kept in ``extra`` with the machine description (CPU model, cores,
threads, torch version). Everything is in SI units: FLOP/s, bytes/s, seconds.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from costmodel.machine import cpu_model_name, system_memory_bytes
from costmodel.specs import DTYPES, HardwareSpec

DEVICES = ("cpu", "cuda")
TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}


# --------------------------------------------------------------------------- timing


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - the reference extra is missing
        raise ValueError("calibration needs torch (pip install 'costmodel[reference]')") from e
    return torch


def synchronizer(device: str) -> Callable[[], None]:
    """A function that waits for ``device`` to finish queued work (a no-op on the CPU)."""
    if device.startswith("cuda"):
        torch = _torch()
        return torch.cuda.synchronize
    return lambda: None


CLOCKS = ("wall", "thread")


def _clock(clock: str) -> Callable[[], float]:
    if clock == "wall":
        return time.perf_counter
    if clock == "thread":
        return time.thread_time
    raise ValueError(f"clock: unknown {clock!r} (choose from {', '.join(CLOCKS)})")


def time_call(fn: Callable[[], Any], repeats: int = 7, warmup: int = 2, min_time: float = 0.0,
              sync: Callable[[], None] = lambda: None, max_time: float | None = None,
              clock: str = "wall") -> dict:
    """Median seconds per call of ``fn``, with spread.

    ``warmup`` untimed calls, then ``repeats`` samples; each sample times ``inner`` back-to-back
    calls (chosen from the warm-up so a sample lasts at least ``min_time``) and divides. With
    ``max_time``, repeats stop early once that many seconds have been spent (at least 3 kept).
    ``clock``: ``wall`` (perf_counter) or ``thread`` (CPU time of the calling thread: with one
    intra-op thread, the work's own time, unaffected by time slices other processes get on a
    shared machine). Returns median, p10, p90, q25, q75 (seconds per call), repeats, inner,
    the samples, and the wall-clock median beside the chosen one.
    """
    now = _clock(clock)
    t_est = 0.0
    for _ in range(max(warmup, 1)):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        t_est = time.perf_counter() - t0
        if max_time is not None and 3 * t_est > max_time:
            break               # a slow call: one warm-up is enough
    inner = max(1, math.ceil(min_time / t_est)) if min_time > 0 and t_est > 0 else 1
    samples: list[float] = []
    walls: list[float] = []
    spent = 0.0
    for i in range(repeats):
        sync()
        w0 = time.perf_counter()
        t0 = now()
        for _ in range(inner):
            fn()
        sync()
        dt = now() - t0
        dw = time.perf_counter() - w0
        samples.append(dt / inner)
        walls.append(dw / inner)
        spent += dw
        if max_time is not None and spent > max_time and i + 1 >= 3:
            break
    return summarize(samples) | {"inner": inner, "samples": samples, "walls": walls,
                                 "wall_median": float(statistics.median(walls)),
                                 "clock": clock}


def _quantile(sorted_values: Sequence[float], p: float) -> float:
    """Linear-interpolation quantile of an already sorted list (numpy's default method)."""
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = p * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def summarize(samples: Sequence[float]) -> dict:
    s = sorted(samples)
    return {"median": float(statistics.median(s)), "p10": _quantile(s, 0.10),
            "p90": _quantile(s, 0.90), "q25": _quantile(s, 0.25), "q75": _quantile(s, 0.75),
            "repeats": len(s)}


# --------------------------------------------------------------------------- machine


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def check_device(device: str) -> str:
    """'cpu', 'cuda' or 'cuda:N', available on this machine; ValueError otherwise."""
    if not isinstance(device, str) or not (device in DEVICES or re.fullmatch(r"cuda:\d+", device)):
        raise ValueError(f"device: unknown {device!r} (choose from cpu, cuda, cuda:N)")
    if device.startswith("cuda"):
        torch = _torch()
        if not torch.cuda.is_available():
            raise ValueError(f"device: {device} is not available on this machine "
                             "(torch.cuda.is_available() is False; this torch is "
                             f"{torch.__version__})")
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"device: {device} is not available (this machine has "
                             f"{torch.cuda.device_count()} CUDA devices)")
    return device


def check_dtypes(dtype: str | Sequence[str], device: str) -> list[str]:
    """One dtype or several ('fp32', 'fp32,bf16', ['fp32', 'bf16']) valid for ``device``."""
    names = [d.strip() for d in dtype.split(",")] if isinstance(dtype, str) else list(dtype)
    if not names or any(not d for d in names):
        raise ValueError(f"dtype: give at least one dtype, got {dtype!r}")
    for d in names:
        if d not in TORCH_DTYPES:
            known = [x for x in DTYPES if x in TORCH_DTYPES]
            raise ValueError(f"dtype: {d!r} cannot be calibrated with torch.matmul "
                             f"(choose from {', '.join(known)})")
        if d == "tf32" and not device.startswith("cuda"):
            raise ValueError("dtype: tf32 exists only on CUDA devices")
    return list(dict.fromkeys(names))


def describe_device(device: str, threads: int | None = None) -> dict:
    """The machine as measurements record it: device name, cores, threads, versions."""
    torch = _torch()
    info = {"device": device, "torch_version": torch.__version__,
            "python_version": platform.python_version(), "cores": os.cpu_count() or 1,
            "threads": int(threads if threads is not None else torch.get_num_threads()),
            "cpu_model": cpu_model_name()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info["device_name"] = props.name
        info["cuda_version"] = torch.version.cuda
    else:
        info["device_name"] = info["cpu_model"]
    return info


# --------------------------------------------------------------------------- measurements


def _matmul_shapes(quick: bool, device: str) -> list[tuple[str, int, int, int]]:
    if device.startswith("cuda"):
        square = [1024, 2048, 4096] if quick else [1024, 2048, 4096, 8192]
        skinny_k = 8192
    else:
        square = [256, 512] if quick else [256, 512, 1024, 2048]
        skinny_k = 1024 if quick else 4096
    shapes = [("square", n, n, n) for n in square]
    shapes += [("skinny", m, skinny_k, skinny_k) for m in ((16, 64) if quick else (1, 16, 64, 256))]
    return shapes


def default_clock(device: str, threads: int | None) -> str:
    """``thread`` (CPU time of the calling thread) for one CPU thread, else ``wall``."""
    return "thread" if device == "cpu" and threads == 1 else "wall"


def measure_matmul(device: str, dtype: str, quick: bool = False, clock: str = "wall"
                   ) -> list[dict]:
    """FLOP/s of torch.matmul for square and skinny shapes (2·m·k·n FLOPs each)."""
    torch = _torch()
    tdt = getattr(torch, TORCH_DTYPES[dtype])
    sync = synchronizer(device)
    rows = []
    prev_tf32 = torch.backends.cuda.matmul.allow_tf32 if device.startswith("cuda") else None
    try:
        if device.startswith("cuda"):
            torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
        gen = torch.Generator(device="cpu").manual_seed(0)
        for kind, m, k, n in _matmul_shapes(quick, device):
            a = torch.randn(m, k, generator=gen).to(device=device, dtype=tdt)
            b = torch.randn(k, n, generator=gen).to(device=device, dtype=tdt)
            out = torch.empty(m, n, device=device, dtype=tdt)
            t = time_call(lambda a=a, b=b, out=out: torch.matmul(a, b, out=out),
                          repeats=3 if quick else 7, warmup=1 if quick else 2,
                          min_time=0.01 if quick else 0.05, sync=sync,
                          max_time=0.5 if quick else 3.0, clock=clock)
            flops = 2 * m * k * n
            rows.append({"kind": kind, "m": m, "k": k, "n": n, "dtype": dtype, "flops": flops,
                         "seconds": t["median"], "p10_s": t["p10"], "p90_s": t["p90"],
                         "flops_per_s": flops / t["median"]})
    finally:
        if prev_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = prev_tf32
    return rows


def measure_copy(device: str, quick: bool = False, clock: str = "wall") -> list[dict]:
    """Bytes/s of dst.copy_(src) (read + write counted) for buffers far larger than the caches."""
    torch = _torch()
    sync = synchronizer(device)
    mib = [64] if quick else [128, 256, 512]
    if device.startswith("cuda"):
        mib = [256, 1024] if quick else [512, 1024, 2048]
    rows = []
    for size in mib:
        n = size * 2**20 // 4
        src = torch.ones(n, dtype=torch.float32, device=device)
        dst = torch.empty_like(src)
        t = time_call(lambda src=src, dst=dst: dst.copy_(src), repeats=3 if quick else 7,
                      warmup=1, sync=sync, max_time=0.5 if quick else 3.0, clock=clock)
        moved = 2 * src.nbytes
        rows.append({"buffer_bytes": src.nbytes, "bytes_moved": moved, "seconds": t["median"],
                     "p10_s": t["p10"], "p90_s": t["p90"], "bytes_per_s": moved / t["median"]})
        del src, dst
    return rows


def measure_overhead(device: str, quick: bool = False, clock: str = "wall") -> dict:
    """Seconds per call of a one-element op (the per-kernel fixed cost) and of a small Linear."""
    torch = _torch()
    sync = synchronizer(device)
    a = torch.ones(1, device=device)
    b = torch.ones(1, device=device)
    c = torch.empty(1, device=device)
    n_loop = 200 if quick else 1000

    def ops():
        for _ in range(n_loop):
            torch.add(a, b, out=c)

    t_op = time_call(ops, repeats=5 if quick else 15, warmup=1, sync=sync, clock=clock)
    lin = torch.nn.Linear(8, 8).to(device)
    x = torch.ones(1, 8, device=device)

    def linear():
        with torch.inference_mode():
            for _ in range(n_loop):
                lin(x)

    t_lin = time_call(linear, repeats=5 if quick else 15, warmup=1, sync=sync, clock=clock)
    return {"op_call_s": t_op["median"] / n_loop, "op_call_p10_s": t_op["p10"] / n_loop,
            "op_call_p90_s": t_op["p90"] / n_loop, "linear_module_call_s":
            t_lin["median"] / n_loop, "op": "torch.add(a, b, out=c) on 1-element tensors",
            "loop": n_loop}


# --------------------------------------------------------------------------- calibrate


def calibrate(device: str = "cpu", dtype: str | Sequence[str] = "fp32", quick: bool = False,
              out: str | Path | None = None, threads: int | None = 1,
              name: str | None = None, clock: str | None = None) -> HardwareSpec:
    """Measure this machine and return it as a :class:`HardwareSpec` (saved to ``out``).

    ``dtype``: one dtype or several ('fp32,bf16'); each gets a ``peak_flops`` entry.
    ``threads``: torch intra-op threads during the measurement (default 1, as the reference
    measurements use; ``None`` keeps torch's setting); restored afterwards. ``quick`` uses
    fewer, smaller sizes (about a second on a CPU). ``clock``: ``thread`` (CPU time of the
    measuring thread, the default with one CPU thread: robust to other processes sharing the
    cores) or ``wall``. Unknown or unavailable devices raise ValueError.
    """
    device = check_device(device)
    dtypes = check_dtypes(dtype, device)
    torch = _torch()
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0:
            raise ValueError(f"threads: must be a positive integer, got {threads!r}")
    prev_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        clock = clock or default_clock(device, torch.get_num_threads())
        _clock(clock)
        t_start = time.perf_counter()
        matmul = [row for d in dtypes for row in measure_matmul(device, d, quick, clock)]
        copy = measure_copy(device, quick, clock)
        overhead = measure_overhead(device, quick, clock)
        info = describe_device(device)
        elapsed = time.perf_counter() - t_start
    finally:
        torch.set_num_threads(prev_threads)
    peaks = {d: max(r["flops_per_s"] for r in matmul if r["dtype"] == d) for d in dtypes}
    bandwidth = max(r["bytes_per_s"] for r in copy)
    if device.startswith("cuda"):
        memory = int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    else:
        memory = system_memory_bytes()
    today = _dt.date.today().isoformat()
    hw = HardwareSpec(
        name=name or f"{'cpu' if device == 'cpu' else 'cuda'}-{_slug(info['device_name'])}",
        memory_bytes=memory, bandwidth=float(bandwidth),
        peak_flops={d: float(v) for d, v in peaks.items()},
        kernel_overhead=float(overhead["op_call_s"]),
        source=f"measured by costmodel calibrate on {today} ({info['device_name']}, "
               f"{info['threads']} threads, torch {info['torch_version']})",
        notes="peak = best torch.matmul median over the sizes in extra.matmul (2 FLOPs per "
              "multiply-add); bandwidth = best dst.copy_(src) median, bytes read + written; "
              "kernel_overhead = one PyTorch op call on a 1-element tensor",
        extra={**info, "clock": clock, "dtypes": dtypes, "quick": bool(quick), "date": today,
               "calibration_seconds": round(elapsed, 3), "matmul": matmul, "copy": copy,
               "overhead": overhead},
    )
    if out is not None:
        hw.save(out)
        Path(out).chmod(0o644)          # the temp file's 0600 would keep others out
    return hw


__all__ = ["CLOCKS", "calibrate", "check_device", "check_dtypes", "cpu_model_name",
           "default_clock", "describe_device",
           "measure_copy", "measure_matmul", "measure_overhead", "summarize",
           "system_memory_bytes", "time_call"]
