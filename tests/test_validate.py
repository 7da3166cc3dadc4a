"""Validation end to end on a small slice (4 gpt-nano points, a made-up calibration), the exact
FLOP check on every grid model, and the report's files written all-or-nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import costmodel as cm  # noqa: E402
from costmodel.cli import main  # noqa: E402
from costmodel.specs import HardwareSpec  # noqa: E402
from costmodel.validation import report as reporting  # noqa: E402
from costmodel.validation import validate as validating  # noqa: E402
from costmodel.validation.checks import counted_flops  # noqa: E402
from costmodel.validation.grids import MODELS, PHASES, gpt_config  # noqa: E402
from costmodel.validation.io import measured_workload  # noqa: E402
from costmodel.validation.measure import measure  # noqa: E402
from costmodel.validation.validate import (  # noqa: E402
    REPORT_FILE,
    Report,
    output_files,
    validate,
)
from costmodel.workload import reference_options  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CALIBRATION = HardwareSpec(name="test-cpu", memory_bytes=2**34, bandwidth=2e10,
                           peak_flops={"fp32": 5e10}, kernel_overhead=2e-6,
                           extra={"device_name": "test CPU", "cores": 2, "threads": 1,
                                  "torch_version": torch.__version__, "dtypes": ["fp32"]})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("validation")
    hw_path = d / "hw.json"
    CALIBRATION.save(hw_path)
    csv = d / "m.csv"
    measure("tiny", out_csv=csv, repeats=3, warmup=1, min_time=0.002)
    return d, csv, hw_path


def test_end_to_end_report(inputs):
    d, csv, hw_path = inputs
    out = d / "report"
    r = validate(csv, hw_path, out, fitted_hardware_json=d / "fitted.json")
    assert isinstance(r, Report) and r.exact_checks_pass
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
    assert "Too few points to hold any out" in text     # 4 points: in-sample
    assert set(r.figures) == {"scatter", "context"}
    for p in r.figures.values():
        assert p.exists() and p.read_bytes()[:4] == b"\x89PNG"
        assert f"]({p.name})" in text
    # the files the app's Validation page reads, and nothing staged left behind
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["errors_by_regime.csv", "headline.csv", "points.csv", "latency_vs_context.png",
         "predicted_vs_measured.png", REPORT_FILE])
    assert list(pd.read_csv(out / "headline.csv").columns) == ["check", "result", "target",
                                                               "met"]
    assert sorted(p.name for p in d.iterdir()) == ["fitted.json", "hw.json", "m.csv", "report"]
    fitted = cm.hardware(str(d / "fitted.json"))
    pts = r.points.set_index("point_id")
    spec = gpt_config("gpt-nano").to_spec()
    for _, row in pd.read_csv(csv).iterrows():
        q, c, cache = measured_workload(row["phase"], int(row["context"]))
        t = cm.analyze(spec, fitted, batch=int(row["batch"]), new_tokens=q, cached_tokens=c,
                       weight_bytes=4, kv_bytes=4, act_bytes=4, dtype="fp32",
                       **reference_options(cache, "eager")).time
        assert t == pytest.approx(pts.loc[row["point_id"], "pred_calibrated_s"], rel=1e-12)


def test_cli_validate(inputs, capsys):
    d, csv, hw_path = inputs
    out = d / "cli"
    assert main(["validate", "--measurements", str(csv), "--hardware", str(hw_path),
                 "--out", str(out)]) == 0
    assert "matmul FLOPs exact" in capsys.readouterr().out
    assert (out / REPORT_FILE).exists()


@pytest.mark.parametrize("model", list(MODELS))
def test_flop_counter_equals_analytic_matmul_flops(model):
    """On the meta device: every grid model and phase, the FLOPs FlopCounterMode counts in the
    measured pass equal Σ matmul + attention FLOPs of cm.analyze, exactly."""
    config = gpt_config(model)
    spec = config.to_spec()
    models: dict = {}
    B, s = 2, 24
    for phase in PHASES:
        q, c, cache = measured_workload(phase, s)
        counted = counted_flops(config, phase, B, s, s + 8, models)
        a = cm.analyze(spec, "a100-80gb", batch=B, new_tokens=q, cached_tokens=c,
                       weight_bytes=4, kv_bytes=4, act_bytes=4, dtype="fp32",
                       **reference_options(cache, config.attn_impl))
        analytic = a.ops.loc[a.ops["kind"].isin(("matmul", "attention")), "flops"].sum()
        assert counted == int(analytic), (model, phase)


# ---------------------------------------------------------------- all-or-nothing outputs


OLD = "from an earlier run\n"


@pytest.fixture
def previous(inputs, tmp_path):
    """A report folder and a fitted JSON from an earlier run: every file holds OLD."""
    out = tmp_path / "report"
    files = output_files(out, speculative=False, figures=True)
    out.mkdir()
    for path in files.values():
        path.write_text(OLD)
    fitted = tmp_path / "fitted.json"
    fitted.write_text(OLD)
    return out, fitted, [*files.values(), fitted]


def _intact(paths, tmp_path) -> None:
    for p in paths:
        assert p.read_text() == OLD, p
    staged = [p for p in tmp_path.rglob("*") if "staging" in p.name]
    assert not staged, staged


@pytest.mark.parametrize("where", ["context figure", "speculative figure", "markdown"])
def test_a_late_failure_leaves_the_old_report(inputs, previous, tmp_path, monkeypatch, where):
    """The report fails after the checks, the fit and some figures were made: every file of
    the previous report, and the previous fitted JSON, is as it was."""
    d, csv, hw_path = inputs
    out, fitted, paths = previous

    def boom(*args, **kwargs):
        raise ValueError(f"{where}: made to fail")

    if where == "markdown":
        monkeypatch.setattr(validating, "render_markdown", boom)
    else:
        monkeypatch.setattr(reporting, f"fig_{where.split()[0]}", boom)
    spec = None
    if where == "speculative figure":     # the speculative part needs its CSV
        spec = tmp_path / "s.csv"
        spec.write_text(SPECULATIVE_CSV)
    with pytest.raises(ValueError, match="made to fail"):
        validate(csv, hw_path, out, speculative_csv=spec, fitted_hardware_json=fitted)
    _intact(paths, tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths[:-1])


def test_a_blocked_destination_fails_before_the_work(inputs, previous, tmp_path, monkeypatch,
                                                     capsys):
    """points.csv is a folder: the error names the user's path (no staging file), comes
    before the exact checks, and leaves every old file."""
    d, csv, hw_path = inputs
    out, fitted, paths = previous
    (out / "points.csv").unlink()
    (out / "points.csv").mkdir()
    paths.remove(out / "points.csv")

    def never(*args, **kwargs):
        raise AssertionError("checked although a destination is unusable")

    monkeypatch.setattr(validating, "check_flops", never)
    assert main(["validate", "-m", str(csv), "-H", str(hw_path), "-o", str(out),
                 "--save-fitted", str(fitted)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out / "points.csv") in err and "folder" in err
    assert "staging" not in err
    _intact(paths, tmp_path)


@pytest.mark.parametrize("bad", ["folder", "under a file"])
def test_save_fitted_that_cannot_be_written(inputs, previous, tmp_path, monkeypatch, capsys,
                                            bad):
    d, csv, hw_path = inputs
    out, fitted, paths = previous
    target = tmp_path / "fitted-folder" if bad == "folder" else fitted / "fitted.json"
    if bad == "folder":
        target.mkdir()
    monkeypatch.setattr(validating, "check_flops", lambda *a, **k: 1 / 0)
    assert main(["validate", "-m", str(csv), "-H", str(hw_path), "-o", str(out),
                 "--save-fitted", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(target) in err and "staging" not in err
    _intact(paths, tmp_path)


_TARGET = {"n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 40, "block_size": 96}
_DRAFT = {"n_layer": 1, "n_head": 2, "n_embd": 16, "vocab_size": 40, "block_size": 96}
SPECULATIVE_CSV = pd.DataFrame(
    [{"gamma": g, "method": m, "time_s": t, "accepted": a, "at_risk": n, "context_mean": 40.0,
      "target_config": json.dumps(_TARGET), "draft_config": json.dumps(_DRAFT)}
     for g, m, t, a, n in ((0, "target_only", 0.5, 0, 0), (1, "speculative", 0.4, 30, 40),
                           (2, "speculative", 0.35, 50, 70))]).to_csv(index=False)
