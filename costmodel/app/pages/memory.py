"""The Memory page: parameters, weight memory, the KV cache per token and per request, the max
batch that fits (and why), the KV cache by layer type, max batch vs context and TP, the
tensor-parallel plan, the parameters by component and the course's count beside the exact one."""

from __future__ import annotations

import streamlit as st

from costmodel.app import compute, inputs, state
from costmodel.app.display import count_text, fixed_text, slug, weights_label
from costmodel.app.sidebar import Sidebar
from costmodel.app.state import Workload
from costmodel.app.widgets import ERR, NUM, cached, guarded, metric, table, table_and_figure
from costmodel.specs import ModelSpec
from costmodel.units import GB, GIB

memory_basics = cached(compute.memory_basics)
memory_plan = cached(compute.memory_plan)
max_batch_chart = cached(compute.max_batch_chart)


def gib_text(nbytes: float, digits: int = 2) -> str:
    return fixed_text(nbytes / GIB, digits, "GiB")


def page(side: Sidebar) -> None:
    m, w = side.need_model(), side.need_workload()
    s = w.context
    base = memory_basics(m, s, w.weight_bytes, w.kv_bytes, w.expert_weight_bytes, w.mla)
    st.caption("GB = 10⁹ bytes, GiB = 2³⁰ bytes. Device memory is what the GPU reports "
               "(an '80 GB' A100 reports 80 GiB). The max batch is the number of concurrent "
               f"requests of s = {s} tokens whose KV cache fits beside the weights.")
    cols = st.columns(5)
    metric(cols[0], "Parameters", count_text(base.params),
           f"{fixed_text(base.params / 1e9, 3)} billion"
           + (" (exact)" if base.params < 10**15 else "")
           + (f"; active per token {fixed_text(base.active / 1e9, 3)} billion"
              if m.moe else ""))
    checkpoint = ""
    if base.checkpoint_weights is not None and base.checkpoint_weights != base.weights:
        checkpoint = (f"; at the checkpoint's formats ({state.checkpoint_formats(m)}): "
                      f"{gib_text(base.checkpoint_weights)}")
    metric(cols[1], f"Weight memory ({weights_label(w)})", gib_text(base.weights),
           f"= {fixed_text(base.weights / GB, 2)} GB = {fixed_text(base.weights, 0)} bytes"
           f"{checkpoint}")
    metric(cols[2], "KV cache per token", fixed_text(base.kv_token, 0, "bytes"),
           f"= {fixed_text(base.kv_token / 2**10, 1)} KiB, all layers, "
           + ("the latent" if m.mla and w.mla != "expanded" else "K and V")
           + (" (within the window)" if m.window_layers and m.sliding_window else ""))
    metric(cols[3], f"KV cache per request (s = {s})", gib_text(base.kv_request, 4),
           f"= {fixed_text(base.kv_request / GB, 4)} GB = {fixed_text(base.kv_request, 0)} bytes")
    with cols[4]:
        guarded(_max_batch_metric, side)
    guarded(_architecture_metrics, m, w, base)
    guarded(_memory_sections, side, base)


def _architecture_metrics(m: ModelSpec, w: Workload, base: compute.MemoryBasics) -> None:
    """Active parameters; the KV cache per layer type (windows) or per cache layout (MLA)."""
    s = w.context
    cols = st.columns(4)
    metric(cols[0], "Active per token", count_text(base.active),
           f"parameters one token uses, {100 * base.active / base.params:.1f} % of the total: "
           f"every non-expert parameter + k/E = {m.experts_per_token}/{m.n_experts} of the "
           "routed experts'. The input embedding counts (vendors differ on that)." if m.moe
           else "parameters one token uses — dense: all of them")
    if m.sliding_window and m.window_layers:
        metric(cols[1], f"KV per token at s = {s}",
               fixed_text(base.kv_token_at_context, 0, "bytes"),
               f"per request / s: the {m.window_layers} window layers hold at most "
               f"W − 1 = {count_text(m.sliding_window - 1)} tokens")
        metric(cols[2], f"KV full-attention layers (s = {s})", gib_text(base.kv_full, 4),
               f"{m.n_layers - m.window_layers} layers × s tokens")
        metric(cols[3], f"KV window layers (s = {s})", gib_text(base.kv_window, 4),
               f"{m.window_layers} layers × min(s, W − 1) = "
               f"{count_text(min(s, m.sliding_window - 1))} tokens")
    if m.mla and base.kv_token_other is not None:
        other = "expanded (Hugging Face)" if w.mla != "expanded" else "latent (serving)"
        metric(cols[1], f"KV per token, {other}", fixed_text(base.kv_token_other, 0, "bytes"),
               f"{base.kv_token_other / base.kv_token:.3g}× the {state.MLA_LABELS[w.mla]} cache")


def _memory_plan(side: Sidebar) -> compute.MemoryPlan:
    m, hw, w = side.need_model(), side.need_hw(), side.need_workload()
    inputs.check_workload_tp(m, w.tp, w.ep)
    return memory_plan(m, hw, w, inputs.table_tps(m, w.tp, w.ep))


def _max_batch_metric(side: Sidebar) -> None:
    if side.hw is None or side.workload is None:
        metric(st, "Max batch", "—", "needs a valid hardware and workload (see the sidebar)")
        return
    w, mp = side.need_workload(), _memory_plan(side)
    ep = f", EP = {w.ep}" if w.ep > 1 else ""
    metric(st, f"Max batch (s = {w.context}, TP = {w.tp}{ep})", count_text(mp.plan.max_batch),
           f"on {side.need_hw().name}; at s + g = {w.context + w.generate}: "
           f"{count_text(mp.full.max_batch)}")


def _memory_sections(side: Sidebar, base: compute.MemoryBasics) -> None:
    m, hw, w = side.need_model(), side.need_hw(), side.need_workload()
    mp = _memory_plan(side)
    plan = mp.plan
    if plan.max_batch == 0:
        st.error(f"Nothing fits: {plan.reason}. Change: a larger TP, fewer bytes per weight "
                 "or KV element, a shorter context, or a GPU with more memory.", icon=ERR)
    else:
        st.success(f"**Why {count_text(plan.max_batch)}:** {plan.reason}.")
    if plan.kv_replication > 1 and m.mla and w.mla != "expanded":
        st.info(f"The latent KV cache is shared by the heads, so each of the TP = {w.tp} GPUs "
                "holds all of it: the per-GPU KV cache does not shrink with TP.")
    elif plan.kv_replication > 1:
        st.warning(f"TP = {w.tp} exceeds the {m.n_kv_heads} KV heads: each KV head is "
                   f"replicated on {plan.kv_replication} GPUs, so the per-GPU KV cache stops "
                   "shrinking with TP.")
    if m.moe:
        if w.ep > 1:
            dp = (f"the attention runs as DP = EP/TP = {plan.dp} replicas, each holding its "
                  f"own requests' KV cache, so the group serves {plan.dp} × the batch of one "
                  "replica" if plan.dp > 1 else
                  "the attention runs on the TP group as it does without EP (DP = EP/TP = 1)")
            st.info(f"**Expert parallelism EP = {w.ep}:** {m.n_experts // w.ep} of the "
                    f"{m.n_experts} routed experts lie whole on each GPU; {dp}.")
        else:
            st.caption(f"Every one of the {m.n_experts} routed experts is sliced over the "
                       f"TP = {w.tp} GPUs; set EP in the sidebar to hold them whole.")
    name = slug(m.name, hw.name)
    if base.kv_layers is not None:
        st.subheader(f"KV cache by layer type at s = {w.context}")
        table(base.kv_layers, f"kv_by_layer_type_{name}_s{w.context}", {
                "tokens held per layer": NUM(format="localized"),
                "KV bytes per request": NUM(format="localized"),
                "GiB per request": NUM(format="%.4f")})
    st.subheader("Max batch vs context and TP")
    vs = max_batch_chart(m, hw, inputs.table_tps(m, w.tp, w.ep), w.weight_bytes, w.kv_bytes,
                         w.expert_weight_bytes, w.ep, w.mla)
    table_and_figure(vs.table, vs.png, f"max_batch_{name}",
                     {c: NUM(format="localized") for c in vs.table.columns})
    st.subheader(f"Tensor parallelism at s = {w.context}")
    table(mp.tp_table, f"tp_plan_{name}_s{w.context}", {
        "weights per GPU (GiB)": NUM(format="%.3f"),
        "KV per request per GPU (MiB)": NUM(format="%.2f"), "max batch": NUM(format="localized"),
        "why": st.column_config.TextColumn(width="large")})
    st.subheader(f"Parameters by component ({weights_label(w)})")
    table(base.table, f"params_{name}", {
        "parameters": NUM(format="localized"), "share (%)": NUM(format="%.2f"),
        "bytes per weight": NUM(format="%.6g"),
        "weight bytes": NUM(format="localized"), "weight GB (1e9 B)": NUM(format="%.3f"),
        "weight GiB (2^30 B)": NUM(format="%.3f")})
    with st.expander("Course convention: the E0294 text's parameter count"):
        then = ("" if mp.e0294 is None else
                f"; with its count the max batch would be **{count_text(mp.e0294.max_batch)}** "
                f"instead of **{count_text(plan.max_batch)}**")
        st.markdown(
            f"The E0294 text counts **{count_text(base.e0294_params)}** parameters for this "
            f"architecture (two MLP matrices, no W_O, MLP biases, no norms) instead of the "
            f"exact **{count_text(base.params)}**{then} (see `costmodel.conventions`).")


__all__ = ["page"]
