"""Timing and the machine at hand: the one device resolver, the one device sync, the one timer
(:func:`time_once`, and :func:`time_call` for medians of repeats), and the machine description
every measurement records. torch is imported inside the functions that need it, so the machine
description (``cpu_model_name``, ``system_memory_bytes``) and the statistics work without it.

    t = time_call(fn, repeats=7, warmup=2, min_time=0.05, sync=synchronizer("cuda"))
    t["median"], t["p10"], t["p90"]                     # seconds per call
"""

from __future__ import annotations

import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

CLOCKS = ("wall", "thread", "cuda")
#: What :func:`check_device` accepts.
DEVICES_TEXT = "cpu, cuda, cuda:N, mps or auto"
INSTALL_HINT = "pip install 'costmodel[torch]'"


def require_torch(what: str):
    """The torch module, or a ValueError saying ``what`` needs it and how to install it."""
    try:
        import torch
    except ImportError:
        raise ValueError(f"{what} needs PyTorch ({INSTALL_HINT})") from None
    return torch


# --------------------------------------------------------------------------- devices


def _mps_available(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def check_device(device: Any) -> str:
    """The device name as torch spells it: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, available
    on this machine; ``auto`` picks cuda, then mps, then cpu. ValueError naming the device
    otherwise (a ``torch.device`` is accepted too)."""
    text = str(device) if type(device).__name__ == "device" else device
    if not isinstance(text, str) or not (text in ("cpu", "cuda", "mps", "auto")
                                         or re.fullmatch(r"cuda:\d{1,4}", text)):
        shown = repr(text) if isinstance(text, str) and len(text) <= 40 else type(text).__name__
        raise ValueError(f"device: unknown {shown} (choose from {DEVICES_TEXT})")
    if text == "cpu":
        return text
    torch = require_torch(f"device {text}")
    if text == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available(torch) else "cpu"
    if text == "mps":
        if not _mps_available(torch):
            raise ValueError("device: mps is not available on this machine "
                             "(torch.backends.mps.is_available() is False)")
        return text
    if not torch.cuda.is_available():
        raise ValueError(f"device: {text} is not available on this machine "
                         "(torch.cuda.is_available() is False; this torch is "
                         f"{torch.__version__})")
    index = int(text.split(":")[1]) if ":" in text else 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"device: {text} is not available (this machine has "
                         f"{torch.cuda.device_count()} CUDA devices)")
    return text


def resolve_device(device: Any = "auto"):
    """A ``torch.device`` for :func:`check_device`'s names."""
    torch = require_torch("a torch device")
    return torch.device(check_device(device))


def synchronizer(device: Any) -> Callable[[], None]:
    """A function that waits for the work queued on ``device`` (a name or a torch.device) to
    finish before a clock is read; a no-op on the CPU."""
    kind = str(device).split(":")[0]
    if kind == "cuda":
        torch = require_torch("timing on CUDA")
        dev = torch.device(str(device))
        return lambda: torch.cuda.synchronize(dev)
    if kind == "mps":
        torch = require_torch("timing on MPS")
        return torch.mps.synchronize
    return _no_sync


def _no_sync() -> None:
    return None


# --------------------------------------------------------------------------- clocks and timer


def get_clock(name: str) -> Callable[[], float]:
    """``wall`` (``time.perf_counter``) or ``thread`` (CPU time of the calling thread: with
    one intra-op thread the work's own time, unaffected by time slices other processes get).
    ``cuda`` times with CUDA events (:func:`time_call` records them); as a clock it reads
    ``perf_counter``."""
    if name in ("wall", "cuda"):
        return time.perf_counter
    if name == "thread":
        return time.thread_time
    raise ValueError(f"clock: unknown {name!r} (choose from {', '.join(CLOCKS)})")


def default_clock(device: str, threads: int | None) -> str:
    """``cuda`` (CUDA events) on a CUDA device, ``thread`` for one CPU thread, else ``wall``."""
    if str(device).startswith("cuda"):
        return "cuda"
    return "thread" if device == "cpu" and threads == 1 else "wall"


class _Events:
    """Seconds between two CUDA events around the timed calls (queued on the current stream,
    so the host's launch time between them does not count unless the GPU waits for it)."""

    def __init__(self):
        torch = require_torch("timing with CUDA events")
        self.start = torch.cuda.Event(enable_timing=True)
        self.end = torch.cuda.Event(enable_timing=True)

    def __enter__(self) -> _Events:
        self.start.record()
        return self

    def __exit__(self, *exc) -> None:
        self.end.record()

    @property
    def seconds(self) -> float:
        self.end.synchronize()
        return self.start.elapsed_time(self.end) / 1e3


def time_once(fn: Callable[[], Any], sync: Callable[[], None] = _no_sync,
              clock_name: str = "wall") -> float:
    """Seconds of one call of ``fn``, the device synchronised before and after."""
    now = get_clock(clock_name)
    sync()
    t0 = now()
    fn()
    sync()
    return now() - t0


def time_call(fn: Callable[[], Any], repeats: int = 7, warmup: int = 2, min_time: float = 0.0,
              sync: Callable[[], None] = _no_sync, max_time: float | None = None,
              clock: str = "wall", after: Callable[[], Any] | None = None) -> dict:
    """Median seconds per call of ``fn``, with spread.

    ``warmup`` untimed calls, then ``repeats`` samples; each sample times ``inner``
    back-to-back calls (chosen from the last warm-up call so a sample lasts at least
    ``min_time``; one extra untimed call estimates it when ``warmup`` is 0) and divides. With
    ``max_time``, repeats stop early once that many seconds have been spent (at least 3 kept).
    ``clock``: ``wall``, ``thread`` (see :func:`get_clock`) or ``cuda`` (CUDA events recorded
    around each sample's calls, read after the device synchronises). ``after``: called untimed
    after every call (e.g. to roll a cache back); then each sample is one call. Returns median,
    p10, p90, q25, q75 (seconds per call), repeats, inner, the samples, and the wall-clock
    median beside the chosen one.
    """
    now = get_clock(clock)
    t_est = 0.0
    calls = warmup if (warmup > 0 or min_time <= 0 or after is not None) else 1
    for _ in range(calls):
        t_est = time_once(fn, sync)
        if after is not None:
            after()
        if max_time is not None and 3 * t_est > max_time:
            break               # a slow call: one warm-up is enough
    inner = 1 if after is not None else (
        max(1, math.ceil(min_time / t_est)) if min_time > 0 and t_est > 0 else 1)
    samples: list[float] = []
    walls: list[float] = []
    spent = 0.0
    for i in range(repeats):
        sync()
        w0 = time.perf_counter()
        t0 = now()
        if clock == "cuda":
            with _Events() as ev:
                for _ in range(inner):
                    fn()
            dt = ev.seconds
        else:
            for _ in range(inner):
                fn()
        sync()
        if clock != "cuda":
            dt = now() - t0
        dw = time.perf_counter() - w0
        if after is not None:
            after()
        samples.append(dt / inner)
        walls.append(dw / inner)
        spent += dw
        if max_time is not None and spent > max_time and i + 1 >= 3:
            break
    return summarize(samples) | {"inner": inner, "samples": samples, "walls": walls,
                                 "wall_median": float(statistics.median(walls)),
                                 "clock": clock}


def copy_pass(nbytes: int, device: Any = "cpu") -> tuple[Callable[[], Any], int]:
    """A copy of ``nbytes`` bytes between two float32 buffers (``dst.copy_(src)``) and the
    bytes it moves, read + written (2 · nbytes): the bandwidth yardstick of the calibration and
    the benchmarks (the per-operator model counts reads + writes too)."""
    torch = require_torch("measuring copy bandwidth")
    src = torch.ones(max(1, nbytes // 4), dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    return (lambda: dst.copy_(src)), 2 * src.nbytes


def quantile(sorted_values: Sequence[float], p: float) -> float:
    """Linear-interpolation quantile of an already sorted list (numpy's default method)."""
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = p * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def summarize(samples: Sequence[float]) -> dict:
    """Median, p10, p90, q25, q75 and the number of samples."""
    s = sorted(samples)
    return {"median": float(statistics.median(s)), "p10": quantile(s, 0.10),
            "p90": quantile(s, 0.90), "q25": quantile(s, 0.25), "q75": quantile(s, 0.75),
            "repeats": len(s)}


# --------------------------------------------------------------------------- the machine


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform), e.g. 'AMD EPYC'."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def system_memory_bytes() -> int:
    """Physical RAM in bytes."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1


def describe_device(device: str, threads: int | None = None) -> dict:
    """The machine as measurements record it: device, device name, CPU model, cores, torch
    threads, torch / Python (/ CUDA) versions."""
    torch = require_torch("describing the device")
    info = {"device": device, "torch_version": torch.__version__,
            "python_version": platform.python_version(), "cores": os.cpu_count() or 1,
            "threads": int(threads if threads is not None else torch.get_num_threads()),
            "cpu_model": cpu_model_name()}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info["device_name"] = props.name
        info["cuda_version"] = torch.version.cuda
    elif device == "mps":
        info["device_name"] = f"Apple MPS ({info['cpu_model']})"
    else:
        info["device_name"] = info["cpu_model"]
    return info


__all__ = ["CLOCKS", "INSTALL_HINT", "check_device", "copy_pass", "cpu_model_name",
           "default_clock",
           "describe_device", "get_clock", "quantile", "require_torch", "resolve_device",
           "summarize", "synchronizer", "system_memory_bytes", "time_call", "time_once"]
