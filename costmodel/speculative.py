r"""Speculative decoding: expected tokens, walltime improvement, the best γ, and the cost ratio
from the roofline.

A draft model proposes γ tokens; the target verifies them in one pass and keeps the longest
accepted prefix plus one token of its own (the correction at the first rejection, or a bonus
token when all γ are accepted). With each draft token accepted independently with probability α
(Leviathan et al. 2023; Chen et al. 2023):

    E[tokens per iteration] = (1 − α^(γ+1)) / (1 − α)
    improvement             = (1 − α^(γ+1)) / ((1 − α)(γ c + 1))

where c = T_draft / T_target is the cost ratio of one draft step to one target step and the
verification pass is priced as one target step. :func:`speedup_roofline` drops that
approximation: it prices γ draft decode steps and one target pass with q = γ + 1 new tokens
through the roofline, and compares with one target decode step per token.

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

import numbers

import numpy as np
import sympy as sp

from costmodel.errors import check_positive_int
from costmodel.formula import Formula
from costmodel.symbols import alpha, c_ratio, gamma

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


def _check_alpha(value) -> None:
    arr = np.asarray(value, dtype=float)
    if isinstance(value, bool) or not np.all(np.isfinite(arr)) or np.any(arr < 0) \
            or np.any(arr >= 1):
        raise ValueError(f"alpha: the acceptance rate must lie in [0, 1), got {value!r}")


def _check_gamma(value) -> None:
    arr = np.asarray(value)
    if np.ndim(value) == 0:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"gamma: must be an integer >= 1, got {value!r}")
    elif not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1):
        raise ValueError("gamma: every value must be an integer >= 1")


def _check_cost(value) -> None:
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"cost_ratio: must be a number >= 0, got {value!r}")


def expected_tokens(alpha: float, gamma: int, bonus: bool = True):
    """(1 − α^(γ+1)) / (1 − α): tokens per iteration (``bonus=False``: (1 − α^γ)/(1 − α))."""
    _check_alpha(alpha)
    _check_gamma(gamma)
    f = EXPECTED_TOKENS if bonus else EXPECTED_TOKENS_NO_BONUS
    return f(alpha=alpha, gamma=gamma)


def speedup(alpha: float, gamma: int, cost_ratio: float, bonus: bool = True):
    """Walltime improvement (1 − α^(γ+1)) / ((1 − α)(γc + 1)); at α = 0 it is 1/(γc + 1)."""
    _check_alpha(alpha)
    _check_gamma(gamma)
    _check_cost(cost_ratio)
    f = SPEEDUP if bonus else SPEEDUP_NO_BONUS
    return f(alpha=alpha, gamma=gamma, cost_ratio=cost_ratio)


def optimal_gamma(alpha: float, cost_ratio: float, max_gamma: int = 64,
                  bonus: bool = True) -> int:
    """The γ in 1 … max_gamma with the largest improvement (the smallest on ties)."""
    _check_alpha(alpha)
    _check_cost(cost_ratio)
    check_positive_int("max_gamma", max_gamma)
    gammas = np.arange(1, max_gamma + 1)
    return int(gammas[np.argmax(speedup(alpha, gammas, cost_ratio, bonus))])


def acceptance_rate(p, q) -> float:
    """α = Σ_x min(p(x), q(x)) = 1 − TV(p, q) for target p and draft q (probability vectors;
    leading axes are averaged over, e.g. one row per context)."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape != q.shape:
        raise ValueError(f"p, q: shapes differ {p.shape} vs {q.shape} (vocabularies must match)")
    if np.any(p < 0) or np.any(q < 0) or not np.allclose(p.sum(-1), 1, atol=1e-6) \
            or not np.allclose(q.sum(-1), 1, atol=1e-6):
        raise ValueError("p, q: each must be a probability vector (non-negative, sums to 1)")
    return float(np.minimum(p, q).sum(-1).mean())


def speedup_roofline(target, draft, hw, alpha: float, gamma: int, context: int = 1024,
                     batch: int = 1, *, time_of=None, draft_lm_head: str = "last",
                     verify_lm_head: str = "last", overheads: dict | None = None,
                     **kw) -> dict:
    """Improvement with the cost ratio derived from two ModelSpecs on one HardwareSpec.

    Target-only: one target decode step per token, t_T(c). Speculative iteration: γ draft
    decode steps t_D(c + i), i = 0 … γ−1, plus one target verification pass with q = γ + 1
    new tokens, t_V; it yields E(α, γ) tokens. Improvement = E · t_T / (Σ t_D + t_V).

    ``time_of(analysis)`` prices a pass (default ``analysis.time``; e.g. a calibrated pricing);
    ``draft_lm_head`` / ``verify_lm_head`` choose logits for the last or all positions;
    ``overheads`` adds fixed seconds outside the passes: ``token`` (per target-only token),
    ``draft`` (per draft step), ``verify`` (per verification) and ``rejection`` (per rejected
    iteration, weighted by its probability 1 − α^γ). Returns the times, c = t_D / t_T, and both
    the roofline and the c-only improvement.
    """
    from costmodel.roofline import decode_step, verify_step

    _check_alpha(alpha)
    _check_gamma(gamma)
    time_of = time_of or (lambda a: a.time)
    extra = {"token": 0.0, "draft": 0.0, "verify": 0.0, "rejection": 0.0, **(overheads or {})}
    t_target = time_of(decode_step(target, hw, context, batch, **kw)) + extra["token"]
    t_drafts = [time_of(decode_step(draft, hw, context + i, batch, lm_head=draft_lm_head, **kw))
                + extra["draft"] for i in range(gamma)]
    t_verify = (time_of(verify_step(target, hw, gamma, context, batch, lm_head=verify_lm_head,
                                    **kw))
                + extra["verify"] + (1 - alpha**gamma) * extra["rejection"])
    ratio = t_drafts[0] / t_target
    e = float(expected_tokens(alpha, gamma))
    return {"target_step_s": t_target, "draft_step_s": t_drafts[0], "drafts_s": sum(t_drafts),
            "verify_s": t_verify, "cost_ratio": ratio, "expected_tokens": e,
            "speedup": e * t_target / (sum(t_drafts) + t_verify),
            "speedup_simple": speedup(alpha, gamma, ratio),
            "verify_over_step": t_verify / t_target}


def gamma_table(alpha: float, cost_ratio: float, gammas=range(1, 9), bonus: bool = True):
    """Rows (γ, E[tokens], improvement) for a speedup-vs-γ table or plot."""
    import pandas as pd

    g = np.asarray(list(gammas))
    return pd.DataFrame({"gamma": g, "expected_tokens": expected_tokens(alpha, g, bonus),
                         "speedup": speedup(alpha, g, cost_ratio, bonus)})


def optimal_gamma_formula() -> sp.Expr:
    """d(improvement)/dγ = 0 has no closed form in elementary functions (it needs Lambert W);
    returned for display: the stationarity condition."""
    return sp.Eq(sp.diff(SPEEDUP.expr, gamma), 0)


__all__ = ["EXPECTED_TOKENS", "SPEEDUP", "acceptance_rate", "expected_tokens", "gamma_table",
           "optimal_gamma", "speedup", "speedup_roofline"]
