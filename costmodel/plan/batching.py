r"""Continuous batching with chunked prefill, analytically: the steady state of an engine that
serves requests arriving at a rate λ, each a prompt of s tokens and n output tokens.

The scheduling policy (vLLM V1's, FCFS): every step runs one token of each of the D running
requests that are decoding, then gives the rest of the step's token budget, C = K − D
(K = max_num_batched_tokens), to prompts in arrival order — whole or in chunks — while fewer
than N (max_num_seqs) requests run. A request's first token comes at the end of the step that
finishes its prompt; the next n − 1 come one per step. Every step is priced by the roofline as
one mixed step (:func:`costmodel.grid.steps`, the pricing of :func:`costmodel.analyze` with
``groups``): D decode rows at the mean decode context s + n/2 beside P prompt tokens.

The analytic model (mean values; the queueing approximation chosen so that it follows a
step-by-step simulation of the policy, see tests/test_plan_batching.py):

    D     = λ · (n − 1) · t̄                  Little's law on the decoding requests
    t0    = t(D, 0)                          a step with no prompt
    m     = λ · t̄ / p                        prompts in a step that has one
    T1    = t(D, min(m · s, C))              a step with prompts
    p     = q0 / (q0 + 1 − q1)               share of steps with prompts: a two-state chain,
            q = 1 − e^(−λ·t) (Poisson arrivals) or min(1, λ·t) (evenly spaced)
    t̄     = (1 − p) · t0 + p · T1             solved as a damped fixed point

    TPOT  = t̄                                 a decoding request sees every step
    TTFT  = R + time to finish its prompt     R: the residual of the step it arrives in,
            E[T²] / (2 t̄) for Poisson arrivals (they see time averages), t0/2 or T1/2 for evenly
            spaced ones; then the prompts of the same wait (1 + λ·E[T²]/t̄ of them, Poisson)
            go through steps of at most C tokens: ⌈(s + P)/(2C)⌉ steps for the tagged one.

The rate at which the engine saturates is the fluid limit where every step is full: either the
budget binds (D* = K(n−1)/(s+n−1) decodes beside P* = K − D* prompt tokens) or the
concurrency does (D* = N(n−1)/n, P* = N·s/n); λ_sat = P* / (s · t(D*, P*)). Validity: within
10 % of the simulation for evenly spaced arrivals from 10 % to 95 % of λ_sat, prompts whole or
chunked; for Poisson arrivals within 10 % up to 80 % when a prompt fits one step (K ≥ s + D) —
beyond, bursts swell the decode population and queue prompts behind each other, and the model
is optimistic (the planner keeps to the validated range for this reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from costmodel.checks import check_choice, check_nonneg_number, check_positive_number

ARRIVALS = ("poisson", "uniform")
#: Damped fixed-point iterations of the analytic model and their damping.
ITERATIONS, DAMPING = 60, 0.6

StepFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def decode_context(input_len, output_len):
    """Mean tokens in the cache of a decoding request: s + n/2."""
    return np.asarray(input_len, dtype=float) + np.asarray(output_len, dtype=float) / 2


def saturation(step: StepFn, input_len, output_len, max_batched_tokens, max_concurrency):
    """(λ_sat, D*, P*, t*): the fluid limit where every step is full (module docstring)."""
    s = np.asarray(input_len, dtype=float)
    n = np.asarray(output_len, dtype=float)
    K = np.asarray(max_batched_tokens, dtype=float)
    N = np.asarray(max_concurrency, dtype=float)
    d_budget = K * (n - 1) / (s + n - 1)
    p_budget = K - d_budget
    concurrency = d_budget + np.maximum(p_budget / s, 1) > N
    D = np.where(concurrency, N * (n - 1) / n, d_budget)
    P = np.where(concurrency, N * s / n, p_budget)
    t = step(D, P)
    return P / (s * t), D, P, t


def _prompt_time(step: StepFn, D, P_next, s, C):
    """Seconds from the start of the first step a prompt joins to the end of the step that
    finishes it: the P_next prompt tokens of its wait go through steps of at most C, the tagged
    one halfway through them on average."""
    work = (s + P_next) / 2
    k = np.maximum(np.ceil(work / C - 1e-9), 1)
    last = np.clip(P_next - (k - 1) * C, 1, C)
    return (k - 1) * step(D, C) + step(D, last)


def steady_state(step: StepFn, rate, input_len, output_len, max_batched_tokens,
                 max_concurrency, arrivals: str = "poisson", input_spread=0.0,
                 start: tuple | None = None, iterations: int = ITERATIONS) -> dict:
    """The analytic steady state (module docstring), elementwise over arrays of candidates.

    ``step(D, P)`` prices a step of D decoding requests and P prompt tokens (arrays). Returns
    arrays: ttft, tpot (s), step (t̄), t0, t1, decode_batch (D), prompt_tokens (P in a step
    with prompts), prefill_share (p), saturation_rate, utilization (λ/λ_sat; ≥ 1: the queue
    grows without bound and ttft is inf), and output/input tokens per second. ``start``
    = (t̄, p) resumes the fixed point from an earlier solution (``iterations`` more steps).
    """
    check_choice("arrivals", arrivals, ARRIVALS)
    lam = np.asarray(rate, dtype=float)
    s = np.asarray(input_len, dtype=float)
    n = np.asarray(output_len, dtype=float)
    K = np.asarray(max_batched_tokens, dtype=float)
    N = np.asarray(max_concurrency, dtype=float)
    sd = np.asarray(input_spread, dtype=float)
    shape = np.broadcast_shapes(lam.shape, s.shape, n.shape, K.shape, N.shape, sd.shape)
    lam, s, n, K, N, sd = (np.broadcast_to(x, shape).astype(float)
                           for x in (lam, s, n, K, N, sd))
    lam_sat, *_ = saturation(step, s, n, K, N)
    util = lam / lam_sat
    zero = np.zeros(shape)
    if start is None:
        t_bar = step(zero, zero)
        p = np.minimum(lam * t_bar, 0.5)
    else:
        t_bar, p = (np.broadcast_to(np.asarray(x, dtype=float), shape) for x in start)
    poisson = arrivals == "poisson"
    D = zero
    for _ in range(max(int(iterations), 1)):
        D = np.minimum(lam * (n - 1) * t_bar, np.maximum(N - 1, 0))
        C = np.maximum(K - D, 1)
        t0 = step(D, zero)
        m = np.maximum(lam * t_bar / np.maximum(p, 1e-12), 1e-12)
        P1 = np.minimum(m * s, C)
        t1 = step(D, P1)
        if poisson:
            q0, q1 = -np.expm1(-lam * t0), -np.expm1(-lam * t1)
        else:
            q0, q1 = np.minimum(1, lam * t0), np.minimum(1, lam * t1)
        p_new = q0 / np.maximum(q0 + 1 - q1, 1e-12)
        t_new = (1 - p_new) * t0 + p_new * t1
        p = (1 - DAMPING) * p + DAMPING * p_new
        t_bar = (1 - DAMPING) * t_bar + DAMPING * t_new
    # the variance of a step with prompts: how many (a zero-truncated Poisson of mean m) and
    # how long they are (spread σ_s): Var(P1) = s²·Var(j | j ≥ 1) + m·σ_s²
    slope = (step(D, np.minimum(P1 + s, C)) - t1) / np.maximum(np.minimum(P1 + s, C) - P1, 1)
    mu = np.maximum(m - 1, 0)
    for _ in range(40):
        mu = m * -np.expm1(-mu)
    with np.errstate(invalid="ignore", divide="ignore"):
        var_j = np.where(mu > 1e-9, mu * (1 + mu) / -np.expm1(-mu) - m**2, 0.0)
    var_t1 = slope**2 * (s**2 * np.maximum(var_j, 0) + m * sd**2)
    second = (1 - p) * t0**2 + p * (t1**2 + var_t1)
    if poisson:
        residual = second / (2 * t_bar)
        prompts = 1 + lam * second / t_bar
    else:
        phi = np.clip(lam * (t0 / 2 + t1) - 1, 0, 1)
        residual = (1 - phi) * t0 / 2 + phi * t1 / 2
        prompts = np.maximum(1, lam * (phi * t1 + (1 - phi) * t0))
    ttft = residual + _prompt_time(step, D, prompts * s, s, C)
    unstable = util >= 1
    return {"ttft": np.where(unstable, np.inf, ttft), "tpot": np.where(unstable, np.inf, t_bar),
            "step": t_bar, "t0": t0, "t1": t1, "decode_batch": D, "prompt_tokens": P1,
            "prefill_share": p, "saturation_rate": lam_sat, "utilization": util,
            "output_tokens_per_s": lam * n, "input_tokens_per_s": lam * s}


@dataclass(frozen=True)
class Traffic:
    """What arrives: a rate (requests/s), prompt and output lengths (mean, spread as a
    standard deviation in tokens) and the arrival process."""

    rate: float
    input_len: float
    output_len: float
    input_spread: float = 0.0
    output_spread: float = 0.0
    arrivals: str = "poisson"

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "rate", check_positive_number("rate", self.rate, 1e9))
        put(self, "input_len", check_positive_number("input_len", self.input_len, 2**24))
        out = check_positive_number("output_len", self.output_len, 2**24)
        if out < 1:
            raise ValueError(f"output_len: at least 1 token, got {out:g}")
        put(self, "output_len", out)
        for name in ("input_spread", "output_spread"):
            put(self, name, check_nonneg_number(name, getattr(self, name), 2**24))
        if self.input_spread > self.input_len:
            raise ValueError(f"input_spread: at most input_len ({self.input_len:g} tokens), "
                             f"got {self.input_spread:g}")
        if self.output_spread > self.output_len:
            raise ValueError(f"output_spread: at most output_len ({self.output_len:g} "
                             f"tokens), got {self.output_spread:g}")
        check_choice("arrivals", self.arrivals, ARRIVALS)

    @property
    def request_len(self) -> int:
        """Tokens one request holds at its end (prompt + output), rounded up."""
        return int(np.ceil(self.input_len + self.output_len))


__all__ = ["ARRIVALS", "Traffic", "decode_context", "saturation", "steady_state"]
