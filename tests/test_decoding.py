"""A whole generation: the closed-form sum of decode steps equals the loop of them (hypothesis),
and the two-line closed form under it (sum_max_linear) equals brute force."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel as cm
from costmodel.decoding import sum_max_linear

SETTINGS = settings(max_examples=25, deadline=None)


@SETTINGS
@given(prompt=st.integers(1, 3000), generate=st.integers(1, 40), batch=st.integers(1, 256),
       hw=st.sampled_from(["t4", "a100-80gb", "h100-sxm"]), tp=st.sampled_from([1, 2]))
def test_generation_closed_form_equals_loop(prompt, generate, batch, hw, tp):
    g = cm.generation("llama3-8b", hw, context=prompt, generate=generate, batch=batch, tp=tp)
    loop = sum(cm.decode_step("llama3-8b", hw, context=prompt + k - 1, batch=batch, tp=tp).time
               for k in range(1, generate))
    assert g.decode_time == pytest.approx(loop, rel=1e-9, abs=1e-15)
    assert g.ttft == pytest.approx(cm.prefill("llama3-8b", hw, prompt, batch, tp=tp).time)
    assert g.total_time == pytest.approx(g.ttft + loop, rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(a0=st.integers(-50, 50), a1=st.integers(-5, 5), b0=st.integers(-50, 50),
       b1=st.integers(-5, 5), lo=st.integers(0, 30), n=st.integers(0, 40))
def test_sum_max_linear_vs_brute_force(a0, a1, b0, b1, lo, n):
    brute = sum(max(a0 + a1 * x, b0 + b1 * x) for x in range(lo, lo + n))
    assert float(sum_max_linear(a0, a1, b0, b1, lo, n)) == pytest.approx(brute, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(a0=st.floats(-1e3, 1e3), a1=st.floats(-10, 10), b0=st.floats(-1e3, 1e3),
       b1=st.floats(-10, 10), lo=st.integers(0, 100), n=st.integers(0, 60))
def test_sum_max_linear_floats(a0, a1, b0, b1, lo, n):
    brute = sum(max(a0 + a1 * x, b0 + b1 * x) for x in range(lo, lo + n))
    assert float(sum_max_linear(a0, a1, b0, b1, lo, n)) == pytest.approx(brute, rel=1e-9,
                                                                          abs=1e-6)
