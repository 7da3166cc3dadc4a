"""The worked-answer notebooks in notebooks/: each one runs from a clean kernel without error, the
committed copies carry their outputs (no machine paths, < 1 MB), and the key numbers they
print match independent hand derivations written out below, not their own earlier output.

Each notebook ends with a cell that prints ``RESULTS {json}``. The checks parse that line from
the fresh execution. Notebooks that have a small mode read ``COSTMODEL_NB_SMALL=1``, which this
test sets; the kernel imports the ``costmodel`` of this checkout (``PYTHONPATH``).
"""

from __future__ import annotations

import json
import math
import os
import re
from fractions import Fraction
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300          # seconds per cell
MAX_BYTES = 1_000_000       # committed notebook size limit
# prefixes of absolute machine paths that must not appear in committed outputs
MACHINE_PATHS = tuple(f"/{top}/" for top in ("work", "root", "tmp", "home"))
E0294 = "01_kv_cache_batch_tp_intensity"
CS229S = "02_gpt2xl_inference_math"
KV_MEASURED = "03_kv_cache_measured"
SPECULATIVE = "04_speculative_decoding"
MODERN = "05_modern_architectures"
PLAN = "06_plan_a_deployment"


def execute(path: Path):
    """Run a notebook top to bottom in a fresh ``python3`` kernel with cwd = notebooks/."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()        # raises CellExecutionError naming the failing cell
    return nb


def results(nb) -> dict:
    """The JSON object the notebook's last ``RESULTS`` line printed."""
    found = None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                for line in out["text"].splitlines():
                    if line.startswith("RESULTS "):
                        found = json.loads(line[len("RESULTS "):])
    assert found is not None, "the notebook printed no 'RESULTS {json}' line"
    return found


# ------------------------------------------------------------------ E0294 Assignment 4, Problem 1
GIB = 2**30
M80 = 80 * GIB                       # "80 GB" as the text and an A100-80GB read it: 85,899,345,920


def kv_request(s: int, tp: int = 1) -> int:
    # Llama3-8B: 2 (K, V) · L 32 · ceil(H_kv 8 / TP) · d_h 128 · 2 bytes = 131,072·ceil(8/TP) / 8
    # per token on one GPU; 131,072 B/token with TP = 1 → 134,217,728 B at s = 1024.
    return 2 * 32 * math.ceil(8 / tp) * 128 * 2 * s


def check_e0294(r: dict) -> None:
    # The text's parameter formula (ques1a.py):
    #   V d = 128256 · 4096 = 525,336,576 (twice: embeddings and output layer)
    #   L (2 d d_ff + d_ff + d) = 32 · (117,440,512 + 14,336 + 4,096) = 3,758,686,208
    #   L d (d + 2 H_kv d_h) = 32 · 4096 · 6144 = 805,306,368
    p_text = 2 * 525_336_576 + 3_758_686_208 + 805_306_368
    assert p_text == 5_614_665_728
    assert r["e0294_params"] == p_text
    w_text = 2 * p_text                                    # 11,229,331,456 B = 10.458 GiB
    # (a) ⌊(80 GiB − W) / KV(s)⌋: the text's table 556 / 278 / 139
    expected = [(M80 - w_text) // kv_request(s) for s in (1024, 2048, 4096)]
    assert expected == [556, 278, 139]
    assert r["e0294_max_batch"] == expected
    # (b) ⌊(80 GiB − W/TP) / (KV/TP)⌋ at s = 1024: 1196 / 2476 / 5036
    expected = [int((M80 - Fraction(w_text, tp)) / kv_request(1024, tp)) for tp in (2, 4, 8)]
    assert expected == [1196, 2476, 5036]
    assert r["e0294_tp_max_batch"] == expected
    # (d) the text's counts at N = 1024, d = 128, b = 2:
    #   prefill (4N²d + 5N²) / ((3N² + 5Nd)·2) = 542,113,792 / 7,602,176 = 71.310
    #   decode  (4Nd + 5N) / (((2N + 1)d + 3N)·2) = 529,408 / 530,688 = 0.998
    n, d, b = 1024, 128, 2
    assert r["e0294_ai"]["prefill"] == pytest.approx(
        (4 * n * n * d + 5 * n * n) / ((3 * n * n + 5 * n * d) * b), rel=1e-12)
    assert round(r["e0294_ai"]["prefill"], 3) == 71.310
    assert r["e0294_ai"]["decode"] == pytest.approx(
        (4 * n * d + 5 * n) / (((2 * n + 1) * d + 3 * n) * b), rel=1e-12)
    assert round(r["e0294_ai"]["decode"], 3) == 0.998

    # Exact Llama3-8B count (Hugging Face's): embeddings 525,336,576 + attention
    # L (2 d H d_h + 2 d H_kv d_h) = 32 · (33,554,432 + 8,388,608) = 1,342,177,280 + SwiGLU
    # 3 L d d_ff = 5,637,144,576 + RMSNorms (2L + 1) d = 266,240 + LM head 525,336,576
    p = 525_336_576 + 1_342_177_280 + 5_637_144_576 + 266_240 + 525_336_576
    assert p == 8_030_261_248
    assert r["exact_params"] == p
    w = 2 * p                                              # 16,060,522,496 B = 14.96 GiB
    # ⌊(85,899,345,920 − 16,060,522,496) / 134,217,728⌋ = 520 at 1024 (then 260, 130)
    expected = [(M80 - w) // kv_request(s) for s in (1024, 2048, 4096)]
    assert expected == [520, 260, 130]
    assert r["exact_max_batch"] == expected
    # "80 GB" read literally as 80e9 bytes: ⌊(80e9 − W) / KV⌋ = 476, 238, 119
    expected = [(80 * 10**9 - w) // kv_request(s) for s in (1024, 2048, 4096)]
    assert r["exact_max_batch_80e9"] == expected == [476, 238, 119]
    # TP: W/TP per GPU and ceil(8/TP) KV heads per GPU; TP = 16 replicates each KV head on 2
    # GPUs, so KV per GPU stays at the TP = 8 value: ⌊(M − W/16) / 16,777,216⌋ = 5060
    expected = {str(tp): int((M80 - Fraction(w, tp)) / kv_request(1024, tp))
                for tp in (1, 2, 4, 8, 16)}
    assert expected == {"1": 520, "2": 1160, "4": 2440, "8": 5000, "16": 5060}
    assert r["exact_tp_max_batch"] == expected

    # Exact attention counts (Algorithm 0: S and P each written and read once):
    #   prefill (4N²d + 5N²) / ((4Nd + 4N²)·b) = 542,113,792 / 9,437,184 = 57.444
    #   decode  (4Nd + 5N) / ((2Nd + 2d + 4N)·b) = 529,408 / 532,992 = 0.99328
    assert r["exact_ai"]["prefill"] == pytest.approx(
        (4 * n * n * d + 5 * n * n) / ((4 * n * d + 4 * n * n) * b), rel=1e-12)
    assert r["exact_ai"]["decode"] == pytest.approx(
        (4 * n * d + 5 * n) / ((2 * n * d + 2 * d + 4 * n) * b), rel=1e-12)
    # Batched decode at B = 256: per-request K/V → unchanged; shared K/V → bytes
    # (B(2d + 4N) + 2Nd)·b; the text's ((2N + 1)d + 3NB)·b
    bb = 256
    flops = bb * (4 * n * d + 5 * n)
    ai = r["decode_ai_b256"]
    assert ai["per_request"] == pytest.approx(r["exact_ai"]["decode"], rel=1e-12)
    assert ai["shared"] == pytest.approx(flops / ((bb * (2 * d + 4 * n) + 2 * n * d) * b))
    assert ai["e0294"] == pytest.approx(flops / (((2 * n + 1) * d + 3 * n * bb) * b))
    # N → ∞: (4d + 5)/(4b) = 517/8; FlashAttention (4d + 5)N/(4d b) meets the A100 ridge
    # 312e12 / 2039e9 FLOPs/byte at N = ridge · 4db / (4d + 5)
    ridge = 312e12 / 2039e9
    assert r["a100_ridge_bf16"] == pytest.approx(ridge)
    assert r["prefill_ai_limit"] == pytest.approx(517 / 8)
    assert r["fused_crossover_n"] == pytest.approx(ridge * 4 * d * b / (4 * d + 5))


# ------------------------------------------------------------------ CS229S Project 1, §2
# GPT2-XL: L = 48, d = 1600, H = 25 (d_h = 64), d_ff = 6400, V = 50257; 16-bit everything.
L, D, H, DFF, V, BYTES = 48, 1600, 25, 6400, 50257, 2
T4_PEAK, T4_BW, T4_MEM = 65e12, 300e9, 15360 * 2**20

# MHA per layer, naive pass over B×N tokens (FLOPs = C1·BN + C2·BN²;
# MEM = C3 + C4·BN + C5·BN² + C6·N²):
C1 = 8 * D**2                 # QKV 6d² + output projection 2d² per token        = 20,480,000
C2 = 4 * D + 5 * H            # QKᵀ and PV 2N d_h each per head, softmax 5/score = 6,525
C3 = (4 * D**2 + 4 * D) * BYTES   # the four d×d weights and their 4d biases       = 20,492,800
C4 = 10 * D * BYTES           # x, QKV, Q, K, V, O, O, projection out per token   = 32,000
C5 = 4 * H * BYTES            # S written, read; P written, read, per head        = 200
C6 = BYTES                    # the N×N causal mask, shared by the batch          = 2
# MLP per layer: 2·(d·d_ff)·2 FLOPs + GELU 8 per element; weights 2 d d_ff + biases;
# per token read x, write/read/write/read the d_ff activations, write d.
MLP_F = 4 * D * DFF + 8 * DFF                 # 41,011,200
MLP_W = (2 * D * DFF + DFF + D) * BYTES       # 40,976,000
MLP_T = (2 * D + 4 * DFF) * BYTES             # 57,600
# Decode (q = 1, N keys): per sequence MHA bytes 12d (x, QKV, new K/V in and out, q, o, o,
# out) + 2Nd (K and V from the cache) + 4HN (S, P), plus the N-element mask row.
DEC_T = 12 * D * BYTES + MLP_T                # 96,000 per sequence, without the N terms
DEC_N = (2 * D + 4 * H) * BYTES               # 6,600 per sequence per key


def roofline(flops: float, nbytes: float) -> tuple[float, str]:
    t_c, t_m = flops / T4_PEAK, nbytes / T4_BW
    return max(t_c, t_m), "compute" if t_c > t_m else "memory"


def check_cs229s(r: dict) -> None:
    assert r["mha"] == {"C1": 20_480_000, "C2": 6_525, "C3": 20_492_800, "C4": 32_000,
                        "C5": 200, "C6": 2}
    assert r["mha"] == {"C1": C1, "C2": C2, "C3": C3, "C4": C4, "C5": C5, "C6": C6}
    assert r["mlp"] == {"flops_per_token": MLP_F, "bytes_const": MLP_W, "bytes_per_token": MLP_T}

    for bb, n in ((1, 32), (1, 1024), (64, 32), (64, 1024)):
        key = f"B={bb}, N={n}"
        f_naive = L * bb * ((C1 + MLP_F) * n + C2 * n * n)
        q_naive = L * (C3 + MLP_W + (C4 + MLP_T) * bb * n + C5 * bb * n * n + C6 * n * n)
        t_naive, bound = roofline(f_naive, q_naive)
        got = r["naive"][key]
        assert got["flops"] == pytest.approx(f_naive, rel=1e-12)
        assert got["bytes"] == pytest.approx(q_naive, rel=1e-12)
        assert got["time_s"] == pytest.approx(t_naive, rel=1e-9)
        assert got["bound"] == bound
        # KV-cache decode with N − 1 tokens cached (N keys)
        f_dec = L * bb * (C1 + MLP_F + C2 * n)
        q_dec = L * (C3 + MLP_W + bb * (DEC_T + DEC_N * n) + BYTES * n)
        t_dec, bound = roofline(f_dec, q_dec)
        got = r["decode"][key]
        assert got["flops"] == pytest.approx(f_dec, rel=1e-12)
        assert got["bytes"] == pytest.approx(q_dec, rel=1e-12)
        assert got["bound"] == bound == "memory"
        assert got["speedup"] == pytest.approx(t_naive / t_dec, rel=1e-9)
    assert [r["naive"][k]["bound"] for k in ("B=1, N=32", "B=64, N=1024")] == ["memory",
                                                                                "compute"]
    # KV per layer 2·B·N·d·b = 6,553,600 B at B = 1, N = 1024. On the T4 (15360 MiB):
    # ⌊(16,106,127,360 − 2·1,557,611,200) / (1024 · 2·48·1600·2)⌋ = ⌊12,990,904,960 /
    # 314,572,800⌋ = 41, so B = 64 at N = 1024 does not fit; the others do.
    assert r["kv_layer_bytes_B1_N1024"] == 2 * 1024 * D * BYTES
    p_xl = 1_557_611_200
    assert r["t4_max_batch_1024"] == (T4_MEM - 2 * p_xl) // (1024 * 2 * L * D * BYTES) == 41
    assert r["fits"] == {"B=1, N=32": True, "B=1, N=1024": True, "B=64, N=32": True,
                         "B=64, N=1024": False}

    # §2.3 shortcut: t ≈ weight bytes read by one B = 1 decode step / bandwidth. Per layer
    # 12d² + 13d weights (QKV + out + MLP, biases 3d + d + 4d + d, two LayerNorms 4d), plus the
    # d×V LM head, one token row and one position row (2d) and the final LayerNorm (2d).
    def weight_read(layers: int, d: int) -> int:
        return (layers * (12 * d * d + 13 * d) + V * d + 4 * d) * BYTES

    w_small, w_xl = weight_read(12, 768), weight_read(L, D)
    assert (w_small, w_xl) == (247_309_824, 3_111_952_000)
    assert r["latency_s"]["gpt2"] == pytest.approx(w_small / T4_BW, rel=1e-12)      # 824 µs
    assert r["latency_s"]["gpt2-xl"] == pytest.approx(w_xl / T4_BW, rel=1e-12)     # 10.37 ms
    c = w_small / w_xl
    assert r["cost_ratio"] == pytest.approx(c, rel=1e-12)
    assert 0.075 < c < 0.085                                                         # c ≈ 0.08

    # Optimal γ at α = 0.75: maximise (1 − α^(γ+1)) / ((1 − α)(γc + 1)) (bonus token), or
    # (1 − α^γ) / ((1 − α)(γc + 1)) (CS229S's algorithm, no bonus token).
    def best(bonus: bool) -> int:
        a = 0.75
        return max(range(1, 65), key=lambda g: (1 - a ** (g + bonus)) / ((1 - a) * (g * c + 1)))

    assert r["optimal_gamma"] == best(True) == 5
    assert r["optimal_gamma_no_bonus"] == best(False) == 7
    assert r["speedup_at_optimum"] == pytest.approx((1 - 0.75**6) / (0.25 * (5 * c + 1)))

    # The temperature toy: α = 1 − TV is a probability, equals the top-1 agreement for greedy
    # decoding, and the notebook's narrative holds: the under-confident draft loses acceptance
    # at T = 1, the noisy copy gains it.
    alpha = r["toy_alpha"]
    assert all(0 <= v <= 1 for v in alpha.values())
    under = {k.split(" | ")[1]: v for k, v in alpha.items() if k.startswith("under")}
    noisy = {k.split(" | ")[1]: v for k, v in alpha.items() if k.startswith("noisy")}
    assert 0.7 < under["greedy (T → 0)"] < 0.8 and 0.7 < noisy["greedy (T → 0)"] < 0.8
    assert under["sampling, T = 1.0"] < under["sampling, T = 0.5"] < under["greedy (T → 0)"]
    assert noisy["sampling, T = 1.0"] > noisy["greedy (T → 0)"]


# ------------------------------------------------------------------ Assignment 1, minGPT, E0294 P2
SEED001_LINE = {
    "device": re.compile(r"^device: (cpu|cuda|mps)$"),
    "model": re.compile(r"^(gpt-mini|gpt2) \((\d+\.\d)M params\)$"),
    "row": re.compile(r"^ *(\d+) +(\d+\.\d\d) +(\d+\.\d\d) +(\d+\.\d\d)x$"),
}
SEED001_HEADER = "Context T  no KV (ms)  KV (ms)  speedup"


def parse_seed001(table: str) -> dict[str, dict]:
    """The benchmark_results.txt layout of the minGPT homework, line by line."""
    lines = table.rstrip("\n").split("\n")
    assert SEED001_LINE["device"].match(lines[0]), lines[0]
    blocks, i = {}, 1
    while i < len(lines):
        m = SEED001_LINE["model"].match(lines[i])
        assert m, f"expected 'name (X.XM params)', got {lines[i]!r}"
        assert lines[i + 1] == SEED001_HEADER
        assert lines[i + 2] == "-" * 50
        rows, i = [], i + 3
        while i < len(lines) and SEED001_LINE["row"].match(lines[i]):
            t, a, b, s = SEED001_LINE["row"].match(lines[i]).groups()
            rows.append((int(t), float(a), float(b), float(s)))
            i += 1
        assert rows, f"{m.group(1)}: no rows"
        blocks[m.group(1)] = {"params_m": float(m.group(2)), "rows": rows}
    return blocks


def gpt_params(n_layer: int, d: int, vocab: int = 50257, block: int = 2048) -> int:
    # GPT-2 layout, tied head: wte V d + wpe block d + per layer (LN 2d, QKV 3d² + 3d, proj
    # d² + d, LN 2d, MLP 4d² + 4d + 4d² + d) = 12d² + 13d, + final LN 2d.
    return vocab * d + block * d + n_layer * (12 * d * d + 13 * d) + 2 * d


def check_kv_measured(r: dict) -> None:
    from costmodel.reference.config import GPTConfig

    # Q1: q, k, v of gpt-mini's multi-head attention are (B, n_head, T, C // n_head); the
    # seed-001 cache stores k before the head split, (B, T, C).
    qkv = r["qkv"]
    cfg = GPTConfig.from_preset(qkv["model"])
    assert (cfg.n_head, cfg.n_embd) == (6, 192)
    want = [qkv["B"], cfg.n_head, qkv["T"], cfg.n_embd // cfg.n_head]
    assert qkv["shapes"] == {"q": want, "k": want, "v": want}
    assert qkv["cache_shape"] == [qkv["B"], qkv["T"], cfg.n_embd]
    # Q3/Q4: row i of tril(ones(T, T)) has i + 1 leading ones, then zeros
    mask = r["mask"]
    i, t = mask["i"], mask["T"]
    assert 0 <= i < t and sum(mask["row"]) == i + 1
    assert mask["row"] == [1] * (i + 1) + [0] * (t - i - 1)

    # seed 001's table, in its exact layout; the header's parameter count is the model's
    blocks = parse_seed001(r["seed001_table"])
    assert list(blocks)[0] == "gpt-mini"
    import costmodel as cm

    assert gpt_params(6, 192) == cm.param_count(cm.model("gpt-mini")) == 12_712_128
    assert blocks["gpt-mini"]["params_m"] == round(cm.param_count(cm.model("gpt-mini")) / 1e6, 1)
    if "gpt2" in blocks:      # block size 2048: 124,439,808 + 1024 · 768 more position rows
        assert blocks["gpt2"]["params_m"] == round(gpt_params(12, 768) / 1e6, 1) == 125.2
    for block in blocks.values():
        for _, a, b, s in block["rows"]:
            assert a > 0 and b > 0      # each printed to 0.005: the ratio moves at most this far
            assert abs(s - a / b) <= 0.005 + (a + 0.005) / (b - 0.005) - a / b + 1e-9
    # measured and predicted side by side; the cache wins at the longest context of each model
    for block in blocks.values():
        t_, a, b, _ = block["rows"][-1]
        assert t_ >= 128 and a > b
    assert len(r["seed001_predicted"]) == sum(len(b["rows"]) for b in blocks.values())
    assert all(p["no_kv_pred_ms"] > 0 and p["kv_pred_ms"] > 0 for p in r["seed001_predicted"])

    # seed 000: at the last positions re-encoding everything costs more than one cached step
    pos = r["position"]
    assert pos["no_cache_last_ms"] > pos["kv_last_ms"]
    # E0294 (d): 8 tokens after each prompt length; the cache wins at the longest prompt, and
    # the prediction grows with the length for the no-cache run
    rows = r["e0294"]
    assert all(x["num_tokens"] == 8 for x in rows)
    assert [x["seq_len"] for x in rows][:3] == [10, 50, 100]
    assert rows[-1]["no_kv_s"] > rows[-1]["with_kv_s"]
    preds = [x["no_kv_pred_s"] for x in rows]
    assert preds == sorted(preds)


def check_speculative(r: dict) -> None:
    assert r["greedy_equal"] is True
    c = r["cost_ratio"]
    assert all(v > 0 for v in c.values())
    # the draft has 1 layer to the target's 8 and 27x fewer parameters: a draft step is cheaper
    assert c["measured"] < 1 and c["roofline, calibrated"] < 1
    assert c["roofline, ideal"] < c["roofline, calibrated"]
    assert set(r["modes"]) == {"greedy", "sampled, T = 1.0"}
    for mode in r["modes"].values():
        a = mode["alpha"]
        assert 0 <= a <= 1 and 0 <= mode["alpha_distribution"] <= 1
        acc = sum(x["accepted"] for x in mode["rows"])
        risk = sum(x["at_risk"] for x in mode["rows"])
        assert a == pytest.approx(acc / risk)
        for x in mode["rows"]:
            g = x["gamma"]
            assert 0 <= x["accepted"] <= x["at_risk"]
            # S(α, γ, c) = (1 − α^(γ+1)) / ((1 − α)(γc + 1)), evaluated here
            for key, ratio in (("pred_c_measured", c["measured"]),
                               ("pred_c_roofline", c["roofline, calibrated"])):
                assert x[key] == pytest.approx(
                    (1 - a ** (g + 1)) / ((1 - a) * (g * ratio + 1)), rel=1e-9)
            assert x["expected_tokens"] == pytest.approx((1 - a ** (g + 1)) / (1 - a))
            assert x["measured_speedup"] > 0


# ------------------------------------------------------------------ modern architectures
# The H100 SXM5 80GB as nvidia-smi reports it: 81,559 MiB (costmodel/data/hardware.csv,
# "h100-sxm"), 3.35 TB/s (NVIDIA H100 datasheet). Every number below is derived from the models'
# public config.json files (copied in tests/fixtures/hf_configs/, sources in SOURCES.md there);
# bf16 KV cache (2 bytes per element).
H100_BYTES = 81_559 * 2**20                    # 85,520,809,984 bytes = 79.65 GiB
H100_BW = 3.35e12
CTX = 32_768


def check_modern(r: dict) -> None:
    assert r["context"] == CTX and r["memory_bytes"] == H100_BYTES == 85_520_809_984
    ds, mx, gm = r["deepseek-v3"], r["mixtral-8x7b"], r["gemma3-27b"]
    oss, ll = r["gpt-oss-20b"], r["llama3.1-405b"]

    # --- DeepSeek-V3 (deepseek-v3.json): hidden 7168, vocab 129280, 61 layers, the first 3
    # (first_k_dense_replace) dense with intermediate 18432, the other 58 with 256 routed experts
    # (top 8) and 1 shared, moe_intermediate 2048; MLA with 128 heads, q_lora_rank 1536,
    # kv_lora_rank 512, qk_nope_head_dim 128, qk_rope_head_dim 64, v_head_dim 128.
    # MLA caches the latent (512) and the rotary key shared by the heads (64) per layer-token:
    # 576 elements; × 61 layers × 2 bytes = 70,272 bytes per token — the "70.272 KB" of
    # DeepSeek-AI, "Insights into DeepSeek-V3" (ISCA 2025, arXiv:2505.09343), Table 1.
    assert ds["kv_elements_per_layer_token"] == 512 + 64 == 576
    assert ds["kv_bytes_per_token"] == 576 * 61 * 2 == 70_272
    assert ds["kv_request_bytes"] == 70_272 * CTX == 2_302_672_896          # 2.14 GiB
    assert ds["kv_window_layers_bytes"] == 0
    # what Hugging Face caches: every head's K (128 + 64) and V (128): 128 · 320 · 61 · 2
    assert ds["kv_bytes_per_token_expanded"] == 128 * (128 + 64 + 128) * 61 * 2 == 4_997_120
    d, v = 7168, 129_280
    emb = v * d                                                # 926,679,040; the LM head too
    attn = (d * 1536 + 1536 + 1536 * 128 * (128 + 64)          # q_a, q_a_layernorm, q_b
            + d * (512 + 64) + 512 + 512 * 128 * (128 + 128)   # kv_a (+ rotary key), norm, kv_b
            + 128 * 128 * d)                                   # o_proj
    expert = 3 * d * 2048                                      # gate, up, down
    routed = 58 * 256 * expert                                 # 653,908,770,816
    router = 58 * 256 * d              # its e_score_correction_bias is a buffer, not a weight
    norms = (2 * 61 + 1) * d
    p = 2 * emb + 61 * attn + 3 * 3 * d * 18432 + routed + 58 * expert + router + norms
    assert p == 671_026_404_352          # = Hugging Face's count (hf_configs/RESULTS.md)
    assert ds["params"] == p and round(p / 1e9) == 671     # "671B total" (arXiv:2412.19437)
    active = p - routed + routed * 8 // 256
    assert ds["active_params"] == active == 37_552_282_624
    # "37B activated for each token" leaves out the input embedding (a lookup): 36.63B
    assert ds["embedding_params"] == emb
    assert round((active - emb) / 1e9) == 37 and round(active / 1e9) == 38
    # fp8 (e4m3) weights with an fp32 scale per 128 × 128 block (quantization_config
    # weight_block_size [128, 128]): 1 + 4/128² bytes per weight, every parameter priced so
    b8 = 1 + 4 / 128**2
    assert ds["weight_bytes"] == pytest.approx(p * b8, rel=1e-12)
    # 8 GPUs, TP8 · EP8: each GPU holds 1/8 of every weight (83,898,778,645 bytes) and the whole
    # latent of every request (the latent is shared by the heads, so TP does not split it):
    # ⌊(85,520,809,984 − 83,898,778,645) / 2,302,672,896⌋ = ⌊0.70⌋ = 0
    assert ds["weights_per_gpu"]["tp8-ep8"] == pytest.approx(p * b8 / 8, rel=1e-12)
    assert (H100_BYTES - p * b8 / 8) // 2_302_672_896 == 0 == ds["max_batch"]["tp8-ep8"]
    # The checkpoint keeps the embedding, LM head, router and norms in bf16 (one byte more each):
    # still 0.
    assert (H100_BYTES - (p * b8 + 2 * emb + router + norms) / 8) // 2_302_672_896 == 0
    # 16 GPUs, TP8 · EP16: the non-expert weights over 8, the routed experts over 16; 2 attention
    # replicas of 8 GPUs each serve their own requests: 2 · ⌊(M − 43,019,502,613) / 2,302,672,896⌋
    w16 = (p - routed) * b8 / 8 + routed * b8 / 16
    assert ds["weights_per_gpu"]["tp8-ep16"] == pytest.approx(w16, rel=1e-12)
    assert ds["max_batch"]["tp8-ep16"] == 2 * int((H100_BYTES - w16) // 2_302_672_896) == 36

    # --- Mixtral-8x7B (mixtral-8x7b-v0.1.json): hidden 4096, 32 layers, 32 heads / 8 KV heads of
    # 4096 / 32 = 128, 8 experts (top 2) of intermediate 14336, vocab 32000, untied head.
    assert mx["kv_bytes_per_token"] == 2 * 32 * 8 * 128 * 2 == 131_072          # 128 KiB
    assert mx["kv_request_bytes"] == 131_072 * CTX == 4 * 2**30
    d, v = 4096, 32_000
    experts = 32 * 8 * 3 * d * 14336                           # 45,097,156,608
    p = 2 * v * d + 32 * (2 * d * d + 2 * d * 1024) + experts + 32 * 8 * d + (2 * 32 + 1) * d
    assert mx["params"] == p == 46_702_792_704 and round(p / 1e8) == 467   # "46.7B" (Mistral AI)
    active = p - experts + experts * 2 // 8
    # Mistral AI's "12.9B parameters per token" counts the input embedding
    assert mx["active_params"] == active == 12_879_925_248 and round(active / 1e8) == 129
    assert mx["weight_bytes"] == 2 * p
    # bf16 on one H100: 93.4 GB of weights > 85.5 GB → 0; TP2: p bytes and 4 KV heads per GPU,
    # ⌊(85,520,809,984 − 46,702,792,704) / (32768 · 2 · 32 · 4 · 128 · 2)⌋ = ⌊18.08⌋ = 18
    assert 2 * p > H100_BYTES and mx["max_batch"]["tp1"] == 0
    assert mx["max_batch"]["tp2"] == (H100_BYTES - p) // (CTX * 2 * 32 * 4 * 128 * 2) == 18

    # --- Gemma-3-27B (gemma-3-27b.json, text config): 62 layers, hidden 5376, 32 heads / 16 KV
    # heads of 128, intermediate 21504, sliding_window 1024; absent from the file, Hugging Face's
    # Gemma3TextConfig defaults: vocab 262208, tied embeddings, sliding_window_pattern 6 (layer
    # i is global when (i + 1) % 6 == 0: 5 local to 1 global).
    n_global = sum((i + 1) % 6 == 0 for i in range(62))
    assert (n_global, 62 - n_global) == (10, 52)
    per_layer = 2 * 16 * 128 * 2                               # 8,192 bytes per layer-token
    # a window layer attends to the last W positions, the new token included: it caches W − 1
    request = per_layer * (10 * CTX + 52 * 1023)
    assert gm["kv_request_bytes"] == request == 3_120_136_192                 # 2.91 GiB
    assert gm["kv_full_layers_bytes"] == per_layer * 10 * CTX
    assert gm["kv_window_layers_bytes"] == per_layer * 52 * 1023
    assert gm["kv_bytes_per_token"] == 62 * per_layer == 507_904              # within the window
    assert gm["kv_bytes_per_token_beyond_window"] == 10 * per_layer == 81_920
    assert round(request / CTX / 2**10) == 93                     # 93 KiB per token on average
    d, v = 5376, 262_208
    p = (v * d + 62 * (d * (32 + 16 + 16) * 128 + 32 * 128 * d + 2 * 128)   # + q/k norms
         + 62 * 3 * d * 21504 + (4 * 62 + 1) * d)                           # 4 norms a layer
    assert gm["params"] == gm["active_params"] == p == 27_009_346_304 and round(p / 1e9) == 27
    assert gm["weight_bytes"] == 2 * p
    # ⌊(85,520,809,984 − 54,018,692,608) / 3,120,136,192⌋ = ⌊10.10⌋ = 10
    assert gm["max_batch"]["tp1"] == (H100_BYTES - 2 * p) // request == 10

    # --- GPT-OSS-20B (gpt-oss-20b.json): 24 layers, layer_types alternating sliding (window 128)
    # and full; hidden 2880, 64 heads / 8 KV heads of 64 with biases, one sink per head; 32
    # experts (top 4) of intermediate 2880 with biases; vocab 201088, untied head.
    per_layer = 2 * 8 * 64 * 2                                 # 2,048 bytes per layer-token
    request = per_layer * (12 * CTX + 12 * 127)
    assert oss["kv_request_bytes"] == request == 808_427_520
    assert oss["kv_bytes_per_token_beyond_window"] == 12 * per_layer
    assert round(request / CTX / 2**10, 1) == 24.1              # KiB per token on average
    d, v = 2880, 201_088
    attn = 2 * d * 4096 + 2 * d * 512 + 4096 + 2 * 512 + d + 64   # q, o, k, v; biases; sinks
    experts = 24 * 32 * (d * 2 * 2880 + 2 * 2880 + 2880 * d + d)   # gate_up, down, biases
    p = 2 * v * d + 24 * attn + experts + 24 * (d * 32 + 32) + (2 * 24 + 1) * d
    assert oss["params"] == p == 20_914_757_184 and round(p / 1e8) == 209   # "20.9B"
    active = p - experts + experts * 4 // 32
    # OpenAI's "3.6B active" (model card, arXiv:2508.10925) leaves out the input embedding
    assert oss["active_params"] == active == 4_187_440_704
    assert round((active - v * d) / 1e8) == 36
    # the experts in mxfp4 (OCP Microscaling: 32 e2m1 values share an e8m0 scale, 4.25 bits),
    # the rest in bf16 (quantization_config modules_to_not_convert: attention, router,
    # embedding, LM head)
    w = (p - experts) * 2 + experts * 4.25 / 8
    assert oss["weight_bytes"] == pytest.approx(w, rel=1e-12)
    assert round(w / 2**30, 1) == 12.8                       # the model card's 12.8 GiB
    # the checkpoint keeps the expert biases in bf16: 9.7 MB more, the same to 0.1 GiB
    assert round((w + 24 * 32 * (2 * 2880 + d) * (2 - 4.25 / 8)) / 2**30, 1) == 12.8
    # ⌊(85,520,809,984 − 13,751,518,848) / 808,427,520⌋ = ⌊88.78⌋ = 88
    assert oss["max_batch"]["tp1"] == (H100_BYTES - w) // request == 88

    # --- Llama-3.1-405B (llama-3.1-405b.json): 126 layers, hidden 16384, 128 heads / 8 KV
    # heads of 128, intermediate 53248, vocab 128256. 2 · 126 · 8 · 128 · 2 = 516,096 bytes per
    # token, the "516.096 KB" of arXiv:2505.09343, Table 1.
    assert ll["kv_bytes_per_token"] == 2 * 126 * 8 * 128 * 2 == 516_096
    assert ll["kv_request_bytes"] == 516_096 * CTX                            # 15.75 GiB
    d, v = 16384, 128_256
    p = 2 * v * d + 126 * (2 * d * d + 2 * d * 1024) + 126 * 3 * d * 53248 + (2 * 126 + 1) * d
    assert ll["params"] == ll["active_params"] == p == 405_853_388_800
    # TP8 in bf16: 2p / 8 = 101,463,347,200 bytes (94.5 GiB) per GPU > 80 GB: nothing fits.
    # fp8: p / 8 per GPU, one KV head per GPU: ⌊(M − 50,731,673,600) / 2,113,929,216⌋ = 16
    kv_gpu = CTX * 2 * 126 * 1 * 128 * 2
    assert 2 * p / 8 > H100_BYTES and ll["max_batch"]["tp8-bf16"] == 0
    assert ll["max_batch"]["tp8-fp8"] == (H100_BYTES - p // 8) // kv_gpu == 16

    # --- MoE weight reads: a token picks k of E experts; routed uniformly, an expert escapes one
    # token with probability 1 − k/E and all B tokens with (1 − k/E)^B, so the batch reads
    # E (1 − (1 − k/E)^B) experts per layer
    for name, (e, k) in {"deepseek-v3": (256, 8), "mixtral-8x7b": (8, 2),
                         "gpt-oss-20b": (32, 4)}.items():
        for b, u in r["experts_touched"][name].items():
            assert u == pytest.approx(e * (1 - (1 - k / e) ** int(b)), rel=1e-9)
    # Decode intensity of the MLP / expert matmuls. Per token a gated MLP does 2 · 3 d d_ff FLOPs
    # and moves its activations, 3 (d + d_ff) elements (x into up and gate, their two outputs,
    # the product into down, its output), against 3 d d_ff weights read once for the T tokens:
    #   AI = (2T / b) / (1 + T (1/d + 1/d_ff))
    # At B = 1 that is 2 / (bytes per weight) within 1 % (the activations are 16-bit, so they
    # weigh relatively more beside 4-bit weights; routers and biases are a few bytes more).
    for name, nbytes in (("deepseek-v3", b8), ("mixtral-8x7b", 2), ("gemma3-27b", 2),
                         ("gpt-oss-20b", 4.25 / 8), ("llama3.1-405b", 2)):
        assert r[name]["decode_intensity"]["mlp_b1"] == pytest.approx(2 / nbytes, rel=0.01)
    # At B = 64 a dense weight serves all 64 tokens; a Mixtral expert 64 · 2 / 8 = 16 (64 tokens
    # touch all 8 experts).
    def mlp_ai(tokens, d, d_ff, nbytes=2):
        return 2 * tokens / nbytes / (1 + tokens * (1 / d + 1 / d_ff))

    assert ll["decode_intensity"]["mlp_b64"] == pytest.approx(mlp_ai(64, 16384, 53248), rel=1e-3)
    assert gm["decode_intensity"]["mlp_b64"] == pytest.approx(mlp_ai(64, 5376, 21504), rel=1e-3)
    assert mx["decode_intensity"]["mlp_b64"] == pytest.approx(mlp_ai(16, 4096, 14336), rel=1e-3)
    # a dense MLP turns compute-bound near B = ridge · b / 2 = (989.5e12 / 3.35e12) · 2 / 2 = 295
    # tokens; Mixtral's experts need E/k = 4 times as many once all are touched (≈ 1181), and a
    # little more: each of an expert's ~300 tokens also moves its activations, about
    # (3d + 3·d_ff)·2 bytes ≈ 110 KB against the expert's 3·d·d_ff·2 ≈ 352 MB of weights (≈ 10 %)
    ridge = 989.5e12 / H100_BW
    assert ridge <= ll["decode_intensity"]["mlp_compute_bound_from"] <= 1.05 * ridge
    assert 4 * ridge <= mx["decode_intensity"]["mlp_compute_bound_from"] <= 1.15 * 4 * ridge

    # --- The roofline: a 32k prefill is compute-bound and does at least 2 FLOPs per weight per
    # token of the layers it runs; a decode step at the largest batch is memory-bound. One
    # Llama-3.1-405B fp8 TP8 decode step reads every weight but the input-embedding table (one
    # row of it) and the request's cache on each GPU, and not much more:
    for name in ("deepseek-v3", "mixtral-8x7b", "gemma3-27b", "gpt-oss-20b", "llama3.1-405b"):
        for t in r[name]["times"].values():
            assert t["prefill_bound"] == "compute" and t["decode_max_bound"] == "memory"
            assert t["decode_max_s"] > t["decode_b1_s"] > 0
    t = ll["times"]["tp8-fp8"]
    low, high = (p - v * d) // 8 + kv_gpu, p // 8 + kv_gpu
    assert low <= t["decode_b1_bytes"] <= 1.01 * high
    assert t["decode_b1_s"] >= t["decode_b1_bytes"] / H100_BW
    assert t["prefill_flops"] >= 2 * (p - 2 * v * d) / 8 * CTX
    g = gm["times"]["tp1"]
    assert g["prefill_flops"] >= 2 * (27_009_346_304 - 262_208 * 5376) * CTX
    # one Gemma request: the weights (the tied embedding is read once as the LM head) + its cache
    assert g["decode_b1_bytes"] >= 2 * 27_009_346_304 + 3_120_136_192


# ------------------------------------------------------------------ 06: plan a deployment
#: On-demand $/GPU-hour of the bundled defaults (Crusoe, fetched 2026-09-19).
PRICES = {"h100-sxm": 3.90, "h200": 4.29, "mi300x": 3.45, "l40s": 1.50}
#: Llama-3.1-70B: parameters (HF config: 80 layers, d 8192, d_ff 28672, 64/8 heads, vocab
#: 128256, untied) and its embeddings + LM head, kept 16-bit by quantized checkpoints.
LLAMA70_PARAMS = 70_553_706_496
LLAMA70_ENDS = 2 * 128256 * 8192


def check_plan(r: dict) -> None:
    for model in ("llama3.1-70b", "deepseek-v3"):
        assert set(r[model]) == set(PRICES)
        assert r["candidates"][model] >= 100_000
        for gpu, row in r[model].items():
            # the targets hold, below 80 % of saturation
            assert row["ttft_s"] <= 1.0 and row["tpot_s"] <= 0.05
            assert row["utilization"] <= 0.8
            # GPUs = replicas × max(TP, EP) × PP; $/h = GPUs × price; $/Mtok over 50 × 2304
            assert row["gpus"] == row["replicas"] * max(row["tp"], row["ep"]) * row["pp"]
            assert row["usd_per_hour"] == pytest.approx(row["gpus"] * PRICES[gpu], rel=1e-6)
            assert row["usd_per_mtok"] == pytest.approx(
                row["usd_per_hour"] / 3600 / (50 * 2304) * 1e6, rel=1e-5)
    for row in r["llama3.1-70b"].values():
        if row["quant"] == "fp8" and row["pp"] == 1:   # 1 byte per weight, 16-bit ends
            hand = ((LLAMA70_PARAMS - LLAMA70_ENDS) * 1 + LLAMA70_ENDS * 2) / row["tp"] / GIB
            assert row["weights_gib"] == pytest.approx(hand, rel=1e-6)
    for c in r["checks"]:
        # one stage: between the whole steps at ⌊D⌋ and ⌈D⌉; PP stages: the pipeline's cycle
        # PP · (largest stage + hand-over) is never shorter than the whole step at ⌊D⌋
        high = c["analyze_hi_ms"] * (1 + 1e-9) if c["pp"] == 1 else math.inf
        assert c["analyze_lo_ms"] * (1 - 1e-9) <= c["decode_step_ms"] <= high
        assert c["decode_step_ms"] <= c["tpot_ms"] <= c["prompt_step_ms"]
    assert len(r["logs"]) >= 8


CHECKS = {E0294: check_e0294, CS229S: check_cs229s, KV_MEASURED: check_kv_measured,
          SPECULATIVE: check_speculative, MODERN: check_modern, PLAN: check_plan}


# ------------------------------------------------------------------ tests
def test_worked_answer_notebooks_present():
    assert {E0294, CS229S, KV_MEASURED, SPECULATIVE, MODERN, PLAN} <= {p.stem for p in NOTEBOOKS}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("COSTMODEL_NB_SMALL", "1")
    # the kernel inherits this environment: small mode, and this checkout's costmodel first
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    assert os.environ["COSTMODEL_NB_SMALL"] == "1"
    nb = execute(path)
    check = CHECKS.get(path.stem)
    if check is not None:
        check(results(nb))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_carries_clean_outputs(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < MAX_BYTES, f"{path.name} is over 1 MB"
    leaked = [p for p in MACHINE_PATHS if p in text]
    assert not leaked, f"{path.name} contains machine paths {leaked}"
    nb = nbformat.reads(text, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert code and all(c.execution_count is not None for c in code), \
        f"{path.name} is committed without outputs; execute it in place"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} is committed with an error output"
