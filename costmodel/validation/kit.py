"""The measurement kit: calibrate the machine, measure the reference model's grid on three
engines, validate each engine's measurements and report — one command, one output folder,
within a time budget.

    costmodel validate --kit --device cuda --out gpu-run --budget 300     # one H100/H200
    costmodel validate --kit --device cpu --grid tiny --out tiny-run      # the same, tiny

Stages (:func:`run_kit`): :func:`costmodel.validation.calibrate.calibrate` (on a GPU: bf16,
fp16 and fp8 matmuls, square and skinny, copy bandwidth, launch overhead, the fitted
efficiencies), :func:`costmodel.validation.measure.measure` on the ``gpu`` grid (``tiny``: the
``kit-tiny`` grid, the same code paths at tiny sizes) trimmed to the time the budget leaves, then
:func:`costmodel.validation.validate.validate` on each engine's rows (its own fit: a compiled
engine replaying CUDA graphs and Python eager code do not share a per-kernel cost), and the
kit's own report: the exact checks, the calibrated and ideal errors, the achieved bandwidth
and FLOP utilisation of every measured point, GPT-2 against GPT2-XL (CS229S), what was skipped
and why, and the seconds each stage took. Every file is written in one
:class:`~costmodel.files.OutputSet`: all of them, or none.

Files under ``out`` (``<machine>`` = the calibration's name, e.g. ``cuda-nvidia-h200``):

    kit_report.md                          the report
    kit.json                               its numbers (stage seconds, headline per engine)
    kit_points.csv                         every measured point: time, FLOPs, bytes, MBU, MFU
    hardware/<machine>.json                the calibration (HardwareSpec)
    hardware/<machine>-<engine>-fitted.json  the fitted machine of each engine
    measurements/<machine>_<engine>.csv    each engine's measurements (the CPU grid's schema)
    validation/<engine>/…                  each engine's validation report, tables, figures
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from costmodel.checks import check_choice, check_number
from costmodel.files import OutputSet
from costmodel.lazy import deferred
from costmodel.roofline import analyze
from costmodel.specs import HardwareSpec, to_json
from costmodel.units import GB
from costmodel.validation.calibrate import calibrate, has_fp8
from costmodel.validation.io import TIME_COLUMN, analysis_kwargs, spec_of
from costmodel.validation.measure import measure, measurements_text
from costmodel.validation.validate import Report, validate

pd = deferred("pandas")

#: The kit's grids → the measurement grids they run.
KIT_GRIDS = {"gpu": "gpu", "tiny": "kit-tiny"}
#: What the kit aims for: the whole run within this many seconds on one H100/H200-class GPU.
TARGET_SECONDS = 300.0
#: Seconds kept back from the measurement for validating and reporting, per engine.
RESERVE_PER_ENGINE = {"cuda": 25.0, "cpu": 8.0}
#: Measurement settings by device kind (warm-up calls, timed repeats, seconds per point).
SETTINGS = {"cuda": dict(dtype="bf16", repeats=5, warmup=2, min_time=0.0, max_time=1.0,
                         threads=None),
            "cpu": dict(dtype="fp32", repeats=3, warmup=1, min_time=0.002, max_time=0.2,
                        threads=1)}
#: The CS229S comparison: GPT-2 beside GPT2-XL, step for step.
CS229S_MODELS = ("gpu-gpt2", "gpu-gpt2-xl")
REPORT_FILE = "kit_report.md"


@dataclass
class KitResult:
    """What :func:`run_kit` did: the files it wrote, the seconds each stage took, the
    calibration, the measured rows, each engine's validation report, what was skipped."""

    out_dir: Path
    files: list[Path]
    seconds: dict[str, float]
    hardware: HardwareSpec
    points: Any                                   # DataFrame: kit_points.csv
    reports: dict[str, Report] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _kind(device: str) -> str:
    return "cuda" if device.startswith("cuda") else "cpu"


def _dtypes(device: str) -> str:
    """The calibration's dtypes: bf16, fp16 and fp8 where the GPU has it; fp32 on a CPU."""
    if _kind(device) == "cpu":
        return "fp32"
    return "bf16,fp16" + (",fp8" if has_fp8(device) else "")


def run_kit(out_dir: str | Path, device: str = "cuda", grid: str = "gpu",
            budget: float = TARGET_SECONDS, progress=None,
            compile_backend: str | None = None) -> KitResult:
    """Calibrate, measure, validate and report into ``out_dir`` within ``budget`` seconds
    (the measurement is trimmed, largest points first, to what is left after calibrating,
    with time kept back to validate and report). ``grid``: ``gpu`` or ``tiny``.
    ``progress``: called with (stage, message). ``compile_backend``: the compiled engine's
    torch.compile backend (default inductor on a GPU, Dynamo's ``eager`` on the CPU)."""
    from costmodel.reference.timing import check_device

    t0 = time.perf_counter()
    check_choice("grid", grid, KIT_GRIDS)
    check_number("budget", budget, 0.0)
    device = check_device(device)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} is a file, not a folder")
    say = progress or (lambda stage, message: None)
    kind = _kind(device)
    settings = dict(SETTINGS[kind])
    seconds: dict[str, float] = {}
    skipped: list[tuple[str, str]] = []
    with OutputSet() as files:
        files.write_bytes(out / REPORT_FILE, b"")      # the destination is checked now
        say("calibrate", f"{device}: {_dtypes(device)}")
        t = time.perf_counter()
        hw = calibrate(device, _dtypes(device), quick=kind == "cpu",
                       threads=settings["threads"])
        seconds["calibrate"] = time.perf_counter() - t
        machine = hw.name
        files.write_text(out / "hardware" / f"{machine}.json", to_json(hw.to_dict()))

        engines_reserve = RESERVE_PER_ENGINE[kind] * 3
        left = budget - (time.perf_counter() - t0) - engines_reserve
        say("measure", f"grid {grid}, {max(left, 0):.0f} s for measuring")
        t = time.perf_counter()
        rows = measure(KIT_GRIDS[grid], device, settings["dtype"], repeats=settings["repeats"],
                       warmup=settings["warmup"], threads=settings["threads"],
                       min_time=settings["min_time"], max_time=settings["max_time"],
                       budget=max(left, 1.0), hardware=hw, skipped=skipped,
                       compile_backend=compile_backend,
                       progress=(lambda i, n, pid, s: say("measure", f"[{i}/{n}] {pid}: "
                                                                     f"{s * 1e3:.3f} ms")))
        seconds["measure"] = time.perf_counter() - t

        t = time.perf_counter()
        reports: dict[str, Report] = {}
        frames = []
        for engine in dict.fromkeys(r["engine"] for r in rows):
            subset = [r for r in rows if r["engine"] == engine]
            csv_path = out / "measurements" / f"{machine}_{engine}.csv"
            files.write_text(csv_path, measurements_text(subset))
            df = pd.DataFrame(subset)
            df.attrs["source"] = str(csv_path)
            say("validate", f"{engine}: {len(subset)} points")
            report = validate(df, hw, out / "validation" / engine,
                              fitted_hardware_json=out / "hardware"
                              / f"{machine}-{engine}-fitted.json", files=files)
            reports[engine] = report
            frames.append(_points(report, hw, engine))
        seconds["validate"] = time.perf_counter() - t
        points = pd.concat(frames, ignore_index=True)
        seconds["total"] = time.perf_counter() - t0
        summary = _summary(reports, seconds, budget, grid, device, hw, skipped, points)
        files.write_text(out / "kit_points.csv", points.to_csv(index=False))
        files.write_text(out / "kit.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
        files.write_text(out / REPORT_FILE, render(summary, reports, points, hw, skipped))
        written = sorted(files.paths)
    say("done", f"{seconds['total']:.1f} s, {len(written)} files in {out}")
    return KitResult(out, written, seconds, hw, points, reports, skipped, summary)


# --------------------------------------------------------------------------- per point


def _points(report: Report, hw: HardwareSpec, engine: str):
    """One engine's measured points with the calibrated prediction, the bytes the operator
    model moves and the FLOPs it counts, and the achieved utilisations: MBU = bytes / time /
    bandwidth, MFU = FLOPs / time / peak of the dtype (the calibration's bandwidth and peaks:
    the datasheet's on a known GPU)."""
    df = report.measurements
    p = report.points.set_index("point_id")
    out = []
    for _, row in df.iterrows():
        a = analyze(spec_of(row), hw.replace(kernel_overhead=0.0), **analysis_kwargs(row))
        t = float(row[TIME_COLUMN])
        peak = hw.peak_flops.get(str(row["dtype"]), max(hw.peak_flops.values()))
        out.append({"point_id": row["point_id"], "engine": engine, "model": row["model"],
                    "phase": row["phase"], "batch": int(row["batch"]),
                    "context": int(row["context"]), "time_s": t,
                    "pred_calibrated_s": float(p.loc[row["point_id"], "pred_calibrated_s"]),
                    "pred_ideal_s": float(p.loc[row["point_id"], "pred_ideal_s"]),
                    "split": p.loc[row["point_id"], "split"],
                    "flops": a.flops, "bytes": a.bytes,
                    "mbu": a.bytes / t / hw.bandwidth, "mfu": a.flops / t / peak})
    return pd.DataFrame(out)


def _summary(reports, seconds, budget, grid, device, hw, skipped, points) -> dict:
    engines = {}
    for engine, r in reports.items():
        s = r.summary
        engines[engine] = {k: s[k] for k in ("points", "test_points", "in_sample", "flops_exact",
                                             "kv_exact", "param_exact", "calibrated_median",
                                             "calibrated_p90", "ideal_median", "ideal_p90",
                                             "latency_target_met") if k in s}
        engines[engine]["fit"] = s["fit"]
    reasons: dict[str, int] = {}
    for _, why in skipped:
        reasons[why] = reasons.get(why, 0) + 1
    return {"device": device, "device_name": (hw.extra or {}).get("device_name", hw.name),
            "machine": hw.name, "grid": grid, "budget_s": budget,
            "seconds": {k: round(v, 2) for k, v in seconds.items()},
            "within_budget": seconds["total"] <= budget,
            "target_s": TARGET_SECONDS, "date": _dt.date.today().isoformat(),
            "torch_version": (hw.extra or {}).get("torch_version"),
            "measured_points": int(len(points)), "skipped_points": len(skipped),
            "skipped_reasons": reasons, "engines": engines}


# --------------------------------------------------------------------------- the report


def _pct(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{100 * x:.1f} %"


def _calibration(hw: HardwareSpec) -> list[str]:
    ex = hw.extra or {}
    rows = [[f"peak {d}" + (" (datasheet)" if "datasheet" in ex else " (measured)"),
             _rate(v)] for d, v in hw.peak_flops.items()]
    rows += [["bandwidth" + (" (datasheet)" if "datasheet" in ex else " (copy, measured)"),
              f"{hw.bandwidth / GB:.1f} GB/s"]]
    copy = max((r["bytes_per_s"] for r in ex.get("copy", [])), default=float("nan"))
    rows += [["copy bandwidth (read + write, measured)", f"{copy / GB:.1f} GB/s"],
             ["η_c (best square matmul / peak)", f"{hw.eta_c:.3f}"],
             [f"η_c,skinny (≤ {hw.skinny_rows} rows)", "—" if hw.eta_c_skinny is None
              else f"{hw.eta_c_skinny:.4f}"],
             ["η_m = η_m,elementwise (copy / bandwidth)", f"{hw.eta_m:.3f}"],
             ["kernel launch overhead", f"{hw.kernel_overhead * 1e6:.2f} µs"]]
    L = ["## Calibration\n", tabulate(rows, headers=["quantity", "value"], tablefmt="github"),
         ""]
    mm = ex.get("matmul", [])
    if mm:
        table = [[r["dtype"], r["kind"], f"{r['m']}×{r['k']}·{r['k']}×{r['n']}",
                  _rate(r["flops_per_s"])] for r in mm]
        timer = ("CUDA events" if str(ex.get("device", "")).startswith("cuda")
                 else f"clock `{ex.get('clock', 'wall')}`")
        L += [f"Matmul throughput (medians; {timer}):\n",
              tabulate(table, headers=["dtype", "shape", "M×K·K×N", "rate"],
                       tablefmt="github"), ""]
    if ex.get("unmeasured_dtypes"):
        L += [f"Not measured on this device: {', '.join(ex['unmeasured_dtypes'])}.\n"]
    return L


def _rate(flops_per_s: float) -> str:
    return (f"{flops_per_s / 1e12:.1f} TFLOP/s" if flops_per_s >= 1e12
            else f"{flops_per_s / 1e9:.1f} GFLOP/s")


def _engines(summary: dict) -> list[str]:
    rows = []
    for engine, e in summary["engines"].items():
        n = e["points"]
        rows.append([engine, n, f"{e['flops_exact']}/{n}", f"{e['kv_exact']}/{n}",
                     f"{e['param_exact']}/{n}", _pct(e["calibrated_median"]),
                     _pct(e["calibrated_p90"]), _pct(e["ideal_median"]), _pct(e["ideal_p90"]),
                     "in sample" if e["in_sample"] else f"{e['test_points']} held out"])
    return ["## Exact checks and latency errors, per engine\n",
            "FLOPs: FlopCounterMode on the measured pass = the operator model's matmul and "
            "attention FLOPs; KV: the bytes the engine's cache holds = the KV formula; params: "
            "the engine's parameter bytes = the parameter formula. Latency: |predicted / "
            "measured − 1| of the calibrated model (fitted on this engine's training points) "
            "and of the ideal roofline (the calibration's peaks and bandwidth, η = 1, no "
            "overhead); target median ≤ 10 %, p90 ≤ 25 %.\n",
            tabulate(rows, headers=["engine", "points", "FLOPs exact", "KV exact",
                                    "params exact", "calibrated median", "calibrated p90",
                                    "ideal median", "ideal p90", "judged on"],
                     tablefmt="github"), ""]


def _utilisation(points) -> list[str]:
    L = ["## Achieved utilisation\n",
         "MBU = bytes the operator model moves / measured time / bandwidth; MFU = FLOPs / "
         "measured time / peak of the dtype. The compiled engine's points first.\n"]
    order = {"compiled": 0, "eager": 1, "hf": 2}
    df = points.assign(_o=points["engine"].map(order)).sort_values(
        ["_o", "model", "phase", "batch", "context"])
    rows = [[r.engine, r.model, r.phase, r.batch, r.context, f"{r.time_s * 1e3:.3f}",
             f"{r.pred_calibrated_s * 1e3:.3f}", _pct(r.mbu), _pct(r.mfu)]
            for r in df.itertuples()]
    L += [tabulate(rows, headers=["engine", "model", "phase", "B", "s", "measured ms",
                                  "calibrated ms", "MBU", "MFU"], tablefmt="github"), ""]
    return L


def _cs229s(points) -> list[str]:
    small, large = CS229S_MODELS
    df = points[points["model"].isin(CS229S_MODELS)]
    if df.empty or not set(df["model"]) >= {small, large}:
        return []
    wide = df.pivot_table(index=["engine", "phase", "batch", "context"], columns="model",
                          values="time_s").dropna().reset_index()
    if wide.empty:
        return []
    rows = [[r["engine"], r["phase"], int(r["batch"]), int(r["context"]),
             f"{r[small] * 1e3:.3f}", f"{r[large] * 1e3:.3f}", f"{r[large] / r[small]:.2f}×"]
            for _, r in wide.iterrows()]
    return ["## GPT-2 vs GPT2-XL (CS229S)\n",
            "The same pass of GPT-2 (124M) and GPT2-XL (1.56B), step for step: how the step "
            "time grows with a model 12.6× larger.\n",
            tabulate(rows, headers=["engine", "phase", "B", "s", "GPT-2 ms", "GPT2-XL ms",
                                    "ratio"], tablefmt="github"), ""]


def render(summary: dict, reports: dict, points, hw: HardwareSpec,
           skipped: list[tuple[str, str]]) -> str:
    """The kit's report (markdown), from its numbers."""
    s = summary["seconds"]
    L = [f"# Measurement kit — {summary['device_name']}\n",
         f"`costmodel validate --kit --device {summary['device']} --grid {summary['grid']} "
         f"--budget {summary['budget_s']:g}` on {summary['date']} (torch "
         f"{summary['torch_version']}): **{s['total']:.1f} s** in all (budget "
         f"{summary['budget_s']:g} s, {'within' if summary['within_budget'] else 'OVER'}; the "
         f"kit aims at {summary['target_s']:g} s on one H100/H200-class GPU) — calibrate "
         f"{s['calibrate']:.1f} s, measure {s['measure']:.1f} s "
         f"({summary['measured_points']} points, {summary['skipped_points']} skipped), "
         f"validate and report {s['validate']:.1f} s.\n"]
    L += _engines(summary)
    L += _calibration(hw)
    L += _cs229s(points)
    L += _utilisation(points)
    if skipped:
        L += ["## Skipped points\n",
              tabulate([[why, n] for why, n in summary["skipped_reasons"].items()],
                       headers=["reason", "points"], tablefmt="github"), "",
              "<details><summary>every skipped point</summary>\n",
              "\n".join(f"- `{pid}`: {why}" for pid, why in skipped), "\n</details>\n"]
    L += ["## Files\n", "Each engine's validation report: "
          + ", ".join(f"`validation/{e}/validation_report.md`" for e in reports)
          + "; the per-point table: `kit_points.csv`; the numbers of this page: `kit.json`.\n"]
    return "\n".join(L)


__all__ = ["CS229S_MODELS", "KIT_GRIDS", "KitResult", "REPORT_FILE", "SETTINGS",
           "TARGET_SECONDS", "render", "run_kit"]
