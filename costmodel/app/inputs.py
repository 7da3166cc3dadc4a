"""Specs from the app's inputs and back: the custom-model and custom-hardware fields ↔
ModelSpec / HardwareSpec, uploaded files (a Hugging Face ``config.json``, a calibration or
fitted hardware JSON) → specs, the TP degrees a model allows, and the text that describes the
efficiencies a hardware spec carries.

Every reader raises ``ValueError`` that names the file and the field; nothing else escapes, so
the app shows one ``st.error`` and keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from costmodel.app.state import HW_FIELDS, MODEL_FIELDS, Workload, model_field_values
from costmodel.batch import check_parallel, check_tp
from costmodel.files import parse_json
from costmodel.hfconfig import spec_from_hf_config
from costmodel.quant import dtype_for_bytes, weight_format
from costmodel.specs import EngineProfile, HardwareSpec, ModelSpec

#: Exceptions a reader turns into a ValueError (a malformed value deep in a file can surface as
#: any of them before the checks see it).
_MALFORMED = (TypeError, KeyError, AttributeError, IndexError, OverflowError, RecursionError)


# ---------------------------------------------------------------- custom fields
def model_fields_of(m: ModelSpec) -> dict[str, Any]:
    """The custom-model field values of a spec (to start a custom model from it): every
    ModelSpec field, so nothing the spec describes is dropped."""
    return {"m_name": f"{m.name}-custom"[:80], **model_field_values(m)}


def hardware_fields_of(h: HardwareSpec) -> dict[str, Any]:
    """The custom-hardware field values (display units) of a spec, clamped to the fields'
    ranges."""
    peaks = h.peak_flops
    spec_values = {"h_mem_gib": h.memory_bytes, "h_bw_gbs": h.bandwidth,
                   "h_tflops16": peaks.get("bf16", peaks.get("fp16", peaks.get("fp32", 0.0))),
                   "h_tflops32": peaks.get("fp32", 0.0),
                   "h_link_gbs": h.interconnect_bandwidth,
                   "h_link_us": h.interconnect_latency, "h_kernel_us": h.kernel_overhead}
    out: dict[str, Any] = {"h_name": f"{h.name}-custom"[:80]}
    for f in HW_FIELDS:
        out[f.key] = min(max(float(spec_values[f.key]) / f.scale, f.lo), f.hi)
    return out


def custom_model(values: Mapping[str, Any]) -> ModelSpec:
    """ModelSpec from the custom-model fields (ValueError naming the field to change)."""
    kw: dict[str, Any] = {}
    for f in MODEL_FIELDS:
        value = values[f"m_{f.name}"]
        if f.kind == "text":
            value = str(value).strip()
        if f.none_as is not None and value == f.none_as:
            value = None
        elif f.kind == "int":
            value = int(value)
        elif f.kind == "bool":
            value = bool(value)
        elif f.kind == "float":
            value = float(value)
        kw[f.name] = value
    name = str(values.get("m_name") or "").strip() or "custom"
    return ModelSpec(name=name[:200], source="custom fields in the app", **kw)


def custom_hardware(values: Mapping[str, Any]) -> HardwareSpec:
    """HardwareSpec from the custom-hardware fields (display units converted; ValueError
    naming the field)."""
    v = {f.key: float(values[f.key]) * f.scale for f in HW_FIELDS}
    peaks = {"fp16": v["h_tflops16"], "bf16": v["h_tflops16"]}
    if v["h_tflops32"] > 0:
        peaks["fp32"] = v["h_tflops32"]
    name = str(values.get("h_name") or "").strip() or "custom"
    return HardwareSpec(name=name[:200], memory_bytes=int(round(v["h_mem_gib"])),
                        bandwidth=v["h_bw_gbs"], peak_flops=peaks,
                        interconnect_bandwidth=v["h_link_gbs"],
                        interconnect_latency=v["h_link_us"],
                        kernel_overhead=v["h_kernel_us"], source="custom fields in the app")


# ---------------------------------------------------------------- uploads
def _json_object(data: bytes, what: str) -> dict:
    obj = parse_json(data, what)
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: the file must hold a JSON object {{...}}, not a "
                         f"{type(obj).__name__}")
    return obj


def model_from_upload(data: bytes, filename: str = "config.json") -> ModelSpec:
    """ModelSpec from the bytes of an uploaded Hugging Face ``config.json``; its name is the
    config's ``_name_or_path`` or the file name."""
    cfg = _json_object(data, "config.json")
    name = cfg.get("_name_or_path")
    if not isinstance(name, str) or not name.strip():
        name = Path(filename).stem
        if name in ("config", ""):
            name = f"{str(cfg.get('model_type', 'hf'))[:40]}-config"
    try:
        return spec_from_hf_config(cfg, name=name.strip()[:80])
    except _MALFORMED as e:
        raise ValueError(f"config.json: a field has the wrong type ({e})") from None


def hardware_from_upload(data: bytes) -> HardwareSpec:
    """HardwareSpec from an uploaded hardware JSON (``costmodel calibrate`` or ``costmodel
    validate --save-fitted`` writes one; its typed efficiencies are kept)."""
    obj = _json_object(data, "hardware JSON")
    try:
        return HardwareSpec.from_dict(obj)
    except ValueError as e:
        raise ValueError(f"hardware JSON: {e}") from None
    except _MALFORMED as e:
        raise ValueError(f"hardware JSON: a field has the wrong type ({e})") from None


# ---------------------------------------------------------------- tensor parallelism
def valid_tps(m: ModelSpec, limit: int = 64) -> list[int]:
    """TP degrees this model can be split over (up to ``limit``)."""
    out = []
    for t in range(1, min(m.n_heads, limit) + 1):
        try:
            check_tp(m, t)
        except ValueError:
            continue
        out.append(t)
    return out


def table_tps(m: ModelSpec, tp: int, ep: int = 1) -> tuple[int, ...]:
    """A handful of TP degrees for tables: powers of two (or all valid degrees), plus ``tp``;
    with expert parallelism only those that divide ``ep``."""
    valid = [t for t in valid_tps(m) if ep == 1 or ep % t == 0]
    pick = [t for t in valid if t & (t - 1) == 0 and t <= 16]
    if len(pick) < 2:
        pick = valid[:5]
    if tp in valid and tp not in pick:
        pick.append(tp)
    return tuple(sorted(pick))


def check_workload_tp(m: ModelSpec, tp: int, ep: int = 1) -> None:
    """check_tp (and, for EP > 1, check_parallel) with the valid choices named."""
    try:
        check_tp(m, tp)
    except ValueError as e:
        raise ValueError(f"{e}. Valid TP degrees for {m.name}: "
                         f"{', '.join(map(str, valid_tps(m)))}") from None
    try:
        check_parallel(m, tp, ep)
    except ValueError as e:
        valid = [x for x in range(tp, m.n_experts + 1, tp) if m.n_experts % x == 0] \
            if m.moe else [1]
        raise ValueError(f"{e}. Valid EP degrees for {m.name} at TP = {tp}: "
                         f"{', '.join(map(str, [1, *[x for x in valid if x > 1]]))}") \
            from None


def compute_dtype(hw: HardwareSpec, w: Workload) -> str:
    """The dtype of the workload's matmuls on ``hw``: its format's where ``hw`` has it, else
    the 16-bit path (fp32 for 4-byte weights)."""
    if w.quant:
        return weight_format(w.quant).compute_dtype(hw)
    return dtype_for_bytes(hw, w.weight_bytes)


# ---------------------------------------------------------------- text
def efficiency_text(h: HardwareSpec) -> str:
    """What the hardware's own efficiencies are: 'ideal roofline …' for a datasheet spec, the
    fitted values otherwise."""
    parts = [f"η_c = {h.eta_c:.3g}"]
    if h.eta_c_skinny is not None and h.eta_c_skinny != h.eta_c:
        parts[-1] += f" ({h.eta_c_skinny:.3g} for matmuls of ≤ {h.skinny_rows} rows)"
    parts.append(f"η_m = {h.eta_m:.3g}")
    if h.eta_m_elementwise is not None and h.eta_m_elementwise != h.eta_m:
        parts[-1] += f" ({h.eta_m_elementwise:.3g} for elementwise passes)"
    if h.kernel_overhead > 0:
        parts.append(f"{h.kernel_overhead * 1e6:.3g} µs per kernel")
    ideal = (h.eta_c == 1 and h.eta_m == 1 and h.kernel_overhead == 0
             and h.eta_c_skinny in (None, 1) and h.eta_m_elementwise in (None, 1))
    head = "ideal roofline: " if ideal else ""
    return head + ", ".join(parts) + ("" if h.kernel_overhead > 0 else ", no kernel overhead")


def engine_text(e: EngineProfile) -> str:
    """What an engine profile applies: 'η_c 0.7, η_m 0.7, 50 µs per layer per pass, fused
    attention; 80 % bands: decode_b1 ×0.85–1.2 …'."""
    parts = [f"η_c {e.eta_c:g}", f"η_m {e.eta_m:g}"]
    if e.eta_m_quant is not None:
        parts.append(f"η_m {e.eta_m_quant:g} on weight-only quantized matmuls")
    if e.step_overhead:
        parts.append(f"{e.step_overhead * 1e6:g} µs per pass")
    if e.layer_overhead:
        parts.append(f"{e.layer_overhead * 1e6:g} µs per layer per pass")
    if e.kernel_overhead:
        parts.append(f"{e.kernel_overhead * 1e6:g} µs per kernel")
    parts.append(f"{e.attention} attention")
    bands = ", ".join(f"{k} ×{lo:.3g}–{hi:.3g}" for k, (lo, hi) in e.bands.items())
    return f"{', '.join(parts)}; 80 % bands: {bands or 'none (no fitted band yet)'}"


__all__ = ["check_workload_tp", "compute_dtype", "custom_hardware", "custom_model",
           "efficiency_text", "engine_text",
           "hardware_fields_of", "hardware_from_upload", "model_fields_of", "model_from_upload",
           "table_tps", "valid_tps"]
