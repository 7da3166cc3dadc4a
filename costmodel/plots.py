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
from costmodel.units import GB, TERA

mfigure = deferred("matplotlib.figure")
mticker = deferred("matplotlib.ticker")
magg = deferred("matplotlib.backends.backend_agg")


def _figure(**kw) -> mfigure.Figure:
    """A matplotlib Figure built without pyplot (the backend stays untouched)."""
    return mfigure.Figure(**kw)


#: Operator labels of the roofline chart: font size (points), the widest line (characters) and
#: the most lines of one label; the distances (points) a label is tried at from its operators.
LABEL_SIZE, LABEL_WIDTH, LABEL_LINES = 7, 30, 4
LABEL_DISTANCES = (6, 14, 26, 42, 64)
#: Scatter markers of the analyses, and the same shapes as text (a label naming operators of
#: several analyses tags each list with its analysis's shape, as in the legend).
MARKERS, MARKER_GLYPHS = "os^Dv<>", "●■▲◆▼◀▶"
_DIRECTIONS = ((1, 0), (1, 1), (1, -1), (0, 1), (0, -1), (-1, 0), (-1, 1), (-1, -1))


#: Where a leader line leaves its label: the corner or side nearest the point.
_RELPOS = {"left": 0.0, "center": 0.5, "right": 1.0, "bottom": 0.0, "top": 1.0}


def _label_text(names: Sequence[str], tag: str = "") -> str:
    """Operator names wrapped into at most LABEL_LINES lines of about LABEL_WIDTH characters
    ("+k more" for the rest), the first line starting with ``tag``."""
    lines: list[list[str]] = [[]]
    width = len(tag) + 1 if tag else 0
    for i, name in enumerate(names):
        if lines[-1] and width + 2 + len(name) > LABEL_WIDTH:
            if len(lines) == LABEL_LINES:
                lines[-1].append(f"+{len(names) - i} more")
                break
            lines.append([])
            width = 0
        width += len(name) + 2 * bool(lines[-1])
        lines[-1].append(name)
    text = ",\n".join(", ".join(line) for line in lines)
    return f"{tag} {text}" if tag else text


def _clusters(xy: np.ndarray, radius: float) -> list[list[int]]:
    """Groups of points (display coordinates) closer than ``radius`` pixels (single linkage)."""
    n = len(xy)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if np.hypot(*(xy[i] - xy[j])) < radius:
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


class _Placer:
    """Places text boxes inside an axes where they cover no other text, no marker and, when
    possible, not the roof line (a greedy search over offsets around each anchor)."""

    def __init__(self, ax, renderer, markers: np.ndarray, line: np.ndarray) -> None:
        self.ax, self.renderer = ax, renderer
        self.frame = ax.get_window_extent(renderer).padded(-3)
        self.taken: list = []
        pad = 5.0
        self.markers = [(x - pad, y - pad, x + pad, y + pad) for x, y in markers]
        self.line = line

    def block(self, bbox) -> None:
        self.taken.append(bbox)

    def _clear_of_markers(self, bb) -> bool:
        return not any(bb.x0 < x1 and x0 < bb.x1 and bb.y0 < y1 and y0 < bb.y1
                       for x0, y0, x1, y1 in self.markers)

    def _clear_of_line(self, bb) -> bool:
        x, y = self.line[:, 0], self.line[:, 1]
        return not np.any((x > bb.x0) & (x < bb.x1) & (y > bb.y0) & (y < bb.y1))

    def place(self, text: str, anchor: tuple[float, float], color: str,
              distances: Sequence[float] = LABEL_DISTANCES):
        """Annotate ``anchor`` (data coordinates) with ``text``; the annotation, or None when
        no free place was found."""
        ann = self.ax.annotate(text, anchor, xytext=(0, 0), textcoords="offset points",
                               fontsize=LABEL_SIZE, color=color, linespacing=1.1, zorder=4,
                               multialignment="left")
        fallback = None
        for r in distances:
            for dx, dy in _DIRECTIONS:
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                ann.set_ha(ha)
                ann.set_va(va)
                ann.xyann = (dx * r, dy * r)
                bb = ann.get_window_extent(self.renderer).padded(1.5)
                if not self.frame.x0 <= bb.x0 <= bb.x1 <= self.frame.x1 or \
                        not self.frame.y0 <= bb.y0 <= bb.y1 <= self.frame.y1:
                    continue
                if any(_overlaps(bb, t) for t in self.taken) or not self._clear_of_markers(bb):
                    continue
                if self._clear_of_line(bb):
                    return self._keep(ann, bb, r, color)
                if fallback is None:
                    fallback = (ha, va, ann.xyann, bb, r)
        if fallback is not None:
            ha, va, ann.xyann, bb, r = fallback
            ann.set_ha(ha)
            ann.set_va(va)
            return self._keep(ann, bb, r, color)
        ann.remove()
        return None

    def _keep(self, ann, bb, r: float, color: str):
        if r > LABEL_DISTANCES[0]:      # far from its point: a thin leader line shows whose
            ann.remove()
            ann = self.ax.annotate(
                ann.get_text(), ann.xy, xytext=ann.xyann, textcoords="offset points",
                fontsize=LABEL_SIZE, color=color, linespacing=1.1, zorder=4, multialignment="left",
                ha=ann.get_ha(), va=ann.get_va(),
                arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6, "alpha": 0.7,
                            "shrinkA": 1, "shrinkB": 4,
                            "relpos": (_RELPOS[ann.get_ha()], _RELPOS[ann.get_va()])})
        self.taken.append(bb)
        return ann


def roofline_chart(*analyses: Analysis, labels: Sequence[str] | None = None) -> mfigure.Figure:
    """Log–log roofline of the hardware of the first analysis, with each operator of each
    analysis plotted at (intensity, achieved FLOP/s = flops / compute-or-memory time).

    Operators at (nearly) the same point share one label; labels are placed inside the axes
    where they cover no other label, marker or the roof (a greedy search around each point);
    a label with no free place gets a number, explained in a key in the empty upper left."""
    a0 = analyses[0]
    hw = a0.hardware
    peak, bw = hw.peak(a0.dtype) * a0.efficiency.eta_c, hw.bandwidth * a0.efficiency.eta_m
    ridge = peak / bw
    fig = _figure(figsize=(8, 5.5))
    magg.FigureCanvasAgg(fig)          # text extents for the label placement (no backend change)
    ax = fig.add_axes((0.1, 0.095, 0.87, 0.84))
    series = []
    for i, a in enumerate(analyses):
        ops = a.ops
        busy = (ops["time"] - ops["overhead_time"] - ops["comm_time"]).to_numpy()
        x = ops["intensity"].to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = ops["flops"].to_numpy(dtype=float) / busy / TERA
        keep = (ops["flops"].to_numpy() > 0) & (ops["bytes"].to_numpy() > 0) \
            & np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
        label = labels[i] if labels else f"q={a.workload['new_tokens']}, " \
            f"c={a.workload['cached_tokens']}, B={a.workload['batch']}"
        series.append((label, x[keep], y[keep], list(ops["op"][keep])))
    xs = np.concatenate([s[1] for s in series] + [[ridge]])
    ys = np.concatenate([s[2] for s in series] + [[peak / TERA]])
    x_lo = 10 ** np.floor(np.log10(xs.min() / 2))
    x_hi = 10 ** np.ceil(np.log10(xs.max() * 4))
    y_lo = 10 ** np.floor(np.log10(ys.min() / 3))
    y_hi = 10 ** np.ceil(np.log10(peak / TERA * 3))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    roof_x = np.logspace(np.log10(x_lo), np.log10(x_hi), 400)
    roof_y = np.minimum(peak, bw * roof_x) / TERA
    ax.plot(roof_x, roof_y, color="black", lw=2,
            label=f"{hw.name} roof: {peak / TERA:,.4g} TFLOP/s {a0.dtype}, "
                  f"{bw / GB:,.4g} GB/s")
    ax.axvline(ridge, color="grey", ls=":", lw=1)
    for i, (label, x, y, _) in enumerate(series):
        ax.scatter(x, y, marker=MARKERS[i % len(MARKERS)], s=36, label=label, zorder=3,
                   color=f"C{i}")
    ax.set_xlabel("arithmetic intensity (FLOPs per byte)")
    ax.set_ylabel("attainable TFLOP/s (1 multiply-add = 2 FLOPs)")
    ax.set_title(f"Roofline — {a0.model.name} on {hw.name}")
    ax.grid(True, which="major", alpha=0.3)
    ax.minorticks_off()
    plain = mticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    legend = ax.legend(fontsize=8, loc="lower right")
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    all_xy = to_px(np.column_stack([xs[:-1], ys[:-1]])) if len(xs) > 1 else np.empty((0, 2))
    ridge_y = np.logspace(np.log10(y_lo), np.log10(y_hi), 200)
    lines = np.vstack([np.column_stack([roof_x, roof_y]),       # the roof and the ridge line
                       np.column_stack([np.full_like(ridge_y, ridge), ridge_y])])
    placer = _Placer(ax, renderer, all_xy, to_px(lines))
    placer.block(legend.get_window_extent(renderer).padded(2))
    ridge_text = f"ridge point\n{ridge:,.0f} FLOPs/byte"
    for y_frac in (0.04, 0.3, 0.6):
        y_at = 10 ** (np.log10(y_lo) + y_frac * np.log10(y_hi / y_lo))
        if placer.place(ridge_text, (ridge, y_at), "grey", distances=(4,)) is not None:
            break
    # one label per cluster of nearby operators, whichever analysis they belong to
    flat = [(i, float(x[j]), float(y[j]), names[j])
            for i, (_, x, y, names) in enumerate(series) for j in range(len(x))]
    pending = []
    if flat:
        xy = to_px(np.array([(p[1], p[2]) for p in flat]))
        for group in _clusters(xy, 12.0):
            members = [flat[j] for j in group]
            by_series: dict[int, list[str]] = {}
            for i, _, _, name in members:
                by_series.setdefault(i, [])
                if name not in by_series[i]:
                    by_series[i].append(name)
            lists = list(by_series.values())
            if len(by_series) == 1 or all(v == lists[0] for v in lists):
                text, color = _label_text(lists[0]), \
                    f"C{next(iter(by_series))}" if len(by_series) == 1 else "0.25"
            else:
                text, color = "\n".join(
                    _label_text(v, MARKER_GLYPHS[i % len(MARKER_GLYPHS)])
                    for i, v in by_series.items()), "0.25"
            top = max(members, key=lambda p: (p[1], p[2]))
            pending.append((len(group), top[1], top[2], text, color))
    key = []
    for _, x0, y0, text, color in sorted(pending, key=lambda p: (-p[0], p[1])):
        if placer.place(text, (x0, y0), color) is None:
            number = str(len(key) + 1)
            ax.annotate(number, (x0, y0), xytext=(-6, 4), textcoords="offset points",
                        fontsize=LABEL_SIZE, color=color, ha="right", zorder=4,
                        fontweight="bold")
            key.append(f"{number}: {text}")
    if key:
        ax.text(0.015, 0.985, "\n".join(key), transform=ax.transAxes, fontsize=LABEL_SIZE,
                va="top", ha="left", zorder=5,
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.8", "alpha": 0.9})
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


def decode_intensity_vs_batch(batches: Sequence[float], intensity: Sequence[float],
                              ridge: float, experts: Sequence[float] | None = None,
                              n_experts: int = 0, first_compute: int | None = None,
                              title: str = "Decode intensity vs batch") -> mfigure.Figure:
    """A decode step's intensity (FLOPs per byte) vs batch B with the ridge point, the first
    compute-bound batch marked, and (a mixture of experts) the routed experts the batch touches
    per layer on a second axis: as they fill up, the expert weights read grow with B and the
    intensity rises more slowly than a dense model's."""
    b = np.asarray(batches, dtype=float)
    fig = _figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(b, np.asarray(intensity, dtype=float), color="C0", label="decode step intensity")
    ax.axhline(ridge, color="C3", ls="--", lw=1, label=f"ridge point {ridge:.0f} FLOPs/byte")
    if first_compute is not None:
        ax.axvline(first_compute, color="grey", ls=":", lw=1)
        ax.annotate(f"compute-bound from B = {first_compute:,}", (first_compute, 0.03),
                    xycoords=ax.get_xaxis_transform(), xytext=(-4, 0),
                    textcoords="offset points", ha="right", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B (sequences)")
    ax.set_ylabel("arithmetic intensity (FLOPs per byte)")
    ax.grid(True, which="both", alpha=0.3)
    lines, labels = ax.get_legend_handles_labels()
    top = ax
    if experts is not None and n_experts:
        right = top = ax.twinx()
        right.plot(b, np.asarray(experts, dtype=float), color="C2", ls="-.",
                   label="experts touched per layer")
        right.set_ylim(0, n_experts * 1.05)
        right.set_ylabel(f"routed experts touched (of {n_experts})")
        more, more_labels = right.get_legend_handles_labels()
        lines, labels = lines + more, labels + more_labels
    top.legend(lines, labels, loc="center right", fontsize=8)   # on top of both axes
    ax.set_title(title)
    return fig


def parity_axes(ax, lo: float, hi: float, band: float, xlabel: str, title: str) -> None:
    """Frame a predicted-vs-measured scatter on log–log axes over [lo, hi]: the line y = x and
    the shaded band [x / band, x · band] (labelled ±(band − 1))."""
    ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="y = x")
    ax.fill_between([lo, hi], [lo / band, hi / band], [lo * band, hi * band],
                    color="grey", alpha=0.15, label=f"±{(band - 1) * 100:.0f} %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)


def save(fig, path) -> None:
    """Save a figure as PNG (150 dpi)."""
    fig.savefig(path, dpi=150)
