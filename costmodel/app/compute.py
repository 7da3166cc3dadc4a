"""The app's page computations: the shared PNG helper and the Memory page's; the other pages'
are beside it (``compute_roofline``, ``compute_attention``, ``compute_speculative``,
``compute_formulas``, ``compute_validation``). Plain functions of specs and settings that return
dataclasses (tables as DataFrames ready for the table widget, figures as PNG bytes). The pages
(``costmodel.app.pages``) cache them across reruns; every time comes from the one pricing path
(``costmodel.roofline`` → ``costmodel.pricing.price``), so the app shows exactly what
``cm.analyze`` gives on the same model, hardware and workload.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from costmodel.app.display import display_frame
from costmodel.app.inputs import check_workload_tp
from costmodel.app.state import Workload
from costmodel.batch import BatchPlan, batch_plan, max_batch_size
from costmodel.conventions import e0294_param_count
from costmodel.kvcache import kv_by_layer_type, kv_bytes_per_token, kv_cache_bytes
from costmodel.lazy import deferred
from costmodel.params import (
    EXPERT_COMPONENTS,
    active_param_count,
    param_breakdown,
    param_count,
    weight_memory,
)
from costmodel.plots import max_batch_vs_context
from costmodel.specs import HardwareSpec, ModelSpec
from costmodel.units import GB, GIB, MIB

pd = deferred("pandas")

#: Context lengths of the max-batch table and plot (the metric above them gives s itself).
CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384, 32768)
#: Figure size (inches) of a chart shown beside a table.
SIDE = (6.4, 4.2)


def png(fig, size: tuple[float, float] | None = None, ymin: float | None = None,
        ylog: bool = False) -> bytes:
    """PNG bytes of a figure (built without pyplot); ``size`` in inches resizes it for a
    column. Minor ticks are switched off (on log axes they cost half the rendering time)."""
    for ax in fig.axes:
        ax.minorticks_off()
    if size:
        fig.set_size_inches(*size)
    if ylog:
        fig.axes[0].set_yscale("log")
    if ymin is not None:
        fig.axes[0].set_ylim(bottom=ymin)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


# ---------------------------------------------------------------- Memory page
@dataclass(frozen=True)
class MemoryBasics:
    """Parameters, weight and KV-cache bytes of a model (no hardware needed)."""

    params: int
    weights: float                 # bytes: params · b_w (the routed experts at b_we)
    kv_token: float                # bytes per token, all layers, K and V (within the window)
    kv_request: float              # bytes for one request of s tokens
    e0294_params: int              # the E0294 text's parameter count
    table: Any                     # parameters by component (DataFrame)
    active: int = 0                # parameters one token uses
    kv_full: float = 0.0           # bytes of one request in the full-attention layers
    kv_window: float = 0.0         # … in the sliding-window layers
    kv_token_other: float | None = None   # latent attention: per token with the other cache
    checkpoint_weights: float | None = None  # weight bytes at the checkpoint's formats
    context: int = 1               # s, the tokens of the request above
    kv_layers: Any = None          # windows: the KV cache by layer type (DataFrame)

    @property
    def kv_token_at_context(self) -> float:
        """Bytes per token a request of s tokens holds on average (window layers saturate)."""
        return self.kv_request / max(1, self.context)


def param_table(m: ModelSpec, weight_bytes: float, expert_weight_bytes: float | None = None):
    """Parameters and weight bytes by component (the routed experts at their own width)."""
    parts = param_breakdown(m)
    total = sum(parts.values())
    widths = [expert_weight_bytes if expert_weight_bytes is not None and k in EXPERT_COMPONENTS
              else weight_bytes for k in parts]
    nbytes = [float(v * b) for v, b in zip(parts.values(), widths, strict=True)]
    return display_frame(pd.DataFrame({
        "component": list(parts),
        "parameters": [int(v) for v in parts.values()],
        "share (%)": [100 * v / total for v in parts.values()],
        "bytes per weight": widths,
        "weight bytes": nbytes,
        "weight GB (1e9 B)": [b / GB for b in nbytes],
        "weight GiB (2^30 B)": [b / GIB for b in nbytes],
    }))


def memory_basics(m: ModelSpec, context: int, weight_bytes: float, kv_bytes: float,
                  expert_weight_bytes: float | None = None,
                  mla: str = "absorbed") -> MemoryBasics:
    """Parameters (total and active), weights at b_w (routed experts at ``expert_weight_bytes``,
    default b_w), the KV cache per token, per request of ``context`` tokens and per layer type
    (``mla``: the latent-attention cache layout)."""
    ewb = weight_bytes if expert_weight_bytes is None else expert_weight_bytes
    layers = kv_by_layer_type(m, context, kv_bytes, mla)
    other = None
    if m.mla:
        other = kv_bytes_per_token(m, kv_bytes, "expanded" if mla != "expanded" else "absorbed")
    checkpoint = None
    if m.weight_format or m.expert_weight_format:
        checkpoint = weight_memory(m)
    kv_layers = None
    if m.sliding_window and m.window_layers:
        kv_layers = display_frame(pd.DataFrame({
            "layers": ["full attention", "sliding window"],
            "count": [m.n_layers - m.window_layers, m.window_layers],
            "tokens held per layer": [context, min(context, m.sliding_window - 1)],
            "KV bytes per request": [layers["full_layers"], layers["window_layers"]],
            "GiB per request": [layers["full_layers"] / GIB, layers["window_layers"] / GIB]}))
    return MemoryBasics(params=param_count(m), weights=weight_memory(m, weight_bytes, ewb),
                        kv_token=kv_bytes_per_token(m, kv_bytes, mla),
                        kv_request=kv_cache_bytes(m, context, 1, kv_bytes, mla),
                        e0294_params=e0294_param_count(m),
                        table=param_table(m, weight_bytes, ewb if m.moe else None),
                        active=active_param_count(m), kv_full=layers["full_layers"],
                        kv_window=layers["window_layers"], kv_token_other=other,
                        checkpoint_weights=checkpoint, context=context, kv_layers=kv_layers)


@dataclass(frozen=True)
class MemoryPlan:
    """What fits: at s, at s + g, with the E0294 text's parameter count, and per TP degree."""

    plan: BatchPlan
    full: BatchPlan
    e0294: BatchPlan | None        # None when the text's count is beyond what batch_plan takes
    tp_table: Any


def tp_table(m: ModelSpec, hw: HardwareSpec, context: int, tps: Sequence[int],
             weight_bytes: float, kv_bytes: float, **kw):
    """One row per TP degree (``kw``: ``ep``, ``expert_weight_bytes``, ``mla`` of
    :func:`~costmodel.batch.batch_plan`)."""
    rows = []
    for t in tps:
        p = batch_plan(m, hw, context, tp=t, weight_bytes=weight_bytes, kv_bytes=kv_bytes,
                       **kw)
        rows.append({"TP": t, **({"EP": p.ep, "attention replicas DP": p.dp}
                                 if p.ep > 1 else {}),
                     "weights per GPU (GiB)": p.weight_bytes_per_gpu / GIB,
                     "KV heads per GPU": p.kv_heads_per_gpu,
                     "KV replication": p.kv_replication,
                     "KV per request per GPU (MiB)": p.kv_bytes_per_request_per_gpu / MIB,
                     "max batch": p.max_batch, "why": p.reason})
    return display_frame(pd.DataFrame(rows))


def memory_plan(m: ModelSpec, hw: HardwareSpec, w: Workload, tps: Sequence[int]) -> MemoryPlan:
    check_workload_tp(m, w.tp, w.ep)
    kw = {"tp": w.tp, **w.memory()}
    try:
        e0294 = batch_plan(m, hw, w.context, params=e0294_param_count(m), **kw)
    except ValueError:               # a count above 2**53: the comparison is left out
        e0294 = None
    rest = {k: v for k, v in w.memory().items() if k not in ("weight_bytes", "kv_bytes")}
    return MemoryPlan(
        plan=batch_plan(m, hw, w.context, **kw),
        full=batch_plan(m, hw, w.context + w.generate, **kw), e0294=e0294,
        tp_table=tp_table(m, hw, w.context, tps, w.weight_bytes, w.kv_bytes, **rest))


@dataclass(frozen=True)
class MaxBatchChart:
    table: Any                     # rows: context; columns: TP degree; cells: max batch
    png: bytes


def max_batch_chart(m: ModelSpec, hw: HardwareSpec, tps: Sequence[int], weight_bytes: float,
                    kv_bytes: float, expert_weight_bytes: float | None = None, ep: int = 1,
                    mla: str = "absorbed") -> MaxBatchChart:
    """Max batch over the fixed contexts (independent of s, so changing s reuses it)."""
    kw = {"weight_bytes": weight_bytes, "kv_bytes": kv_bytes, "ep": ep, "mla": mla,
          "expert_weight_bytes": expert_weight_bytes}
    data = {f"TP = {t}": [max_batch_size(m, hw, c, tp=t, **kw) for c in CONTEXTS]
            for t in tps}
    table = pd.DataFrame({"context (tokens)": list(CONTEXTS), **data})
    fig = max_batch_vs_context(m, hw, CONTEXTS, tuple(tps), **kw)
    return MaxBatchChart(display_frame(table), png(fig, SIDE, ymin=0))


__all__ = ["CONTEXTS", "MaxBatchChart", "MemoryBasics", "MemoryPlan", "SIDE", "max_batch_chart",
           "memory_basics", "memory_plan", "param_table", "png", "tp_table"]
