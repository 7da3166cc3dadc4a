r"""Serving memory as an engine sizes it (vLLM's accounting), term by term, per GPU.

vLLM profiles one forward pass of its largest step, then gives the KV cache what is left of its
share of the memory:

    budget     = u · (M − R_drv)                 u = gpu_memory_utilization, M the reported memory,
                                                  R_drv what the driver keeps (CUDA sees M − R_drv)
    weights    = W_GPU                           per GPU of the TP/EP group (costmodel.batch),
                                                  × the largest pipeline stage's share
    activation = max(A_fwd(T), A_sample(S))      the profile run's peak: T = max_num_batched_tokens
                                                  tokens through the operator model, S =
                                                  max_num_seqs rows of fp32 logits
    KV         = budget − weights − activation − R_nt − R_comm
    blocks     = ⌊KV / (block_size · kv_token)⌋  paged KV, kv_token = KV bytes per token per GPU
    tokens     = blocks · block_size
    concurrency(ℓ) = tokens / ℓ                   as vLLM prints "Maximum concurrency for ℓ tokens"

with the forward peak from the operator model's activation bytes: the largest operator's
activations read + written for T tokens (the gated MLP's gate/up in, product out) plus three
hidden-size tensors the layer still holds there (the residual stream, the MLP's normalised
input and the attention output it came from: 3 · T · d · b_a — vLLM's own V0 logs of
Llama-3.1-8B at 20,000 and 29,000 profile tokens give 2.07 and 2.99 GiB, this 2.06 and 2.99):

    A_fwd(T) = max_op (act_read + act_write)(B=1, q=T, c=0) + 3 · T · d · b_a
    A_sample(S) = 2 · S · V · 4                   logits and probabilities in fp32

Quantized checkpoints (int8/fp8/int4 formats) keep the embeddings and the LM head in 16 bits,
so a quantized model's weights add (P_embed + P_head) · (2 − b_w) / TP to W_GPU (Llama-3.1-70B
W8A8: 65.71 → 67.67 GiB; vLLM logs 67.72).

R_nt is the non-torch memory vLLM's profiler sees grow (CUDA context growth, cuBLAS workspace),
R_comm the communication library's buffers in a group of several GPUs, R_graph the CUDA graphs,
captured *after* the KV cache is sized (vLLM ≤ 0.10), so they must fit in the headroom
(1 − u)·(M − R_drv) instead. Every default is a named, sourced constant below; each can be
given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import numpy as np

from costmodel.batch import batch_plan
from costmodel.checks import (
    check_choice,
    check_element_bytes,
    check_fraction,
    check_int,
    check_nonneg_number,
    check_positive_int,
)
from costmodel.lazy import deferred
from costmodel.ops import MLA, Options, spec_flags
from costmodel.params import param_breakdown, resolve_weight_bytes
from costmodel.plan.pipeline import stage_layers
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.roofline import QUANTITIES, compiled, default_act_bytes, model_args
from costmodel.specs import MAX_MEMORY_BYTES, HardwareSpec, ModelSpec
from costmodel.units import GIB

pd = deferred("pandas")

#: vLLM's defaults (docs: engine arguments, v0.6–0.10): gpu_memory_utilization 0.9, block size
#: 16 tokens; max_num_seqs 256; max_num_batched_tokens 8192 (V1 chunked prefill, `vllm serve`).
GPU_MEMORY_UTILIZATION = 0.9
BLOCK_SIZE = 16
MAX_NUM_SEQS = 256
MAX_NUM_BATCHED_TOKENS = 8192
#: What the driver keeps: CUDA's total (vLLM's "total_gpu_memory") is nvidia-smi's less about
#: 0.45 GiB — RTX 3090 24576 MiB → 23.58 GiB (vLLM #10517), A10 23028 MiB → 22.07 GiB (OCI
#: AI Quick Actions troubleshooting log), T4 15360 MiB → 14.56 GiB (Colab log), H100 81559 MiB
#: → 79.11–79.19 GiB (vLLM logs): 0.42, 0.42, 0.44, 0.46–0.54 GiB; the median, rounded.
DRIVER_RESERVE = 0.45 * GIB
#: Non-torch memory the profiler sees grow: vLLM's "non_torch_memory takes X GiB" on one GPU —
#: 0.35 (RTX 3090, #10517), 0.05 (A10, OCI log), 0.28 (RTX 4090-class, 24 GiB), 0.12 (H100,
#: book example), 0.01 (T4): median 0.12, rounded up to 0.2 GiB for the TP logs' 0.20–0.25.
NON_TORCH = 0.2 * GIB
#: Communication-library buffers beyond that in a group of several GPUs: vLLM's TP logs show
#: non-torch 0.20 (TP4) and 0.25 GiB (TP2, #13061), inside the one-GPU range, so nothing extra
#: by default; give it for an engine that counts its NCCL buffers in the budget.
COMM_RESERVE = 0.0
#: CUDA graphs, captured after the KV cache is sized: "Graph capturing finished …, took X GiB"
#: — 1.92 (V0 0.6.6, 35 sizes), 0.59 (V1, Feb 2025), 0.72 GiB (V1, Nov 2025): the median.
CUDA_GRAPHS = 0.72 * GIB
#: Bytes per fp32 logit, and the [S, V] tensors of the sampler (logits, probabilities).
LOGIT_BYTES, SAMPLER_TENSORS = 4, 2
#: Hidden-size activations a layer holds at its MLP (residual, normalised input, attention
#: output), beside the largest operator's own.
HIDDEN_TENSORS = 3
#: Bytes per weight of the embeddings and LM head of a quantized checkpoint (kept 16-bit).
UNQUANTIZED_BYTES = 2


@dataclass(frozen=True)
class ServingMemory:
    """One GPU's memory as the engine sizes it (bytes), and what it holds."""

    model: str
    hardware: str
    tp: int
    pp: int
    ep: int
    memory: float                 # reported memory M
    driver_reserve: float
    gpu_memory_utilization: float
    budget: float                 # u · (M − R_drv)
    weights: float
    activation: float
    activation_forward: float
    activation_sampler: float
    profile_tokens: int
    non_torch: float
    comm: float
    kv: float                     # bytes for the KV cache (may be ≤ 0: nothing fits)
    kv_per_token: float           # KV bytes per token on this GPU
    block_size: int
    blocks: int
    kv_tokens: int
    request_len: int
    max_concurrency: float        # kv_tokens / request_len, as vLLM logs it
    max_requests: int             # whole requests of request_len tokens that fit in blocks
    cuda_graphs: float
    headroom: float               # (1 − u) · (M − R_drv)

    @property
    def fits(self) -> bool:
        """Whether at least one request of ``request_len`` tokens fits."""
        return self.max_requests >= 1

    @property
    def graphs_fit(self) -> bool:
        """Whether the CUDA graphs fit in the headroom the utilisation leaves."""
        return self.cuda_graphs <= self.headroom

    @property
    def reason(self) -> str:
        """Why the KV cache holds what it holds, in one line."""
        left = self.budget - self.weights
        if left <= 0:
            return (f"the weights alone ({self.weights / GIB:.2f} GiB per GPU) exceed the "
                    f"{self.budget / GIB:.2f} GiB budget; raise tp/pp or quantize")
        if self.kv <= 0:
            return (f"weights {self.weights / GIB:.2f} + activation "
                    f"{self.activation / GIB:.2f} + reserves "
                    f"{(self.non_torch + self.comm) / GIB:.2f} GiB leave no KV cache in the "
                    f"{self.budget / GIB:.2f} GiB budget; lower max_num_batched_tokens")
        if not self.fits:
            return (f"{self.kv_tokens:,} KV tokens hold no request of {self.request_len:,} "
                    "tokens")
        return (f"{self.kv / GIB:.2f} GiB KV / {self.kv_per_token / 1024:.1f} KiB per token = "
                f"{self.blocks:,} blocks of {self.block_size} = {self.kv_tokens:,} tokens: "
                f"{self.max_concurrency:.2f}× requests of {self.request_len:,} tokens")

    def terms(self):
        """The accounting as a table: term, bytes, GiB and how it is computed."""
        rows = [
            ("memory (reported)", self.memory, "M: the hardware's memory"),
            ("driver reserve", -self.driver_reserve, "R_drv: CUDA sees M − R_drv"),
            ("budget", self.budget, f"u · (M − R_drv), u = {self.gpu_memory_utilization:g}"),
            ("weights", -self.weights, f"W_GPU at TP={self.tp}, EP={self.ep}, largest of "
                                       f"PP={self.pp} stages"),
            ("activation peak", -self.activation,
             f"max(forward {self.activation_forward / GIB:.2f} GiB at "
             f"{self.profile_tokens:,} tokens, sampler {self.activation_sampler / GIB:.2f} GiB)"),
            ("non-torch", -self.non_torch, "R_nt: CUDA context growth, cuBLAS workspace"),
            ("communication", -self.comm, "R_comm: communication-library buffers"),
            ("KV cache", self.kv, "budget − weights − activation − R_nt − R_comm"),
            ("KV blocks", self.blocks * self.block_size * self.kv_per_token,
             f"{self.blocks:,} blocks × {self.block_size} tokens × "
             f"{self.kv_per_token:,.0f} B"),
            ("CUDA graphs (headroom)", self.cuda_graphs,
             f"must fit in (1 − u)·(M − R_drv) = {self.headroom / GIB:.2f} GiB"),
        ]
        return pd.DataFrame({"term": [r[0] for r in rows],
                             "bytes": [float(r[1]) for r in rows],
                             "GiB": [round(float(r[1]) / GIB, 3) for r in rows],
                             "how": [r[2] for r in rows]})


def forward_activation(m: ModelSpec, tokens, tp: int = 1, ep: int = 1,
                       weight_bytes: float = 2, expert_weight_bytes: float | None = None,
                       act_bytes: float | None = None, kv_bytes: float = 2,
                       mla: str = "absorbed"):
    """A_fwd(T) bytes per GPU: the largest operator's activations read + written for a pass of
    T tokens (B = 1, q = T, c = 0; fused attention, as serving engines run it) plus the
    hidden-size tensors the layer holds there, 3 · T · d · b_a. ``tokens`` may be an array."""
    act_bytes = default_act_bytes(weight_bytes) if act_bytes is None else act_bytes
    expert_weight_bytes = weight_bytes if expert_weight_bytes is None else expert_weight_bytes
    dp = ep // tp if ep > 1 else 1
    comp = compiled(spec_flags(m), Options(attention="fused", mla=mla,
                                           expert_parallel=ep > 1))
    t = np.asarray(tokens, dtype=float)
    vals = comp.fn(*model_args(m), dp, t, 0, tp, ep, dp, weight_bytes, expert_weight_bytes,
                   act_bytes, kv_bytes)
    n = len(QUANTITIES)
    read, write = QUANTITIES.index("act_read"), QUANTITIES.index("act_write")
    peak = np.zeros(t.shape)
    for i in range(len(comp.ops)):
        peak = np.maximum(peak, np.asarray(vals[n * i + read], dtype=float)
                          + np.asarray(vals[n * i + write], dtype=float))
    return peak + HIDDEN_TENSORS * t * m.d_model * act_bytes


def sampler_activation(m: ModelSpec, max_num_seqs) -> float:
    """A_sample(S): S rows of fp32 logits and the probabilities computed from them."""
    return SAMPLER_TENSORS * np.asarray(max_num_seqs, dtype=float) * m.vocab_size * LOGIT_BYTES


def nonlayer_params(m: ModelSpec) -> int:
    """Parameters outside the repeated layers, held by the first or last pipeline stage:
    the larger of the embeddings (with learned positions) and the LM head (0 if tied)."""
    parts = param_breakdown(m)
    return max(parts.get("embeddings", 0) + parts.get("positions", 0), parts.get("lm_head", 0))


@cache
def shards(m: ModelSpec, tp: int, pp: int, ep: int, weight_bytes: float,
           expert_weight_bytes: float, kv_bytes: float, request_len: int,
           mla: str = "absorbed") -> tuple[float, float]:
    """(weight bytes, KV bytes per token) on one GPU of the largest pipeline stage: the TP/EP
    shard of :func:`costmodel.batch.batch_plan` (a quantized checkpoint's embeddings and head
    at 16 bits), its layers scaled to the stage's share ⌈L/PP⌉/L and the larger of the
    embeddings and the head added back whole (PP > 1)."""
    plan = batch_plan(m, MAX_MEMORY_BYTES, request_len, tp, weight_bytes, kv_bytes, ep=ep,
                      expert_weight_bytes=expert_weight_bytes, mla=mla)
    kv_token = plan.kv_bytes_per_request_per_gpu / request_len
    parts = param_breakdown(m)
    ends = parts.get("embeddings", 0) + parts.get("positions", 0) + parts.get("lm_head", 0)
    kept = max(UNQUANTIZED_BYTES - weight_bytes, 0) * ends / tp  # 16-bit ends of a quantized one
    if pp == 1:
        return plan.weight_bytes_per_gpu + kept, kv_token
    share = stage_layers(m.n_layers, pp)[0] / m.n_layers
    weights = (plan.weight_bytes_per_gpu - ends * weight_bytes / tp) * share \
        + nonlayer_params(m) * max(weight_bytes, UNQUANTIZED_BYTES) / tp
    return weights, kv_token * share


def kv_blocks(budget, weights, activation, non_torch, comm, kv_token, block_size):
    """(KV bytes, blocks): KV = budget − weights − activation − R_nt − R_comm, blocks =
    ⌊KV / (block_size · kv_token)⌋ (0 when nothing is left; arrays broadcast)."""
    kv = (np.asarray(budget, dtype=float) - weights - activation - non_torch - comm)
    blocks = np.where(kv > 0, np.floor(np.maximum(kv, 0) / (block_size * kv_token)), 0)
    return kv, blocks


def serving_memory(m: ModelSpec | str, hw: HardwareSpec | str, *, tp: int = 1, pp: int = 1,
                   ep: int = 1, quant: str | None = None, weight_bytes: float | None = None,
                   kv_bytes: float = 2, act_bytes: float | None = None,
                   gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION,
                   max_num_batched_tokens: int = MAX_NUM_BATCHED_TOKENS,
                   max_num_seqs: int = MAX_NUM_SEQS, request_len: int = 2048,
                   block_size: int = BLOCK_SIZE, memory: float | None = None,
                   driver_reserve: float = DRIVER_RESERVE, non_torch: float = NON_TORCH,
                   comm_reserve: float = COMM_RESERVE, cuda_graphs: float = CUDA_GRAPHS,
                   mla: str = "absorbed") -> ServingMemory:
    """One GPU's serving memory (see the module docstring). ``memory`` overrides the
    hardware's reported bytes (e.g. the total an engine's log prints, then with
    ``driver_reserve=0``); ``request_len`` is the tokens a request holds (prompt + output, or
    max_model_len); ``max_num_batched_tokens`` the tokens of the profile step."""
    m, h = model_preset(m), hardware_preset(hw)
    tp = check_int("tp", tp, 1, 2**31 - 1)
    pp = check_int("pp", pp, 1, m.n_layers)
    ep = check_int("ep", ep, 1, 2**31 - 1)
    check_element_bytes("kv_bytes", kv_bytes)
    u = check_fraction("gpu_memory_utilization", gpu_memory_utilization)
    tokens = check_positive_int("max_num_batched_tokens", max_num_batched_tokens)
    seqs = check_positive_int("max_num_seqs", max_num_seqs)
    request_len = check_positive_int("request_len", request_len)
    block_size = check_int("block_size", block_size, 1, 2**20)
    check_choice("mla", mla, MLA)
    total = h.memory_bytes if memory is None else check_nonneg_number("memory", memory,
                                                                      MAX_MEMORY_BYTES)
    reserves = {name: check_nonneg_number(name, value, MAX_MEMORY_BYTES) for name, value in
                (("driver_reserve", driver_reserve), ("non_torch", non_torch),
                 ("comm_reserve", comm_reserve), ("cuda_graphs", cuda_graphs))}
    if total <= reserves["driver_reserve"]:
        raise ValueError(f"driver_reserve: {reserves['driver_reserve'] / GIB:.2f} GiB leaves "
                         f"nothing of the {total / GIB:.2f} GiB memory")
    prec = resolve_weight_bytes(m, weight_bytes, quant=quant)
    weights, kv_token = shards(m, tp, pp, ep, prec.weight_bytes, prec.expert_weight_bytes,
                               kv_bytes, request_len, mla)
    fwd = float(forward_activation(m, tokens, tp, ep, prec.weight_bytes,
                                   prec.expert_weight_bytes, act_bytes, kv_bytes, mla))
    sampler = float(sampler_activation(m, seqs))
    activation = max(fwd, sampler)
    visible = total - reserves["driver_reserve"]
    budget = u * visible
    comm = reserves["comm_reserve"] if tp * pp * ep > 1 else 0.0
    kv, blocks = kv_blocks(budget, weights, activation, reserves["non_torch"], comm, kv_token,
                           block_size)
    blocks = int(blocks)
    kv_tokens = blocks * block_size
    return ServingMemory(
        m.name, h.name, tp, pp, ep, float(total), reserves["driver_reserve"], u, budget,
        float(weights), activation, fwd, sampler, tokens, reserves["non_torch"], comm,
        float(kv), kv_token, block_size, blocks, kv_tokens, request_len,
        kv_tokens / request_len, blocks // math.ceil(request_len / block_size),
        reserves["cuda_graphs"], visible - budget)


__all__ = ["BLOCK_SIZE", "COMM_RESERVE", "CUDA_GRAPHS", "DRIVER_RESERVE", "HIDDEN_TENSORS",
           "UNQUANTIZED_BYTES",
           "GPU_MEMORY_UTILIZATION", "MAX_NUM_BATCHED_TOKENS", "MAX_NUM_SEQS", "NON_TORCH",
           "ServingMemory", "forward_activation", "kv_blocks", "nonlayer_params",
           "sampler_activation", "serving_memory", "shards"]
