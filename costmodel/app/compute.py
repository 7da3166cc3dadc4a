"""The app's page computations: plain functions of specs and settings that return dataclasses
(tables as DataFrames ready for the table widget, figures as PNG bytes). The pages
(``costmodel.app.pages``) cache them across reruns; every time comes from the one pricing path
(``costmodel.roofline`` → ``costmodel.pricing.price``), so the app shows exactly what
``cm.analyze`` gives on the same model, hardware and workload.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from costmodel.app.display import display_frame
from costmodel.app.inputs import check_workload_tp
from costmodel.app.state import AttentionSettings, SpeculativeSettings, Workload
from costmodel.batch import BatchPlan, batch_plan, max_batch_formula, max_batch_size
from costmodel.catalog import PARTS, architecture_formulas
from costmodel.conventions import e0294_param_count
from costmodel.decoding import Generation, generation, speculative_speedup
from costmodel.formula import Formula
from costmodel.grid import sweep
from costmodel.intensity import attention_counts, attention_formulas, attention_intensity
from costmodel.kvcache import kv_by_layer_type, kv_bytes_per_token, kv_cache_bytes, kv_formulas
from costmodel.lazy import deferred
from costmodel.ops import Options
from costmodel.params import (
    EXPERT_COMPONENTS,
    active_param_count,
    expert_param_count,
    param_breakdown,
    param_count,
    param_count_formula,
    weight_memory,
    weight_memory_formula,
)
from costmodel.plots import (
    decode_intensity_vs_batch,
    intensity_vs_batch,
    intensity_vs_n,
    max_batch_vs_context,
    roofline_chart,
    speedup_vs_gamma,
)
from costmodel.presets import model as model_preset
from costmodel.roofline import decode_step
from costmodel.specs import HardwareSpec, ModelSpec
from costmodel.speculative import EXPECTED_TOKENS, SPEEDUP, expected_tokens, optimal_gamma, speedup
from costmodel.symbols import model_values
from costmodel.units import GB, GIB, MIB

pd = deferred("pandas")

ROOT = Path(__file__).resolve().parent.parent.parent
MEASUREMENTS_DIR = ROOT / "data" / "measurements"
VALIDATION_DIR = ROOT / "data" / "validation"
VALIDATION_TABLES = {"headline": "headline.csv", "errors": "errors_by_regime.csv",
                     "points": "points.csv", "speculative": "speculative.csv"}
VALIDATION_FIGURES = {"predicted_vs_measured.png": "Predicted vs measured (log–log, y = x)",
                      "latency_vs_context.png": "Latency vs context: KV cache vs no cache",
                      "speculative_speedup.png": "Speculative decoding: improvement vs γ"}
#: Files larger than this under data/ are not shown (a committed table or figure is far smaller).
MAX_DATA_FILE_BYTES = 32 * MIB
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
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


# ---------------------------------------------------------------- Roofline page
@dataclass(frozen=True)
class RooflineTimes:
    """The Roofline page's headline numbers (seconds, FLOPs per byte)."""

    ttft: float                    # the prefill pass
    tpot_first: float              # the first decode step (context s)
    tpot_mean: float               # mean decode step over the generation
    total: float                   # prefill + every decode step
    throughput: float              # generated tokens per second, all requests
    prefill_bound: str
    decode_bound: str
    prefill_intensity: float
    decode_intensity: float
    ridge: float                   # peak / bandwidth of the dtype used
    dtype: str
    # 80 % bands (seconds; None where the engine has none for the regime)
    ttft_band: tuple[float, float] | None = None
    tpot_first_band: tuple[float, float] | None = None
    tpot_mean_band: tuple[float, float] | None = None
    total_band: tuple[float, float] | None = None
    prefill_regime: str = ""
    decode_regime: str = ""
    engine: str = ""               # the engine profile priced with ("" : none)
    fixed: float = 0.0             # the engine's seconds per pass outside the operators

    @property
    def throughput_band(self) -> tuple[float, float] | None:
        """Tokens per second at the ends of the total time's band (high time → low rate)."""
        if self.total_band is None:
            return None
        tokens = self.throughput * self.total
        return tokens / self.total_band[1], tokens / self.total_band[0]


def _generation(m: ModelSpec, hw: HardwareSpec, w: Workload) -> Generation:
    check_workload_tp(m, w.tp, w.ep)
    return generation(m, hw, w.context, w.generate, w.batch, **w.options())


def _times(gen: Generation) -> RooflineTimes:
    pre, dec = gen.prefill, gen.first_decode
    return RooflineTimes(ttft=gen.ttft, tpot_first=gen.tpot_first, tpot_mean=gen.tpot_mean,
                         total=gen.total_time, throughput=gen.throughput,
                         prefill_bound=pre.bound, decode_bound=dec.bound,
                         prefill_intensity=pre.intensity, decode_intensity=dec.intensity,
                         ridge=pre.ridge_point, dtype=pre.dtype, ttft_band=gen.ttft_interval,
                         tpot_first_band=gen.tpot_first_interval,
                         tpot_mean_band=gen.tpot_mean_interval, total_band=gen.total_interval,
                         prefill_regime=pre.regime, decode_regime=dec.regime,
                         engine=pre.efficiency.engine, fixed=pre.fixed)


def roofline_times(m: ModelSpec, hw: HardwareSpec, w: Workload) -> RooflineTimes:
    """The times the Roofline page shows for (model, hardware, workload): the same calls as
    ``cm.prefill`` / ``cm.decode_step`` / ``cm.generation`` with the workload's options."""
    return _times(_generation(m, hw, w))


@dataclass(frozen=True)
class RooflinePage:
    times: RooflineTimes
    prefill_ops: Any               # Analysis.ops of the prefill (DataFrame)
    decode_ops: Any
    max_batch: int                 # requests of s tokens that fit (0: not even one)
    first_compute: int | None      # first decode batch that is compute-bound, within max_batch
    batch_table: Any               # decode step vs batch
    png: bytes
    moe_png: bytes | None = None   # a mixture of experts: decode intensity vs batch
    n_experts: int = 0


def batch_scan_points(max_batch: int, cap: int = 1 << 16) -> np.ndarray:
    """Every batch 1 … max_batch (at most ``cap``; beyond, a geometric grid)."""
    top = max(int(max_batch), 1)
    if top <= cap:
        return np.arange(1, top + 1)
    return np.unique(np.concatenate([np.arange(1, cap + 1),
                                     np.geomspace(cap, top, 256).astype(np.int64)]))


def roofline_page(m: ModelSpec, hw: HardwareSpec, w: Workload) -> RooflinePage:
    """The Roofline page: the generation's times (with their bands), the per-operator tables,
    and the decode step over every batch that fits (``cm.sweep``): where it turns
    compute-bound and, for a mixture of experts, how many experts it touches."""
    gen = _generation(m, hw, w)
    pre, dec = gen.prefill, gen.first_decode
    chart = roofline_chart(pre, dec, labels=["prefill (q = s, c = 0)",
                                             "decode step (q = 1, c = s)"])
    top = max_batch_size(m, hw, w.context, tp=w.tp, **w.memory())
    scan = sweep(m, hw, batch=batch_scan_points(top), context=w.context, phase="decode",
                 **w.options())
    hit = scan.loc[scan["bound"] == "compute", "batch"]
    first = int(hit.iloc[0]) if top and len(hit) else None
    shown = sorted({int(b) for b in 2 ** np.arange(0, 21) if b <= max(top, 1)} | {max(top, 1)}
                   | ({first} if first else set()))
    table = scan[scan["batch"].isin(shown)].copy()
    columns = {"batch": "batch"}
    moe_png = None
    if m.moe:
        touched = architecture_formulas(m)
        u = touched["moe"]["experts_touched"](batch=table["batch"].to_numpy(dtype=float),
                                              n_experts=m.n_experts,
                                              experts_per_token=m.experts_per_token)
        table["experts"] = np.broadcast_to(u, table["batch"].shape)
        columns["experts"] = f"experts touched per layer (of {m.n_experts})"
        all_b = scan["batch"].to_numpy(dtype=float)
        u_all = touched["moe"]["experts_touched"](batch=all_b, n_experts=m.n_experts,
                                                  experts_per_token=m.experts_per_token)
        fig = decode_intensity_vs_batch(all_b, scan["intensity"].to_numpy(), pre.ridge_point,
                                        experts=np.broadcast_to(u_all, all_b.shape),
                                        n_experts=m.n_experts, first_compute=first,
                                        title=f"{m.name} decode on {hw.name}, s = {w.context}")
        moe_png = png(fig, SIDE)
    table["time"] = table["time"] * 1e3
    columns.update({"intensity": "FLOPs/byte", "time": "step time (ms)"})
    if "time_lo" in table and table["time_lo"].notna().any():
        table["time_lo"] = table["time_lo"] * 1e3
        table["time_hi"] = table["time_hi"] * 1e3
        columns.update({"time_lo": "80 % band low (ms)", "time_hi": "80 % band high (ms)"})
    columns.update({"tokens_per_s": "tokens/s", "bound": "bound"})
    table["bound"] = table["bound"].astype(str)
    table = table[list(columns)].rename(columns=columns)
    return RooflinePage(times=_times(gen), prefill_ops=pre.ops, decode_ops=dec.ops,
                        max_batch=top, first_compute=first,
                        batch_table=display_frame(table.reset_index(drop=True)),
                        png=png(chart), moe_png=moe_png, n_experts=m.n_experts)


# ---------------------------------------------------------------- Attention page
@dataclass(frozen=True)
class AttentionPage:
    cases: Any                     # exact counts beside the course text's, at (N, d, B, b)
    vs_n: Any                      # prefill intensity vs N
    vs_b: Any                      # decode intensity vs B
    png_n: bytes
    png_b: bytes


def attention_page(a: AttentionSettings) -> AttentionPage:
    d, n, batch, b = a.d, a.n, a.batch, a.bytes_per_element
    rows = []
    for label, phase, bb, kw in (
            ("prefill, standard (exact)", "prefill", 1, {}),
            ("prefill, fused / FlashAttention", "prefill", 1, {"attention": "fused"}),
            ("prefill, E0294 text's counts", "prefill", 1, {"convention": "e0294"}),
            ("decode, 1 request (exact)", "decode", 1, {}),
            ("decode, 1 request, E0294 text's counts", "decode", 1, {"convention": "e0294"}),
            (f"decode, B = {batch}, per-request K/V (serving)", "decode", batch, {}),
            (f"decode, B = {batch}, shared K/V", "decode", batch, {"kv": "shared"}),
            (f"decode, B = {batch}, E0294 text's formula", "decode", batch,
             {"convention": "e0294"})):
        r = attention_counts(n, d, phase, bb, b, **kw)
        rows.append({"case": label, "FLOPs": float(r["flops"]), "bytes": float(r["bytes"]),
                     "FLOPs/byte": float(r["intensity"])})
    ns = np.array(sorted({128, 256, 512, 1024, 2048, 4096, 8192, n}))
    bs = np.array(sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, batch}))
    vs_n = pd.DataFrame({"N (tokens)": ns,
                         "standard (exact)": attention_intensity(ns, d, "prefill", 1, b),
                         "fused": attention_intensity(ns, d, "prefill", 1, b,
                                                      attention="fused"),
                         "E0294 text": attention_intensity(ns, d, "prefill", 1, b,
                                                           convention="e0294")})
    vs_b = pd.DataFrame({"B (requests)": bs,
                         "per-request K/V": np.broadcast_to(
                             attention_intensity(n, d, "decode", bs, b), bs.shape),
                         "shared K/V": attention_intensity(n, d, "decode", bs, b, kv="shared"),
                         "E0294 text": attention_intensity(n, d, "decode", bs, b,
                                                           convention="e0294")})
    return AttentionPage(display_frame(pd.DataFrame(rows)), display_frame(vs_n),
                         display_frame(vs_b), png(intensity_vs_n(d, ns, b), SIDE, ylog=True),
                         png(intensity_vs_batch(n, d, bs, b), SIDE))


# ---------------------------------------------------------------- Speculative page
@dataclass(frozen=True)
class SpeculativePage:
    """One speculative iteration priced through the roofline, and the improvement vs γ."""

    target_step: float             # seconds of one target decode step at s
    draft_step: float              # seconds of one draft decode step at s
    verify: float                  # seconds of the target verifying γ + 1 tokens
    cost_ratio: float              # c = draft step / target step
    expected_tokens: float         # E(α, γ) per iteration
    speedup: float                 # roofline improvement
    speedup_simple: float          # the c-only formula E / (γc + 1)
    verify_over_step: float
    best_gamma: int
    table: Any
    png: bytes
    target_band: tuple[float, float] | None = None   # 80 % bands of the two steps
    draft_band: tuple[float, float] | None = None


GAMMA_COLUMNS = {"gamma": "γ", "expected_tokens": "tokens per iteration E",
                 "speedup": "speedup (×)", "no_bonus": "speedup, no bonus token (×)"}


def speculative_page(target: ModelSpec, hw: HardwareSpec, w: Workload,
                     s: SpeculativeSettings) -> SpeculativePage:
    """Target and draft decode on one GPU (TP = 1, EP = 1) at the workload's context and
    batch, with the workload's engine and formats (the draft's weights in the same format)."""
    draft = model_preset(s.draft)
    opts = {k: v for k, v in w.options().items() if k not in ("tp", "ep")}
    r = speculative_speedup(target, draft, hw, s.alpha, s.gamma, context=w.context,
                            batch=w.batch, **opts)
    bands = [decode_step(x, hw, w.context, w.batch, **opts).time_interval
             for x in (target, draft)]
    ratio = r["cost_ratio"]
    gammas = np.arange(1, max(16, s.gamma) + 1)
    table = pd.DataFrame({GAMMA_COLUMNS["gamma"]: gammas,
                          GAMMA_COLUMNS["expected_tokens"]: expected_tokens(s.alpha, gammas),
                          GAMMA_COLUMNS["speedup"]: speedup(s.alpha, gammas, ratio),
                          GAMMA_COLUMNS["no_bonus"]: speedup(s.alpha, gammas, ratio,
                                                             bonus=False)})
    return SpeculativePage(
        target_step=r["target_step_s"], draft_step=r["draft_step_s"], verify=r["verify_s"],
        cost_ratio=ratio, expected_tokens=r["expected_tokens"], speedup=r["speedup"],
        speedup_simple=r["speedup_simple"], verify_over_step=r["verify_over_step"],
        best_gamma=optimal_gamma(s.alpha, ratio), table=display_frame(table),
        png=png(speedup_vs_gamma(s.alpha, ratio, gammas), SIDE), target_band=bands[0],
        draft_band=bands[1])


# ---------------------------------------------------------------- Formulas page
@dataclass(frozen=True)
class ShownFormula:
    """A formula, the same with the numbers put in, and the result ("show your work")."""

    title: str                     # description (unit) and a note
    latex: str
    substituted: str
    result: str                    # LaTeX of the result


def show_formula(f: Formula, values: dict, note: str = "") -> ShownFormula:
    result = f.exact(**values)
    if isinstance(result, int) and abs(result) < 10**15:
        shown = f"{result:,}"
    else:
        shown = f"{float(result):,.6g}"
    return ShownFormula(f"**{f.description}** ({f.unit}){note}", f.latex(),
                        r"\small = " + f.substituted(**values),
                        r"= \mathbf{" + shown.replace(",", "{,}") + "}")


def memory_formulas(m: ModelSpec, w: Workload) -> list[ShownFormula]:
    """P, W and the KV cache per token / request / batch (the model's own: windows and latent
    attention change them; the workload's MLA cache layout)."""
    vals = _memory_values(m, w)
    kv = kv_formulas(m, w.mla)
    return [show_formula(f, vals) for f in (param_count_formula(m), weight_memory_formula(m),
                                            kv["per_token"], kv["per_request"], kv["batch"])]


def max_batch_shown(m: ModelSpec, w: Workload, hw: HardwareSpec) -> ShownFormula:
    """B_max with the hardware's memory, u = 1, R = 0 (and the workload's EP and MLA cache)."""
    check_workload_tp(m, w.tp, w.ep)
    return show_formula(max_batch_formula(m, w.mla, w.ep > 1),
                        dict(_memory_values(m, w), memory=hw.memory_bytes),
                        f" — M = {hw.name}'s memory, u = 1 usable, R = 0 reserved")


def _memory_values(m: ModelSpec, w: Workload) -> dict:
    """The numbers the memory formulas take: the model's, the workload's (its widths for the
    weights and the routed experts, as the pages' analyses use them; its TP and EP group)."""
    return dict(model_values(m), context=w.context, batch=w.batch, tp=w.tp,
                weight_bytes=w.weight_bytes, expert_weight_bytes=w.expert_bytes,
                kv_bytes=w.kv_bytes, mem_util=1, reserved=0, ep=w.ep,
                dp=w.ep // w.tp if w.ep > 1 else 1, expert_params=expert_param_count(m))


def architecture_formula_list(m: ModelSpec, w: Workload) -> list[tuple[str, list[ShownFormula]]]:
    """(title, formulas) per modern-architecture part of ``m`` (mixture of experts, latent
    attention, sliding window) from :func:`costmodel.catalog.architecture_formulas`, with the
    workload's numbers put in (a decode step of B sequences at context s)."""
    check_workload_tp(m, w.tp, w.ep)
    options = Options(mla=w.mla, expert_parallel=w.ep > 1)
    vals = _memory_values(m, w)
    out = []
    for part, found in architecture_formulas(m, options).items():
        title = PARTS[part]
        if part == "moe":
            title += (f" — B = {w.batch} sequences, TP = {w.tp}, EP = {w.ep}, b_w = "
                      f"{w.weight_bytes:.6g}, b_we = {w.expert_bytes:.6g}")
        elif part == "mla":
            title += f" — b_kv = {w.kv_bytes:g}"
        else:
            title += f" — s = {w.context}, b_kv = {w.kv_bytes:g}"
        out.append((title, [show_formula(f, vals) for f in found.values()]))
    return out


def attention_formula_list(d: int, w: Workload) -> list[ShownFormula]:
    """Attention intensity at N = s, d = d_h, B, b = b_kv: exact and the E0294 text's."""
    vals = {"n": w.context, "head_dim": d, "batch": w.batch, "bytes_per_element": w.kv_bytes}
    out = []
    for phase in ("prefill", "decode"):
        out.append(show_formula(attention_formulas(phase, attention=w.attention)["intensity"],
                                vals))
        out.append(show_formula(attention_formulas(phase, convention="e0294")["intensity"],
                                vals, " — the E0294 text's counts"))
    return out


def speculative_formulas(alpha: float, gamma: int, cost_ratio: float) -> list[ShownFormula]:
    vals = {"alpha": alpha, "gamma": gamma, "cost_ratio": round(cost_ratio, 6)}
    return [show_formula(EXPECTED_TOKENS, vals), show_formula(SPEEDUP, vals)]


# ---------------------------------------------------------------- Validation page
@dataclass(frozen=True)
class ValidationResults:
    """The committed output of ``costmodel validate`` (data/validation): the tables found
    (headline, errors, points, speculative), the figures (title → PNG bytes), and one line per
    file that is there but cannot be shown."""

    tables: dict
    figures: dict
    problems: tuple[str, ...]


def read_table(path: Path):
    """A CSV file as a display frame; ValueError naming the file when it cannot be read."""
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_DATA_FILE_BYTES:
            raise ValueError(f"{name}: {size:,} bytes is too large to show")
        df = pd.read_csv(path)
    except ValueError as e:          # pandas' ParserError and EmptyDataError are ValueErrors
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else "unreadable"
        raise ValueError(f"{name}: not a readable CSV table ({text})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{name}: cannot be read ({type(e).__name__})") from None
    if df.columns.empty:
        raise ValueError(f"{name}: the file holds no columns")
    return display_frame(df)


def validation_results(folder: Path = VALIDATION_DIR) -> ValidationResults:
    tables, figures, problems = {}, {}, []
    if folder.is_dir():
        for key, name in VALIDATION_TABLES.items():
            path = folder / name
            if path.is_file():
                try:
                    tables[key] = read_table(path)
                except ValueError as e:
                    problems.append(str(e))
        for name, title in VALIDATION_FIGURES.items():
            path = folder / name
            if not path.is_file():
                continue
            try:
                data = path.read_bytes() if path.stat().st_size <= MAX_DATA_FILE_BYTES else b""
            except OSError:
                data = b""
            if data.startswith(PNG_MAGIC):
                figures[title] = data
            else:
                problems.append(f"{name}: not a PNG image (or too large to show)")
    return ValidationResults(tables, figures, tuple(problems))


def measurement_files(folder: Path = MEASUREMENTS_DIR) -> list[Path]:
    """CSV files under data/measurements (empty when the folder does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.csv") if p.is_file())


__all__ = ["AttentionPage", "CONTEXTS", "MaxBatchChart", "MemoryBasics", "MemoryPlan",
           "RooflinePage", "RooflineTimes", "ShownFormula", "SpeculativePage",
           "ValidationResults", "architecture_formula_list", "attention_formula_list",
           "attention_page",
           "batch_scan_points", "max_batch_chart", "measurement_files", "memory_basics",
           "max_batch_shown", "memory_formulas", "memory_plan", "param_table", "png", "read_table",
           "roofline_page", "roofline_times", "show_formula", "speculative_formulas",
           "speculative_page", "tp_table", "validation_results"]
