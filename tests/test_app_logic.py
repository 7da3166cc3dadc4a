"""The app's logic without streamlit (costmodel/app): the URL schema, specs from fields and
uploads both ways, the page computations priced exactly as ``cm.analyze`` prices, the display
helpers and the Validation page's robust reading."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import costmodel as cm
from costmodel.app import (
    compute,
    compute_formulas,
    compute_roofline,
    compute_speculative,
    compute_validation,
    display,
    inputs,
    state,
)
from costmodel.app.state import Workload

GIB = 2**30
#: A fitted hardware spec: every efficiency field away from 1, so a path that ignores one of
#: them gives another time. (Values of the order `costmodel validate` fits on a CPU.)
FITTED = cm.hardware("a100-80gb").replace(
    name="a100-fitted", eta_c=0.64, eta_m=0.49, eta_c_skinny=0.11, eta_m_elementwise=0.39,
    skinny_rows=8, kernel_overhead=7.4e-6)


# ---------------------------------------------------------------- state
def test_url_round_trip_and_legacy_links():
    values, warnings = state.parse_query_params({"model": "gpt2", "batch": "8", "eta_c": "0.5",
                                                 "m_n_layers": "3"})
    assert not warnings
    assert values["eta"] == "custom"            # a link with eta_c means custom efficiencies
    encoded = state.encode_query_params(values)
    assert encoded == {"model": "gpt2", "batch": "8", "eta_c": "0.5"}
    assert state.parse_query_params(encoded)[0] == values | {"m_n_layers": 32}
    # custom efficiencies at 1: only `eta` says so
    values, _ = state.parse_query_params({"eta": "custom"})
    assert state.encode_query_params(values) == {"eta": "custom"}
    # the hardware's efficiencies: the sliders' values are not written
    values, _ = state.parse_query_params({"eta": "hardware", "eta_c": "0.3"})
    assert values["eta"] == "hardware" and "eta_c" not in state.encode_query_params(values)
    # the old name of the context
    values, warnings = state.parse_query_params({"prompt": "512"})
    assert values["context"] == 512 and not warnings


@pytest.mark.parametrize("key, text", [("batch", "0"), ("batch", "1e3"), ("context", "nan"),
                                       ("eta_c", "inf"), ("eta_c", "1.5"), ("wbytes", "3"),
                                       ("model", "no-such"), ("m_n_layers", str(2**31)),
                                       ("h_mem_gib", "-1"), ("m_name", "x" * 81),
                                       ("m_gated_mlp", "maybe"), ("page", "Nope")])
def test_bad_url_values_fall_back_with_a_warning_naming_the_field(key, text):
    values, warnings = state.parse_query_params({key: text})
    assert values[key] == state.FIELDS[key].default
    assert len(warnings) == 1 and key in warnings[0]


def test_workload_options_follow_the_efficiency_source():
    base = {**state.defaults(), "batch": 4, "context": 300, "tp": 2, "wbytes": 1.0}
    w = Workload.of(base)
    assert (w.batch, w.context, w.tp, w.weight_bytes) == (4, 300, 2, 1.0)
    assert not w.custom_efficiency
    assert not {"eta_c", "eta_m", "eta_c_skinny", "eta_m_elementwise", "eta_m_quant"} & set(
        w.options())
    w = Workload.of({**base, "eta": "custom", "eta_c": 0.5, "eta_m": 0.25})
    assert w.options()["eta_c"] == w.options()["eta_c_skinny"] == 0.5
    assert w.options()["eta_m"] == w.options()["eta_m_elementwise"] == 0.25
    assert w.options()["eta_m_quant"] == 0.25
    assert "kernel_overhead" not in w.options()     # stays the hardware's


def test_widget_ranges_are_the_specs_limits():
    from costmodel.checks import MAX_DIM
    from costmodel.specs import MAX_MEMORY_BYTES

    assert state.FIELDS["m_n_layers"].hi == MAX_DIM
    assert state.FIELDS["h_mem_gib"].hi * GIB == MAX_MEMORY_BYTES
    assert len(state.PAGES) == len(set(state.PAGES)) == 7


# ---------------------------------------------------------------- inputs
def test_custom_fields_cover_every_model_field_and_round_trip():
    from dataclasses import fields

    from costmodel.specs import ModelSpec

    covered = {f.name for f in state.MODEL_FIELDS}
    assert {f.name for f in fields(ModelSpec)} - covered == {"name", "source"}
    for name, m in cm.model_presets().items():      # windows, experts, latent attention too
        assert inputs.custom_model(inputs.model_fields_of(m)) == m.replace(
            name=f"{name}-custom", source="custom fields in the app"), name
    assert any(m.moe for m in cm.model_presets().values())
    h = cm.hardware("h100-sxm")
    back = inputs.custom_hardware(inputs.hardware_fields_of(h))
    assert back.memory_bytes == h.memory_bytes and back.bandwidth == pytest.approx(h.bandwidth)
    assert back.peak_flops["bf16"] == pytest.approx(h.peak_flops["bf16"])
    assert back.interconnect_latency == pytest.approx(h.interconnect_latency)


def test_custom_model_errors_name_the_field():
    fields = inputs.model_fields_of(cm.model("llama3-8b"))
    with pytest.raises(ValueError, match="n_heads"):
        inputs.custom_model({**fields, "m_n_heads": 30})
    with pytest.raises(ValueError, match="n_kv_heads"):
        inputs.custom_model({**fields, "m_n_kv_heads": 7})
    with pytest.raises(ValueError, match="experts_per_token"):
        inputs.custom_model({**fields, "m_n_experts": 8, "m_experts_per_token": 9})
    with pytest.raises(ValueError, match="weight_format"):
        inputs.custom_model({**fields, "m_weight_format": "int3"})


def test_uploads_keep_the_typed_efficiencies_and_name_bad_fields():
    up = inputs.hardware_from_upload(json.dumps(FITTED.to_dict()).encode())
    assert up == FITTED
    for bad, field in ((dict(FITTED.to_dict(), peak_flops=[1e12]), "peak_flops"),
                       (dict(FITTED.to_dict(), extra=[1, 2]), "extra"),
                       (dict(FITTED.to_dict(), name=None), "name"),
                       (dict(FITTED.to_dict(), eta_c_skinny=2.0), "eta_c_skinny")):
        with pytest.raises(ValueError, match=field):
            inputs.hardware_from_upload(json.dumps(bad).encode())
    with pytest.raises(ValueError, match="nested"):
        inputs.hardware_from_upload(b"[" * 100_000)
    gpt2 = {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12,
            "vocab_size": 50257, "n_positions": 1024}
    m = inputs.model_from_upload(json.dumps(gpt2).encode(), "my-gpt.json")
    assert m.name == "my-gpt" and cm.param_count(m) == 124439808
    assert inputs.model_from_upload(json.dumps(gpt2).encode()).name == "gpt2-config"
    named = inputs.model_from_upload(json.dumps({**gpt2, "_name_or_path": ["x"]}).encode())
    assert named.name == "gpt2-config"       # a non-text name falls back to the file's
    llama = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
             "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
             "vocab_size": 32000, "max_position_embeddings": 32768}
    with pytest.raises(ValueError, match="num_local_experts"):   # not a llama field
        inputs.model_from_upload(json.dumps({**llama, "num_local_experts": 8}).encode())
    windowed = inputs.model_from_upload(json.dumps(
        {**llama, "model_type": "mistral", "sliding_window": 4096}).encode())
    assert (windowed.sliding_window, windowed.window_layers) == (4096, 32)


def test_tp_choices():
    m = cm.model("llama3-8b")                # 32 heads, 8 KV heads
    assert inputs.valid_tps(m) == [1, 2, 4, 8, 16, 32]
    assert inputs.table_tps(m, 32) == (1, 2, 4, 8, 16, 32)
    with pytest.raises(ValueError, match="Valid TP degrees for llama3-8b: 1, 2, 4, 8, 16, 32"):
        inputs.check_workload_tp(m, 3)


def test_efficiency_text():
    assert inputs.efficiency_text(cm.hardware("t4")).startswith("ideal roofline")
    text = inputs.efficiency_text(FITTED)
    assert "0.64" in text and "0.11" in text and "0.39" in text and "7.4 µs" in text


# ---------------------------------------------------------------- compute: one pricing
@pytest.mark.parametrize("hw", [FITTED, cm.hardware("a100-80gb")], ids=["fitted", "preset"])
def test_roofline_page_prices_exactly_as_analyze(hw):
    m = cm.model("llama3-8b")
    w = Workload(batch=4, context=1000, generate=64)
    t = compute_roofline.roofline_times(m, hw, w)
    assert t.ttft == cm.analyze(m, hw, batch=4, new_tokens=1000, cached_tokens=0).time
    assert t.tpot_first == cm.analyze(m, hw, batch=4, new_tokens=1, cached_tokens=1000).time
    assert t.total == cm.generation(m, hw, 1000, 64, 4).total_time
    page = compute_roofline.roofline_page(m, hw, w)
    assert page.times == t
    # the decode-vs-batch table comes from the sweep: the same pricing again
    row = page.batch_table.set_index("batch").loc[1]
    assert row["step time (ms)"] == pytest.approx(cm.decode_step(m, hw, 1000).time * 1e3,
                                                  rel=1e-12)


def test_fitted_efficiencies_change_the_time_and_custom_ones_replace_them():
    m, ideal = cm.model("llama3-8b"), cm.hardware("a100-80gb")
    w = Workload()
    fitted = compute_roofline.roofline_times(m, FITTED, w)
    plain = compute_roofline.roofline_times(m, ideal, w)
    assert fitted.tpot_first > plain.tpot_first / 0.49 * 0.9      # at least the bandwidth
    custom = compute_roofline.roofline_times(m, FITTED, Workload(eta_c=0.5, eta_m=0.5))
    assert custom.tpot_first == cm.decode_step(
        m, FITTED, 1024, eta_c=0.5, eta_m=0.5, eta_c_skinny=0.5, eta_m_elementwise=0.5).time


def test_speculative_page_is_the_api_speedup():
    target, hw = cm.model("llama3-8b"), FITTED
    r = compute_speculative.speculative_page(target, hw, Workload(),
                                             state.SpeculativeSettings(0.75, 5))
    api = cm.speculative_speedup(target, cm.model("gpt2"), hw, 0.75, 5, context=1024)
    assert r.speedup == api["speedup"] and r.cost_ratio == api["cost_ratio"]
    assert r.expected_tokens == pytest.approx((1 - 0.75**6) / 0.25)
    assert list(r.table.columns) == ["γ", "tokens per iteration E", "speedup (×)",
                                     "speedup, no bonus token (×)"]


def test_memory_of_a_huge_model_is_shown_not_crashed():
    m = cm.ModelSpec(name="huge", n_layers=2**31 - 1, d_model=2**20, n_heads=1,
                     vocab_size=2**31 - 1, max_context=2**20, d_ff=2**31 - 1)
    base = compute.memory_basics(m, 1024, 2.0, 2.0)
    assert base.params > 2**63
    col = base.table["parameters"]
    assert col.dtype.kind not in "iuf" and all("e+" in v for v in col[2:4])
    plan = compute.memory_plan(m, cm.hardware("a100-80gb"), Workload(), (1,))
    assert plan.plan.max_batch == 0 and plan.e0294 is None


# ---------------------------------------------------------------- display
def test_display_frame_makes_every_column_showable():
    df = pd.DataFrame({"big": [1, 10**30], "small": [1, 2], "x": [1.0, math.nan],
                       "inf": [math.inf, 2.0], "mixed": ["a", 3], "none": [None, "b"]})
    out = display.display_frame(df)
    assert list(out["big"]) == ["1", "1e+30"]
    assert out["small"].dtype == np.int64
    assert list(out["x"]) == ["1", "—"] and list(out["inf"]) == ["—", "2"]
    assert list(out["mixed"]) == ["a", "3"] and list(out["none"]) == ["—", "b"]
    assert display.rate_text(1234.56, "tokens/s") == "1,234.6 tokens/s"
    assert display.rate_text(1e-17, "tokens/s") == "1e-17 tokens/s"
    assert display.rate_text(math.inf, "tokens/s") == "—"
    assert display.count_text(8030261248) == "8,030,261,248"
    assert display.count_text(5.9e28) == "5.9e+28"
    assert display.fixed_text(14.9574, 2, "GiB") == "14.96 GiB"


# ---------------------------------------------------------------- validation page
def test_validation_results_read_robustly(tmp_path):
    assert compute_validation.validation_results(tmp_path / "missing") == \
        compute_validation.ValidationResults({}, {}, ())
    (tmp_path / "headline.csv").write_text("check,result\nflops,exact\n")
    (tmp_path / "points.csv").write_bytes(b"\x00\xff\xfe garbage \x00")
    (tmp_path / "errors_by_regime.csv").write_text("")
    (tmp_path / "speculative.csv").write_text('a,b\n1,"unclosed\n')
    (tmp_path / "predicted_vs_measured.png").write_bytes(b"not a png")
    (tmp_path / "latency_vs_context.png").write_bytes(compute_validation.PNG_MAGIC + b"rest")
    res = compute_validation.validation_results(tmp_path)
    assert list(res.tables) == ["headline"] + (["points"] if "points" in res.tables else [])
    assert list(res.tables["headline"].columns) == ["check", "result"]
    assert "Latency vs context: KV cache vs no cache" in res.figures
    problems = " ".join(res.problems)
    for name in ("errors_by_regime.csv", "speculative.csv", "predicted_vs_measured.png"):
        assert name in problems
    with pytest.raises(ValueError, match="errors_by_regime.csv"):
        compute_validation.read_table(tmp_path / "errors_by_regime.csv")


def test_committed_validation_files_are_read():
    res = compute_validation.validation_results()
    if not compute_validation.VALIDATION_DIR.is_dir():
        pytest.skip("no data/validation")
    assert not res.problems
    assert "headline" in res.tables and len(res.figures) >= 1
    assert compute_validation.measurement_files(Path("/nonexistent-folder")) == []


# ---------------------------------------------------------------- formats, engines, EP, MLA
def test_workload_resolves_formats_engine_attention_ep_and_mla():
    base = state.defaults()
    # DeepSeek-V3's checkpoint: fp8 with an fp32 scale per 128×128 block = 1 + 4/16384 bytes
    w = Workload.of(base, cm.model("deepseek-v3"))
    assert (w.quant, w.weight_bytes) == ("fp8-block128", 1 + 4 / 16384)
    assert w.options()["quant"] == "fp8-block128" and "weight_bytes" not in w.options()
    # GPT-OSS: 16-bit weights, MXFP4 experts ((4 + 8/32)/8 = 0.53125 bytes)
    w = Workload.of(base, cm.model("gpt-oss-20b"))
    assert (w.quant, w.expert_quant, w.weight_bytes, w.expert_bytes) == (
        None, "mxfp4", 2.0, 0.53125)
    assert w.options()["expert_quant"] == "mxfp4" and w.options()["weight_bytes"] == 2.0
    # a chosen format for every weight: int4 + a 16-bit scale and 4-bit zero per 32 weights
    w = Workload.of({**base, "quant": "int4-g32"}, cm.model("gpt-oss-20b"))
    assert w.weight_bytes == w.expert_bytes == 0.5 + 2.5 / 32 and w.expert_quant is None
    # engine attention; EP and the MLA cache only where the model has experts, latent attention
    w = Workload.of({**base, "engine": "eager", "ep": 8, "mla": "expanded"}, cm.model("gpt2"))
    assert (w.engine, w.attention, w.ep, w.mla) == ("eager", cm.engine("eager").attention, 1,
                                                    "absorbed")
    w = Workload.of({**base, "ep": 8, "mla": "expanded", "attention": "standard",
                     "engine": "tuned"}, cm.model("deepseek-v2-lite"))
    assert (w.ep, w.mla, w.attention) == (8, "expanded", "standard")
    assert w.options()["ep"] == 8 and w.options()["mla"] == "expanded"
    assert w.memory() == {"weight_bytes": 2.0, "expert_weight_bytes": 2.0, "kv_bytes": 2.0,
                          "ep": 8, "mla": "expanded"}


def test_pages_price_formats_engines_and_ep_as_the_api():
    m, hw = cm.model("mixtral-8x7b"), cm.hardware("h100-sxm")
    w = Workload.of({**state.defaults(), "quant": "fp8", "engine": "tuned", "ep": 4, "tp": 2,
                     "batch": 16, "context": 2048}, m, hw)
    t = compute_roofline.roofline_times(m, hw, w)
    g = cm.generation(m, hw, 2048, 128, 16, tp=2, ep=4, quant="fp8", engine="tuned")
    assert (t.ttft, t.tpot_first, t.total) == (g.ttft, g.tpot_first, g.total_time)
    assert t.dtype == "fp8" and t.engine == "tuned" and t.ttft_band == g.ttft_interval
    plan = compute.memory_plan(m, hw, w, (1, 2, 4)).plan
    assert plan.max_batch == cm.max_batch_size(m, hw, 2048, tp=2, weight_bytes=1, ep=4)
    assert plan.dp == 2                                          # EP / TP attention replicas
    r = compute_speculative.speculative_page(m, hw, w, state.SpeculativeSettings(0.75, 3))
    api = cm.speculative_speedup(m, cm.model("gpt2"), hw, 0.75, 3, context=2048, batch=16,
                                 quant="fp8", engine="tuned", attention="fused")
    assert r.speedup == api["speedup"]                           # one GPU: no TP, no EP


def test_memory_basics_active_and_kv_by_layer_type():
    # Mixtral: 46,702,792,704 − 45,097,156,608 · 6/8 (Hugging Face's split, RESULTS.md)
    b = compute.memory_basics(cm.model("mixtral-8x7b"), 1024, 2.0, 2.0)
    assert b.active == 12_879_925_248 and b.kv_window == 0
    # Mistral-7B: every layer a 4096 window; at s = 8192 each holds 4095 tokens × 4,096 bytes
    b = compute.memory_basics(cm.model("mistral-7b"), 8192, 2.0, 2.0)
    assert (b.kv_full, b.kv_window) == (0, 32 * 4095 * 4096)
    assert b.kv_token_at_context == 32 * 4095 * 4096 / 8192
    assert list(b.kv_layers["tokens held per layer"]) == [8192, 4095]
    # DeepSeek-V2-Lite: latent (512 + 64) vs expanded 16 × (128 + 64 + 128), 27 layers
    b = compute.memory_basics(cm.model("deepseek-v2-lite"), 1024, 2.0, 2.0, mla="absorbed")
    assert (b.kv_token, b.kv_token_other) == (27 * 576 * 2, 27 * 16 * 320 * 2)
    # GPT-OSS at its checkpoint's formats vs all at 2 bytes
    b = compute.memory_basics(cm.model("gpt-oss-20b"), 1024, 2.0, 2.0)
    assert b.checkpoint_weights == 13_751_518_848 and b.weights == 2 * 20_914_757_184


def test_architecture_formulas_with_the_workload_numbers():
    m = cm.model("mixtral-8x7b")
    parts = dict(compute_formulas.architecture_formula_list(m, Workload(batch=4)))
    (title, shown), = parts.items()
    assert title.startswith("Mixture of experts")
    by_title = {f.title.split("**")[1]: f.result for f in shown}
    touched = next(v for k, v in by_title.items() if k.startswith("distinct routed experts"))
    assert touched == r"= \mathbf{5.46875}"                      # 8 (1 − 0.75⁴)
    active = next(v for k, v in by_title.items() if k.startswith("active parameters"))
    assert "12{,}879{,}925{,}248" in active
    assert compute_formulas.architecture_formula_list(cm.model("llama3-8b"), Workload()) == []
    with pytest.raises(ValueError, match="ep: 3 does not divide"):
        compute_formulas.architecture_formula_list(m, Workload(ep=3))


def test_engine_text_and_compute_dtype():
    e = cm.engine("tuned").replace(eta_c=0.7, eta_c_8bit=None, eta_m=0.7, eta_m_quant=None,
                                   layer_overhead=50e-6, comm_latency=None, bands={})
    assert inputs.engine_text(e) == ("η_c 0.7, η_m 0.7, 50 µs per layer per pass, "
                                     f"{e.attention} attention; 80 % bands: none (no fitted "
                                     "band yet)")
    h100 = cm.hardware("h100-sxm")
    assert inputs.compute_dtype(h100, Workload(quant="fp8", weight_bytes=1)) == "fp8"
    assert inputs.compute_dtype(cm.hardware("a100-80gb"),
                                Workload(quant="fp8", weight_bytes=1)) == "bf16"   # no fp8
    assert inputs.compute_dtype(h100, Workload(quant="int4-g128", weight_bytes=0.51953125)) \
        == "bf16"                                                 # weight-only
    assert inputs.table_tps(cm.model("mixtral-8x7b"), 1, ep=4) == (1, 2, 4)
