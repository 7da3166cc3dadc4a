"""The Formulas page: each quantity as one sympy expression — the formula, the same with the
current numbers substituted, and the exact result — for the model's memory and architecture,
attention intensity and speculative decoding."""

from __future__ import annotations

import streamlit as st

from costmodel.app import compute_formulas, state
from costmodel.app.pages.speculative import speculative_page
from costmodel.app.sidebar import Sidebar
from costmodel.app.widgets import cached, guarded, ss

memory_formulas = cached(compute_formulas.memory_formulas)
architecture_formulas = cached(compute_formulas.architecture_formula_list)
max_batch_shown = cached(compute_formulas.max_batch_shown)
attention_formulas = cached(compute_formulas.attention_formula_list)
speculative_formulas = cached(compute_formulas.speculative_formulas)


def show(items: list[compute_formulas.ShownFormula]) -> None:
    for f in items:
        st.markdown(f.title)
        st.latex(f.latex)
        st.latex(f.substituted)
        st.latex(f.result)


def page(side: Sidebar) -> None:
    st.caption("Each quantity is one sympy expression: below, the formula, then the same with "
               "the current numbers substituted and the result (exact).")
    guarded(_formulas_model, side)
    guarded(_formulas_attention, side)
    guarded(_formulas_speculative, side)


def _formulas_model(side: Sidebar) -> None:
    m, w = side.need_model(), side.need_workload()
    st.subheader(f"Memory — {m.name}")
    show(memory_formulas(m, w))
    guarded(lambda: show([max_batch_shown(m, w, side.need_hw())]))
    for title, items in architecture_formulas(m, w):
        st.subheader(title)
        show(items)


def _formulas_attention(side: Sidebar) -> None:
    w = side.need_workload()
    d = side.model.head_dim if side.model is not None else 128
    st.subheader(f"Attention intensity — N = s = {w.context}, d = d_h = {d}, B = {w.batch}, "
                 "b = b_kv")
    show(attention_formulas(d, w))


def _formulas_speculative(side: Sidebar) -> None:
    s = state.SpeculativeSettings.of(ss)
    try:
        target, hw, w = side.need_model(), side.need_hw(), side.need_workload()
        ratio = speculative_page(target, hw, w, s).cost_ratio
        where = f"c from the roofline ({s.draft} drafting for {target.name})"
    except ValueError:
        ratio, where = 0.05, "c = 0.05 (no valid model/hardware to derive it)"
    st.subheader(f"Speculative decoding — α = {s.alpha:g}, γ = {s.gamma}, {where}")
    show(speculative_formulas(s.alpha, s.gamma, ratio))


__all__ = ["page", "show"]
