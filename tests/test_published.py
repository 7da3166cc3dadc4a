"""The published GPU validation: every row of the measurement set has every field and a source;
the reader names the file, the row and the field of anything wrong; a fitted profile prices the
same through ``cm.analyze`` / ``cm.generation`` as in the validation; the committed report's
headline, error table and bands are rebuilt here from its per-row table; the fitter recovers a
profile it is given; the whole pipeline runs on a small set; the CLI refuses bad input."""

from __future__ import annotations

import csv
import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import costmodel as cm
from costmodel.presets import engine_defaults
from costmodel.validation.profiles import (
    BOUNDS,
    PARAMS,
    band_of,
    cauchy,
    fit_profiles,
    levenberg_marquardt,
    log_ratios,
    profile,
)
from costmodel.validation.published import REQUIRED, read_published
from costmodel.validation.published_report import validate_published

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "data" / "published" / "measurements.csv"
SOURCES_MD = ROOT / "data" / "published" / "sources.md"
OUT = ROOT / "data" / "validation" / "published"
BANDS_CSV = ROOT / "costmodel" / "data" / "engine_bands.csv"


def rows_of(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


@pytest.fixture(scope="module")
def published():
    return read_published(CSV)


@pytest.fixture(scope="module")
def points():
    return pd.read_csv(OUT / "points.csv")


# --------------------------------------------------------------------------- the data set


def test_every_row_has_every_field_and_a_source():
    rows = rows_of(CSV)
    # issue 13: at least 40 measurements from at least 6 independent sources
    assert len(rows) >= 40
    assert len({r["source_id"] for r in rows}) >= 6
    described = set(re.findall(r"^## (\S+)", SOURCES_MD.read_text(encoding="utf-8"), re.M))
    for r in rows:
        blank = [c for c in REQUIRED if not (r.get(c) or "").strip()]
        assert not blank, f"{r['id']}: empty {blank}"
        assert r["source_url"].startswith("https://"), r["id"]
        assert re.search(r"\b(19|20)\d\d\b", r["source_date"]), r["id"]
        assert r["source_id"] in described, r["id"]
        assert float(r["value"]) > 0 and math.isfinite(float(r["value"]))
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))


def test_the_reader_prices_every_row_or_says_why_not(published):
    assert len(published.requests) + len(published.left_out) == len(rows_of(CSV))
    assert all(reason.strip() for reason in published.left_out.values())
    for r in published.requests:
        assert r.engine_class in ("tuned", "llama.cpp", "eager")
        assert r.gpus == r.tp * r.pp


# --------------------------------------------------------------------------- hostile input

MUTATIONS = [
    ("kv_dtype", "", "kv_dtype: missing value"),
    ("value", "inf", "value"),
    ("value", "-3", "value"),
    ("gpu", "H300 SXM", "gpu: unknown GPU"),
    ("model_ref", "meta-llama/Llama-9-7b-hf", "model_ref: unknown model"),
    ("engine", "FooServe 1.0", "engine: unknown engine"),
    ("weight_quant", "int3 mystery", "weight_quant: unknown weight format"),
    ("metric", "tpot_ms", "metric: unknown metric"),
    ("metric_definition", "tokens per second, somehow", "metric_definition"),
    ("batch", "1.5", "batch"),
    ("gpu_count", "3", "gpu_count"),
    ("tp", "0", "tp"),
    ("source_url", "ftp://example.org/x", "source_url"),
    ("id", "p001", "id: duplicate"),
]


def write_rows(path: Path, rows: list[dict], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.parametrize(("column", "value", "message"), MUTATIONS)
def test_a_bad_row_names_the_file_the_row_and_the_field(tmp_path, column, value, message):
    rows = rows_of(CSV)[:3]
    columns = list(rows[0])
    rows[1][column] = value
    path = write_rows(tmp_path / "bad.csv", rows, columns)
    with pytest.raises(ValueError) as e:
        read_published(path)
    text = str(e.value)
    assert str(path) in text and "row 2" in text and message in text, text
    if column != "id":
        assert "(p002)" in text


def test_a_missing_column_and_an_empty_file_are_named(tmp_path):
    rows = rows_of(CSV)[:2]
    columns = [c for c in rows[0] if c != "kv_dtype"]
    path = write_rows(tmp_path / "short.csv", [{c: r[c] for c in columns} for r in rows],
                      columns)
    with pytest.raises(ValueError, match=r"short\.csv lacks column\(s\) \['kv_dtype'\]"):
        read_published(path)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="empty.csv is empty"):
        read_published(tmp_path / "empty.csv")


# --------------------------------------------------------------------------- one pricing


def metric_value(row: dict, g) -> float:
    """The published metric of a priced generation, written out from the sources' definitions
    (data/published/sources.md): TTFT = the prefill; end-to-end = the whole generation; output
    tokens/s = B·g / total time (÷ GPUs per GPU); decode tokens/s = B / mean decode step."""
    m, source = row["metric"], row["source"]
    if m == "ttft_ms":
        return g.ttft * 1e3
    if m == "e2e_latency_s":
        return g.total_time
    if m == "output_tokens_per_s_per_gpu":
        return g.batch * g.generate / g.total_time / (row["tp"] * row["pp"])
    if m == "decode_tokens_per_s_per_user" or source == "autoawq":   # prefill excluded
        return g.batch / g.tpot_mean
    return g.batch * g.generate / g.total_time


def test_a_fitted_profile_prices_the_same_through_the_api(published, points):
    by_id = points.set_index("id")
    for r in published.requests:
        row = {**by_id.loc[r.id].to_dict(), "id": r.id}
        weights = {"quant": r.weights.quant} if r.weights.quant else \
            {"weight_bytes": r.weights.weight_bytes}
        g = cm.generation(r.model, r.hardware, r.input_tokens, r.output_tokens, r.batch,
                          engine=r.engine_class, tp=r.tp, kv_bytes=r.kv_bytes,
                          act_bytes=r.act_bytes, **weights)
        assert metric_value(row, g) == pytest.approx(row["pred_fitted"], rel=1e-9), r.id
        ideal = cm.generation(r.model, r.hardware, r.input_tokens, r.output_tokens, r.batch,
                              engine="ideal", tp=r.tp, kv_bytes=r.kv_bytes,
                              act_bytes=r.act_bytes, **weights)
        assert metric_value(row, ideal) == pytest.approx(row["pred_ideal"], rel=1e-9), r.id
        if r.kind == "ttft":      # the prefill pass of cm.analyze is the TTFT
            a = cm.analyze(r.model, r.hardware, r.batch, r.input_tokens, engine=r.engine_class,
                           tp=r.tp, kv_bytes=r.kv_bytes, act_bytes=r.act_bytes, **weights)
            assert a.time == pytest.approx(g.ttft, rel=1e-12)


def test_the_default_column_is_the_default_profiles(published, points):
    by_id = points.set_index("id")
    defaults = engine_defaults()
    for r in published.requests[::5]:
        assert r.predict(defaults[r.engine_class]) == pytest.approx(
            by_id.loc[r.id, "pred_default"], rel=1e-9)


def test_time_interval_is_the_committed_band():
    bands = {(b["engine"], b["regime"]): (float(b["low"]), float(b["high"]))
             for b in rows_of(BANDS_CSV)}
    cases = [("llama2-7b", "a100-80gb", 1, 1, 1, {}),            # decode, batch 1
             ("llama2-70b", "h100-sxm", 8, 1, 4, {"quant": "fp8"}),  # quantized
             ("llama2-70b", "a100-80gb", 1, 2048, 4, {})]          # TP ≥ 2
    for model, hw, batch, q, tp, kw in cases:
        a = cm.analyze(model, hw, batch, q, 100 if q == 1 else 0, tp=tp, engine="tuned", **kw)
        lo, hi = bands.get(("tuned", a.regime), bands[("tuned", "all")])
        assert a.time_interval == pytest.approx((a.time * lo, a.time * hi), rel=1e-12)
    assert cm.analyze("llama2-7b", "a100-80gb", engine="ideal").time_interval is None


# --------------------------------------------------------------------------- the report


def time_ratio(kind: str, measured: float, predicted: float) -> float:
    """Predicted / measured time: a rate's time is tokens / rate, so rates invert."""
    return measured / predicted if kind in ("throughput", "decode_rate") else \
        predicted / measured


def test_the_report_is_rebuilt_from_its_per_row_table(points):
    for m in ("ideal", "default", "fitted", "loso"):
        rebuilt = [time_ratio(k, a, b) for k, a, b in
                   zip(points["kind"], points["measured"], points[f"pred_{m}"], strict=True)]
        np.testing.assert_allclose(points[f"ratio_{m}"], rebuilt, rtol=1e-12)
    err = {m: np.abs(points[f"ratio_{m}"].to_numpy() - 1) for m in
           ("ideal", "default", "fitted", "loso")}
    head = {r["check"]: r["result"] for r in rows_of(OUT / "headline.csv")}
    md = (OUT / "published_report.md").read_text(encoding="utf-8")
    loso_median, loso_p90 = np.median(err["loso"]), np.quantile(err["loso"], 0.9)
    assert head["leave-one-source-out median |err|"] == pct(loso_median)
    assert head["leave-one-source-out p90 |err|"] == pct(loso_p90)
    assert head["ideal roofline, same rows: median / p90 |err|"] == \
        f"{pct(np.median(err['ideal']))} / {pct(np.quantile(err['ideal'], 0.9))}"
    assert head["fitted profiles, in sample: median / p90 |err|"] == \
        f"{pct(np.median(err['fitted']))} / {pct(np.quantile(err['fitted'], 0.9))}"
    assert head["80 % band coverage, band held out with its source"] == \
        pct(points["in_band_heldout"].mean())
    for text in (pct(loso_median), pct(loso_p90), pct(np.median(err["ideal"]))):
        assert text in md
    # the error table by regime
    table = pd.read_csv(OUT / "errors_by_regime.csv").set_index("regime")
    for regime, g in list(points.groupby("regime")) + [("all", points)]:
        for m in ("ideal", "default", "fitted", "loso"):
            e = np.abs(g[f"ratio_{m}"].to_numpy() - 1)
            assert table.loc[regime, f"{m}_median"] == pytest.approx(np.median(e), rel=1e-9)
            assert table.loc[regime, f"{m}_p90"] == pytest.approx(np.quantile(e, 0.9),
                                                                  rel=1e-9)
        assert table.loc[regime, "n"] == len(g)


def conformal_80(values) -> tuple[float, float]:
    """The split-conformal 80 % interval of n values (Lei, G'Sell, Rinaldo, Tibshirani and
    Wasserman 2018, JASA 113:1094, §2.2, one side at a time): the ⌊(n + 1)/10⌋-th and the
    ⌈9 (n + 1)/10⌉-th smallest, in integer arithmetic."""
    m = sorted(values)
    n = len(m)
    return m[max((n + 1) // 10, 1) - 1], m[min(-(-9 * (n + 1) // 10), n) - 1]


def test_conformal_80_by_hand():
    # n = 9: ⌊1⌋ = 1st and ⌈9⌉ = 9th, the extremes; n = 19: the 2nd and the 18th
    assert conformal_80(range(9, 0, -1)) == (1, 9)
    assert conformal_80(range(1, 20)) == (2, 18)
    assert band_of(1 / np.arange(1.0, 10.0)) == pytest.approx((1, 9))
    assert band_of(1 / np.arange(1.0, 20.0)) == pytest.approx((2, 18))
    # n = 85: the 8th and the ⌈77.4⌉ = 78th
    assert band_of(1 / np.arange(1.0, 86.0)) == pytest.approx((8, 78))


def test_the_bands_are_the_loso_conformal_intervals(points):
    bands = rows_of(BANDS_CSV)
    assert {b["engine"] for b in bands} == set(points["engine_class"])
    for b in bands:
        sel = points["engine_class"] == b["engine"]
        if b["regime"] != "all":
            sel &= points["regime"] == b["regime"]
        measured_over_predicted = 1 / points.loc[sel, "ratio_loso"].to_numpy()
        lo, hi = conformal_80(measured_over_predicted)
        assert int(b["n"]) == int(sel.sum()) >= 10
        assert float(b["low"]) == pytest.approx(lo, abs=6e-5)
        assert float(b["high"]) == pytest.approx(hi, abs=6e-5)
    # in-sample coverage: each LOSO prediction against its class/regime band (else "all")
    table = {(b["engine"], b["regime"]): (float(b["low"]), float(b["high"])) for b in bands}
    inside = []
    for _, p in points.iterrows():
        lo, hi = table.get((p["engine_class"], p["regime"]), table[(p["engine_class"], "all")])
        inside.append(lo - 6e-5 <= 1 / p["ratio_loso"] <= hi + 6e-5)
    assert np.mean(inside) == pytest.approx(points["in_band"].mean(), abs=0.02)


# --------------------------------------------------------------------------- the fit


TRUTH = {"eta_c": 0.62, "eta_c_8bit": 0.41, "eta_m": 0.8, "eta_m_quant": 0.55,
         "layer_overhead": 40e-6, "comm_latency": 12e-6}
PICK = {"p028", "p064", "p060", "p003", "p002", "p009", "p010", "p011", "p012", "p014", "p038",
        "p030", "p077", "p102"}


def test_least_squares_recovers_a_profile_it_is_given(published):
    """Measurements made by pricing with a known profile: the least-squares search over
    EngineProfile candidates finds it again (the oracle is the profile chosen here)."""
    like = engine_defaults()["tuned"].replace(attention="fused")
    truth = profile("tuned", TRUTH, like)
    rows = [dataclasses.replace(r, value=r.predict(truth))
            for r in published.requests if r.id in PICK]

    def residuals(x):
        return log_ratios(rows, {"tuned": profile("tuned", dict(zip(PARAMS, np.exp(x),
                                                                     strict=True)), like)})

    lo, hi = (np.log([BOUNDS[p][i] for p in PARAMS]) for i in (0, 1))
    start = np.log([0.7, 0.45, 0.7, 0.5, 50e-6, 26e-6])         # the tuned defaults
    x = levenberg_marquardt(residuals, start, lo, hi, iterations=40)
    for name, value in zip(PARAMS, np.exp(x), strict=True):
        assert value == pytest.approx(TRUTH[name], rel=0.01), name


def test_the_cauchy_residuals_square_to_the_cauchy_loss():
    # by hand: r = s → s² ln 2; r = 3 s → s² ln 10; the sign is kept; no scale → r itself
    f = cauchy(np.array([0.1, -0.3, 0.0]), 0.1)
    assert f ** 2 == pytest.approx([0.01 * math.log(2), 0.01 * math.log(10), 0.0])
    assert np.sign(f).tolist() == [1.0, -1.0, 0.0]
    assert cauchy(np.array([0.7]), None).tolist() == [0.7]


def test_the_cauchy_loss_shrugs_off_a_row_least_squares_follows(published):
    """The rows priced with a known profile, one of them (p011) published 2× slower: the Cauchy
    loss finds the profile again, least squares does not (the oracle is TRUTH)."""
    like = engine_defaults()["tuned"].replace(attention="fused")
    truth = profile("tuned", TRUTH, like)
    rows = [dataclasses.replace(r, value=r.predict(truth) * (0.5 if r.id == "p011" else 1))
            for r in published.requests if r.id in PICK]

    def residuals(x, scale):
        vals = dict(zip(PARAMS, np.exp(x), strict=True))
        return cauchy(log_ratios(rows, {"tuned": profile("tuned", vals, like)}), scale)

    lo, hi = (np.log([BOUNDS[p][i] for p in PARAMS]) for i in (0, 1))
    start = np.log([0.7, 0.45, 0.7, 0.5, 50e-6, 26e-6])
    worst = {}
    for scale in (None, 0.1):
        x = levenberg_marquardt(lambda x, s=scale: residuals(x, s), start, lo, hi, 40)
        worst[scale] = max(abs(v / TRUTH[n] - 1) for n, v in zip(PARAMS, np.exp(x), strict=True))
    # Cauchy: every parameter within 10 %; least squares moves one (the overhead p011
    # informs most) by more than half
    assert worst[0.1] < 0.1 < 0.5 < worst[None]


def test_a_class_without_rows_takes_the_pooled_profile(published):
    rows = [r for r in published.requests if r.id in {"p028", "p030", "p011"}]
    f = fit_profiles(rows, iterations=3)
    assert f.rows == {"tuned": 3, "llama.cpp": 0, "eager": 0}
    for c in ("llama.cpp", "eager"):
        p = f.profiles[c]
        assert p.attention == f.pooled_attention
        for name in PARAMS:
            assert getattr(p, name) == pytest.approx(f.pooled[name], rel=1e-5)


def test_the_pipeline_on_a_small_set(tmp_path, published):
    keep = {"p028", "p063", "p077", "p093", "p096", "p045"}
    rows = [r for r in rows_of(CSV) if r["id"] in keep]
    path = write_rows(tmp_path / "small.csv", rows, list(rows[0]))
    out = tmp_path / "out"
    r = validate_published(path, out, iterations=1)
    for name in ("published_report.md", "points.csv", "headline.csv", "errors_by_regime.csv",
                 "bands.csv", "predicted_vs_measured.png"):
        assert (out / name).stat().st_size > 0
    pts = pd.read_csv(out / "points.csv")
    assert list(pts["id"]) == [x["id"] for x in rows]
    small = read_published(path)
    for req in small.requests:
        fitted = pts.loc[pts["id"] == req.id, "pred_fitted"].item()
        assert req.predict(r.fit.profiles[req.engine_class]) == pytest.approx(fitted, rel=1e-9)
    e = np.abs(pts["ratio_loso"] - 1)
    assert r.summary["loso_median"] == pytest.approx(np.median(e))
    assert pct(np.median(e)) in (out / "published_report.md").read_text(encoding="utf-8")


def test_a_failed_run_leaves_the_files_as_they_were(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "points.csv").write_text("old\n")
    bad = tmp_path / "bad.csv"
    rows = rows_of(CSV)[:2]
    rows[0]["gpu"] = "H300 SXM"
    write_rows(bad, rows, list(rows[0]))
    with pytest.raises(ValueError, match="gpu"):
        validate_published(bad, out)
    assert (out / "points.csv").read_text() == "old\n"
    assert sorted(p.name for p in out.iterdir()) == ["points.csv"]


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(("args", "message"), [
    (["--published", "no-such.csv", "--out", "{tmp}/o"], "no-such.csv does not exist"),
    (["--save-engines", "--measurements", "m.csv", "--hardware", "h.json", "--out", "{tmp}"],
     "--save-engines: only with --published"),
])
def test_the_cli_refuses_bad_input_in_one_line(tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    p = subprocess.run([sys.executable, "-m", "costmodel", "validate", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("costmodel: error:") and message in lines[0]


# --------------------------------------------------------------------------- η_c,8bit


def test_eta_c_8bit_prices_the_narrow_peak_only():
    e = cm.EngineProfile("x", eta_c=0.7, eta_c_8bit=0.4, eta_m=1.0)
    ideal = cm.EngineProfile("y")
    # every compute time is F / (η · π): the ratio to the ideal one is 1 / η of the dtype
    fp8 = cm.analyze("llama2-7b", "h100-sxm", 4, 2048, quant="fp8", engine=e)
    fp8_ideal = cm.analyze("llama2-7b", "h100-sxm", 4, 2048, quant="fp8", engine=ideal)
    assert fp8.dtype == "fp8"
    assert fp8.compute_time == pytest.approx(fp8_ideal.compute_time / 0.4, rel=1e-12)
    bf16 = cm.analyze("llama2-7b", "h100-sxm", 4, 2048, engine=e)
    bf16_ideal = cm.analyze("llama2-7b", "h100-sxm", 4, 2048, engine=ideal)
    assert bf16.compute_time == pytest.approx(bf16_ideal.compute_time / 0.7, rel=1e-12)
    # an explicit η_c still wins
    assert cm.analyze("llama2-7b", "h100-sxm", 4, 2048, quant="fp8", engine=e,
                      eta_c=0.5).efficiency.eta_c == 0.5
    with pytest.raises(ValueError, match="eta_c_8bit"):
        cm.EngineProfile("z", eta_c_8bit=1.5)


# --------------------------------------------------------------------------- presets


@pytest.mark.parametrize(("fixture", "preset"), [
    ("llama-2-70b.json", "llama2-70b"), ("codellama-34b.json", "codellama-34b"),
    ("tinyllama-1.1b-chat-v1.0.json", "tinyllama-1.1b")])
def test_added_presets_are_their_public_configs(fixture, preset):
    from_config = cm.model(ROOT / "tests" / "fixtures" / "published_configs" / fixture)
    mine = cm.model(preset)
    for f in dataclasses.fields(mine):
        if f.name not in ("name", "source"):
            assert getattr(from_config, f.name) == getattr(mine, f.name), f.name


# --------------------------------------------------------------------------- W8A8 activations


def test_an_8bit_activation_row_prices_16bit_activations(published):
    """p061: Llama-2-70B, fp8 W8A8 (activation_dtype fp8 in the CSV), TP 4, a 128-token
    prefill. The 8 bits are the GEMM inputs only; the residual stream and the all-reduced GEMM
    outputs stay 16-bit (TensorRT-LLM FP8RowLinear.forward dequantizes to self.dtype before
    multiply_reduce). Hand algebra: 2 all-reduces per layer × 80 layers × 128 tokens × d_model
    8192 × 2 bytes = 335,544,320 bytes."""
    row = next(r for r in rows_of(CSV) if r["id"] == "p061")
    assert row["activation_dtype"] == "fp8"
    req = next(r for r in published.requests if r.id == "p061")
    assert req.act_bytes == 2
    a = cm.prefill(req.model, req.hardware, req.input_tokens, req.batch, **req.analyze_kwargs())
    assert a.comm_bytes == 2 * 80 * 128 * 8192 * 2 == 335_544_320
