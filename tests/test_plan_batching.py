"""The analytic continuous-batching model (costmodel.plan.batching) against a step-by-step
simulation of the same scheduling policy (tests/plan_sim.py), across loads from 10 % to 95 %
of saturation, with the same step prices (the roofline of Llama-3.1 on an H100, tuned
engine). Evenly spaced arrivals: within 10 % everywhere, prompts whole or chunked. Poisson
arrivals: within 10 % up to 80 % of saturation when a prompt fits one step — the range the
planner keeps to."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import plan_sim
import pytest

from costmodel.plan import batching
from costmodel.plan.serving import Deployment, step_function

S_IN, N_OUT = 2048, 256
CONFIGS = {"8b": ("llama3.1-8b", 1, 8192, 512), "70b-tp4": ("llama3.1-70b", 4, 8192, 256),
           "8b-chunked": ("llama3.1-8b", 1, 2048, 512)}
#: Requests simulated per load: at low load each request decodes alone (≈ n steps each).
REQUESTS = {0.1: 400, 0.5: 2500, 0.8: 5000, 0.95: 5000}


@cache
def setup(name: str):
    model, tp, K, N = CONFIGS[name]
    step = step_function(Deployment(model, "h100-sxm", tp=tp, engine="tuned"), S_IN, N_OUT)
    table = plan_sim.step_table(step, N, K)
    fn = plan_sim.table_step(table)
    lam_sat = float(batching.saturation(fn, S_IN, N_OUT, K, N)[0])
    return table, fn, lam_sat, K, N


def compare(name: str, load: float, arrivals: str) -> dict:
    table, fn, lam_sat, K, N = setup(name)
    sim = plan_sim.simulate(table, load * lam_sat, S_IN, N_OUT, K, N,
                            requests=REQUESTS[load], arrivals=arrivals)
    ana = batching.steady_state(fn, load * lam_sat, S_IN, N_OUT, K, N, arrivals)
    return {k: float(ana[k]) / sim[k] - 1 for k in ("ttft", "tpot", "output_tokens_per_s")}


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("load", [0.1, 0.5, 0.8, 0.95])
def test_uniform_arrivals_within_10_percent(name, load):
    err = compare(name, load, "uniform")
    assert all(abs(v) <= 0.10 for v in err.values()), err


@pytest.mark.parametrize("name", ["8b", "70b-tp4"])
@pytest.mark.parametrize("load", [0.1, 0.5, 0.8])
def test_poisson_arrivals_within_10_percent_up_to_80(name, load):
    err = compare(name, load, "poisson")
    assert all(abs(v) <= 0.10 for v in err.values()), err


def test_saturation_is_the_full_step_fluid_limit():
    """Hand algebra: with the budget binding, D* = K(n−1)/(s+n−1) decodes sit beside
    P* = K − D* prompt tokens and λ_sat = P*/(s · t(D*, P*)); for a constant step time t the
    rate is (K − D*)/(s·t)."""
    t = 0.05
    lam, D, P, _ = batching.saturation(lambda d, p: np.full(np.shape(d), t), 2048, 256, 8192,
                                       4096)
    d_star = 8192 * 255 / (2048 + 255)
    assert float(D) == pytest.approx(d_star)
    assert float(lam) == pytest.approx((8192 - d_star) / (2048 * t))


def test_constant_step_time_gives_little_and_residual():
    """A step time that never changes: TPOT is that time, D = λ(n−1)t (Little), and an evenly
    spaced arrival waits half a decode step then one step for its prompt (1.5 t)."""
    t, lam = 0.02, 1.0
    out = batching.steady_state(lambda d, p: np.full(np.shape(d), t), lam, 1000, 101, 8192,
                                256, "uniform")
    assert float(out["tpot"]) == pytest.approx(t)
    assert float(out["decode_batch"]) == pytest.approx(lam * 100 * t)
    assert float(out["ttft"]) == pytest.approx(1.5 * t)
    assert math.isfinite(float(out["ttft"]))


def test_overload_is_infinite_not_nan():
    out = batching.steady_state(lambda d, p: np.full(np.shape(d), 0.05), 1e4, 2048, 256,
                                8192, 256)
    assert float(out["utilization"]) > 1
    assert float(out["ttft"]) == math.inf and float(out["tpot"]) == math.inf


@pytest.mark.parametrize("field,kw", [("rate", {"rate": -1}), ("input_len", {"input_len": 0}),
                                      ("output_len", {"output_len": 0.5}),
                                      ("arrivals", {"arrivals": "bursty"}),
                                      ("input_spread", {"input_spread": 5000})])
def test_bad_traffic_names_the_field(field, kw):
    args = {"rate": 1.0, "input_len": 2048, "output_len": 256, **kw}
    with pytest.raises(ValueError, match=field):
        batching.Traffic(**args)
