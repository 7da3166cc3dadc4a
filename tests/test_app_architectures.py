"""The app (AppTest) over modern architectures, weight formats, engine profiles and error bands:
the sidebar's engine, weight-format, EP and MLA-cache pickers and their URL state; the Memory
page's active parameters and KV by layer type; the Roofline page's bands and the MoE decode
intensity vs batch; the Formulas page's MoE, MLA and window formulas with the numbers put in.

Expected numbers: Hugging Face's parameter counts (tests/fixtures/hf_configs/RESULTS.md),
hand algebra at each assertion, and ``cm.analyze`` / ``cm.generation`` / ``cm.sweep`` /
``cm.kv_cache_bytes`` / ``cm.active_param_count`` called here with the same arguments; bands
against the factors of a profile made here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import costmodel as cm  # noqa: E402
from costmodel import presets  # noqa: E402
from costmodel.app import state as S  # noqa: E402
from costmodel.specs import EngineProfile  # noqa: E402
from costmodel.units import band_text, time_text  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
GIB = 2**30
DEEPSEEK_V3_TOTAL = 671_026_404_352          # Hugging Face's count (RESULTS.md)
H200_BYTES = 143771 * 2**20                  # what an H200 reports (143,771 MiB)

BANDED = EngineProfile("banded-app-test", eta_c=0.5, eta_m=0.5, layer_overhead=1e-5,
                       attention="fused", bands={"decode_b1": (0.8, 1.25),
                                                 "prefill": (0.9, 1.1), "all": (0.5, 2.0)})
BANDLESS = EngineProfile("bandless-app-test", eta_c=0.5, eta_m=0.5)


@pytest.fixture
def extra_engines(monkeypatch):
    """The engine presets with BANDED and BANDLESS added (the app lists them too)."""
    bundled = presets.engine_presets()
    table = {**bundled, BANDED.name: BANDED, BANDLESS.name: BANDLESS}
    monkeypatch.setattr(presets, "engine_presets", lambda: table)
    monkeypatch.setattr(S, "engine_presets", lambda: table)


def run(params: dict) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception[0].value
    return at


def metric(at: AppTest, prefix: str) -> str:
    values = [m.value for m in at.metric if m.label.startswith(prefix)]
    assert values, f"no metric {prefix!r} in {[m.label for m in at.metric]}"
    return values[0]


def label(at: AppTest, prefix: str) -> str:
    return next(m.label for m in at.metric if m.label.startswith(prefix))


def texts(at: AppTest, kind: str = "caption") -> str:
    return " | ".join(str(e.value) for e in getattr(at, kind))


def errors(at: AppTest) -> str:
    return texts(at, "error")


def frame(at: AppTest, column: str):
    return next(df.value for df in at.dataframe if column in df.value.columns)


# ---------------------------------------------------------------- Memory page
def test_memory_deepseek_v3_total_active_latent_cache_and_ep():
    at = run({"model": "deepseek-v3", "hw": "h200", "tp": "8", "ep": "8", "context": "4096"})
    assert not at.error
    m = cm.model("deepseek-v3")
    assert metric(at, "Parameters") == f"{DEEPSEEK_V3_TOTAL:,}"
    # active: 671,026,404,352 − 653,908,770,816 · (1 − 8/256) = 37,552,282,624
    assert metric(at, "Active per token") == f"{37_552_282_624:,}" == \
        f"{cm.active_param_count(m):,}"
    # the checkpoint's fp8 with 128×128 fp32 block scales: P · (1 + 4/16384) bytes
    assert "fp8-block128" in label(at, "Weight memory")
    assert metric(at, "Weight memory") == f"{671_190_229_157.75 / GIB:.2f} GiB" == "625.09 GiB"
    # the latent: 61 layers × (512 + 64) × 2 bytes; Hugging Face's expanded cache beside it
    assert metric(at, "KV cache per token") == "70,272 bytes"
    assert metric(at, "KV per token, expanded") == "4,997,120 bytes"
    # TP = EP = 8: weights P·b/8 per GPU; the latent whole on every GPU; DP = 1
    per_gpu = 671_190_229_157.75 / 8
    kv = 4096 * 61 * (512 + 64) * 2
    expected = int((H200_BYTES - per_gpu) // kv)
    assert expected == 232 == cm.max_batch_size(m, "h200", 4096, tp=8, ep=8)
    assert metric(at, "Max batch (s = 4096, TP = 8, EP = 8)") == "232"
    assert "32 of the 256 routed experts lie whole on each GPU" in texts(at, "info")
    # the expanded cache (Hugging Face's layout)
    at.radio(key="mla").set_value("expanded").run()
    assert metric(at, "KV cache per token") == "4,997,120 bytes"
    assert metric(at, "KV cache per request") == \
        f"{cm.kv_cache_bytes(m, 4096, mla='expanded') / GIB:.4f} GiB"
    assert at.query_params["mla"] in ("expanded", ["expanded"])


def test_memory_gemma3_kv_by_layer_type():
    at = run({"model": "gemma3-27b", "context": "32768"})
    m = cm.model("gemma3-27b")
    # 62 layers, 52 with a 1024 window; 2·16·128·2 = 8,192 bytes per layer-token
    full, window = 10 * 32768 * 8192, 52 * 1023 * 8192
    assert cm.kv_by_layer_type(m, 32768) == {"full_layers": full, "window_layers": window}
    assert metric(at, "KV full-attention layers") == f"{full / GIB:.4f} GiB" == "2.5000 GiB"
    assert metric(at, "KV window layers") == f"{window / GIB:.4f} GiB" == "0.4059 GiB"
    assert metric(at, "KV per token at s = 32768") == f"{(full + window) // 32768:,} bytes"
    layers = frame(at, "tokens held per layer").set_index("layers")
    assert layers.loc["sliding window", "tokens held per layer"] == 1023
    assert layers.loc["full attention", "KV bytes per request"] == full
    assert metric(at, "Active per token") == f"{cm.param_count(m):,}"     # dense


def test_weight_format_picker_and_the_checkpoints_formats():
    at = run({"model": "gpt-oss-20b", "hw": "h100-sxm"})
    # the checkpoint: 16-bit weights, MXFP4 experts at (4 + 8/32)/8 = 0.53125 bytes:
    # 1,797,824,064 · 2 + 19,116,933,120 · 0.53125 = 13,751,518,848 bytes
    assert "experts mxfp4" in label(at, "Weight memory")
    assert metric(at, "Weight memory") == f"{13_751_518_848 / GIB:.2f} GiB" == "12.81 GiB"
    assert not [s for s in at.selectbox if s.key == "wbytes"]     # the format decides
    at.selectbox(key="quant").set_value("fp8").run()
    assert label(at, "Weight memory").startswith("Weight memory (fp8")
    assert metric(at, "Weight memory") == f"{20_914_757_184 / GIB:.2f} GiB"    # 1 byte each
    assert "checkpoint's formats" in texts(at)                  # what the checkpoint needs
    assert "dense fp8" in texts(at)                              # the H100 computes in fp8
    at.radio(key="page").set_value("Roofline").run()
    m, hw = cm.model("gpt-oss-20b"), cm.hardware("h100-sxm")
    assert metric(at, "TTFT") == time_text(cm.prefill(m, hw, 1024, quant="fp8").time)
    assert at.query_params["quant"] in ("fp8", ["fp8"])
    # a model without a stated format: auto is b_w
    at = run({"model": "llama3-8b", "quant": "int4-g128"})
    # 4 bits + a 16-bit scale and a 4-bit zero per 128: 0.51953125 bytes per weight
    assert metric(at, "Weight memory") == f"{8_030_261_248 * 0.51953125 / GIB:.2f} GiB"


# ---------------------------------------------------------------- engines and bands
def test_engine_picker_prices_as_analyze_with_the_engine():
    at = run({"page": "Roofline", "engine": "tuned"})
    m, hw = cm.model("llama3-8b"), cm.hardware("a100-80gb")
    g = cm.generation(m, hw, 1024, 128, 1, engine="tuned")      # its attention: fused
    assert metric(at, "TTFT") == time_text(g.ttft)
    assert metric(at, "Time per output token") == time_text(g.tpot_first)
    assert "tuned" in texts(at) and "50 µs per layer per pass" in texts(at)
    # tuned: + 32 layers × 50 µs per pass
    assert g.prefill.fixed == pytest.approx(32 * 50e-6)
    # the default, ideal: the band of the ideal profile if it has one, else "no band"
    at = run({"page": "Roofline"})
    ideal = cm.prefill(m, hw, 1024, engine="ideal")
    shown = band_text(ideal.time, ideal.time_interval) if ideal.time_interval else \
        f"{time_text(ideal.time)}, no band (the ideal profile has none for prefill)"
    assert shown in texts(at)


def test_bands_on_the_roofline_page(extra_engines):
    at = run({"page": "Roofline", "engine": BANDED.name, "model": "gpt2", "context": "512"})
    assert not at.error
    g = cm.generation("gpt2", "a100-80gb", 512, 128, 1, engine=BANDED)
    assert metric(at, "TTFT") == time_text(g.ttft)
    captions = texts(at)
    assert band_text(g.ttft, (0.9 * g.ttft, 1.1 * g.ttft)) in captions            # prefill
    assert band_text(g.tpot_first, (0.8 * g.tpot_first, 1.25 * g.tpot_first)) in captions
    batch = frame(at, "80 % band low (ms)").set_index("batch")
    step1 = cm.decode_step("gpt2", "a100-80gb", 512, 1, engine=BANDED).time
    assert batch.loc[1, "80 % band low (ms)"] == pytest.approx(0.8 * step1 * 1e3, rel=1e-12)
    assert batch.loc[2, "80 % band high (ms)"] == pytest.approx(
        2.0 * batch.loc[2, "step time (ms)"], rel=1e-12)         # batched: the "all" band
    at = run({"page": "Roofline", "engine": BANDLESS.name, "model": "gpt2"})
    assert "no band (the bandless-app-test profile has none for prefill)" in texts(at)
    assert not [c for c in frame(at, "step time (ms)").columns if "band" in c]


def test_fitted_hardware_keeps_its_efficiencies_under_the_ideal_engine():
    hw = cm.hardware("a100-80gb").replace(name="a100-fitted-arch", eta_c=0.6, eta_m=0.5)
    values, _ = S.parse_query_params({})
    assert S.Workload.of(values, cm.model("gpt2"), hw).engine is None
    assert S.Workload.of(values, cm.model("gpt2"), cm.hardware("a100-80gb")).engine == "ideal"
    tuned = S.Workload.of({**values, "engine": "tuned"}, cm.model("gpt2"), hw)
    assert tuned.engine == "tuned" and tuned.attention == "fused"


# ---------------------------------------------------------------- MoE on the Roofline page
def test_moe_decode_intensity_vs_batch_as_the_experts_fill_up():
    at = run({"page": "Roofline", "model": "gpt-oss-20b", "hw": "h100-sxm", "context": "128"})
    assert not at.error
    m, hw = cm.model("gpt-oss-20b"), cm.hardware("h100-sxm")
    top = cm.max_batch_size(m, hw, 128)
    scan = cm.sweep(m, hw, batch=list(range(1, top + 1)), context=128, phase="decode",
                    attention="standard")
    first = int(scan.loc[scan["bound"] == "compute", "batch"].iloc[0])
    assert 1 < first < top
    assert f"batch B = {first:,}" in texts(at, "info")
    assert any("as the experts fill up" in h.value for h in at.subheader)
    table = frame(at, "experts touched per layer (of 32)").set_index("batch")
    # top-4 of 32: U(B) = 32 (1 − (28/32)^B): B = 1 → 4, B = 8 → 21.0045…
    assert table.loc[1, "experts touched per layer (of 32)"] == pytest.approx(4)
    assert table.loc[8, "experts touched per layer (of 32)"] == pytest.approx(
        32 * (1 - (28 / 32) ** 8))
    assert first in table.index                                   # the turning point shown
    assert table.loc[first, "bound"] == "compute"


def test_bad_expert_parallelism_is_one_error_and_the_rest_works():
    at = run({"model": "mixtral-8x7b", "ep": "3"})
    assert "ep: 3 does not divide the 8 experts" in errors(at)
    assert "Valid EP degrees for mixtral-8x7b at TP = 1: 1, 2, 4, 8" in errors(at)
    assert metric(at, "Parameters") == f"{46_702_792_704:,}"      # the rest of the page
    at.number_input(key="ep").set_value(8).run()
    assert not at.error
    assert metric(at, "Max batch (s = 1024, TP = 1, EP = 8)") == \
        f"{cm.max_batch_size('mixtral-8x7b', 'a100-80gb', 1024, ep=8):,}"
    # a dense model has no EP widget and ignores the URL's
    at = run({"model": "llama3-8b", "ep": "8"})
    assert not at.error and not [n for n in at.number_input if n.key == "ep"]


# ---------------------------------------------------------------- Formulas page
def test_formulas_page_moe_mla_and_window_with_numbers():
    at = run({"page": "Formulas", "model": "deepseek-v3", "batch": "64"})
    assert not at.error
    heads = " | ".join(h.value for h in at.subheader)
    assert "Mixture of experts" in heads and "Multi-head latent attention" in heads
    latex = " ".join(x.value for x in at.latex)
    assert "37{,}552{,}282{,}624" in latex                       # active parameters
    assert "70{,}272" in latex and "4{,}997{,}120" in latex      # latent vs expanded KV/token
    # the experts a decode batch of 64 touches: 256 (1 − (248/256)^64) = 222.442…
    assert f"{256 * (1 - (248 / 256) ** 64):,.6g}" == "222.442" and "222.442" in latex
    assert r"\left(1 - \frac{k}{E}\right)^{B}" in latex or r"- \frac{k}{E}" in latex
    at = run({"page": "Formulas", "model": "gemma3-27b", "context": "32768"})
    latex = " ".join(x.value for x in at.latex)
    assert "Sliding-window attention" in " ".join(h.value for h in at.subheader)
    # (L − L_w)·s + L_w·min(s, W − 1) = 10·32768 + 52·1023 = 380,876 layer-tokens
    assert "380{,}876" in latex and "2{,}684{,}354{,}560" in latex


# ---------------------------------------------------------------- URL state
def test_new_fields_round_trip_through_the_url():
    values, warnings = S.parse_query_params({"engine": "tuned", "quant": "int4-g32", "ep": "8",
                                             "mla": "naive"})
    assert not warnings
    assert S.encode_query_params(values) == {"engine": "tuned", "quant": "int4-g32",
                                             "ep": "8", "mla": "naive"}
    values, warnings = S.parse_query_params({"engine": "nope", "quant": "int3", "ep": "0",
                                             "mla": "latent"})
    assert len(warnings) == 4
    for key in ("engine", "quant", "ep", "mla"):
        assert values[key] == S.FIELDS[key].default
        assert any(key in w for w in warnings)
