"""The sympy symbols every formula is written in, declared once.

Each symbol has a Python name (the keyword a caller passes a number under) and a LaTeX name
(what a formula prints). ``model_values(spec)`` gives a ModelSpec's numbers under those names.

One name per quantity: ``context`` (s) is the tokens a sequence holds before a pass (the prompt
length of a prefill), ``new_tokens`` (q) the tokens a pass adds, ``cached_tokens`` (c) the
tokens it attends to from the cache — a phase is a substitution of (q, c) in terms of s
(:mod:`costmodel.workload`).
"""

from __future__ import annotations

import sympy as sp

from costmodel.specs import ModelSpec

_pos_int = {"positive": True, "integer": True}

# model
L = sp.Symbol("L", **_pos_int)                 # layers
d = sp.Symbol("d", **_pos_int)                 # d_model (embedding width)
H = sp.Symbol("H", **_pos_int)                 # query heads
H_kv = sp.Symbol("H_{kv}", **_pos_int)         # key/value heads (GQA); H_kv = H is MHA
d_h = sp.Symbol("d_h", **_pos_int)             # head dimension
d_ff = sp.Symbol("d_{ff}", **_pos_int)         # MLP inner width
V = sp.Symbol("V", **_pos_int)                 # vocabulary
S = sp.Symbol("S", **_pos_int)                 # learned position-table length (max context)
W = sp.Symbol("W", **_pos_int)                 # sliding window (tokens a window layer attends)
L_w = sp.Symbol("L_{w}", **_pos_int)           # layers with a sliding window
E = sp.Symbol("E", **_pos_int)                 # routed experts per MoE layer
k_e = sp.Symbol("k", **_pos_int)               # experts each token is routed to (top-k)
f_e = sp.Symbol(r"d_{ff}^{e}", **_pos_int)     # width of one routed expert
f_s = sp.Symbol(r"d_{ff}^{s}", **_pos_int)     # total width of the shared experts
L_d = sp.Symbol("L_{d}", **_pos_int)           # leading layers with a dense MLP (MoE models)
r_q = sp.Symbol("r_{q}", **_pos_int)           # MLA query latent rank
r_kv = sp.Symbol("r_{kv}", **_pos_int)         # MLA key/value latent rank
d_n = sp.Symbol(r"d_{h}^{n}", **_pos_int)      # MLA per-head query/key dims without rotary
d_r = sp.Symbol(r"d_{h}^{r}", **_pos_int)      # MLA rotary key dims (shared by the heads)
d_v = sp.Symbol(r"d_{h}^{v}", **_pos_int)      # MLA per-head value dims
rho = sp.Symbol(r"\rho_{rot}", positive=True)  # fraction of head dims rotated (partial rotary)

# workload
B = sp.Symbol("B", **_pos_int)                 # sequences in the batch
q = sp.Symbol("q", **_pos_int)                 # new tokens per sequence in this pass
c = sp.Symbol("c", nonnegative=True, integer=True)  # cached tokens each new token also attends to
s = sp.Symbol("s", **_pos_int)                 # context length (tokens held in the KV cache)
g = sp.Symbol("g", **_pos_int)                 # tokens to generate
TP = sp.Symbol("TP", **_pos_int)               # tensor-parallel degree
EP = sp.Symbol("EP", **_pos_int)               # expert-parallel degree
DP = sp.Symbol("DP", **_pos_int)               # attention replicas of an expert-parallel group
b_we = sp.Symbol("b_{we}", positive=True)      # bytes per routed-expert weight
b_w = sp.Symbol("b_w", positive=True)          # bytes per weight
b_kv = sp.Symbol("b_{kv}", positive=True)      # bytes per KV-cache element
b_a = sp.Symbol("b_a", positive=True)          # bytes per activation element

# memory
M = sp.Symbol("M", positive=True)              # device memory, bytes
P = sp.Symbol("P", **_pos_int)                 # parameter count
P_e = sp.Symbol("P_{e}", nonnegative=True, integer=True)  # routed-expert parameters
u = sp.Symbol("u", positive=True)              # usable fraction of memory
R = sp.Symbol("R", nonnegative=True)           # reserved bytes (runtime, activations, ...)

# roofline
F = sp.Symbol("F", nonnegative=True)           # FLOPs
Q = sp.Symbol("Q", nonnegative=True)           # bytes moved (memory traffic)
pi = sp.Symbol(r"\pi", positive=True)          # peak FLOP/s
beta = sp.Symbol(r"\beta", positive=True)      # memory bandwidth, bytes/s
eta_c = sp.Symbol(r"\eta_c", positive=True)    # compute efficiency
eta_m = sp.Symbol(r"\eta_m", positive=True)    # bandwidth efficiency

# attention intensity (the course texts' N and d)
N = sp.Symbol("N", **_pos_int)                 # sequence length
b_e = sp.Symbol("b", positive=True)            # bytes per element (the E0294 text's dtype_size)

# speculative decoding
alpha = sp.Symbol(r"\alpha", nonnegative=True)  # acceptance rate
gamma = sp.Symbol(r"\gamma", **_pos_int)        # drafted tokens per iteration
c_ratio = sp.Symbol(r"c_{\mathrm{draft}}", positive=True)  # cost ratio T_draft / T_target

#: Python keyword → symbol, for every symbol a caller may give a number for.
BY_NAME: dict[str, sp.Symbol] = {
    "n_layers": L, "d_model": d, "n_heads": H, "n_kv_heads": H_kv, "head_dim": d_h,
    "d_ff": d_ff, "vocab_size": V, "max_context": S, "sliding_window": W,
    "window_layers": L_w, "n_experts": E, "experts_per_token": k_e, "d_ff_expert": f_e,
    "d_ff_shared": f_s, "dense_layers": L_d, "q_lora_rank": r_q, "kv_lora_rank": r_kv,
    "qk_nope_head_dim": d_n, "qk_rope_head_dim": d_r, "v_head_dim": d_v,
    "rotary_fraction": rho,
    "batch": B, "new_tokens": q, "cached_tokens": c, "context": s, "generate": g, "tp": TP,
    "ep": EP, "dp": DP, "expert_weight_bytes": b_we,
    "weight_bytes": b_w, "kv_bytes": b_kv, "act_bytes": b_a,
    "memory": M, "params": P, "expert_params": P_e, "mem_util": u, "reserved": R,
    "flops": F, "bytes": Q, "peak": pi, "bandwidth": beta, "eta_c": eta_c, "eta_m": eta_m,
    "n": N, "bytes_per_element": b_e, "alpha": alpha, "gamma": gamma, "cost_ratio": c_ratio,
}
NAME_OF: dict[sp.Symbol, str] = {v: k for k, v in BY_NAME.items() if k != "n"} | {N: "n"}


#: The ModelSpec fields that are sizes in the formulas.
MODEL_SIZES = ("n_layers", "d_model", "n_heads", "n_kv_heads", "head_dim", "d_ff", "vocab_size",
               "max_context", "sliding_window", "window_layers", "n_experts",
               "experts_per_token", "d_ff_expert", "d_ff_shared", "dense_layers", "q_lora_rank",
               "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
               "rotary_fraction")


def model_values(spec: ModelSpec) -> dict[str, int]:
    """A ModelSpec's numbers keyed by symbol name (fields a model does not use are 0)."""
    return {name: getattr(spec, name) or 0 for name in MODEL_SIZES}
