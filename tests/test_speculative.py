"""Speculative decoding: the Leviathan/Chen formulas (REFERENCES §0) checked by hand, the α = 0
limit, the optimum γ, the no-bonus (CS229S) variant, the acceptance rate, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel as cm
from costmodel import speculative as spec

SETTINGS = settings(max_examples=40, deadline=None)


def test_expected_tokens_by_hand():
    # (1 − α^(γ+1)) / (1 − α) at α = 0.75, γ = 4: (1 − 0.2373046875)/0.25 = 3.05078125
    assert spec.expected_tokens(0.75, 4) == pytest.approx(3.05078125, rel=1e-12)
    # without the bonus token (CS229S): (1 − 0.75⁴)/0.25 = (1 − 0.31640625)/0.25 = 2.734375
    assert spec.expected_tokens(0.75, 4, bonus=False) == pytest.approx(2.734375, rel=1e-12)
    # α = 0.5, γ = 1: 1 + 0.5 = 1.5 tokens
    assert spec.expected_tokens(0.5, 1) == pytest.approx(1.5)


def test_speedup_by_hand():
    # α = 0.8, γ = 3, c = 0.1: (1 − 0.8⁴)/(0.2 · 1.3) = 0.5904/0.26 = 2.27077
    assert spec.speedup(0.8, 3, 0.1) == pytest.approx(0.5904 / 0.26, rel=1e-12)


@SETTINGS
@given(gamma=st.integers(1, 32), c=st.floats(0, 2, allow_nan=False))
def test_alpha_zero_improvement(gamma, c):
    # nothing accepted: one token per iteration at cost γc + 1 target steps
    assert spec.speedup(0.0, gamma, c) == pytest.approx(1 / (gamma * c + 1), rel=1e-12)


@SETTINGS
@given(alpha=st.floats(0, 0.99), gamma=st.integers(1, 20))
def test_expected_tokens_bounds(alpha, gamma):
    e = spec.expected_tokens(alpha, gamma)
    assert 1 - 1e-12 <= e <= gamma + 1 + 1e-12
    # the bonus token is worth exactly α^γ
    assert e - spec.expected_tokens(alpha, gamma, bonus=False) == pytest.approx(alpha**gamma,
                                                                                abs=1e-12)


@SETTINGS
@given(alpha=st.floats(0.05, 0.95), c=st.floats(0.01, 0.5))
def test_optimal_gamma_is_argmax(alpha, c):
    g = spec.optimal_gamma(alpha, c, max_gamma=40)
    brute = [(1 - alpha ** (k + 1)) / ((1 - alpha) * (k * c + 1)) for k in range(1, 41)]
    assert g == 1 + int(np.argmax(brute))


def test_cs229s_optimum():
    # α = 0.75, c = 124,439,808/1,557,611,200 = 0.0799 (weight-read ratio GPT2/GPT2-XL):
    # γ = 4, 5, 6 give 2.312, 2.349, 2.343 (hand, see test_cs229s) → 5
    c = 124_439_808 / 1_557_611_200
    assert spec.optimal_gamma(0.75, c) == 5
    table = spec.gamma_table(0.75, c, gammas=range(4, 7))
    assert list(table["gamma"]) == [4, 5, 6]
    assert np.allclose(table["speedup"], [2.312, 2.349, 2.343], atol=1e-3)


def test_acceptance_rate_is_one_minus_tv():
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.3, 0.5])
    # Σ min = 0.2 + 0.3 + 0.2 = 0.7; TV = ½ Σ|p − q| = ½ (0.3 + 0 + 0.3) = 0.3
    assert spec.acceptance_rate(p, q) == pytest.approx(0.7)
    assert spec.acceptance_rate(p, p) == pytest.approx(1.0)


def test_speedup_roofline_consistent():
    r = cm.speculative_speedup("gpt2-xl", "gpt2", "t4", alpha=0.75, gamma=5, context=128)
    assert 0.05 < r["cost_ratio"] < 0.12
    # verification of 6 tokens at B = 1 is still weight-bound: about one target step
    assert 1 <= r["verify_over_step"] < 1.1
    assert r["speedup"] == pytest.approx(r["speedup_simple"], rel=0.1)


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        spec.speedup(alpha, 4, 0.1)
    with pytest.raises(ValueError, match="alpha"):
        spec.expected_tokens(alpha, 4)


@pytest.mark.parametrize("gamma", [0, -3, 2.5, True])
def test_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        spec.speedup(0.5, gamma, 0.1)


def test_bad_cost_ratio_and_distributions():
    with pytest.raises(ValueError, match="cost_ratio"):
        spec.speedup(0.5, 2, -1)
    with pytest.raises(ValueError, match="p, q"):
        spec.acceptance_rate([0.5, 0.5], [1.0])
    with pytest.raises(ValueError, match="alpha"):
        cm.speculative.optimal_gamma(alpha=1.0, cost_ratio=0.1)
