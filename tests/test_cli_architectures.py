"""The CLI over modern architectures, weight formats, engine profiles and error bands: ``params``
(total and active parameters, the checkpoint's formats), ``kv`` (per layer type, latent vs
expanded cache), ``batch`` (EP, formats), ``analyze`` / ``sweep`` / ``specdec`` (``--engine``,
``--quant``, ``--ep``, ``--experts``, ``--mla``, ``--causal``) and the 80 % band beside every
time.

Expected numbers: Hugging Face's own parameter counts (tests/fixtures/hf_configs/RESULTS.md,
recomputed live by tests/test_hf_oracle.py), the format definitions (OCP MX, DeepSeek-V3's
128×128 fp32 block scales, AWQ/GPTQ group scales), and hand algebra at each assertion. Where a
time is checked, it is against ``cm.analyze`` / ``cm.generation`` / ``cm.sweep`` called here
with the same arguments, and a band against the factors of a profile made here.
"""

from __future__ import annotations

import pytest
from test_cli import fail, run, run_csv, run_json

import costmodel as cm
from costmodel import presets
from costmodel.specs import EngineProfile
from costmodel.units import band_text

# Hugging Face's counts (RESULTS.md: `sum(p.numel())` of the causal-LM class on meta)
DEEPSEEK_V3_TOTAL, DEEPSEEK_V3_EXPERTS = 671_026_404_352, 653_908_770_816
MIXTRAL_TOTAL, MIXTRAL_EXPERTS = 46_702_792_704, 45_097_156_608
GPT_OSS_TOTAL, GPT_OSS_EXPERTS = 20_914_757_184, 19_116_933_120
H100_BYTES = 81559 * 2**20          # what an H100 SXM reports (81,559 MiB)

#: A profile made here: its bands are the oracle of the band tests (the bundled profiles'
#: bands are fitted elsewhere and may change).
BANDED = EngineProfile("banded-test", eta_c=0.5, eta_m=0.5, layer_overhead=1e-5,
                       bands={"decode_b1": (0.8, 1.25), "prefill": (0.9, 1.1),
                              "all": (0.5, 2.0)})
BANDLESS = EngineProfile("bandless-test", eta_c=0.5, eta_m=0.5)


@pytest.fixture
def banded(monkeypatch):
    """The engine presets with BANDED and BANDLESS added."""
    bundled = presets.engine_presets()
    monkeypatch.setattr(presets, "engine_presets",
                        lambda: {**bundled, BANDED.name: BANDED, BANDLESS.name: BANDLESS})


def by(rows: list[dict], key: str) -> dict:
    return {r[key]: r for r in rows}


# --- params -------------------------------------------------------------------------------

def test_params_deepseek_v3_total_active_and_its_fp8_checkpoint(capsys):
    rows = by(run_json(capsys, "params", "-m", "deepseek-v3"), "component")
    total = rows["total"]
    assert total["params"] == DEEPSEEK_V3_TOTAL
    # active: all but the routed experts, plus 8 of 256 of them
    # 671,026,404,352 − 653,908,770,816 · 248/256 = 671,026,404,352 − 633,474,121,728
    assert total["active_params"] == 37_552_282_624
    # the checkpoint is fp8 with an fp32 scale per 128×128 block: 1 + 4/16384 bytes a weight
    width = 1 + 4 / (128 * 128)
    assert rows["experts"]["bytes_per_weight"] == width
    # 671,026,404,352 · (1 + 1/4096) = 671,026,404,352 + 163,824,805.75
    assert total["weight_bytes"] == 671_190_229_157.75
    out = run(capsys, "params", "-m", "deepseek-v3")
    assert "fp8-block128" in out and "the checkpoint's format" in out
    assert "8/256" in out and "vendors differ" in out
    # without the input embedding (926,679,040, HF's count): 36,625,603,584
    assert "36625603584" in out


def test_params_gpt_oss_mxfp4_experts_and_a_quant_override(capsys):
    total = run_json(capsys, "params", "-m", "gpt-oss-20b")[-1]
    # the rest at 2 bytes, the routed experts in MXFP4: 4 bits + an 8-bit scale per 32
    # = (4 + 8/32)/8 = 0.53125 bytes: 1,797,824,064 · 2 + 19,116,933,120 · 0.53125
    assert total["weight_bytes"] == (GPT_OSS_TOTAL - GPT_OSS_EXPERTS) * 2 \
        + GPT_OSS_EXPERTS * 0.53125 == 13_751_518_848
    assert total["bytes_per_weight"] is None                   # two widths
    # one token uses 4 of the 32 experts: 1,797,824,064 + 19,116,933,120 / 8
    assert total["active_params"] == 4_187_440_704
    # --quant int4-g128: 4 bits + a 16-bit scale and a 4-bit zero per 128 weights = 0.51953125
    # bytes for every weight, the experts too: 20,914,757,184 · 0.51953125
    total = run_json(capsys, "params", "-m", "gpt-oss-20b", "--quant", "int4-g128")[-1]
    assert total["weight_bytes"] == 10_865_869_943.25
    # --expert-quant alone keeps the checkpoint's dense width
    total = run_json(capsys, "params", "-m", "gpt-oss-20b", "--expert-quant", "fp8")[-1]
    assert total["weight_bytes"] == (GPT_OSS_TOTAL - GPT_OSS_EXPERTS) * 2 + GPT_OSS_EXPERTS


def test_params_mixtral_active_and_a_dense_model(capsys):
    total = run_json(capsys, "params", "-m", "mixtral-8x7b")[-1]
    assert total["active_params"] == MIXTRAL_TOTAL - MIXTRAL_EXPERTS * 6 // 8 == 12_879_925_248
    dense = run_json(capsys, "params", "-m", "llama3-8b")[-1]
    assert dense["active_params"] == dense["params"] == 8_030_261_248
    out = run(capsys, "params", "-m", "gpt2", "--expert-quant", "fp8")
    assert "--expert-quant: no effect, gpt2 has no routed experts" in out


# --- kv -------------------------------------------------------------------------------------

def test_kv_gemma3_by_layer_type_and_per_token_at_the_context(capsys):
    rows = by(run_json(capsys, "kv", "-m", "gemma3-27b", "-c", "32768"), "quantity")
    # Gemma-3-27B: 62 layers, 52 with a 1024-token window (5 local : 1 global, the last 10
    # global), 16 KV heads of 128: 2·16·128·2 = 8,192 bytes per layer-token
    per_layer_token = 2 * 16 * 128 * 2
    assert rows["per token"]["bytes"] == 62 * per_layer_token == 507_904
    assert rows["full-attention layers"]["bytes"] == 10 * 32768 * per_layer_token
    assert rows["window layers"]["bytes"] == 52 * 1023 * per_layer_token      # W − 1 held
    request = (10 * 32768 + 52 * 1023) * per_layer_token
    assert rows["per request"]["bytes"] == request == 3_120_136_192
    assert rows["per token at context"]["bytes"] == request / 32768 == 95_219
    out = run(capsys, "kv", "-m", "gemma3-27b", "-c", "32768")
    assert "10·32768 + 52·1023 = 380876 layer-tokens" in out


def test_kv_mistral_all_window_layers_saturate(capsys):
    rows = by(run_json(capsys, "kv", "-m", "mistral-7b", "-c", "8192"), "quantity")
    # 32 layers, all with W = 4096: each holds 4095 tokens; 2·8·128·2 = 4,096 bytes each
    assert rows["per request"]["bytes"] == 32 * 4095 * 4096 == 536_739_840
    assert rows["full-attention layers"]["bytes"] == 0


def test_kv_deepseek_latent_vs_expanded(capsys):
    latent = by(run_json(capsys, "kv", "-m", "deepseek-v3", "-c", "32768"), "quantity")
    # 61 layers × (kv_lora_rank 512 + rope 64) × 2 bytes: the latent serving engines cache
    assert latent["per token"]["bytes"] == 61 * (512 + 64) * 2 == 70_272
    assert latent["per request"]["bytes"] == 70_272 * 32768
    expanded = by(run_json(capsys, "kv", "-m", "deepseek-v3", "-c", "32768", "--mla",
                           "expanded"), "quantity")
    # Hugging Face caches per-head K (128 + 64) and V (128) for 128 heads
    assert expanded["per token"]["bytes"] == 61 * 128 * (128 + 64 + 128) * 2 == 4_997_120
    assert "Hugging Face" in run(capsys, "kv", "-m", "deepseek-v3", "-c", "8")
    assert "--mla: no effect" in run(capsys, "kv", "-m", "gpt2", "-c", "8", "--mla",
                                      "expanded")


# --- batch ----------------------------------------------------------------------------------

def test_batch_expert_parallel_mixtral(capsys):
    rows = run_json(capsys, "batch", "-m", "mixtral-8x7b", "-H", "h100-sxm", "--ep", "8",
                    "--tp", "1", "--contexts", "4096")
    (row,) = rows
    # experts whole over EP = 8: (P − P_e)·2/TP + P_e·2/EP
    weights = (MIXTRAL_TOTAL - MIXTRAL_EXPERTS) * 2 + MIXTRAL_EXPERTS * 2 // 8
    assert row["weights_per_gpu_bytes"] == weights == 14_485_561_344
    kv = 4096 * 2 * 32 * 8 * 128 * 2                 # one request at TP 1
    assert row["kv_per_request_per_gpu_bytes"] == kv
    # DP = EP/TP = 8 replicas, each ⌊(M − W_GPU) / KV⌋ = ⌊71,035,248,640 / 536,870,912⌋ = 132
    assert (H100_BYTES - weights) // kv == 132
    assert (row["ep"], row["dp"], row["max_batch"]) == (8, 8, 8 * 132)
    out = run(capsys, "batch", "-m", "mixtral-8x7b", "-H", "h100-sxm", "--ep", "8",
              "--contexts", "4096")
    assert "1 of the 8 experts on each" in out and "DP = EP/TP" in out
    # the default TP degrees are those that divide EP (and the heads)
    assert [r["tp"] for r in run_json(capsys, "batch", "-m", "mixtral-8x7b", "--ep", "2",
                                      "--contexts", "1024")] == [1, 2]


def test_batch_formats_and_the_latent_cache(capsys):
    fp8 = run_json(capsys, "batch", "-m", "llama3-8b", "--quant", "fp8", "--tp", "1",
                   "--contexts", "1024")[0]
    # 8,030,261,248 weights at 1 byte: ⌊(85,899,345,920 − 8,030,261,248) / 134,217,728⌋
    assert fp8["max_batch"] == (85_899_345_920 - 8_030_261_248) // 134_217_728 == 580
    absorbed, expanded = (run_json(capsys, "batch", "-m", "deepseek-v2-lite", "--tp", "1",
                                   "--contexts", "4096", "--mla", mla)[0]
                          for mla in ("absorbed", "expanded"))
    # DeepSeek-V2-Lite: 27 layers; latent 512 + 64; expanded 16 heads × (128 + 64 + 128)
    assert absorbed["kv_per_request_per_gpu_bytes"] == 4096 * 27 * (512 + 64) * 2
    assert expanded["kv_per_request_per_gpu_bytes"] == 4096 * 27 * 16 * (128 + 64 + 128) * 2


# --- analyze: engines, formats, EP, bands ---------------------------------------------------

def test_analyze_engine_adds_its_overhead_row_and_prices_as_the_api(capsys):
    rows = by(run_json(capsys, "analyze", "-m", "llama3-8b", "--engine", "tuned"), "op")
    # tuned: 50 µs per layer per pass (engines.csv, REFERENCES §5-6) × 32 layers
    assert rows["engine_overhead"]["time_us"] == pytest.approx(32 * 50)
    a = cm.decode_step("llama3-8b", "a100-80gb", 1024, engine="tuned")
    assert rows["TOTAL"]["time_s"] == a.time
    assert sum(r["time_us"] for op, r in rows.items() if op != "TOTAL") == \
        pytest.approx(a.time * 1e6, rel=1e-12)
    out = run(capsys, "analyze", "-m", "llama3-8b", "--engine", "tuned")
    assert "engine tuned: η_c 0.7, η_m 0.7" in out and "fused attention" in out


def test_analyze_band_from_the_engine_profile(capsys, banded):
    rows = by(run_json(capsys, "analyze", "-m", "gpt2", "--engine", "banded-test"), "op")
    total = rows["TOTAL"]
    assert total["regime"] == "decode_b1"
    assert total["time_lo_s"] == pytest.approx(0.8 * total["time_s"], rel=1e-15)
    assert total["time_hi_s"] == pytest.approx(1.25 * total["time_s"], rel=1e-15)
    out = run(capsys, "analyze", "-m", "gpt2", "--engine", "banded-test")
    assert f"time {band_text(total['time_s'], (0.8 * total['time_s'], 1.25 * total['time_s']))}" \
        in out and ", 80 % band " in out
    # batched decode has no band of its own: the profile's band over all regimes
    total = run_json(capsys, "analyze", "-m", "gpt2", "--engine", "banded-test", "-b", "4")[-1]
    assert total["regime"] == "decode_batched"
    assert total["time_lo_s"] == pytest.approx(0.5 * total["time_s"], rel=1e-15)
    # a profile without bands, and no profile: "no band", empty columns
    for extra in (["--engine", "bandless-test"], []):
        total = run_json(capsys, "analyze", "-m", "gpt2", *extra)[-1]
        assert total["time_lo_s"] is None and total["time_hi_s"] is None
        assert ", no band (regime decode_b1" in run(capsys, "analyze", "-m", "gpt2", *extra)
    csv_total = run_csv(capsys, "analyze", "-m", "gpt2")[-1]
    assert csv_total["time_lo_s"] == "" and csv_total["op"] == "TOTAL"


def test_generation_bands(capsys, banded):
    data = run_json(capsys, "analyze", "-m", "gpt2", "--engine", "banded-test", "--context",
                    "512", "--generate", "64")
    g = data["generation"][0]
    ref = cm.generation("gpt2", "a100-80gb", 512, 64, engine=BANDED)
    assert g["ttft_ms"] == pytest.approx(ref.ttft * 1e3, rel=1e-12)
    # prefill band 0.9–1.1, decode (B = 1) 0.8–1.25; the total adds the ends
    assert g["ttft_lo_ms"] == pytest.approx(0.9 * g["ttft_ms"], rel=1e-12)
    assert g["tpot_first_hi_ms"] == pytest.approx(1.25 * g["tpot_first_ms"], rel=1e-12)
    assert g["tpot_mean_lo_ms"] == pytest.approx(0.8 * g["tpot_mean_ms"], rel=1e-12)
    decode_s = g["total_s"] - g["ttft_ms"] / 1e3
    assert g["total_lo_s"] == pytest.approx(0.9 * g["ttft_ms"] / 1e3 + 0.8 * decode_s,
                                            rel=1e-9)
    out = run(capsys, "analyze", "-m", "gpt2", "--engine", "banded-test", "--context", "512",
              "--generate", "64")
    assert "TTFT " + band_text(ref.ttft, (0.9 * ref.ttft, 1.1 * ref.ttft)) in out


def test_analyze_formats_ep_experts_mla_match_the_api(capsys):
    cases = [
        (["-m", "llama3-8b", "-H", "h100-sxm", "--quant", "fp8"],
         dict(quant="fp8"), "fp8 peak 1979"),
        (["-m", "llama3-8b", "-H", "h100-sxm", "--quant", "int4-g128"],
         dict(quant="int4-g128"), "bf16 peak 989.5"),          # weight-only: 16-bit matmuls
        (["-m", "mixtral-8x7b", "-H", "h100-sxm", "--tp", "2", "--ep", "8", "-b", "16"],
         dict(tp=2, ep=8, batch=16), "EP=8"),
        (["-m", "mixtral-8x7b", "--experts", "all"], dict(experts="all"), ""),
        (["-m", "deepseek-v2-lite", "--mla", "naive"], dict(mla="naive"), ""),
        (["-m", "gpt-oss-20b", "--expert-weight-bytes", "1", "--phase", "prefill", "--causal",
          "half"], dict(expert_weight_bytes=1, causal="half"), ""),
    ]
    for argv, kw, needle in cases:
        rows = run_json(capsys, "analyze", *argv)
        hw = "h100-sxm" if "h100-sxm" in argv else "a100-80gb"
        m = argv[argv.index("-m") + 1]
        phase = "prefill" if "prefill" in argv else "decode"
        a = cm.analyze_phase(m, hw, phase, 1024, **kw)
        assert rows[-1]["time_s"] == a.time and rows[-1]["bytes"] == a.bytes, argv
        assert needle in run(capsys, "analyze", *argv)
    # the experts a batch of 16 touches: fewer bytes than all 8 experts (uniform routing)
    uniform = run_json(capsys, "analyze", "-m", "mixtral-8x7b", "-b", "2")[-1]
    every = run_json(capsys, "analyze", "-m", "mixtral-8x7b", "-b", "2", "--experts", "all")[-1]
    assert uniform["flops"] == every["flops"] and uniform["bytes"] < every["bytes"]


# --- sweep, specdec -------------------------------------------------------------------------

def test_sweep_band_columns_and_ep(capsys, banded):
    rows = run_json(capsys, "sweep", "-m", "gpt2", "--batch", "1", "4", "--context", "256",
                    "--engine", "banded-test")
    one, four = rows
    assert one["time_lo_s"] == pytest.approx(0.8 * one["time_ms"] / 1e3, rel=1e-12)
    assert four["time_hi_s"] == pytest.approx(2.0 * four["time_ms"] / 1e3, rel=1e-12)
    plain = run_json(capsys, "sweep", "-m", "gpt2", "--batch", "1")
    assert all(r["time_lo_s"] is None and r["time_hi_s"] is None for r in plain)
    rows = run_json(capsys, "sweep", "-m", "mixtral-8x7b", "-H", "h100-sxm", "--batch", "1",
                    "64", "--context", "2048", "--tp", "2", "--ep", "8", "--quant", "fp8")
    for r in rows:
        a = cm.decode_step("mixtral-8x7b", "h100-sxm", 2048, r["batch"], tp=2, ep=8,
                           quant="fp8")
        assert r["time_ms"] == pytest.approx(a.time * 1e3, rel=1e-12)
        assert r["dtype"] == "fp8"


def test_specdec_with_an_expert_parallel_target(capsys):
    rows = run_json(capsys, "specdec", "--target", "mixtral-8x7b", "--draft", "gpt2", "-H",
                    "h100-sxm", "--ep", "8", "--engine", "tuned", "--gamma", "3")
    r = cm.speculative_speedup("mixtral-8x7b", "gpt2", "h100-sxm", 0.75, 3, ep=8,
                               engine="tuned", draft_options={"ep": 1})
    assert rows[0]["speedup_roofline"] == r["speedup"]
    out = run(capsys, "specdec", "--target", "gpt2-xl", "--engine", "tuned")
    assert "no band" in out and "engine tuned" in out
    assert "--engine, --quant: no effect with --cost-ratio" in run(
        capsys, "specdec", "--cost-ratio", "0.1", "--engine", "tuned", "--quant", "fp8")


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "needle"), [
    (["params", "-m", "gpt2", "--quant", "int3"], "--quant: unknown format 'int3'"),
    (["params", "-m", "gpt2", "--quant", "int4-g7"], "group size"),
    (["params", "-m", "gpt2", "--quant", "fp8", "--weight-bytes", "1"], "not allowed with"),
    (["analyze", "-m", "gpt2", "--engine", "tuend"], "did you mean 'tuned'"),
    (["analyze", "-m", "gpt2", "--ep", "2"], "ep: gpt2 has no experts"),
    (["analyze", "-m", "mixtral-8x7b", "--ep", "3"], "ep: 3 does not divide the 8 experts"),
    (["analyze", "-m", "mixtral-8x7b", "--ep", "2", "--tp", "4"], "multiple of tp=4"),
    (["batch", "-m", "mixtral-8x7b", "--ep", "16"], "ep: 16 does not divide"),
    (["sweep", "-m", "mixtral-8x7b", "--tp", "8", "--ep", "4"], "multiple of tp=8"),
    (["specdec", "--target", "gpt2-xl", "--ep", "2"], "ep: gpt2-xl has no experts"),
    (["kv", "-m", "gpt2", "-c", "8", "--mla", "latent"], "invalid choice"),
    (["analyze", "-m", "gpt2", "--experts", "some"], "invalid choice"),
])
def test_bad_architecture_options_are_one_line(capsys, argv, needle):
    assert needle in fail(capsys, *argv)
