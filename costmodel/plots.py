"""Matplotlib figures: the roofline with operators, attention intensity vs N and vs B, speedup
vs γ, and max batch vs context. Each function returns a ``matplotlib.figure.Figure`` built
without pyplot, so importing this module never changes the backend (Jupyter's inline display,
Streamlit's ``st.pyplot(fig)`` and ``fig.savefig`` all work)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from costmodel.batch import max_batch_size
from costmodel.intensity import attention_intensity
from costmodel.lazy import deferred
from costmodel.roofline import Analysis
from costmodel.speculative import speedup
from costmodel.units import TERA

mfigure = deferred("matplotlib.figure")


def _figure(**kw) -> mfigure.Figure:
    """A matplotlib Figure built without pyplot (the backend stays untouched)."""
    return mfigure.Figure(**kw)


def roofline_chart(*analyses: Analysis, labels: Sequence[str] | None = None) -> mfigure.Figure:
    """Log–log roofline of the hardware of the first analysis, with each operator of each
    analysis plotted at (intensity, achieved FLOP/s = flops / time)."""
    a0 = analyses[0]
    hw = a0.hardware
    peak, bw = hw.peak(a0.dtype) * a0.efficiency.eta_c, hw.bandwidth * a0.efficiency.eta_m
    fig = _figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    x = np.logspace(-2, 4, 200)
    ax.plot(x, np.minimum(peak, bw * x) / TERA, color="black", lw=2,
            label=f"{hw.name} roof: {peak / TERA:.0f} TFLOP/s {a0.dtype}, {bw / 1e9:.0f} GB/s")
    ax.axvline(peak / bw, color="grey", ls=":", lw=1)
    ax.text(peak / bw * 1.1, peak / TERA * 0.02, f"ridge point\n{peak / bw:.0f} FLOPs/byte",
            fontsize=8, color="grey")
    markers = "os^Dv<>"
    for i, a in enumerate(analyses):
        ops = a.ops[(a.ops["flops"] > 0) & (a.ops["bytes"] > 0)]
        label = labels[i] if labels else f"q={a.workload['new_tokens']}, " \
            f"c={a.workload['cached_tokens']}, B={a.workload['batch']}"
        perf = ops["flops"] / (ops["time"] - ops["overhead_time"] - ops["comm_time"])
        ax.scatter(ops["intensity"], perf / TERA, marker=markers[i % len(markers)], s=36,
                   label=label, zorder=3)
        # one label per cluster of operators at (nearly) the same point
        key = np.round(np.log10(ops["intensity"].to_numpy()) * 3) / 3
        for k in np.unique(key):
            grp = ops[key == k]
            names = ", ".join(grp["op"])
            x0 = float(grp["intensity"].iloc[0])
            y0 = float(perf[key == k].iloc[0]) / TERA
            ax.annotate(names, (x0, y0), fontsize=7, xytext=(6, -12 if i % 2 else 6),
                        textcoords="offset points", color=f"C{i}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte)")
    ax.set_ylabel("attainable TFLOP/s (1 multiply-add = 2 FLOPs)")
    ax.set_title(f"Roofline — {a0.model.name} on {hw.name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def intensity_vs_n(d: int = 128, ns: Sequence[int] = (128, 256, 512, 1024, 2048, 4096),
                   bytes_per_element: float = 2) -> mfigure.Figure:
    """Prefill attention intensity vs sequence length N (batch 1): exact standard, fused, and
    the E0294 text's counts."""
    ns = np.asarray(ns)
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for label, kw in (("standard (exact counts)", {}), ("fused / FlashAttention",
                                                        {"attention": "fused"}),
                      ("E0294 text's counts", {"convention": "e0294"})):
        ax.plot(ns, attention_intensity(ns, d, "prefill", 1, bytes_per_element, **kw),
                marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length N (tokens)")
    ax.set_ylabel("arithmetic intensity (FLOPs per byte)")
    ax.set_title(f"Prefill attention intensity vs N (d = {d}, {bytes_per_element:g} B/element)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def intensity_vs_batch(n: int = 1024, d: int = 128,
                       batches: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
                       bytes_per_element: float = 2) -> mfigure.Figure:
    """Decode attention intensity vs batch B: per-request K/V (flat), shared K/V (rises), and
    the E0294 text's formula (which shares K/V)."""
    bs = np.asarray(batches)
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for label, kw in (("per-request K/V (serving)", {"kv": "per_request"}),
                      ("shared K/V (one prompt, B samples)", {"kv": "shared"}),
                      ("E0294 text's formula", {"convention": "e0294"})):
        y = np.broadcast_to(attention_intensity(n, d, "decode", bs, bytes_per_element, **kw),
                            bs.shape)
        ax.plot(bs, y, marker="s", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B (requests)")
    ax.set_ylabel("arithmetic intensity (FLOPs per byte)")
    ax.set_title(f"Decode attention intensity vs B (N = {n}, d = {d})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def speedup_vs_gamma(alpha: float, cost_ratio: float, gammas: Sequence[int] = range(1, 11),
                     measured: dict[int, float] | None = None) -> mfigure.Figure:
    """Speculative improvement vs γ (with and without the bonus token), optimum marked;
    optional measured points {γ: improvement}."""
    g = np.asarray(list(gammas))
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    y = speedup(alpha, g, cost_ratio)
    ax.plot(g, y, marker="o", label="predicted (with bonus token)")
    ax.plot(g, speedup(alpha, g, cost_ratio, bonus=False), marker=".", ls="--",
            label="predicted, no bonus token (CS229S)")
    best = int(g[np.argmax(y)])
    ax.axvline(best, color="grey", ls=":", lw=1)
    ax.annotate(f"optimal γ = {best}", (best, y.max()), xytext=(5, -15),
                textcoords="offset points")
    if measured:
        ax.scatter(list(measured), list(measured.values()), color="black", zorder=3,
                   label="measured")
    ax.axhline(1, color="black", lw=0.8)
    ax.set_xlabel("drafted tokens per iteration γ")
    ax.set_ylabel("walltime improvement (×)")
    ax.set_title(f"Speculative decoding: α = {alpha:g}, cost ratio c = {cost_ratio:.3g}")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def max_batch_vs_context(m, hw, contexts: Sequence[int] = (512, 1024, 2048, 4096, 8192),
                         tps: Sequence[int] = (1, 2, 4, 8), **kw) -> mfigure.Figure:
    """Max batch size vs context, one line per TP degree."""
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    # distinct markers and dashes: lines can coincide (TP past n_kv_heads replicates KV heads)
    for i, tp in enumerate(tps):
        ax.plot(contexts, [max_batch_size(m, hw, c, tp=tp, **kw) for c in contexts],
                marker="osD^v<>"[i % 7], ls=("-", "--", "-.", ":")[i % 4],
                markersize=7 - i % 3, label=f"TP = {tp}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("symlog")       # symlog: a batch of 0 (does not fit) stays on the chart
    ax.set_ylim(bottom=0)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("max concurrent requests")
    name = getattr(hw, "name", hw)
    ax.set_title(f"Max batch — {m.name} on {name}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return fig


def save(fig, path) -> None:
    """Save a figure as PNG (150 dpi)."""
    fig.savefig(path, dpi=150)
