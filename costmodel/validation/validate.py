r"""Hold the calculator against measurements of the reference model: read and check the inputs,
run the exact checks, fit the calibrated model, tabulate the errors, predict speculative
decoding, and write the report — every file of it, or none.

    report = validate("data/measurements/cpu.csv", "data/hardware/cpu.json", "data/validation",
                      fitted_hardware_json="data/hardware/cpu-fitted.json")
    report.summary           # the headline numbers
    report.errors            # DataFrame: median / p90 |relative error| by regime (held out)

Latency is judged three ways per point: the *ideal roofline* on the calibrated peaks (η = 1, no
overhead), the ideal roofline plus the calibrated per-op call cost (*overhead_only*, nothing
fitted), and the *calibrated* model (:mod:`costmodel.validation.fit`); two refits show what
the model's parts are worth (*standard_ops*: the reference's eager operators replaced by a
fused kernel set; *one_eta*: one η_c and one η_m for every operator), and a leave-one-model-out
table how the fit carries to a model it never saw. Errors are |predicted / measured − 1|, as
median and 90th percentile by regime (phase × ideal bound × cache strategy).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from costmodel.files import OutputSet
from costmodel.lazy import deferred
from costmodel.specs import HardwareSpec, to_json
from costmodel.validation.checks import check_bytes, check_flops
from costmodel.validation.fit import (
    IDEAL,
    Fit,
    Terms,
    error_table,
    fit,
    least_squares,
    predict_terms,
    terms_of,
)
from costmodel.validation.hardware_io import read_hardware
from costmodel.validation.io import TIME_COLUMN, read_measurements, speculative_path
from costmodel.validation.report import (
    FIGURE_FILES,
    figure_png,
    headline_rows,
    render_markdown,
)
from costmodel.validation.speculative import speculative_table
from costmodel.validation.speculative_io import read_speculative
from costmodel.workload import MEASURED_PHASES

pd = deferred("pandas")

#: What the validation aims for (the report says whether each was met).
TARGETS = {"median": 0.10, "p90": 0.25, "speculative": 0.15}
REPORT_FILE = "validation_report.md"
TABLE_FILES = {"headline": "headline.csv", "errors": "errors_by_regime.csv",
               "points": "points.csv", "speculative": "speculative.csv"}
#: The error columns of ``points`` and the models they judge.
ERROR_COLUMNS = {"ideal": "err_ideal", "overhead_only": "err_overhead",
                 "standard_ops": "err_standard_ops", "one_eta": "err_one_eta",
                 "calibrated": "err_calibrated"}
REGIME = ["phase_group", "bound", "cache"]


@dataclass
class Report:
    """What :func:`validate` found: DataFrames for the app, the summary of the headline, and
    where the inputs came from and the outputs went."""

    points: pd.DataFrame          # one row per point: measured, predictions, errors, split
    flops: pd.DataFrame           # FlopCounterMode vs analytic, per point
    bytes: pd.DataFrame           # KV and parameter bytes, per point
    errors: pd.DataFrame          # |rel error| by regime (held-out points)
    errors_all: pd.DataFrame      # same over every point
    leave_one_model_out: pd.DataFrame
    fit: Fit
    speculative: pd.DataFrame | None
    summary: dict
    measurements: pd.DataFrame    # the checked measurement rows
    calibration: HardwareSpec
    terms: Terms | None = field(default=None, repr=False)   # the pricing inputs per point
    sources: dict = field(default_factory=dict)   # measurements, hardware, speculative, fitted
    out_dir: Path | None = None
    markdown: Path | None = None
    figures: dict[str, Path] = field(default_factory=dict)

    @property
    def exact_checks_pass(self) -> bool:
        return bool(self.flops["exact"].all() and self.bytes["kv_exact"].all()
                    and self.bytes["param_exact"].all())


def assess(df, hw: HardwareSpec, flops, nbytes, speculative=None) -> Report:
    """Everything but the exact checks and the files: the fit, the per-point predictions, the
    error tables, the leave-one-model-out refits, the speculative table and the summary.
    ``df``: checked measurements (:func:`costmodel.validation.io.read_measurements`); ``flops``
    / ``nbytes``: the exact checks' tables; ``speculative``: the checked speculative CSV
    (:func:`costmodel.validation.speculative_io.read_speculative`) or None."""
    df = df.reset_index(drop=True)
    T = terms_of(df, hw)
    f = fit(df, hw, terms=T)
    t = df[TIME_COLUMN].to_numpy(float)
    test = f.split.to_numpy() == "test"
    in_sample = not test.any()
    train = ~test
    ideal = predict_terms(T, IDEAL)
    overhead_only = predict_terms(T, IDEAL._replace(kernel_overhead=hw.kernel_overhead))
    calibrated = predict_terms(T, f.params)
    T_std = terms_of(df, hw, attention="standard", kv_update="inplace")
    standard_ops = predict_terms(T_std, least_squares(T_std.take(train), t[train]))
    one = T.without_split()
    one_eta = predict_terms(one, least_squares(one.take(train), t[train], split=False))
    points = df[["point_id", "model", "phase", "cache", "batch", "new_tokens", "cached_tokens",
                 TIME_COLUMN, "context"]].copy()
    points["phase_group"] = [MEASURED_PHASES[p][0] for p in df["phase"]]   # the phase itself
    points["bound"] = T.bounds
    points["kernels"] = T.kernels
    for label, pred in (("ideal", ideal), ("overhead", overhead_only),
                        ("standard_ops", standard_ops), ("one_eta", one_eta),
                        ("calibrated", calibrated)):
        points[f"pred_{label}_s"] = pred
    for label, pred in (("ideal", ideal), ("overhead", overhead_only),
                        ("standard_ops", standard_ops), ("one_eta", one_eta),
                        ("calibrated", calibrated)):
        points[f"err_{label}"] = pred / t - 1
    points["split"] = f.split.to_numpy()
    held = points[points["split"] == "test"] if not in_sample else points
    errors = error_table(held, ERROR_COLUMNS, REGIME)
    errors_all = error_table(points, ERROR_COLUMNS, REGIME)

    lomo = []
    models = list(dict.fromkeys(points["model"]))
    if len(models) > 1:
        for m in models:
            hold = (points["model"] == m).to_numpy()
            q = least_squares(T.take(~hold), t[~hold])
            e = np.abs(predict_terms(T.take(hold), q) / t[hold] - 1)
            lomo.append({"held_out_model": m, "n": int(hold.sum()), "eta_c": q.eta_c,
                         "eta_c_skinny": q.eta_c_skinny, "eta_m": q.eta_m,
                         "eta_m_elementwise": q.eta_m_elementwise,
                         "kernel_overhead_us": 1e6 * q.kernel_overhead,
                         "median": float(np.median(e)), "p90": float(np.quantile(e, 0.9))})

    spec_df = None
    if speculative is not None:
        spec_df = speculative_table(*speculative, f.hardware(), str(df["dtype"].iloc[0]))

    overall = errors[errors["phase_group"] == "all"].iloc[0]
    summary = {
        "points": len(df), "test_points": int(test.sum()), "in_sample": in_sample,
        "flops_exact": int(flops["exact"].sum()), "kv_exact": int(nbytes["kv_exact"].sum()),
        "param_exact": int(nbytes["param_exact"].sum()),
        "calibrated_median": float(overall["calibrated_median"]),
        "calibrated_p90": float(overall["calibrated_p90"]),
        "ideal_median": float(overall["ideal_median"]), "ideal_p90": float(overall["ideal_p90"]),
        "overhead_only_median": float(overall["overhead_only_median"]),
        "fit": f.to_dict(), "targets": dict(TARGETS),
    }
    summary["latency_target_met"] = (summary["calibrated_median"] <= TARGETS["median"]
                                     and summary["calibrated_p90"] <= TARGETS["p90"])
    if spec_df is not None and not spec_df.empty:
        best = spec_df.loc[spec_df["improvement_measured"].idxmax()]
        summary["speculative_best_gamma"] = int(best["gamma"])
        summary["speculative_pred_best_gamma"] = int(
            spec_df.loc[spec_df["improvement_pred"].idxmax(), "gamma"])
        summary["speculative_measured"] = float(best["improvement_measured"])
        summary["speculative_predicted"] = float(best["improvement_pred"])
        summary["speculative_rel_error"] = float(best["rel_error"])
        summary["speculative_target_met"] = abs(best["rel_error"]) <= TARGETS["speculative"]
    return Report(points, flops, nbytes, errors, errors_all, pd.DataFrame(lomo), f, spec_df,
                  summary, df, hw, T)


def output_files(out: Path, speculative: bool, figures: bool) -> dict[str, Path]:
    """Every file :func:`validate` writes into ``out``: ``markdown``, ``table:<key>`` and
    ``figure:<key>`` → path."""
    files = {"markdown": out / REPORT_FILE}
    files.update({f"table:{key}": out / name for key, name in TABLE_FILES.items()
                  if key != "speculative" or speculative})
    if figures:
        files.update({f"figure:{key}": out / name for key, name in FIGURE_FILES.items()
                      if key != "speculative" or speculative})
    return files


def validate(measurements_csv, hardware_json, out_dir: str | Path | None = None,
             speculative_csv: str | Path | None = None, figures: bool = True,
             fitted_hardware_json: str | Path | None = None,
             files: OutputSet | None = None) -> Report:
    """Run every check on a measurement CSV and a calibration JSON; with ``out_dir``, write
    the report there (``validation_report.md``, ``headline.csv``, ``errors_by_regime.csv``,
    ``points.csv``, ``speculative.csv`` and the PNGs) and, with ``fitted_hardware_json``, the
    fitted machine (``Fit.hardware()``) — all of them or none: a failure leaves every file the
    user had as it was, and a destination that cannot be written fails before any work.
    ``speculative_csv`` defaults to ``<measurements stem>_speculative.csv`` when it exists.

    ``measurements_csv`` may be a DataFrame of measurement rows (its ``attrs["source"]``
    names it in the report) and ``hardware_json`` a HardwareSpec (``extra["source"]`` or its
    name); ``files``: an :class:`~costmodel.files.OutputSet` of a larger command to write into
    (committed with it) instead of one of its own.
    """
    df = read_measurements(measurements_csv, checks=True)
    hw = read_hardware(hardware_json, df["dtype"].astype(str))
    given = speculative_csv is not None
    frame = isinstance(measurements_csv, pd.DataFrame)
    if speculative_csv is None and not frame:
        cand = speculative_path(measurements_csv)
        speculative_csv = cand if cand.is_file() else None
    spec = read_speculative(speculative_csv) if speculative_csv is not None else None
    out = Path(out_dir) if out_dir is not None else None
    m_source = measurements_csv.attrs.get("source", "measurements") if frame \
        else Path(measurements_csv)
    h_source = (hw.extra or {}).get("source", hw.name) if isinstance(hardware_json, HardwareSpec) \
        else Path(hardware_json)
    with (nullcontext(files) if files is not None else OutputSet()) as files:
        paths = output_files(out, spec is not None, figures) if out is not None else {}
        if fitted_hardware_json is not None:
            paths["fitted"] = Path(fitted_hardware_json)
        for path in paths.values():
            files.write_bytes(path, b"")              # every destination checked up front
        flops, nbytes = check_flops(df, hw), check_bytes(df)
        report = assess(df, hw, flops, nbytes, spec)
        report.sources = {"measurements": m_source, "hardware": h_source,
                          "speculative": speculative_csv,
                          "speculative_given": given, "fitted": fitted_hardware_json}
        if out is not None:
            report.out_dir, report.markdown = out, paths["markdown"]
            blobs = {key: figure_png(key, report) for key in FIGURE_FILES
                     if f"figure:{key}" in paths}
            report.figures = {key: paths[f"figure:{key}"] for key in blobs}
            tables = {"headline": pd.DataFrame(headline_rows(report.summary),
                                               columns=["check", "result", "target", "met"]),
                      "errors": report.errors, "points": report.points,
                      "speculative": report.speculative}
            text = render_markdown(report)
            for key, blob in blobs.items():
                files.write_bytes(paths[f"figure:{key}"], blob)
            for key in TABLE_FILES:
                if f"table:{key}" in paths:
                    files.write_text(paths[f"table:{key}"], tables[key].to_csv(index=False))
            files.write_text(paths["markdown"], text)
        if fitted_hardware_json is not None:
            files.write_text(paths["fitted"], to_json(report.fit.hardware().to_dict()))
    return report


__all__ = ["ERROR_COLUMNS", "REGIME", "REPORT_FILE", "Report", "TABLE_FILES", "TARGETS",
           "assess", "output_files", "validate"]
