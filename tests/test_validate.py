"""Validation end to end on a small slice (quick calibration, 4 gpt-nano points), the exact
checks on every grid model, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import costmodel as cm  # noqa: E402
import costmodel.validation_commands  # noqa: E402,F401
from costmodel.calibrate import calibrate  # noqa: E402
from costmodel.cli import main  # noqa: E402
from costmodel.measure import (  # noqa: E402
    MODELS,
    PHASES,
    gpt_config,
    measure,
    options_for,
    spec_for,
    spec_from_row,
)
from costmodel.validate import (  # noqa: E402
    SKINNY_ROWS,
    Fit,
    Report,
    counted_flops,
    fit,
    fitted_time,
    matmul_rows,
    predict,
    reference_options,
    skinny_ops,
    speculative_prediction,
    validate,
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("validation")
    hw_path = d / "hw.json"
    calibrate("cpu", "fp32", quick=True, out=hw_path)
    csv = d / "m.csv"
    measure("tiny", out_csv=csv, repeats=3, warmup=1, min_time=0.002)
    return d, csv, hw_path


def test_end_to_end_report(inputs):
    d, csv, hw_path = inputs
    out = d / "report"
    r = validate(csv, hw_path, out)
    assert isinstance(r, Report)
    assert r.exact_checks_pass
    assert r.flops["exact"].all() and (r.flops["difference"] == 0).all()
    assert r.bytes["kv_exact"].all() and r.bytes["param_exact"].all()
    assert len(r.points) == 4 and set(r.points["phase"]) == set(PHASES)
    for col in ("pred_ideal_s", "pred_calibrated_s", "err_ideal", "err_calibrated", "split"):
        assert col in r.points
    assert {"phase_group", "bound", "cache", "n", "ideal_median", "calibrated_p90"} <= \
        set(r.errors.columns)
    assert r.errors.iloc[-1]["phase_group"] == "all"
    assert 0 < r.fit.eta_c <= 1 and 0 < r.fit.eta_m <= 1 and r.fit.kernel_overhead >= 0
    text = r.markdown.read_text()
    assert "# Validation" in text and "Latency error by regime" in text
    assert set(r.figures) == {"scatter", "context"}
    for p in r.figures.values():
        assert p.exists() and p.read_bytes()[:4] == b"\x89PNG"
        assert f"]({p.name})" in text
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # the app's validation page reads these committed tables and figures
    from costmodel.appstate import validation_results

    res = validation_results(out)
    assert list(res["headline"].columns) == ["check", "result", "target", "met"]
    assert len(res["points"]) == 4 and "pred_calibrated_s" in res["points"]
    assert "calibrated_median" in res["errors"] and len(res["figures"]) == 2
    assert validation_results(d / "missing") == {"figures": {}}


def test_cli_validate(inputs, capsys):
    d, csv, hw_path = inputs
    out = d / "cli"
    assert main(["validate", "--measurements", str(csv), "--hardware", str(hw_path),
                 "--out", str(out)]) == 0
    assert "matmul FLOPs exact" in capsys.readouterr().out
    assert (out / "validation_report.md").exists()


@pytest.mark.parametrize("model", list(MODELS))
def test_flop_counter_equals_analytic_matmul_flops(model):
    """On the meta device: every grid model and phase, FLOPs counted == analytic, exactly."""
    config = gpt_config(model)
    spec = spec_for(config)
    cache: dict = {}
    for phase in PHASES:
        B, s = 2, 24
        q, c = (1, s) if phase.startswith("decode") else (s, 0)
        counted = counted_flops(config, phase, B, q, c, s + 8, cache)
        a = cm.analyze(spec, "a100-80gb", batch=B, new_tokens=q, cached_tokens=c,
                       weight_bytes=4, kv_bytes=4, act_bytes=4, dtype="fp32",
                       **options_for(config, phase))
        analytic = a.ops.loc[a.ops["kind"].isin(("matmul", "attention")), "flops"].sum()
        assert counted == int(analytic), (model, phase)


def test_fit_recovers_known_parameters():
    from costmodel.validate import _least_squares

    rng = np.random.default_rng(0)
    C = rng.uniform(1e-6, 1e-4, (40, 5)) * rng.integers(0, 2, (40, 5))
    M = rng.uniform(1e-6, 1e-4, (40, 5))
    K = rng.integers(20, 200, 40).astype(float)
    t = np.maximum(C / 0.5, M / 0.3).sum(axis=1) + K * 5e-6
    p = _least_squares(C, M, K, t)
    assert p.eta_c == pytest.approx(0.5, rel=0.05) and p.eta_c_skinny == p.eta_c
    assert p.eta_m == pytest.approx(0.3, rel=0.05) and p.eta_m_elementwise == p.eta_m
    assert p.kernel_overhead == pytest.approx(5e-6, rel=0.1)
    assert p.rms_log_error < 0.02
    # skinny matmuls and elementwise passes at their own efficiencies
    S = rng.integers(0, 2, (40, 5)).astype(bool)
    E = ~S & (C == 0)
    t = np.maximum(C / np.where(S, 0.1, 0.6), M / np.where(E, 0.2, 0.3)).sum(axis=1) + K * 5e-6
    p = _least_squares(C, M, K, t, S, E)
    assert p.eta_c == pytest.approx(0.6, rel=0.05)
    assert p.eta_c_skinny == pytest.approx(0.1, rel=0.05)
    assert p.eta_m == pytest.approx(0.3, rel=0.05)
    assert p.eta_m_elementwise == pytest.approx(0.2, rel=0.05)
    assert p.rms_log_error < 0.02


def test_public_fit_and_fitted_hardware(inputs, tmp_path):
    """fit() on a CSV or a DataFrame; Fit.hardware() saved and reloaded predicts exactly what
    the fit predicts, through the public predict() (cm.analyze + the skinny efficiency)."""
    d, csv, hw_path = inputs
    f = fit(csv, hw_path)
    assert isinstance(f, Fit) and f.n_train == 4      # 4 points: too few to hold any out
    assert set(f.split) == {"train"} and list(f.errors.index) == ["calibrated", "ideal"]
    assert fit(pd.read_csv(csv), cm.hardware(hw_path)).to_dict() == f.to_dict()
    path = tmp_path / "fitted.json"
    f.hardware().save(path)
    hw = cm.hardware(path)
    assert hw.kernel_overhead == pytest.approx(f.kernel_overhead)
    assert hw.extra["eta_c"] == pytest.approx(f.eta_c) and hw.extra["eta_m"] == f.eta_m
    assert hw.extra["eta_c_skinny"] == f.eta_c_skinny and hw.extra["skinny_rows"] == SKINNY_ROWS
    assert hw.extra["eta_m_elementwise"] == f.eta_m_elementwise
    cal = cm.hardware(hw_path)
    assert hw.bandwidth == pytest.approx(f.eta_m * cal.bandwidth)
    assert hw.peak("fp32") == pytest.approx(f.eta_c * cal.peak("fp32"))
    df = pd.read_csv(csv)
    for _, row in df.iterrows():
        spec = spec_from_row(row)
        t = predict(spec, hw, int(row["batch"]), int(row["new_tokens"]),
                    int(row["cached_tokens"]), row["cache"], weight_bytes=4, kv_bytes=4,
                    act_bytes=4, dtype="fp32")
        pred = f.points.set_index("point_id").loc[row["point_id"], "pred_calibrated_s"]
        assert t == pytest.approx(pred, rel=1e-9)
    with pytest.raises(ValueError, match="lacks column"):
        fit(df.drop(columns=["batch"]), hw_path)
    with pytest.raises(ValueError, match="calibrated for"):
        fit(csv, cm.hardware(hw_path).replace(peak_flops={"bf16": 1e11}))


def test_reference_options_follow_the_reference_code():
    """The reference's dynamic cache is a torch.cat (concat), its static cache is written in
    place, its eager attention is the ops' eager attention, SDPA is fused."""
    assert reference_options("dynamic") == {"attention": "eager", "kv_update": "concat",
                                            "kv_cache": True}
    assert reference_options("static", "sdpa") == {"attention": "fused",
                                                   "kv_update": "inplace", "kv_cache": True}
    assert reference_options("none")["kv_cache"] is False
    with pytest.raises(ValueError, match="cache"):
        reference_options("paged")
    for phase in PHASES:
        opts = options_for(gpt_config("gpt-nano"), phase)
        assert opts["attention"] == "eager"
        assert opts["kv_update"] == ("concat" if phase in ("prefill", "decode_dynamic")
                                     else "inplace")


def test_skinny_rows_and_fitted_time():
    """Weight matmuls of at most 8 rows run at η_c,skinny: decode projections, the LM head on
    the last position; plain cm.analyze (no η in extra) is left alone."""
    spec = spec_for(gpt_config("gpt-nano"))
    kw = dict(weight_bytes=4, kv_bytes=4, act_bytes=4, dtype="fp32")
    a = cm.analyze(spec, "a100-80gb", batch=2, new_tokens=32, cached_tokens=0, **kw)
    rows = dict(zip(a.ops["op"], matmul_rows(a), strict=True))
    assert rows["qkv_proj"] == 64 and rows["lm_head"] == 2 and rows["qk_scores"] == 32
    assert rows["softmax"] > 10**9
    skinny = dict(zip(a.ops["op"], skinny_ops(a), strict=True))
    assert skinny["lm_head"] and not skinny["qkv_proj"] and not skinny["qk_scores"]
    assert fitted_time(a) == a.time
    hw = cm.hardware("a100-80gb")
    hw = hw.replace(extra={"eta_c": 1.0, "eta_c_skinny": 0.01})
    d = cm.analyze(spec, hw, batch=1, new_tokens=1, cached_tokens=64, **kw)
    assert fitted_time(d) > d.time      # decode matmuls priced at 1 % of the peak


def test_speculative_prediction_prices_the_reference_loop():
    hw = cm.hardware("a100-80gb").replace(kernel_overhead=5e-6)
    target = spec_for(gpt_config("gpt-micro"))
    draft = spec_for(gpt_config("gpt-nano"))
    kw = dict(weight_bytes=4, kv_bytes=4, act_bytes=4, dtype="fp32")
    p = speculative_prediction(target, draft, hw, 0.8, 4, 64, **kw)
    assert p["expected_tokens"] == pytest.approx((1 - 0.8 ** 5) / 0.2)
    assert p["improvement"] == pytest.approx(
        p["expected_tokens"] * p["t_token_s"] / (p["t_drafts_s"] + p["t_verify_s"]))
    # the verification pass is a q = γ + 1 pass with logits on every position, plus the calls
    verify = cm.analyze(target, hw, new_tokens=5, cached_tokens=64, lm_head="all",
                        **reference_options("dynamic", "sdpa"), **kw).time
    crop = (1 - 0.8 ** 4) * 2 * (target.n_layers + draft.n_layers) * 5e-6
    assert p["t_verify_s"] == pytest.approx(verify + 5 * 5e-6 + crop)
    # more fixed cost per call lowers the improvement
    slow = speculative_prediction(target, draft, hw.replace(kernel_overhead=5e-5), 0.8, 4, 64,
                                  **kw)
    assert slow["improvement"] < p["improvement"]


def _rewrite(src, dst, fn):
    df = pd.read_csv(src)
    fn(df).to_csv(dst, index=False)
    return dst


def test_foreign_units_and_missing_columns(inputs, capsys):
    d, csv, hw_path = inputs
    ms = _rewrite(csv, d / "ms.csv", lambda df: df.assign(time_ms=df["time_s"] * 1e3)
                  .drop(columns=["time_s"]))
    out = d / "bad1"
    with pytest.raises(ValueError, match="time_ms.*seconds"):
        validate(ms, hw_path, out)
    assert main(["validate", "-m", str(ms), "-H", str(hw_path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "time_ms" in err
    missing = _rewrite(csv, d / "missing.csv", lambda df: df.drop(columns=["n_kv_heads"]))
    with pytest.raises(ValueError, match="n_kv_heads"):
        validate(missing, hw_path, out)
    assert not out.exists()


def test_calibration_of_another_dtype_is_refused(inputs, capsys):
    d, csv, hw_path = inputs
    data = json.loads(hw_path.read_text())
    data["peak_flops"] = {"bf16": data["peak_flops"]["fp32"]}
    data["extra"]["dtypes"] = ["bf16"]
    other = d / "bf16.json"
    other.write_text(json.dumps(data))
    out = d / "bad2"
    with pytest.raises(ValueError, match="calibrated for bf16 but the measurements are fp32"):
        validate(csv, other, out)
    assert main(["validate", "-m", str(csv), "-H", str(other), "-o", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()
