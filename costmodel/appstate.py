"""Plain-Python helpers of the Streamlit app (``app.py``): the app's state as URL query
parameters, input parsing (custom model and hardware fields, uploaded JSON files), the tables
the pages show, and the page computations (functions of plain values that the app caches with
st.cache_data; figures come back as PNG bytes). Nothing here imports streamlit, so every helper
is testable directly.

The state is a flat dict of *fields* (``FIELDS``): each has a default, a parser for its URL
text and, for numbers, the range its widget accepts. ``parse_query_params`` turns a URL's query
parameters into values (bad ones fall back to the default, with a warning);
``encode_query_params`` writes back the values that differ from the defaults.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter

import costmodel as cm
from costmodel import plots
from costmodel.batch import check_tp
from costmodel.specs import ACTIVATIONS, NORMS, POSITIONS, HardwareSpec, ModelSpec

PAGES = ("Memory", "Roofline", "Attention intensity", "Speculative decoding", "Formulas",
         "Validation", "Plan a deployment")
CUSTOM = "custom"
HF_CONFIG = "config.json"          # model from an uploaded Hugging Face config.json
CALIBRATION = "calibration JSON"   # hardware from an uploaded calibration file
BYTE_CHOICES = (4.0, 2.0, 1.0, 0.5)
ACT_BYTE_CHOICES = (4.0, 2.0, 1.0)
BYTE_LABELS = {4.0: "4 (fp32)", 2.0: "2 (fp16 / bf16)", 1.0: "1 (fp8 / int8)", 0.5: "0.5 (int4)"}
ATTENTION = ("standard", "fused")
GIB = 2**30
GB = 1e9
MEASUREMENTS_DIR = Path(__file__).resolve().parent.parent / "data" / "measurements"
VALIDATION_DIR = Path(__file__).resolve().parent.parent / "data" / "validation"
VALIDATION_FIGURES = {"predicted_vs_measured.png": "Predicted vs measured (log–log, y = x)",
                      "latency_vs_context.png": "Latency vs context: KV cache vs no cache",
                      "speculative_speedup.png": "Speculative decoding: improvement vs γ"}


@dataclass(frozen=True)
class Field:
    """One piece of app state: URL name = session-state key = widget key."""

    key: str
    default: Any
    kind: str                               # int, float, str, bool, choice
    lo: float | None = None
    hi: float | None = None
    choices: tuple | Callable[[], tuple] | None = None

    def options(self) -> tuple:
        return self.choices() if callable(self.choices) else tuple(self.choices or ())

    def parse(self, text: str) -> Any:
        """The value of a URL text; ValueError saying what is wrong."""
        if self.kind == "int":
            try:
                value = int(text)
            except ValueError:
                raise ValueError("not a whole number") from None
        elif self.kind == "float":
            try:
                value = float(text)
            except ValueError:
                raise ValueError("not a number") from None
            if not math.isfinite(value):
                raise ValueError("not a finite number")
        elif self.kind == "bool":
            low = text.strip().lower()
            if low not in ("1", "0", "true", "false"):
                raise ValueError("use 1 or 0")
            return low in ("1", "true")
        elif self.kind == "choice":
            opts = self.options()
            if isinstance(opts[0], float):
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(f"choose from {', '.join(map(_fmt_choice, opts))}") \
                        from None
            else:
                value = text
            if value not in opts:
                raise ValueError(f"choose from {', '.join(map(_fmt_choice, opts))}")
            return value
        else:
            value = text.strip()
            if not value or len(value) > 80:
                raise ValueError("give 1 to 80 characters")
            return value
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise ValueError(f"must lie in [{_fmt_choice(self.lo)}, {_fmt_choice(self.hi)}]")
        return value

    def encode(self, value: Any) -> str:
        if self.kind == "bool":
            return "1" if value else "0"
        return _fmt_choice(value)


def _fmt_choice(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@cache
def model_label(name: str) -> str:
    """'gpt2-xl · 1.56 B params' for a preset; the name itself otherwise."""
    presets = cm.model_presets()
    if name in presets:
        return f"{name} · {presets[name].param_count / 1e9:.2f} B params"
    return {CUSTOM: "custom (edit the fields below)",
            HF_CONFIG: "from a Hugging Face config.json (upload below)"}.get(name, name)


@cache
def hardware_label(name: str) -> str:
    """'t4 · 16 GB GDDR6' for a preset."""
    presets = cm.hardware_presets()
    if name in presets:
        return f"{name} · {presets[name].memory_marketed}"
    return {CUSTOM: "custom (edit the fields below)",
            CALIBRATION: "from a calibration JSON (upload below)"}.get(name, name)


def model_names() -> tuple[str, ...]:
    return tuple(cm.model_presets())


def hardware_names() -> tuple[str, ...]:
    return tuple(cm.hardware_presets())


DEFAULT_MODEL = "llama3-8b"
DEFAULT_HARDWARE = "a100-80gb"

# Custom-model fields: every ModelSpec field (head_dim 0 = d_model / n_heads).
MODEL_INT_FIELDS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff",
                    "vocab_size", "max_context")
MODEL_BOOL_FIELDS = ("gated_mlp", "qkv_bias", "out_bias", "mlp_bias", "lm_head_bias",
                     "tied_embeddings")
MODEL_CHOICE_FIELDS = {"activation": ACTIVATIONS, "norm": NORMS, "positions": POSITIONS}
# Custom-hardware fields, in display units (named in the widget labels).
HW_FIELDS = {  # key: (label, default from a HardwareSpec, to-spec factor)
    "h_mem_gib": ("Memory per GPU (GiB = 2^30 bytes)", lambda h: h.memory_bytes / GIB),
    "h_bw_gbs": ("Memory bandwidth (GB/s = 1e9 bytes/s)", lambda h: h.bandwidth / GB),
    "h_tflops16": ("Dense 16-bit peak (TFLOP/s)",
                   lambda h: h.peak_flops.get("bf16", h.peak_flops.get("fp16", 0)) / 1e12),
    "h_tflops32": ("Dense fp32 peak (TFLOP/s)", lambda h: h.peak_flops.get("fp32", 0) / 1e12),
    "h_link_gbs": ("Interconnect per GPU per direction (GB/s)",
                   lambda h: h.interconnect_bandwidth / GB),
    "h_link_us": ("All-reduce latency (µs)", lambda h: h.interconnect_latency * 1e6),
    "h_kernel_us": ("Per-kernel overhead (µs)", lambda h: h.kernel_overhead * 1e6),
}


def _model_fields() -> list[Field]:
    base = cm.model_presets()[DEFAULT_MODEL]
    out = [Field("m_name", "my-model", "str")]
    for name in MODEL_INT_FIELDS:
        default = 0 if name == "head_dim" else getattr(base, name)
        out.append(Field(f"m_{name}", default, "int", 0 if name == "head_dim" else 1, 10**7))
    for name in MODEL_BOOL_FIELDS:
        out.append(Field(f"m_{name}", getattr(base, name), "bool"))
    for name, choices in MODEL_CHOICE_FIELDS.items():
        out.append(Field(f"m_{name}", getattr(base, name), "choice", choices=choices))
    return out


def _hardware_fields() -> list[Field]:
    base = cm.hardware_presets()[DEFAULT_HARDWARE]
    out = [Field("h_name", "my-gpu", "str")]
    for key, (_, get) in HW_FIELDS.items():
        lo = 0.0 if key in ("h_tflops32", "h_link_gbs", "h_link_us", "h_kernel_us") else 1e-3
        out.append(Field(key, round(float(get(base)), 6), "float", lo, 1e7))
    return out


FIELDS: dict[str, Field] = {f.key: f for f in [
    Field("page", PAGES[0], "choice", choices=PAGES),
    Field("model", DEFAULT_MODEL, "choice", choices=lambda: (*model_names(), CUSTOM, HF_CONFIG)),
    Field("hw", DEFAULT_HARDWARE, "choice",
          choices=lambda: (*hardware_names(), CUSTOM, CALIBRATION)),
    Field("batch", 1, "int", 1, 1_000_000),
    Field("prompt", 1024, "int", 1, 10_000_000),
    Field("generate", 128, "int", 1, 10_000_000),
    Field("tp", 1, "int", 1, 1024),
    Field("wbytes", 2.0, "choice", choices=BYTE_CHOICES),
    Field("kvbytes", 2.0, "choice", choices=BYTE_CHOICES),
    Field("abytes", 2.0, "choice", choices=ACT_BYTE_CHOICES),
    Field("attention", "standard", "choice", choices=ATTENTION),
    Field("eta_c", 1.0, "float", 0.01, 1.0),
    Field("eta_m", 1.0, "float", 0.01, 1.0),
    # speculative decoding page
    Field("alpha", 0.75, "float", 0.0, 0.99),
    Field("gamma", 5, "int", 1, 32),
    Field("draft", "gpt2", "choice", choices=model_names),
    # attention-intensity page
    Field("ai_d", 128, "int", 1, 65536),
    Field("ai_n", 1024, "int", 1, 1_000_000),
    Field("ai_batch", 64, "int", 1, 1_000_000),
    Field("ai_b", 2.0, "choice", choices=BYTE_CHOICES),
    *_model_fields(),
    *_hardware_fields(),
]}


def defaults() -> dict[str, Any]:
    return {k: f.default for k, f in FIELDS.items()}


def parse_query_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Every field's value from URL query parameters (defaults where absent or bad) and one
    warning per bad or unknown parameter."""
    values = defaults()
    warnings = []
    for key, raw in params.items():
        text = raw[-1] if isinstance(raw, (list, tuple)) else raw
        field = FIELDS.get(key)
        if field is None:
            warnings.append(f"unknown URL parameter {key!r} ignored")
            continue
        try:
            values[key] = field.parse(str(text))
        except (ValueError, TypeError, IndexError) as e:
            warnings.append(f"URL parameter {key}={str(text)[:40]!r} ignored ({e}); using "
                            f"the default {field.encode(field.default)}")
    return values, warnings


def encode_query_params(values: Mapping[str, Any]) -> dict[str, str]:
    """The query parameters of a state: the fields that differ from their default (custom
    model and hardware fields only while custom is selected)."""
    out = {}
    for key, field in FIELDS.items():
        if key not in values:
            continue
        if key.startswith("m_") and values.get("model") != CUSTOM:
            continue
        if key.startswith("h_") and values.get("hw") != CUSTOM:
            continue
        if values[key] != field.default:
            out[key] = field.encode(values[key])
    return out


# ---------------------------------------------------------------- specs from inputs
def model_fields_of(m: ModelSpec) -> dict[str, Any]:
    """The custom-model field values of a spec (to start a custom model from a preset)."""
    out = {"m_name": f"{m.name}-custom"[:80]}
    for name in (*MODEL_INT_FIELDS, *MODEL_BOOL_FIELDS, *MODEL_CHOICE_FIELDS):
        out[f"m_{name}"] = getattr(m, name)
    if m.head_dim * m.n_heads == m.d_model:   # the usual d_model / H: keep it derived
        out["m_head_dim"] = 0
    return out


def hardware_fields_of(h: HardwareSpec) -> dict[str, Any]:
    out = {"h_name": f"{h.name}-custom"[:80]}
    for key, (_, get) in HW_FIELDS.items():
        out[key] = round(float(get(h)), 6)
    return out


def custom_model(values: Mapping[str, Any]) -> ModelSpec:
    """ModelSpec from the custom-model fields (ValueError naming the field to change)."""
    kw: dict[str, Any] = {name: int(values[f"m_{name}"]) for name in MODEL_INT_FIELDS}
    if kw["head_dim"] == 0:
        kw["head_dim"] = None
    for name in MODEL_BOOL_FIELDS:
        kw[name] = bool(values[f"m_{name}"])
    for name in MODEL_CHOICE_FIELDS:
        kw[name] = values[f"m_{name}"]
    name = str(values.get("m_name") or "custom").strip() or "custom"
    return ModelSpec(name=name, source="custom fields in the app", **kw)


def custom_hardware(values: Mapping[str, Any]) -> HardwareSpec:
    """HardwareSpec from the custom-hardware fields (display units converted)."""
    if values["h_tflops16"] <= 0:
        raise ValueError("Dense 16-bit peak: must be a positive number of TFLOP/s")
    peaks = {"fp16": values["h_tflops16"] * 1e12, "bf16": values["h_tflops16"] * 1e12}
    if values["h_tflops32"] > 0:
        peaks["fp32"] = values["h_tflops32"] * 1e12
    return HardwareSpec(
        name=str(values.get("h_name") or "custom").strip() or "custom",
        memory_bytes=int(round(values["h_mem_gib"] * GIB)),
        bandwidth=values["h_bw_gbs"] * GB, peak_flops=peaks,
        interconnect_bandwidth=values["h_link_gbs"] * GB,
        interconnect_latency=values["h_link_us"] * 1e-6,
        kernel_overhead=values["h_kernel_us"] * 1e-6, source="custom fields in the app")


def _json_object(data: bytes, what: str) -> dict:
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{what}: the file is not UTF-8 text; upload a .json file") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}: the file is not valid JSON ({e.msg}, line {e.lineno}, "
                         f"column {e.colno}); fix it or upload another file") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{what}: the file must hold a JSON object {{...}}, "
                         f"not a {type(obj).__name__}")
    return obj


def model_from_hf_bytes(data: bytes, filename: str = "config.json") -> ModelSpec:
    """ModelSpec from the bytes of an uploaded Hugging Face ``config.json``."""
    cfg = _json_object(data, "config.json")
    name = cfg.get("_name_or_path") or Path(filename).stem
    if name == "config":
        name = f"{cfg.get('model_type', 'hf')}-config"
    return ModelSpec.from_hf_config(cfg, name=str(name)[:80])


def hardware_from_json_bytes(data: bytes) -> HardwareSpec:
    """HardwareSpec from an uploaded calibration JSON (``costmodel calibrate`` writes one)."""
    obj = _json_object(data, "hardware JSON")
    try:
        return HardwareSpec.from_dict(obj)
    except TypeError as e:  # a field of the wrong type deep inside
        raise ValueError(f"hardware JSON: {e}") from None


def model_key(m: ModelSpec) -> str:
    """A plain, hashable key of a spec (for st.cache_data)."""
    return json.dumps(m.to_dict(), sort_keys=True)


def hardware_key(h: HardwareSpec) -> str:
    return json.dumps(h.to_dict(), sort_keys=True, default=str)


def model_of_key(key: str) -> ModelSpec:
    return ModelSpec.from_dict(json.loads(key))


def hardware_of_key(key: str) -> HardwareSpec:
    return HardwareSpec.from_dict(json.loads(key))


# ---------------------------------------------------------------- workload checks
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


def table_tps(m: ModelSpec, tp: int) -> list[int]:
    """A handful of TP degrees for tables: powers of two (or all valid degrees), plus ``tp``."""
    valid = valid_tps(m)
    pick = [t for t in valid if t & (t - 1) == 0 and t <= 16]
    if len(pick) < 2:
        pick = valid[:5]
    if tp in valid and tp not in pick:
        pick.append(tp)
    return sorted(pick)


def check_workload_tp(m: ModelSpec, tp: int) -> None:
    """check_tp with the valid choices named."""
    try:
        check_tp(m, tp)
    except ValueError as e:
        raise ValueError(f"{e}. Valid TP degrees for {m.name}: "
                         f"{', '.join(map(str, valid_tps(m)))}") from None


# ---------------------------------------------------------------- display helpers
def mem_text(nbytes: float) -> str:
    """'16.06 GB (14.96 GiB)': both units, named."""
    return f"{nbytes / GB:,.2f} GB ({nbytes / GIB:,.2f} GiB)"


def small_mem_text(nbytes: float) -> str:
    if nbytes >= 1e8:
        return mem_text(nbytes)
    return f"{nbytes / 1e6:,.3f} MB ({nbytes / 2**20:,.3f} MiB)"


def time_text(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds * 1e6:,.1f} µs"


#: Context lengths of the max-batch table and plot (the metric above them gives s itself).
CONTEXTS = (512, 1024, 2048, 4096, 8192, 16384, 32768)


def param_table(m: ModelSpec, weight_bytes: float) -> pd.DataFrame:
    parts = cm.param_breakdown(m)
    total = sum(parts.values())
    return pd.DataFrame({
        "component": list(parts),
        "parameters": [int(v) for v in parts.values()],
        "share (%)": [100 * v / total for v in parts.values()],
        "weight bytes": [v * weight_bytes for v in parts.values()],
        "weight GB (1e9 B)": [v * weight_bytes / GB for v in parts.values()],
        "weight GiB (2^30 B)": [v * weight_bytes / GIB for v in parts.values()],
    })


def max_batch_table(m: ModelSpec, hw: HardwareSpec, contexts: list[int], tps: list[int],
                    weight_bytes: float, kv_bytes: float) -> pd.DataFrame:
    """Rows: context length; columns: TP degree; cells: max batch."""
    data = {f"TP = {t}": [cm.max_batch_size(m, hw, c, tp=t, weight_bytes=weight_bytes,
                                            kv_bytes=kv_bytes) for c in contexts] for t in tps}
    df = pd.DataFrame(data, index=pd.Index(contexts, name="context (tokens)"))
    return df.reset_index()


def tp_table(m: ModelSpec, hw: HardwareSpec, context: int, tps: list[int],
             weight_bytes: float, kv_bytes: float) -> pd.DataFrame:
    rows = []
    for t in tps:
        p = cm.batch_plan(m, hw, context, tp=t, weight_bytes=weight_bytes, kv_bytes=kv_bytes)
        rows.append({"TP": t, "weights per GPU (GiB)": p.weight_bytes_per_gpu / GIB,
                     "KV heads per GPU": p.kv_heads_per_gpu,
                     "KV replication": p.kv_replication,
                     "KV per request per GPU (MiB)": p.kv_bytes_per_request_per_gpu / 2**20,
                     "max batch": p.max_batch, "why": p.reason})
    return pd.DataFrame(rows)


OP_DISPLAY = {"op": "operator", "block": "block", "count": "count", "flops": "GFLOP",
              "bytes": "MB moved", "intensity": "FLOPs/byte", "time": "time (µs)",
              "bound": "bound"}


def ops_display(ops: pd.DataFrame) -> pd.DataFrame:
    """The per-operator table in display units (GFLOP = 1e9 FLOPs, MB = 1e6 bytes, µs)."""
    df = ops[list(OP_DISPLAY)].copy()
    df["flops"] = df["flops"] / 1e9
    df["bytes"] = df["bytes"] / 1e6
    df["time"] = df["time"] * 1e6
    return df.rename(columns=OP_DISPLAY)


def first_compute_bound(df: pd.DataFrame) -> int | None:
    """The first batch of a decode sweep whose bound is compute, or None."""
    hit = df.loc[df["bound"] == "compute", "batch"]
    return int(hit.iloc[0]) if len(hit) else None


def batch_scan_points(max_batch: int, cap: int = 1 << 16) -> np.ndarray:
    """Every batch 1 … max_batch (at most ``cap``; beyond, a geometric grid)."""
    top = max(int(max_batch), 1)
    if top <= cap:
        return np.arange(1, top + 1)
    return np.unique(np.concatenate([np.arange(1, cap + 1),
                                     np.geomspace(cap, top, 256).astype(np.int64)]))


def measurement_files(folder: Path = MEASUREMENTS_DIR) -> list[Path]:
    """CSV files under data/measurements (empty when the folder does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*.csv") if p.is_file())


def validation_results(folder: Path = VALIDATION_DIR) -> dict:
    """The committed output of ``costmodel validate`` under data/validation: tables
    (``headline``, ``errors``, ``points``, ``speculative``: DataFrames, absent when the file is
    missing or unreadable) and ``figures`` (title → PNG path, the ones that exist)."""
    out: dict = {"figures": {}}
    if not folder.is_dir():
        return out
    for key, name in (("headline", "headline.csv"), ("errors", "errors_by_regime.csv"),
                      ("points", "points.csv"), ("speculative", "speculative.csv")):
        path = folder / name
        if path.is_file():
            try:
                out[key] = pd.read_csv(path)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
                continue
    out["figures"] = {title: folder / name for name, title in VALIDATION_FIGURES.items()
                      if (folder / name).is_file()}
    return out


# ---------------------------------------------------------------- page computations
# Plain functions of plain values (spec keys, numbers), cached by the app with st.cache_data.
# Figures come back as PNG bytes, their matplotlib figure closed.
PLAIN_TICKS = FuncFormatter(lambda v, _: f"{v:g}")


def parse_hf(data: bytes, filename: str) -> str:
    return model_key(model_from_hf_bytes(data, filename))


def parse_hw_json(data: bytes) -> str:
    return hardware_key(hardware_from_json_bytes(data))


def png(fig, size: tuple[float, float] | None = None, ymin: float | None = None,
        ylog: bool = False, axes_box: tuple | None = None) -> bytes:
    """PNG bytes of a figure (then closed); ``size`` in inches resizes it for a column.
    Minor ticks are switched off (on log axes they cost half the rendering time); ``axes_box``
    fixes the axes position instead of the slower constrained layout."""
    for ax in fig.axes:
        ax.minorticks_off()
    if axes_box:   # also plain tick labels ("0.01", "100"): mathtext labels are slow
        fig.set_layout_engine("none")
        fig.axes[0].set_position(axes_box)
        for axis in (fig.axes[0].xaxis, fig.axes[0].yaxis):
            axis.set_major_formatter(PLAIN_TICKS)
    if size:
        fig.set_size_inches(*size)
    if ylog:
        fig.axes[0].set_yscale("log")
    if ymin is not None:
        fig.axes[0].set_ylim(bottom=ymin)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def memory_basics(mkey: str, s: int, wb: float, kvb: float) -> dict:
    m = model_of_key(mkey)
    return {"params": m.param_count, "table": param_table(m, wb),
            "weights": cm.weight_bytes(m, wb), "kv_token": cm.kv_bytes_per_token(m, kvb),
            "kv_request": cm.kv_cache_bytes(m, s, 1, kvb),
            "e0294_params": cm.e0294_param_count(m)}


def memory_batch(mkey: str, hkey: str, s: int, g: int, tp: int, wb: float, kvb: float) -> dict:
    m, hw = model_of_key(mkey), hardware_of_key(hkey)
    check_workload_tp(m, tp)
    plan = cm.batch_plan(m, hw, s, tp=tp, weight_bytes=wb, kv_bytes=kvb)
    full = cm.batch_plan(m, hw, s + g, tp=tp, weight_bytes=wb, kv_bytes=kvb)
    tps = table_tps(m, tp)
    e0294 = cm.batch_plan(m, hw, s, tp=tp, weight_bytes=wb, kv_bytes=kvb,
                          params=cm.e0294_param_count(m))
    return {"plan": plan, "full": full, "e0294": e0294,
            "tp_table": tp_table(m, hw, s, tps, wb, kvb)}


def memory_vs_context(mkey: str, hkey: str, tps: tuple, wb: float, kvb: float) -> dict:
    """Max batch over the fixed contexts (independent of s, so changing s reuses it)."""
    m, hw = model_of_key(mkey), hardware_of_key(hkey)
    return {"table": max_batch_table(m, hw, CONTEXTS, list(tps), wb, kvb),
            "png": png(plots.max_batch_vs_context(m, hw, CONTEXTS, tps, weight_bytes=wb,
                                                  kv_bytes=kvb), (6.4, 4.2), ymin=0)}


def roofline_bundle(mkey: str, hkey: str, w: tuple) -> dict:
    m, hw = model_of_key(mkey), hardware_of_key(hkey)
    batch, prompt, generate, tp, wb, kvb, ab, attention, eta_c, eta_m = w
    check_workload_tp(m, tp)
    kw = dict(tp=tp, weight_bytes=wb, kv_bytes=kvb, act_bytes=ab, attention=attention,
              eta_c=eta_c, eta_m=eta_m)
    gen = cm.generation(m, hw, prompt, generate, batch, **kw)
    pre, dec = gen.prefill, gen.first_decode
    chart = plots.roofline_chart(pre, dec, labels=["prefill (q = s, c = 0)",
                                                   "decode step (q = 1, c = s)"])
    max_batch = cm.max_batch_size(m, hw, prompt, tp=tp, weight_bytes=wb, kv_bytes=kvb)
    points = batch_scan_points(max_batch)
    scan = cm.sweep(m, hw, batch=points, context=prompt, tp=tp, phase="decode",
                    weight_bytes=wb, kv_bytes=kvb, act_bytes=ab, eta_c=eta_c, eta_m=eta_m,
                    attention=attention)
    shown = sorted({int(b) for b in 2 ** np.arange(0, 21) if b <= max(max_batch, 1)}
                   | {max(max_batch, 1)})
    table = scan[scan["batch"].isin(shown)][["batch", "intensity", "time_s", "tokens_per_s",
                                             "bound"]].copy()
    table["time_s"] *= 1e3
    table = table.rename(columns={"intensity": "FLOPs/byte", "time_s": "step time (ms)",
                                  "tokens_per_s": "tokens/s"})
    return {"pre_ops": pre.ops, "dec_ops": dec.ops, "ttft": gen.ttft,
            "tpot": gen.tpot_first, "tpot_mean": gen.tpot_mean, "total": gen.total_time,
            "throughput": gen.throughput, "pre_bound": pre.bound, "dec_bound": dec.bound,
            "pre_ai": pre.intensity, "dec_ai": dec.intensity, "ridge": pre.ridge_point,
            "dtype": pre.dtype, "max_batch": max_batch,
            "first_compute": first_compute_bound(scan) if max_batch else None,
            "batch_table": table.astype({"bound": str}),
            "png": png(chart, axes_box=(0.085, 0.085, 0.83, 0.85))}


def attention_bundle(d: int, n: int, batch: int, b: float) -> dict:
    ai = cm.attention_counts
    rows = []
    for label, phase, bb, kw in (
            ("prefill, standard (exact)", "prefill", 1, {}),
            ("prefill, fused / FlashAttention", "prefill", 1, {"attention": "fused"}),
            ("prefill, E0294 text's counts", "prefill", 1, {"convention": "e0294"}),
            ("decode, 1 request (exact)", "decode", 1, {}),
            ("decode, 1 request, E0294 text's counts", "decode", 1, {"convention": "e0294"}),
            (f"decode, B = {batch}, per-request K/V (serving)", "decode", batch, {}),
            (f"decode, B = {batch}, shared K/V", "decode", batch, {"kv": "shared"}),
            (f"decode, B = {batch}, E0294 text's formula", "decode", batch,
             {"convention": "e0294"})):
        r = ai(n, d, phase, bb, b, **kw)
        rows.append({"case": label, "FLOPs": float(r["flops"]), "bytes": float(r["bytes"]),
                     "FLOPs/byte": float(r["intensity"])})
    ns = np.array(sorted({128, 256, 512, 1024, 2048, 4096, 8192, n}))
    bs = np.array(sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, batch}))
    vs_n = pd.DataFrame({"N (tokens)": ns,
                         "standard (exact)": cm.attention_intensity(ns, d, "prefill", 1, b),
                         "fused": cm.attention_intensity(ns, d, "prefill", 1, b,
                                                         attention="fused"),
                         "E0294 text": cm.attention_intensity(ns, d, "prefill", 1, b,
                                                              convention="e0294")})
    vs_b = pd.DataFrame({"B (requests)": bs,
                         "per-request K/V": np.broadcast_to(
                             cm.attention_intensity(n, d, "decode", bs, b), bs.shape),
                         "shared K/V": cm.attention_intensity(n, d, "decode", bs, b,
                                                              kv="shared"),
                         "E0294 text": cm.attention_intensity(n, d, "decode", bs, b,
                                                              convention="e0294")})
    return {"cases": pd.DataFrame(rows), "vs_n": vs_n, "vs_b": vs_b,
            "png_n": png(plots.intensity_vs_n(d, ns, b), (6.4, 4.2), ylog=True),
            "png_b": png(plots.intensity_vs_batch(n, d, bs, b), (6.4, 4.2))}


def speculative_bundle(tkey: str, dkey: str, hkey: str, alpha: float, gamma: int, w: tuple):
    target, draft, hw = model_of_key(tkey), model_of_key(dkey), hardware_of_key(hkey)
    batch, prompt, wb, kvb, ab, attention, eta_c, eta_m = w
    r = cm.speculative.speedup_roofline(target, draft, hw, alpha, gamma, context=prompt,
                                        batch=batch, weight_bytes=wb, kv_bytes=kvb,
                                        act_bytes=ab, attention=attention, eta_c=eta_c,
                                        eta_m=eta_m)
    gammas = range(1, max(16, gamma) + 1)
    table = cm.speculative.gamma_table(alpha, r["cost_ratio"], gammas)
    table["speedup, no bonus token"] = cm.speculative.speedup(
        alpha, np.asarray(list(gammas)), r["cost_ratio"], bonus=False)
    return {"r": r, "table": table,
            "best": cm.speculative.optimal_gamma(alpha, r["cost_ratio"]),
            "png": png(plots.speedup_vs_gamma(alpha, r["cost_ratio"], gammas), (6.4, 4.2))}
