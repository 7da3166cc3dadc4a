r"""The published GPU measurement set (``data/published/measurements.csv``): its checked reader,
and the one way a row is priced.

Every row becomes a :class:`Request` — a model preset, a hardware preset, a weight format, the
KV and activation widths (activations at least 16-bit: :data:`MIN_ACT_BYTES`), TP (and PP), the
batch, the input and output lengths, the engine class and the metric — and every metric is
priced through :func:`costmodel.decoding.generation` (the closed-form sum over the decode steps),
with no per-row or per-model parameter:

    metric kind      value predicted                             time it implies (seconds)
    ttft             Generation.ttft (the prefill pass)          ttft
    e2e              Generation.total_time                       total_time
    throughput       Generation.throughput = B·g / total_time    total_time
                     (÷ GPUs for a per-GPU figure)
    decode_rate      B / Generation.tpot_mean                    tpot_mean
                     (B = 1 for a per-user figure)

Which kind a published metric is comes from its source's own definition (the row's
``metric_definition``), quoted in :data:`METRICS`; a (source, metric) pair not listed there is
refused, never guessed. Errors are taken on the *time* a figure implies (a rate r of n tokens
implies n / r seconds): ``ratio`` = predicted time / measured time, so a rate predicted too high
has a ratio below 1, like a time predicted too low.

The readers name the file, the row (``row 1`` = the first line under the header), the row id
and the field of anything wrong: a missing value, a count with a fraction, a non-finite value,
an unknown model, GPU, engine, weight format or metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costmodel.checks import MAX_COUNT, check_text
from costmodel.decoding import Generation, generation
from costmodel.lazy import deferred
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.quant import weight_format
from costmodel.specs import EngineProfile
from costmodel.validation.rows import CsvRow, is_blank, read_csv_file
from costmodel.workload import regime

pd = deferred("pandas")

#: The committed measurement set (relative to the repository root).
PUBLISHED_CSV = Path("data/published") / "measurements.csv"
#: Every column of the measurement set; all but ``notes`` must be filled in.
COLUMNS = ("id", "source_id", "model", "model_ref", "params_note", "weight_dtype",
           "weight_quant", "activation_dtype", "kv_dtype", "gpu", "gpu_count", "tp", "pp", "ep",
           "engine", "engine_version", "batch", "concurrency", "input_tokens", "output_tokens",
           "metric", "value", "metric_definition", "source_url", "source_locator",
           "source_date", "notes")
REQUIRED = tuple(c for c in COLUMNS if c != "notes")
#: The columns that say where a value comes from.
SOURCE_COLUMNS = ("source_url", "source_locator", "source_date")
#: Free-text fields may be long (the definitions quote their sources).
MAX_TEXT = 2000

#: A published checkpoint (``model_ref``) → the model preset that carries its cost fields.
MODELS = {
    "meta-llama/Llama-2-7b-hf": "llama2-7b",
    "meta-llama/Llama-2-7b-chat-hf": "llama2-7b",
    "lmsys/vicuna-7b-v1.5": "llama2-7b",        # a Llama-2-7B fine-tune: the same config sizes
    "meta-llama/Llama-2-13b-hf": "llama2-13b",
    "meta-llama/Llama-2-13b-chat-hf": "llama2-13b",
    "meta-llama/Llama-2-70b-hf": "llama2-70b",
    "meta-llama/Llama-2-70b-chat-hf": "llama2-70b",
    "meta-llama/Meta-Llama-3.1-8B": "llama3.1-8b",
    "meta-llama/Meta-Llama-3.1-70B": "llama3.1-70b",
    "meta-llama/Meta-Llama-3.1-405B": "llama3.1-405b",
    "amd/Llama-3.1-70B-Instruct-FP8-KV": "llama3.1-70b",   # Llama-3.1-70B in FP8 (weight_quant)
    "mistralai/Mistral-7B-v0.1": "mistral-7b",
    "mistralai/Mixtral-8x7B-v0.1": "mixtral-8x7b",
    "internlm/internlm-20b": "internlm-20b",
    "codellama/CodeLlama-34b-hf": "codellama-34b",
    "codellama/CodeLlama-34b-Instruct-hf": "codellama-34b",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": "tinyllama-1.1b",
    "FasterTransformer gpt_guide 'GPT-20B': 44 layers, 48 heads x 128, vocab 51200":
        "gpt-20b-ft",
    "FasterTransformer gpt_guide 'GPT-175B': 96 layers, 96 heads x 128, vocab 51200":
        "gpt3-175b",
}
#: Checkpoints whose rows are left out, with the reason (reported, never priced).
LEFT_OUT_MODELS = {
    "deepseek-ai/deepseek-coder-33b-base": "no public copy of its config.json was found in the "
    "stored sources, so it has no model preset; its sizes are not guessed",
}
#: A published GPU name → (hardware preset, what the mapping assumes). A power cap or a clock
#: note stays a note: the preset keeps its datasheet figures.
GPUS = {
    "A100-80GB (power-limited to 330 W)": (
        "a100-80gb", "SXM4 (8-GPU 'hybrid cube mesh' NVLink node); the 330 W cap stays a note"),
    "A100-80G": ("a100-80gb", "the page does not say SXM or PCIe: taken as SXM4 with NVLink"),
    "A100-80GB (SXM, NVSwitch; mclk 1593 MHz, pclk 1410 MHz)": (
        "a100-80gb", "SXM4 with NVSwitch; the clock note stays a note"),
    "H100-SXM5-80GB (doc: 'H100-HBM3-80GB')": ("h100-sxm", "SXM5"),
    "H200": ("h200", "SXM 141 GB, the only H200 shipping at TensorRT-LLM v0.9.0"),
    "L40S": ("l40s", "PCIe, no NVLink"),
    "RTX 4090": ("rtx-4090", "PCIe, no NVLink"),
    "RTX 3090 Ti": ("rtx-3090-ti", "PCIe"),
    "MI250X (one GCD)": ("mi250x-gcd", "one of the two GCDs (a device of its own)"),
    "Radeon RX 7900 XTX": ("rx-7900-xtx", "PCIe"),
    "MI300X (192GB HBM3 750W)": ("mi300x", "OAM, Infinity Fabric"),
}
#: Engine classes (:mod:`costmodel.presets` engine profiles) by the published engine's name
#: (a prefix of the row's ``engine``): compiled or C++ engines with fused kernels and graph
#: capture are *tuned*; on-device engines are *llama.cpp*; code driven by Hugging Face
#: ``generate`` (a Python loop per step, no CUDA graphs) is *eager*.
ENGINES = {
    "TensorRT-LLM": "tuned", "vLLM": "tuned", "SGLang": "tuned", "LMDeploy": "tuned",
    "FasterTransformer": "tuned", "gpt-fast": "tuned",
    "MLC LLM": "llama.cpp", "llama.cpp": "llama.cpp",
    "AutoAWQ": "eager", "Hugging Face": "eager", "PyTorch eager": "eager",
}
ENGINE_CLASSES = ("tuned", "llama.cpp", "eager")
#: Bytes of one element of a KV-cache or activation dtype.
ELEMENT_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}
#: The narrowest activations the roofline prices. An 8-bit ``activation_dtype`` (a W8A8 recipe)
#: is the precision of the GEMM *inputs* only: each linear quantizes its 16-bit input on the way
#: in and writes its output in 16 bits, so the residual stream, the GEMM outputs and the
#: all-reduced partial sums of a tensor-parallel layer — what ``act_bytes`` prices — stay 16-bit.
#: TensorRT-LLM (``tensorrt_llm/quantization/layers.py``, ``FP8RowLinear.forward``: quantize,
#: dequantize to ``self.dtype``, then ``multiply_reduce`` — the GEMM and the all-reduce of its
#: ``self.dtype`` output) and vLLM (``model_executor/layers/quantization/utils/w8a8_utils.py``
#: ``apply_fp8_linear``: ``cutlass_scaled_mm(..., out_dtype=input.dtype)``; ``RowParallelLinear``
#: all-reduces that output) both do so.
MIN_ACT_BYTES = 2


@dataclass(frozen=True)
class Weights:
    """How a published weight format is priced: a :mod:`costmodel.quant` format name, or — for
    a group-wise layout that format list lacks — the exact bytes per weight (priced as a
    weight-only format: dequantized to 16 bits, streamed at η_m,quant)."""

    label: str
    quant: str | None = None
    weight_bytes: float | None = None

    @property
    def bytes(self) -> float:
        """Bytes per weight, scales and zeros included."""
        return weight_format(self.quant).weight_bytes if self.quant is not None \
            else float(self.weight_bytes)

    def kwargs(self) -> dict:
        return {"quant": self.quant} if self.quant is not None else \
            {"weight_bytes": self.weight_bytes}


#: A published ``weight_quant`` (by prefix) → its pricing. ``none`` takes the row's
#: ``weight_dtype`` (bf16 or fp16).
QUANTS = {
    # gpt-fast quantize.py WeightOnlyInt8: int8 weights, one bf16 scale per output channel
    "int8-weight-only per-channel": Weights("int8 weight-only (per channel)", quant="int8-wo"),
    # gpt-fast WeightOnlyInt4: 4-bit weights; pack_scales_and_zeros keeps a bf16 scale and a
    # bf16 zero per group of 32 → 0.5 + 4 / 32 bytes per weight
    "int4-weight-only g32": Weights("int4 g32, bf16 scale + zero", weight_bytes=0.5 + 4 / 32),
    # AutoAWQ default quant_config: 4 bits, group 128, an fp16 scale and a packed 4-bit zero per
    # group: exactly costmodel.quant's int4-g128 (0.5 + 2.5 / 128)
    "awq-g128": Weights("int4 g128 (AWQ)", quant="int4-g128"),
    # MLC q4f16_1: 4-bit symmetric, an fp16 scale per group of 32, no zero → 0.5 + 2 / 32
    "mlc q4f16_1": Weights("int4 g32, fp16 scale (MLC q4f16_1)", weight_bytes=0.5 + 2 / 32),
    # GGUF Q4_0: blocks of 32 weights = 16 bytes of 4-bit values + an fp16 scale = 18 bytes
    "gguf Q4_0": Weights("int4 g32, fp16 scale (GGUF Q4_0)", weight_bytes=18 / 32),
    # FP8 weights and activations (W8A8): the FP8 peak where the GPU has one
    "fp8": Weights("fp8 (W8A8)", quant="fp8"),
}
#: What each published metric is, by (source, metric), from the source's definition: the kind
#: (see the module docstring) and a phrase its ``metric_definition`` must contain.
METRICS = {
    ("gptfast", "output_tokens_per_s"): ("throughput", "(5-token prompt prefill + decode)"),
    ("lmdeploy", "output_tokens_per_s"): ("throughput", "total time includes prefill"),
    ("lmdeploy", "ttft_ms"): ("ttft", "first-token latency"),
    ("autoawq", "output_tokens_per_s"): ("decode_rate", "prefill excluded"),
    ("autoawq", "decode_tokens_per_s_per_user"): ("decode_rate", "prefill excluded"),
    ("autoawq", "ttft_ms"): ("ttft", "prefill time = time to the first logits"),
    ("trtllm", "ttft_ms"): ("ttft", "output length 1"),
    ("trtllm", "output_tokens_per_s_per_gpu"): ("throughput", "includes the context phase"),
    ("amdperf", "e2e_latency_s"): ("e2e", "end-to-end time"),
    ("mlcbench", "decode_tokens_per_s_per_user"): ("decode_rate", "tok/sec of decoding"),
    ("fastertransformer", "e2e_latency_s"): ("e2e", "end-to-end time"),
}
#: The unit of each metric's value and its scale to SI (seconds or tokens per second).
METRIC_UNITS = {"ttft_ms": ("ms", 1e-3), "e2e_latency_s": ("s", 1.0),
                "output_tokens_per_s": ("tokens/s", 1.0),
                "output_tokens_per_s_per_gpu": ("tokens/s per GPU", 1.0),
                "decode_tokens_per_s_per_user": ("tokens/s per user", 1.0)}


@dataclass(frozen=True)
class Request:
    """One published measurement as a fully specified prediction request."""

    id: str
    source: str
    model: str                    # model preset
    hardware: str                 # hardware preset
    engine_class: str             # tuned | llama.cpp | eager
    weights: Weights
    kv_bytes: float
    act_bytes: float
    tp: int
    pp: int
    gpus: int
    batch: int
    input_tokens: int
    output_tokens: int
    metric: str
    kind: str                     # ttft | e2e | throughput | decode_rate
    value: float                  # as published, in the metric's unit
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def regime(self) -> str:
        """The regime of the pass the metric is made of (:func:`costmodel.workload.regime`):
        the prefill for a TTFT, else a decode step."""
        q = self.input_tokens if self.kind == "ttft" else 1
        return regime(self.batch, q, self.tp, self.weights.bytes)

    def analyze_kwargs(self) -> dict:
        """The keyword arguments every pass of this request is priced with (``cm.analyze``,
        ``cm.generation``) besides the engine. A PP group of one micro-batch runs its stages
        one after the other: the pass costs the whole model on one GPU (TP = 1 within a
        stage), the activation hand-over between stages left out (d_model · 2 bytes per token
        and one link latency per stage boundary: microseconds against milliseconds)."""
        return {"tp": self.tp, "kv_bytes": self.kv_bytes, "act_bytes": self.act_bytes,
                **self.weights.kwargs()}

    def generation(self, engine: str | EngineProfile) -> Generation:
        """The request's generation priced with ``engine`` (the one pricing)."""
        return generation(self.model, self.hardware, self.input_tokens, self.output_tokens,
                          self.batch, engine=engine, **self.analyze_kwargs())

    def predict(self, engine: str | EngineProfile) -> float:
        """The metric's predicted value, in the metric's published unit."""
        return self.value_of(self.generation(engine))

    def value_of(self, g: Generation) -> float:
        """The metric of a priced generation (see the module docstring)."""
        if self.kind == "ttft":
            seconds = g.ttft
        elif self.kind == "e2e":
            seconds = g.total_time
        elif self.kind == "throughput":
            return g.throughput / (self.gpus if self.metric.endswith("_per_gpu") else 1)
        else:                                          # decode_rate
            return self.batch / g.tpot_mean
        return seconds / METRIC_UNITS[self.metric][1]

    def time_ratio(self, predicted: float) -> float:
        """Predicted time / measured time of a predicted value (in the metric's unit): a rate
        implies tokens / rate seconds, so the ratio of two rates is inverted."""
        if self.kind in ("throughput", "decode_rate"):
            return self.value / predicted
        return predicted / self.value


@dataclass
class PublishedSet:
    """The checked rows of a measurement file: the requests, the rows left out (id → reason)
    and the table as read."""

    requests: list[Request]
    left_out: dict[str, str]
    table: Any
    path: Path


def _text(row: CsvRow, name: str) -> str:
    try:
        return check_text(name, row.raw(name), MAX_TEXT).strip()
    except ValueError as e:
        raise ValueError(f"{row.where}: {e}") from None


def _lookup(row: CsvRow, name: str, table: Mapping[str, Any], what: str, prefix: bool = False):
    text = _text(row, name)
    if text in table:
        return text, table[text]
    if prefix:
        for key, value in table.items():
            if text.startswith(key):
                return text, value
    known = ", ".join(repr(k) for k in table)
    shown = text if len(text) <= 80 else text[:77] + "..."
    raise row.fail(name, f"unknown {what} {shown!r} (known: {known})")


def _request(row: CsvRow) -> Request:
    rid = _text(row, "id")
    source = _text(row, "source_id")
    for name in SOURCE_COLUMNS + ("metric_definition", "engine_version", "params_note"):
        _text(row, name)
    url = _text(row, "source_url")
    if not url.startswith("https://"):
        raise row.fail("source_url", f"must be an https:// address, got {url[:80]!r}")
    model_ref, model = _lookup(row, "model_ref", MODELS, "model")
    gpu, (hw, gpu_note) = _lookup(row, "gpu", GPUS, "GPU")
    engine, engine_class = _lookup(row, "engine", ENGINES, "engine", prefix=True)
    quant_text, weights = ("none", None) if _text(row, "weight_quant") == "none" else \
        _lookup(row, "weight_quant", QUANTS, "weight format", prefix=True)
    weight_dtype = row.choice("weight_dtype", ("bf16", "fp16", "fp32", "fp8", "int8", "int4"))
    if weights is None:
        if weight_dtype not in ("bf16", "fp16", "fp32"):
            raise row.fail("weight_quant", f"'none' needs 16- or 32-bit weights, weight_dtype "
                                           f"is {weight_dtype!r}")
        weights = Weights(weight_dtype, quant=weight_dtype)
    kv = ELEMENT_BYTES[row.choice("kv_dtype", ELEMENT_BYTES)]
    act = max(ELEMENT_BYTES[row.choice("activation_dtype", ELEMENT_BYTES)], MIN_ACT_BYTES)
    tp, pp, ep = row.int("tp", 1, 1024), row.int("pp", 1, 1024), row.int("ep", 1, 1)
    gpus = row.int("gpu_count", 1, 4096)
    if gpus != tp * pp * ep:
        raise row.fail("gpu_count", f"must be tp × pp × ep = {tp * pp * ep}, got {gpus}")
    if pp > 1 and tp > 1:
        raise row.fail("pp", "pipeline and tensor parallelism together are not modelled")
    batch = row.int("batch", 1, MAX_COUNT)
    if row.int("concurrency", 1, MAX_COUNT) != batch:
        raise row.fail("concurrency", "continuous batching (concurrency ≠ a static batch) is "
                                      "not modelled")
    spec = model_preset(model)
    n_in = row.int("input_tokens", 1, spec.max_context)
    n_out = row.int("output_tokens", 1, spec.max_context)
    if n_in + n_out > spec.max_context:
        raise row.fail("output_tokens", f"input + output = {n_in + n_out} tokens exceed "
                                        f"{model}'s context of {spec.max_context}")
    hardware_preset(hw)
    metric = _text(row, "metric")
    if metric not in METRIC_UNITS:
        raise row.fail("metric", f"unknown metric {metric!r} (known: {', '.join(METRIC_UNITS)})")
    if (source, metric) not in METRICS:
        raise row.fail("metric", f"no definition is recorded for {metric!r} of source "
                                 f"{source!r} (costmodel.validation.published.METRICS)")
    kind, phrase = METRICS[(source, metric)]
    definition = _text(row, "metric_definition")
    if phrase.lower() not in definition.lower():
        raise row.fail("metric_definition", f"the {source} definition of {metric} is expected "
                                            f"to say {phrase!r}")
    value = row.number("value", 0.0, math.inf)
    labels = {"model": _text(row, "model"), "model_ref": model_ref, "gpu": gpu,
              "gpu_note": gpu_note, "engine": engine, "weights": weights.label,
              "weight_quant": quant_text, "metric_definition": definition, "source_url": url,
              "source_locator": _text(row, "source_locator"),
              "source_date": _text(row, "source_date")}
    return Request(rid, source, model, hw, engine_class, weights, kv, act, tp, pp, gpus, batch,
                   n_in, n_out, metric, kind, value, labels)


def read_published(path: str | Path = PUBLISHED_CSV) -> PublishedSet:
    """The checked requests of a published measurement file (every row, or a ValueError naming
    the file, the row, its id and the field). Rows of a checkpoint in :data:`LEFT_OUT_MODELS`
    are kept out of the requests, with their reason in ``left_out``. Row ids must be unique."""
    p = Path(path)
    label = str(p)
    df = read_csv_file(p, "published measurements")
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"{label} lacks column(s) {missing} (every published row needs "
                         f"{', '.join(REQUIRED)})")
    requests: list[Request] = []
    left_out: dict[str, str] = {}
    seen: set[str] = set()
    for i, values in enumerate(df.to_dict("records")):
        point = str(values.get("id", "")) if not is_blank(values.get("id")) else ""
        row = CsvRow(label, i, values, point)
        rid = _text(row, "id")
        if rid in seen:
            raise row.fail("id", f"duplicate id {rid!r}")
        seen.add(rid)
        ref = _text(row, "model_ref")
        if ref in LEFT_OUT_MODELS:
            left_out[rid] = f"{ref}: {LEFT_OUT_MODELS[ref]}"
            continue
        requests.append(_request(row))
    if not requests:
        raise ValueError(f"{label}: no row to price")
    return PublishedSet(requests, left_out, df, p)


def requests_table(requests: list[Request]):
    """One row per request: what it prices (DataFrame)."""
    return pd.DataFrame([{
        "id": r.id, "source": r.source, "engine_class": r.engine_class,
        "engine": r.labels.get("engine", ""), "model": r.model, "hardware": r.hardware,
        "weights": r.weights.label, "bytes_per_weight": r.weights.bytes, "kv_bytes": r.kv_bytes,
        "tp": r.tp, "pp": r.pp, "batch": r.batch, "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens, "metric": r.metric, "kind": r.kind,
        "measured": r.value, "regime": r.regime} for r in requests])


__all__ = ["COLUMNS", "ELEMENT_BYTES", "ENGINES", "ENGINE_CLASSES", "GPUS", "LEFT_OUT_MODELS",
           "METRICS", "METRIC_UNITS", "MIN_ACT_BYTES", "MODELS", "PUBLISHED_CSV", "PublishedSet",
           "QUANTS", "REQUIRED", "Request", "SOURCE_COLUMNS", "Weights", "read_published",
           "requests_table"]
