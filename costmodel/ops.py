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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from costmodel.checks import check_bool, check_choice
from costmodel.specs import ModelSpec
from costmodel.symbols import TP, B, H, H_kv, L, V, b_a, b_kv, b_w, c, d, d_ff, d_h, q

ATTENTION = ("standard", "fused", "eager")
KV_UPDATE = ("inplace", "concat")
CAUSAL = ("full", "half")
LM_HEAD = ("last", "all")
KV_SHARING = ("per_request", "shared")
PARTS = ("weight_read", "act_read", "act_write", "kv_read", "kv_write")
ELEMENTWISE_FLOPS = {"softmax": 5, "layernorm": 8, "rmsnorm": 4, "gelu": 8, "silu": 4, "relu": 1,
                     "rotary": 3, "add": 1}


@dataclass(frozen=True)
class Options:
    """Structural choices: which terms exist (the sizes stay symbolic)."""

    attention: str = "standard"       # "standard" (S, P in memory) | "fused" (FlashAttention)
    #                                   | "eager" (standard as PyTorch eager code runs it)
    kv_update: str = "inplace"        # cache written in place (static) | rebuilt by concat
    causal: str = "full"              # count all q×K scores | only the causal half
    lm_head: str = "last"             # logits for the last position only (nanoGPT) | all (HF)
    fused_qkv: bool = True            # one QKV matmul (reads x once) | three (reads x 3 times)
    kv_cache: bool = True             # write K, V to a cache and read past K, V from it
    kv_sharing: str = "per_request"   # each sequence has its own K/V | one K/V shared by all B
    mask: bool = True                 # standard attention reads a q×K causal mask

    def __post_init__(self) -> None:
        check_choice("attention", self.attention, ATTENTION)
        check_choice("causal", self.causal, CAUSAL)
        check_choice("lm_head", self.lm_head, LM_HEAD)
        check_choice("kv_sharing", self.kv_sharing, KV_SHARING)
        check_choice("kv_update", self.kv_update, KV_UPDATE)
        for name in ("fused_qkv", "kv_cache", "mask"):
            check_bool(name, getattr(self, name))


@dataclass(frozen=True)
class Op:
    """One operator: FLOPs, the five byte parts, communication bytes, kernels per occurrence,
    and for a weight matmul its rows M (of M×K·K×N: the tokens it multiplies)."""

    name: str
    kind: str            # matmul | attention | elementwise | memory | communication
    block: str           # embedding | attention | mlp | norm | residual | head | communication
    per_layer: bool      # occurs once per layer (else once per pass)
    flops: sp.Expr
    weight_read: sp.Expr
    act_read: sp.Expr
    act_write: sp.Expr
    kv_read: sp.Expr
    kv_write: sp.Expr
    comm_bytes: sp.Expr = sp.Integer(0)
    kernels: int = 1
    rows: sp.Expr = sp.Integer(0)

    @property
    def bytes(self) -> sp.Expr:
        return self.weight_read + self.act_read + self.act_write + self.kv_read + self.kv_write

    @property
    def count(self) -> sp.Expr:
        return L if self.per_layer else sp.Integer(1)


def spec_flags(m: ModelSpec) -> tuple:
    """The parts of a ModelSpec that change the structure of the expressions."""
    return (m.gated_mlp, m.activation, m.norm, m.qkv_bias, m.out_bias, m.mlp_bias,
            m.lm_head_bias, m.positions)


def operators(m: ModelSpec, options: Options = Options()) -> tuple[Op, ...]:
    """The operators of ``m``'s forward pass, as sympy expressions in (B, q, c, TP, sizes)."""
    return _operators(spec_flags(m), options)


@cache
def _operators(flags: tuple, o: Options) -> tuple[Op, ...]:
    gated, activation, norm, qkv_bias, out_bias, mlp_bias, lm_head_bias, positions = flags
    zero = sp.Integer(0)
    h, h_kv, f, v = H / TP, sp.ceiling(H_kv / TP), d_ff / TP, V / TP
    T = B * q                                    # new tokens in the pass
    K = c + q                                    # keys each new token may attend to
    A = q * K if o.causal == "full" else q * c + q * (q + 1) / 2   # score pairs per (seq, head)
    T_out = T if o.lm_head == "all" else B       # positions that get logits
    n_norm = 2 if norm == "layernorm" else 1
    e = ELEMENTWISE_FLOPS
    standard = o.attention in ("standard", "eager")
    eager = o.attention == "eager"
    kv_seqs = B if o.kv_sharing == "per_request" else sp.Integer(1)
    # K (or V) of the attended tokens: read from the cache (b_kv bytes, the kv_read column) or,
    # without a cache, the activations just computed (b_a bytes, the act_read column).
    k_elems = kv_seqs * K * h_kv * d_h
    k_cache, k_act = (k_elems * b_kv, zero) if o.kv_cache else (zero, k_elems * b_a)

    def op(name, kind, block, flops=zero, w=zero, ar=zero, aw=zero, kr=zero, kw=zero,
           comm=zero, per_layer=True, kernels=1, rows=zero):
        return Op(name, kind, block, per_layer, sp.sympify(flops), sp.sympify(w),
                  sp.sympify(ar), sp.sympify(aw), sp.sympify(kr), sp.sympify(kw),
                  sp.sympify(comm), kernels, sp.sympify(rows))

    def norm_op(name, per_layer=True):
        return op(name, "elementwise", "norm", e[norm] * T * d, w=n_norm * d * b_w,
                  ar=T * d * b_a, aw=T * d * b_a, per_layer=per_layer)

    def allreduce(name):  # ring all-reduce of the T×d activations when TP > 1
        return op(name, "communication", "communication", comm=T * d * b_a, kernels=0)

    def residual(name):
        return op(name, "elementwise", "residual", e["add"] * T * d, ar=2 * T * d * b_a,
                  aw=T * d * b_a)

    qkv_cols = (h + 2 * h_kv) * d_h
    ops = [
        op("embedding", "memory", "embedding",
           flops=T * d if positions == "learned" else zero,
           w=T * d * b_w * (2 if positions == "learned" else 1), aw=T * d * b_a,
           per_layer=False),
        norm_op("norm_1"),
        op("qkv_proj", "matmul", "attention", 2 * T * d * qkv_cols,
           w=(d * qkv_cols + (qkv_cols if qkv_bias else 0)) * b_w,
           ar=T * d * b_a * (1 if o.fused_qkv else 3), aw=T * qkv_cols * b_a,
           kernels=1 if o.fused_qkv else 3, rows=T),
    ]
    if positions == "rotary":
        ops.append(op("rotary", "elementwise", "attention", e["rotary"] * T * (h + h_kv) * d_h,
                      ar=T * (h + h_kv) * d_h * b_a, aw=T * (h + h_kv) * d_h * b_a))
    if o.kv_cache and o.kv_update == "inplace":
        ops.append(op("kv_write", "memory", "attention", ar=2 * T * h_kv * d_h * b_a,
                      kw=2 * T * h_kv * d_h * b_kv))
    elif o.kv_cache:  # torch.cat rebuilds K and V: read the c cached rows, write all c + q
        # (an empty cache just keeps the new K, V: nothing is copied when c = 0)
        has_past = sp.Heaviside(c - sp.Rational(1, 2))
        ops.append(op("kv_write", "memory", "attention",
                      ar=has_past * 2 * T * h_kv * d_h * b_a,
                      kr=has_past * 2 * B * c * h_kv * d_h * b_kv,
                      kw=has_past * 2 * B * K * h_kv * d_h * b_kv, kernels=2))
    if eager:
        # PyTorch eager attention (nanoGPT/minGPT): K and V are copied into a head-major,
        # h-head layout for the batched matmuls — always for a concatenated or absent cache,
        # for an in-place head-major cache only with GQA (repeat_interleave).
        gqa = sp.Heaviside(H - H_kv - sp.Rational(1, 2))
        copy = 1 if (o.kv_update == "concat" or not o.kv_cache) else gqa
        src = b_kv if o.kv_cache else b_a
        ops.append(op("kv_layout", "memory", "attention",
                      kr=copy * 2 * kv_seqs * K * h * d_h * src if o.kv_cache else zero,
                      ar=zero if o.kv_cache else copy * 2 * kv_seqs * K * h * d_h * src,
                      aw=copy * 2 * kv_seqs * K * h * d_h * src, kernels=2))
    score_bytes = B * h * q * K * b_a if standard else zero
    ops += [
        op("qk_scores", "attention", "attention", 2 * B * h * A * d_h,
           ar=T * h * d_h * b_a + k_act, kr=k_cache, aw=score_bytes),
    ]
    if eager:  # the scale and (when q > 1) the mask are separate passes over S
        more_than_one = sp.Heaviside(q - sp.Rational(3, 2))
        ops += [op("scale", "elementwise", "attention", B * h * q * K,
                   ar=B * h * q * K * b_a, aw=B * h * q * K * b_a),
                op("mask_fill", "elementwise", "attention", zero,
                   ar=more_than_one * B * h * q * K * b_a,
                   aw=more_than_one * B * h * q * K * b_a)]
    ops += [
        op("softmax", "elementwise", "attention", e["softmax"] * B * h * A,
           ar=score_bytes + (q * K * b_a if standard and o.mask else zero), aw=score_bytes,
           kernels=1 if standard else 0),
        op("attn_v", "attention", "attention", 2 * B * h * A * d_h,
           ar=score_bytes + k_act, kr=k_cache, aw=T * h * d_h * b_a,
           kernels=1 if standard else 0),
    ]
    if eager:  # y.transpose(1, 2).contiguous(): a copy of the attention output when q > 1
        several = sp.Heaviside(q - sp.Rational(3, 2))  # (for q = 1 the transpose is a view)
        ops.append(op("out_copy", "memory", "attention", ar=several * T * h * d_h * b_a,
                      aw=several * T * h * d_h * b_a))
    ops += [
        op("out_proj", "matmul", "attention", 2 * T * h * d_h * d,
           w=(h * d_h * d + (d if out_bias else 0)) * b_w, ar=T * h * d_h * b_a,
           aw=T * d * b_a, rows=T),
        allreduce("allreduce_attn"),
        residual("residual_1"),
        norm_op("norm_2"),
        op("mlp_up", "matmul", "mlp", 2 * T * d * f, w=(d * f + (f if mlp_bias else 0)) * b_w,
           ar=T * d * b_a, aw=T * f * b_a, rows=T),
    ]
    if gated:
        ops.append(op("mlp_gate", "matmul", "mlp", 2 * T * d * f,
                      w=(d * f + (f if mlp_bias else 0)) * b_w, ar=T * d * b_a, aw=T * f * b_a,
                      rows=T))
    ops += [
        op("activation", "elementwise", "mlp", (e[activation] + (1 if gated else 0)) * T * f,
           ar=T * f * b_a * (2 if gated else 1), aw=T * f * b_a),
        op("mlp_down", "matmul", "mlp", 2 * T * f * d, w=(f * d + (d if mlp_bias else 0)) * b_w,
           ar=T * f * b_a, aw=T * d * b_a, rows=T),
        allreduce("allreduce_mlp"),
        residual("residual_2"),
        norm_op("final_norm", per_layer=False),
        op("lm_head", "matmul", "head", 2 * T_out * d * v,
           w=(d * v + (v if lm_head_bias else 0)) * b_w, ar=T_out * d * b_a,
           aw=T_out * v * b_a, per_layer=False, rows=T_out),
    ]
    return tuple(ops)


def total(m: ModelSpec, quantity: str, options: Options = Options(),
          blocks: tuple[str, ...] | None = None, kinds: tuple[str, ...] | None = None) -> sp.Expr:
    """Σ over operators (× L for per-layer ones) of ``quantity`` ('flops', 'bytes', a byte part
    or 'comm_bytes'), optionally only some blocks or kinds."""
    return total_expr(spec_flags(m), quantity, options, blocks, kinds)


@cache
def total_expr(flags: tuple, quantity: str, options: Options = Options(),
               blocks: tuple[str, ...] | None = None,
               kinds: tuple[str, ...] | None = None) -> sp.Expr:
    """:func:`total` keyed by the structure flags (cached)."""
    terms = [op.count * getattr(op, quantity) for op in _operators(flags, options)
             if (blocks is None or op.block in blocks) and (kinds is None or op.kind in kinds)]
    return sp.Add(*terms)


__all__ = ["ATTENTION", "CAUSAL", "ELEMENTWISE_FLOPS", "LM_HEAD", "Op", "Options", "PARTS",
           "operators", "spec_flags", "total"]
