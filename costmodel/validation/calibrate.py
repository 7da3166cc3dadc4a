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

Timings are medians of repeats (:func:`costmodel.reference.timing.time_call`; CUDA events
after warm-up on a GPU); p10 and p90 are kept in ``extra`` with the machine description (CPU
model, cores, threads, torch version). Everything is in SI units: FLOP/s, bytes/s, seconds.

On a CPU the efficiencies stay ideal (η = 1): ``costmodel validate`` fits them. On a GPU
(``--device cuda``) the calibration measures bf16, fp16 and — where the GPU has fp8 matmuls
(compute capability 8.9 or newer: ``torch._scaled_mm`` on e4m3 operands) — fp8 throughput on
square shapes and on skinny ones (M = 1 … 256 rows times an 8192 × 8192 weight), and fits the
typed efficiency fields of the HardwareSpec it writes (:func:`efficiencies`): when the GPU is
a datasheet preset (:func:`datasheet_for`), the peaks and bandwidth are the datasheet's and
η_c = best square matmul / peak, η_c,skinny = median of the matmuls of at most ``skinny_rows``
rows / peak, η_m = η_m,elementwise = copy bandwidth / datasheet bandwidth; otherwise the
measured peaks and bandwidth with η_c = η_m = 1. ``kernel_overhead`` is the launch cost.
"""

from __future__ import annotations

import datetime as _dt
import re
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from costmodel.checks import check_positive_int
from costmodel.files import OutputSet
from costmodel.presets import hardware as hardware_preset
from costmodel.specs import DTYPES, HardwareSpec, to_json

TORCH_DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16",
                "fp8": "float8_e4m3fn"}
#: Rows of the skinny matmuls measured on a GPU (an M × 8192 · 8192 × 8192 product).
CUDA_SKINNY_ROWS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
#: A weight matmul of at most this many rows is *skinny* (the HardwareSpec default).
SKINNY_ROWS = 8
#: GPU names (as torch reports them) → hardware presets (``costmodel/data/hardware.csv``);
#: the first pattern that matches wins.
DATASHEETS = ((r"H200", "h200"), (r"H100.*PCIe", "h100-pcie"), (r"H100 NVL", None),
              (r"H100", "h100-sxm"), (r"H20\b", "h20"), (r"B200", "b200"),
              (r"A800", "a800-80gb-sxm"), (r"A100.*PCIe.*80|A100 80GB PCIe", "a100-80gb-pcie"),
              (r"A100.*80", "a100-80gb"), (r"A100", "a100-40gb"), (r"L40S", "l40s"),
              (r"L20\b", "l20"), (r"L4\b", "l4"), (r"A10G", "a10g"), (r"A10\b", "a10"),
              (r"RTX 5090", "rtx-5090"), (r"RTX 4090", "rtx-4090"), (r"RTX 3090", "rtx-3090"),
              (r"\bT4\b", "t4"), (r"V100", "v100"), (r"MI325X", "mi325x"),
              (r"MI300X", "mi300x"))


def datasheet_for(device_name: str) -> HardwareSpec | None:
    """The datasheet preset of a GPU by the name torch reports (``NVIDIA H200`` → h200), or
    None."""
    for pattern, preset in DATASHEETS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return hardware_preset(preset) if preset else None
    return None


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
        if d == "fp8" and not has_fp8(device):
            raise ValueError("dtype: fp8 matmuls need a CUDA GPU of compute capability 8.9 or "
                             "newer (torch._scaled_mm)")
    return list(dict.fromkeys(names))


def has_fp8(device: str) -> bool:
    """Whether ``device`` runs fp8 matmuls (a CUDA GPU of compute capability ≥ 8.9)."""
    if not device.startswith("cuda"):
        return False
    from costmodel.reference.timing import require_torch

    torch = require_torch("fp8 matmuls")
    return hasattr(torch, "_scaled_mm") and torch.cuda.get_device_capability(
        torch.device(device)) >= (8, 9)


def _matmul_shapes(quick: bool, device: str) -> list[tuple[str, int, int, int]]:
    if device.startswith("cuda"):
        square = [2048, 4096] if quick else [2048, 4096, 8192]
        skinny_k = 8192
        rows = (1, 8, 64, 256) if quick else CUDA_SKINNY_ROWS
    else:
        square = [256, 512] if quick else [256, 512, 1024, 2048]
        skinny_k = 1024 if quick else 4096
        rows = (16, 64) if quick else (1, 16, 64, 256)
    shapes = [("square", n, n, n) for n in square]
    shapes += [("skinny", m, skinny_k, skinny_k) for m in rows]
    return shapes


def _fp8_matmul(torch, m: int, k: int, n: int, device: str, gen):
    """``torch._scaled_mm`` of e4m3 operands (the weight column-major, as cuBLASLt wants it)
    with unit scales and a bf16 output; None for a shape fp8 GEMMs refuse (dims not multiples
    of 16)."""
    if m % 16 or k % 16 or n % 16:
        return None
    f8 = torch.float8_e4m3fn
    a = torch.randn(m, k, generator=gen).to(device=device, dtype=f8)
    b = torch.randn(n, k, generator=gen).to(device=device, dtype=f8).t()
    one = torch.tensor(1.0, device=device)
    return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


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
            if dtype == "fp8":
                fn = _fp8_matmul(torch, m, k, n, device, gen)
                if fn is None:
                    continue
            else:
                a = torch.randn(m, k, generator=gen).to(device=device, dtype=tdt)
                b = torch.randn(k, n, generator=gen).to(device=device, dtype=tdt)
                out = torch.empty(m, n, device=device, dtype=tdt)

                def fn(a=a, b=b, out=out):
                    return torch.matmul(a, b, out=out)
            try:
                t = time_call(fn, repeats=3 if quick else 7, warmup=1 if quick else 2,
                              min_time=0.01 if quick else 0.05, sync=sync,
                              max_time=0.5 if quick else 3.0, clock=clock)
            except RuntimeError:
                if dtype != "fp8":
                    raise
                continue              # a shape this GPU's fp8 GEMM refuses: not measured
            flops = 2 * m * k * n
            rows.append({"kind": kind, "m": m, "k": k, "n": n, "dtype": dtype, "flops": flops,
                         "seconds": t["median"], "p10_s": t["p10"], "p90_s": t["p90"],
                         "flops_per_s": flops / t["median"]})
    finally:
        if prev_tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = prev_tf32
    return rows


def measure_copy(device: str, quick: bool = False, clock: str = "wall") -> list[dict]:
    """Bytes/s of dst.copy_(src) (read + write counted) for buffers far larger than the caches
    (:func:`costmodel.reference.timing.copy_pass`)."""
    from costmodel.reference.timing import copy_pass, synchronizer, time_call

    sync = synchronizer(device)
    mib = [64] if quick else [128, 256, 512]
    if device.startswith("cuda"):
        mib = [256, 1024] if quick else [512, 1024, 2048]
    rows = []
    for size in mib:
        fn, moved = copy_pass(size * 2**20, device)
        t = time_call(fn, repeats=3 if quick else 7, warmup=1, sync=sync,
                      max_time=0.5 if quick else 3.0, clock=clock)
        rows.append({"buffer_bytes": moved // 2, "bytes_moved": moved, "seconds": t["median"],
                     "p10_s": t["p10"], "p90_s": t["p90"], "bytes_per_s": moved / t["median"]})
        del fn
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


def efficiencies(matmul: Sequence[dict], copy: Sequence[dict], overhead: dict,
                 peaks: dict[str, float], bandwidth: float, dtype: str,
                 skinny_rows: int = SKINNY_ROWS) -> dict:
    """The typed efficiency fields from the micro-benchmarks, against ``peaks`` and
    ``bandwidth`` (a datasheet's, or the measured ones): η_c = the best square matmul of
    ``dtype`` / its peak, η_c,skinny = the median over the matmuls of at most ``skinny_rows``
    rows / the peak, η_m = η_m,elementwise = the best copy rate / bandwidth (a copy is the
    streaming pass the elementwise operators are), ``kernel_overhead`` = one op call. Each
    η is capped at 1."""
    rates = [r for r in matmul if r["dtype"] == dtype]
    if not rates:
        raise ValueError(f"dtype: no {dtype} matmul was measured")
    peak = peaks[dtype]
    square = [r["flops_per_s"] for r in rates if r["kind"] == "square"]
    skinny = [r["flops_per_s"] for r in rates if r["kind"] == "skinny" and r["m"] <= skinny_rows]
    copy_rate = max(r["bytes_per_s"] for r in copy)
    eta_c = min(1.0, max(square or [r["flops_per_s"] for r in rates]) / peak)
    eta_m = min(1.0, copy_rate / bandwidth)
    return {"eta_c": eta_c,
            "eta_c_skinny": min(1.0, statistics.median(skinny) / peak) if skinny else None,
            "eta_m": eta_m, "eta_m_elementwise": eta_m, "skinny_rows": skinny_rows,
            "kernel_overhead": float(overhead["op_call_s"])}


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
    unmeasured = [d for d in dtypes if not any(r["dtype"] == d for r in matmul)]
    dtypes = [d for d in dtypes if d not in unmeasured]
    if not dtypes:
        raise ValueError(f"dtype: no {', '.join(unmeasured)} matmul ran on {device}")
    peaks = {d: max(r["flops_per_s"] for r in matmul if r["dtype"] == d) for d in dtypes}
    bandwidth = max(r["bytes_per_s"] for r in copy)
    today = _dt.date.today().isoformat()
    extra = {**info, "clock": clock, "dtypes": dtypes, "quick": bool(quick), "date": today,
             "calibration_seconds": round(elapsed, 3), "matmul": matmul, "copy": copy,
             "overhead": overhead}
    if unmeasured:
        extra["unmeasured_dtypes"] = unmeasured
    fields: dict = {"kernel_overhead": float(overhead["op_call_s"])}
    notes = ("peak = best torch.matmul median over the sizes in extra.matmul (2 FLOPs per "
             "multiply-add); bandwidth = best dst.copy_(src) median, bytes read + written; "
             "kernel_overhead = one PyTorch op call on a 1-element tensor")
    if device.startswith("cuda"):
        memory = int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
        sheet = datasheet_for(info["device_name"])
        main = "bf16" if "bf16" in dtypes else dtypes[0]
        if sheet is not None and main in sheet.peak_flops:
            peaks = {**sheet.peak_flops, **{d: v for d, v in peaks.items()
                                            if d not in sheet.peak_flops}}
            bandwidth = sheet.bandwidth
            extra["datasheet"] = sheet.name
            notes = (f"peaks and bandwidth from the {sheet.name} datasheet preset; the "
                     f"efficiencies fitted from the {main} micro-benchmarks in extra "
                     "(costmodel.validation.calibrate.efficiencies); kernel_overhead = one "
                     "kernel launch")
        else:
            notes += "; efficiencies: the measured rates against these peaks"
        fields = efficiencies(matmul, copy, overhead, peaks, bandwidth, main)
    else:
        memory = system_memory_bytes()
    hw = HardwareSpec(
        name=name or f"{device.split(':')[0]}-{_slug(info['device_name'])}",
        memory_bytes=memory, bandwidth=float(bandwidth),
        peak_flops={d: float(v) for d, v in peaks.items()}, **fields,
        source=f"measured by costmodel calibrate on {today} ({info['device_name']}, "
               f"{info['threads']} threads, torch {info['torch_version']})",
        notes=notes, extra=extra,
    )
    return hw


__all__ = ["CUDA_SKINNY_ROWS", "DATASHEETS", "TORCH_DTYPES", "calibrate", "check_dtypes",
           "datasheet_for", "efficiencies", "has_fp8", "measure_copy", "measure_matmul",
           "measure_overhead"]
