"""The calibrated model: the least-squares search, one pricing (the fit's candidates, its
predictions and plain cm.analyze on the fitted machine agree), and the committed fitted JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import costmodel as cm
from costmodel.pricing import EFFICIENCY_FIELDS
from costmodel.validation import fit as fitting
from costmodel.validation.fit import (
    SKINNY_ROWS,
    Fit,
    Terms,
    fit,
    least_squares,
    predict,
    predict_terms,
    terms_of,
)
from costmodel.validation.grids import grid_models
from costmodel.validation.io import analysis_kwargs, read_measurements, spec_of
from costmodel.validation.speculative import speculative_prediction
from costmodel.workload import reference_options

ROOT = Path(__file__).resolve().parent.parent
FITTED = ROOT / "data" / "hardware" / "cpu-fitted.json"
CALIBRATION = ROOT / "data" / "hardware" / "cpu.json"
GRID = ROOT / "data" / "measurements" / "cpu.csv"
POINTS = ROOT / "data" / "validation" / "points.csv"
FP32 = dict(weight_bytes=4, kv_bytes=4, act_bytes=4, dtype="fp32")


def _terms(C, M, K, S=None, E=None) -> Terms:
    """Terms of hand-made passes: per-operator ideal compute and memory seconds, the kernels
    of a pass on its first operator."""
    rows = []
    for i in range(len(C)):
        kernels = np.zeros(C.shape[1])
        kernels[0] = K[i]
        rows.append({"compute_ideal": C[i], "memory_ideal": M[i], "comm": np.zeros(C.shape[1]),
                     "kernels": kernels,
                     "skinny": np.zeros(C.shape[1], bool) if S is None else S[i],
                     "streaming": np.zeros(C.shape[1], bool) if E is None else E[i]})
    return Terms(rows, ["memory"] * len(C))


def test_least_squares_recovers_known_parameters():
    rng = np.random.default_rng(0)
    C = rng.uniform(1e-6, 1e-4, (40, 5)) * rng.integers(0, 2, (40, 5))
    M = rng.uniform(1e-6, 1e-4, (40, 5))
    K = rng.integers(20, 200, 40).astype(float)
    # the model written out: t = Σ_op max(C / η_c, M / η_m) + K · t_k
    t = np.maximum(C / 0.5, M / 0.3).sum(axis=1) + K * 5e-6
    p = least_squares(_terms(C, M, K), t)
    assert p.eta_c == pytest.approx(0.5, rel=0.05) and p.eta_c_skinny == p.eta_c
    assert p.eta_m == pytest.approx(0.3, rel=0.05) and p.eta_m_elementwise == p.eta_m
    assert p.kernel_overhead == pytest.approx(5e-6, rel=0.1)
    assert p.rms_log_error < 0.02
    # skinny matmuls and elementwise passes at their own efficiencies
    S = rng.integers(0, 2, (40, 5)).astype(bool)
    E = ~S & (C == 0)
    t = np.maximum(C / np.where(S, 0.1, 0.6), M / np.where(E, 0.2, 0.3)).sum(axis=1) + K * 5e-6
    p = least_squares(_terms(C, M, K, S, E), t)
    assert p.eta_c == pytest.approx(0.6, rel=0.05)
    assert p.eta_c_skinny == pytest.approx(0.1, rel=0.05)
    assert p.eta_m == pytest.approx(0.3, rel=0.05)
    assert p.eta_m_elementwise == pytest.approx(0.2, rel=0.05)
    assert p.rms_log_error < 0.02
    # and the split ignored: one η_c, one η_m
    q = least_squares(_terms(C, M, K, S, E), t, split=False)
    assert q.eta_c == q.eta_c_skinny and q.eta_m == q.eta_m_elementwise


def test_the_search_prices_through_pricing_price(monkeypatch):
    """Every candidate of the search is priced by costmodel.pricing.price, with arrays of
    efficiencies (one call prices a whole grid of them)."""
    seen = []
    real = fitting.price

    def spy(*args, **kw):
        seen.append(np.shape(kw["eta_c"]))
        return real(*args, **kw)

    monkeypatch.setattr(fitting, "price", spy)
    rng = np.random.default_rng(1)
    C, M = rng.uniform(1e-6, 1e-4, (6, 3)), rng.uniform(1e-6, 1e-4, (6, 3))
    least_squares(_terms(C, M, np.full(6, 50.0)), np.maximum(C, M).sum(axis=1))
    assert seen and max(len(s) for s in seen) == 4 and max(s[0] for s in seen if s) == 26


@pytest.fixture(scope="module")
def committed():
    return read_measurements(GRID), pd.read_csv(POINTS).set_index("point_id")


def test_the_fitted_json_prices_like_the_validation(committed):
    """data/hardware/cpu-fitted.json loaded as any hardware file: plain cm.analyze with the
    reference model's options gives the validation's calibrated prediction for every
    committed point (the fit lives in the typed efficiency fields; nothing in ``extra`` is
    read by the pricing)."""
    df, points = committed
    hw = cm.hardware(str(FITTED))
    raw = json.loads(FITTED.read_text())
    assert not set(EFFICIENCY_FIELDS) & set(raw["extra"])
    assert 0 < hw.eta_c_skinny < hw.eta_c < 1 and 0 < hw.eta_m_elementwise < 1
    assert hw.skinny_rows == SKINNY_ROWS and hw.kernel_overhead > 0
    cal = cm.hardware(str(CALIBRATION))
    assert hw.peak_flops == cal.peak_flops and hw.bandwidth == cal.bandwidth
    for _, row in df.iterrows():
        want = points.loc[row["point_id"], "pred_calibrated_s"]
        got = cm.analyze(spec_of(row), hw, **analysis_kwargs(row)).time
        assert got == want, row["point_id"]     # bit for bit: one pricing
        q, c = int(row["new_tokens"]), int(row["cached_tokens"])
        assert predict(spec_of(row), hw, int(row["batch"]), q, c, row["cache"],
                       kv_update=row["kv_update"], **FP32) == got
    # the ideal roofline is the calibration itself: every η = 1, no overhead
    for _, row in df.head(8).iterrows():
        ideal = cm.analyze(spec_of(row), cal, **analysis_kwargs(row), kernel_overhead=0).time
        assert ideal == pytest.approx(points.loc[row["point_id"], "pred_ideal_s"], rel=1e-12)


def test_fit_hardware_has_the_fit_in_its_typed_fields(committed, tmp_path):
    df = committed[0].head(24)
    f = fit(df, str(CALIBRATION))
    assert isinstance(f, Fit) and f.n_train == int((f.split == "train").sum())
    hw = f.hardware()
    assert (hw.eta_c, hw.eta_c_skinny, hw.eta_m, hw.eta_m_elementwise, hw.kernel_overhead) == \
        (f.eta_c, f.eta_c_skinny, f.eta_m, f.eta_m_elementwise, f.kernel_overhead)
    path = tmp_path / "fitted.json"
    hw.save(path)
    again = cm.hardware(str(path))
    assert again == hw
    T = terms_of(df, cm.hardware(str(CALIBRATION)))
    want = predict_terms(T, f.params)
    got = [cm.analyze(spec_of(r), again, **analysis_kwargs(r)).time for _, r in df.iterrows()]
    assert got == pytest.approx(list(want), rel=1e-12)
    assert list(f.points["pred_calibrated_s"]) == pytest.approx(list(want), rel=1e-12)
    with pytest.raises(ValueError, match="lacks column"):
        fit(df.drop(columns=["batch"]), str(CALIBRATION))
    with pytest.raises(ValueError, match="calibrated for bf16"):
        fit(df, cm.hardware(str(CALIBRATION)).replace(peak_flops={"bf16": 1e11}))


def test_skinny_matmuls_are_the_few_row_weight_matmuls():
    """A weight matmul of at most 8 rows is skinny: decode projections (B·q = 2 rows) and the
    LM head on the last positions (B rows); a 64-row prefill projection and the attention
    matmuls are not."""
    spec = GPTConfig_spec("gpt-nano")
    hw = cm.hardware("a100-80gb")
    a = cm.analyze(spec, hw, batch=2, new_tokens=32, cached_tokens=0, **FP32)
    skinny = dict(zip(a.names, a.terms["skinny"], strict=True))
    assert skinny["lm_head"] and not skinny["qkv_proj"] and not skinny["qk_scores"]
    d = cm.analyze(spec, hw, batch=2, new_tokens=1, cached_tokens=64, **FP32)
    assert dict(zip(d.names, d.terms["skinny"], strict=True))["qkv_proj"]
    slow = hw.replace(eta_c_skinny=0.01)
    assert cm.analyze(spec, slow, batch=2, new_tokens=1, cached_tokens=64, **FP32).time \
        > d.time                                  # decode matmuls priced at 1 % of the peak


def GPTConfig_spec(name: str):
    from costmodel.validation.grids import gpt_config

    return gpt_config(name).to_spec()


def test_speculative_prediction_prices_the_reference_loop():
    hw = cm.hardware("a100-80gb").replace(kernel_overhead=5e-6)
    target, draft = GPTConfig_spec("gpt-micro"), GPTConfig_spec("gpt-nano")
    p = speculative_prediction(target, draft, hw, 0.8, 4, 64, **FP32)
    assert p["expected_tokens"] == pytest.approx((1 - 0.8 ** 5) / 0.2)
    assert p["improvement"] == pytest.approx(
        p["expected_tokens"] * p["t_token_s"] / (p["t_drafts_s"] + p["t_verify_s"]))
    # the verification pass is a q = γ + 1 pass with logits on every position, plus the calls
    verify = cm.analyze(target, hw, new_tokens=5, cached_tokens=64,
                        **{**reference_options("dynamic", "sdpa"), "lm_head": "all"},
                        **FP32).time
    crop = (1 - 0.8 ** 4) * 2 * (target.n_layers + draft.n_layers) * 5e-6
    assert p["t_verify_s"] == pytest.approx(verify + 5 * 5e-6 + crop)
    slow = speculative_prediction(target, draft, hw.replace(kernel_overhead=5e-5), 0.8, 4, 64,
                                  **FP32)
    assert slow["improvement"] < p["improvement"]


def test_the_committed_options_are_the_reference_models():
    """The reference's dynamic cache grows in place (a buffer with spare capacity), its static
    cache is written in place, its eager attention is the operator model's eager attention,
    SDPA is fused, its experts run one call each — and every committed row recorded the
    options it ran with: rows measured before the cache grew in place say ``concat`` (the
    ``torch.cat`` cache they ran), later rows ``inplace``."""
    assert reference_options("dynamic") == {"attention": "eager", "causal": "full",
                                            "lm_head": "last", "kv_update": "inplace",
                                            "kv_cache": True, "moe_dispatch": "loop"}
    assert reference_options("dynamic", kv_update="concat")["kv_update"] == "concat"
    with pytest.raises(ValueError, match="kv_update"):
        reference_options("static", kv_update="concat")
    assert reference_options("static", "sdpa")["attention"] == "fused"
    assert reference_options("none")["kv_cache"] is False
    raw = pd.read_csv(GRID)
    for _, row in raw.iterrows():
        opts = reference_options(row["cache"], "eager", row["kv_update"])
        assert (row["attention"], row["causal"], row["lm_head"], row["kv_update"],
                bool(row["kv_cache"])) == (opts["attention"], opts["causal"], opts["lm_head"],
                                           opts["kv_update"], opts["kv_cache"])
    modern = raw[raw["model"].isin(grid_models("modern"))]
    dynamic = modern[modern["cache"] == "dynamic"]
    assert len(dynamic) and (dynamic["kv_update"] == "inplace").all()
    assert (modern["moe_dispatch"] == "loop").all()
    older = raw[raw["model"].isin(grid_models("full")) & (raw["cache"] == "dynamic")]
    assert len(older) and (older["kv_update"] == "concat").all()
