r"""The course texts' simplifications, as explicit inputs — never special-cased numbers.

E0294 Assignment 4, Problem 1 counts Llama3-8B's parameters as

    P_E0294 = V·d  +  L·(2·d·d_ff + d_ff + d)  +  L·d·(d + 2·H_kv·d_h)  +  V·d

which differs from the model in four ways:

1. the MLP has **two** matrices, but Llama's SwiGLU MLP has three (gate, up, down): −L·d·d_ff;
2. the attention counts Q, K, V but **not the output projection** W_O: −L·d²;
3. it adds MLP biases (d_ff + d per layer) that Llama does not have: +L·(d_ff + d);
4. it leaves out the 2L + 1 RMSNorm weight vectors: −(2L + 1)·d.

For Llama3-8B that is 5,614,665,728 instead of the exact 8,030,261,248 (Hugging Face's own
count), i.e. 10.458 GiB of 16-bit weights instead of 14.96 GiB. The text also reads "80 GB" as
80 GiB (an A100-80GB does report 81920 MiB = 80 GiB, so that reading is the right one) and
divides memory as real numbers before flooring, as :func:`costmodel.max_batch_size` does.
Reproduce its table with ``params=e0294_param_count(m)`` and ``hw=80 * 2**30``.
"""

from __future__ import annotations

import sympy as sp

from costmodel.formula import Formula
from costmodel.presets import model as model_preset
from costmodel.specs import ModelSpec
from costmodel.symbols import B, H_kv, L, N, V, b_e, d, d_ff, d_h, model_values
from costmodel.units import GIB

E0294_PARAMS = Formula(
    "e0294_param_count",
    V * d + L * (2 * d * d_ff + d_ff + d) + L * d * (d + 2 * H_kv * d_h) + V * d,
    "parameters", "E0294 Assignment 4's parameter formula (no W_O, no gate, MLP biases, no norms)",
    symbol=r"P_{\mathrm{E0294}}")

#: The memory the E0294 text assumes: "80 GB" read as 80 GiB.
E0294_GPU_MEMORY = 80 * GIB


def e0294_param_count(m: ModelSpec | str) -> int:
    """Parameters as E0294 Assignment 4 counts them (see the module docstring)."""
    m = model_preset(m)
    return int(E0294_PARAMS.exact(**model_values(m)))


def e0294_attention(phase: str) -> tuple[sp.Expr, sp.Expr]:
    """(FLOPs, bytes) of attention as the E0294 text counts them (Problem 1(c), its code):

    prefill  4N²d + 5N²   and (4Nd + 3N² + Nd)·b
    decode   B(4Nd + 5N)  and ((2N + 1)d + 3NB)·b   (B = 1: the single-request formula)

    with d the head size (d_h). See :mod:`costmodel.intensity` for the exact counts and why they
    differ.
    """
    if phase == "prefill":
        return 4 * N**2 * d_h + 5 * N**2, (4 * N * d_h + 3 * N**2 + N * d_h) * b_e
    return B * (4 * N * d_h + 5 * N), ((2 * N + 1) * d_h + 3 * N * B) * b_e
