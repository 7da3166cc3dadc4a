"""The sidebar's model and hardware pickers. Both run one flow (:func:`pick`): a selector (a
preset, a custom spec, an uploaded file), the custom fields when custom is chosen, the spec
resolved (an error is kept as text and shown, the uploader stays), the uploader in an expander.
:data:`MODEL` and :data:`HARDWARE` hold what differs: keys, labels, readers, custom fields.

A custom spec starts from the last preset chosen (``_last_<key>``) until its fields are edited
(``_custom_<key>_touched``); choosing a file in an uploader selects the uploaded spec.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from costmodel.app import inputs, state
from costmodel.app.display import count_text
from costmodel.app.state import CALIBRATION, CUSTOM, FIELDS, HF_CONFIG, Workload
from costmodel.app.widgets import ERR, cached, callback, error_text, guarded, ss, uploaded
from costmodel.hfconfig import SUPPORTED as HF_MODEL_TYPES
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import hardware_presets, model_presets
from costmodel.presets import model as model_preset
from costmodel.quant import dtype_for_bytes
from costmodel.specs import HardwareSpec, ModelSpec
from costmodel.units import GB, GIB, number_text

Spec = ModelSpec | HardwareSpec

model_from_upload = cached(inputs.model_from_upload)
hardware_from_upload = cached(inputs.hardware_from_upload)


@dataclass(frozen=True)
class Picker:
    """One picker: its selector, where a custom spec comes from, its uploader."""

    key: str                                 # the selector's key and URL field
    label: str                               # "Model", the section's name in messages
    help: str
    format_func: Callable[[str], str]
    default: str                             # the preset before any was chosen
    presets: Callable[[], Mapping[str, Spec]]
    preset: Callable[[str], Spec]
    fields_of: Callable[[Spec], dict]        # a spec → its custom-field values
    custom: Callable[[Mapping], Spec]        # the custom-field values → a spec
    custom_fields: Callable[[], None]        # lays the custom fields out
    upload: str                              # the selector's choice "the uploaded file"
    upload_key: str
    upload_title: str
    upload_label: str
    upload_help: str | None
    no_upload: str                           # the error while no file is uploaded
    from_upload: Callable[[bytes, str], Spec]
    editable: bool = False                   # an uploaded spec can become the custom one

    @property
    def last(self) -> str:
        return f"_last_{self.key}"

    @property
    def touched(self) -> str:
        return f"_custom_{self.key}_touched"


def base(p: Picker) -> Spec:
    """The spec a custom one starts from: the last preset chosen."""
    return p.presets().get(ss[p.last], p.preset(p.default))


@callback
def _on_choice(p: Picker) -> None:
    if ss[p.key] == CUSTOM and not ss[p.touched]:
        ss.update(p.fields_of(base(p)))


@callback
def _on_upload(p: Picker) -> None:
    if uploaded(p.upload_key) is not None:
        ss[p.key] = p.upload


@callback
def _touch(flag: str) -> None:
    ss[flag] = True


@callback
def _copy_to_custom(p: Picker, spec: Spec) -> None:
    ss.update(p.fields_of(spec))
    ss[p.key], ss[p.touched] = CUSTOM, True


@callback
def _reset_custom(p: Picker) -> None:
    ss.update(p.fields_of(base(p)))


def resolve(p: Picker) -> Spec:
    """The spec the selector's choice names (ValueError when it cannot be built)."""
    choice = ss[p.key]
    if choice == CUSTOM:
        return p.custom(ss)
    if choice == p.upload:
        up = uploaded(p.upload_key)
        if up is None:
            raise ValueError(p.no_upload)
        return p.from_upload(*up)
    spec = p.preset(choice)
    ss[p.last] = choice
    return spec


def pick(p: Picker) -> tuple[Spec | None, str]:
    """Lay the picker out; the spec (None on an error, then shown) and the error's text."""
    guarded(st.selectbox, p.label, FIELDS[p.key].options(), key=p.key,
            format_func=p.format_func, on_change=_on_choice, args=(p,), help=p.help)
    if ss.get(p.key) == CUSTOM:
        guarded(p.custom_fields, where=f"Custom {p.label.lower()}")
    spec, error = None, "not set"
    try:
        spec = resolve(p)
    except Exception as e:  # noqa: BLE001 — shown below, the uploader stays
        error = error_text(e, 200)
    with st.expander(p.upload_title, expanded=ss.get(p.key) == p.upload):
        guarded(st.file_uploader, p.upload_label, type=["json"], key=p.upload_key,
                on_change=_on_upload, args=(p,), help=p.upload_help)
        if p.editable and ss.get(p.key) == p.upload and spec is not None:
            st.button(f"Edit as custom {p.label.lower()}", on_click=_copy_to_custom,
                      args=(p, spec))
    if spec is None:
        st.error(f"{p.label}: {error}", icon=ERR)
    return spec, error


# ---------------------------------------------------------------- the model
def _model_widget(f: state.ModelField, where: Any = st) -> None:
    touch = {"on_change": _touch, "args": (MODEL.touched,)}
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
                      args=(MODEL.touched,))
        basic = [f for f in state.MODEL_FIELDS if not f.advanced]
        numbers = [f for f in basic if f.kind == "int"]
        cols = st.columns(2)
        for i, f in enumerate(numbers):
            _model_widget(f, cols[i % 2])
        for f in basic:
            if f.kind != "int":
                _model_widget(f)
        st.button("Reset to " + str(ss[MODEL.last]), on_click=_reset_custom, args=(MODEL,))
    advanced = [f for f in state.MODEL_FIELDS if f.advanced]
    changed = any(ss.get(f"m_{f.name}") != FIELDS[f"m_{f.name}"].default for f in advanced)
    with st.expander("Custom model: norms, windows, experts, latent attention, formats",
                     expanded=changed):
        for f in advanced:
            _model_widget(f)


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


def model_text(m: ModelSpec) -> str:
    """The model in one line: its sizes and what it has beyond a dense decoder."""
    return (f"{count_text(m.n_layers)} layers, d_model {count_text(m.d_model)}, "
            f"{count_text(m.n_heads)} heads ({count_text(m.n_kv_heads)} KV), d_ff "
            f"{count_text(m.d_ff)}, vocab {count_text(m.vocab_size)}"
            + "".join(f"; {part}" for part in architecture_parts(m)))


MODEL = Picker(
    key="model", label="Model", format_func=state.model_label,
    help="A preset, a custom architecture, or a Hugging Face config.json.",
    default=state.DEFAULT_MODEL, presets=model_presets, preset=model_preset,
    fields_of=inputs.model_fields_of, custom=inputs.custom_model,
    custom_fields=custom_model_fields,
    upload=HF_CONFIG, upload_key="hf_upload", upload_title="Load a Hugging Face config.json",
    upload_label="config.json", upload_help=f"model_type one of: {', '.join(HF_MODEL_TYPES)}",
    no_upload="no config.json uploaded yet — upload one below (an uploaded file does not "
              "travel in a link: use 'Edit as custom model' to share it)",
    from_upload=model_from_upload, editable=True)


# ---------------------------------------------------------------- the hardware
def custom_hardware_fields() -> None:
    with st.expander("Custom hardware", expanded=True):
        touch = {"on_change": _touch, "args": (HARDWARE.touched,)}
        st.text_input("Name", key="h_name", max_chars=80, **touch)
        for f in state.HW_FIELDS:
            st.number_input(f.label, float(f.lo), float(f.hi), key=f.key, format="%.4g",
                            **touch)


def hardware_text(h: HardwareSpec, m: ModelSpec | None) -> str:
    """The hardware in one line: memory, bandwidth and the peak the workload's matmuls use."""
    try:
        dtype = inputs.compute_dtype(h, Workload.of(ss, m, h))
    except Exception:  # noqa: BLE001 — the workload section shows what is wrong
        dtype = dtype_for_bytes(h, 2)
    return (f"{number_text(h.memory_bytes / GIB)} GiB ({number_text(h.memory_bytes / GB)} "
            f"GB), {number_text(h.bandwidth / GB)} GB/s, {number_text(h.peak(dtype) / 1e12)} "
            f"TFLOP/s dense {dtype}")


HARDWARE = Picker(
    key="hw", label="Hardware", format_func=state.hardware_label,
    help="Memory is what the device reports (an '80 GB' A100 reports 80 GiB).",
    default=state.DEFAULT_HARDWARE, presets=hardware_presets, preset=hardware_preset,
    fields_of=inputs.hardware_fields_of, custom=inputs.custom_hardware,
    custom_fields=custom_hardware_fields,
    upload=CALIBRATION, upload_key="hw_upload", upload_title="Load a calibration JSON",
    upload_label="hardware JSON (written by `costmodel calibrate` or `costmodel validate`)",
    upload_help=None, no_upload="no calibration JSON uploaded yet — upload one below",
    from_upload=lambda data, _name: hardware_from_upload(data))


__all__ = ["HARDWARE", "MODEL", "Picker", "architecture_parts", "hardware_text", "model_text",
           "pick", "resolve"]
