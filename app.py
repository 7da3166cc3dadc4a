"""costmodel — the Streamlit app: inference cost of a decoder-only transformer on a GPU.

    streamlit run app.py

This file only lays out the pages. The sidebar builds a ModelSpec, a HardwareSpec and a
Workload (costmodel/app/inputs.py, costmodel/app/state.py); each page calls one computation of
costmodel/app/compute.py (cached here by its arguments) and shows its tables (CSV download),
figures (PNG download) and formulas. The state lives in the URL query parameters, so a
configuration can be shared by link. Every section, the sidebar's included, is guarded: an
error becomes one message and the rest of the app keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from costmodel.app import compute, inputs, state
from costmodel.app.display import (
    count_text,
    display_frame,
    fixed_text,
    is_numeric_column,
    rate_text,
    slug,
)
from costmodel.app.display import ops_display as ops_table
from costmodel.app.plan import DEFAULT_GPUS, gpu_options, plan_page
from costmodel.app.published import PAGE_TABLES, published_results
from costmodel.app.state import AUTO, CALIBRATION, CUSTOM, FIELDS, HF_CONFIG, Workload
from costmodel.hfconfig import SUPPORTED as HF_MODEL_TYPES
from costmodel.presets import engine as engine_preset
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import hardware_presets, model_presets
from costmodel.presets import model as model_preset
from costmodel.pricing import Efficiency
from costmodel.quant import dtype_for_bytes
from costmodel.specs import HardwareSpec, ModelSpec
from costmodel.units import GB, GIB, band_text, number_text, time_text

st.set_page_config(page_title="costmodel — LLM inference cost", page_icon="🧮", layout="wide")
# Metric values a little smaller than Streamlit's default, so exact numbers fit five abreast.
# Long substituted formulas scroll sideways instead of being cut off.
CSS = ("<style>[data-testid='stMetricValue'] {font-size: 1.65rem;} "
       ".katex-display {overflow-x: auto; overflow-y: hidden; padding: 2px 0;}</style>")
ss = st.session_state
NUM = st.column_config.NumberColumn
ERR, WARN, DL = ":material/error:", ":material/warning:", ":material/download:"


def cached(fn: Callable) -> Callable:
    """``fn`` cached across reruns and sessions by its (plain or dataclass) arguments."""
    return st.cache_data(fn, show_spinner=False, max_entries=64)


memory_basics = cached(compute.memory_basics)
memory_plan = cached(compute.memory_plan)
max_batch_chart = cached(compute.max_batch_chart)
roofline_page = cached(compute.roofline_page)
attention_page = cached(compute.attention_page)
speculative_page = cached(compute.speculative_page)
memory_formulas = cached(compute.memory_formulas)
architecture_formulas = cached(compute.architecture_formula_list)
max_batch_shown = cached(compute.max_batch_shown)
attention_formulas = cached(compute.attention_formula_list)
speculative_formulas = cached(compute.speculative_formulas)
model_from_upload = cached(inputs.model_from_upload)
hardware_from_upload = cached(inputs.hardware_from_upload)
plan_bundle = st.cache_data(plan_page, show_spinner=False, max_entries=16)


# ================================================================ guards
def show_error(e: BaseException, where: str = "") -> None:
    prefix = f"{where}: " if where else ""
    if isinstance(e, ValueError):
        st.error(f"{prefix}{e}", icon=ERR)
    else:
        st.error(f"{prefix}unexpected error ({type(e).__name__}: {str(e)[:300]}). The other "
                 "sections still work.", icon=ERR)


def guarded(body: Callable, *args: Any, where: str = "", **kwargs: Any) -> Any:
    """Run one section; its errors become st.error, never a traceback. Returns the section's
    result, None after an error."""
    try:
        return body(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 — no traceback reaches the page
        show_error(e, where)
        return None


def callback(fn: Callable) -> Callable:
    """A widget callback whose errors are shown on the next run instead of a traceback."""
    def run(*args: Any) -> None:
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001
            ss["_callback_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    return run


# ================================================================ state
def init_state() -> None:
    """First run of a session: read the URL. Later runs: keep hidden widgets' values."""
    if "_init" not in ss:
        values, warnings = state.parse_query_params(st.query_params.to_dict())
        for key, value in values.items():
            ss[key] = value
        ss["_init"], ss["_url_warnings"] = True, warnings
        ss["_last_model"], ss["_last_hw"] = state.DEFAULT_MODEL, state.DEFAULT_HARDWARE
        ss["_custom_model_touched"] = ss["model"] == CUSTOM
        ss["_custom_hw_touched"] = ss["hw"] == CUSTOM
    else:
        for key in FIELDS:         # a widget not drawn this run would otherwise lose its value
            if key in ss:
                ss[key] = ss[key]


def sync_url() -> None:
    wanted = state.encode_query_params({k: ss[k] for k in FIELDS if k in ss})
    if wanted != st.query_params.to_dict():
        st.query_params.from_dict(wanted)


def _base_model() -> ModelSpec:
    return model_presets().get(ss["_last_model"], model_preset(state.DEFAULT_MODEL))


def _base_hardware() -> HardwareSpec:
    return hardware_presets().get(ss["_last_hw"], hardware_preset(state.DEFAULT_HARDWARE))


@callback
def _on_model_change() -> None:
    if ss["model"] == CUSTOM and not ss["_custom_model_touched"]:
        ss.update(inputs.model_fields_of(_base_model()))


@callback
def _on_hw_change() -> None:
    if ss["hw"] == CUSTOM and not ss["_custom_hw_touched"]:
        ss.update(inputs.hardware_fields_of(_base_hardware()))


@callback
def _touch(flag: str) -> None:
    ss[flag] = True


def uploaded(key: str) -> tuple[bytes, str] | None:
    """The bytes and name of the file in an uploader; None when there is none (or it was just
    removed: streamlit then holds a placeholder without content)."""
    up = ss.get(key)
    read = getattr(up, "getvalue", None)
    if read is None:
        return None
    return read(), str(getattr(up, "name", "") or "file.json")


@callback
def _on_hf_upload() -> None:
    if uploaded("hf_upload") is not None:
        ss["model"] = HF_CONFIG


@callback
def _on_calibration_upload() -> None:
    if uploaded("hw_upload") is not None:
        ss["hw"] = CALIBRATION


@callback
def _copy_to_custom_model(m: ModelSpec) -> None:
    ss.update(inputs.model_fields_of(m))
    ss["model"], ss["_custom_model_touched"] = CUSTOM, True


@callback
def _reset_custom_model() -> None:
    ss.update(inputs.model_fields_of(_base_model()))


@callback
def _on_eta_change() -> None:
    """Custom efficiencies start from the selected hardware's own η_c and η_m."""
    if ss["eta"] == "custom":
        for key in ("eta_c", "eta_m"):
            ss[key] = min(max(round(float(ss.get(f"_hw_{key}", 1.0)), 2), 0.01), 1.0)


# ================================================================ small display helpers
def table(df, name: str, column_config: dict | None = None, **kw) -> None:
    """A table (made safe for the widget) with its CSV download button."""
    df = display_frame(df)
    config = {k: v for k, v in (column_config or {}).items()
              if is_numeric_column(df, k) or v.get("type_config", {}).get("type") != "number"}
    st.dataframe(df, hide_index=True, column_config=config, **kw)
    st.download_button("Download CSV", df.to_csv(index=False).encode(), f"{name}.csv",
                       "text/csv", key=f"csv_{name}", on_click="ignore", icon=DL)


def figure(data: bytes, name: str, width: Any = "stretch") -> None:
    """A figure (PNG bytes) with its PNG download button."""
    st.image(data, width=width)
    st.download_button("Download PNG", data, f"{name}.png", "image/png", key=f"png_{name}",
                       on_click="ignore", icon=DL)


def gib_text(nbytes: float, digits: int = 2) -> str:
    return fixed_text(nbytes / GIB, digits, "GiB")


# ================================================================ sidebar
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


def _model_widget(f: state.ModelField, where=st) -> None:
    touch = {"on_change": _touch, "args": ("_custom_model_touched",)}
    key = f"m_{f.name}"
    if f.kind == "int":
        where.number_input(f.label, int(f.lo), int(f.hi), step=1, key=key, **touch)
    elif f.kind == "float":
        where.number_input(f.label, float(f.lo), float(f.hi), step=0.05, key=key, **touch)
    elif f.kind == "choice":
        where.selectbox(f.label, f.choices, key=key, **touch)
    elif f.kind == "bool":
        where.checkbox(f.label, key=key, **touch)
    else:
        where.text_input(f.label, key=key, max_chars=80, **touch)


def custom_model_fields() -> None:
    with st.expander("Custom model", expanded=True):
        st.text_input("Name", key="m_name", max_chars=80, on_change=_touch,
                      args=("_custom_model_touched",))
        basic = [f for f in state.MODEL_FIELDS if not f.advanced]
        numbers = [f for f in basic if f.kind == "int"]
        cols = st.columns(2)
        for i, f in enumerate(numbers):
            _model_widget(f, cols[i % 2])
        for f in basic:
            if f.kind != "int":
                _model_widget(f)
        st.button("Reset to " + str(ss["_last_model"]), on_click=_reset_custom_model)
    advanced = [f for f in state.MODEL_FIELDS if f.advanced]
    changed = any(ss.get(f"m_{f.name}") != FIELDS[f"m_{f.name}"].default for f in advanced)
    with st.expander("Custom model: norms, windows, experts, latent attention, formats",
                     expanded=changed):
        for f in advanced:
            _model_widget(f)


def resolve_model(side: Sidebar) -> None:
    choice = ss["model"]
    if choice == CUSTOM:
        side.model = inputs.custom_model(ss)
    elif choice == HF_CONFIG:
        up = uploaded("hf_upload")
        if up is None:
            raise ValueError("no config.json uploaded yet — upload one below (an uploaded file "
                             "does not travel in a link: use 'Edit as custom model' to share "
                             "it)")
        side.model = model_from_upload(*up)
    else:
        side.model = model_preset(choice)
        ss["_last_model"] = choice


def model_section(side: Sidebar) -> None:
    guarded(st.selectbox, "Model", FIELDS["model"].options(), key="model",
            format_func=state.model_label, on_change=_on_model_change,
            help="A preset, a custom architecture, or a Hugging Face config.json.")
    if ss.get("model") == CUSTOM:
        guarded(custom_model_fields, where="Custom model")
    try:
        resolve_model(side)
    except Exception as e:  # noqa: BLE001 — shown below, the uploader stays
        side.model_error = str(e) if isinstance(e, ValueError) else \
            f"unexpected error ({type(e).__name__}: {str(e)[:200]})"
    with st.expander("Load a Hugging Face config.json", expanded=ss.get("model") == HF_CONFIG):
        guarded(st.file_uploader, "config.json", type=["json"], key="hf_upload",
                on_change=_on_hf_upload,
                help=f"model_type one of: {', '.join(HF_MODEL_TYPES)}")
        if ss.get("model") == HF_CONFIG and side.model is not None:
            st.button("Edit as custom model", on_click=_copy_to_custom_model,
                      args=(side.model,))
    m = side.model
    if m is None:
        st.error(f"Model: {side.model_error}", icon=ERR)
    else:
        st.caption(f"{count_text(m.n_layers)} layers, d_model {count_text(m.d_model)}, "
                   f"{count_text(m.n_heads)} heads ({count_text(m.n_kv_heads)} KV), d_ff "
                   f"{count_text(m.d_ff)}, vocab {count_text(m.vocab_size)}"
                   + "".join(f"; {part}" for part in architecture_parts(m)))


def architecture_parts(m: ModelSpec) -> list[str]:
    """What a model has beyond a dense decoder, in words."""
    parts = []
    if m.moe:
        shared = f" + {m.n_shared_experts} shared" if m.n_shared_experts else ""
        parts.append(f"{m.n_experts} routed experts, top-{m.experts_per_token}{shared}")
    if m.mla:
        parts.append(f"latent attention (KV rank {m.kv_lora_rank} + {m.qk_rope_head_dim})")
    if m.sliding_window and m.window_layers:
        parts.append(f"window {count_text(m.sliding_window)} on {m.window_layers} of "
                     f"{m.n_layers} layers")
    formats = state.checkpoint_formats(m)
    if formats:
        parts.append(f"checkpoint {formats}")
    return parts


def custom_hardware_fields() -> None:
    with st.expander("Custom hardware", expanded=True):
        touch = {"on_change": _touch, "args": ("_custom_hw_touched",)}
        st.text_input("Name", key="h_name", max_chars=80, **touch)
        for f in state.HW_FIELDS:
            st.number_input(f.label, float(f.lo), float(f.hi), key=f.key, format="%.4g",
                            **touch)


def resolve_hardware(side: Sidebar) -> None:
    choice = ss["hw"]
    if choice == CUSTOM:
        side.hw = inputs.custom_hardware(ss)
    elif choice == CALIBRATION:
        up = uploaded("hw_upload")
        if up is None:
            raise ValueError("no calibration JSON uploaded yet — upload one below")
        side.hw = hardware_from_upload(up[0])
    else:
        side.hw = hardware_preset(choice)
        ss["_last_hw"] = choice


def hardware_section(side: Sidebar) -> None:
    guarded(st.selectbox, "Hardware", FIELDS["hw"].options(), key="hw",
            format_func=state.hardware_label, on_change=_on_hw_change,
            help="Memory is what the device reports (an '80 GB' A100 reports 80 GiB).")
    if ss.get("hw") == CUSTOM:
        guarded(custom_hardware_fields, where="Custom hardware")
    try:
        resolve_hardware(side)
    except Exception as e:  # noqa: BLE001 — shown below, the uploader stays
        side.hw_error = str(e) if isinstance(e, ValueError) else \
            f"unexpected error ({type(e).__name__}: {str(e)[:200]})"
    with st.expander("Load a calibration JSON", expanded=ss.get("hw") == CALIBRATION):
        guarded(st.file_uploader, "hardware JSON (written by `costmodel calibrate` or "
                "`costmodel validate`)", type=["json"], key="hw_upload",
                on_change=_on_calibration_upload)
    h = side.hw
    if h is None:
        st.error(f"Hardware: {side.hw_error}", icon=ERR)
        return
    ss["_hw_eta_c"], ss["_hw_eta_m"] = h.eta_c, h.eta_m
    try:
        dtype = inputs.compute_dtype(h, Workload.of(ss, side.model, h))
    except Exception:  # noqa: BLE001 — the workload section shows what is wrong
        dtype = dtype_for_bytes(h, 2)
    st.caption(f"{number_text(h.memory_bytes / GIB)} GiB ({number_text(h.memory_bytes / GB)} "
               f"GB), {number_text(h.bandwidth / GB)} GB/s, {number_text(h.peak(dtype) / 1e12)} "
               f"TFLOP/s dense {dtype}")


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
    if ss.get("quant", AUTO) == AUTO and not state.checkpoint_formats(m):
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


# ================================================================ Memory
def weights_label(w: Workload) -> str:
    """'fp8-block128', 'b_w = 2', '16-bit, experts mxfp4': the widths the weights are at."""
    dense = w.quant or f"b_w = {w.weight_bytes:g}"
    if w.expert_quant:
        return f"{w.quant or f'{w.weight_bytes:g} B'}, experts {w.expert_quant}"
    return dense


def page_memory(side: Sidebar) -> None:
    m, w = side.need_model(), side.need_workload()
    s = w.context
    base = memory_basics(m, s, w.weight_bytes, w.kv_bytes, w.expert_weight_bytes, w.mla)
    st.caption("GB = 10⁹ bytes, GiB = 2³⁰ bytes. Device memory is what the GPU reports "
               "(an '80 GB' A100 reports 80 GiB). The max batch is the number of concurrent "
               f"requests of s = {s} tokens whose KV cache fits beside the weights.")
    cols = st.columns(5)
    cols[0].metric("Parameters", count_text(base.params))
    cols[0].caption(f"{fixed_text(base.params / 1e9, 3)} billion"
                    + (" (exact)" if base.params < 10**15 else "")
                    + (f"; active per token {fixed_text(base.active / 1e9, 3)} billion"
                       if m.moe else ""))
    cols[1].metric(f"Weight memory ({weights_label(w)})", gib_text(base.weights))
    checkpoint = ""
    if base.checkpoint_weights is not None and base.checkpoint_weights != base.weights:
        checkpoint = (f"; at the checkpoint's formats ({state.checkpoint_formats(m)}): "
                      f"{gib_text(base.checkpoint_weights)}")
    cols[1].caption(f"= {fixed_text(base.weights / GB, 2)} GB = "
                    f"{fixed_text(base.weights, 0)} bytes{checkpoint}")
    cols[2].metric("KV cache per token", fixed_text(base.kv_token, 0, "bytes"))
    cols[2].caption(f"= {fixed_text(base.kv_token / 2**10, 1)} KiB, all layers, "
                    + ("the latent" if m.mla and w.mla != "expanded" else "K and V")
                    + (" (within the window)" if m.window_layers and m.sliding_window else ""))
    cols[3].metric(f"KV cache per request (s = {s})", gib_text(base.kv_request, 4))
    cols[3].caption(f"= {fixed_text(base.kv_request / GB, 4)} GB = "
                    f"{fixed_text(base.kv_request, 0)} bytes")
    with cols[4]:
        guarded(_max_batch_metric, side)
    guarded(_architecture_metrics, m, w, base)
    guarded(_memory_sections, side, base)


def _architecture_metrics(m: ModelSpec, w: Workload, base: compute.MemoryBasics) -> None:
    """Active parameters; the KV cache per layer type (windows) or per cache layout (MLA)."""
    s = w.context
    cols = st.columns(4)
    cols[0].metric("Active per token", count_text(base.active))
    if m.moe:
        cols[0].caption(f"parameters one token uses, {100 * base.active / base.params:.1f} % "
                        f"of the total: every non-expert parameter + k/E = "
                        f"{m.experts_per_token}/{m.n_experts} of the routed experts'. The input "
                        "embedding counts (vendors differ on that).")
    else:
        cols[0].caption("parameters one token uses — dense: all of them")
    if m.sliding_window and m.window_layers:
        cols[1].metric(f"KV per token at s = {s}", fixed_text(base.kv_token_at_context, 0,
                                                                 "bytes"))
        cols[1].caption(f"per request / s: the {m.window_layers} window layers hold at most "
                        f"W − 1 = {count_text(m.sliding_window - 1)} tokens")
        cols[2].metric(f"KV full-attention layers (s = {s})", gib_text(base.kv_full, 4))
        cols[2].caption(f"{m.n_layers - m.window_layers} layers × s tokens")
        cols[3].metric(f"KV window layers (s = {s})", gib_text(base.kv_window, 4))
        cols[3].caption(f"{m.window_layers} layers × min(s, W − 1) = "
                        f"{count_text(min(s, m.sliding_window - 1))} tokens")
    if m.mla and base.kv_token_other is not None:
        other = "expanded (Hugging Face)" if w.mla != "expanded" else "latent (serving)"
        cols[1].metric(f"KV per token, {other}", fixed_text(base.kv_token_other, 0, "bytes"))
        cols[1].caption(f"{base.kv_token_other / base.kv_token:.3g}× the "
                        f"{state.MLA_LABELS[w.mla]} cache")


def _memory_plan(side: Sidebar) -> compute.MemoryPlan:
    m, hw, w = side.need_model(), side.need_hw(), side.need_workload()
    inputs.check_workload_tp(m, w.tp, w.ep)
    return memory_plan(m, hw, w, inputs.table_tps(m, w.tp, w.ep))


def _max_batch_metric(side: Sidebar) -> None:
    if side.hw is None or side.workload is None:
        st.metric("Max batch", "—")
        st.caption("needs a valid hardware and workload (see the sidebar)")
        return
    w, mp = side.need_workload(), _memory_plan(side)
    ep = f", EP = {w.ep}" if w.ep > 1 else ""
    st.metric(f"Max batch (s = {w.context}, TP = {w.tp}{ep})", count_text(mp.plan.max_batch))
    st.caption(f"on {side.need_hw().name}; at s + g = {w.context + w.generate}: "
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
    left, right = st.columns([2, 3])
    with left:
        table(vs.table, f"max_batch_{name}", {c: NUM(format="localized")
                                              for c in vs.table.columns})
    with right:
        figure(vs.png, f"max_batch_{name}")
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


# ================================================================ Roofline
def page_roofline(side: Sidebar) -> None:
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
    cols[0].metric("TTFT", time_text(t.ttft))
    cols[0].caption("time to first token = the prefill pass; "
                    + band_caption(t.ttft, t.ttft_band, t.prefill_regime, t.engine))
    cols[1].metric("Time per output token", time_text(t.tpot_first))
    first_step = band_caption(t.tpot_first, t.tpot_first_band, t.decode_regime, t.engine)
    cols[1].caption(f"first decode step: {first_step}; mean over g = {w.generate}: "
                    f"{band_text(t.tpot_mean, t.tpot_mean_band)}")
    cols[2].metric("Throughput", rate_text(t.throughput, "tokens/s"))
    rate_band = t.throughput_band
    cols[2].caption(f"B·g = {count_text(w.batch * w.generate)} tokens in "
                    f"{band_text(t.total, t.total_band)}"
                    + ("" if rate_band is None else
                       f"; {rate_text(rate_band[0], '')}–{rate_text(rate_band[1], 'tokens/s')}"))
    cols[3].metric("Prefill bound", t.prefill_bound)
    cols[3].caption(f"intensity {fixed_text(t.prefill_intensity, 1)} FLOPs/byte")
    cols[4].metric("Decode bound", t.decode_bound)
    cols[4].caption(f"intensity {fixed_text(t.decode_intensity, 2)} FLOPs/byte; ridge point "
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


def band_caption(seconds: float, band: tuple[float, float] | None, regime: str,
                 engine: str) -> str:
    """'7.40 ms, 80 % band 6.30–8.90 ms', or why there is no band."""
    if band is not None:
        return band_text(seconds, band)
    why = f"the {engine} profile has none for {regime}" if engine else "no engine profile"
    return f"{time_text(seconds)}, no band ({why})"


# ================================================================ Attention intensity
def attention_fields() -> None:
    f = FIELDS
    cols = st.columns(4)
    cols[0].number_input("Head dim d", f["ai_d"].lo, f["ai_d"].hi, step=1, key="ai_d")
    cols[1].number_input("Sequence length N", f["ai_n"].lo, f["ai_n"].hi, step=1, key="ai_n")
    cols[2].number_input("Decode batch B", f["ai_batch"].lo, f["ai_batch"].hi, step=1,
                         key="ai_batch")
    cols[3].selectbox("Bytes per element b", state.BYTE_CHOICES, key="ai_b",
                      format_func=state.BYTE_LABELS.get)


def page_attention(side: Sidebar) -> None:
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
    st.subheader("Prefill: intensity vs N")
    left, right = st.columns([2, 3])
    with left:
        table(r.vs_n, f"attention_vs_N_d{a.d}", {c: NUM(format="%.3f")
                                                for c in r.vs_n.columns[1:]})
    with right:
        figure(r.png_n, f"attention_vs_N_d{a.d}")
    st.subheader("Decode: intensity vs B")
    left, right = st.columns([2, 3])
    with left:
        table(r.vs_b, f"attention_vs_B_N{a.n}_d{a.d}", {c: NUM(format="%.3f")
                                                       for c in r.vs_b.columns[1:]})
    with right:
        figure(r.png_b, f"attention_vs_B_N{a.n}_d{a.d}")


# ================================================================ Speculative decoding
def speculative_fields() -> None:
    f = FIELDS
    cols = st.columns(3)
    cols[0].slider("Acceptance rate α", f["alpha"].lo, f["alpha"].hi, step=0.01, key="alpha")
    cols[1].number_input("Drafted tokens γ", f["gamma"].lo, f["gamma"].hi, step=1,
                         key="gamma")
    cols[2].selectbox("Draft model", f["draft"].options(), key="draft",
                      format_func=state.model_label)


def page_speculative(side: Sidebar) -> None:
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
    cols[0].metric("Cost ratio c = T_draft / T_target", fixed_text(r.cost_ratio, 4))
    cols[0].caption(f"draft step {band_text(r.draft_step, r.draft_band)} / target step "
                    f"{band_text(r.target_step, r.target_band)}")
    cols[1].metric("Expected tokens per iteration", f"{r.expected_tokens:.3f}")
    cols[1].caption("(1 − α^(γ+1)) / (1 − α)")
    cols[2].metric("Speedup (roofline)", f"{r.speedup:.3f}×")
    cols[2].caption(f"verify pass = {r.verify_over_step:.3f} × a target step")
    cols[3].metric("Speedup (c-only formula)", f"{r.speedup_simple:.3f}×")
    cols[3].caption("E / (γc + 1)")
    cols[4].metric("Optimal γ", f"{r.best_gamma}")
    cols[4].caption(f"for α = {s.alpha:g}, c = {r.cost_ratio:.3g}")
    left, right = st.columns([1, 1])
    name = slug(target.name, s.draft, hw.name, f"a{s.alpha:g}")
    with left:
        table(r.table, f"speculative_{name}",
              {c: NUM(format="%.4f") for c in r.table.columns[1:]}, width="stretch")
    with right:
        figure(r.png, f"speedup_vs_gamma_{name}")


# ================================================================ Formulas
def show(items: list[compute.ShownFormula]) -> None:
    for f in items:
        st.markdown(f.title)
        st.latex(f.latex)
        st.latex(f.substituted)
        st.latex(f.result)


def page_formulas(side: Sidebar) -> None:
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


# ================================================================ Validation
def page_validation(side: Sidebar) -> None:
    gpu = published_results()
    st.subheader("Predictions vs published GPU measurements")
    for problem in gpu.problems:
        st.warning(f"data/validation/published/{problem}", icon=WARN)
    if gpu.empty:
        st.info("No GPU validation yet: run `costmodel validate --published --save-engines` "
                "and commit data/validation/published to show it here.")
    else:
        st.caption("From the committed `costmodel validate --published` output under "
                   "data/validation/published (see published_report.md there): public GPU "
                   "measurements (data/published/measurements.csv) priced with the ideal "
                   "roofline, the default and the fitted engine profiles; the targets are "
                   "judged leave-one-source-out (each source priced by profiles fitted on "
                   "the others), the 80 % bands on the same held-out predictions.")
        if "headline" in gpu.tables:
            table(gpu.tables["headline"], "published_headline")
        if gpu.figure is not None:
            st.markdown("**Predicted vs measured, by engine class (log–log)**")
            figure(gpu.figure, "published_predicted_vs_measured")
        for key, title in PAGE_TABLES.items():
            if key != "headline" and key in gpu.tables:
                with st.expander(title, expanded=key in ("errors", "subsets")):
                    table(gpu.tables[key], f"published_{key}")
    res = compute.validation_results()
    for problem in res.problems:
        st.warning(f"data/validation/{problem}", icon=WARN)
    tables = res.tables
    if tables or res.figures:
        st.subheader("Predictions vs the PyTorch reference model")
        st.caption("From the committed `costmodel validate` output under data/validation "
                   "(see validation_report.md there): the exact checks, the held-out latency "
                   "error of the calibrated roofline and of the ideal one, and speculative "
                   "decoding.")
        if "headline" in tables:
            table(tables["headline"], "validation_headline")
        if "errors" in tables:
            st.markdown("**|relative error| by regime** (held-out points; ideal = the "
                        "roofline on the calibrated peaks, calibrated = with the fitted "
                        "efficiencies and per-kernel overhead)")
            table(tables["errors"], "validation_errors_by_regime")
        for title, data in res.figures.items():
            st.markdown(f"**{title}**")
            figure(data, slug("validation", title))
        if "points" in tables:
            st.markdown("**Points** (measured and predicted seconds per pass)")
            table(tables["points"], "validation_points")
        if "speculative" in tables:
            st.markdown("**Speculative decoding** (measured vs predicted improvement per γ)")
            table(tables["speculative"], "validation_speculative")
    else:
        st.info("No validation results yet: run `costmodel validate --measurements "
                "data/measurements/cpu.csv --hardware data/hardware/cpu.json --out "
                "data/validation` and commit data/validation to show them here.")
    guarded(_measurements)


def _measurements() -> None:
    files = compute.measurement_files()
    if not files:
        st.info(
            "No measurements yet: this page compares predictions with measurements committed "
            "under `data/measurements/`. To create them on a machine with PyTorch:\n\n"
            "1. `costmodel calibrate` — measure this machine's FLOP/s, bandwidth and "
            "per-kernel overhead;\n"
            "2. `costmodel measure` — time the bundled reference model (writes CSV files under "
            "`data/measurements/`);\n"
            "3. `costmodel validate` — put the predictions beside the measurements.\n\n"
            "Commit the CSV files and this page shows them.")
        return
    st.subheader("Raw measurements")
    rel = {str(p.relative_to(compute.MEASUREMENTS_DIR)): p for p in files}
    choice = st.selectbox("Measurement file", list(rel))
    df = compute.read_table(rel[choice])
    st.caption(f"{len(df):,} rows, {len(df.columns)} columns from data/measurements/{choice}. "
               "`costmodel validate` puts the predictions beside these measurements.")
    first = [c for c in ("point_id", "model", "phase", "batch", "context", "time_s",
                         "predicted_s", "measured_s", "error") if c in df.columns]
    table(df, slug("measurements", choice.removesuffix(".csv")),
          column_order=first + [c for c in df.columns if c not in first])


# ================================================================ Plan a deployment
def page_plan(side: Sidebar) -> None:
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
    cols[0].metric("Cheapest", f"{best['gpu']} × {best['gpus']}")
    cols[0].caption(f"TP{best['tp']} PP{best['pp']} EP{best['ep']} {best['quant']}, "
                    f"{best['replicas']} replicas")
    cols[1].metric("$ / hour", f"{best['usd_per_hour']:,.2f}")
    cols[2].metric("$ / Mtok", f"{best['usd_per_mtok']:.4f}")
    cols[2].caption(f"input {best['usd_per_mtok_input']:.4f}, output "
                    f"{best['usd_per_mtok_output']:.4f}")
    cols[3].metric("TTFT / TPOT", f"{best['ttft_s'] * 1e3:.0f} / {best['tpot_s'] * 1e3:.1f} ms")
    cols[4].metric("J / token", f"{best['j_per_token']:.3f}")
    cols[4].caption(f"{best['kwh_per_mtok']:.4f} kWh per Mtok")
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


PAGES: dict[str, Callable[[Sidebar], None]] = dict(zip(state.PAGES, (
    page_memory, page_roofline, page_attention, page_speculative, page_formulas,
    page_validation, page_plan), strict=True))


# ================================================================ main
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
