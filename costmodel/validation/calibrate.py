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

Timings are medians of repeats (:func:`costmodel.reference.timing.time_call`); p10 and p90 are
kept in ``extra`` with the machine description (CPU model, cores, threads, torch version).
Everything is in SI units: FLOP/s, bytes/s, seconds. The efficiencies stay ideal (η = 1):
``costmodel validate`` fits them.
"""

from __future__ import annotations

import datetime as _dt
import re
import time
from collections.abc import Sequence
from pathlib import Path

from costmodel.checks import check_positive_int
from costmodel.files import OutputSet
from costmodel.specs import DTYPES, HardwareSpec, to_json

TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def check_dtypes(dtype: str | Sequence[str], device: str) -> list[str]:
    """One dtype or several ('fp32', 'fp32,bf16', ['fp32', 'bf16']) valid for ``device``."""
    names = [d.strip() for d in dtype.split(",")] if isinstance(dtype, str) else list(dtype)
    if not names or any(not isinstance(d, str) or not d for d in names):
        raise ValueError(f"dtype: give at least one dtype, got {dtype!r}")
    for d in names:
        if d not in TORCH_DTYPES:
            known = [x for x in DTYPES if x in TORCH_DTYPES]
            raise ValueError(f"dtype: {d!r} cannot be calibrated with torch.matmul "
                             f"(choose from {', '.join(known)})")
        if d == "tf32" and not device.startswith("cuda"):
            raise ValueError("dtype: tf32 exists only on CUDA devices")
    return list(dict.fromkeys(names))


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


def measure_matmul(device: str, dtype: str, quick: bool = False, clock: str = "wall"
                   ) -> list[dict]:
    """FLOP/s of torch.matmul for square and skinny shapes (2·m·k·n FLOPs each)."""
    from costmodel.reference.timing import require_torch, synchronizer, time_call

    torch = require_torch("calibration")
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
    from costmodel.reference.timing import require_torch, synchronizer, time_call

    torch = require_torch("calibration")
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
    from costmodel.reference.timing import require_torch, synchronizer, time_call

    torch = require_torch("calibration")
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
    from costmodel.reference.timing import check_device

    with OutputSet() as files:
        if out is not None:
            files.write_bytes(out, b"")            # the destination is checked now
        device = check_device(device)
        dtypes = check_dtypes(dtype, device)
        if threads is not None:
            check_positive_int("threads", threads)
        hw = _calibrate(device, dtypes, quick, threads, name, clock)
        if out is not None:
            files.write_text(out, to_json(hw.to_dict()))
    return hw


def _calibrate(device: str, dtypes: list[str], quick: bool, threads: int | None,
               name: str | None, clock: str | None) -> HardwareSpec:
    from costmodel.reference.timing import (
        default_clock,
        describe_device,
        get_clock,
        require_torch,
        system_memory_bytes,
    )

    torch = require_torch("calibration")
    prev_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        clock = clock or default_clock(device, torch.get_num_threads())
        get_clock(clock)
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
        name=name or f"{device.split(':')[0]}-{_slug(info['device_name'])}",
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
    return hw


__all__ = ["TORCH_DTYPES", "calibrate", "check_dtypes", "measure_copy", "measure_matmul",
           "measure_overhead"]
