"""costmodel — the Streamlit app: inference cost of a decoder-only transformer on a GPU.

    streamlit run app.py

A thin page layer over the API: the sidebar builds a ModelSpec, a HardwareSpec and a workload;
each page calls costmodel and shows tables (CSV download), figures (PNG download) and
formulas. The state lives in the URL query parameters (costmodel/appstate.py), so a
configuration can be shared by link. Expensive results are cached by plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

import costmodel as cm
from costmodel import appstate as S
from costmodel.app.plan import DEFAULT_GPUS, gpu_options, plan_page
from costmodel.kvcache import KV_BATCH, KV_PER_REQUEST, KV_PER_TOKEN
from costmodel.params import param_count_formula, weight_bytes_formula
from costmodel.symbols import model_values

st.set_page_config(page_title="costmodel — LLM inference cost", page_icon="🧮", layout="wide")
# Metric values a little smaller than Streamlit's default, so exact numbers fit five abreast.
# Long substituted formulas scroll sideways instead of being cut off.
CSS = ("<style>[data-testid='stMetricValue'] {font-size: 1.65rem;} "
       ".katex-display {overflow-x: auto; overflow-y: hidden; padding: 2px 0;}</style>")
ss = st.session_state
NUM = st.column_config.NumberColumn
ERR, WARN, DL = ":material/error:", ":material/warning:", ":material/download:"


# ================================================================ state
def init_state() -> None:
    """First run of a session: read the URL. Later runs: keep hidden widgets' values."""
    if "_init" not in ss:
        values, warnings = S.parse_query_params(st.query_params.to_dict())
        for key, value in values.items():
            ss[key] = value
        ss["_init"], ss["_url_warnings"] = True, warnings
        ss["_last_model"], ss["_last_hw"] = S.DEFAULT_MODEL, S.DEFAULT_HARDWARE
        ss["_custom_model_touched"] = ss["model"] == S.CUSTOM
        ss["_custom_hw_touched"] = ss["hw"] == S.CUSTOM
    else:
        for key in S.FIELDS:       # a widget not drawn this run would otherwise lose its value
            if key in ss:
                ss[key] = ss[key]


def sync_url() -> None:
    wanted = S.encode_query_params({k: ss[k] for k in S.FIELDS if k in ss})
    if wanted != st.query_params.to_dict():
        st.query_params.from_dict(wanted)


def _on_model_change() -> None:
    if ss["model"] == S.CUSTOM and not ss["_custom_model_touched"]:
        base = cm.model_presets().get(ss["_last_model"], cm.model(S.DEFAULT_MODEL))
        ss.update(S.model_fields_of(base))


def _on_hw_change() -> None:
    if ss["hw"] == S.CUSTOM and not ss["_custom_hw_touched"]:
        base = cm.hardware_presets().get(ss["_last_hw"], cm.hardware(S.DEFAULT_HARDWARE))
        ss.update(S.hardware_fields_of(base))


def _touch(flag: str) -> None:
    ss[flag] = True


def _on_hf_upload() -> None:
    if ss.get("hf_upload") is not None:
        ss["model"] = S.HF_CONFIG


def _on_calibration_upload() -> None:
    if ss.get("hw_upload") is not None:
        ss["hw"] = S.CALIBRATION


def _copy_to_custom_model(spec_key: str) -> None:
    ss.update(S.model_fields_of(S.model_of_key(spec_key)))
    ss["model"], ss["_custom_model_touched"] = S.CUSTOM, True


def _reset_custom_model() -> None:
    ss.update(S.model_fields_of(cm.model_presets().get(ss["_last_model"],
                                                       cm.model(S.DEFAULT_MODEL))))


@dataclass
class Inputs:
    model: cm.ModelSpec | None
    hw: cm.HardwareSpec | None
    model_error: str = ""
    hw_error: str = ""
    w: dict = field(default_factory=dict)

    def need_model(self) -> cm.ModelSpec:
        if self.model is None:
            raise ValueError(f"Model: {self.model_error} — fix the model in the sidebar.")
        return self.model

    def need_hw(self) -> cm.HardwareSpec:
        if self.hw is None:
            raise ValueError(f"Hardware: {self.hw_error} — fix the hardware in the sidebar.")
        return self.hw


# ================================================================ cached computations
# The computations live in costmodel/appstate.py (plain functions of plain values); here they
# are cached across reruns and sessions.
parse_hf = st.cache_data(S.parse_hf, show_spinner=False, max_entries=64)
parse_hw_json = st.cache_data(S.parse_hw_json, show_spinner=False, max_entries=64)
memory_basics = st.cache_data(S.memory_basics, show_spinner=False, max_entries=64)
memory_batch = st.cache_data(S.memory_batch, show_spinner=False, max_entries=64)
memory_vs_context = st.cache_data(S.memory_vs_context, show_spinner=False, max_entries=64)
roofline_bundle = st.cache_data(S.roofline_bundle, show_spinner=False, max_entries=64)
attention_bundle = st.cache_data(S.attention_bundle, show_spinner=False, max_entries=64)
speculative_bundle = st.cache_data(S.speculative_bundle, show_spinner=False, max_entries=64)


# ================================================================ small display helpers
def slug(*parts) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(map(str, parts))).strip("-")[:100]


def table(df: pd.DataFrame, name: str, column_config: dict | None = None, **kw) -> None:
    """A table with its CSV download button."""
    st.dataframe(df, hide_index=True, column_config=column_config, **kw)
    st.download_button("Download CSV", df.to_csv(index=False).encode(), f"{name}.csv",
                       "text/csv", key=f"csv_{name}", on_click="ignore", icon=DL)


def figure(data: bytes, name: str, width="stretch") -> None:
    """A figure (PNG bytes) with its PNG download button."""
    st.image(data, width=width)
    st.download_button("Download PNG", data, f"{name}.png", "image/png", key=f"png_{name}",
                       on_click="ignore", icon=DL)


def guarded(body, *args) -> None:
    """Run one page section; its errors become st.error, never a traceback."""
    try:
        body(*args)
    except ValueError as e:
        st.error(f"{e}", icon=ERR)
    except Exception as e:  # noqa: BLE001 — no traceback reaches the page
        st.error(f"Unexpected error ({type(e).__name__}): {e}. The other pages still work.",
                 icon=ERR)


# ================================================================ sidebar
def model_inputs() -> tuple[cm.ModelSpec | None, str]:
    st.selectbox("Model", S.FIELDS["model"].options(), key="model",
                 format_func=S.model_label, on_change=_on_model_change,
                 help="A preset, a custom architecture, or a Hugging Face config.json.")
    choice = ss["model"]
    spec, error = None, ""
    if choice == S.CUSTOM:
        with st.expander("Custom model", expanded=True):
            touch = {"on_change": _touch, "args": ("_custom_model_touched",)}
            st.text_input("Name", key="m_name", **touch)
            labels = {"n_layers": "Layers L", "d_model": "Width d_model", "n_heads":
                      "Query heads H", "n_kv_heads": "KV heads H_kv", "head_dim":
                      "Head dim d_h (0 = d_model / H)", "d_ff": "MLP width d_ff",
                      "vocab_size": "Vocabulary V", "max_context": "Max context S"}
            cols = st.columns(2)
            for i, name in enumerate(S.MODEL_INT_FIELDS):
                f = S.FIELDS[f"m_{name}"]
                cols[i % 2].number_input(labels[name], int(f.lo), int(f.hi), step=1,
                                         key=f.key, **touch)
            for name, opts in S.MODEL_CHOICE_FIELDS.items():
                st.selectbox(name.replace("_", " ").capitalize(), opts, key=f"m_{name}",
                             **touch)
            cols = st.columns(2)
            for i, name in enumerate(S.MODEL_BOOL_FIELDS):
                cols[i % 2].checkbox(name.replace("_", " "), key=f"m_{name}", **touch)
            st.button("Reset to " + ss["_last_model"], on_click=_reset_custom_model)
        try:
            spec = S.custom_model(ss)
        except ValueError as e:
            error = str(e)
    elif choice == S.HF_CONFIG:
        up = ss.get("hf_upload")
        if up is None:
            error = ("no config.json uploaded yet — upload one below (an uploaded file does "
                     "not travel in a link: use 'Edit as custom model' to share it)")
        else:
            try:
                spec = S.model_of_key(parse_hf(up.getvalue(), up.name))
            except ValueError as e:
                error = str(e)
    else:
        spec = cm.model(choice)
        ss["_last_model"] = choice
    with st.expander("Load a Hugging Face config.json", expanded=choice == S.HF_CONFIG):
        st.file_uploader("config.json (gpt2, llama, mistral, qwen2)", type=["json"],
                         key="hf_upload", on_change=_on_hf_upload)
        if choice == S.HF_CONFIG and spec is not None:
            st.button("Edit as custom model", on_click=_copy_to_custom_model,
                      args=(S.model_key(spec),))
    if error:
        st.error(f"Model: {error}")
    elif spec is not None:
        st.caption(f"{spec.n_layers} layers, d_model {spec.d_model}, {spec.n_heads} heads "
                   f"({spec.n_kv_heads} KV), d_ff {spec.d_ff}, vocab {spec.vocab_size:,}")
    return spec, error


def hardware_inputs() -> tuple[cm.HardwareSpec | None, str]:
    st.selectbox("Hardware", S.FIELDS["hw"].options(), key="hw",
                 format_func=S.hardware_label, on_change=_on_hw_change,
                 help="Memory is what the device reports (an '80 GB' A100 reports 80 GiB).")
    choice = ss["hw"]
    spec, error = None, ""
    if choice == S.CUSTOM:
        with st.expander("Custom hardware", expanded=True):
            touch = {"on_change": _touch, "args": ("_custom_hw_touched",)}
            st.text_input("Name", key="h_name", **touch)
            for key, (label, _) in S.HW_FIELDS.items():
                f = S.FIELDS[key]
                st.number_input(label, float(f.lo), float(f.hi), key=key, format="%.4g",
                                **touch)
        try:
            spec = S.custom_hardware(ss)
        except ValueError as e:
            error = str(e)
    elif choice == S.CALIBRATION:
        up = ss.get("hw_upload")
        if up is None:
            error = "no calibration JSON uploaded yet — upload one below"
        else:
            try:
                spec = S.hardware_of_key(parse_hw_json(up.getvalue()))
            except ValueError as e:
                error = str(e)
    else:
        spec = cm.hardware(choice)
        ss["_last_hw"] = choice
    with st.expander("Load a calibration JSON", expanded=choice == S.CALIBRATION):
        st.file_uploader("hardware JSON (written by `costmodel calibrate`)", type=["json"],
                         key="hw_upload", on_change=_on_calibration_upload)
    if error:
        st.error(f"Hardware: {error}")
    elif spec is not None:
        peak = spec.peak(cm.specs.dtype_for_bytes(spec, ss["wbytes"]))
        st.caption(f"{spec.memory_bytes / S.GIB:.1f} GiB ({spec.memory_bytes / 1e9:.1f} GB), "
                   f"{spec.bandwidth / 1e9:,.0f} GB/s, {peak / 1e12:,.1f} TFLOP/s dense")
    return spec, error


def workload_inputs() -> dict:
    f = S.FIELDS
    c1, c2 = st.columns(2)
    c1.number_input("Batch B", f["batch"].lo, f["batch"].hi, step=1, key="batch")
    c2.number_input("TP degree", f["tp"].lo, f["tp"].hi, step=1, key="tp",
                    help="GPUs the model is split over; must divide the query heads.")
    c1.number_input("Prompt s", f["prompt"].lo, f["prompt"].hi, step=1,
                    key="prompt", help="Context / prompt length in tokens; the Memory page "
                    "sizes the KV cache for s tokens per request.")
    c2.number_input("Generate g", f["generate"].lo, f["generate"].hi, step=1,
                    key="generate", help="Tokens to generate per request.")
    lab = S.BYTE_LABELS.get
    st.selectbox("Bytes per weight b_w", S.BYTE_CHOICES, key="wbytes", format_func=lab)
    st.selectbox("Bytes per KV element b_kv", S.BYTE_CHOICES, key="kvbytes", format_func=lab)
    st.selectbox("Bytes per activation b_a", S.ACT_BYTE_CHOICES, key="abytes",
                 format_func=lab)
    st.radio("Attention", S.ATTENTION, key="attention", horizontal=True,
             format_func={"standard": "standard (S, P in memory)",
                          "fused": "fused (FlashAttention)"}.get)
    c1, c2 = st.columns(2)
    c1.slider("η_c compute efficiency", 0.01, 1.0, step=0.01, key="eta_c",
              help="Fraction of peak FLOP/s achieved (1 = ideal roofline).")
    c2.slider("η_m bandwidth efficiency", 0.01, 1.0, step=0.01, key="eta_m",
              help="Fraction of peak memory bandwidth achieved.")
    return {"batch": int(ss["batch"]), "prompt": int(ss["prompt"]),
            "generate": int(ss["generate"]), "tp": int(ss["tp"]), "wb": float(ss["wbytes"]),
            "kvb": float(ss["kvbytes"]), "ab": float(ss["abytes"]),
            "attention": ss["attention"], "eta_c": float(ss["eta_c"]),
            "eta_m": float(ss["eta_m"])}


def sidebar() -> Inputs:
    with st.sidebar:
        st.header("Model")
        m, m_err = model_inputs()
        st.header("Hardware")
        hw, hw_err = hardware_inputs()
        st.header("Workload")
        w = workload_inputs()
        st.caption("State is kept in the URL: copy the address bar to share this setup.")
    return Inputs(m, hw, m_err, hw_err, w)


# ================================================================ pages
def page_memory(inp: Inputs) -> None:
    m, w = inp.need_model(), inp.w
    s = w["prompt"]
    base = memory_basics(S.model_key(m), s, w["wb"], w["kvb"])
    st.caption("GB = 10⁹ bytes, GiB = 2³⁰ bytes. Device memory is what the GPU reports "
               "(an '80 GB' A100 reports 80 GiB). The max batch is the number of concurrent "
               f"requests of s = {s} tokens whose KV cache fits beside the weights.")
    cols = st.columns(5)
    cols[0].metric("Parameters", f"{base['params']:,}")
    cols[0].caption(f"{base['params'] / 1e9:.3f} billion (exact)")
    cols[1].metric(f"Weight memory (b_w = {w['wb']:g})", f"{base['weights'] / S.GIB:,.2f} GiB")
    cols[1].caption(f"= {base['weights'] / 1e9:,.2f} GB = {base['weights']:,.0f} bytes")
    cols[2].metric("KV cache per token", f"{base['kv_token']:,.0f} bytes")
    cols[2].caption(f"= {base['kv_token'] / 2**10:,.1f} KiB, all layers, K and V")
    cols[3].metric(f"KV cache per request (s = {s})", f"{base['kv_request'] / S.GIB:.4f} GiB")
    cols[3].caption(f"= {base['kv_request'] / 1e9:.4f} GB = {base['kv_request']:,.0f} bytes")
    with cols[4]:
        guarded(_max_batch_metric, inp)
    guarded(_memory_batch_sections, inp, base)


def _max_batch_metric(inp: Inputs) -> None:
    m, hw, w = inp.need_model(), inp.need_hw(), inp.w
    mb = memory_batch(S.model_key(m), S.hardware_key(hw), w["prompt"], w["generate"], w["tp"],
                      w["wb"], w["kvb"])
    st.metric(f"Max batch (s = {w['prompt']}, TP = {w['tp']})", f"{mb['plan'].max_batch:,}")
    st.caption(f"on {hw.name}; at s + g = {w['prompt'] + w['generate']}: "
               f"{mb['full'].max_batch:,}")


def _memory_batch_sections(inp: Inputs, base: dict) -> None:
    m, hw, w = inp.need_model(), inp.need_hw(), inp.w
    s, tp = w["prompt"], w["tp"]
    mb = memory_batch(S.model_key(m), S.hardware_key(hw), s, w["generate"], tp, w["wb"],
                      w["kvb"])
    plan = mb["plan"]
    if plan.max_batch == 0:
        st.error(f"Nothing fits: {plan.reason}. Change: a larger TP, fewer bytes per weight "
                 "or KV element, a shorter context, or a GPU with more memory.", icon=ERR)
    else:
        st.success(f"**Why {plan.max_batch}:** {plan.reason}.")
    if plan.kv_replication > 1:
        st.warning(f"TP = {tp} exceeds the {m.n_kv_heads} KV heads: each KV head is "
                   f"replicated on {plan.kv_replication} GPUs, so the per-GPU KV cache stops "
                   "shrinking with TP.")
    name = slug(m.name, hw.name)
    st.subheader("Max batch vs context and TP")
    vs = memory_vs_context(S.model_key(m), S.hardware_key(hw), tuple(S.table_tps(m, tp)),
                           w["wb"], w["kvb"])
    left, right = st.columns([2, 3])
    with left:
        table(vs["table"], f"max_batch_{name}", {c: NUM(format="localized")
                                                 for c in vs["table"].columns})
    with right:
        figure(vs["png"], f"max_batch_{name}")
    st.subheader(f"Tensor parallelism at s = {s}")
    table(mb["tp_table"], f"tp_plan_{name}_s{s}", {
        "weights per GPU (GiB)": NUM(format="%.3f"),
        "KV per request per GPU (MiB)": NUM(format="%.2f"), "max batch": NUM(format="localized"),
        "why": st.column_config.TextColumn(
            width="large")})
    st.subheader(f"Parameters by component (b_w = {inp.w['wb']:g} bytes per weight)")
    table(base["table"], f"params_{name}", {
        "parameters": NUM(format="localized"), "share (%)": NUM(format="%.2f"),
        "weight bytes": NUM(format="localized"), "weight GB (1e9 B)": NUM(format="%.3f"),
        "weight GiB (2^30 B)": NUM(format="%.3f")})
    with st.expander("Course convention: the E0294 text's parameter count"):
        e = mb["e0294"]
        st.markdown(
            f"The E0294 text counts **{base['e0294_params']:,}** parameters for this "
            f"architecture (two MLP matrices, no W_O, MLP biases, no norms) instead of the "
            f"exact **{base['params']:,}**; with its count the max batch would be "
            f"**{e.max_batch:,}** instead of **{plan.max_batch:,}** (see `costmodel."
            "conventions`).")


def page_roofline(inp: Inputs) -> None:
    m, hw, w = inp.need_model(), inp.need_hw(), inp.w
    key = (w["batch"], w["prompt"], w["generate"], w["tp"], w["wb"], w["kvb"], w["ab"],
           w["attention"], w["eta_c"], w["eta_m"])
    r = roofline_bundle(S.model_key(m), S.hardware_key(hw), key)
    st.caption(f"Per operator t = max(F / (η_c·π), Q / (η_m·β)) on one GPU of the TP group; "
               f"1 multiply-add = 2 FLOPs; peak π = {r['dtype']} dense. Prefill is q = s new "
               f"tokens on c = 0 cached; a decode step q = 1 on c = s. B = {w['batch']}.")
    cols = st.columns(5)
    cols[0].metric("TTFT", S.time_text(r["ttft"]))
    cols[0].caption("time to first token = the prefill pass")
    cols[1].metric("Time per output token", S.time_text(r["tpot"]))
    cols[1].caption(f"first decode step; mean over g = {w['generate']}: "
                    f"{S.time_text(r['tpot_mean'])}")
    cols[2].metric("Throughput", f"{r['throughput']:,.1f} tokens/s")
    cols[2].caption(f"B·g = {w['batch'] * w['generate']:,} tokens in "
                    f"{S.time_text(r['total'])}")
    cols[3].metric("Prefill bound", r["pre_bound"])
    cols[3].caption(f"intensity {r['pre_ai']:,.1f} FLOPs/byte")
    cols[4].metric("Decode bound", r["dec_bound"])
    cols[4].caption(f"intensity {r['dec_ai']:,.2f} FLOPs/byte; ridge point "
                    f"{r['ridge']:,.0f}")
    mbatch, first = r["max_batch"], r["first_compute"]
    if mbatch == 0:
        st.error("The weights plus one request's KV cache do not fit in memory at this "
                 "context and TP (see the Memory page); the times below assume they did.",
                 icon=ERR)
    elif w["batch"] > mbatch:
        st.warning(f"Batch {w['batch']} exceeds the {mbatch:,} requests that fit in memory "
                   f"at s = {w['prompt']}, TP = {w['tp']}.")
    if first is not None:
        st.info(f"**Decode turns compute-bound at batch B = {first:,}** (scanning B = 1 … "
                f"{mbatch:,}, the max batch that fits at s = {w['prompt']}).")
    elif mbatch:
        st.info(f"**Decode never turns compute-bound within memory:** up to the max batch "
                f"{mbatch:,} every decode step stays memory-bound (each request's KV reads "
                "grow with B as fast as the FLOPs).")
    name = slug(m.name, hw.name, f"B{w['batch']}", f"s{w['prompt']}")
    fmt = {"GFLOP": NUM(format="%.4f"), "MB moved": NUM(format="%.3f"),
           "FLOPs/byte": NUM(format="%.2f"), "time (µs)": NUM(format="%.2f")}
    figure(r["png"], f"roofline_{name}", width="content")
    st.subheader("Per-operator roofline (totals over the layers)")
    for tab, phase in zip(st.tabs(["Prefill", "Decode step"]), ("prefill", "decode"),
                          strict=True):
        with tab:
            ops = r["pre_ops" if phase == "prefill" else "dec_ops"]
            table(S.ops_display(ops), f"{phase}_ops_{name}", fmt)
            st.download_button("Download full CSV (all byte parts, exact units)",
                               ops.to_csv(index=False).encode(),
                               f"{phase}_ops_full_{name}.csv", "text/csv",
                               key=f"csv_{phase}_full", on_click="ignore", icon=DL)
    st.subheader(f"Decode step vs batch (context s = {w['prompt']}, TP = {w['tp']})")
    table(r["batch_table"], f"decode_vs_batch_{name}", {
        "FLOPs/byte": NUM(format="%.2f"), "step time (ms)": NUM(format="%.3f"),
        "tokens/s": NUM(format="localized")})


def page_attention(inp: Inputs) -> None:
    f = S.FIELDS
    st.caption("One head of size d, sequence length N, b bytes per element (E0294 Assignment 4 "
               "Problem 1(c)/(d)). Standard attention writes S = QKᵀ and P = softmax(S) to "
               "memory and reads them back; fused (FlashAttention) does not.")
    cols = st.columns(4)
    cols[0].number_input("Head dim d", f["ai_d"].lo, f["ai_d"].hi, step=1, key="ai_d")
    cols[1].number_input("Sequence length N", f["ai_n"].lo, f["ai_n"].hi, step=1, key="ai_n")
    cols[2].number_input("Decode batch B", f["ai_batch"].lo, f["ai_batch"].hi, step=1,
                         key="ai_batch")
    cols[3].selectbox("Bytes per element b", S.BYTE_CHOICES, key="ai_b",
                      format_func=S.BYTE_LABELS.get)
    d, n, batch, b = int(ss["ai_d"]), int(ss["ai_n"]), int(ss["ai_batch"]), float(ss["ai_b"])
    if inp.model is not None and inp.model.head_dim != d:
        st.button(f"Use {inp.model.name}'s head dim d = {inp.model.head_dim}",
                  on_click=ss.__setitem__, args=("ai_d", inp.model.head_dim))
    r = attention_bundle(d, n, batch, b)
    st.subheader(f"At N = {n}, d = {d}, b = {b:g}: exact counts beside the text's")
    table(r["cases"], f"attention_cases_N{n}_d{d}", {
        "FLOPs": NUM(format="localized"), "bytes": NUM(format="localized"),
        "FLOPs/byte": NUM(format="%.4f")})
    if inp.hw is not None:
        ridge = inp.hw.ridge_point(cm.specs.dtype_for_bytes(inp.hw, inp.w["wb"]))
        st.caption(f"{inp.hw.name}'s ridge point is {ridge:,.0f} FLOPs/byte: attention below "
                   "it is memory-bound.")
    st.markdown(
        "Why they differ: the E0294 text's prefill bytes (4Nd + 3N² + Nd)·b miss one N² pass "
        "and add an Nd; its decode bytes ((2N + 1)d + 3N)·b miss the output write and one N "
        "pass; its batched decode ((2N + 1)d + 3NB)·b silently **shares K/V across the "
        "batch** — with per-request K/V (serving) the intensity does not grow with B.")
    st.subheader("Prefill: intensity vs N")
    left, right = st.columns([2, 3])
    with left:
        table(r["vs_n"], f"attention_vs_N_d{d}", {c: NUM(format="%.3f")
                                                 for c in r["vs_n"].columns[1:]})
    with right:
        figure(r["png_n"], f"attention_vs_N_d{d}")
    st.subheader("Decode: intensity vs B")
    left, right = st.columns([2, 3])
    with left:
        table(r["vs_b"], f"attention_vs_B_N{n}_d{d}", {c: NUM(format="%.3f")
                                                      for c in r["vs_b"].columns[1:]})
    with right:
        figure(r["png_b"], f"attention_vs_B_N{n}_d{d}")


def page_speculative(inp: Inputs) -> None:
    f, w = S.FIELDS, inp.w
    cols = st.columns(3)
    cols[0].slider("Acceptance rate α", f["alpha"].lo, f["alpha"].hi, step=0.01, key="alpha")
    cols[1].number_input("Drafted tokens γ", f["gamma"].lo, f["gamma"].hi, step=1,
                         key="gamma")
    cols[2].selectbox("Draft model", f["draft"].options(), key="draft",
                      format_func=S.model_label)
    target, hw = inp.need_model(), inp.need_hw()
    draft = cm.model(ss["draft"])
    alpha, gamma = float(ss["alpha"]), int(ss["gamma"])
    key = (w["batch"], w["prompt"], w["wb"], w["kvb"], w["ab"], w["attention"], w["eta_c"],
           w["eta_m"])
    b = speculative_bundle(S.model_key(target), S.model_key(draft), S.hardware_key(hw), alpha,
                           gamma, key)
    r = b["r"]
    st.caption(f"Target {target.name}, draft {draft.name} on {hw.name}, TP = 1, context "
               f"s = {w['prompt']}, B = {w['batch']}. One iteration: γ draft decode steps + "
               "one target pass verifying γ + 1 tokens, priced through the roofline.")
    cols = st.columns(5)
    cols[0].metric("Cost ratio c = T_draft / T_target", f"{r['cost_ratio']:.4f}")
    cols[0].caption(f"{S.time_text(r['draft_step_s'])} / {S.time_text(r['target_step_s'])}")
    cols[1].metric("Expected tokens per iteration", f"{r['expected_tokens']:.3f}")
    cols[1].caption("(1 − α^(γ+1)) / (1 − α)")
    cols[2].metric("Speedup (roofline)", f"{r['speedup']:.3f}×")
    cols[2].caption(f"verify pass = {r['verify_over_step']:.3f} × a target step")
    cols[3].metric("Speedup (c-only formula)", f"{r['speedup_simple']:.3f}×")
    cols[3].caption("E / (γc + 1)")
    cols[4].metric("Optimal γ", f"{b['best']}")
    cols[4].caption(f"for α = {alpha:g}, c = {r['cost_ratio']:.3g}")
    left, right = st.columns([2, 3])
    name = slug(target.name, draft.name, hw.name, f"a{alpha:g}")
    with left:
        table(b["table"], f"speculative_{name}", {c: NUM(format="%.4f")
                                                   for c in b["table"].columns[1:]})
    with right:
        figure(b["png"], f"speedup_vs_gamma_{name}")


def _formula(f: cm.Formula, values: dict, note: str = "") -> None:
    """Formula, the same with the numbers put in, and the result ('show your work')."""
    st.markdown(f"**{f.description}** ({f.unit}){note}")
    st.latex(f.latex())
    result = f.exact(**values)
    shown = f"{result:,}" if isinstance(result, int) else f"{float(result):,.6g}"
    st.latex(r"\small = " + f.substituted(**values))
    st.latex(r"= \mathbf{" + shown.replace(",", "{,}") + "}")


def page_formulas(inp: Inputs) -> None:
    st.caption("Each quantity is one sympy expression: below, the formula, then the same with "
               "the current numbers substituted and the result (exact).")
    guarded(_formulas_model, inp)
    guarded(_formulas_attention, inp)
    guarded(_formulas_speculative, inp)


def _formulas_model(inp: Inputs) -> None:
    m, w = inp.need_model(), inp.w
    vals = dict(model_values(m), context=w["prompt"], batch=w["batch"], tp=w["tp"],
                weight_bytes=w["wb"], kv_bytes=w["kvb"], mem_util=1, reserved=0)
    st.subheader(f"Memory — {m.name}")
    _formula(param_count_formula(m), vals)
    _formula(weight_bytes_formula(m), vals)
    for f in (KV_PER_TOKEN, KV_PER_REQUEST, KV_BATCH):
        _formula(f, vals)
    hw = inp.need_hw()
    S.check_workload_tp(m, w["tp"])
    _formula(cm.max_batch_formula(m), dict(vals, memory=hw.memory_bytes),
             f" — M = {hw.name}'s memory, u = 1 usable, R = 0 reserved")


def _formulas_attention(inp: Inputs) -> None:
    d = inp.model.head_dim if inp.model is not None else 128
    w = inp.w
    vals = {"n": w["prompt"], "d_model": d, "batch": w["batch"], "bytes_per_element": w["kvb"]}
    st.subheader(f"Attention intensity — N = s = {w['prompt']}, d = d_h = {d}, "
                 f"B = {w['batch']}, b = b_kv")
    for phase in ("prefill", "decode"):
        fs = cm.attention_formulas(phase, attention=w["attention"])
        _formula(fs["intensity"], vals)
        _formula(cm.attention_formulas(phase, convention="e0294")["intensity"], vals,
                 " — the E0294 text's counts")


def _formulas_speculative(inp: Inputs) -> None:
    from costmodel.speculative import EXPECTED_TOKENS, SPEEDUP

    alpha, gamma = float(ss["alpha"]), int(ss["gamma"])
    try:
        target, hw, w = inp.need_model(), inp.need_hw(), inp.w
        key = (w["batch"], w["prompt"], w["wb"], w["kvb"], w["ab"], w["attention"],
               w["eta_c"], w["eta_m"])
        ratio = speculative_bundle(S.model_key(target), S.model_key(cm.model(ss["draft"])),
                                   S.hardware_key(hw), alpha, gamma, key)["r"]["cost_ratio"]
        where = f"c from the roofline ({ss['draft']} drafting for {target.name})"
    except ValueError:
        ratio, where = 0.05, "c = 0.05 (no valid model/hardware to derive it)"
    st.subheader(f"Speculative decoding — α = {alpha:g}, γ = {gamma}, {where}")
    vals = {"alpha": alpha, "gamma": gamma, "cost_ratio": round(ratio, 6)}
    _formula(EXPECTED_TOKENS, vals)
    _formula(SPEEDUP, vals)


def page_validation(inp: Inputs) -> None:
    res = S.validation_results()
    if "headline" in res or "points" in res:
        st.subheader("Predictions vs the PyTorch reference model")
        st.caption("From the committed `costmodel validate` output under data/validation "
                   "(see validation_report.md there): the exact checks, the held-out latency "
                   "error of the calibrated roofline and of the ideal one, and speculative "
                   "decoding.")
        if "headline" in res:
            table(res["headline"], "validation_headline")
        if "errors" in res:
            st.markdown("**|relative error| by regime** (held-out points; ideal = the "
                        "roofline on the calibrated peaks, calibrated = with the fitted "
                        "η_c, η_m and per-kernel overhead)")
            table(res["errors"], "validation_errors_by_regime")
        for title, path in res["figures"].items():
            st.markdown(f"**{title}**")
            figure(path.read_bytes(), slug("validation", path.stem))
        if "points" in res:
            st.markdown("**Points** (measured and predicted seconds per pass)")
            table(res["points"], "validation_points")
        if "speculative" in res:
            st.markdown("**Speculative decoding** (measured vs predicted improvement per γ)")
            table(res["speculative"], "validation_speculative")
    else:
        st.info("No validation results yet: run `costmodel validate --measurements "
                "data/measurements/cpu.csv --hardware data/hardware/cpu.json --out "
                "data/validation` and commit data/validation to show them here.")
    files = S.measurement_files()
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
    rel = {str(p.relative_to(S.MEASUREMENTS_DIR)): p for p in files}
    choice = st.selectbox("Measurement file", list(rel))
    df = pd.read_csv(rel[choice])
    st.caption(f"{len(df):,} rows, {len(df.columns)} columns from data/measurements/{choice}. "
               "`costmodel validate` puts the predictions beside these measurements.")
    first = [c for c in ("point_id", "model", "phase", "batch", "context", "time_s",
                         "predicted_s", "measured_s", "error") if c in df.columns]
    table(df, slug("measurements", choice.removesuffix(".csv")),
          column_order=first + [c for c in df.columns if c not in first])


def _plan_bundle(mkey: str, gpus: tuple, rate: float, s_in: int, n_out: int, ttft_ms: float,
                 tpot_ms: float, arrivals: str, max_util: float) -> dict:
    return plan_page(S.model_of_key(mkey), gpus, rate, s_in, n_out, ttft_ms, tpot_ms,
                     arrivals, max_util)


plan_bundle = st.cache_data(_plan_bundle, show_spinner=False, max_entries=16)


def page_plan(inp: Inputs) -> None:
    m = inp.need_model()
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
        b = plan_bundle(S.model_key(m), tuple(gpus), float(rate), int(s_in), int(n_out),
                        float(ttft), float(tpot), arrivals, float(max_util))
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


PAGES = {"Memory": page_memory, "Roofline": page_roofline,
         "Attention intensity": page_attention, "Speculative decoding": page_speculative,
         "Formulas": page_formulas, "Validation": page_validation,
         "Plan a deployment": page_plan}


# ================================================================ main
def main() -> None:
    init_state()
    st.html(CSS)
    inp = sidebar()
    st.title("costmodel — what does serving this LLM cost?")
    st.caption("An analytical calculator for decoder-only transformers: exact parameter and "
               "KV-cache counts, max batch under tensor parallelism, and a per-operator "
               "roofline (closed-form sympy formulas). Pick a model, a GPU and a workload on "
               "the left.")
    for warning in ss.pop("_url_warnings", []):
        st.warning(f"Link: {warning}", icon=WARN)
    page = st.radio("Page", S.PAGES, key="page", horizontal=True, label_visibility="collapsed")
    guarded(PAGES[page], inp)
    sync_url()


main()
