r"""One per-operator model of a forward pass: FLOPs and bytes of every operator, symbolically.

Every forward pass is B sequences each adding q new tokens that attend to c cached tokens plus
themselves (docs/ARCHITECTURE.md). Prefill, decode, the no-cache baseline, speculative
verification and chunked prefill are substitutions into the same expressions
(:mod:`costmodel.workload` holds the map):

    prefill of s tokens          q = s,   c = 0
    one decode step at context s q = 1,   c = s
    no-cache step at context T   q = T,   c = 0   (kv_cache=False: nothing is written to a cache)
    verification of γ drafts     q = γ+1, c = s
    chunked prefill              q = chunk, c = tokens done

Per GPU of a tensor-parallel group of TP (Megatron): h = H/TP query heads, h_kv = ⌈H_kv/TP⌉ KV
heads, f = d_ff/TP MLP columns and v = V/TP vocabulary rows; norms, residuals and embeddings
are replicated; two all-reduces of the B·q×d activations per layer.

With T = B·q new tokens and K = c + q keys per sequence, the matmuls are (a multiply-add = 2 FLOPs,
as FlopCounterMode counts them; bias adds are not counted):

    qkv_proj   2 T d (h + 2 h_kv) d_h        out_proj  2 T h d_h d
    qk_scores  2 B h A d_h                   attn_v    2 B h A d_h       A = q K (full scores)
    mlp_up     2 T d f   (mlp_gate the same)  mlp_down 2 T f d          or A = q c + q(q+1)/2
    lm_head    2 T_o d v   (T_o = T on all positions, B on the last only)     (causal half)

Elementwise operators use these FLOPs per element (not counted by FlopCounterMode; they are
memory-bound anyway): softmax 5 (max, subtract, exp, sum, divide — the E0294 text's 5N),
LayerNorm 8, RMSNorm 4, GELU 8, SiLU 4 (+1 for the SwiGLU product), ReLU 1, rotary 3,
residual add 1, position add 1.

Bytes are split into weights read, activations read, activations written, KV read and KV written,
for b_w bytes per weight, b_a per activation and b_kv per KV element. ``standard`` attention (the
E0294 text's Algorithm 0) writes the B·h·q·K scores S and probabilities P to memory and reads them
back, and reads the causal mask (q·K elements, shared by the batch: the CS229S C6·N² term);
``fused`` (FlashAttention) reads Q, K, V once and writes O, with no quadratic traffic (its
Θ(N²d²/M) re-reads of K and V for SRAM size M are neglected). ``eager`` is standard attention as
PyTorch eager code (nanoGPT, minGPT, the reference model's ``attn_impl="eager"``) runs it: the
scale and, when q > 1, the mask are separate read+write passes over S; K and V are copied into
a head-major h-head layout for the batched matmuls (``kv_layout``: always for a concatenated or
absent cache, with an in-place head-major cache only under GQA, where ``repeat_interleave``
expands them); the attention output is copied once (``.contiguous()``).

``kv_update="concat"`` is a dynamic cache grown with ``torch.cat``: each step reads the c cached
rows of K and V and writes all c + q, instead of writing the q new rows in place.

Modern architectures extend the same operators (their counts are layer classes):

* **Sliding window** (W, on L_w of the L layers): a window layer caches the last W − 1 tokens,
  c_w = min(c, W − 1), so its keys are K_w = c_w + q; the attention operators of window layers
  (suffix ``_window``) are the full-attention ones with c → c_w (``causal="half"`` counts only
  the pairs inside the window: Σ_{i=1..q} min(c + i, W)).
* **Mixture of experts** (E routed experts of width f_e, top-k, on L − L_d layers): ``router``
  2 T d E; each token reaches exactly k experts, so the expert matmuls cost 2 T k d f_e each
  (split over the GPUs holding the experts) whatever the routing; the weights read are those of
  the experts the batch touches: U = E (1 − (1 − k/E)^T) when every token picks k of E
  uniformly (``experts="uniform"``), or all E (``experts="all"``, the pessimistic bound).
  Shared experts are an always-on MLP of width f_s. ``moe_dispatch="grouped"`` runs each
  expert operator as one kernel for all experts (serving engines' fused MoE kernels);
  ``"loop"`` calls it once per touched expert (Hugging Face's eager loop, the reference model):
  the expert operators then occur U times per MoE layer (U = the experts this GPU's tokens
  touch), each with 1/U of the work, the combine step gathers, scales and scatters the rows
  per expert (3 kernels), and the router's step also picks the top k, takes their softmax and
  sorts the T·k assignments by expert (zero the output, argsort, count, divide, gather the
  weights: 8 kernels with the router matmul). Experts are sliced by TP, or — with
  expert parallelism (EP > 1, ``expert_parallel=True``) — E/EP whole experts per GPU, the
  attention running as DP = EP/TP replicas of B/DP sequences each, tokens dispatched to their
  experts and combined back by two all-to-alls.
* **Multi-head latent attention** (DeepSeek-V2/V3): queries through a rank-r_q latent, K and V
  through a rank-r_kv latent plus a shared rotary key of d_r dims. ``mla="expanded"`` caches the
  up-projected per-head K (d_n + d_r) and V (d_v) as the Hugging Face implementation does;
  ``"naive"`` caches the latent (r_kv + d_r per token) and up-projects the whole cache every
  pass; ``"absorbed"`` caches the latent and folds the up-projections into the query and the
  output (serving engines): scores over r_kv + d_r dims per head.
* Per-head q/k norms (``qk_norm``), post-norms (``norms_per_layer`` = 4), attention sinks
  (a weight per head read by the softmax) and partial rotary (ρ of the head dims rotated).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from costmodel.checks import check_bool, check_choice
from costmodel.specs import ModelSpec
from costmodel.symbols import (
    DP,
    EP,
    TP,
    B,
    E,
    H,
    H_kv,
    L,
    L_d,
    L_w,
    V,
    W,
    b_a,
    b_kv,
    b_w,
    b_we,
    c,
    d,
    d_ff,
    d_h,
    d_n,
    d_r,
    d_v,
    f_e,
    f_s,
    k_e,
    q,
    r_kv,
    r_q,
    rho,
)

ATTENTION = ("standard", "fused", "eager")
KV_UPDATE = ("inplace", "concat")
CAUSAL = ("full", "half")
LM_HEAD = ("last", "all")
KV_SHARING = ("per_request", "shared")
EXPERTS = ("uniform", "all")
MOE_DISPATCH = ("grouped", "loop")
MLA = ("absorbed", "naive", "expanded")
PARTS = ("weight_read", "act_read", "act_write", "kv_read", "kv_write")
COMM = ("allreduce", "alltoall")
ELEMENTWISE_FLOPS = {"softmax": 5, "layernorm": 8, "rmsnorm": 4, "gelu": 8, "silu": 4, "relu": 1,
                     "rotary": 3, "add": 1}


@dataclass(frozen=True)
class Options:
    """Structural choices: which terms exist (the sizes stay symbolic)."""

    attention: str = "standard"       # "standard" (S, P in memory) | "fused" (FlashAttention)
    #                                   | "eager" (standard as PyTorch eager code runs it)
    kv_update: str = "inplace"        # cache written in place (static) | rebuilt by concat
    causal: str = "full"              # count all q×K scores | only the causal (window) pairs
    lm_head: str = "last"             # logits for the last position only (nanoGPT) | all (HF)
    fused_qkv: bool = True            # one QKV matmul (reads x once) | three (reads x 3 times)
    kv_cache: bool = True             # write K, V to a cache and read past K, V from it
    kv_sharing: str = "per_request"   # each sequence has its own K/V | one K/V shared by all B
    mask: bool = True                 # standard attention reads a q×K causal mask
    experts: str = "uniform"          # expert weights read: those a uniform routing touches | all
    mla: str = "absorbed"             # latent attention: absorbed | naive | expanded (HF)
    expert_parallel: bool = False     # experts whole on EP GPUs (DP attention) | TP-sliced
    moe_dispatch: str = "grouped"     # one kernel for all experts | one call per touched expert

    def __post_init__(self) -> None:
        check_choice("attention", self.attention, ATTENTION)
        check_choice("causal", self.causal, CAUSAL)
        check_choice("lm_head", self.lm_head, LM_HEAD)
        check_choice("kv_sharing", self.kv_sharing, KV_SHARING)
        check_choice("kv_update", self.kv_update, KV_UPDATE)
        check_choice("experts", self.experts, EXPERTS)
        check_choice("mla", self.mla, MLA)
        check_choice("moe_dispatch", self.moe_dispatch, MOE_DISPATCH)
        for name in ("fused_qkv", "kv_cache", "mask", "expert_parallel"):
            check_bool(name, getattr(self, name))


@dataclass(frozen=True)
class Op:
    """One operator: FLOPs, the five byte parts, communication bytes (and whether they go
    through an all-reduce over the TP group or an all-to-all over the EP group), kernels per
    occurrence, for a weight matmul its rows M (of M×K·K×N: the tokens it multiplies), and how
    many times a pass runs it (``count``: L, a layer class, or 1)."""

    name: str
    kind: str            # matmul | attention | elementwise | memory | communication
    block: str           # embedding | attention | mlp | moe | norm | residual | head | comm…
    count: sp.Expr       # occurrences per pass
    flops: sp.Expr
    weight_read: sp.Expr
    act_read: sp.Expr
    act_write: sp.Expr
    kv_read: sp.Expr
    kv_write: sp.Expr
    comm_bytes: sp.Expr = sp.Integer(0)
    kernels: int = 1
    rows: sp.Expr = sp.Integer(0)
    comm: str = "allreduce"

    @property
    def bytes(self) -> sp.Expr:
        return self.weight_read + self.act_read + self.act_write + self.kv_read + self.kv_write

    @property
    def per_layer(self) -> bool:
        return self.count != 1


@dataclass(frozen=True)
class Structure:
    """The parts of a ModelSpec that change which terms exist (the sizes stay symbols)."""

    gated: bool
    activation: str
    norm: str
    qkv_bias: bool
    out_bias: bool
    mlp_bias: bool
    lm_head_bias: bool
    positions: str
    norms_per_layer: int = 2
    qk_norm: bool = False
    sinks: bool = False
    partial_rotary: bool = False
    window: str = "none"          # none | all | some layers
    moe: str = "none"             # none | all | some layers (the first L_d keep a dense MLP)
    shared_experts: bool = False
    router_bias: bool = False
    mla: bool = False
    q_lora: bool = False


def _classes(count: int, total: int) -> str:
    return "none" if count == 0 else "all" if count == total else "some"


def spec_flags(m: ModelSpec) -> Structure:
    """The structure of ``m``'s expressions."""
    return Structure(m.gated_mlp, m.activation, m.norm, m.qkv_bias, m.out_bias, m.mlp_bias,
                     m.lm_head_bias, m.positions, m.norms_per_layer, m.qk_norm,
                     m.attention_sinks, m.rotary_fraction < 1,
                     _classes(m.window_layers, m.n_layers), _classes(m.moe_layers, m.n_layers),
                     m.n_shared_experts > 0, m.router_bias, m.mla, m.q_lora_rank > 0)


def operators(m: ModelSpec, options: Options = Options()) -> tuple[Op, ...]:
    """The operators of ``m``'s forward pass, as sympy expressions in (B, q, c, TP, sizes)."""
    return _operators(spec_flags(m), options)


def experts_touched(tokens: sp.Expr, experts: str = "uniform") -> sp.Expr:
    """U: the distinct routed experts ``tokens`` routed tokens reach in one MoE layer when each
    picks k of the E experts uniformly, U = E (1 − (1 − k/E)^T) (``experts="all"``: E, the
    pessimistic bound). The expert weights a pass reads are U experts' worth."""
    return E if experts == "all" else E * (1 - (1 - k_e / E) ** tokens)


def layer_counts(classes: str, subset: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """(count of the other layers, count of the subset) for a layer class split."""
    if classes == "none":
        return L, sp.Integer(0)
    if classes == "all":
        return sp.Integer(0), L
    return L - subset, subset


@cache
def _operators(st: Structure, o: Options) -> tuple[Op, ...]:
    zero = sp.Integer(0)
    e = ELEMENTWISE_FLOPS
    ep = o.expert_parallel and st.moe != "none"
    h, h_kv, f, v = H / TP, sp.ceiling(H_kv / TP), d_ff / TP, V / TP
    Bq = B / DP if ep else B                     # sequences one attention replica serves
    T = Bq * q                                   # new tokens on this GPU's attention replica
    T_out = T if o.lm_head == "all" else Bq      # positions that get logits
    n_norm = 2 if st.norm == "layernorm" else 1
    standard = o.attention in ("standard", "eager")
    eager = o.attention == "eager"
    kv_seqs = Bq if o.kv_sharing == "per_request" else sp.Integer(1)
    full_layers, window_layers = layer_counts(st.window, L_w)
    dense_layers, moe_layers = layer_counts(st.moe, L - L_d)

    def op(name, kind, block, flops=zero, w=zero, ar=zero, aw=zero, kr=zero, kw=zero,
           comm=zero, count=L, kernels=1, rows=zero, comm_kind="allreduce"):
        return Op(name, kind, block, sp.sympify(count), sp.sympify(flops), sp.sympify(w),
                  sp.sympify(ar), sp.sympify(aw), sp.sympify(kr), sp.sympify(kw),
                  sp.sympify(comm), kernels, sp.sympify(rows), comm_kind)

    def norm_op(name, count=L, width=d, tokens=T):
        return op(name, "elementwise", "norm", e[st.norm] * tokens * width,
                  w=n_norm * width * b_w, ar=tokens * width * b_a, aw=tokens * width * b_a,
                  count=count)

    def allreduce(name, count=L):  # ring all-reduce of the T×d activations when TP > 1
        return op(name, "communication", "communication", comm=T * d * b_a, kernels=0,
                  count=count)

    def residual(name):
        return op(name, "elementwise", "residual", e["add"] * T * d, ar=2 * T * d * b_a,
                  aw=T * d * b_a)

    def mlp(prefix, width, tokens, count, block, weight_bytes=b_w, rows=None):
        """A (gated) MLP of ``width`` columns on this GPU over ``tokens`` token-rows."""
        rows = tokens if rows is None else rows
        bias_up = width if st.mlp_bias else 0
        out = [op(f"{prefix}_up", "matmul", block, 2 * tokens * d * width,
                  w=(d * width + bias_up) * weight_bytes, ar=tokens * d * b_a,
                  aw=tokens * width * b_a, count=count, rows=rows)]
        if st.gated:
            out.append(op(f"{prefix}_gate", "matmul", block, 2 * tokens * d * width,
                          w=(d * width + bias_up) * weight_bytes, ar=tokens * d * b_a,
                          aw=tokens * width * b_a, count=count, rows=rows))
        out += [
            op("activation" if prefix == "mlp" else f"{prefix}_activation", "elementwise",
               block, (e[st.activation] + (1 if st.gated else 0)) * tokens * width,
               ar=tokens * width * b_a * (2 if st.gated else 1), aw=tokens * width * b_a,
               count=count),
            op(f"{prefix}_down", "matmul", block, 2 * tokens * width * d,
               w=(width * d + (d if st.mlp_bias else 0)) * weight_bytes,
               ar=tokens * width * b_a, aw=tokens * d * b_a, count=count, rows=rows),
        ]
        return out

    # ---- attention: projections, then the core per layer class (full / window)
    if st.mla:
        qk_dim = d_n + d_r
        latent = r_kv + d_r                       # cached per token per layer (latent mode)
        proj = []
        if st.q_lora:
            proj += [op("q_down", "matmul", "attention", 2 * T * d * r_q, w=d * r_q * b_w,
                        ar=T * d * b_a, aw=T * r_q * b_a, rows=T),
                     norm_op("q_norm", width=r_q),
                     op("q_up", "matmul", "attention", 2 * T * r_q * h * qk_dim,
                        w=r_q * h * qk_dim * b_w, ar=T * r_q * b_a, aw=T * h * qk_dim * b_a,
                        rows=T)]
        else:
            proj.append(op("q_proj", "matmul", "attention", 2 * T * d * h * qk_dim,
                           w=d * h * qk_dim * b_w, ar=T * d * b_a, aw=T * h * qk_dim * b_a,
                           rows=T))
        proj += [op("kv_down", "matmul", "attention", 2 * T * d * latent, w=d * latent * b_w,
                    ar=T * d * b_a, aw=T * latent * b_a, rows=T),
                 norm_op("kv_norm", width=r_kv)]
        if o.mla == "expanded":
            proj.append(op("kv_up", "matmul", "attention", 2 * T * r_kv * h * (d_n + d_v),
                           w=r_kv * h * (d_n + d_v) * b_w, ar=T * r_kv * b_a,
                           aw=T * h * (d_n + d_v) * b_a, rows=T))
        rot_elems = (h + 1) * d_r
        if o.mla == "absorbed":
            heads_kv, d_key, d_val, new_elems = sp.Integer(1), latent, r_kv, latent
        elif o.mla == "naive":
            heads_kv, d_key, d_val, new_elems = h, qk_dim, d_v, latent
        else:
            heads_kv, d_key, d_val, new_elems = h, qk_dim, d_v, h * (qk_dim + d_v)
        d_out = d_v
    else:
        qkv_cols = (h + 2 * h_kv) * d_h
        proj = [op("qkv_proj", "matmul", "attention", 2 * T * d * qkv_cols,
                   w=(d * qkv_cols + (qkv_cols if st.qkv_bias else 0)) * b_w,
                   ar=T * d * b_a * (1 if o.fused_qkv else 3), aw=T * qkv_cols * b_a,
                   kernels=1 if o.fused_qkv else 3, rows=T)]
        if st.qk_norm:
            proj.append(op("qk_norm", "elementwise", "norm", e["rmsnorm"] * T * (h + h_kv) * d_h,
                           w=2 * d_h * b_w, ar=T * (h + h_kv) * d_h * b_a,
                           aw=T * (h + h_kv) * d_h * b_a, kernels=2))
        rot_elems = (h + h_kv) * d_h * (rho if st.partial_rotary else 1)
        heads_kv, d_key, d_val, new_elems, d_out = h_kv, d_h, d_h, 2 * h_kv * d_h, d_h
    ops = [
        op("embedding", "memory", "embedding",
           flops=T * d if st.positions == "learned" else zero,
           w=T * d * b_w * (2 if st.positions == "learned" else 1), aw=T * d * b_a, count=1),
        norm_op("norm_1"),
        *proj,
    ]
    if st.positions == "rotary":
        ops.append(op("rotary", "elementwise", "attention", e["rotary"] * T * rot_elems,
                      ar=T * rot_elems * b_a, aw=T * rot_elems * b_a))
    if st.mla and o.mla == "absorbed":
        ops.append(op("q_absorb", "matmul", "attention", 2 * T * h * d_n * r_kv,
                      w=h * d_n * r_kv * b_w, ar=T * h * d_n * b_a, aw=T * h * r_kv * b_a,
                      rows=T))

    def core(C, count, suffix):
        """The attention operators that depend on the keys: C cached tokens are attended."""
        K = C + q                                    # keys each new token may attend to
        if o.causal == "full":
            A = q * K                                # score pairs per (sequence, head)
        elif suffix:                                 # window: Σ_{i=1..q} min(c + i, W)
            t = sp.Min(sp.Max(W - c, 0), q)
            A = t * c + t * (t + 1) / 2 + (q - t) * W
        else:
            A = q * c + q * (q + 1) / 2
        key_elems = kv_seqs * K * heads_kv * d_key
        val_elems = zero if (st.mla and o.mla == "absorbed") else kv_seqs * K * heads_kv * d_val
        if st.mla and o.mla == "naive":          # keys and values come from the up-projection
            k_cache, k_act, v_cache, v_act = zero, key_elems * b_a, zero, val_elems * b_a
        elif o.kv_cache:
            k_cache, k_act, v_cache, v_act = key_elems * b_kv, zero, val_elems * b_kv, zero
        else:
            k_cache, k_act, v_cache, v_act = zero, key_elems * b_a, zero, val_elems * b_a
        out = []
        n = "_window" if suffix else ""
        if o.kv_cache and o.kv_update == "inplace":
            out.append(op(f"kv_write{n}", "memory", "attention", ar=T * new_elems * b_a,
                          kw=T * new_elems * b_kv, count=count))
        elif o.kv_cache:  # torch.cat rebuilds K and V: read the C cached rows, write C + q
            # (an empty cache just keeps the new K, V: nothing is copied when C = 0)
            has_past = sp.Heaviside(C - sp.Rational(1, 2))
            out.append(op(f"kv_write{n}", "memory", "attention",
                          ar=has_past * T * new_elems * b_a,
                          kr=has_past * Bq * C * new_elems * b_kv,
                          kw=has_past * Bq * K * new_elems * b_kv, kernels=2, count=count))
        if st.mla and o.mla == "naive":             # up-project every cached latent
            out.append(op(f"kv_up{n}", "matmul", "attention",
                          2 * kv_seqs * K * r_kv * h * (d_n + d_v),
                          w=r_kv * h * (d_n + d_v) * b_w,
                          kr=kv_seqs * K * latent * b_kv if o.kv_cache else zero,
                          ar=zero if o.kv_cache else kv_seqs * K * latent * b_a,
                          aw=kv_seqs * K * h * (d_n + d_v) * b_a, rows=kv_seqs * K,
                          count=count))
        if eager and not st.mla:
            # PyTorch eager attention (nanoGPT/minGPT): K and V are copied into a head-major,
            # h-head layout for the batched matmuls — always for a concatenated or absent
            # cache, for an in-place head-major cache only with GQA (repeat_interleave).
            gqa = sp.Heaviside(H - H_kv - sp.Rational(1, 2))
            copy = 1 if (o.kv_update == "concat" or not o.kv_cache) else gqa
            src = b_kv if o.kv_cache else b_a
            out.append(op(f"kv_layout{n}", "memory", "attention",
                          kr=copy * 2 * kv_seqs * K * h * d_h * src if o.kv_cache else zero,
                          ar=zero if o.kv_cache else copy * 2 * kv_seqs * K * h * d_h * src,
                          aw=copy * 2 * kv_seqs * K * h * d_h * src, kernels=2, count=count))
        score_bytes = Bq * h * q * K * b_a if standard else zero
        out.append(op(f"qk_scores{n}", "attention", "attention", 2 * Bq * h * A * d_key,
                      ar=T * h * d_key * b_a + k_act, kr=k_cache, aw=score_bytes, count=count))
        if eager:  # the scale and (when q > 1) the mask are separate passes over S
            more_than_one = sp.Heaviside(q - sp.Rational(3, 2))
            out += [op(f"scale{n}", "elementwise", "attention", Bq * h * q * K,
                       ar=Bq * h * q * K * b_a, aw=Bq * h * q * K * b_a, count=count),
                    op(f"mask_fill{n}", "elementwise", "attention", zero,
                       ar=more_than_one * Bq * h * q * K * b_a,
                       aw=more_than_one * Bq * h * q * K * b_a, count=count)]
        out += [
            op(f"softmax{n}", "elementwise", "attention", e["softmax"] * Bq * h * A,
               w=h * b_w if st.sinks else zero,
               ar=score_bytes + (q * K * b_a if standard and o.mask else zero),
               aw=score_bytes, kernels=1 if standard else 0, count=count),
            op(f"attn_v{n}", "attention", "attention", 2 * Bq * h * A * d_val,
               ar=score_bytes + v_act, kr=v_cache, aw=T * h * d_val * b_a,
               kernels=1 if standard else 0, count=count),
        ]
        if eager:  # y.transpose(1, 2).contiguous(): a copy of the attention output when q > 1
            several = sp.Heaviside(q - sp.Rational(3, 2))  # (for q = 1 the transpose is a view)
            out.append(op(f"out_copy{n}", "memory", "attention",
                          ar=several * T * h * d_val * b_a, aw=several * T * h * d_val * b_a,
                          count=count))
        return out

    if st.window != "all":
        ops += core(c, full_layers, "")
    if st.window != "none":
        ops += core(sp.Min(c, W - 1), window_layers, "window")
    if st.mla and o.mla == "absorbed":
        ops.append(op("v_up", "matmul", "attention", 2 * T * h * r_kv * d_v,
                      w=h * r_kv * d_v * b_w, ar=T * h * r_kv * b_a, aw=T * h * d_v * b_a,
                      rows=T))
    ops += [
        op("out_proj", "matmul", "attention", 2 * T * h * d_out * d,
           w=(h * d_out * d + (d if st.out_bias else 0)) * b_w, ar=T * h * d_out * b_a,
           aw=T * d * b_a, rows=T),
        allreduce("allreduce_attn"),
    ]
    if st.norms_per_layer == 4:
        ops.append(norm_op("post_attn_norm"))
    ops += [residual("residual_1"), norm_op("norm_2")]
    # ---- MLP: dense layers, MoE layers
    if st.moe != "all":
        ops += mlp("mlp", f, T, dense_layers, "mlp")
        ops.append(allreduce("allreduce_mlp", dense_layers))
    if st.moe != "none":
        ops.append(op("router", "matmul", "moe", 2 * T * d * E,
                      w=(d * E + (E if st.router_bias else 0)) * b_w, ar=T * d * b_a,
                      aw=T * E * b_a, count=moe_layers, rows=T,
                      kernels=8 if o.moe_dispatch == "loop" else 1))
        group_tokens = B * q                     # tokens routed in the whole EP group
        touched = experts_touched(group_tokens, o.experts)
        if ep:   # whole experts, E/EP on each GPU: a 1/EP share of the assignments
            assign, width, experts_here = group_tokens * k_e / EP, f_e, touched / EP
        else:    # every expert sliced over the TP group
            assign, width, experts_here = T * k_e, f_e / TP, touched
        expert_ops = mlp("experts", width, assign, moe_layers, "moe", b_we,
                         rows=group_tokens * k_e / E)
        expert_ops.append(op("experts_combine", "elementwise", "moe", 2 * assign * d,
                             ar=assign * d * b_a + assign * b_a, aw=T * d * b_a,
                             count=moe_layers))
        loop = o.moe_dispatch == "loop"
        for x in expert_ops:   # weights: only the experts this batch touches
            weights = x.weight_read * experts_here if x.kind == "matmul" else x.weight_read
            parts = [x.flops, weights, x.act_read, x.act_write, x.kv_read, x.kv_write]
            count, kernels = x.count, x.kernels
            if loop:           # one call per touched expert, each with 1/U of the work
                parts = [p / experts_here for p in parts]
                count = x.count * experts_here
                kernels = 3 if x.name == "experts_combine" else kernels
            ops.append(Op(x.name, x.kind, x.block, count, *parts, x.comm_bytes, kernels,
                          x.rows, x.comm))
        if st.shared_experts:
            ops += mlp("shared", f_s / TP, T, moe_layers, "moe")
        if ep:   # each GPU sends its 1/TP share of the replica's token-expert rows and back
            ops += [op(name, "communication", "communication", comm=T / TP * k_e * d * b_a,
                       kernels=0, count=moe_layers, comm_kind="alltoall")
                    for name in ("moe_dispatch", "moe_combine")]
            if st.shared_experts:
                ops.append(allreduce("allreduce_shared", moe_layers))
        else:
            ops.append(allreduce("allreduce_moe", moe_layers))
    if st.norms_per_layer == 4:
        ops.append(norm_op("post_mlp_norm"))
    ops += [
        residual("residual_2"),
        norm_op("final_norm", count=1),
        op("lm_head", "matmul", "head", 2 * T_out * d * v,
           w=(d * v + (v if st.lm_head_bias else 0)) * b_w, ar=T_out * d * b_a,
           aw=T_out * v * b_a, count=1, rows=T_out),
    ]
    return tuple(ops)


def total(m: ModelSpec, quantity: str, options: Options = Options(),
          blocks: tuple[str, ...] | None = None, kinds: tuple[str, ...] | None = None) -> sp.Expr:
    """Σ over operators (× their count) of ``quantity`` ('flops', 'bytes', a byte part or
    'comm_bytes'), optionally only some blocks or kinds."""
    return total_expr(spec_flags(m), quantity, options, blocks, kinds)


@cache
def total_expr(flags: Structure, quantity: str, options: Options = Options(),
               blocks: tuple[str, ...] | None = None,
               kinds: tuple[str, ...] | None = None) -> sp.Expr:
    """:func:`total` keyed by the structure (cached)."""
    terms = [op.count * getattr(op, quantity) for op in _operators(flags, options)
             if (blocks is None or op.block in blocks) and (kinds is None or op.kind in kinds)]
    return sp.Add(*terms)


__all__ = ["ATTENTION", "CAUSAL", "COMM", "ELEMENTWISE_FLOPS", "EXPERTS", "LM_HEAD", "MLA",
           "MOE_DISPATCH", "Op", "Options", "PARTS", "Structure", "experts_touched",
           "layer_counts", "operators", "spec_flags", "total"]
