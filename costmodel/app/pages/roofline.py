"""The Roofline page: TTFT, time per output token and throughput (with the engine's 80 % bands),
the bounds, where decode turns compute-bound, the roofline chart, the per-operator tables of a
prefill and a decode step, the experts' fill-up (MoE) and the decode step vs batch."""

from __future__ import annotations

import streamlit as st

from costmodel.app import compute_roofline, inputs
from costmodel.app.display import count_text, fixed_text, rate_text, slug, weights_label
from costmodel.app.display import ops_display as ops_table
from costmodel.app.sidebar import Sidebar
from costmodel.app.widgets import DL, ERR, NUM, cached, figure, metric, table
from costmodel.presets import engine as engine_preset
from costmodel.units import band_text, time_text

roofline_page = cached(compute_roofline.roofline_page)


def band_caption(seconds: float, band: tuple[float, float] | None, regime: str,
                 engine: str) -> str:
    """'7.40 ms, 80 % band 6.30–8.90 ms', or why there is no band."""
    if band is not None:
        return band_text(seconds, band)
    why = f"the {engine} profile has none for {regime}" if engine else "no engine profile"
    return f"{time_text(seconds)}, no band ({why})"


def page(side: Sidebar) -> None:
    m, hw, w = side.need_model(), side.need_hw(), side.need_workload()
    r = roofline_page(m, hw, w)
    t = r.times
    if w.custom_efficiency:
        eta = f"custom η_c = {w.eta_c:g}, η_m = {w.eta_m:g}"
    elif t.engine:
        eta = f"the {t.engine} engine profile ({inputs.engine_text(engine_preset(t.engine))})"
    else:
        eta = f"{hw.name}'s efficiencies ({inputs.efficiency_text(hw)})"
    fixed = (f" + the engine's {time_text(t.fixed)} per pass (t_step + L·t_layer)"
             if t.fixed else "")
    ep = f", EP = {w.ep}" if w.ep > 1 else ""
    st.caption(f"Per operator t = max(F / (η_c·π), Q / (η_m·β)) + overhead on one GPU of the "
               f"TP group{fixed}, with {eta}; 1 multiply-add = 2 FLOPs; peak π = {t.dtype} "
               f"dense; weights {weights_label(w)}. Prefill is q = s new tokens on c = 0 "
               f"cached; a decode step q = 1 on c = s. B = {w.batch}, TP = {w.tp}{ep}.")
    cols = st.columns(5)
    metric(cols[0], "TTFT", time_text(t.ttft), "time to first token = the prefill pass; "
           + band_caption(t.ttft, t.ttft_band, t.prefill_regime, t.engine))
    first_step = band_caption(t.tpot_first, t.tpot_first_band, t.decode_regime, t.engine)
    metric(cols[1], "Time per output token", time_text(t.tpot_first),
           f"first decode step: {first_step}; mean over g = {w.generate}: "
           f"{band_text(t.tpot_mean, t.tpot_mean_band)}")
    rate_band = t.throughput_band
    metric(cols[2], "Throughput", rate_text(t.throughput, "tokens/s"),
           f"B·g = {count_text(w.batch * w.generate)} tokens in "
           f"{band_text(t.total, t.total_band)}"
           + ("" if rate_band is None else
              f"; {rate_text(rate_band[0], '')}–{rate_text(rate_band[1], 'tokens/s')}"))
    metric(cols[3], "Prefill bound", t.prefill_bound,
           f"intensity {fixed_text(t.prefill_intensity, 1)} FLOPs/byte")
    metric(cols[4], "Decode bound", t.decode_bound,
           f"intensity {fixed_text(t.decode_intensity, 2)} FLOPs/byte; ridge point "
           f"{fixed_text(t.ridge, 0)}")
    top, first = r.max_batch, r.first_compute
    if top == 0:
        st.error("The weights plus one request's KV cache do not fit in memory at this "
                 "context and TP (see the Memory page); the times below assume they did.",
                 icon=ERR)
    elif w.batch > top:
        st.warning(f"Batch {w.batch} exceeds the {count_text(top)} requests that fit in memory "
                   f"at s = {w.context}, TP = {w.tp}.")
    if first is not None:
        st.info(f"**Decode turns compute-bound at batch B = {first:,}** (scanning B = 1 … "
                f"{count_text(top)}, the max batch that fits at s = {w.context}).")
    elif top:
        why = ("the experts a batch touches and each request's KV reads grow with B"
               if m.moe else "each request's KV reads grow with B as fast as the FLOPs")
        st.info(f"**Decode never turns compute-bound within memory:** up to the max batch "
                f"{count_text(top)} every decode step stays memory-bound ({why}).")
    name = slug(m.name, hw.name, f"B{w.batch}", f"s{w.context}")
    figure(r.png, f"roofline_{name}", width="content")
    st.subheader("Per-operator roofline (totals over the layers)")
    fmt = {"GFLOP": NUM(format="%.4f"), "MB moved": NUM(format="%.3f"),
           "FLOPs/byte": NUM(format="%.2f"), "time (µs)": NUM(format="%.2f")}
    for tab, phase, ops in zip(st.tabs(["Prefill", "Decode step"]), ("prefill", "decode"),
                               (r.prefill_ops, r.decode_ops), strict=True):
        with tab:
            table(ops_table(ops), f"{phase}_ops_{name}", fmt)
            st.download_button("Download full CSV (all byte parts, exact units)",
                               ops.to_csv(index=False).encode(),
                               f"{phase}_ops_full_{name}.csv", "text/csv",
                               key=f"csv_{phase}_full", on_click="ignore", icon=DL)
    if r.moe_png is not None:
        st.subheader(f"Decode intensity vs batch as the experts fill up (s = {w.context})")
        st.caption(f"Each token reaches k = {m.experts_per_token} of the {m.n_experts} routed "
                   "experts of a layer; a batch of B tokens touches U = E (1 − (1 − k/E)^B) "
                   "of them (uniform routing), so the expert weights read grow with B until "
                   "all are touched, and only then does the intensity rise as a dense "
                   "model's does. Every batch that fits is priced by `cm.sweep`.")
        figure(r.moe_png, f"moe_decode_intensity_{name}")
    st.subheader(f"Decode step vs batch (context s = {w.context}, TP = {w.tp}{ep})")
    table(r.batch_table, f"decode_vs_batch_{name}", {
        "FLOPs/byte": NUM(format="%.2f"), "step time (ms)": NUM(format="%.3f"),
        "80 % band low (ms)": NUM(format="%.3f"), "80 % band high (ms)": NUM(format="%.3f"),
        "tokens/s": NUM(format="localized")} | {
        c: NUM(format="%.3f") for c in r.batch_table.columns if c.startswith("experts")})


__all__ = ["band_caption", "page"]
