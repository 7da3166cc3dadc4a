r"""Arithmetic intensity of attention (FLOPs per byte), as in E0294 Assignment 4 Problem 1(c)/(d).

One head of size d (= d_h), N keys attended (the course text's sequence length), standard
attention (the text's Algorithm 0: S = QKᵀ and P = softmax(S) are written to memory and read
back), b bytes per element. These are the ``qk_scores``, ``softmax`` and ``attn_v`` operators of
:mod:`costmodel.ops` with H = H_kv = 1, no mask, and the phases of :mod:`costmodel.workload`:
prefill at context N ((q, c) = (N, 0)) or decode at context N − 1 ((q, c) = (1, N − 1)) — not a
second copy:

    prefill  FLOPs = 4N²d + 5N²        bytes = (4Nd + 4N²)·b
             (QKᵀ 2N²d, softmax 5N², PV 2N²d; read Q, K, V, write O: 4Nd; write S, read S,
              write P, read P: 4N²)
    decode   FLOPs = 4Nd + 5N          bytes = (2Nd + 2d + 4N)·b
             (read K, V: 2Nd; read q, write o: 2d; S and P written and read: 4N)

Batched decode with B requests, each with its own K and V (``kv="per_request"``, what serving
does): FLOPs and bytes both scale by B, so the intensity does not grow with B (≈ 1 FLOP/byte at
b = 2). Only if all B queries share one K/V (``kv="shared"``: one prompt, B samples) is K/V read
once: bytes = (2Nd + B(2d + 4N))·b, and the intensity rises with B toward
(4Nd + 5N)/((2d + 4N)·b) (60.8 at N = 1024, d = 128, b = 2).
``attention="fused"`` (FlashAttention) drops the S/P traffic: prefill bytes 4Nd·b.

The E0294 text's own counts (``convention="e0294"``) differ: prefill bytes (4Nd + 3N² + Nd)·b
(one N² pass missing, an extra Nd), decode bytes ((2N + 1)d + 3N)·b (the output write and one N
pass missing), and its batched decode ((2N + 1)d + 3NB)·b silently shares K/V across the batch.
At N = 1024, d = 128, b = 2 it reports 71.31 (prefill) and 0.998 (decode); the counts above give
57.44 and 0.9933. Its written derivation also prints 542113792 / 3801088 ≈ 71.3, which omits the
÷ b = 2 (that ratio is 142.6).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp

from costmodel.checks import check_choice, check_element_bytes, check_ints, check_positive_int
from costmodel.conventions import e0294_attention
from costmodel.formula import Formula
from costmodel.ops import KV_SHARING, Options, Structure, _operators
from costmodel.symbols import TP, B, H, H_kv, N, b_a, b_e, b_kv, c, q
from costmodel.workload import substitute

PHASES = ("prefill", "decode")
CONVENTIONS = ("exact", "e0294")
_ANY_FLAGS = Structure(False, "gelu", "layernorm", False, False, False, False, "learned")
_ATTENTION_OPS = ("qk_scores", "softmax", "attn_v")
b = b_e


@cache
def attention_formulas(phase: str = "prefill", kv: str = "per_request",
                       attention: str = "standard", convention: str = "exact") -> dict:
    """{'flops', 'bytes', 'intensity'} as Formulas in N, d_h, B (batch) and b
    (bytes/element)."""
    check_choice("phase", phase, PHASES)
    check_choice("kv", kv, KV_SHARING)
    check_choice("convention", convention, CONVENTIONS)
    if convention == "e0294":
        flops, nbytes = e0294_attention(phase)
    else:
        ops = _operators(_ANY_FLAGS, Options(attention=attention, kv_sharing=kv, mask=False))
        sel = [op for op in ops if op.name in _ATTENTION_OPS]
        q_, c_ = substitute(phase, N if phase == "prefill" else N - 1)
        subs = {H: 1, H_kv: 1, TP: 1, b_a: b, b_kv: b, q: q_, c: c_}
        if phase == "prefill":
            subs[B] = 1
        flops = sp.expand(sp.Add(*(op.flops for op in sel)).subs(subs))
        nbytes = sp.factor_terms(sp.expand(sp.Add(*(op.bytes for op in sel)).subs(subs)))
    tag = f"{phase}, {kv} K/V, {attention}" + (", E0294 counts" if convention == "e0294" else "")
    return {
        "flops": Formula("attention_flops", flops, "FLOPs", f"attention FLOPs ({tag})",
                         symbol="F"),
        "bytes": Formula("attention_bytes", nbytes, "bytes", f"attention bytes ({tag})",
                         symbol="Q"),
        "intensity": Formula("attention_intensity", flops / nbytes, "FLOPs/byte",
                             f"attention arithmetic intensity ({tag})", symbol=r"\mathrm{AI}"),
    }


def attention_counts(n, d, phase: str = "prefill", batch=1, bytes_per_element: float = 2,
                     kv: str = "per_request", attention: str = "standard",
                     convention: str = "exact") -> dict:
    """FLOPs, bytes and intensity of attention for ``n`` keys and head size ``d`` (numbers or
    numpy arrays: they broadcast; computed in float64, exact below 2**53)."""
    checked = []
    for name, value in (("n", n), ("d", d), ("batch", batch)):
        if np.ndim(value) == 0:
            checked.append(float(check_positive_int(name, value)))
        else:
            checked.append(check_ints(name, value).reshape(np.shape(value)))
    n, d, batch = checked
    check_element_bytes("bytes_per_element", bytes_per_element)
    values = {"n": n, "head_dim": d, "batch": batch, "bytes_per_element": bytes_per_element}
    return {key: formula(**{k: v for k, v in values.items() if k in formula.free_names})
            for key, formula in attention_formulas(phase, kv, attention, convention).items()}


def attention_intensity(n, d, phase: str = "prefill", batch=1, bytes_per_element: float = 2,
                        kv: str = "per_request", attention: str = "standard",
                        convention: str = "exact"):
    """FLOPs per byte of attention for sequence length ``n`` and head size ``d``.

    >>> round(attention_intensity(1024, 128, "prefill", convention="e0294"), 3)
    71.31
    """
    return attention_counts(n, d, phase, batch, bytes_per_element, kv, attention,
                            convention)["intensity"]
