"""The time budget of a measurement: the seconds a grid point and a model's build should take
(the roofline on the machine), the grid trimmed to fit, and the machine to estimate with.
"""

from __future__ import annotations

from costmodel.checks import check_number
from costmodel.params import param_count
from costmodel.roofline import analyze
from costmodel.specs import HardwareSpec
from costmodel.validation.calibrate import datasheet_for
from costmodel.validation.grids import Point, gpt_config
from costmodel.validation.io import BYTES_PER_DTYPE
from costmodel.workload import reference_options

# --------------------------------------------------------------------------- the budget


#: Seconds assumed for building a model (besides its weights at 5 GB/s) and for compiling one
#: model's blocks (regional compilation with CUDA graphs) — estimates for the budget — and the
#: factor on a point's roofline estimate (before a point starts, the clock is checked against
#: its estimate too, so a late point is skipped rather than run past the budget).
BUILD_SECONDS = 2.0
COMPILE_SECONDS = {"cuda": 60.0, "cpu": 5.0}
SAFETY = 1.5


def estimate_seconds(point: Point, hw: HardwareSpec, repeats: int, warmup: int,
                     max_time: float) -> float:
    """Seconds a point should take: the pass (``cm.analyze`` on ``hw``, with its kernel
    overhead) run for the warm-up, the FLOP-counted call and the timed repeats (``max_time``
    caps them, but at least 3 run), plus the prefill that fills a decode step's cache; ×
    :data:`SAFETY`."""
    config = gpt_config(point.model)
    spec = config.to_spec()
    q, c, cache = point.workload
    nbytes = BYTES_PER_DTYPE[point.dtype]
    kw = dict(weight_bytes=nbytes, kv_bytes=nbytes, act_bytes=nbytes, dtype=point.dtype)
    dtype = point.dtype if point.dtype in hw.peak_flops else next(iter(hw.peak_flops))
    kw["dtype"] = dtype
    t = analyze(spec, hw, batch=point.batch, new_tokens=q, cached_tokens=c,
                **reference_options(cache, config.attn_impl), **kw).time
    fill = 0.0
    if c and (point.prefill_cache or point.engine == "hf"):
        fill = analyze(spec, hw, batch=point.batch, new_tokens=c, cached_tokens=0,
                       **reference_options(cache, config.attn_impl), **kw).time
    calls = warmup + 2 + (3 if point.engine == "compiled" else 0)
    return SAFETY * (fill + calls * t + max(min(max_time, repeats * t), 3 * t))


def group_seconds(model: str, engine: str, dtype: str, device: str) -> float:
    """Seconds to build (and compile) one model for one engine: :data:`BUILD_SECONDS` plus its
    weights at 5 GB/s, plus :data:`COMPILE_SECONDS` for the compiled engine."""
    weights = param_count(gpt_config(model).to_spec()) * BYTES_PER_DTYPE[dtype]
    t = BUILD_SECONDS + weights / 5e9
    if engine == "compiled":
        t += COMPILE_SECONDS["cuda" if device.startswith("cuda") else "cpu"]
    return t


def trim(points: list[Point], budget: float, hw: HardwareSpec, device: str, repeats: int,
         warmup: int, max_time: float) -> tuple[list[Point], list[Point]]:
    """(kept, dropped): the points whose estimated seconds, with their models' build and
    compile time, fit ``budget``. The largest go first — by what dropping them saves: a point's
    own seconds, plus its model's build and compile time when it is that model's last point
    (so a model kept for one point does not cost a compilation)."""
    check_number("budget", budget, 0.0)
    cost = {p: estimate_seconds(p, hw, repeats, warmup, max_time) for p in points}
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault((p.model, p.engine, p.dtype), []).append(p)
    overhead = {g: group_seconds(g[0], g[1], g[2], device) for g in groups}
    left = {g: len(members) for g, members in groups.items()}
    kept = set(points)
    total = sum(cost.values()) + sum(overhead.values())

    def saving(p: Point) -> float:
        g = (p.model, p.engine, p.dtype)
        return cost[p] + (overhead[g] if left[g] == 1 else 0.0)

    while total > budget and kept:
        p = max(kept, key=lambda x: (saving(x), x.point_id))
        total -= saving(p)
        kept.discard(p)
        left[(p.model, p.engine, p.dtype)] -= 1
    return [p for p in points if p in kept], [p for p in points if p not in kept]


def default_hardware(device: str) -> HardwareSpec:
    """A machine to estimate with when none is given: the datasheet preset of the GPU
    (:func:`costmodel.validation.calibrate.datasheet_for`), else an order-of-magnitude CPU
    (100 GFLOP/s, 20 GB/s, 5 µs per op call: the committed CPU calibration's shape)."""
    from costmodel.reference.timing import describe_device

    if device.startswith("cuda"):
        sheet = datasheet_for(describe_device(device)["device_name"])
        if sheet is not None:
            return sheet.replace(kernel_overhead=5e-6)
    return HardwareSpec(name="estimate", memory_bytes=2**34, bandwidth=2e10,
                        peak_flops={"fp32": 1e11, "bf16": 1e11, "fp16": 1e11},
                        kernel_overhead=5e-6, source="an order-of-magnitude CPU estimate")
