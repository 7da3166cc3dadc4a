"""CLI commands of the validation loop: ``calibrate``, ``measure`` and ``validate``.

    costmodel calibrate --device cpu --dtype fp32 --out data/hardware/cpu.json [--quick]
    costmodel measure --grid full --device cpu --out data/measurements/cpu.csv [--speculative]
    costmodel validate --measurements data/measurements/cpu.csv \\
                       --hardware data/hardware/cpu.json --out data/validation/ \\
                       --save-fitted data/hardware/cpu-fitted.json

Each registers with :func:`costmodel.cli.subcommand`; bad input raises ValueError, which the CLI
prints as one line and exits 2. Files are written atomically (temp file + rename).
"""

from __future__ import annotations

import argparse
import sys
import time

from costmodel.cli.args import positive_int, positive_number
from costmodel.cli.registry import Result, subcommand


def _progress(enabled: bool):
    if not enabled:
        return None
    t0 = time.perf_counter()

    def report(i, n, point_id, seconds):
        print(f"[{i}/{n}] {point_id}: {seconds * 1e3:.3f} ms ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr, flush=True)

    return report


# --------------------------------------------------------------------------- calibrate


def _add_calibrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N; default cpu")
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
    from costmodel.calibrate import calibrate

    hw = calibrate(args.device, args.dtype, quick=args.quick, out=args.out,
                   threads=args.threads, clock=args.clock)
    rows = [{"quantity": f"peak {d}", "value": v / 1e9, "unit": "GFLOP/s"}
            for d, v in hw.peak_flops.items()]
    rows += [{"quantity": "bandwidth (copy, read + write)", "value": hw.bandwidth / 1e9,
              "unit": "GB/s"},
             {"quantity": "kernel_overhead (one op call)", "value": hw.kernel_overhead * 1e6,
              "unit": "µs"},
             {"quantity": "memory", "value": hw.memory_bytes / 2**30, "unit": "GiB"}]
    notes = [f"{hw.name}: {hw.extra.get('device_name')}, {hw.extra.get('threads')} thread(s), "
             f"clock {hw.extra.get('clock')}, torch {hw.extra.get('torch_version')}"]
    if args.out:
        notes.append(f"wrote {args.out}")
    return Result(rows, title=f"Calibration of {hw.name}", notes=notes)


# --------------------------------------------------------------------------- measure


def _add_measure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", choices=("tiny", "small", "full"), default="small",
                   help="tiny: 4 gpt-nano points; small: 32 points; full: 120 points "
                        "(5 models × B 1, 4 × s 32, 128, 512 × 4 phases); default small")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N; default cpu")
    p.add_argument("--dtype", default="fp32", help="fp32 or bf16; default fp32")
    p.add_argument("--out", "-o", required=True, metavar="FILE.csv", help="CSV to write")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed repeats per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first; default 2")
    p.add_argument("--rounds", type=positive_int, default=2,
                   help="sweeps of the grid, samples pooled; default 2")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads; default 1")
    p.add_argument("--max-time", type=positive_number, default=3.0,
                   help="seconds of timed repeats per point and round; default 3")
    p.add_argument("--clock", choices=("thread", "wall"), default=None,
                   help="default: thread with 1 CPU thread, else wall")
    p.add_argument("--speculative", action="store_true",
                   help="also time speculative decoding of the committed text target/draft "
                        "pair for γ = 1…8 into <out stem>_speculative.csv")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


@subcommand("measure", "time the PyTorch reference model over a grid into a CSV", _add_measure)
def _run_measure(args: argparse.Namespace) -> Result:
    from costmodel.measure import measure, measure_speculative, speculative_path

    if args.warmup < 0:
        raise ValueError(f"warmup: must be an integer >= 0, got {args.warmup}")
    t0 = time.perf_counter()
    rows = measure(args.grid, args.device, args.dtype, args.out, repeats=args.repeats,
                   warmup=args.warmup, threads=args.threads, rounds=args.rounds,
                   max_time=args.max_time, clock=args.clock,
                   progress=_progress(not args.quiet))
    notes = [f"wrote {args.out}: {len(rows)} points in {time.perf_counter() - t0:.0f} s"]
    if args.speculative:
        spath = speculative_path(args.out)
        measure_speculative(spath, device=args.device, threads=args.threads)
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
    p.add_argument("--measurements", "-m", required=True, metavar="FILE.csv",
                   help="CSV written by `costmodel measure`")
    p.add_argument("--hardware", "-H", required=True, metavar="FILE.json",
                   help="calibration written by `costmodel calibrate`")
    p.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="folder for validation_report.md and the figures")
    p.add_argument("--speculative", metavar="FILE.csv", default=None,
                   help="speculative measurements; default <measurements stem>_speculative.csv "
                        "when it exists")
    p.add_argument("--save-fitted", metavar="FILE.json", default=None,
                   help="also write the fitted machine (peaks × η_c, bandwidth × η_m, "
                        "kernel_overhead = t_k) as a HardwareSpec JSON, e.g. "
                        "data/hardware/cpu-fitted.json")


@subcommand("validate", "hold the predictions against measurements; write the report",
            _add_validate)
def _run_validate(args: argparse.Namespace) -> list[Result]:
    from costmodel.validate import validate

    r = validate(args.measurements, args.hardware, args.out, speculative_csv=args.speculative,
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
    notes = [f"fit: eta_c={f.eta_c:.3f}, eta_c_skinny={f.eta_c_skinny:.3f}, "
             f"eta_m={f.eta_m:.3f}, eta_m_elementwise={f.eta_m_elementwise:.3f}, "
             f"t_k={f.kernel_overhead * 1e6:.2f} us per kernel",
             f"wrote {r.markdown}" + "".join(f", {p}" for p in r.figures.values())
             + (f", {args.save_fitted}" if args.save_fitted else "")]
    errors = r.errors.to_dict("records")
    return [Result(head, title="Validation", notes=notes),
            Result(errors, title="|relative error| by regime (held-out points)")]


__all__: list[str] = []
