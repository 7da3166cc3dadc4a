"""The validation report is rendered from its data only: a small synthetic measurement set (made
up here, with a made-up calibration) gives a report that shows the synthetic numbers and none
of the committed run's; the figures are built without pyplot."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from costmodel.reference.config import GPTConfig
from costmodel.specs import HardwareSpec, ModelSpec
from costmodel.validation.grids import PHASES
from costmodel.validation.io import (
    COLUMNS,
    SPEC_COLUMNS,
    measured_workload,
    read_measurements,
)
from costmodel.validation.report import figure, headline_rows, pct, render_markdown
from costmodel.validation.validate import assess
from costmodel.workload import reference_options

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "data" / "validation"
TOYS = [ModelSpec(name="toy-alpha", n_layers=2, d_model=64, n_heads=4, vocab_size=500,
                  max_context=256),
        ModelSpec(name="toy-beta", n_layers=3, d_model=96, n_heads=6, vocab_size=700,
                  max_context=256, n_kv_heads=2, d_ff=160, gated_mlp=True, activation="silu",
                  norm="rmsnorm", qkv_bias=False, out_bias=False, mlp_bias=False,
                  tied_embeddings=False, positions="rotary")]
HW = HardwareSpec(name="synthetic-box", memory_bytes=2**34, bandwidth=3.3e9,
                  peak_flops={"fp32": 4.4e10}, kernel_overhead=4.4e-6,
                  extra={"device_name": "Synthetic Core", "cores": 6, "threads": 1,
                         "torch_version": "0.0-test", "dtypes": ["fp32"],
                         "matmul": [{"kind": "skinny", "m": 3, "flops_per_s": 1.3e9}]})


def synthetic_measurements() -> pd.DataFrame:
    """Two toy models × B ∈ {1, 3} × s ∈ {16, 48} × the four phases, with made-up times."""
    rows = []
    rng = np.random.default_rng(11)
    for spec in TOYS:
        for batch in (1, 3):
            for s in (16, 48):
                for phase in PHASES:
                    q, c, cache = measured_workload(phase, s)
                    t = 2e-4 * (1 + spec.n_layers) * (batch * q + 0.02 * c) ** 0.6 \
                        * rng.uniform(0.7, 1.4)
                    rows.append({
                        "point_id": f"{spec.name}|B{batch}|s{s}|{phase}", "model": spec.name,
                        **{col: getattr(spec, col) for col in SPEC_COLUMNS},
                        **reference_options(cache, "eager"), "phase": phase, "cache": cache,
                        "batch": batch, "new_tokens": q, "cached_tokens": c, "context": s,
                        "dtype": "fp32", "weight_bytes": 4, "act_bytes": 4, "kv_bytes": 4,
                        "threads": 1, "clock": "wall", "rounds": 1, "repeats": 3,
                        "time_s": t, "time_p10_s": 0.9 * t, "time_p90_s": 1.3 * t})
    df = pd.DataFrame(rows)
    assert set(df.columns) <= set(COLUMNS)
    return df


def synthetic_speculative():
    target = GPTConfig(n_layer=3, n_head=2, n_embd=32, vocab_size=40, block_size=96)
    draft = GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=40, block_size=96)
    base = {"method": "target_only", "gamma": 0, "time_s": 0.37, "context_mean": 44.0,
            "target_config": target.to_dict(), "draft_config": draft.to_dict(),
            "cache": "dynamic"}
    rows = [{"method": "speculative", "gamma": g, "time_s": 0.37 / (1 + 0.21 * g),
             "accepted": 40 - 3 * g, "at_risk": 61, "context_mean": 44.0,
             "target_config": target.to_dict(), "draft_config": draft.to_dict(),
             "target_step_s": 1.3e-3, "draft_step_s": 2.9e-4, "verify_s": 1.3e-3 * (1 + g / 9)}
            for g in (1, 2, 3)]
    return base, rows


@pytest.fixture(scope="module")
def report():
    df = read_measurements(synthetic_measurements())
    n = len(df)
    flops = pd.DataFrame({"point_id": df["point_id"], "counted_flops": np.arange(n) + 10**6,
                          "analytic_flops": np.arange(n) + 10**6, "difference": 0,
                          "exact": True})
    nbytes = pd.DataFrame({"point_id": df["point_id"], "cache": df["cache"],
                           "kv_bytes_measured": 4096, "kv_bytes_formula": 4096, "kv_exact": True,
                           "param_bytes_measured": 8192, "param_bytes_formula": 8192,
                           "param_exact": True})
    r = assess(df, HW, flops, nbytes, synthetic_speculative())
    r.sources = {"measurements": Path("synthetic.csv"), "hardware": Path("synthetic.json"),
                 "speculative": Path("synthetic_speculative.csv"), "speculative_given": True,
                 "fitted": None}
    r.out_dir = Path("synthetic-report")
    return r


def committed_numbers() -> set[str]:
    """The committed run's own figures as the report prints them: its headline results, its
    calibration and fitted parameters, and the facts earlier versions typed into the code."""
    found: set[str] = set()
    head = pd.read_csv(COMMITTED / "headline.csv")
    for text in head["result"]:
        numbers = [t for t in re.findall(r"-?\d+(?:\.\d+)?(?:/\d+)?", text)
                   if "." in t or "/" in t or len(t) >= 3]
        # a cell of two percentages ("median / p90") is one figure: a synthetic run may share
        # one of its numbers by chance, not the pair
        pair = re.fullmatch(r"[\d.]+ % / [\d.]+ %", text.strip())
        found.update([text.strip()] if pair else numbers)
    hw = json.loads((ROOT / "data" / "hardware" / "cpu-fitted.json").read_text())
    found.update({f"{hw['kernel_overhead'] * 1e6:.2f} µs", f"{hw['bandwidth'] / 1e9:.2f} GB/s",
                  f"{hw['peak_flops']['fp32'] / 1e9:.1f} GFLOP/s",
                  f"{hw['extra']['calibrated_kernel_overhead'] * 1e6:.2f} µs",
                  hw["extra"]["device_name"], hw["extra"]["torch_version"], hw["name"],
                  f"over {hw['extra']['fit']['n_train']} training points"})
    found.update({"three runs", "2.1×", "1–4 rows", "3.9 torch calls", "2–3×", "1.7–3.0 ms",
                  "log-midpoint", "48 … 768", "gpt-nano", "gpt2", "llama-gqa", "(γ = 7"})
    return found


def test_the_report_shows_the_synthetic_run_and_nothing_of_the_committed_one(report):
    text = render_markdown(report)
    leaked = sorted(n for n in committed_numbers()
                    if re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", text))
    assert not leaked, f"the committed run's figures in a synthetic report: {leaked}"
    s, f = report.summary, report.fit
    n = len(report.points)
    for row in headline_rows(s):                 # the headline is the synthetic one
        assert row[1] in text, row
    expected = [f"{n}/{n} points exact", pct(s["calibrated_median"]), pct(s["ideal_p90"]),
                f"{f.eta_c:.3f}", f"{f.eta_c_skinny:.3f}", f"{f.eta_m:.3f}",
                f"{f.kernel_overhead * 1e6:.2f} µs", "3.30 GB/s", "44.0 GFLOP/s", "4.40 µs",
                "Synthetic Core", "6 cores", f"({n} points", f"over {f.n_train} training",
                "3 rows: 1.3 GFLOP/s", "toy-alpha", "toy-beta",
                f"here {report.speculative['alpha_pooled'].iloc[0]:.3f}",
                f"{report.speculative['improvement_measured'].iloc[0]:.3f}",
                "synthetic.csv", "synthetic_speculative.csv"]
    missing = [e for e in expected if e not in text]
    assert not missing, missing
    # the fitted parameters' table holds the synthetic fit, not the committed one
    committed = json.loads((ROOT / "data" / "hardware" / "cpu-fitted.json").read_text())
    table = {line.split("|")[1].strip(): line.split("|")[2].strip()
             for line in text.splitlines() if line.startswith("| η_")}
    for key, label in (("eta_c", "η_c (fitted"), ("eta_c_skinny", "η_c,skinny (fitted"),
                       ("eta_m", "η_m (fitted"), ("eta_m_elementwise", "η_m,elementwise (fit")):
        (value,) = [v for k, v in table.items() if k.startswith(label)]
        assert value == f"{getattr(f, key):.3f}" != f"{committed[key]:.3f}", key
    # the counts it states are the synthetic set's
    for a, b in re.findall(r"\b(\d+)/(\d+)\b", text):
        assert int(b) == n and int(a) <= n


def test_figures_without_pyplot(report):
    import matplotlib
    from matplotlib.figure import Figure

    backend = matplotlib.get_backend()
    for key in ("scatter", "context", "speculative"):
        assert isinstance(figure(key, report), Figure)
    assert matplotlib.get_backend() == backend
    mine = [*(ROOT / "costmodel" / "validation").glob("*.py"),
            *(ROOT / "costmodel" / "reference").glob("*.py")]
    sources = "\n".join(p.read_text() for p in mine)
    assert "matplotlib.use(" not in sources and "import matplotlib.pyplot" not in sources
    code = ("import sys\n"
            "import pandas as pd\n"
            "from costmodel.validation import report\n"
            "fig = report.fig_scatter(pd.DataFrame({'time_s': [1e-3, 2e-3], "
            "'pred_ideal_s': [5e-4, 1e-3], 'pred_calibrated_s': [1.1e-3, 1.9e-3], "
            "'phase': ['prefill', 'no_cache'], 'split': ['train', 'test']}))\n"
            "assert report.png(fig)[:4] == b'\\x89PNG'\n"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
