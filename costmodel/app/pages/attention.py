"""The Attention intensity page: one head of size d over N tokens, standard vs fused
(FlashAttention) attention — exact FLOP and byte counts beside the E0294 text's, intensity vs N
(prefill) and vs the batch B (decode), against the hardware's ridge point."""

from __future__ import annotations

import streamlit as st

from costmodel.app import compute_attention, inputs, state
from costmodel.app.display import fixed_text
from costmodel.app.sidebar import Sidebar
from costmodel.app.state import FIELDS
from costmodel.app.widgets import NUM, cached, callback, ss, table, table_and_figure

attention_page = cached(compute_attention.attention_page)


def attention_fields() -> None:
    f = FIELDS
    cols = st.columns(4)
    cols[0].number_input("Head dim d", f["ai_d"].lo, f["ai_d"].hi, step=1, key="ai_d")
    cols[1].number_input("Sequence length N", f["ai_n"].lo, f["ai_n"].hi, step=1, key="ai_n")
    cols[2].number_input("Decode batch B", f["ai_batch"].lo, f["ai_batch"].hi, step=1,
                         key="ai_batch")
    cols[3].selectbox("Bytes per element b", state.BYTE_CHOICES, key="ai_b",
                      format_func=state.BYTE_LABELS.get)


def page(side: Sidebar) -> None:
    st.caption("One head of size d, sequence length N, b bytes per element (E0294 Assignment 4 "
               "Problem 1(c)/(d)). Standard attention writes S = QKᵀ and P = softmax(S) to "
               "memory and reads them back; fused (FlashAttention) does not.")
    attention_fields()
    a = state.AttentionSettings.of(ss)
    if side.model is not None and side.model.head_dim != a.d and \
            side.model.head_dim <= FIELDS["ai_d"].hi:
        st.button(f"Use {side.model.name}'s head dim d = {side.model.head_dim}",
                  on_click=callback(ss.__setitem__), args=("ai_d", side.model.head_dim))
    r = attention_page(a)
    st.subheader(f"At N = {a.n}, d = {a.d}, b = {a.bytes_per_element:g}: exact counts beside "
                 "the text's")
    table(r.cases, f"attention_cases_N{a.n}_d{a.d}", {
        "FLOPs": NUM(format="localized"), "bytes": NUM(format="localized"),
        "FLOPs/byte": NUM(format="%.4f")})
    if side.hw is not None and side.workload is not None:
        hw = side.hw
        ridge = hw.ridge_point(inputs.compute_dtype(hw, side.workload))
        st.caption(f"{hw.name}'s ridge point is {fixed_text(ridge, 0)} FLOPs/byte: attention "
                   "below it is memory-bound.")
    st.markdown(
        "Why they differ: the E0294 text's prefill bytes (4Nd + 3N² + Nd)·b miss one N² pass "
        "and add an Nd; its decode bytes ((2N + 1)d + 3N)·b miss the output write and one N "
        "pass; its batched decode ((2N + 1)d + 3NB)·b silently **shares K/V across the "
        "batch** — with per-request K/V (serving) the intensity does not grow with B.")
    for title, df, png, name in (
            ("Prefill: intensity vs N", r.vs_n, r.png_n, f"attention_vs_N_d{a.d}"),
            ("Decode: intensity vs B", r.vs_b, r.png_b, f"attention_vs_B_N{a.n}_d{a.d}")):
        st.subheader(title)
        table_and_figure(df, png, name, {c: NUM(format="%.3f") for c in df.columns[1:]})


__all__ = ["page"]
