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
from costmodel.measure import MODELS, PHASES, gpt_config, measure, options_for, spec_for  # noqa: E402
from costmodel.validate import Report, counted_flops, fit_parameters, validate  # noqa: E402


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
    rng = np.random.default_rng(0)
    C = rng.uniform(1e-6, 1e-4, (40, 5)) * rng.integers(0, 2, (40, 5))
    M = rng.uniform(1e-6, 1e-4, (40, 5))
    K = rng.integers(20, 200, 40).astype(float)
    t = np.maximum(C / 0.5, M / 0.3).sum(axis=1) + K * 5e-6
    f = fit_parameters(C, M, K, t)
    assert f.eta_c == pytest.approx(0.5, rel=0.05)
    assert f.eta_m == pytest.approx(0.3, rel=0.05)
    assert f.kernel_overhead == pytest.approx(5e-6, rel=0.1)


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


def test_eager_extras_follow_the_reference_code():
    from costmodel.validate import eager_extras

    spec = spec_for(gpt_config("gpt-nano"))
    L, h, d_h = spec.n_layers, spec.n_heads, spec.head_dim
    # static MHA decode: no concat, no K/V copy; only the scale pass and the output copy
    b, k = eager_extras(spec, 1, 1, 10, 4, 4, "static")
    assert b == 2 * L * h * 11 * 4 + 2 * L * h * d_h * 4 and k == 2 * L
    # dynamic decode adds the torch.cat rebuild of K and V and matmul's copies of them
    b_dyn, k_dyn = eager_extras(spec, 1, 1, 10, 4, 4, "dynamic")
    assert b_dyn - b == 4 * L * 11 * h * d_h * 4 * 2 and k_dyn - k == 4 * L
    # fused attention keeps only the concat
    assert eager_extras(spec, 1, 1, 10, 4, 4, "static", "fused") == (0.0, 0.0)
    gqa = spec_for(gpt_config("llama-gqa"))
    assert eager_extras(gqa, 1, 1, 10, 4, 4, "static")[1] == 4 * gqa.n_layers
