"""The Speculative decoding page: the draft's cost ratio c = T_draft / T_target priced through
the roofline, the expected tokens per iteration, the speedup (roofline and c-only formula), the
optimal γ, and the speedup vs γ."""

from __future__ import annotations

import streamlit as st

from costmodel.app import compute_speculative, state
from costmodel.app.display import fixed_text, slug, weights_label
from costmodel.app.sidebar import Sidebar
from costmodel.app.state import FIELDS
from costmodel.app.widgets import NUM, cached, figure, metric, ss, table
from costmodel.units import band_text

speculative_page = cached(compute_speculative.speculative_page)


def speculative_fields() -> None:
    f = FIELDS
    cols = st.columns(3)
    cols[0].slider("Acceptance rate α", f["alpha"].lo, f["alpha"].hi, step=0.01, key="alpha")
    cols[1].number_input("Drafted tokens γ", f["gamma"].lo, f["gamma"].hi, step=1,
                         key="gamma")
    cols[2].selectbox("Draft model", f["draft"].options(), key="draft",
                      format_func=state.model_label)


def page(side: Sidebar) -> None:
    speculative_fields()
    target, hw, w = side.need_model(), side.need_hw(), side.need_workload()
    s = state.SpeculativeSettings.of(ss)
    r = speculative_page(target, hw, w, s)
    engine = f", engine {w.engine}" if w.engine else ""
    st.caption(f"Target {target.name}, draft {s.draft} on {hw.name}, TP = 1, EP = 1, context "
               f"s = {w.context}, B = {w.batch}, weights {weights_label(w)}{engine}. One "
               "iteration: γ draft decode steps + one target pass verifying γ + 1 tokens, "
               "priced through the roofline.")
    cols = st.columns(5)
    metric(cols[0], "Cost ratio c = T_draft / T_target", fixed_text(r.cost_ratio, 4),
           f"draft step {band_text(r.draft_step, r.draft_band)} / target step "
           f"{band_text(r.target_step, r.target_band)}")
    metric(cols[1], "Expected tokens per iteration", f"{r.expected_tokens:.3f}",
           "(1 − α^(γ+1)) / (1 − α)")
    metric(cols[2], "Speedup (roofline)", f"{r.speedup:.3f}×",
           f"verify pass = {r.verify_over_step:.3f} × a target step")
    metric(cols[3], "Speedup (c-only formula)", f"{r.speedup_simple:.3f}×", "E / (γc + 1)")
    metric(cols[4], "Optimal γ", f"{r.best_gamma}",
           f"for α = {s.alpha:g}, c = {r.cost_ratio:.3g}")
    left, right = st.columns([1, 1])
    name = slug(target.name, s.draft, hw.name, f"a{s.alpha:g}")
    with left:
        table(r.table, f"speculative_{name}",
              {c: NUM(format="%.4f") for c in r.table.columns[1:]}, width="stretch")
    with right:
        figure(r.png, f"speedup_vs_gamma_{name}")


__all__ = ["page", "speculative_page"]
