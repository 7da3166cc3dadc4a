r"""Serving memory held against vLLM's own startup logs (``data/published/vllm_kv_logs.csv``):
the KV-cache size and "Maximum concurrency for ℓ tokens per request" each log prints, beside
:func:`costmodel.plan.memory.serving_memory` with the log's settings — and, where the log
itemises its memory (weights, non-torch, activation peak, KV), each term's share of the miss:

    Δconcurrency(term) = (logged term − predicted term) / (kv_token · ℓ)

(a term the model overestimates by x bytes costs x / kv_token tokens of KV). The logs used are
those whose model, GPU (or its memory as logged), dtype, gpu_memory_utilization and
max_model_len are known; a setting the log leaves out is the engine version's documented
default, stated per log in :data:`LOGS`.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from costmodel.lazy import deferred
from costmodel.plan.memory import DRIVER_RESERVE, serving_memory
from costmodel.presets import model as model_preset
from costmodel.specs import ModelSpec
from costmodel.units import GIB

pd = deferred("pandas")

CSV = Path(__file__).resolve().parents[2] / "data" / "published" / "vllm_kv_logs.csv"


def _qwen25(name: str, d: int, layers: int, heads: int, kv: int, ff: int, vocab: int,
            tied: bool) -> ModelSpec:
    """A Qwen2.5 size from its config.json (the 7B preset's architecture)."""
    return model_preset("qwen2.5-7b").replace(name=name, d_model=d, n_layers=layers,
                                              n_heads=heads, n_kv_heads=kv, d_ff=ff,
                                              vocab_size=vocab, tied_embeddings=tied)


@dataclass(frozen=True)
class LogSettings:
    """What a log ran, as serving_memory's arguments, and the assumptions behind them."""

    model: object                  # preset name or ModelSpec
    gpu: str                       # hardware preset (its memory when the log gives none)
    memory_gib: float | None       # total_gpu_memory as the log prints it (CUDA's view)
    u: float
    max_model_len: int
    profile_tokens: int            # tokens of vLLM's profile step
    max_num_seqs: int = 256
    tp: int = 1
    quant: str | None = None
    assumptions: str = ""


#: The usable logs. profile_tokens: V0 without chunked prefill profiles max(max_model_len,
#: max_num_batched_tokens) tokens; V0 with chunked prefill (on by default for max_model_len
#: > 32K) and V1 profile max_num_batched_tokens (V0 default 2048 with chunked prefill).
LOGS = {
    "k01": LogSettings("llama3.1-8b", "rtx-3090", 23.58, 0.90, 20000, 20000,
                       assumptions="bf16 (checkpoint); V0 without chunked prefill profiles "
                                   "max_model_len = 20000 tokens; max_num_seqs 256 (default)"),
    "k02": LogSettings("llama3.1-8b", "rtx-3090", 23.58, 0.90, 29000, 29000,
                       assumptions="as k01 with max_model_len 29000"),
    "k03": LogSettings("llama3.1-70b", "h100-sxm", None, 0.98, 2048, 8192, quant="int8",
                       assumptions="one 80 GB GPU (67.7 GiB of weights fit one; H100 and A100 "
                                   "80 GB report the same 79.1-79.2 GiB); W8A8 int8; V1 at "
                                   "2025-01 profiles max_num_batched_tokens = 8192 (LLM "
                                   "class default); max_num_seqs 256"),
    "k12": LogSettings("llama3.1-8b", "a10", 22.07, 0.90, 131072, 2048,
                       assumptions="bf16 (checkpoint); V0 turns chunked prefill on for "
                                   "max_model_len > 32K with max_num_batched_tokens 2048; "
                                   "max_num_seqs 256"),
    "k13": LogSettings("qwen3-8b", "a10", 21.48, 0.93, 65536, 8192, tp=4,
                       assumptions="fp16 (given); max_num_batched_tokens 8192 (given); "
                                   "max_num_seqs 256 and block 16 (defaults); GPU unnamed, "
                                   "its memory as logged"),
    "k14": LogSettings("llama2-7b", "mi300x", None, 0.90, 4096, 4096,
                       assumptions="fp16 (checkpoint); gpu_memory_utilization 0.9 "
                                   "(default); V0 without chunked prefill profiles "
                                   "max_model_len = 4096; total memory from the preset less "
                                   "the driver reserve"),
    "k16": LogSettings(_qwen25("qwen2.5-1.5b", 1536, 28, 12, 2, 8960, 151936, True), "t4",
                       14.56, 0.50, 32768, 32768,
                       assumptions="fp16 (T4 has no bf16); V0 without chunked prefill at "
                                   "32768 profiles max_model_len; max_num_seqs 256"),
    "k17": LogSettings(_qwen25("qwen2.5-14b", 5120, 48, 40, 8, 13824, 152064, False),
                       "rtx-4090", None, 0.98, 131072, 2048, tp=2,
                       assumptions="bf16 (checkpoint); V0 chunked prefill on (> 32K) with "
                                   "max_num_batched_tokens 2048; total memory from the preset "
                                   "less the driver reserve"),
}


def _gib(text: str, label: str) -> float | None:
    m = re.search(label + r"[^0-9]*([0-9.]+)\s*GiB", text or "")
    return float(m.group(1)) if m else None


def _logged_tokens(row: dict) -> float:
    """KV tokens the log states: the token line, else blocks × 16, else concurrency × ℓ."""
    tokens = re.match(r"\s*([0-9,]+)", row["gpu_kv_cache_tokens"] or "")
    if tokens:
        return float(tokens.group(1).replace(",", ""))
    if row["gpu_blocks"]:
        return float(row["gpu_blocks"]) * 16
    conc = float(re.match(r"\s*([0-9.]+)", row["max_concurrency"]).group(1))
    return conc * float(re.match(r"\s*([0-9]+)", row["max_concurrency_len"]).group(1))


def compare_logs(path: Path | str = CSV):
    """One row per usable log: logged and predicted KV tokens and max concurrency, the error,
    and per itemised term (weights, activation, non-torch) logged vs predicted GiB and its
    share of the concurrency miss."""
    rows = {r["id"]: r for r in csv.DictReader(Path(path).read_text().splitlines())}
    out = []
    for key, st in LOGS.items():
        row = rows[key]
        memory = None if st.memory_gib is None else st.memory_gib * GIB
        sm = serving_memory(st.model, st.gpu, tp=st.tp, quant=st.quant,
                            gpu_memory_utilization=st.u,
                            max_num_batched_tokens=st.profile_tokens,
                            max_num_seqs=st.max_num_seqs, request_len=st.max_model_len,
                            memory=memory, driver_reserve=0 if memory else DRIVER_RESERVE)
        tokens = _logged_tokens(row)
        length = st.max_model_len
        lines = f"{row['weights_line']}; {row['memory_lines']}"
        logged = {"weights": _gib(lines, "model weights take"),
                  "activation": _gib(lines, "activation peak memory takes"),
                  "non_torch": _gib(lines, "non_torch_memory takes"),
                  "kv": _gib(lines, "KV Cache is") or _gib(lines, "kv_cache_size=")}
        if row["memory_lines"].find("peak_torch_memory=") >= 0 and logged["weights"] is None:
            peak = _gib(lines, "peak_torch_memory=")
            weights = float(re.search(r"took ([0-9.]+) GB", lines).group(1))
            logged["weights"], logged["activation"] = weights, peak - weights
            logged["non_torch"] = _gib(lines, "non_torch_memory=")
        predicted = {"weights": sm.weights / GIB, "activation": sm.activation / GIB,
                     "non_torch": sm.non_torch / GIB, "kv": sm.kv / GIB}
        entry = {"id": key, "model": getattr(st.model, "name", st.model), "gpu": st.gpu,
                 "tp": st.tp, "u": st.u, "max_model_len": length,
                 "logged_tokens": tokens, "predicted_tokens": sm.kv_tokens,
                 "logged_concurrency": tokens / length,
                 "predicted_concurrency": sm.max_concurrency,
                 "error": sm.max_concurrency / (tokens / length) - 1}
        for term in ("weights", "activation", "non_torch", "kv"):
            entry[f"{term}_logged_gib"] = logged[term]
            entry[f"{term}_predicted_gib"] = predicted[term]
            if term != "kv" and logged[term] is not None:
                entry[f"{term}_share"] = ((predicted[term] - logged[term]) * GIB
                                          / sm.kv_per_token / length / (tokens / length))
        entry["assumptions"] = st.assumptions
        out.append(entry)
    return pd.DataFrame(out)


__all__ = ["CSV", "LOGS", "LogSettings", "compare_logs"]
