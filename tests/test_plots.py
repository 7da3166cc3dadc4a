"""Every figure function in costmodel.plots returns a Figure with labelled axes (units named)
and saves a PNG."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

import costmodel as cm
from costmodel import plots


def _figures():
    m = cm.model("llama3-8b")
    a1 = cm.decode_step(m, "a100-80gb", context=1024)
    a2 = cm.prefill(m, "a100-80gb", context=2048)
    return {
        "roofline_chart": (plots.roofline_chart(a1, a2), ("FLOPs per byte", "TFLOP/s")),
        "roofline_chart_labels": (plots.roofline_chart(a1, labels=["decode"]),
                                  ("FLOPs per byte", "TFLOP/s")),
        "intensity_vs_n": (plots.intensity_vs_n(), ("tokens", "FLOPs per byte")),
        "intensity_vs_batch": (plots.intensity_vs_batch(), ("requests", "FLOPs per byte")),
        "speedup_vs_gamma": (plots.speedup_vs_gamma(0.75, 0.08, measured={3: 2.0}),
                             ("γ", "×")),
        "max_batch_vs_context": (plots.max_batch_vs_context(m, "a100-80gb",
                                                            contexts=(1024, 4096), tps=(1, 2)),
                                 ("tokens", "requests")),
        # Mixtral-style: E = 8, k = 2 → U(B) = 8 (1 − 0.75^B): 2, 3.5, 5.46875 at B = 1, 2, 4
        "decode_intensity_vs_batch": (plots.decode_intensity_vs_batch(
            [1, 2, 4], [1.0, 1.7, 2.9], 153.0, experts=[2, 3.5, 5.46875], n_experts=8,
            first_compute=4, title="MoE decode"), ("sequences", "FLOPs per byte")),
    }


@pytest.fixture(scope="module")
def figures():
    return _figures()


def test_every_public_figure_function_is_covered(figures):
    public = {name for name in dir(plots) if not name.startswith("_")
              and callable(getattr(plots, name)) and getattr(getattr(plots, name),
                                                             "__module__", "") == plots.__name__}
    public -= {"save", "parity_axes"}       # helpers, tested on their own below
    covered = {k.removesuffix("_labels") for k in figures}
    assert public <= covered, public - covered


def test_parity_axes_frames_a_log_log_band():
    ax = Figure().subplots()
    plots.parity_axes(ax, 1e-3, 10.0, 1.25, "measured s", "a title")
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert ax.get_xlim() == ax.get_ylim() == (1e-3, 10.0)
    assert ax.get_xlabel() == "measured s" and ax.get_title() == "a title"
    # the shaded band runs from x / 1.25 to x · 1.25 (0.8 ms and 1.25 ms at x = 1 ms)
    (band,) = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(1e-3 / 1.25) and max(ys) == pytest.approx(10.0 * 1.25)
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["y = x", "±25 %"]


@pytest.mark.parametrize("name", ["roofline_chart", "roofline_chart_labels", "intensity_vs_n",
                                  "intensity_vs_batch", "speedup_vs_gamma",
                                  "max_batch_vs_context", "decode_intensity_vs_batch"])
def test_figure_labelled_and_saved(figures, name, tmp_path):
    fig, (x_unit, y_unit) = figures[name]
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel().strip() and ax.get_ylabel().strip()
    assert x_unit in ax.get_xlabel(), ax.get_xlabel()
    assert y_unit in ax.get_ylabel(), ax.get_ylabel()
    assert ax.get_title().strip()
    path = tmp_path / f"{name}.png"
    plots.save(fig, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("model, hw, context, tp, batch", [
    ("llama3-8b", "a100-80gb", 1024, 1, 1), ("gpt2-xl", "t4", 512, 5, 1),
    ("gpt2", "a100-80gb", 1024, 1, 1), ("llama3-70b", "h100-sxm", 8192, 8, 64),
    ("llama3-8b", "a100-80gb", 1, 1, 1), ("gpt2", "t4", 10_000_000, 1, 1_000_000)])
def test_roofline_labels_inside_the_axes_and_apart(model, hw, context, tp, batch):
    m = cm.model(model)
    g = cm.generation(m, hw, context, 16, batch, tp=tp)
    fig = plots.roofline_chart(g.prefill, g.first_decode, labels=["prefill (q = s, c = 0)",
                                                                  "decode step (q = 1, c = s)"])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    frame = ax.get_window_extent(renderer)
    # the text of each label (Text.get_window_extent: without its leader line)
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts if t.get_text().strip()]
    boxes.append(ax.get_legend().get_window_extent(renderer))
    for b in boxes:
        assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    # every operator that has a point on the chart is named in a label (or the key)
    text = " ".join(t.get_text() for t in ax.texts)
    for a in (g.prefill, g.first_decode):
        ops = a.ops[(a.ops["flops"] > 0) & (a.ops["bytes"] > 0)]
        named = [op for op in ops["op"] if op in text or "more" in text]
        assert len(named) == len(ops)


def test_decode_intensity_vs_batch_marks_the_ridge_and_the_experts(figures):
    fig, _ = figures["decode_intensity_vs_batch"]
    ax, right = fig.axes
    assert list(ax.lines[1].get_ydata()) == [153.0, 153.0]          # the ridge point
    assert list(ax.lines[2].get_xdata()) == [4, 4]                  # first compute-bound B
    assert list(right.lines[0].get_ydata()) == [2, 3.5, 5.46875]
    assert "of 8" in right.get_ylabel() and right.get_ylim()[1] >= 8
    dense = plots.decode_intensity_vs_batch([1, 2], [1.0, 2.0], 100.0)
    assert len(dense.axes) == 1                                      # no expert axis
