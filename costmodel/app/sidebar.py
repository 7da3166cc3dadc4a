"""The app's sidebar: the model and hardware pickers (``costmodel.app.pickers``), the workload,
engine and efficiency fields, and :class:`Sidebar`, what they built for the pages. Every section
is guarded: an error is shown where it happened and the part it would have built stays None, so
a page names what to fix instead of failing."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from costmodel.app import inputs, state
from costmodel.app.pickers import HARDWARE, MODEL, hardware_text, model_text, pick
from costmodel.app.state import FIELDS, Workload
from costmodel.app.widgets import callback, guarded, ss
from costmodel.presets import engine as engine_preset
from costmodel.pricing import Efficiency
from costmodel.specs import HardwareSpec, ModelSpec


@dataclass
class Sidebar:
    """What the sidebar built: each part None when its section has an error."""

    model: ModelSpec | None = None
    hw: HardwareSpec | None = None
    workload: Workload | None = None
    model_error: str = "not set"
    hw_error: str = "not set"

    def need_model(self) -> ModelSpec:
        if self.model is None:
            raise ValueError(f"Model: {self.model_error} — fix the model in the sidebar.")
        return self.model

    def need_hw(self) -> HardwareSpec:
        if self.hw is None:
            raise ValueError(f"Hardware: {self.hw_error} — fix the hardware in the sidebar.")
        return self.hw

    def need_workload(self) -> Workload:
        if self.workload is None:
            raise ValueError("Workload: fix the workload in the sidebar.")
        return self.workload


def model_section(side: Sidebar) -> None:
    side.model, side.model_error = pick(MODEL)
    if side.model is not None:
        st.caption(model_text(side.model))


def hardware_section(side: Sidebar) -> None:
    side.hw, side.hw_error = pick(HARDWARE)
    h = side.hw
    if h is not None:
        ss["_hw_eta_c"], ss["_hw_eta_m"] = h.eta_c, h.eta_m
        st.caption(hardware_text(h, side.model))


def workload_fields(m: ModelSpec | None) -> None:
    f = FIELDS
    c1, c2 = st.columns(2)
    c1.number_input("Batch B", f["batch"].lo, f["batch"].hi, step=1, key="batch")
    c2.number_input("TP degree", f["tp"].lo, f["tp"].hi, step=1, key="tp",
                    help="GPUs the model is split over; must divide the query heads.")
    c1.number_input("Context s", f["context"].lo, f["context"].hi, step=1, key="context",
                    help="Prompt length in tokens: the prefill processes s tokens, a decode "
                    "step attends to s cached tokens, and the Memory page sizes the KV cache "
                    "for s tokens per request.")
    c2.number_input("Generate g", f["generate"].lo, f["generate"].hi, step=1,
                    key="generate", help="Tokens to generate per request.")
    lab = state.BYTE_LABELS.get
    st.selectbox("Weight format", state.QUANT_CHOICES, key="quant",
                 format_func=lambda q: state.quant_label(q, m),
                 help="auto: the formats the checkpoint is published in (DeepSeek-V3: fp8 with "
                 "128×128 block scales; GPT-OSS: MXFP4 experts), else the bytes per weight "
                 "below. A format sets the bytes per weight (scales included) and the matmuls' "
                 "dtype: fp8/int8/fp4 run at their own peak where the GPU has it, weight-only "
                 "formats (int8-wo, int4-gG) at the 16-bit peak. It applies to the routed "
                 "experts too.")
    if ss.get("quant", state.AUTO) == state.AUTO and not state.checkpoint_formats(m):
        st.selectbox("Bytes per weight b_w", state.BYTE_CHOICES, key="wbytes", format_func=lab)
    st.selectbox("Bytes per KV element b_kv", state.BYTE_CHOICES, key="kvbytes",
                 format_func=lab)
    st.selectbox("Bytes per activation b_a", state.ACT_BYTE_CHOICES, key="abytes",
                 format_func=lab)
    st.radio("Attention", state.ATTENTION, key="attention", horizontal=True,
             format_func=state.ATTENTION_LABELS.get,
             help="The engine's: fused for the tuned and llama.cpp profiles, eager (extra "
             "passes) for eager PyTorch, standard for the ideal roofline.")
    if m is not None and m.moe:
        st.number_input("Expert parallelism EP", f["ep"].lo, f["ep"].hi, step=1, key="ep",
                        help=f"GPUs holding the {m.n_experts} routed experts whole (E/EP each; "
                        "a multiple of TP dividing E). The attention runs as EP/TP replicas, "
                        "each holding its own requests' KV cache; tokens reach their experts "
                        "through two all-to-alls. 1: every expert sliced over the TP GPUs.")
    if m is not None and m.mla:
        st.radio("Latent-attention KV cache", FIELDS["mla"].options(), key="mla",
                 format_func=state.MLA_LABELS.get,
                 help=f"Serving engines cache the latent ({m.kv_lora_rank} + "
                 f"{m.qk_rope_head_dim} per layer per token) and fold the up-projections "
                 "(absorbed) or up-project the cache every pass (naive); Hugging Face caches "
                 f"the expanded per-head K and V ({m.n_heads} × ({m.qk_nope_head_dim} + "
                 f"{m.qk_rope_head_dim} + {m.v_head_dim})).")


def engine_fields(hw: HardwareSpec | None) -> None:
    st.selectbox("Engine", FIELDS["engine"].options(), key="engine",
                 help="An engine profile: the fractions of peak and bandwidth its kernels reach, "
                 "its fixed per-pass and per-layer overheads, its attention and its 80 % "
                 "error bands (costmodel/data/engines.csv, engine_bands.csv). ideal: the "
                 "roofline itself (with a fitted hardware JSON, that hardware's own "
                 "efficiencies).")
    e = engine_preset(ss.get("engine", state.DEFAULT_ENGINE))
    if e.name == state.DEFAULT_ENGINE and hw is not None and not Efficiency.of(hw).ideal:
        st.caption(f"ideal: no engine profile applied — {hw.name}'s own efficiencies price "
                   "every operator.")
    else:
        st.caption(f"**{e.name}**: {inputs.engine_text(e)}. {e.notes}")
    with st.expander("Engine profile source"):
        st.caption(e.source or "—")


@callback
def _on_eta_change() -> None:
    """Custom efficiencies start from the selected hardware's own η_c and η_m."""
    if ss["eta"] == "custom":
        for key in ("eta_c", "eta_m"):
            ss[key] = min(max(round(float(ss.get(f"_hw_{key}", 1.0)), 2), 0.01), 1.0)


def efficiency_fields(hw: HardwareSpec | None) -> None:
    st.radio("Efficiencies", state.ETA_SOURCES, key="eta", horizontal=True,
             format_func=state.ETA_LABELS.get, on_change=_on_eta_change,
             help="The hardware's: the efficiencies its spec carries (a datasheet preset is "
             "the ideal roofline, η = 1; a fitted hardware JSON brings its fitted η_c, η_m, "
             "the decode-GEMV and elementwise rates and the per-kernel overhead), then the "
             "engine profile's on top, so the app prices exactly as `cm.analyze` does with "
             "that engine on that hardware. Custom: η_c and η_m below replace them for every "
             "operator; the kernel and per-pass overheads stay.")
    if ss.get("eta") == "custom":
        c1, c2 = st.columns(2)
        c1.slider("η_c compute efficiency", 0.01, 1.0, step=0.01, key="eta_c",
                  help="Fraction of peak FLOP/s achieved (1 = ideal roofline).")
        c2.slider("η_m bandwidth efficiency", 0.01, 1.0, step=0.01, key="eta_m",
                  help="Fraction of peak memory bandwidth achieved.")
    elif hw is not None:
        engine = ss.get("engine", state.DEFAULT_ENGINE)
        over = "" if engine == state.DEFAULT_ENGINE else \
            f" The {engine} profile's efficiencies and overheads replace them."
        st.caption(f"{hw.name}: {inputs.efficiency_text(hw)}.{over}")


def workload_section(side: Sidebar) -> None:
    guarded(workload_fields, side.model, where="Workload")
    guarded(engine_fields, side.hw, where="Engine")
    guarded(efficiency_fields, side.hw, where="Efficiencies")
    side.workload = guarded(Workload.of, ss, side.model, side.hw, where="Workload")


def sidebar() -> Sidebar:
    """Lay the sidebar out; what it built."""
    side = Sidebar()
    with st.sidebar:
        st.header("Model")
        guarded(model_section, side, where="Model")
        st.header("Hardware")
        guarded(hardware_section, side, where="Hardware")
        st.header("Workload")
        guarded(workload_section, side, where="Workload")
        st.caption("State is kept in the URL: copy the address bar to share this setup.")
    return side


__all__ = ["Sidebar", "sidebar"]
