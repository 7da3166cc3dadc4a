r"""Hold the predictions against the published GPU measurements: price every row with the ideal
roofline, the default engine profiles and the fitted ones, judge the fit leave-one-source-out,
derive the 80 % bands and their coverage, and write the report — every file of it, or none.

    report = validate_published("data/published/measurements.csv",
                                "data/validation/published", save_engines=True)
    report.summary            # the headline numbers
    report.errors             # median / p90 |relative error| by regime, side by side

Errors are on the time a figure implies (:mod:`costmodel.validation.published`): |relative
error| = |predicted time / measured time − 1|. *ideal*: the datasheet roofline (every η = 1, no
overhead, textbook attention); *default*: the engine class's starting profile
(``costmodel/data/engine_defaults.csv``, REFERENCES §5–6); *fitted*: the profiles fitted on
every row (in sample); *loso*: each source priced by profiles fitted on the other sources only
(:mod:`costmodel.validation.profiles`) — the figure the targets are judged on.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tabulate import tabulate

from costmodel.files import OutputSet
from costmodel.lazy import deferred
from costmodel.plots import parity_axes
from costmodel.presets import engine_defaults, engine_presets
from costmodel.specs import EngineProfile
from costmodel.validation.profiles import (
    BAND_QUANTILES,
    CLASS_SPREAD,
    MIN_BAND_ROWS,
    PARAMS,
    Band,
    ProfileFit,
    bands_csv_text,
    bands_for,
    covered,
    engines_csv_text,
    fit_profiles,
)
from costmodel.validation.published import (
    ENGINE_CLASSES,
    METRIC_UNITS,
    PUBLISHED_CSV,
    PublishedSet,
    Request,
    read_published,
)
from costmodel.workload import REGIMES

pd = deferred("pandas")
mfigure = deferred("matplotlib.figure")

#: What the validation aims for (issue 13): leave-one-source-out |relative error| and band
#: coverage; the quantized and TP ≥ 2 rows are held to the same budgets.
TARGETS = {"median": 0.15, "p90": 0.35, "coverage": (0.70, 0.90)}
REPORT_FILE = "published_report.md"
TABLE_FILES = {"headline": "headline.csv", "points": "points.csv",
               "errors": "errors_by_regime.csv", "subsets": "errors_by_subset.csv",
               "sources": "loso_by_source.csv", "profiles": "profiles.csv",
               "bands": "bands.csv"}
FIGURE_FILE = "predicted_vs_measured.png"
#: The predictions judged side by side (label → column suffix).
MODELS = ("ideal", "default", "fitted", "loso")
CLASS_COLORS = {"tuned": "tab:blue", "llama.cpp": "tab:green", "eager": "tab:red"}
#: Where ``--save-engines`` writes: the package's own preset tables.
DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass
class PublishedReport:
    """What :func:`assess_published` found (DataFrames for the app and the report)."""

    points: pd.DataFrame          # one row per measurement: measured, predictions, ratios, bands
    errors: pd.DataFrame          # by regime (and all): n, <model>_median, <model>_p90
    subsets: pd.DataFrame         # quantized (int4, int8, fp8), TP ≥ 2, PP: LOSO vs budgets
    sources: pd.DataFrame         # per held-out source: LOSO error, held-out coverage
    profiles: pd.DataFrame        # per class and parameter: default, fitted
    bands: pd.DataFrame           # per class and regime: the 80 % band and its basis
    summary: dict
    fit: ProfileFit
    band_table: dict[str, dict[str, Band]]
    left_out: dict[str, str]
    source_csv: Path
    out_dir: Path | None = None
    written: list[Path] = field(default_factory=list)


def pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) \
        else f"{100 * x:.1f} %"


def _errors(df, column: str) -> tuple[float, float]:
    e = (df[column] - 1).abs()
    return float(e.median()), float(e.quantile(0.9))


def _weight_kind(bytes_per_weight: float, weights: str) -> str:
    if "fp8" in weights:
        return "fp8"
    if bytes_per_weight < 1:
        return "int4"
    if bytes_per_weight < 2:
        return "int8"
    return "16-bit"


# --------------------------------------------------------------------------- the assessment


def loso_predictions(requests: list[Request], progress: Callable | None = None,
                     iterations: int = 40):
    """Leave one source out: per source, the profiles fitted on the other sources and the
    held-out rows priced with them. Returns (predicted values, the fits by source)."""
    sources = list(dict.fromkeys(r.source for r in requests))
    pred = np.zeros(len(requests))
    fits = {}
    for k, s in enumerate(sources):
        train = [r for r in requests if r.source != s]
        fits[s] = fit_profiles(train, iterations=iterations)
        for i, r in enumerate(requests):
            if r.source == s:
                pred[i] = r.predict(fits[s].profiles[r.engine_class])
        if progress is not None:
            progress(k + 1, len(sources), s)
    return pred, fits


def assess_published(published: PublishedSet, progress: Callable | None = None,
                     iterations: int = 40) -> PublishedReport:
    """Price, fit, judge (see the module docstring); ``iterations`` caps each least-squares
    search (:func:`~costmodel.validation.profiles.levenberg_marquardt`)."""
    R = published.requests
    defaults = engine_defaults()
    fit = fit_profiles(R, iterations=iterations)
    loso, fits = loso_predictions(R, progress, iterations)
    rows = []
    for i, r in enumerate(R):
        preds = {"ideal": r.predict(defaults["ideal"]),
                 "default": r.predict(defaults[r.engine_class]),
                 "fitted": r.predict(fit.profiles[r.engine_class]), "loso": loso[i]}
        rec = {"id": r.id, "source": r.source, "engine_class": r.engine_class,
               "engine": r.labels.get("engine", ""), "model": r.model,
               "hardware": r.hardware, "gpu": r.labels.get("gpu", ""),
               "weights": r.weights.label, "bytes_per_weight": r.weights.bytes,
               "weight_kind": _weight_kind(r.weights.bytes, r.weights.label),
               "kv_bytes": r.kv_bytes, "tp": r.tp, "pp": r.pp, "batch": r.batch,
               "input_tokens": r.input_tokens, "output_tokens": r.output_tokens,
               "metric": r.metric, "unit": METRIC_UNITS[r.metric][0], "kind": r.kind,
               "regime": r.regime, "measured": r.value}
        for m in MODELS:
            rec[f"pred_{m}"] = preds[m]
        for m in MODELS:
            rec[f"ratio_{m}"] = r.time_ratio(preds[m])
        rows.append(rec)
    points = pd.DataFrame(rows)

    # bands from the LOSO residuals; coverage in sample and with the band itself held out
    classes, regimes = points["engine_class"].to_numpy(), points["regime"].to_numpy()
    ratios = points["ratio_loso"].to_numpy()
    band_table = bands_for(classes, regimes, ratios)
    lows, highs, bases, inside, inside_held = [], [], [], [], []
    held_bands = {}
    for s in dict.fromkeys(points["source"]):
        other = (points["source"] != s).to_numpy()
        held_bands[s] = bands_for(classes[other], regimes[other], ratios[other])
    for _, p in points.iterrows():
        b = band_table[p["engine_class"]][p["regime"]]
        hb = held_bands[p["source"]].get(p["engine_class"])
        hb = hb[p["regime"]] if hb is not None else None
        lows.append(b.low)
        highs.append(b.high)
        bases.append(b.basis)
        inside.append(covered(p["ratio_loso"], b))
        inside_held.append(covered(p["ratio_loso"], hb) if hb is not None else False)
    points["band_low"], points["band_high"], points["band_basis"] = lows, highs, bases
    points["in_band"], points["in_band_heldout"] = inside, inside_held

    errors = _error_table(points, "regime", list(REGIMES))
    subsets = _subset_table(points)
    sources = _source_table(points, fits, fit)
    profiles = _profile_table(fit, defaults)
    bands = pd.DataFrame([{"engine_class": c, "regime": reg, "low": b.low, "high": b.high,
                           "n": b.n, "basis": b.basis}
                          for c, by in band_table.items() for reg, b in by.items()])
    med, p90 = _errors(points, "ratio_loso")
    imed, ip90 = _errors(points, "ratio_ideal")
    dmed, dp90 = _errors(points, "ratio_default")
    fmed, fp90 = _errors(points, "ratio_fitted")
    lo_t, hi_t = TARGETS["coverage"]
    cov, cov_held = float(points["in_band"].mean()), float(points["in_band_heldout"].mean())
    summary = {
        "rows": len(points), "sources": int(points["source"].nunique()),
        "left_out": len(published.left_out),
        "loso_median": med, "loso_p90": p90, "ideal_median": imed, "ideal_p90": ip90,
        "default_median": dmed, "default_p90": dp90, "fitted_median": fmed,
        "fitted_p90": fp90,
        "ideal_median_ratio": float(points["ratio_ideal"].median()),
        "coverage": cov, "coverage_heldout": cov_held,
        "median_met": med <= TARGETS["median"], "p90_met": p90 <= TARGETS["p90"],
        "coverage_met": lo_t <= cov_held <= hi_t,
        "targets": {"median": TARGETS["median"], "p90": TARGETS["p90"],
                    "coverage": list(TARGETS["coverage"])},
    }
    return PublishedReport(points, errors, subsets, sources, profiles, bands, summary, fit,
                           band_table, dict(published.left_out), published.path)


def _error_table(points, by: str, order: list[str]):
    out = []
    groups = [(k, points[points[by] == k]) for k in order if (points[by] == k).any()]
    for key, g in groups + [("all", points)]:
        rec = {by: key, "n": len(g)}
        for m in MODELS:
            rec[f"{m}_median"], rec[f"{m}_p90"] = _errors(g, f"ratio_{m}")
        rec["loso_median_ratio"] = float(g["ratio_loso"].median())
        rec["coverage"] = float(g["in_band"].mean())
        rec["coverage_heldout"] = float(g["in_band_heldout"].mean())
        out.append(rec)
    return pd.DataFrame(out)


SUBSETS = {
    "quantized (int4, int8, fp8)": lambda p: p["weight_kind"] != "16-bit",
    "int4": lambda p: p["weight_kind"] == "int4",
    "int8 (weight-only)": lambda p: p["weight_kind"] == "int8",
    "fp8": lambda p: p["weight_kind"] == "fp8",
    "TP ≥ 2": lambda p: p["tp"] >= 2,
    "PP = 2 (one micro-batch)": lambda p: p["pp"] >= 2,
    "16-bit, TP = 1": lambda p: (p["weight_kind"] == "16-bit") & (p["tp"] == 1),
}


def _subset_table(points):
    """The issue's subsets (overlapping): LOSO error against the budgets, by how much they miss,
    which way the predictions lean and where the largest misses come from."""
    out = []
    for name, sel in SUBSETS.items():
        g = points[sel(points)]
        if g.empty:
            continue
        med, p90 = _errors(g, "ratio_loso")
        imed, ip90 = _errors(g, "ratio_ideal")
        e = (g["ratio_loso"] - 1).abs()
        worst = g.assign(e=e).sort_values("e", ascending=False)
        top = worst.head(max(1, math.ceil(0.1 * len(g))))
        out.append({"subset": name, "n": len(g), "ideal_median": imed, "ideal_p90": ip90,
                    "loso_median": med, "loso_p90": p90,
                    "median_miss": max(0.0, med - TARGETS["median"]),
                    "p90_miss": max(0.0, p90 - TARGETS["p90"]),
                    "loso_median_ratio": float(g["ratio_loso"].median()),
                    "worst_sources": ", ".join(f"{s} ({n})" for s, n in
                                               top["source"].value_counts().items()),
                    "coverage_heldout": float(g["in_band_heldout"].mean())})
    return pd.DataFrame(out)


def _largest_shift(without: EngineProfile, every: EngineProfile) -> str:
    """The fitted parameter that moves most (in log) when a source is held out, as text."""
    name = max(PARAMS, key=lambda n: abs(math.log(getattr(without, n) / getattr(every, n))))
    scale, unit = PARAM_UNITS[name]
    unit = f" {unit}" if unit else ""
    text = (f"{name} {getattr(without, name) * scale:.3g}{unit} without it vs "
            f"{getattr(every, name) * scale:.3g}{unit} with it")
    if without.attention != every.attention:
        text += f"; attention {without.attention} vs {every.attention}"
    return text


def _source_table(points, fits: dict[str, ProfileFit], fit: ProfileFit):
    out = []
    for s, g in points.groupby("source", sort=False):
        med, p90 = _errors(g, "ratio_loso")
        f = fits[s]
        classes = sorted(set(g["engine_class"]))
        out.append({"held_out": s, "n": len(g), "classes": ", ".join(classes),
                    "training_rows": {c: f.rows[c] for c in classes},
                    "loso_median": med, "loso_p90": p90,
                    "loso_median_ratio": float(g["ratio_loso"].median()),
                    "coverage_heldout": float(g["in_band_heldout"].mean()),
                    "loss_scale": math.nan if f.scale is None else f.scale,
                    "largest_shift": "; ".join(
                        f"{c}: " + _largest_shift(f.profiles[c], fit.profiles[c])
                        for c in classes)})
    df = pd.DataFrame(out)
    df["training_rows"] = df["training_rows"].map(
        lambda d: ", ".join(f"{c}: {n}" for c, n in d.items()))
    return df


PARAM_UNITS = {"eta_c": (1.0, ""), "eta_c_8bit": (1.0, ""), "eta_m": (1.0, ""),
               "eta_m_quant": (1.0, ""), "layer_overhead": (1e6, "µs"),
               "comm_latency": (1e6, "µs")}


def _sig(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def _profile_table(fit: ProfileFit, defaults):
    """Per class and parameter: the default, the fitted and the pooled value (text, 4
    significant digits; the overheads in µs)."""
    out = []
    for c in ENGINE_CLASSES:
        p, d = fit.profiles[c], defaults[c]
        for name in PARAMS:
            scale, unit = PARAM_UNITS[name]
            dv = getattr(d, name)
            out.append({"engine_class": c, "parameter": name, "unit": unit,
                        "default": _sig(None if dv is None else dv * scale),
                        "fitted": _sig(getattr(p, name) * scale),
                        "pooled": _sig(fit.pooled[name] * scale)})
        out.append({"engine_class": c, "parameter": "attention", "unit": "",
                    "default": d.attention, "fitted": p.attention,
                    "pooled": fit.pooled_attention or "—"})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- markdown


def fmt_table(df, floatfmt: str = ".3g") -> str:
    df = df.copy()
    for col in df.columns:
        if pd.api.types.is_bool_dtype(df[col]):
            df[col] = df[col].map({True: "yes", False: "no"})
        elif pd.api.types.is_integer_dtype(df[col]):
            df[col] = df[col].astype(str)
    return tabulate(df, headers="keys", tablefmt="github", showindex=False, floatfmt=floatfmt)


def headline_rows(s: dict) -> list[list[str]]:
    """The headline table (check, result, target, met) from a report's summary."""
    t = s["targets"]
    lo, hi = t["coverage"]
    return [
        ["leave-one-source-out median |err|", pct(s["loso_median"]),
         f"≤ {100 * t['median']:g} %", "yes" if s["median_met"] else "NO"],
        ["leave-one-source-out p90 |err|", pct(s["loso_p90"]), f"≤ {100 * t['p90']:g} %",
         "yes" if s["p90_met"] else "NO"],
        ["ideal roofline, same rows: median / p90 |err|",
         f"{pct(s['ideal_median'])} / {pct(s['ideal_p90'])}", "(reported)", "—"],
        ["default profiles: median / p90 |err|",
         f"{pct(s['default_median'])} / {pct(s['default_p90'])}", "(reported)", "—"],
        ["fitted profiles, in sample: median / p90 |err|",
         f"{pct(s['fitted_median'])} / {pct(s['fitted_p90'])}", "(reported)", "—"],
        ["80 % band coverage, band held out with its source", pct(s["coverage_heldout"]),
         f"{100 * lo:g}–{100 * hi:g} %", "yes" if s["coverage_met"] else "NO"],
        ["80 % band coverage, bands from every source", pct(s["coverage"]), "(reported)",
         "—"],
    ]


def lean_text(ratio: float) -> str:
    """Which way a median ratio (predicted / measured time) leans, in words."""
    if abs(ratio - 1) < 0.005:
        return "the predicted times are centred at the median (ratio 1.00)"
    if ratio < 1:
        return f"the predicted times are {1 / ratio:.2f}× too short at the median (optimistic)"
    return f"the predicted times are {ratio:.2f}× too long at the median (pessimistic)"


def _subset_lines(r: PublishedReport) -> list[str]:
    L = []
    t = TARGETS
    for _, s in r.subsets.iterrows():
        if s["median_miss"] <= 0 and s["p90_miss"] <= 0:
            L.append(f"- **{s['subset']}** ({s['n']} rows): within the budgets (median "
                     f"{pct(s['loso_median'])}, p90 {pct(s['loso_p90'])}).")
            continue
        way = lean_text(s["loso_median_ratio"])
        misses = []
        if s["median_miss"] > 0:
            misses.append(f"median {pct(s['loso_median'])} misses ≤ {100 * t['median']:g} % by "
                          f"{100 * s['median_miss']:.1f} points")
        if s["p90_miss"] > 0:
            misses.append(f"p90 {pct(s['loso_p90'])} misses ≤ {100 * t['p90']:g} % by "
                          f"{100 * s['p90_miss']:.1f} points")
        L.append(f"- **{s['subset']}** ({s['n']} rows): {'; '.join(misses)}; {way}; the "
                 f"largest tenth of its errors come from {s['worst_sources']} (the ideal "
                 f"roofline: median {pct(s['ideal_median'])}, p90 {pct(s['ideal_p90'])}).")
    return L


def _why(r: PublishedReport) -> list[str]:
    """Why the largest held-out misses happen, from the per-source table (computed)."""
    src = r.sources.sort_values("loso_p90", ascending=False)
    L = []
    for _, s in src.iterrows():
        L.append(f"- held out **{s['held_out']}** ({s['n']} rows; training rows of its "
                 f"class(es): {s['training_rows']}): median {pct(s['loso_median'])}, p90 "
                 f"{pct(s['loso_p90'])}; {lean_text(s['loso_median_ratio'])}; the parameter "
                 f"that moves most without it — {s['largest_shift']}.")
    return L


def render_markdown(r: PublishedReport) -> str:
    """The report of a :class:`PublishedReport` as markdown (every number from the data)."""
    s = r.summary
    p = r.points
    L = ["# costmodel against published GPU measurements\n"]
    L.append(f"Rows: **{s['rows']}** fully specified measurements from **{s['sources']}** "
             f"public sources in `{r.source_csv}` (each with its URL, table and date; "
             "`data/published/sources.md` describes the sources)"
             + (f"; {s['left_out']} row(s) left out: "
                + "; ".join(f"{k} — {v}" for k, v in r.left_out.items()) if r.left_out
                else "") + ". Rerun: `costmodel validate --published --out "
             f"{r.out_dir if r.out_dir is not None else 'DIR'} --save-engines`.\n")
    L.append("Every row is priced through `cm.generation` (TTFT = the prefill pass; TPOT = the "
             "mean decode step of the closed-form sum; tokens/s = B·g / total time, per GPU "
             "where the source divides; end-to-end = total time), on the hardware preset of its "
             "GPU (datasheet peaks; a power cap or clock note stays a note), with its weight "
             "format, KV width, TP, batch and lengths. |relative error| = |predicted time / "
             "measured time − 1|, on the time a figure implies (a rate r of n tokens implies "
             "n / r seconds).\n")
    L.append("## Headline\n")
    L.append(tabulate(headline_rows(s), headers=["check", "result", "target", "met"],
                      tablefmt="github"))
    L.append("")
    L.append(f"At the median row the ideal roofline's time is {s['ideal_median_ratio']:.2f}× "
             "the measured one.\n")
    L.append("## Error by regime\n")
    L.append("Regime of the pass a metric is made of (`costmodel.workload.regime`, first that "
             "applies: quantized weights, TP ≥ 2, prefill, batch-1 decode, batched decode). "
             "*ideal*, *default*, *fitted* (in sample) and *loso* (each source priced by "
             "profiles fitted on the others) side by side; *coverage*: share of the LOSO "
             "predictions inside their 80 % band (bands from every source / with the band "
             "computed without the row's source).\n")
    L.append(fmt_table(r.errors))
    L.append("\n## Quantized and TP ≥ 2 rows against the same budgets\n")
    L.append(fmt_table(r.subsets.drop(columns=["worst_sources"])))
    L.append("")
    L += _subset_lines(r)
    L.append("\n## Leave one source out\n")
    L.append(fmt_table(r.sources.drop(columns=["largest_shift"])))
    L.append("\nWhy the held-out errors are what they are (largest first):\n")
    L += _why(r)
    L.append("\n## Fitted engine profiles\n")
    loss = (f"then again with the Cauchy loss Σ s² ln(1 + (r / s)²) at s = {r.fit.scale:.3g}, "
            "the median |r| of the least-squares fit (far-off rows weigh less; each "
            "leave-one-source-out fit takes its own, the *loss_scale* column above), "
            if r.fit.scale is not None else "")
    L.append("Least squares on r = log(predicted time / measured time), every candidate an "
             "`EngineProfile` priced by `cm.generation(..., engine=profile)`: first one pooled "
             "profile on every row, then each class on its own rows with a pull toward the "
             f"pooled values (a factor e^{CLASS_SPREAD:.2f} = {math.exp(CLASS_SPREAD):g}); "
             f"{loss}each class's attention (fused or eager) is the one that fits its rows "
             "better. Written to `costmodel/data/engines.csv` (*ideal* stays ideal); *default* "
             "is `costmodel/data/engine_defaults.csv`.\n")
    L.append(fmt_table(r.profiles))
    L.append("\n## 80 % bands\n")
    L.append(f"The split-conformal {100 * BAND_QUANTILES[0]:g} % and "
             f"{100 * BAND_QUANTILES[1]:g} % order statistics (the ⌊(n + 1) · "
             f"{BAND_QUANTILES[0]:g}⌋-th and ⌈(n + 1) · {BAND_QUANTILES[1]:g}⌉-th smallest of n) "
             "of measured / predicted time over the leave-one-source-out predictions, per "
             f"class and regime with at least {MIN_BAND_ROWS} rows, else the class's *all* band "
             "(the *basis* column names which, *n* how many rows it rests on). Written to "
             "`costmodel/data/engine_bands.csv`; `Analysis.time_interval` multiplies a "
             "predicted time by them.\n")
    L.append(fmt_table(r.bands))
    L.append("\n## Every row\n")
    cols = ["id", "source", "engine_class", "model", "hardware", "weights", "tp", "pp",
            "batch", "input_tokens", "output_tokens", "metric", "regime", "measured",
            "pred_ideal", "pred_default", "pred_fitted", "pred_loso", "ratio_loso",
            "in_band_heldout"]
    L.append(fmt_table(p[cols], ".4g"))
    L.append(f"\n![predicted vs measured]({FIGURE_FILE})\n")
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------- figure


def implied_seconds(points, column: str):
    """The time each row's figure implies (seconds): a time as is, a rate r as 1 / r per token
    (per GPU where the metric is), so measured and predicted stand on one axis."""
    scale = points["metric"].map(lambda m: METRIC_UNITS[m][1]).to_numpy()
    v = points[column].to_numpy(float)
    rate = points["kind"].isin(["throughput", "decode_rate"]).to_numpy()
    return np.where(rate, 1.0 / v, v * scale)


def fig_scatter(points):
    """Measured vs predicted time (log–log) by engine class: the ideal roofline, the default
    profiles and the fitted profiles judged leave-one-source-out."""
    fig = mfigure.Figure(figsize=(14, 4.8))
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    meas = implied_seconds(points, "measured")
    panels = (("pred_ideal", "ideal roofline"), ("pred_default", "default profiles"),
              ("pred_loso", "fitted, leave one source out"))
    preds = {col: implied_seconds(points, col) for col, _ in panels}
    lo = min(meas.min(), *(v.min() for v in preds.values())) / 1.5
    hi = max(meas.max(), *(v.max() for v in preds.values())) * 1.5
    for ax, (col, title) in zip(axes, panels, strict=True):
        for c in ENGINE_CLASSES:
            sel = (points["engine_class"] == c).to_numpy()
            if sel.any():
                ax.scatter(meas[sel], preds[col][sel], s=20, c=CLASS_COLORS.get(c, "k"),
                           alpha=0.8, label=f"{c} ({int(sel.sum())})")
        parity_axes(ax, lo, hi, 1.35, "measured seconds (a rate as seconds per token)", title)
    axes[0].set_ylabel("predicted seconds")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("Published GPU measurements: predicted vs measured (log–log)")
    return fig


def figure_png(points) -> bytes:
    buf = io.BytesIO()
    fig_scatter(points).savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


# --------------------------------------------------------------------------- files


def tables(r: PublishedReport) -> dict:
    return {"headline": pd.DataFrame(headline_rows(r.summary),
                                     columns=["check", "result", "target", "met"]),
            "points": r.points, "errors": r.errors, "subsets": r.subsets,
            "sources": r.sources, "profiles": r.profiles, "bands": r.bands}


def engines_source(r: PublishedReport, c: str) -> str:
    return (f"fitted by costmodel validate --published on {r.fit.rows[c]} rows of "
            f"{PUBLISHED_CSV.as_posix()}")


def validate_published(measurements_csv: str | Path = PUBLISHED_CSV,
                       out_dir: str | Path | None = None, save_engines: bool = False,
                       figures: bool = True, progress: Callable | None = None,
                       iterations: int = 40) -> PublishedReport:
    """Read, fit, judge and (with ``out_dir``) write the report, the tables and the figure;
    with ``save_engines`` also ``costmodel/data/engines.csv`` and ``engine_bands.csv`` — all of
    them or none: a destination that cannot be written fails before the fit."""
    published = read_published(measurements_csv)
    out = Path(out_dir) if out_dir is not None else None
    with OutputSet() as files:
        paths = {}
        if out is not None:
            paths["markdown"] = out / REPORT_FILE
            paths.update({f"table:{k}": out / v for k, v in TABLE_FILES.items()})
            if figures:
                paths["figure"] = out / FIGURE_FILE
        if save_engines:
            paths["engines"] = DATA_DIR / "engines.csv"
            paths["bands"] = DATA_DIR / "engine_bands.csv"
        for path in paths.values():
            files.write_bytes(path, b"")          # every destination checked up front
        r = assess_published(published, progress, iterations)
        r.out_dir = out
        if out is not None:
            files.write_text(paths["markdown"], render_markdown(r))
            for key, df in tables(r).items():
                files.write_text(paths[f"table:{key}"], df.to_csv(index=False))
            if figures:
                files.write_bytes(paths["figure"], figure_png(r.points))
        if save_engines:
            fitted = {c: p.replace(source=engines_source(r, c),
                                   notes=_class_notes(r, c))
                      for c, p in r.fit.profiles.items()}
            files.write_text(paths["engines"], engines_csv_text(fitted))
            files.write_text(paths["bands"], bands_csv_text(
                r.band_table, "costmodel validate --published: split-conformal 10 %/90 % order "
                "statistics of measured/predicted time over the leave-one-source-out predictions"))
        r.written = list(paths.values())
    if save_engines:
        engine_presets.cache_clear()
    return r


def _class_notes(r: PublishedReport, c: str) -> str:
    engines = sorted(set(r.points.loc[r.points["engine_class"] == c, "engine"]))
    base = engine_defaults()[c].notes
    return base + (" Fitted on: " + "; ".join(engines) + "." if engines else "")


__all__ = ["DATA_DIR", "FIGURE_FILE", "MODELS", "PublishedReport", "REPORT_FILE", "SUBSETS",
           "TABLE_FILES", "TARGETS", "assess_published", "fig_scatter", "figure_png",
           "headline_rows", "implied_seconds", "loso_predictions", "render_markdown", "tables",
           "validate_published"]
