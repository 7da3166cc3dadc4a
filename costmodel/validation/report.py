"""The validation report, rendered from a :class:`~costmodel.validation.validate.Report` only:
the markdown (every number in it comes from the measurements, the calibration or the fit — no
fact of one run is written here) and the figures (matplotlib ``Figure`` objects built without
pyplot, so the backend is never switched)."""

from __future__ import annotations

import io
import math

import numpy as np
from tabulate import tabulate

from costmodel.lazy import deferred
from costmodel.params import param_count
from costmodel.plots import parity_axes
from costmodel.roofline import analyze
from costmodel.units import GB
from costmodel.validation.io import TIME_COLUMN, analysis_kwargs, measured_workload, spec_of
from costmodel.validation.speculative import (
    DRAFT_STEP_CALLS,
    GENERATE_STEP_CALLS,
    VERIFY_CALLS,
)

pd = deferred("pandas")
mfigure = deferred("matplotlib.figure")
mticker = deferred("matplotlib.ticker")

#: The figures (key → file name in the output folder).
FIGURE_FILES = {"scatter": "predicted_vs_measured.png", "context": "latency_vs_context.png",
                "speculative": "speculative_speedup.png"}
PHASE_COLORS = {"prefill": "tab:blue", "decode_dynamic": "tab:orange",
                "decode_static": "tab:green", "no_cache": "tab:red"}


# --------------------------------------------------------------------------- text helpers


def pct(x: float | None) -> str:
    """A fraction as a percentage with one decimal ('n/a' when missing)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def fmt_table(df, floatfmt: str = ".3f") -> str:
    """A DataFrame as a GitHub markdown table (integer columns stay integers)."""
    df = df.copy()
    for col in df.columns:
        if pd.api.types.is_integer_dtype(df[col]):
            df[col] = df[col].astype(str)
    return tabulate(df, headers="keys", tablefmt="github", showindex=False, floatfmt=floatfmt)


def _range(values) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:g}" if lo == hi else f"{lo:g}–{hi:g}"


def _listing(values) -> str:
    return ", ".join(str(v) for v in values)


def headline_rows(s: dict) -> list[list[str]]:
    """The headline table (check, result, target, met) from a Report summary."""
    t = s["targets"]
    rows = [
        ["matmul FLOPs (FlopCounterMode = analytic)", f"{s['flops_exact']}/{s['points']} "
         "points exact", "all exact", "yes" if s["flops_exact"] == s["points"] else "NO"],
        ["KV-cache bytes (allocated = formula)", f"{s['kv_exact']}/{s['points']} exact",
         "all exact", "yes" if s["kv_exact"] == s["points"] else "NO"],
        ["parameter bytes (allocated = formula)", f"{s['param_exact']}/{s['points']} exact",
         "all exact", "yes" if s["param_exact"] == s["points"] else "NO"],
        ["calibrated latency, held-out median |err|", pct(s["calibrated_median"]),
         f"≤ {100 * t['median']:g} %", "yes" if s["calibrated_median"] <= t["median"] else "NO"],
        ["calibrated latency, held-out p90 |err|", pct(s["calibrated_p90"]),
         f"≤ {100 * t['p90']:g} %", "yes" if s["calibrated_p90"] <= t["p90"] else "NO"],
        ["ideal roofline, held-out median / p90 |err|",
         f"{pct(s['ideal_median'])} / {pct(s['ideal_p90'])}", "(reported)", "—"],
    ]
    if "speculative_rel_error" in s:
        rows.append([f"speculative improvement at the measured best γ = "
                     f"{s['speculative_best_gamma']} (predicted best γ = "
                     f"{s['speculative_pred_best_gamma']})",
                     f"predicted {s['speculative_predicted']:.2f}× vs measured "
                     f"{s['speculative_measured']:.2f}× ({pct(s['speculative_rel_error'])})",
                     f"within {100 * t['speculative']:g} %",
                     "yes" if s["speculative_target_met"] else "NO"])
    return rows


# --------------------------------------------------------------------------- markdown


def _machine(r) -> list[str]:
    df, hw, src = r.measurements, r.calibration, r.sources
    ex = hw.extra or {}
    threads = _listing(sorted(set(int(x) for x in df["threads"]))) if "threads" in df else "?"
    lines = [f"Machine: **{hw.name}** — {ex.get('device_name', '?')}, {ex.get('cores', '?')} "
             f"cores, calibrated with {ex.get('threads', '?')} thread(s), torch "
             f"{ex.get('torch_version', '?')}. Measurements: `{src.get('measurements')}` "
             f"({len(df)} points, dtype {_listing(sorted(set(df['dtype'].astype(str))))}, "
             f"threads {threads}). Calibration: `{src.get('hardware')}`.\n"]
    cmd = (f"costmodel validate --measurements {src.get('measurements')} --hardware "
           f"{src.get('hardware')} --out {r.out_dir}")
    if src.get("speculative_given"):
        cmd += f" --speculative {src['speculative']}"
    if src.get("fitted") is not None:
        cmd += f" --save-fitted {src['fitted']}"
    lines.append(f"Rerun: `{cmd}`\n")
    clocks = _listing(sorted(set(df["clock"].astype(str)))) if "clock" in df else "wall"
    parts = [f"torch limited to {threads} intra-op thread(s)", f"clock `{clocks}` (`thread` = "
             "CPU time of the measuring thread, robust to other processes taking turns on the "
             "cores; `wall` = elapsed time)"]
    if "rounds" in df:
        parts.append(f"the grid swept {_range(df['rounds'])}× with samples pooled")
    if "repeats" in df:
        parts.append(f"each point the median of {_range(df['repeats'])} samples after warm-up "
                     "(p10/p90 and quartiles in the CSV)")
    lines.append("Timing: " + "; ".join(parts) + ". FLOPs count a multiply-add as 2; GB = 1e9 "
                 "bytes.\n")
    return lines


def _model(r) -> list[str]:
    f, hw, T = r.fit, r.calibration, r.terms
    n_skinny = int(sum(np.sum(row["compute_ideal"] * row["skinny"])
                       > 0.5 * np.sum(row["compute_ideal"]) for row in T.rows))
    L = ["## Calibrated model\n"]
    L.append(
        "t = Σ_op max(F / (η · π), Q / (η' · β)) + N_kernels · t_k over the operators of "
        "`cm.analyze` with the reference model's options (`costmodel.workload."
        "reference_options`: `attention=\"eager\"` for its explicit-matmul attention, "
        "`kv_update` as each row recorded — `\"concat\"` for a dynamic cache rebuilt by "
        "`torch.cat` every step (the reference model before its cache grew in place), "
        "`\"inplace\"` for the growing and the static caches —, `moe_dispatch=\"loop\"` for "
        "experts run one call each, `kv_cache=False` for the no-cache step), priced by "
        "`costmodel.pricing.price`. η = η_c for matmuls and η_c,skinny for *skinny* weight "
        f"matmuls of at most {f.skinny_rows} rows (M of M×K·K×N: B·q for the projections and the "
        f"MLP, the LM head's output positions; in {n_skinny} of the {len(T)} measured passes they "
        "hold most of the ideal compute time); η' = η_m for the matmul and attention operators "
        "and η_m,elementwise for the elementwise and copy passes (norms, activations, "
        "residuals, softmax, scale, mask, K/V copies, cache writes). Five global parameters "
        f"fitted by least squares on log time over {f.n_train} training points (a stable hash "
        "of the point id holds out a third); no per-point, per-model, per-phase or per-cache "
        "parameter. "
        "`costmodel.validation.fit(csv, hw)` returns the fit; `Fit.hardware()` writes it into "
        "the HardwareSpec's efficiency fields (`eta_c`, `eta_c_skinny`, `eta_m`, "
        "`eta_m_elementwise`, `skinny_rows`, `kernel_overhead` = t_k) with the calibrated peaks "
        "and bandwidth kept, so plain `cm.analyze` on it — the CLI, the app, "
        "`costmodel.validation.predict` — gives the *calibrated* column.\n")
    L.append("The eager operators (`kv_layout`, `scale`, `mask_fill`, `out_copy`, the concat "
             "`kv_write`) are bytes and calls the reference's eager PyTorch spends beyond a fused "
             "kernel set; the column *standard_ops* refits the same parameters with "
             "`attention=\"standard\"` and in-place cache writes instead, to show what they are "
             "worth; *one_eta* refits one η_c and one η_m for every operator (no split).\n")
    rows = [[f"π ({d} peak, calibrated)", f"{v / 1e9:.1f} GFLOP/s"]
            for d, v in hw.peak_flops.items()]
    rows += [["β (copy bandwidth, calibrated)", f"{hw.bandwidth / GB:.2f} GB/s"],
             ["per-op call overhead (calibrated" + (", 1-element add)" if "overhead" in
                                                     (hw.extra or {}) else ")"),
              f"{hw.kernel_overhead * 1e6:.2f} µs"],
             [f"η_c (fitted; matmuls of more than {f.skinny_rows} rows)", f"{f.eta_c:.3f}"],
             [f"η_c,skinny (fitted; weight matmuls of ≤ {f.skinny_rows} rows)",
              f"{f.eta_c_skinny:.3f}"],
             ["η_m (fitted; matmul and attention operand streaming)", f"{f.eta_m:.3f}"],
             ["η_m,elementwise (fitted; elementwise and copy passes)",
              f"{f.eta_m_elementwise:.3f}"],
             ["t_k per modelled kernel (fitted)", f"{f.kernel_overhead * 1e6:.2f} µs"],
             ["rms log error (train)", f"{f.rms_log_error:.3f}"]]
    L.append(tabulate(rows, headers=["parameter", "value"], tablefmt="github"))
    L.append("")
    return L


def _errors(r) -> list[str]:
    L = ["## Latency error by regime (held-out points)\n"]
    L.append("|relative error| = |predicted / measured − 1|. *ideal*: the roofline on the "
             "calibrated peaks (η = 1, no overhead); *overhead_only*: ideal + the calibrated "
             "per-op call cost per modelled kernel (nothing fitted); *calibrated*: the fitted "
             "model. Bound = what dominates the ideal roofline.\n")
    if r.summary["in_sample"]:
        L.append("*Too few points to hold any out: the fit and the errors are in-sample.*\n")
    L.append(fmt_table(r.errors))
    L.append("\n### All points (train + held out)\n")
    L.append(fmt_table(r.errors_all))
    if not r.leave_one_model_out.empty:
        L.append("\n### Leave one model out (fit on the other models, judge the held-out one)\n")
        L.append(fmt_table(r.leave_one_model_out))
    return L


def _diagnosis(r) -> list[str]:
    p, f, hw = r.points, r.fit, r.calibration
    L = ["\n### Why the ideal roofline is off, and what limits the calibrated model\n"]
    text = ""
    ratio = float(np.median(p[TIME_COLUMN] / p["pred_ideal_s"]))
    share = float(np.median(p["kernels"] * f.kernel_overhead / p["pred_calibrated_s"]))
    side = "too fast" if ratio >= 1 else "too slow"
    shown = ratio if ratio >= 1 else 1 / ratio
    text += (f"At the median point the ideal roofline is {shown:.1f}× {side}. A pass here is "
             f"a median of {float(np.median(p['kernels'])):.0f} modelled kernels; at the fitted "
             f"t_k = {f.kernel_overhead * 1e6:.2f} µs per kernel (the calibrated bare op call: "
             f"{hw.kernel_overhead * 1e6:.2f} µs) the per-kernel cost is {100 * share:.0f} % of "
             "the calibrated time of the median point — a fixed cost per operator call (Python, "
             "dispatcher, launch) that neither FLOPs nor bytes describe. η_m below 1 says the "
             "operands stream below the copy bandwidth, η_c below 1 that the model's GEMM "
             "shapes do not reach the best square-GEMM rate, and η_c,skinny prices the matmuls "
             "of few rows (decode, verification, the last-position LM head) on their own; the "
             "ideal roofline ignores all of these, and a single η_c cannot express the "
             "skinny ones (column *one_eta*).")
    mm = [m for m in (hw.extra or {}).get("matmul", []) if m.get("kind") == "skinny"]
    peak = max(hw.peak_flops.values())
    if mm:
        rates = ", ".join(f"{m['m']} row{'s' if m['m'] > 1 else ''}: "
                          f"{m['flops_per_s'] / 1e9:.1f} GFLOP/s ({m['flops_per_s'] / peak:.2f} "
                          "of the peak)" for m in sorted(mm, key=lambda m: m["m"]))
        text += f" The calibration's own skinny GEMMs: {rates}."
    L.append(text + "\n")
    spread = None
    df = r.measurements
    if "time_p10_s" in df.columns and "time_p90_s" in df.columns:
        spread = float(((df["time_p90_s"] - df["time_p10_s"]) / df[TIME_COLUMN]).median())
    L.append("What limits the calibrated model: (1) *noise*"
             + (f" — the median point's p10–p90 spread is {100 * spread:.0f} % of its median"
                if spread is not None else "")
             + "; (2) *what the operator list leaves out* — kernel counts are the modelled "
             "operators', not the torch calls the reference makes, and elementwise FLOPs "
             "(softmax's exp over the scores) are priced at the matmul peak; (3) "
             "*shape-dependent efficiency* beyond the skinny/wide split: the calibrated GEMM rate "
             f"rises with the rows, which the two-level η_c approximates with a step at "
             f"{f.skinny_rows} rows.\n")
    L.append("Points (largest calibrated errors first):\n")
    worst = p.assign(abs_err=p["err_calibrated"].abs()).sort_values(
        "abs_err", ascending=False).head(8)
    L.append(fmt_table(worst[["point_id", "split", "bound", TIME_COLUMN, "pred_ideal_s",
                              "pred_calibrated_s", "err_calibrated"]], ".4g"))
    return L


def _exact(r) -> list[str]:
    L = ["\n## Exact checks\n"]
    L.append(f"FLOPs: FlopCounterMode on the reference model (eager attention, meta device) vs "
             f"Σ FLOPs of the matmul and attention operators of `cm.analyze`: "
             f"{int(r.flops['exact'].sum())}/{len(r.flops)} points equal, largest difference "
             f"{int(r.flops['difference'].abs().max())} FLOPs.\n")
    L.append(f"KV cache: allocated bytes (dynamic: Σ k, v of the returned cache = c + q "
             f"positions; static: the preallocated max_len buffers) vs `cm.kv_cache_bytes`: "
             f"{int(r.bytes['kv_exact'].sum())}/{len(r.bytes)} equal. Parameters: Σ nbytes "
             f"of the model's parameters vs `cm.param_count(spec) · bytes`: "
             f"{int(r.bytes['param_exact'].sum())}/{len(r.bytes)} equal.\n")
    sample = r.flops.merge(r.bytes, on="point_id").head(6)
    L.append(fmt_table(sample[["point_id", "counted_flops", "analytic_flops",
                               "kv_bytes_measured", "kv_bytes_formula",
                               "param_bytes_measured", "param_bytes_formula"]], ".0f"))
    return L


def _speculative(r) -> list[str]:
    sp, f = r.speculative, r.fit
    L = ["\n## Speculative decoding\n"]
    text = (f"From `{r.sources.get('speculative')}`: greedy speculative decoding of a "
             "target/draft pair vs the target alone (same prompts, tokens and cache). α is the "
             "maximum-likelihood per-token acceptance pooled over all γ (accepted / drafted "
             f"tokens at risk): here {sp['alpha_pooled'].iloc[0]:.3f}. *improvement_pred* = "
             "`costmodel.validation.speculative_prediction` on the fitted HardwareSpec, the way "
             "the reference runs it: per token of the target alone one decode step (q = 1, LM "
             f"head on the last position) plus the `generate` loop's {GENERATE_STEP_CALLS} torch "
             f"calls; per iteration γ draft decode steps (+{DRAFT_STEP_CALLS} calls each) and one "
             "verification pass with q = γ + 1 new tokens on the cache (the target's attention "
             "path with its causal mask, LM head on all γ + 1 positions, "
             f"+{VERIFY_CALLS} calls) and, with probability 1 − α^γ, the cache crop (2 slices "
             "per layer of both models) — every call priced at the fitted t_k, nothing fitted "
             "to the speculative runs. *improvement_pred_passes_only* prices the passes alone "
             "(`cm.speculative_speedup`, LM heads on the last position, no loop calls) with one "
             "η_c and one η_m for every operator; *improvement_pred_simple* prices the "
             "verification as one target step (E / (γc + 1)). *improvement_from_measured_costs*, "
             "where the passes were timed alone, puts the measured cost of one target step, one "
             "draft step and the verification pass into the same formula: where it matches the "
             "measurement but *improvement_pred* does not, the speculative algebra holds and "
             "the pass costs are what the roofline misses (compare `cost_ratio_pred` / "
             "`cost_ratio_meas` and `verify_over_step_pred` / `verify_over_step_meas`).")
    wide = [int(g) for g in sp["gamma"] if g + 1 > f.skinny_rows]
    if wide:
        text += (f" The verification of γ = {_listing(wide)} drafts has more than "
                 f"{f.skinny_rows} rows: it is priced at the wide η_c, the shorter ones at "
                 "η_c,skinny.")
    L.append(text + "\n")
    L.append(fmt_table(sp))
    return L


def render_markdown(r) -> str:
    """The report of a :class:`~costmodel.validation.validate.Report` as markdown."""
    L = ["# Validation of costmodel against the PyTorch reference model\n"]
    L += _machine(r)
    L.append("## Headline\n")
    L.append(tabulate(headline_rows(r.summary), headers=["check", "result", "target", "met"],
                      tablefmt="github"))
    L.append("")
    L += _model(r)
    L += _errors(r)
    L += _diagnosis(r)
    L += _exact(r)
    if r.speculative is not None:
        L += _speculative(r)
    if r.figures:
        L.append("\n## Figures\n")
        for key, path in r.figures.items():
            L.append(f"![{key}]({path.name})\n")
    return "\n".join(L) + "\n"


# --------------------------------------------------------------------------- figures


def png(fig) -> bytes:
    """PNG bytes of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def fig_scatter(points):
    """Predicted vs measured seconds per pass, ideal roofline and calibrated model (log–log)."""
    fig = mfigure.Figure(figsize=(11, 5))
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    lo = min(points[TIME_COLUMN].min(), points["pred_ideal_s"].min()) / 1.5
    hi = max(points[TIME_COLUMN].max(), points["pred_calibrated_s"].max()) * 1.5
    for ax, col, title in ((axes[0], "pred_ideal_s", "ideal roofline (η = 1, no overhead)"),
                           (axes[1], "pred_calibrated_s", "calibrated (η_c, η_m, t_k)")):
        for phase, g in points.groupby("phase"):
            test = g[g["split"] == "test"]
            train = g[g["split"] != "test"]
            ax.scatter(train[TIME_COLUMN], train[col], s=18, facecolors="none",
                       edgecolors=PHASE_COLORS.get(phase, "k"), label=f"{phase} (train)")
            ax.scatter(test[TIME_COLUMN], test[col], s=22, c=PHASE_COLORS.get(phase, "k"),
                       label=f"{phase} (held out)")
        parity_axes(ax, lo, hi, 1.25, "measured seconds per pass", title)
    axes[0].set_ylabel("predicted seconds per pass")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle("Reference model on this machine: predicted vs measured (log–log)")
    return fig


def fig_context(r):
    """Measured vs calibrated (``cm.analyze`` on the fitted machine) seconds per step over the
    context, at the smallest batch, for the smallest and the largest model measured."""
    hw = r.fit.hardware()
    df = r.measurements
    batch = int(df["batch"].min())
    size = {m: param_count(spec_of(g.iloc[0])) for m, g in df.groupby("model", sort=False)}
    models = list(dict.fromkeys([min(size, key=size.get), max(size, key=size.get)]))
    fig = mfigure.Figure(figsize=(5.5 * len(models), 4.5))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        sub = df[(df["model"] == model) & (df["batch"] == batch)]
        if sub.empty:
            continue
        spec = spec_of(sub.iloc[0])
        grid = np.unique(np.geomspace(max(1, int(sub["context"].min() / 1.3)),
                                      min(spec.max_context, sub["context"].max() * 1.5),
                                      40).astype(int))
        for phase in ("decode_static", "decode_dynamic", "no_cache"):
            g = sub[sub["phase"] == phase].sort_values("context")
            if g.empty:
                continue
            color = PHASE_COLORS[phase]
            ax.plot(g["context"], g[TIME_COLUMN], "o", color=color, label=f"{phase} measured")
            kw = analysis_kwargs(g.iloc[0])
            pred = []
            for s in grid:
                q, c, _ = measured_workload(phase, int(s))
                if q + c <= spec.max_context:
                    pred.append(analyze(spec, hw, **{**kw, "new_tokens": q,
                                                     "cached_tokens": c}).time)
            ax.plot(grid[:len(pred)], pred, "-", color=color, alpha=0.8,
                    label=f"{phase} predicted")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(mticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
        ax.set_xlabel("context s (tokens)")
        ax.set_ylabel("seconds per generated token (one step)")
        ax.set_title(f"{model}, batch {batch}: KV cache vs no cache")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def fig_speculative(spec):
    """Measured and predicted improvement of speculative decoding over γ."""
    fig = mfigure.Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    ax.plot(spec["gamma"], spec["improvement_measured"], "o-", label="measured")
    ax.plot(spec["gamma"], spec["improvement_pred"], "s--",
            label="predicted (measured α, calibrated roofline)")
    ax.plot(spec["gamma"], spec["improvement_pred_simple"], ":", color="grey",
            label="predicted, verify priced as one step")
    if "improvement_from_measured_costs" in spec:
        ax.plot(spec["gamma"], spec["improvement_from_measured_costs"], "^-.", color="tab:green",
                label="formula with measured α and measured pass costs")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("γ (drafted tokens per iteration)")
    ax.set_ylabel("walltime improvement over the target alone")
    ax.set_title(f"Speculative decoding, α = {spec['alpha_pooled'].iloc[0]:.3f}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def figure(key: str, r):
    """The figure ``key`` (scatter, context, speculative) of a report."""
    if key == "scatter":
        return fig_scatter(r.points)
    if key == "context":
        return fig_context(r)
    if key == "speculative":
        return fig_speculative(r.speculative)
    raise ValueError(f"figure: unknown {key!r} (choose from {', '.join(FIGURE_FILES)})")


def figure_png(key: str, r) -> bytes:
    """PNG bytes of the figure ``key`` of a report."""
    return png(figure(key, r))


__all__ = ["FIGURE_FILES", "fig_context", "fig_scatter", "fig_speculative", "figure",
           "figure_png", "fmt_table", "headline_rows", "pct", "render_markdown"]
