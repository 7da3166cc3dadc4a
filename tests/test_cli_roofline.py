"""CLI: analyze, ai, specdec, sweep, bench — output shape, formats and errors.

Expected numbers come from the course texts or hand algebra, noted at each assertion."""

from __future__ import annotations

import json

import pytest

from costmodel.cli import main


def run_json(capsys, *argv: str) -> list[dict]:
    assert main(["--format", "json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


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


def test_analyze_generate_and_plot(tmp_path, capsys):
    png = tmp_path / "roof.png"
    assert main(["analyze", "--model", "gpt2", "--hardware", "t4", "--generate", "8",
                 "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "ttft_ms" in out and "throughput_tok_s" in out
    assert png.stat().st_size > 10_000


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
    assert (tmp_path / "ai-n.png").exists() and (tmp_path / "ai-b.png").exists()


def test_specdec_optimal_gamma(capsys):
    assert main(["specdec", "--alpha", "0.75", "--cost-ratio", "0.08"]) == 0
    out = capsys.readouterr().out
    # (1−α^(γ+1))/((1−α)(γc+1)) at α=0.75, c=0.08: γ=4 → 2.3112, γ=5 → 2.3486, γ=6 → 2.3419
    assert "optimal gamma = 5" in out


def test_sweep_rows_and_fits(capsys):
    rows = run_json(capsys, "sweep", "--model", "llama3-8b", "--hardware", "a100-80gb", "t4",
                    "--batch", "1", "--context", "1024")
    assert len(rows) == 2
    fits = {r["hardware"]: r["fits"] for r in rows}
    # 16,060,522,496 bytes of bf16 weights (2 × 8,030,261,248) do not fit in a T4's 15 GiB
    assert fits == {"a100-80gb": True, "t4": False}


@pytest.mark.parametrize("argv", [
    ["analyze", "--model", "gpt2", "--tp", "5"],            # 5 does not divide 12 heads
    ["analyze", "--model", "llama3-8b", "--hardware", "t4", "--dtype", "bf16"],
    ["specdec", "--alpha", "1.0"],
    ["specdec", "--gamma", "0"],
    ["analyze", "--model", "gpt2", "--context", "-3"],
    ["sweep", "--model", "nope"],
])
def test_bad_input_exits_2_with_one_line(argv, capsys):
    try:  # argparse's own checks exit 2; ValueErrors from the API return 2
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "error:" in err.splitlines()[-1] and "Traceback" not in err


def test_bad_value_error_is_one_line(capsys):
    assert main(["analyze", "--model", "gpt2", "--tp", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("costmodel: error: tp:")
