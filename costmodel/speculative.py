r"""Speculative decoding, the formulas: expected tokens, walltime improvement, the best γ and the
acceptance rate (the cost ratio priced through the roofline is
:func:`costmodel.decoding.speculative_speedup`).

A draft model proposes γ tokens; the target verifies them in one pass and keeps the longest
accepted prefix plus one token of its own (the correction at the first rejection, or a bonus
token when all γ are accepted). With each draft token accepted independently with probability α
(Leviathan et al. 2023; Chen et al. 2023):

    E[tokens per iteration] = (1 − α^(γ+1)) / (1 − α)
    improvement             = (1 − α^(γ+1)) / ((1 − α)(γ c + 1))

where c = T_draft / T_target is the cost ratio of one draft step to one target step and the
verification pass is priced as one target step. :func:`costmodel.decoding.speculative_speedup`
drops that approximation: it prices γ draft decode steps and one target pass with q = γ + 1 new
tokens through the roofline, and compares with one target decode step per token.

The CS229S Project 1 algorithm verifies γ prefixes and keeps the target's prediction at the
first mismatch, but has no bonus token (its last prefix ends at x_{k+γ−1}), so
E = (1 − α^γ)/(1 − α) and improvement = (1 − α^γ)/((1 − α)(γc + 1)) (``bonus=False``).
One peer (GenZ) clips the expected tokens to γ; that also loses the bonus token.

Greedy vs sampling. With greedy decoding a draft token is accepted iff it equals the target's
argmax, so α is the two models' top-1 agreement (CS229S's "75% of the time"). With sampling at
temperature T > 0 the rule is: accept x ~ q with probability min(1, p(x)/q(x)), else resample
from norm(max(0, p − q)); this returns exact samples of p, and the acceptance probability per
token is α = Σ_x min(p(x), q(x)) = 1 − TV(p, q) (:func:`acceptance_rate`), averaged over
contexts. Raising T flattens both distributions: the top-1 agreement no longer matters, and α is
set by how much the two distributions overlap — typically lower than the greedy agreement at
moderate T (the draft's mistakes now cost probability mass), rising again as T → ∞ makes both
near-uniform. A lower α lowers the optimal γ.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import sympy as sp

from costmodel.checks import MAX_COUNT, check_int
from costmodel.formula import Formula
from costmodel.lazy import deferred
from costmodel.symbols import alpha, c_ratio, gamma

pd = deferred("pandas")

EXPECTED_TOKENS = Formula("expected_tokens", (1 - alpha ** (gamma + 1)) / (1 - alpha), "tokens",
                          "expected tokens per speculative iteration",
                          symbol=r"\mathbb{E}[\mathrm{tokens}]")
SPEEDUP = Formula("speedup", EXPECTED_TOKENS.expr / (gamma * c_ratio + 1), "×",
                  "walltime improvement over target-only decoding", symbol="S")
EXPECTED_TOKENS_NO_BONUS = Formula("expected_tokens_no_bonus", (1 - alpha**gamma) / (1 - alpha),
                                   "tokens", "expected tokens per iteration without a bonus "
                                   "token (CS229S)", symbol=r"\mathbb{E}'[\mathrm{tokens}]")
SPEEDUP_NO_BONUS = Formula("speedup_no_bonus", EXPECTED_TOKENS_NO_BONUS.expr /
                           (gamma * c_ratio + 1), "×", "improvement without a bonus token",
                           symbol="S'")


def optimal_gamma_condition() -> sp.Eq:
    """The stationarity condition d(improvement)/dγ = 0 (no elementary closed form: it needs
    Lambert W) — for display; :func:`optimal_gamma` finds the root numerically."""
    return sp.Eq(sp.diff(SPEEDUP.expr, gamma), 0)


def check_alpha(value) -> None:
    """α must lie in [0, 1) (numbers or arrays)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"alpha: the acceptance rate must lie in [0, 1), got {value!r}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"alpha: the acceptance rate must lie in [0, 1), got {value!r}") \
            from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr >= 1):
        raise ValueError(f"alpha: the acceptance rate must lie in [0, 1), got {value!r}")


def check_gamma(value) -> None:
    """γ must be an integer >= 1 (numbers or integer arrays)."""
    if np.ndim(value) == 0:
        check_int("gamma", value, 1, MAX_COUNT)
        if not isinstance(value, numbers.Integral):
            raise ValueError(f"gamma: must be an integer >= 1, got {value!r}")
        return
    arr = np.asarray(value)
    if arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1) \
            or np.any(arr > MAX_COUNT):
        raise ValueError("gamma: every value must be an integer >= 1 (at most 2**53)")


def check_cost(value) -> None:
    """The cost ratio must be a finite number >= 0 (numbers or arrays)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"cost_ratio: must be a number >= 0, got {value!r}")
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"cost_ratio: must be a number >= 0, got {value!r}") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"cost_ratio: must be a number >= 0, got {value!r}")


def expected_tokens(alpha: float, gamma: int, bonus: bool = True):
    """(1 − α^(γ+1)) / (1 − α): tokens per iteration (``bonus=False``: (1 − α^γ)/(1 − α))."""
    check_alpha(alpha)
    check_gamma(gamma)
    f = EXPECTED_TOKENS if bonus else EXPECTED_TOKENS_NO_BONUS
    return f(alpha=alpha, gamma=gamma)


def speedup(alpha: float, gamma: int, cost_ratio: float, bonus: bool = True):
    """Walltime improvement (1 − α^(γ+1)) / ((1 − α)(γc + 1)); at α = 0 it is 1/(γc + 1)."""
    check_alpha(alpha)
    check_gamma(gamma)
    check_cost(cost_ratio)
    f = SPEEDUP if bonus else SPEEDUP_NO_BONUS
    return f(alpha=alpha, gamma=gamma, cost_ratio=cost_ratio)


def _real_optimum(a: float, c: float, bonus: bool) -> float:
    """The real γ ≥ 0 where the improvement peaks. With N(γ) = 1 − α^(γ+1) (or 1 − α^γ), concave
    and increasing, over the affine γc + 1 the improvement is unimodal; its derivative has the
    sign of g(γ) = −ln α · α^(γ+k) · (γc + 1) − c · (1 − α^(γ+k)) (k = 1, or 0 without the
    bonus), which decreases through zero once: bisect for the root."""
    k = 1 if bonus else 0
    la = math.log(a)

    def g(x: float) -> float:
        p = a ** (x + k)
        return -la * p * (x * c + 1) - c * (1 - p)

    lo, hi = 0.0, 1.0
    if g(lo) <= 0:
        return 0.0
    while g(hi) > 0:
        lo, hi = hi, 2 * hi
    for _ in range(200):
        mid = (lo + hi) / 2
        if g(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * max(1.0, hi):
            break
    return (lo + hi) / 2


def optimal_gamma(alpha: float, cost_ratio: float, max_gamma: int | None = None,
                  bonus: bool = True) -> int:
    """The integer γ >= 1 with the largest improvement (the smallest on ties), found from the
    real optimum (:func:`_real_optimum`; no search limit), capped at ``max_gamma`` when given.
    A cost ratio of 0 has no optimum (every extra draft is free) and is refused."""
    check_alpha(alpha)
    check_cost(cost_ratio)
    if max_gamma is not None:
        check_int("max_gamma", max_gamma, 1, MAX_COUNT)
    a, c = float(alpha), float(cost_ratio)
    if c == 0 and a > 0:
        raise ValueError("cost_ratio: with c = 0 each extra drafted token is free and the "
                         "improvement grows with γ without a maximum; give c > 0")
    x = 0.0 if a == 0 else _real_optimum(a, c, bonus)
    centre = max(1, int(math.floor(x)))
    window = np.arange(max(1, centre - 2), centre + 4, dtype=np.int64)
    if max_gamma is not None:
        window = window[window <= max_gamma]
        if window.size == 0:
            return int(max_gamma)
    values = speedup(a, window, c, bonus)
    return int(window[int(np.argmax(values))])


def acceptance_rate(p, q) -> float:
    """α = Σ_x min(p(x), q(x)) = 1 − TV(p, q) for target p and draft q (probability vectors;
    leading axes are averaged over, e.g. one row per context)."""
    try:
        p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    except (TypeError, ValueError):
        raise ValueError("p, q: each must be a probability vector of numbers") from None
    if p.shape != q.shape or p.size == 0:
        raise ValueError(f"p, q: shapes differ {p.shape} vs {q.shape} (vocabularies must match)")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))) or np.any(p < 0) \
            or np.any(q < 0) or not np.allclose(p.sum(-1), 1, atol=1e-6) \
            or not np.allclose(q.sum(-1), 1, atol=1e-6):
        raise ValueError("p, q: each must be a probability vector (non-negative, sums to 1)")
    return float(np.minimum(p, q).sum(-1).mean())


def gamma_table(alpha: float, cost_ratio: float, gammas=range(1, 9), bonus: bool = True):
    """Rows (γ, E[tokens], improvement) for a speedup-vs-γ table or plot (a DataFrame)."""
    g = np.asarray(list(gammas))
    return pd.DataFrame({"gamma": g, "expected_tokens": expected_tokens(alpha, g, bonus),
                         "speedup": speedup(alpha, g, cost_ratio, bonus)})


__all__ = ["EXPECTED_TOKENS", "SPEEDUP", "optimal_gamma_condition", "acceptance_rate",
           "check_alpha", "check_cost", "check_gamma", "expected_tokens", "gamma_table",
           "optimal_gamma", "speedup"]
