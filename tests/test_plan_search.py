"""The SLO-aware search (cm.plan): its winners priced again by serve() and their memory and
step times checked against cm.analyze and batch_plan directly; bad input gets one clear
message naming the field; the CLI face."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

import costmodel as cm
from costmodel.batch import batch_plan
from costmodel.plan.serving import Deployment, serve, step_function

ROOT = Path(__file__).resolve().parent.parent
QUERY = {"rate": 50, "input_len": 2048, "output_len": 256, "ttft": 1.0, "tpot": 0.05}
SMALL = {"concurrencies": (32, 64, 128), "batched_tokens": (4096, 8192), "max_replicas": 32}


@cache
def winner(gpu: str) -> dict:
    df = cm.plan("llama3.1-70b", [gpu], **QUERY, **SMALL)
    return df.iloc[0].to_dict()


@pytest.mark.parametrize("gpu", ["h100-sxm", "mi300x"])
def test_winner_memory_and_time_by_analyze(gpu):
    row = winner(gpu)
    m = cm.model("llama3.1-70b")
    quant = None if row["quant"] == "bf16" else row["quant"]
    s = serve(m, gpu, QUERY["rate"], 2048, 256, tp=int(row["tp"]), pp=int(row["pp"]),
              quant=quant, replicas=int(row["replicas"]),
              max_batched_tokens=int(row["max_batched_tokens"]),
              max_concurrency=int(row["max_concurrency"]))
    # the search's numbers are serve()'s
    assert s.ttft == pytest.approx(row["ttft_s"], rel=0.01)
    assert s.tpot == pytest.approx(row["tpot_s"], rel=0.01)
    assert s.gpus == row["gpus"] and s.ttft <= 1.0 and s.tpot <= 0.05
    # memory: batch_plan's weight shard (+ the 16-bit embeddings and head of a quantized
    # checkpoint: 2 × 128256 × 8192 weights at 2 − b_w extra bytes, over TP)
    tp = int(row["tp"])
    wb = s.deployment.precision.weight_bytes
    bp = batch_plan(m, gpu, 2304, tp, wb)
    assert s.memory.weights == pytest.approx(bp.weight_bytes_per_gpu
                                             + max(2 - wb, 0) * 2 * 128256 * 8192 / tp)
    assert s.memory.kv_per_token == pytest.approx(bp.kv_bytes_per_request_per_gpu / 2304)
    # time: the decode step at the mean decode batch D̄ lies between cm.analyze's steps at
    # ⌊D̄⌋ and ⌈D̄⌉ rows at the mean context 2048 + 256/2; a step with one whole prompt beside
    # ⌊D̄⌋ rows is cm.analyze's mixed step exactly (pp = 1)
    D = s.decode_batch
    kw = {"tp": tp, "quant": quant, "engine": "tuned"}
    lo = cm.analyze(m, gpu, batch=max(math.floor(D), 1), new_tokens=1, cached_tokens=2176,
                    **kw).time
    hi = cm.analyze(m, gpu, batch=math.ceil(D), new_tokens=1, cached_tokens=2176, **kw).time
    assert lo * (1 - 1e-9) <= s.decode_step <= hi * (1 + 1e-9)
    step = step_function(Deployment(m, gpu, tp=tp, quant=quant, engine="tuned"), 2048, 256)
    mixed = cm.analyze(m, gpu, batch=math.floor(D), new_tokens=1, cached_tokens=2176,
                       groups=[(1, 2048, 0)], **kw).time
    assert float(step(math.floor(D), 2048)) == pytest.approx(mixed, rel=1e-12)
    # TPOT is the mean of decode-only and prompt steps: between them
    assert s.decode_step <= s.tpot <= s.prompt_step


def test_cheapest_ranked_first_and_pareto_marked():
    df = cm.plan("llama3.1-8b", ["h100-sxm", "l40s"], rate=10, input_len=1024,
                 output_len=128, ttft=0.5, tpot=0.03, **SMALL)
    assert (df["usd_per_hour"].diff().dropna() >= 0).all()
    assert df["pareto"].any() and df["rank"].tolist() == list(range(1, len(df) + 1))
    assert df.attrs["candidates"] >= df.attrs["solved"] > 0
    x, y = df["tokens_per_s_per_gpu"], df["tokens_per_s_per_user"]
    for i in df.index[df["pareto"]]:
        assert not ((x > x[i]) & (y > y[i])).any()


def test_pipeline_costs_a_bubble_and_a_handover():
    """70B on 2 × H100: TP2 vs PP2 — the pipeline's cycle is PP × (the larger stage + the
    hand-over), so its TPOT is longer than TP2's at the same GPUs."""
    kw = {"quant": "fp8", "max_concurrency": 32, "max_batched_tokens": 4096}
    tp2 = serve("llama3.1-70b", "h100-sxm", 2, 2048, 256, tp=2, **kw)
    pp2 = serve("llama3.1-70b", "h100-sxm", 2, 2048, 256, pp=2, **kw)
    assert pp2.gpus == tp2.gpus == 2
    assert pp2.tpot > tp2.tpot


def test_percentiles_price_every_step_at_the_engine_band():
    """The tuned profile's fitted 80 % band (engine_bands.csv) puts the 10th percentile's TPOT
    below the median's and the 90th's above it, by the band's factors on a decode-only step."""
    kw = {"quant": "fp8", "max_concurrency": 32, "max_batched_tokens": 4096}
    t10, t50, t90 = (serve("llama3.1-70b", "h100-sxm", 2, 2048, 256, tp=2, percentile=p, **kw)
                     for p in (10, 50, 90))
    assert t10.tpot < t50.tpot < t90.tpot


@pytest.mark.parametrize("kw,field", [
    ({"ttft": 0.001}, "ttft"), ({"rate": -1}, "rate"), ({"rate": 0}, "rate"),
    ({"prices": {"h100-sxm": 0}}, "prices"), ({"gpus": []}, "gpus"),
    ({"percentile": 75}, "percentile"), ({"percentile": 90, "engine": "ideal"}, "percentile"),
    ({"tpot": float("nan")}, "tpot"),
    ({"input_len": 0}, "input_len"), ({"quants": ["int3"]}, "int3"),
])
def test_bad_input_names_the_field(kw, field):
    args = {"gpus": ["h100-sxm"], **QUERY, **SMALL, **kw}
    gpus = args.pop("gpus")
    with pytest.raises(ValueError, match=field) as err:
        cm.plan("llama3.1-8b", gpus, **args)
    if field == "ttft":
        assert "nothing meets TTFT ≤ 1 ms" in str(err.value)
        assert "the closest is" in str(err.value)


def test_nothing_fits_says_so():
    with pytest.raises(ValueError, match="gpus: .* fits on none"):
        cm.plan("llama3.1-405b", ["l40s"], **QUERY, tps=(1,), pps=(1,))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "costmodel", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_cli_json_and_plot(tmp_path):
    png = tmp_path / "front.png"
    r = cli("--format", "json", "plan", "--model", "llama3.1-8b", "--gpus", "h100-sxm",
            "--rate", "10", "--input-len", "1024", "--output-len", "128", "--ttft", "0.5",
            "--tpot", "0.03", "--concurrencies", "32", "64", "--max-replicas", "8",
            "--plot", str(png))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["plan"][0]["rank"] == 1 and png.read_bytes()[:4] == b"\x89PNG"
    assert any(t["term"] == "KV cache" for t in out["memory"])


def test_cli_bad_input_is_one_line_exit_2():
    r = cli("plan", "--model", "llama3.1-8b", "--gpus", "h100-sxm", "--rate", "10",
            "--input-len", "1024", "--output-len", "128", "--ttft", "0.001", "--tpot", "0.03",
            "--max-replicas", "4")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("costmodel: error: ttft: nothing meets")
