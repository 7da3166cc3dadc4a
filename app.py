"""costmodel — the Streamlit app: inference cost of a decoder-only transformer on a GPU.

    streamlit run app.py

This file sets the page up and navigates. The sidebar (costmodel/app/sidebar.py) builds a
ModelSpec, a HardwareSpec and a Workload; each page (costmodel/app/pages/) calls computations
of costmodel/app/compute*.py, cached by their arguments, and shows their tables (CSV download),
figures (PNG download) and formulas. The state lives in the URL query parameters
(costmodel/app/session.py), so a configuration can be shared by link. Every section, the
sidebar's included, is guarded (costmodel/app/widgets.py): an error becomes one message and the
rest of the app keeps working.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from costmodel.app import state
from costmodel.app.pages import attention, formulas, memory, plan, roofline, speculative, validation
from costmodel.app.session import init_state, sync_url
from costmodel.app.sidebar import Sidebar, sidebar
from costmodel.app.widgets import ERR, WARN, guarded, ss

st.set_page_config(page_title="costmodel — LLM inference cost", page_icon="🧮", layout="wide")
# Metric values a little smaller than Streamlit's default, so exact numbers fit five abreast.
# Long substituted formulas scroll sideways instead of being cut off.
CSS = ("<style>[data-testid='stMetricValue'] {font-size: 1.65rem;} "
       ".katex-display {overflow-x: auto; overflow-y: hidden; padding: 2px 0;}</style>")

PAGES: dict[str, Callable[[Sidebar], None]] = dict(zip(state.PAGES, (
    memory.page, roofline.page, attention.page, speculative.page, formulas.page,
    validation.page, plan.page), strict=True))


def main() -> None:
    guarded(init_state, where="Link")
    st.html(CSS)
    st.title("costmodel — what does serving this LLM cost?")
    st.caption("An analytical calculator for decoder-only transformers: exact parameter and "
               "KV-cache counts, max batch under tensor parallelism, and a per-operator "
               "roofline (closed-form sympy formulas). Pick a model, a GPU and a workload on "
               "the left.")
    for warning in ss.pop("_url_warnings", []):
        st.warning(f"Link: {warning}", icon=WARN)
    if "_callback_error" in ss:
        st.error(f"An input could not be applied ({ss.pop('_callback_error')}); the rest "
                 "still works.", icon=ERR)
    page = guarded(st.radio, "Page", state.PAGES, key="page", horizontal=True,
                   label_visibility="collapsed") or state.PAGES[0]
    side = sidebar()
    guarded(PAGES[page], side)
    guarded(sync_url)


guarded(main)
