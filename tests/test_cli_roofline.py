"""CLI commands over the roofline (``costmodel.cli.roofline``): analyze, ai, specdec, sweep —
output shape, formats, plots written exactly where asked, and errors.

Expected numbers come from the course texts or hand algebra, noted at each assertion."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_cli import fail, run, run_csv, run_json, table_row

import costmodel as cm
from costmodel.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def leftovers(folder: Path) -> list[str]:
    """Files or staging folders a failed write may have left."""
    return sorted(p.name for p in folder.iterdir())


# --- analyze -----------------------------------------------------------------------------

def test_analyze_decode_gpt2xl_t4_is_memory_bound(capsys):
    rows = run_json(capsys, "analyze", "--model", "gpt2-xl", "--hardware", "t4",
                    "--context", "1023", "--batch", "1")
    total = rows[-1]
    assert total["op"] == "TOTAL"
    # CS229S §2.2: decoding one token at B=1 is memory-bound on a T4 (intensity ~1 FLOP/byte,
    # far below the ridge 65e12 / 300e9 = 216.7)
    assert total["bound"] == "memory"
    assert total["intensity"] < 2
    # weights dominate: 2 bytes × 1,557,611,200 params (HF count) minus the 1024×1600 position
    # table (only the rows used are read) ≈ 3.11e9 bytes → ≥ 10 ms at 300 GB/s
    assert total["time_us"] > 3.11e9 / 300e9 * 1e6


def test_analyze_prefill_b64_is_compute_bound(capsys):
    rows = run_json(capsys, "analyze", "--model", "gpt2-xl", "--hardware", "t4",
                    "--phase", "prefill", "--context", "1024", "--batch", "64")
    # CS229S §2.1.4, B=64, N=1024: the projections run at intensity ~BN, far past the ridge
    by_op = {r["op"]: r for r in rows}
    assert by_op["mlp_up"]["bound"] == "compute"
    # mlp_up FLOPs = 2·B·N·d·4d = 2·64·1024·1600·6400 per layer, × 48 layers
    assert by_op["mlp_up"]["flops"] == 2 * 64 * 1024 * 1600 * 6400 * 48


def test_analyze_chunk_phase(capsys):
    out = run(capsys, "analyze", "-m", "llama3-8b", "--phase", "chunk", "--chunk", "256",
              "--context", "1024")
    assert "q=256, c=1024" in out
    rows = run_json(capsys, "analyze", "-m", "llama3-8b", "--phase", "chunk", "--chunk",
                    "256", "--context", "1024")
    qkv = next(r for r in rows if r["op"] == "qkv_proj")
    # Llama-3-8B: d = 4096, K and V 8 heads × 128 = 1024 each → QKV width 6144;
    # 2 · 256 tokens · 4096 · 6144 · 32 layers = 412,316,860,416
    assert qkv["flops"] == 2 * 256 * 4096 * 6144 * 32


def test_analyze_tp_allreduce_rows_have_no_intensity(capsys):
    rows = run_json(capsys, "analyze", "-m", "llama3-8b", "--tp", "2")
    allreduce = [r for r in rows if r["comm_bytes"] and not r["bytes"]]
    assert allreduce                                    # TP 2 has all-reduce operators
    assert all(r["intensity"] is None for r in allreduce)
    assert all(r["bound"] == "communication" for r in allreduce)
    out = run(capsys, "analyze", "-m", "llama3-8b", "--tp", "2")
    assert "nan" not in out.lower() and "inf" not in out.split("intensity '-'")[0].lower()


def test_analyze_rows_are_the_api_numbers(capsys):
    rows = run_json(capsys, "analyze", "-m", "llama3-8b", "--phase", "verify", "--gamma", "3",
                    "--context", "777", "--batch", "5", "--tp", "4", "--hardware", "h100-sxm")
    a = cm.verify_step("llama3-8b", "h100-sxm", gamma=3, context=777, batch=5, tp=4)
    ops = a.ops
    assert [r["op"] for r in rows[:-1]] == list(ops["op"])
    assert [r["flops"] for r in rows[:-1]] == list(ops["flops"])
    assert [r["time_us"] for r in rows[:-1]] == pytest.approx(list(ops["time"] * 1e6))
    assert rows[-1]["flops"] == a.flops and rows[-1]["time_us"] == pytest.approx(a.time * 1e6)
    assert sum(r["flops"] for r in rows[:-1]) == rows[-1]["flops"]


def test_analyze_generate_as_json_and_csv(capsys):
    data = run_json(capsys, "analyze", "-m", "gpt2", "--hardware", "t4", "--generate", "8")
    assert set(data) == {"operators", "generation"}
    g = cm.generation("gpt2", "t4", 1024, 8)
    gen = data["generation"][0]
    assert gen["tokens"] == 8
    assert gen["ttft_ms"] == pytest.approx(g.ttft * 1e3)
    assert gen["throughput_tok_s"] == pytest.approx(8 / g.total_time)
    rows = run_csv(capsys, "analyze", "-m", "gpt2", "--hardware", "t4", "--generate", "8")
    assert [r["table"] for r in rows].count("generation") == 1
    assert float(next(r for r in rows if r["table"] == "generation")["tokens"]) == 8


def test_analyze_plot_writes_exactly_the_file(tmp_path, capsys):
    png = tmp_path / "roofchart"                         # no extension: that exact name
    assert main(["analyze", "--model", "gpt2", "--hardware", "t4", "--generate", "8",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "ttft_ms" in out and "throughput_tok_s" in out
    assert f"roofline chart written to {png}" in out
    assert leftovers(tmp_path) == ["roofchart"]
    data = png.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000


def test_analyze_plot_failure_leaves_nothing(tmp_path, capsys):
    target = tmp_path / "taken.png"
    target.mkdir()                                       # a folder where the file should go
    line = fail(capsys, "analyze", "-m", "gpt2", "--plot", str(target))
    assert str(target) in line
    assert leftovers(tmp_path) == ["taken.png"] and not list(target.iterdir())


def test_analyze_plot_other_extension_is_refused(tmp_path, capsys):
    assert ".png" in fail(capsys, "analyze", "-m", "gpt2", "--plot", str(tmp_path / "x.svg"))
    assert leftovers(tmp_path) == []


def test_fitted_hardware_prices_alike_in_cli_api_and_sweep(tmp_path, capsys):
    hw = cm.hardware("a100-80gb").replace(name="fitted", eta_c=0.6, eta_m=0.8,
                                          eta_c_skinny=0.3, eta_m_elementwise=0.5,
                                          kernel_overhead=4e-6)
    path = tmp_path / "fitted.json"
    hw.save(path)
    a = cm.decode_step("llama3-8b", path, context=2048, batch=8)
    rows = run_json(capsys, "analyze", "-m", "llama3-8b", "--hardware", str(path),
                    "--context", "2048", "--batch", "8")
    assert rows[-1]["time_us"] == pytest.approx(a.time * 1e6, rel=1e-12)
    # the efficiencies change the time: the datasheet machine is faster
    assert a.time > cm.decode_step("llama3-8b", "a100-80gb", context=2048, batch=8).time
    swept = run_json(capsys, "sweep", "-m", "llama3-8b", "--hardware", str(path), "--batch",
                     "8", "--context", "2048")
    assert swept[0]["time_ms"] == pytest.approx(a.time * 1e3, rel=1e-9)


def test_efficiency_options_override_the_hardware(capsys):
    ideal = run_json(capsys, "analyze", "-m", "gpt2", "--hardware", "t4")[-1]["time_us"]
    half = run_json(capsys, "analyze", "-m", "gpt2", "--hardware", "t4", "--eta-m", "0.5",
                    "--eta-c", "0.5")[-1]["time_us"]
    # every operator's compute and memory time doubles; without overheads the sum does too
    assert half == pytest.approx(2 * ideal)


# --- ai ----------------------------------------------------------------------------------

def test_ai_reproduces_e0294_and_exact(capsys):
    rows = run_json(capsys, "ai", "--n", "1024", "--d", "128")
    got = {(r["phase"], r["convention"]): r["intensity"] for r in rows}
    # E0294 Problem 1(d) prints 71.310 (prefill) and 0.998 (decode)
    assert got[("prefill", "e0294")] == pytest.approx(71.310, abs=1e-3)
    assert got[("decode", "e0294")] == pytest.approx(0.998, abs=1e-3)
    # exact: (4N²d + 5N²) / ((4Nd + 4N²)·2) with N=1024, d=128
    n, d = 1024, 128
    assert got[("prefill", "exact")] == pytest.approx(
        (4 * n * n * d + 5 * n * n) / ((4 * n * d + 4 * n * n) * 2), abs=1e-4)
    # exact decode: (4Nd + 5N) / ((2Nd + 2d + 4N)·2)
    assert got[("decode", "exact")] == pytest.approx(
        (4 * n * d + 5 * n) / ((2 * n * d + 2 * d + 4 * n) * 2), abs=1e-4)


def test_ai_plot_writes_two_pngs(tmp_path, capsys):
    assert main(["ai", "--plot", str(tmp_path / "ai.png")]) == 0
    assert leftovers(tmp_path) == ["ai-b.png", "ai-n.png"]
    assert (tmp_path / "ai-n.png").read_bytes().startswith(PNG_SIGNATURE)
    assert f"{tmp_path / 'ai-n.png'} and {tmp_path / 'ai-b.png'}" in capsys.readouterr().out


def test_ai_plot_is_all_or_nothing(tmp_path, capsys):
    old = tmp_path / "ai-n.png"
    old.write_bytes(b"the user's old chart")
    (tmp_path / "ai-b.png").mkdir()                      # the second file cannot be written
    fail(capsys, "ai", "--plot", str(tmp_path / "ai.png"))
    assert old.read_bytes() == b"the user's old chart"  # the first one was not replaced
    assert leftovers(tmp_path) == ["ai-b.png", "ai-n.png"]


# --- specdec -----------------------------------------------------------------------------

def test_specdec_optimal_gamma(capsys):
    out = run(capsys, "specdec", "--alpha", "0.75", "--cost-ratio", "0.08")
    # (1−α^(γ+1))/((1−α)(γc+1)) at α=0.75, c=0.08: γ=4 → 2.3112, γ=5 → 2.3486, γ=6 → 2.3419
    assert "optimal gamma = 5" in out


def test_specdec_rows(capsys):
    rows = run_json(capsys, "specdec", "--alpha", "0.75", "--cost-ratio", "0.08", "--gamma",
                    "4", "5")
    # E(α=0.75, γ=4) = (1 − 0.75^5)/(1 − 0.75) = (1 − 0.2373046875)/0.25 = 3.05078125
    assert rows[0]["expected_tokens"] == pytest.approx(3.05078125)
    assert rows[0]["speedup"] == pytest.approx(3.05078125 / 1.32)        # / (4·0.08 + 1)
    assert rows[1]["speedup"] == pytest.approx(2.3486, abs=1e-4)


def test_specdec_optimum_beyond_64_is_found_fast(capsys):
    t0 = time.perf_counter()
    out = run(capsys, "specdec", "--alpha", "0.99", "--cost-ratio", "0.0189", "--gamma", "1")
    # improvement (1−0.99^(γ+1))/(0.01·(0.0189γ + 1)) peaks at γ = 86 (issue 11: the old
    # search stopped at its limit, 64)
    assert "optimal gamma = 86" in out
    assert time.perf_counter() - t0 < 5


def test_specdec_roofline_matches_the_api(capsys):
    rows = run_json(capsys, "specdec", "--alpha", "0.8", "--gamma", "3", "7", "--target",
                    "gpt2-xl", "--draft", "gpt2", "--hardware", "t4", "--context", "512")
    for row in rows:
        r = cm.speculative_speedup("gpt2-xl", "gpt2", "t4", 0.8, row["gamma"], context=512)
        assert row["speedup_roofline"] == pytest.approx(r["speedup"])


def test_specdec_cost_ratio_zero_has_no_optimum(capsys):
    out = run(capsys, "specdec", "--alpha", "0.5", "--cost-ratio", "0")
    assert "no optimal gamma" in out


def test_specdec_large_gamma_is_refused_at_once(capsys):
    t0 = time.perf_counter()
    assert "[1, 1024], got 1000000" in fail(capsys, "specdec", "--gamma", "1000000")
    assert time.perf_counter() - t0 < 2


# --- sweep -------------------------------------------------------------------------------

def test_sweep_rows_and_fits(capsys):
    rows = run_json(capsys, "sweep", "--model", "llama3-8b", "--hardware", "a100-80gb", "t4",
                    "--batch", "1", "--context", "1024")
    assert len(rows) == 2
    fits = {r["hardware"]: r["fits"] for r in rows}
    # 16,060,522,496 bytes of bf16 weights (2 × 8,030,261,248) do not fit in a T4's 15 GiB
    assert fits == {"a100-80gb": True, "t4": False}
    assert "time_ms" in rows[0] and "time" not in rows[0]


def test_sweep_matches_analyze(capsys):
    swept = run_json(capsys, "sweep", "-m", "llama3-8b", "--batch", "4", "--context", "3000",
                     "--tp", "2", "--phase", "prefill")[0]
    a = cm.prefill("llama3-8b", "a100-80gb", context=3000, batch=4, tp=2)
    assert swept["flops"] == a.flops
    assert swept["time_ms"] == pytest.approx(a.time * 1e3, rel=1e-9)


def test_sweep_huge_batch_does_not_wrap(capsys):
    one = run_json(capsys, "sweep", "-m", "llama3-8b", "--batch", "1", "--context", "1024")
    big = run_json(capsys, "sweep", "-m", "llama3-8b", "--batch", str(2**50), "--context",
                   "1024")
    # every FLOP of a decode step is per sequence, so FLOPs are linear in the batch: 2**50 ×
    # those of batch 1 (issue 11: the int64 sweep printed −1.5e25 here)
    assert big[0]["flops"] == pytest.approx(2**50 * one[0]["flops"], rel=1e-12)
    assert big[0]["fits"] is False


def test_sweep_grid_is_bounded(capsys):
    batches = [str(b) for b in range(1, 201)]
    assert "at most 10,000" in fail(capsys, "sweep", "-m", "gpt2", "--batch", *batches,
                                    "--context", *batches)


def test_sweep_table_has_time_ms(capsys):
    out = run(capsys, "sweep", "-m", "gpt2", "--batch", "1", "--context", "512")
    assert "time_ms" in out and table_row(out, "a100-80gb")[2:5] == ["1", "512", "1"]


# --- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "needle"), [
    (["analyze", "--model", "gpt2", "--tp", "5"], "tp:"),   # 5 does not divide 12 heads
    (["analyze", "--model", "llama3-8b", "--hardware", "t4", "--dtype", "bf16"], "bf16"),
    (["specdec", "--alpha", "1.0"], "[0, 1)"),
    (["specdec", "--gamma", "0"], "--gamma"),
    (["analyze", "--model", "gpt2", "--context", "-3"], "--context"),
    (["sweep", "--model", "nope"], "unknown preset"),
    (["analyze", "-m", "gpt2", "--gamma", "1025", "--phase", "verify"], "[1, 1024]"),
    (["analyze", "-m", "gpt2", "--eta-c", "1.5"], "(0, 1]"),
    (["analyze", "-m", "gpt2", "--kernel-overhead", "-1"], "[0, 1]"),
    (["analyze", "-m", "gpt2", "--phase", "prefill", "--context", "0"], "context"),
    (["sweep", "-m", "gpt2", "--batch", "99999999999999999999999"], "at most 2**53"),
    (["analyze", "-m", "gpt2", "--context", str(2**53), "--generate", "2"], "--generate"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    assert needle in fail(capsys, *argv)


def test_bad_value_error_is_one_line(capsys):
    assert fail(capsys, "analyze", "--model", "gpt2", "--tp", "5").startswith(
        "costmodel: error: tp:")


def test_json_has_no_nan(capsys):
    assert main(["-f", "json", "analyze", "-m", "llama3-70b", "--tp", "8", "--generate", "4"]) \
        == 0
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["operators"]
