r"""Decoding: a whole generation and the closed forms around it — the decode steps summed over a
context (Σ of per-operator roofline maxima, exact), TTFT / TPOT / throughput (:class:`Generation`),
the improvement of speculative decoding priced by the roofline, the batch B_crit where decode
turns compute-bound and the symbolic sum of memory-bound decode steps. Every pass is one
:func:`costmodel.roofline.analyze`, every time priced by :func:`costmodel.pricing.price`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import sympy as sp

from costmodel.checks import (
    MAX_COUNT,
    MAX_GAMMA,
    check_element_bytes,
    check_int,
    check_nonneg_int,
    check_positive_int,
)
from costmodel.formula import Formula
from costmodel.ops import Options, spec_flags, total_expr
from costmodel.params import resolve_weight_bytes
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.pricing import Machine
from costmodel.roofline import Analysis, decode_step, default_act_bytes, prefill, verify_step
from costmodel.specs import HardwareSpec, ModelSpec
from costmodel.speculative import check_alpha, expected_tokens, speedup
from costmodel.symbols import (
    TP,
    B,
    beta,
    c,
    eta_c,
    eta_m,
    g,
    model_values,
    pi,
    q,
    s,
)
from costmodel.units import time_text


# ---------------------------------------------------------------- sums over a growing context
def sum_max_linear(a0, a1, b0, b1, lo, n):
    """Σ_{k=0}^{n-1} max(a0 + a1·x, b0 + b1·x) with x = lo + k, in closed form (arrays OK).

    The difference of two lines changes sign at most once, so the sum splits into two
    arithmetic series at the crossing."""
    a0, a1, b0, b1, lo, n = np.broadcast_arrays(*(np.asarray(v, dtype=float)
                                                  for v in (a0, a1, b0, b1, lo, n)))

    def series(x0, x1, start, count):  # Σ_{k=0}^{count-1} x0 + x1·(start + k)
        return count * x0 + x1 * (count * start + count * (count - 1) / 2)

    da0, da1 = a0 - b0, a1 - b1        # a − b = da0 + da1·x, changes sign at x = root
    first_a = (da0 + da1 * lo) >= 0     # which line is on top at the first term
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rel = np.where(da1 != 0, -da0 / np.where(da1 != 0, da1, 1), 0) - lo
    # j = number of leading terms that stay on the first term's side
    j = np.where(first_a & (da1 < 0), np.floor(rel) + 1,
                 np.where(~first_a & (da1 > 0), np.ceil(rel), n))
    j = np.clip(j, 0, n)
    head_a = series(a0, a1, lo, j)
    head_b = series(b0, b1, lo, j)
    tail_a = series(a0, a1, lo + j, n - j)
    tail_b = series(b0, b1, lo + j, n - j)
    return np.where(first_a, head_a + tail_b, head_b + tail_a)


def decode_steps_time(m, hw, context: int, steps: int, batch: int = 1, **kw) -> float:
    """Σ_{k=0}^{steps−1} of the decode step at context s + k, in closed form.

    Each operator's compute and memory time are linear in c between breakpoints — c = 0 (the
    cache is never empty again) and, with a sliding window W, c = W − 1 (the window is full:
    from there on the window layers' cost is constant) — so on each stretch the sum is an
    arithmetic series on each side of each operator's compute/memory crossing
    (:func:`sum_max_linear`): no loop over the steps."""
    check_nonneg_int("context", context)
    check_int("steps", steps, 0, MAX_COUNT)
    if steps == 0:
        return 0.0
    m = model_preset(m)
    d0 = decode_step(m, hw, context, batch, **kw)
    if context == 0:   # the first step reads an empty cache: price it alone
        return d0.time + decode_steps_time(m, hw, 1, steps - 1, batch, **kw)
    full = m.sliding_window - 1 if m.window_layers else 0
    if context < full < context + steps - 1:   # a kink inside: sum each stretch
        head = full - context
        return (decode_steps_time(m, hw, context, head, batch, **kw)
                + decode_steps_time(m, hw, full, steps - head, batch, **kw))
    if steps == 1:
        return d0.time
    d1 = decode_step(m, hw, context + 1, batch, **kw)
    p0, p1 = d0.priced, d1.priced
    n = steps
    per_op = sum_max_linear(p0.compute, p1.compute - p0.compute, p0.memory,
                            p1.memory - p0.memory, 0, n)
    return float(np.sum(per_op) + n * ((p0.comm + p0.overhead).sum() + d0.fixed))


@dataclass(frozen=True)
class Generation:
    """Serving one batch: prefill, then ``generate − 1`` decode steps over a growing context."""

    prefill: Analysis
    first_decode: Analysis
    ttft: float                   # seconds to the first token (the prefill pass)
    tpot_first: float             # seconds per output token at context = prompt
    decode_time: float            # seconds for all decode steps (closed-form sum)
    total_time: float             # ttft + decode_time
    tokens: int                   # batch · generate
    batch: int
    generate: int

    @property
    def tpot_mean(self) -> float:
        return self.decode_time / max(self.generate - 1, 1)

    @property
    def throughput(self) -> float:
        """Generated tokens per second over the whole request (all sequences)."""
        return self.tokens / self.total_time

    # ---- 80 % bands (None where the engine has none for the regime)
    @property
    def ttft_interval(self) -> tuple[float, float] | None:
        return self.prefill.time_interval

    @property
    def tpot_first_interval(self) -> tuple[float, float] | None:
        return self.first_decode.time_interval

    @property
    def decode_interval(self) -> tuple[float, float] | None:
        """The band of all decode steps: every step is of the first one's regime."""
        return self.first_decode.interval_of(self.decode_time)

    @property
    def tpot_mean_interval(self) -> tuple[float, float] | None:
        return self.first_decode.interval_of(self.tpot_mean)

    @property
    def total_interval(self) -> tuple[float, float] | None:
        """TTFT's band plus the decode steps' (their ends added: errors of one engine on one
        machine move together)."""
        pre, dec = self.ttft_interval, self.decode_interval
        if pre is None or dec is None:
            return None
        return pre[0] + dec[0], pre[1] + dec[1]

    def __repr__(self) -> str:
        return (f"Generation(B={self.batch}, {self.generate} tokens: TTFT "
                f"{time_text(self.ttft)}, TPOT {time_text(self.tpot_mean)} mean, total "
                f"{time_text(self.total_time)}, {self.throughput:,.1f} tokens/s)")


def generation(m, hw, context: int, generate: int, batch: int = 1, **kw) -> Generation:
    """TTFT, time per output token and total time for ``generate`` tokens after a
    ``context``-token prompt.

    The first token comes from the prefill; token k+1 (k = 1 … g−1) from a decode step with
    c = s + k − 1, summed in closed form (:func:`decode_steps_time`).
    """
    check_positive_int("context", context)
    check_positive_int("generate", generate)
    pre = prefill(m, hw, context, batch, **kw)
    d0 = decode_step(m, hw, context, batch, **kw)
    decode_time = decode_steps_time(m, hw, context, generate - 1, batch, **kw)
    return Generation(pre, d0, pre.time, d0.time, decode_time, pre.time + decode_time,
                      batch * generate, batch, generate)


# ---------------------------------------------------------------- speculative decoding
def speculative_speedup(target, draft, hw, alpha: float, gamma: int, context: int = 1024,
                        batch: int = 1, *, draft_lm_head: str = "last",
                        verify_lm_head: str = "last", overheads: dict | None = None,
                        draft_options: dict | None = None, **kw) -> dict:
    """Speculative improvement with the cost ratio derived from two models on one machine.

    Target-only: one target decode step per token, t_T(s). Speculative iteration: γ draft
    decode steps t_D(s + i), i = 0 … γ−1 (summed in closed form), plus one target verification
    pass with q = γ + 1 new tokens, t_V; it yields E(α, γ) tokens. Improvement
    = E · t_T / (Σ t_D + t_V).

    ``draft_lm_head`` / ``verify_lm_head`` choose logits for the last or all positions;
    ``overheads`` adds fixed seconds outside the passes: ``token`` (per target-only token),
    ``draft`` (per draft step), ``verify`` (per verification) and ``rejection`` (per rejected
    iteration, weighted by its probability 1 − α^γ). ``kw`` go to every pass of both models;
    ``draft_options`` replace some of them for the draft (e.g. ``{"ep": 1}`` when only the
    target is expert-parallel). Returns the times, c = t_D / t_T, and both the roofline and the
    c-only improvement.
    """
    check_alpha(alpha)
    check_int("gamma", gamma, 1, MAX_GAMMA)
    extra = {"token": 0.0, "draft": 0.0, "verify": 0.0, "rejection": 0.0}
    for key, value in (overheads or {}).items():
        if key not in extra:
            raise ValueError(f"overheads: unknown key {key!r} (choose from {', '.join(extra)})")
        extra[key] = float(value)
    t_target = decode_step(target, hw, context, batch, **kw).time + extra["token"]
    draft_kw = {**kw, **(draft_options or {}), "lm_head": draft_lm_head}
    t_draft0 = decode_step(draft, hw, context, batch, **draft_kw).time + extra["draft"]
    t_drafts = decode_steps_time(draft, hw, context, gamma, batch, **draft_kw) \
        + gamma * extra["draft"]
    t_verify = (verify_step(target, hw, gamma, context, batch, **{**kw, "lm_head":
                                                                   verify_lm_head}).time
                + extra["verify"] + (1 - alpha**gamma) * extra["rejection"])
    ratio = t_draft0 / t_target
    e = float(expected_tokens(alpha, gamma))
    return {"target_step_s": t_target, "draft_step_s": t_draft0, "drafts_s": t_drafts,
            "verify_s": t_verify, "cost_ratio": ratio, "expected_tokens": e,
            "speedup": e * t_target / (t_drafts + t_verify),
            "speedup_simple": float(speedup(alpha, gamma, ratio)),
            "verify_over_step": t_verify / t_target}


# ---------------------------------------------------------------- symbolic: B_crit, Σ decode
@cache
def _critical_batch_expr(flags: tuple, options: Options) -> sp.Expr:
    F = total_expr(flags, "flops", options).subs({q: 1, c: s, TP: 1})
    Q = total_expr(flags, "bytes", options).subs({q: 1, c: s, TP: 1})
    (solution,) = sp.solve(sp.Eq(F / (eta_c * pi), Q / (eta_m * beta)), B)
    return sp.simplify(solution)


def critical_batch_formula(m: ModelSpec | str, **options) -> Formula:
    """B_crit: the decode batch at which the pass's compute time equals its memory time,
    F(B)/(η_c·π) = Q(B)/(η_m·β) solved for B (TP = 1, context s). Both sides are linear in B;
    with weights dominating, B_crit ≈ (π/β)·(b_w/2) — the ridge point (scaling-book)."""
    m = model_preset(m)
    return Formula("critical_batch", _critical_batch_expr(spec_flags(m), Options(**options)),
                   "requests", "decode batch where compute time = memory time",
                   symbol=r"B_{\mathrm{crit}}")


def critical_batch(m: ModelSpec | str, hw: HardwareSpec | str, context: int,
                   weight_bytes: float | None = None, kv_bytes: float = 2,
                   act_bytes: float | None = None,
                   dtype: str | None = None, eta_c: float | None = None,
                   eta_m: float | None = None, **options) -> float:
    """Numeric B_crit (float; ``inf`` when decode never turns compute-bound, e.g. when each
    request's KV reads alone keep the intensity under the ridge point). The efficiencies default
    to the hardware's η_c and η_m."""
    m, hw = model_preset(m), hardware_preset(hw)
    check_positive_int("context", context)
    if m.moe:
        raise ValueError(f"model: {m.name} is a mixture of experts: the experts a decode batch "
                         "touches grow with B as 1 − (1 − k/E)^B, so B_crit has no closed form; "
                         "scan the batch with cm.sweep instead")
    weight_bytes = resolve_weight_bytes(m, weight_bytes).weight_bytes
    act_bytes = default_act_bytes(weight_bytes) if act_bytes is None else act_bytes
    for name, value in (("weight_bytes", weight_bytes), ("kv_bytes", kv_bytes),
                        ("act_bytes", act_bytes)):
        check_element_bytes(name, value)
    mach = Machine.of(hw, dtype, weight_bytes, eta_c=eta_c, eta_m=eta_m)
    f = critical_batch_formula(m, **options)
    values = dict(model_values(m), context=context, weight_bytes=weight_bytes,
                  kv_bytes=kv_bytes, act_bytes=act_bytes, eta_c=mach.efficiency.eta_c,
                  eta_m=mach.efficiency.eta_m, peak=mach.peak, bandwidth=hw.bandwidth)
    value = float(f(**{k: v for k, v in values.items() if k in f.free_names}))
    return value if value > 0 else float("inf")


def decode_time_formula(m: ModelSpec | str, **options) -> Formula:
    """Σ_{j=0}^{g−2} Q(q=1, c=s+j) / (η_m·β): all decode steps of a g-token generation after an
    s-token prompt when every step is memory-bound, summed in closed form (sympy)."""
    m = model_preset(m)
    j = sp.Symbol("j", nonnegative=True, integer=True)
    Q = total_expr(spec_flags(m), "bytes", Options(**options)).subs({q: 1, TP: 1, c: s + j})
    total_bytes = sp.factor_terms(sp.expand(sp.summation(sp.expand(Q), (j, 0, g - 2))))
    return Formula("decode_time", total_bytes / (eta_m * beta), "s",
                   "memory-bound time of all decode steps (closed form)",
                   symbol=r"T_{\mathrm{decode}}")


__all__ = ["Generation", "critical_batch", "critical_batch_formula", "decode_steps_time",
           "decode_time_formula", "generation", "speculative_speedup", "sum_max_linear"]
