"""CLI commands of the validation loop: ``calibrate``, ``measure`` and ``validate``.

    costmodel calibrate --device cpu --dtype fp32 --out data/hardware/cpu.json [--quick]
    costmodel measure --grid full --device cpu --out data/measurements/cpu.csv [--speculative]
    costmodel validate --measurements data/measurements/cpu.csv \\
                       --hardware data/hardware/cpu.json --out data/validation/ \\
                       --save-fitted data/hardware/cpu-fitted.json
    costmodel validate --published [CSV] [--out data/validation/published] [--save-engines]
    costmodel validate --kit --device cuda --out DIR --budget 300   # calibrate + measure + …

Each registers with :func:`costmodel.cli.registry.subcommand`; bad input raises ValueError,
which the CLI prints as one line and exits 2. A command's files are written all or none
(:class:`costmodel.files.OutputSet`): a failure leaves every file the user had as it was, and a
destination that cannot be written fails before the work starts. Calibrating and measuring need
the ``torch`` extra (``pip install 'costmodel[torch]'``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from costmodel import validation
from costmodel.cli.args import positive_int, positive_number
from costmodel.cli.registry import Result, subcommand
from costmodel.files import OutputSet
from costmodel.units import GB, GIB

#: Where ``validate --published`` writes unless told (relative to the working folder).
PUBLISHED_OUT = "data/validation/published"


def _progress(enabled: bool):
    if not enabled:
        return None
    t0 = time.perf_counter()

    def report(i, n, point_id, seconds):
        print(f"[{i}/{n}] {point_id}: {seconds * 1e3:.3f} ms ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr, flush=True)

    return report


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


# --------------------------------------------------------------------------- calibrate


def _add_calibrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto; default cpu")
    p.add_argument("--dtype", default="fp32",
                   help="dtype(s) to measure matmul peaks for, comma-separated (fp32, bf16, "
                        "fp16, tf32); default fp32")
    p.add_argument("--out", "-o", metavar="FILE.json", help="write the HardwareSpec here")
    p.add_argument("--quick", action="store_true", help="fewer, smaller sizes (seconds)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch intra-op threads while measuring; default 1")
    p.add_argument("--clock", choices=("thread", "wall"), default=None,
                   help="thread: CPU time of the measuring thread (default with 1 CPU thread); "
                        "wall: perf_counter")


@subcommand("calibrate", "measure this machine's matmul FLOP/s, bandwidth and per-op overhead",
            _add_calibrate)
def _run_calibrate(args: argparse.Namespace) -> Result:
    hw = validation.calibrate.calibrate(args.device, args.dtype, quick=args.quick,
                                        out=args.out, threads=args.threads, clock=args.clock)
    rows = [{"quantity": f"peak {d}", "value": v / 1e9, "unit": "GFLOP/s"}
            for d, v in hw.peak_flops.items()]
    rows += [{"quantity": "bandwidth (copy, read + write)", "value": hw.bandwidth / GB,
              "unit": "GB/s"},
             {"quantity": "kernel_overhead (one op call)", "value": hw.kernel_overhead * 1e6,
              "unit": "µs"},
             {"quantity": "memory", "value": hw.memory_bytes / GIB, "unit": "GiB"}]
    notes = [f"{hw.name}: {hw.extra.get('device_name')}, {hw.extra.get('threads')} thread(s), "
             f"clock {hw.extra.get('clock')}, torch {hw.extra.get('torch_version')}"]
    if args.out:
        notes.append(f"wrote {args.out}")
    return Result(rows, title=f"Calibration of {hw.name}", notes=notes)


# --------------------------------------------------------------------------- measure


def _add_measure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", choices=("tiny", "small", "full", "modern", "gpu", "kit-tiny"),
                   default="small",
                   help="tiny: 4 gpt-nano points; small: 32 points; full: 120 points "
                        "(5 models × B 1, 4 × s 32, 128, 512 × 4 phases); modern: the MoE and "
                        "sliding-window models on the full grid's batches and contexts (96 "
                        "points); gpu: real sizes (GPT2-XL, a Llama-3-8B-shaped model, a small "
                        "MoE, GPT-2) at B 1, 8, 64 × s 128, 1024, 4096 on three engines "
                        "(eager, compiled, Hugging Face); kit-tiny: the gpu grid's code paths "
                        "at tiny sizes; default small")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto; default cpu")
    p.add_argument("--dtype", default=None,
                   help="fp32, bf16 or fp16; default fp32 on a CPU, bf16 on a GPU")
    p.add_argument("--budget", type=positive_number, default=None, metavar="SECONDS",
                   help="seconds the measurement may take: the grid is trimmed (largest points "
                        "first) to fit, and an engine that fails on a model is skipped with "
                        "its reason")
    p.add_argument("--out", "-o", required=True, metavar="FILE.csv", help="CSV to write")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed repeats per round")
    p.add_argument("--warmup", type=_nonneg_int, default=2, help="untimed calls first; default 2")
    p.add_argument("--rounds", type=positive_int, default=2,
                   help="sweeps of the grid, samples pooled; default 2")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads; default 1")
    p.add_argument("--max-time", type=positive_number, default=3.0,
                   help="seconds of timed repeats per point and round; default 3")
    p.add_argument("--clock", choices=("thread", "wall", "cuda"), default=None,
                   help="default: cuda (events) on a GPU, thread with 1 CPU thread, else wall")
    p.add_argument("--speculative", action="store_true",
                   help="also time speculative decoding of the committed text target/draft "
                        "pair for γ = 1…8 into <out stem>_speculative.csv (both files are "
                        "written together or not at all)")
    p.add_argument("--append", action="store_true",
                   help="add the measured points to the rows --out already holds (kept as "
                        "they are); a point it holds already is refused")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


@subcommand("measure", "time the PyTorch reference model over a grid into a CSV", _add_measure)
def _run_measure(args: argparse.Namespace) -> Result:
    measuring = validation.measure
    t0 = time.perf_counter()
    spath = validation.io.speculative_path(args.out) if args.speculative else None
    if args.append and args.speculative:
        raise ValueError("measure: --append adds grid points; measure --speculative into a "
                         "file of its own")
    with OutputSet() as files:
        if args.append:
            measuring.appended_text(args.out, [])  # the file to add to is checked first
        files.write_bytes(args.out, b"")           # destinations checked before measuring
        if spath is not None:
            files.write_bytes(spath, b"")
        dtype = args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
        skipped: list = []
        rows = measuring.measure(args.grid, args.device, dtype, repeats=args.repeats,
                                 warmup=args.warmup, threads=args.threads, rounds=args.rounds,
                                 max_time=args.max_time, clock=args.clock,
                                 progress=_progress(not args.quiet), budget=args.budget,
                                 skipped=skipped)
        notes = [f"wrote {args.out}: {len(rows)} points in {time.perf_counter() - t0:.0f} s"
                 + (" (appended)" if args.append else "")]
        if skipped:
            notes.append(f"skipped {len(skipped)} points (first: {skipped[0][0]}: "
                         f"{skipped[0][1]})")
        files.write_text(args.out, measuring.appended_text(args.out, rows) if args.append
                         else measuring.measurements_text(rows))
        if spath is not None:
            speculative = validation.measure_speculative
            spec_rows = speculative.measure_speculative(device=args.device, threads=args.threads)
            files.write_text(spath, speculative.speculative_text(spec_rows))
            notes.append(f"wrote {spath}")
    table = [{"point": r["point_id"], "q": r["new_tokens"], "c": r["cached_tokens"],
              "time_ms": r["time_s"] * 1e3,
              "p10_ms": r["time_p10_s"] * 1e3, "p90_ms": r["time_p90_s"] * 1e3}
             for r in rows]
    return Result(table, title=f"Measured {args.grid} grid ({rows[0]['device_name']}, "
                               f"{rows[0]['threads']} thread(s), clock {rows[0]['clock']})",
                  notes=notes)


# --------------------------------------------------------------------------- validate


def _add_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--measurements", "-m", metavar="FILE.csv",
                   help="CSV written by `costmodel measure` (needed without --published "
                        "or --kit)")
    p.add_argument("--hardware", "-H", metavar="FILE.json",
                   help="calibration written by `costmodel calibrate` (needed without "
                        "--published or --kit)")
    p.add_argument("--out", "-o", metavar="DIR",
                   help="folder for the report, the tables and the figures (with --kit: for "
                        "everything the kit writes; with --published, default "
                        "data/validation/published)")
    p.add_argument("--published", nargs="?", const="", default=None, metavar="FILE.csv",
                   help="hold the predictions against the published GPU measurements "
                        "(default data/published/measurements.csv): fit the engine profiles, "
                        "judge them leave-one-source-out, derive the 80 %% bands")
    p.add_argument("--save-engines", action="store_true",
                   help="with --published: also write the fitted profiles and bands into "
                        "costmodel/data/engines.csv and engine_bands.csv")
    p.add_argument("--kit", action="store_true",
                   help="run the whole measurement kit: calibrate this machine, measure the "
                        "grid on three engines (eager, compiled, Hugging Face), validate each "
                        "and report, into --out (docs/GPU_KIT.md)")
    p.add_argument("--device", default="cuda",
                   help="with --kit: cuda, cuda:N or cpu; default cuda")
    p.add_argument("--grid", choices=("gpu", "tiny"), default="gpu",
                   help="with --kit: gpu (real sizes) or tiny (the same code paths at tiny "
                        "sizes, seconds on a CPU); default gpu")
    p.add_argument("--budget", type=positive_number, default=300.0, metavar="SECONDS",
                   help="with --kit: seconds the whole run may take; the grid is trimmed, "
                        "largest points first, to fit; default 300")
    p.add_argument("--quiet", action="store_true", help="with --kit: no progress on stderr")
    p.add_argument("--speculative", metavar="FILE.csv", default=None,
                   help="speculative measurements; default <measurements stem>_speculative.csv "
                        "when it exists")
    p.add_argument("--save-fitted", metavar="FILE.json", default=None,
                   help="also write the fitted machine (the calibration with the fitted "
                        "eta_c, eta_c_skinny, eta_m, eta_m_elementwise and kernel_overhead) as "
                        "a HardwareSpec JSON, e.g. data/hardware/cpu-fitted.json")


def _run_kit(args: argparse.Namespace) -> list[Result]:
    kit = validation.kit
    t0 = time.perf_counter()

    def progress(stage: str, message: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - t0:6.1f} s] {stage}: {message}", file=sys.stderr,
                  flush=True)

    r = kit.run_kit(args.out, args.device, args.grid, args.budget, progress=progress)
    rows = [{"engine": e, "points": v["points"],
             "flops_exact": f"{v['flops_exact']}/{v['points']}",
             "kv_exact": f"{v['kv_exact']}/{v['points']}",
             "calibrated_median": f"{100 * v['calibrated_median']:.1f} %",
             "calibrated_p90": f"{100 * v['calibrated_p90']:.1f} %",
             "ideal_median": f"{100 * v['ideal_median']:.1f} %"}
            for e, v in r.summary["engines"].items()]
    s = r.summary["seconds"]
    notes = [f"{r.summary['device_name']}: {s['total']:.1f} s (budget {args.budget:g} s): "
             f"calibrate {s['calibrate']:.1f} s, measure {s['measure']:.1f} s, validate "
             f"{s['validate']:.1f} s; {r.summary['measured_points']} points measured, "
             f"{r.summary['skipped_points']} skipped",
             f"wrote {len(r.files)} files under {r.out_dir} (report: "
             f"{r.out_dir / kit.REPORT_FILE})"]
    return [Result(rows, title="Measurement kit", notes=notes)]


@subcommand("validate", "hold the predictions against measurements; write the report",
            _add_validate)
def _run_validate(args: argparse.Namespace) -> list[Result]:
    if args.published is not None:
        if args.kit:
            raise ValueError("validate: --published and --kit are two runs; give one")
        return _run_published(args)
    if args.save_engines:
        raise ValueError("--save-engines: only with --published")
    if args.kit:
        if args.measurements or args.hardware:
            raise ValueError("validate: --kit measures and calibrates itself; give no "
                             "--measurements or --hardware")
        if args.out is None:
            raise ValueError("validate: --out required with --kit")
        return _run_kit(args)
    missing = [flag for flag, value in (("--measurements", args.measurements),
                                        ("--hardware", args.hardware), ("--out", args.out))
               if value is None]
    if missing:
        raise ValueError(f"validate: {', '.join(missing)} required (or --published, or --kit)")
    r = validation.validate.validate(args.measurements, args.hardware, args.out,
                                     speculative_csv=args.speculative,
                                     fitted_hardware_json=args.save_fitted)
    s = r.summary
    head = [
        {"check": "matmul FLOPs exact", "result": f"{s['flops_exact']}/{s['points']}"},
        {"check": "KV bytes exact", "result": f"{s['kv_exact']}/{s['points']}"},
        {"check": "param bytes exact", "result": f"{s['param_exact']}/{s['points']}"},
        {"check": "calibrated median |err| (held out)",
         "result": f"{100 * s['calibrated_median']:.1f} %"},
        {"check": "calibrated p90 |err| (held out)",
         "result": f"{100 * s['calibrated_p90']:.1f} %"},
        {"check": "ideal roofline median |err| (held out)",
         "result": f"{100 * s['ideal_median']:.1f} %"},
    ]
    if "speculative_rel_error" in s:
        head.append({"check": f"speculative improvement at γ={s['speculative_best_gamma']}",
                     "result": f"pred {s['speculative_predicted']:.2f}× vs meas "
                               f"{s['speculative_measured']:.2f}× "
                               f"({100 * s['speculative_rel_error']:+.1f} %)"})
    f = r.fit
    written = [r.markdown, *r.figures.values()] + ([args.save_fitted] if args.save_fitted
                                                    else [])
    notes = [f"fit: eta_c={f.eta_c:.3f}, eta_c_skinny={f.eta_c_skinny:.3f}, "
             f"eta_m={f.eta_m:.3f}, eta_m_elementwise={f.eta_m_elementwise:.3f}, "
             f"t_k={f.kernel_overhead * 1e6:.2f} us per kernel",
             "wrote " + ", ".join(str(p) for p in written)]
    errors = r.errors.to_dict("records")
    return [Result(head, title="Validation", notes=notes),
            Result(errors, title="|relative error| by regime (held-out points)")]


def _shown(path) -> str:
    """A written path as the user would type it: relative to the working folder when inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _run_published(args: argparse.Namespace) -> list[Result]:
    for flag, value in (("--measurements", args.measurements), ("--hardware", args.hardware),
                        ("--speculative", args.speculative),
                        ("--save-fitted", args.save_fitted)):
        if value is not None:
            raise ValueError(f"{flag}: not used with --published")
    out = args.out if args.out is not None else PUBLISHED_OUT

    def progress(i, n, source):
        print(f"[{i}/{n}] fitted without {source}", file=sys.stderr, flush=True)

    published = validation.published
    r = validation.published_report.validate_published(
        args.published or published.PUBLISHED_CSV, out, save_engines=args.save_engines,
        progress=progress)
    head = [{"check": c, "result": res, "target": t, "met": m}
            for c, res, t, m in validation.published_report.headline_rows(r.summary)]
    errors = r.errors[["regime", "n", "ideal_median", "ideal_p90", "default_median",
                       "default_p90", "fitted_median", "fitted_p90", "loso_median",
                       "loso_p90"]].to_dict("records")
    notes = ["wrote " + ", ".join(_shown(p) for p in r.written)]
    return [Result(head, title=f"Published GPU measurements ({r.summary['rows']} rows, "
                               f"{r.summary['sources']} sources)", notes=notes),
            Result(errors, title="|relative error| by regime (time)")]


__all__: list[str] = []
