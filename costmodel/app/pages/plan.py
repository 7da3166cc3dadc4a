"""The Plan a deployment page: the cheapest deployment of the sidebar's model that serves a
request rate within TTFT and TPOT targets (``costmodel.app.plan``): the cheapest configuration's
metrics, the ranked table, the Pareto chart, and its memory per GPU with the formulas."""

from __future__ import annotations

import streamlit as st

from costmodel.app.display import slug
from costmodel.app.plan import DEFAULT_GPUS, gpu_options, plan_page
from costmodel.app.sidebar import Sidebar
from costmodel.app.widgets import cached, figure, metric, table

plan_bundle = cached(plan_page, max_entries=16)


def page(side: Sidebar) -> None:
    m = side.need_model()
    st.caption("The cheapest deployment of the sidebar's model that serves a request rate "
               "within TTFT and TPOT targets: GPU type × TP × PP × EP × weight format × "
               "max_num_batched_tokens × max_num_seqs × replicas, vLLM's memory accounting, "
               "continuous batching with chunked prefill, on-demand prices (tuned engine).")
    cols = st.columns(5)
    rate = cols[0].number_input("Requests/s", 0.01, 1e5, 50.0, key="plan_rate")
    s_in = cols[1].number_input("Prompt tokens", 1, 2**20, 2048, key="plan_in")
    n_out = cols[2].number_input("Output tokens", 1, 2**20, 256, key="plan_out")
    ttft = cols[3].number_input("TTFT target, ms", 1.0, 1e6, 1000.0, key="plan_ttft")
    tpot = cols[4].number_input("TPOT target, ms", 0.1, 1e6, 50.0, key="plan_tpot")
    cols = st.columns([3, 1, 1])
    gpus = cols[0].multiselect("GPUs", gpu_options(), list(DEFAULT_GPUS), key="plan_gpus")
    arrivals = cols[1].selectbox("Arrivals", ["poisson", "uniform"], key="plan_arrivals")
    max_util = cols[2].slider("Max utilisation", 0.1, 1.0, 0.8, 0.05, key="plan_util")
    with st.spinner("Searching…"):
        b = plan_bundle(m, tuple(gpus), float(rate), int(s_in), int(n_out), float(ttft),
                        float(tpot), arrivals, float(max_util))
    best = b["best"]
    st.caption(b["note"])
    cols = st.columns(5)
    metric(cols[0], "Cheapest", f"{best['gpu']} × {best['gpus']}",
           f"TP{best['tp']} PP{best['pp']} EP{best['ep']} {best['quant']}, "
           f"{best['replicas']} replicas")
    metric(cols[1], "$ / hour", f"{best['usd_per_hour']:,.2f}")
    metric(cols[2], "$ / Mtok", f"{best['usd_per_mtok']:.4f}",
           f"input {best['usd_per_mtok_input']:.4f}, output {best['usd_per_mtok_output']:.4f}")
    metric(cols[3], "TTFT / TPOT", f"{best['ttft_s'] * 1e3:.0f} / {best['tpot_s'] * 1e3:.1f} ms")
    metric(cols[4], "J / token", f"{best['j_per_token']:.3f}",
           f"{best['kwh_per_mtok']:.4f} kWh per Mtok")
    name = slug("plan", m.name, f"{rate:g}")
    table(b["table"], name)
    left, right = st.columns([3, 2])
    with left:
        figure(b["png"], f"pareto_{name}")
    with right:
        st.markdown(f"**Memory of the cheapest, per GPU** — {b['reason']}")
        table(b["memory"], f"memory_{name}")
        for term, latex in b["formulas"]:
            st.markdown(f"*{term}*")
            st.latex(latex)


__all__ = ["page"]
