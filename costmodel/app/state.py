"""The app's state: the URL schema (every field with its default, its parser and its widget's
range) and the typed settings the pages compute from (:class:`Workload`,
:class:`SpeculativeSettings`, :class:`AttentionSettings`).

The state is a flat mapping of *fields* (:data:`FIELDS`): URL name = session-state key = widget
key. :func:`parse_query_params` turns a URL's query parameters into values (a bad one falls back
to the default, with a warning); :func:`encode_query_params` writes back the values that differ
from the defaults, so a configuration is shared by copying the address bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from costmodel.checks import MAX_DIM
from costmodel.ops import MLA
from costmodel.params import param_count, resolve_weight_bytes
from costmodel.presets import engine as engine_preset
from costmodel.presets import engine_presets, hardware_presets, model_presets
from costmodel.pricing import Efficiency
from costmodel.quant import FORMATS, weight_format
from costmodel.specs import (
    ACTIVATIONS,
    MAX_BANDWIDTH,
    MAX_LATENCY,
    MAX_MEMORY_BYTES,
    MAX_PEAK,
    NORMS,
    POSITIONS,
    HardwareSpec,
    ModelSpec,
)
from costmodel.units import GB, GIB, TERA

PAGES = ("Memory", "Roofline", "Attention intensity", "Speculative decoding", "Formulas",
         "Validation", "Plan a deployment")
CUSTOM = "custom"
HF_CONFIG = "config.json"          # the model of an uploaded Hugging Face config.json
CALIBRATION = "calibration JSON"   # the hardware of an uploaded calibration file
BYTE_CHOICES = (4.0, 2.0, 1.0, 0.5)
ACT_BYTE_CHOICES = (4.0, 2.0, 1.0)
BYTE_LABELS = {4.0: "4 (fp32)", 2.0: "2 (fp16 / bf16)", 1.0: "1 (fp8 / int8)", 0.5: "0.5 (int4)"}
#: "engine": the engine profile's own attention (standard for the ideal roofline).
ATTENTION = ("engine", "standard", "fused")
ATTENTION_LABELS = {"engine": "the engine's", "standard": "standard (S, P in memory)",
                    "fused": "fused (FlashAttention)"}
#: Weight formats: "auto" is the checkpoint's formats (where the model states them), else the
#: bytes per weight b_w; then every format of costmodel.quant (int4 with groups of 128 and 32).
AUTO = "auto"
QUANT_CHOICES = (AUTO, *FORMATS, "int4-g128", "int4-g32")
DEFAULT_ENGINE = "ideal"
MLA_LABELS = {"absorbed": "latent, absorbed (serving engines)",
              "naive": "latent, up-projected every pass",
              "expanded": "expanded K and V (Hugging Face)"}
#: Where the efficiencies come from: the selected hardware's own fields (1 for a datasheet
#: preset, fitted values for a fitted hardware JSON) or the two sliders.
ETA_SOURCES = ("hardware", "custom")
ETA_LABELS = {"hardware": "the engine's / hardware's", "custom": "custom η_c, η_m"}
DEFAULT_MODEL = "llama3-8b"
DEFAULT_HARDWARE = "a100-80gb"
DEFAULT_DRAFT = "gpt2"
#: Old URL names still understood (a shared link keeps working).
URL_ALIASES = {"prompt": "context"}

@dataclass(frozen=True)
class ModelField:
    """One field of the custom model: a ModelSpec field as a widget. ``none_as`` is the widget
    value that stands for the spec's None (its default: derived from the other fields);
    ``advanced`` fields sit in their own expander."""

    name: str
    label: str
    kind: str                          # int, bool, choice, float, text
    lo: float | None = None
    hi: float | None = None
    choices: tuple = ()
    none_as: Any = None
    advanced: bool = False


#: Every ModelSpec field but ``name`` and ``source`` (a test checks that none is missing, so a
#: custom model never drops what a preset or a config.json described).
MODEL_FIELDS = (
    ModelField("n_layers", "Layers L", "int", 1, MAX_DIM),
    ModelField("d_model", "Width d_model", "int", 1, MAX_DIM),
    ModelField("n_heads", "Query heads H", "int", 1, MAX_DIM),
    ModelField("n_kv_heads", "KV heads H_kv", "int", 1, MAX_DIM),
    ModelField("head_dim", "Head dim d_h (0: d/H)", "int", 0, MAX_DIM, none_as=0),
    ModelField("d_ff", "MLP width d_ff", "int", 1, MAX_DIM),
    ModelField("vocab_size", "Vocabulary V", "int", 1, MAX_DIM),
    ModelField("max_context", "Max context S", "int", 1, MAX_DIM),
    ModelField("activation", "Activation", "choice", choices=ACTIVATIONS),
    ModelField("norm", "Norm", "choice", choices=NORMS),
    ModelField("positions", "Positions", "choice", choices=POSITIONS),
    ModelField("gated_mlp", "gated MLP (SwiGLU)", "bool"),
    ModelField("qkv_bias", "QKV bias", "bool"),
    ModelField("out_bias", "output-projection bias", "bool"),
    ModelField("mlp_bias", "MLP bias", "bool"),
    ModelField("lm_head_bias", "LM-head bias", "bool"),
    ModelField("tied_embeddings", "tied embeddings", "bool"),
    ModelField("norms_per_layer", "Norms per layer", "choice", choices=(2, 4), advanced=True),
    ModelField("rotary_fraction", "Rotary fraction", "float", 0.01, 1.0, advanced=True),
    ModelField("qk_norm", "QK norm", "bool", advanced=True),
    ModelField("attention_sinks", "attention sinks", "bool", advanced=True),
    ModelField("sliding_window", "Sliding window W (0: none)", "int", 0, MAX_DIM,
               advanced=True),
    ModelField("window_layers", "Window layers (0: all)", "int", 0, MAX_DIM, none_as=0,
               advanced=True),
    ModelField("n_experts", "Routed experts E (0: dense)", "int", 0, MAX_DIM, advanced=True),
    ModelField("experts_per_token", "Experts per token", "int", 0, MAX_DIM, advanced=True),
    ModelField("n_shared_experts", "Shared experts", "int", 0, MAX_DIM, advanced=True),
    ModelField("d_ff_expert", "Expert width (0: d_ff)", "int", 0, MAX_DIM, none_as=0,
               advanced=True),
    ModelField("d_ff_shared", "Shared width (0: shared × expert)", "int", 0, MAX_DIM,
               none_as=0, advanced=True),
    ModelField("dense_layers", "Dense layers first", "int", 0, MAX_DIM, advanced=True),
    ModelField("router_bias", "router bias", "bool", advanced=True),
    ModelField("q_lora_rank", "Query latent rank", "int", 0, MAX_DIM, advanced=True),
    ModelField("kv_lora_rank", "KV latent rank (0: no MLA)", "int", 0, MAX_DIM,
               advanced=True),
    ModelField("qk_nope_head_dim", "QK head dim without rotary", "int", 0, MAX_DIM,
               advanced=True),
    ModelField("qk_rope_head_dim", "QK rotary head dim", "int", 0, MAX_DIM, advanced=True),
    ModelField("v_head_dim", "V head dim", "int", 0, MAX_DIM, advanced=True),
    ModelField("weight_format", "Weight format (blank: not stated)", "text", none_as="",
               advanced=True),
    ModelField("expert_weight_format", "Expert weight format (blank: the weights')", "text",
               none_as="", advanced=True),
)


@dataclass(frozen=True)
class HardwareField:
    """One custom-hardware field in display units: ``spec value = display value · scale``."""

    key: str
    label: str
    scale: float
    lo: float
    hi: float


#: Custom-hardware fields, their units named in the labels; the ranges are the specs' limits.
HW_FIELDS = (
    HardwareField("h_mem_gib", "Memory per GPU (GiB = 2^30 bytes)", GIB, 1e-3,
                  MAX_MEMORY_BYTES / GIB),
    HardwareField("h_bw_gbs", "Memory bandwidth (GB/s = 1e9 bytes/s)", GB, 1e-3,
                  MAX_BANDWIDTH / GB),
    HardwareField("h_tflops16", "Dense 16-bit peak (TFLOP/s)", TERA, 1e-6, MAX_PEAK / TERA),
    HardwareField("h_tflops32", "Dense fp32 peak (TFLOP/s; 0 = none)", TERA, 0.0,
                  MAX_PEAK / TERA),
    HardwareField("h_link_gbs", "Interconnect per GPU per direction (GB/s)", GB, 0.0,
                  MAX_BANDWIDTH / GB),
    HardwareField("h_link_us", "All-reduce latency (µs)", 1e-6, 0.0, MAX_LATENCY * 1e6),
    HardwareField("h_kernel_us", "Per-kernel overhead (µs)", 1e-6, 0.0, MAX_LATENCY * 1e6),
)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class Field:
    """One piece of app state: URL name = session-state key = widget key."""

    key: str
    default: Any
    kind: str                               # int, float, str, text (may be empty), bool, choice
    lo: float | None = None
    hi: float | None = None
    choices: tuple | Callable[[], tuple] | None = None

    def options(self) -> tuple:
        return self.choices() if callable(self.choices) else tuple(self.choices or ())

    def parse(self, text: str) -> Any:
        """The value of a URL text; ValueError saying what is wrong."""
        if self.kind == "bool":
            low = text.strip().lower()
            if low not in ("1", "0", "true", "false"):
                raise ValueError("use 1 or 0")
            return low in ("1", "true")
        if self.kind == "choice":
            opts = self.options()
            value: Any = text
            if opts and isinstance(opts[0], (int, float)):
                try:
                    value = type(opts[0])(float(text))
                except (ValueError, OverflowError):
                    value = None
            if value not in opts:
                raise ValueError(f"choose from {', '.join(map(_fmt, opts))}")
            return value
        if self.kind in ("str", "text"):
            value = text.strip()
            if (self.kind == "str" and not value) or len(value) > 80:
                raise ValueError("give 1 to 80 characters" if self.kind == "str" else
                                 "give at most 80 characters")
            return value
        try:
            value = int(text) if self.kind == "int" else float(text)
        except ValueError:
            raise ValueError("not a whole number" if self.kind == "int" else "not a number") \
                from None
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise ValueError(f"must lie in [{_fmt(self.lo)}, {_fmt(self.hi)}]")
        return value

    def encode(self, value: Any) -> str:
        if self.kind == "bool":
            return "1" if value else "0"
        return _fmt(value)


def model_names() -> tuple[str, ...]:
    return tuple(model_presets())


def hardware_names() -> tuple[str, ...]:
    return tuple(hardware_presets())


def _choice_label(name: str, presets: dict, describe, upload: str, upload_text: str) -> str:
    """'NAME · DESCRIPTION' for a preset; what the special choices mean otherwise."""
    if name in presets:
        return f"{name} · {describe(presets[name])}"
    return {CUSTOM: "custom (edit the fields below)", upload: upload_text}.get(name, name)


@cache
def model_label(name: str) -> str:
    """'gpt2-xl · 1.56 B params' for a preset; what the special choices mean otherwise."""
    return _choice_label(name, model_presets(), lambda m: f"{param_count(m) / 1e9:.2f} B params",
                         HF_CONFIG, "from a Hugging Face config.json (upload below)")


@cache
def hardware_label(name: str) -> str:
    """'t4 · 16 GB GDDR6' for a preset; what the special choices mean otherwise."""
    return _choice_label(name, hardware_presets(), lambda h: h.memory_marketed,
                         CALIBRATION, "from a calibration JSON (upload below)")


def model_field_values(m: ModelSpec) -> dict[str, Any]:
    """The custom-model widget values (``m_…`` keys) of a spec. A value the spec derives from
    the others shows as its ``none_as`` (0: derived), so editing a width keeps it derived."""
    derived = {"head_dim": m.head_dim * m.n_heads == m.d_model,
               "window_layers": not m.sliding_window or m.window_layers == m.n_layers,
               "d_ff_expert": not m.moe or m.d_ff_expert == m.d_ff,
               "d_ff_shared": not m.n_shared_experts
               or m.d_ff_shared == m.n_shared_experts * m.d_ff_expert}
    out = {}
    for f in MODEL_FIELDS:
        value = getattr(m, f.name)
        if value is None or derived.get(f.name, False):
            value = f.none_as
        out[f"m_{f.name}"] = value
    if m.sliding_window and not m.window_layers:      # a window no layer uses: none
        out["m_sliding_window"] = 0
    return out


def _model_fields() -> list[Field]:
    values = model_field_values(model_presets()[DEFAULT_MODEL])
    return [Field("m_name", "my-model", "str")] + [
        Field(f"m_{f.name}", values[f"m_{f.name}"], f.kind, f.lo, f.hi, f.choices or None)
        for f in MODEL_FIELDS]


def _hardware_fields() -> list[Field]:
    base = hardware_presets()[DEFAULT_HARDWARE]
    peaks = base.peak_flops
    spec_values = {"h_mem_gib": base.memory_bytes, "h_bw_gbs": base.bandwidth,
                   "h_tflops16": peaks.get("bf16", peaks.get("fp16", 0.0)),
                   "h_tflops32": peaks.get("fp32", 0.0),
                   "h_link_gbs": base.interconnect_bandwidth,
                   "h_link_us": base.interconnect_latency, "h_kernel_us": base.kernel_overhead}
    return [Field("h_name", "my-gpu", "str")] + [
        Field(f.key, float(spec_values[f.key]) / f.scale, "float", f.lo, f.hi)
        for f in HW_FIELDS]


FIELDS: dict[str, Field] = {f.key: f for f in [
    Field("page", PAGES[0], "choice", choices=PAGES),
    Field("model", DEFAULT_MODEL, "choice", choices=lambda: (*model_names(), CUSTOM, HF_CONFIG)),
    Field("hw", DEFAULT_HARDWARE, "choice",
          choices=lambda: (*hardware_names(), CUSTOM, CALIBRATION)),
    Field("batch", 1, "int", 1, 1_000_000),
    Field("context", 1024, "int", 1, 10_000_000),
    Field("generate", 128, "int", 1, 10_000_000),
    Field("tp", 1, "int", 1, 1024),
    Field("wbytes", 2.0, "choice", choices=BYTE_CHOICES),
    Field("kvbytes", 2.0, "choice", choices=BYTE_CHOICES),
    Field("abytes", 2.0, "choice", choices=ACT_BYTE_CHOICES),
    Field("attention", "engine", "choice", choices=ATTENTION),
    Field("quant", AUTO, "choice", choices=QUANT_CHOICES),
    Field("engine", DEFAULT_ENGINE, "choice", choices=lambda: tuple(engine_presets())),
    Field("ep", 1, "int", 1, 1024),
    Field("mla", "absorbed", "choice", choices=MLA),
    Field("eta", "hardware", "choice", choices=ETA_SOURCES),
    Field("eta_c", 1.0, "float", 0.01, 1.0),
    Field("eta_m", 1.0, "float", 0.01, 1.0),
    # speculative decoding page
    Field("alpha", 0.75, "float", 0.0, 0.99),
    Field("gamma", 5, "int", 1, 32),
    Field("draft", DEFAULT_DRAFT, "choice", choices=model_names),
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
    warning per bad or unknown parameter.

    A link that sets ``eta_c`` or ``eta_m`` without ``eta`` means custom efficiencies (links
    written before the ``eta`` field existed keep their meaning)."""
    values = defaults()
    warnings = []
    given = set()
    for raw_key, raw in params.items():
        text = raw[-1] if isinstance(raw, (list, tuple)) and raw else raw
        key = URL_ALIASES.get(raw_key, raw_key)
        field = FIELDS.get(key)
        if field is None:
            warnings.append(f"unknown URL parameter {str(raw_key)[:40]!r} ignored")
            continue
        try:
            values[key] = field.parse(str(text))
            given.add(key)
        except (ValueError, TypeError) as e:
            warnings.append(f"URL parameter {key}={str(text)[:40]!r} ignored ({e}); using "
                            f"the default {field.encode(field.default)}")
    if "eta" not in given and given & {"eta_c", "eta_m"}:
        values["eta"] = "custom"
    return values, warnings


def encode_query_params(values: Mapping[str, Any]) -> dict[str, str]:
    """The query parameters of a state: the fields that differ from their default. Custom
    model and hardware fields are written only while custom is selected, the efficiencies only
    while they are custom (and ``eta`` itself only when no efficiency differs from 1, since
    :func:`parse_query_params` infers it otherwise)."""
    out = {}
    custom_eta = values.get("eta") == "custom"
    for key, field in FIELDS.items():
        if key not in values or key == "eta":
            continue
        if key.startswith("m_") and values.get("model") != CUSTOM:
            continue
        if key.startswith("h_") and values.get("hw") != CUSTOM:
            continue
        if key in ("eta_c", "eta_m") and not custom_eta:
            continue
        if values[key] != field.default:
            out[key] = field.encode(values[key])
    if custom_eta and not {"eta_c", "eta_m"} & set(out):
        out["eta"] = "custom"
    return out


# ---------------------------------------------------------------- typed settings
def quant_label(name: str, m: ModelSpec | None = None) -> str:
    """'fp8 · 1 B/weight'; for auto, what it resolves to for ``m``."""
    if name != AUTO:
        return f"{name} · {weight_format(name).weight_bytes:.4g} B/weight"
    formats = checkpoint_formats(m)
    return f"auto: the checkpoint's ({formats})" if formats else "auto: b_w below"


def checkpoint_formats(m: ModelSpec | None) -> str:
    """'fp8-block128', '16-bit, experts mxfp4', or '' when the model states no format."""
    if m is None or not (m.weight_format or m.expert_weight_format):
        return ""
    text = m.weight_format or "16-bit"
    if m.expert_weight_format:
        text += f", experts {m.expert_weight_format}"
    return text


@dataclass(frozen=True)
class Workload:
    """What the sidebar's workload section describes: B requests of a ``context``-token prompt
    (s), ``generate`` tokens each (g), on a TP group (and EP for a mixture of experts), with
    the weights' widths and formats, element widths, an engine profile and, unless None, the
    efficiencies that replace the engine's and the hardware's.

    ``weight_bytes`` / ``expert_weight_bytes`` are the widths the analyses use (resolved:
    ``quant`` / ``expert_quant`` name their formats when they come from one; an
    ``expert_weight_bytes`` of None is the weights' own)."""

    batch: int = 1
    context: int = 1024
    generate: int = 128
    tp: int = 1
    weight_bytes: float = 2.0
    kv_bytes: float = 2.0
    act_bytes: float = 2.0
    attention: str = "standard"
    eta_c: float | None = None
    eta_m: float | None = None
    engine: str | None = None
    quant: str | None = None
    expert_quant: str | None = None
    expert_weight_bytes: float | None = None
    ep: int = 1
    mla: str = "absorbed"

    @property
    def custom_efficiency(self) -> bool:
        return self.eta_c is not None or self.eta_m is not None

    @property
    def expert_bytes(self) -> float:
        """Bytes per routed-expert weight."""
        return self.weight_bytes if self.expert_weight_bytes is None \
            else self.expert_weight_bytes

    def precision(self) -> dict[str, Any]:
        """The weight keywords of ``analyze`` / ``sweep``: the formats where they come from
        one (their compute dtype picks the peak), else the bare width."""
        kw: dict[str, Any] = {"quant": self.quant} if self.quant else \
            {"weight_bytes": self.weight_bytes}
        if self.expert_quant:
            kw["expert_quant"] = self.expert_quant
        elif self.expert_weight_bytes is not None:
            kw["expert_weight_bytes"] = self.expert_weight_bytes
        return kw

    def memory(self) -> dict[str, Any]:
        """The keywords of ``batch_plan`` / ``max_batch_size``: widths, EP, the MLA cache."""
        return {"weight_bytes": self.weight_bytes, "expert_weight_bytes": self.expert_bytes,
                "kv_bytes": self.kv_bytes, "ep": self.ep, "mla": self.mla}

    def options(self) -> dict[str, Any]:
        """Keyword arguments of ``analyze`` / ``generation`` / ``sweep`` for this workload (all
        but batch and the pass itself). Custom η_c / η_m apply to every operator (the skinny
        matmuls, the elementwise passes and weight-only quantized matmuls too); without them
        the engine's and the hardware's efficiencies price everything, exactly as
        ``cm.analyze`` does with that engine on that hardware."""
        kw: dict[str, Any] = {"tp": self.tp, **self.precision(), "kv_bytes": self.kv_bytes,
                              "act_bytes": self.act_bytes, "attention": self.attention}
        if self.engine:
            kw["engine"] = self.engine
        if self.ep > 1:
            kw["ep"] = self.ep
        if self.mla != "absorbed":
            kw["mla"] = self.mla
        if self.eta_c is not None:
            kw.update(eta_c=self.eta_c, eta_c_skinny=self.eta_c)
        if self.eta_m is not None:
            kw.update(eta_m=self.eta_m, eta_m_elementwise=self.eta_m, eta_m_quant=self.eta_m)
        return kw

    @classmethod
    def of(cls, values: Mapping[str, Any], m: ModelSpec | None = None,
           hw: HardwareSpec | None = None) -> Workload:
        """The workload of a state (session state or parsed URL values) for model ``m`` on
        ``hw`` (either None when not known).

        Weights: a format chosen, else (auto) the checkpoint's formats where ``m`` states
        them, else the bytes per weight b_w. Engine: the profile chosen — the ideal one on a
        hardware that carries its own (fitted) efficiencies is none, so those stay. Attention
        "engine": the profile's own. EP and the MLA cache apply to the models that have
        experts, latent attention."""
        custom = values.get("eta") == "custom"
        choice = str(values.get("quant", AUTO))
        quant = expert_quant = expert_bytes = None
        if choice != AUTO:
            quant, width = choice, weight_format(choice).weight_bytes
        elif checkpoint_formats(m):
            prec = resolve_weight_bytes(m)
            quant, expert_quant = m.weight_format, m.expert_weight_format
            width, expert_bytes = prec.weight_bytes, prec.expert_weight_bytes
        else:
            width = float(values["wbytes"])
        name = str(values.get("engine", DEFAULT_ENGINE))
        profile = engine_preset(name)
        engine: str | None = name
        if name == DEFAULT_ENGINE and hw is not None and not Efficiency.of(hw).ideal:
            engine = None
        attention = str(values.get("attention", "engine"))
        if attention == "engine":
            attention = profile.attention if engine else "standard"
        return cls(batch=int(values["batch"]), context=int(values["context"]),
                   generate=int(values["generate"]), tp=int(values["tp"]),
                   weight_bytes=float(width), kv_bytes=float(values["kvbytes"]),
                   act_bytes=float(values["abytes"]), attention=attention,
                   eta_c=float(values["eta_c"]) if custom else None,
                   eta_m=float(values["eta_m"]) if custom else None,
                   engine=engine, quant=quant, expert_quant=expert_quant,
                   expert_weight_bytes=expert_bytes,
                   ep=int(values.get("ep", 1)) if m is not None and m.moe else 1,
                   mla=str(values.get("mla", "absorbed")) if m is not None and m.mla
                   else "absorbed")


@dataclass(frozen=True)
class SpeculativeSettings:
    """The Speculative page's inputs: acceptance rate α, drafted tokens γ, the draft model."""

    alpha: float = 0.75
    gamma: int = 5
    draft: str = DEFAULT_DRAFT

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> SpeculativeSettings:
        return cls(float(values["alpha"]), int(values["gamma"]), str(values["draft"]))


@dataclass(frozen=True)
class AttentionSettings:
    """The Attention page's inputs: head dim d, sequence length N, decode batch B, bytes b."""

    d: int = 128
    n: int = 1024
    batch: int = 64
    bytes_per_element: float = 2.0

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> AttentionSettings:
        return cls(int(values["ai_d"]), int(values["ai_n"]), int(values["ai_batch"]),
                   float(values["ai_b"]))


__all__ = ["ACT_BYTE_CHOICES", "ATTENTION", "ATTENTION_LABELS", "AUTO", "AttentionSettings",
           "BYTE_CHOICES", "BYTE_LABELS", "CALIBRATION", "CUSTOM", "DEFAULT_DRAFT",
           "DEFAULT_ENGINE", "DEFAULT_HARDWARE", "DEFAULT_MODEL", "MLA_LABELS", "QUANT_CHOICES",
           "checkpoint_formats", "quant_label", "ETA_LABELS", "ETA_SOURCES", "FIELDS", "Field",
           "HF_CONFIG", "HW_FIELDS", "HardwareField", "MODEL_FIELDS", "ModelField", "PAGES",
           "SpeculativeSettings", "URL_ALIASES", "Workload", "defaults", "encode_query_params",
           "hardware_label", "hardware_names", "model_label", "model_names",
           "parse_query_params"]
