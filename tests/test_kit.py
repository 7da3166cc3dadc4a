"""The measurement kit: one command that calibrates, measures on three engines, validates and
reports — run here at tiny sizes on the CPU through the same code paths the GPU run takes —
and its parts that a CPU can check: the budget, the GPU calibration's efficiencies, the
datasheet lookup, the Hugging Face configs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import costmodel as cm  # noqa: E402
from costmodel.cli import main  # noqa: E402
from costmodel.reference.config import GPTConfig  # noqa: E402
from costmodel.reference.timing import default_clock  # noqa: E402
from costmodel.validation import budget as budgeting  # noqa: E402
from costmodel.validation import measure as measuring  # noqa: E402
from costmodel.validation.budget import estimate_seconds, trim  # noqa: E402
from costmodel.validation.calibrate import datasheet_for, efficiencies  # noqa: E402
from costmodel.validation.grids import Point, gpt_config, grid_points  # noqa: E402
from costmodel.validation.measure import measure  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENGINES = ("eager", "compiled", "hf")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """`costmodel validate --kit --device cpu --grid tiny` in a fresh process, as a user runs
    it from a plain checkout."""
    pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("kit") / "run"
    proc = subprocess.run([sys.executable, "-m", "costmodel", "validate", "--kit", "--device",
                           "cpu", "--grid", "tiny", "--out", str(out), "--budget", "300",
                           "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_the_tiny_kit_writes_every_file(tiny_run):
    out, proc = tiny_run
    summary = json.loads((out / "kit.json").read_text())
    machine = summary["machine"]
    want = {"kit_report.md", "kit.json", "kit_points.csv", f"hardware/{machine}.json"}
    for engine in ENGINES:
        want |= {f"hardware/{machine}-{engine}-fitted.json",
                 f"measurements/{machine}_{engine}.csv"}
        want |= {f"validation/{engine}/{name}" for name in
                 ("validation_report.md", "headline.csv", "errors_by_regime.csv",
                  "points.csv", "predicted_vs_measured.png", "latency_vs_context.png")}
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == want
    assert not [p for p in out.parent.rglob(".costmodel-staging-*")]   # nothing staged left
    assert "Measurement kit" in proc.stdout and summary["within_budget"]


def test_the_tiny_kit_is_exact_on_every_engine(tiny_run):
    """FLOPs (FlopCounterMode on each engine's measured pass — Hugging Face's included) and
    KV bytes (what each engine's cache holds) equal the formulas at every point."""
    out, _ = tiny_run
    summary = json.loads((out / "kit.json").read_text())
    assert set(summary["engines"]) == set(ENGINES)
    for engine, e in summary["engines"].items():
        assert e["points"] > 0
        assert e["flops_exact"] == e["kv_exact"] == e["param_exact"] == e["points"], engine
    points = pd.read_csv(out / "kit_points.csv")
    assert len(points) == summary["measured_points"] == sum(
        len(pd.read_csv(p)) for p in (out / "measurements").glob("*.csv"))
    assert (points["time_s"] > 0).all() and (points["mbu"] > 0).all()
    # every engine's CSV is a measurement file the plain `costmodel validate` accepts
    m = next((out / "measurements").glob("*_hf.csv"))
    df = cm_read(m)
    assert set(df["engine"]) == {"hf"} and (df["flops_counted"] >= 0).all()
    dynamic = df[df["cache"] == "dynamic"]
    assert (dynamic["kv_update"] == "concat").all()      # HF's DynamicCache: torch.cat
    report = (out / "kit_report.md").read_text()
    for engine in ENGINES:
        assert f"| {engine}" in report


def cm_read(path):
    from costmodel.validation.io import read_measurements

    return read_measurements(path, checks=True)


def test_the_budget_trims_the_largest_points_first():
    hw = cm.hardware("h100-sxm").replace(kernel_overhead=5e-6)
    points = grid_points("gpu", "bf16")
    assert len(points) == 4 * 3 * 3 * (3 + 1 + 3)          # models × B × s × engine phases
    cost = {p: estimate_seconds(p, hw, 5, 2, 1.0) for p in points}
    kept, dropped = trim(points, 150.0, hw, "cuda", 5, 2, 1.0)
    assert kept and dropped and set(kept) | set(dropped) == set(points)
    # what is kept fits: its points and the build (and compile) of each model it still uses
    groups = {(p.model, p.engine, p.dtype) for p in kept}
    assert sum(cost[p] for p in kept) + sum(
        budgeting.group_seconds(m, e, d, "cuda") for m, e, d in groups) <= 150.0
    biggest = sorted(points, key=lambda p: -cost[p])[:4]     # the B = 64, s = 4096 prefills
    assert all(p in dropped for p in biggest) and all(p.phase == "prefill" for p in biggest)
    everything, none = trim(points, 1e9, hw, "cuda", 5, 2, 1.0)
    assert everything == points and not none
    # an estimate grows with the work: a prefill of 4096 tokens × 64 sequences of GPT2-XL
    big, small = (Point("gpu-gpt2-xl", b, s, "prefill", "bf16") for b, s in ((64, 4096),
                                                                            (1, 128)))
    assert estimate_seconds(big, hw, 5, 2, 1.0) > 100 * estimate_seconds(small, hw, 5, 2, 1.0)
    # the reference model's decode steps run on caches of zeros: no prefill to pay for
    blank = next(p for p in points if p.phase == "decode_dynamic" and p.engine == "eager"
                 and p.batch == 64 and p.context == 4096 and p.model == "llama3-8b-shape")
    hf = Point(**{**blank.__dict__, "engine": "hf", "prefill_cache": True})
    assert not blank.prefill_cache and estimate_seconds(blank, hw, 5, 2, 1.0) < \
        estimate_seconds(hf, hw, 5, 2, 1.0) / 10


def test_a_budget_that_leaves_nothing_is_a_clear_error(tmp_path, monkeypatch):
    skipped: list = []
    with pytest.raises(ValueError, match="no point was measured"):
        measure("kit-tiny", budget=0.001, skipped=skipped, out_csv=tmp_path / "m.csv")
    assert skipped and all(why == "trimmed to fit the budget" for _, why in skipped)
    assert not list(tmp_path.iterdir())
    # estimates that fit but a clock that has run out: points are skipped, not run
    for module in (budgeting, measuring):    # trim's estimates and the clock check's
        monkeypatch.setattr(module, "estimate_seconds", lambda *a, **k: 0.0)
        monkeypatch.setattr(module, "group_seconds", lambda *a, **k: 0.0)
    skipped.clear()
    with pytest.raises(ValueError, match="no point was measured"):
        measure([Point("tiny-gpt", 1, 8, "prefill")], budget=1e-9, skipped=skipped)
    assert skipped == [("tiny-gpt|B1|s8|prefill|fp32", "the budget's time ran out")]


def test_gpu_calibration_efficiencies_by_hand():
    """η from the micro-benchmarks against a datasheet: best square / peak, the median of the
    skinny (≤ 8 rows) rates / peak, copy / bandwidth; the launch cost as measured."""
    matmul = [{"dtype": "bf16", "kind": "square", "m": 4096, "flops_per_s": 7.0e14},
              {"dtype": "bf16", "kind": "square", "m": 8192, "flops_per_s": 8.0e14},
              {"dtype": "bf16", "kind": "skinny", "m": 1, "flops_per_s": 1.0e12},
              {"dtype": "bf16", "kind": "skinny", "m": 8, "flops_per_s": 8.0e12},
              {"dtype": "bf16", "kind": "skinny", "m": 4, "flops_per_s": 4.0e12},
              {"dtype": "bf16", "kind": "skinny", "m": 64, "flops_per_s": 6.0e13},
              {"dtype": "fp16", "kind": "square", "m": 8192, "flops_per_s": 9.9e14}]
    copy = [{"bytes_per_s": 3.0e12}, {"bytes_per_s": 4.0e12}]
    eta = efficiencies(matmul, copy, {"op_call_s": 4e-6}, {"bf16": 1.0e15}, 5.0e12, "bf16")
    assert eta["eta_c"] == pytest.approx(0.8)                  # 8e14 / 1e15
    assert eta["eta_c_skinny"] == pytest.approx(0.004)         # median(1, 4, 8)e12 / 1e15
    assert eta["eta_m"] == eta["eta_m_elementwise"] == pytest.approx(0.8)    # 4e12 / 5e12
    assert eta["kernel_overhead"] == 4e-6 and eta["skinny_rows"] == 8
    capped = efficiencies(matmul, copy, {"op_call_s": 1e-6}, {"bf16": 1e14}, 1e12, "bf16")
    assert capped["eta_c"] == capped["eta_m"] == 1.0
    hw = cm.hardware("h200").replace(**eta)       # the typed fields take them
    assert hw.eta_c_skinny == pytest.approx(0.004)


@pytest.mark.parametrize("name,preset", [("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3",
                                          "h100-sxm"), ("NVIDIA H100 PCIe", "h100-pcie"),
                                         ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
                                         ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
                                         ("NVIDIA L4", "l4"), ("NVIDIA L40S", "l40s"),
                                         ("Tesla T4", "t4"), ("AMD EPYC", None),
                                         ("NVIDIA H100 NVL", None)])
def test_datasheet_lookup(name, preset):
    sheet = datasheet_for(name)
    assert (sheet.name if sheet else None) == preset


def test_cuda_timing_uses_events():
    assert default_clock("cuda", None) == "cuda" and default_clock("cuda:1", 4) == "cuda"
    assert default_clock("cpu", 1) == "thread" and default_clock("cpu", 2) == "wall"


@pytest.mark.parametrize("model", ["gpu-gpt2", "gpu-gpt2-xl", "llama3-8b-shape", "moe-small",
                                   "tiny-gpt", "tiny-llama", "tiny-moe"])
def test_hugging_face_builds_the_same_model(model):
    """Hugging Face's model of each kit config has the calculator's parameter count (its own
    modules counted on the meta device: nothing allocated)."""
    pytest.importorskip("transformers")
    import transformers

    from costmodel.reference.engines import hf_config

    config = gpt_config(model)
    cfg = hf_config(config)
    cls = getattr(transformers, {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
                                 "mixtral": "MixtralForCausalLM"}[cfg.model_type])
    with torch.device("meta"):
        hf = cls(cfg)
    assert sum(p.numel() for p in hf.parameters()) == cm.param_count(config.to_spec())


def test_hugging_face_refuses_what_it_has_no_class_for():
    from costmodel.reference.engines import hf_config

    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="shared experts"):
        hf_config(gpt_config("moe-llama"))
    with pytest.raises(ValueError, match="every layer"):
        hf_config(gpt_config("window-llama"))
    with pytest.raises(ValueError, match="no Hugging Face class"):
        hf_config(GPTConfig(n_layer=1, n_head=2, n_embd=8, mlp="swiglu"))


def test_kit_command_line_errors(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["validate", "--kit", "--device", "tpu", "--out", str(out)]) == 2
    assert main(["validate", "--kit", "--out", str(out), "--budget", "0"]) == 2
    assert main(["validate", "--kit", "--measurements", "m.csv", "--out", str(out)]) == 2
    assert main(["validate", "--out", str(out)]) == 2          # without --kit: the inputs
    err = capsys.readouterr().err
    assert err.count("costmodel: error:") == 4 and "--measurements" in err
    assert not out.exists()
