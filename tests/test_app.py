"""The Streamlit app (app.py) through streamlit's AppTest: every page, every kind of input, the
numbers shown (derived here by hand or from the API), URL state, and bad input → st.error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import costmodel as cm  # noqa: E402
from costmodel.app import compute_validation, inputs  # noqa: E402
from costmodel.app import state as S  # noqa: E402
from costmodel.units import time_text  # noqa: E402

APP = str(Path(__file__).resolve().parent.parent / "app.py")
GIB = 2**30
LLAMA3_8B_PARAMS = 8030261248
GPT2_XL_PARAMS = 1557611200


def run(params: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params or {})
    at.run()
    assert not at.exception
    return at


def metric(at: AppTest, prefix: str) -> str:
    values = [m.value for m in at.metric if m.label.startswith(prefix)]
    assert values, f"no metric {prefix!r} in {[m.label for m in at.metric]}"
    return values[0]


def errors(at: AppTest) -> str:
    return " | ".join(e.value for e in at.error)


def change(at: AppTest, kind: str, key: str, value) -> AppTest:
    getattr(at, kind)(key=key).set_value(value).run()
    assert not at.exception
    return at


def page(at: AppTest, name: str) -> AppTest:
    return change(at, "radio", "page", name)


# ---------------------------------------------------------------- memory page
def test_memory_defaults_llama3_8b_on_a100_80gb():
    at = run()
    assert not at.error
    assert metric(at, "Parameters") == f"{LLAMA3_8B_PARAMS:,}"
    # ⌊(80 GiB − 2 bytes · 8,030,261,248) / (1024 tokens · 2 · 32 layers · 8 KV heads · 128 · 2)⌋
    kv_request = 1024 * 2 * 32 * 8 * 128 * 2
    assert kv_request == 134217728
    assert metric(at, "Max batch (s = 1024, TP = 1)") == str(
        (85899345920 - 2 * LLAMA3_8B_PARAMS) // kv_request) == "520"
    assert metric(at, "KV cache per token") == "131,072 bytes"
    assert metric(at, "KV cache per request") == "0.1250 GiB"
    assert metric(at, "Weight memory") == f"{2 * LLAMA3_8B_PARAMS / GIB:.2f} GiB" == "14.96 GiB"
    # the max-batch table and the E0294 comparison
    ctx = next(df.value for df in at.dataframe if "context (tokens)" in df.value.columns)
    assert int(ctx.loc[ctx["context (tokens)"] == 2048, "TP = 1"].iloc[0]) == 260
    text = " ".join(md.value for md in at.markdown)
    assert "556" in text  # the E0294 text's max batch with its own parameter count


def test_model_preset_gpt2_xl_parameters_by_hand():
    at = change(run(), "selectbox", "model", "gpt2-xl")
    V, S_, d, L, d_ff = 50257, 1024, 1600, 48, 6400
    by_hand = (V * d + S_ * d + L * 4 * d * d + L * 4 * d + L * 2 * d * d_ff
               + L * (d_ff + d) + (2 * L + 1) * 2 * d)
    assert by_hand == GPT2_XL_PARAMS
    assert metric(at, "Parameters") == f"{GPT2_XL_PARAMS:,}"
    assert at.query_params["model"] == ["gpt2-xl"] or at.query_params["model"] == "gpt2-xl"


def test_hardware_context_and_tp_change_gpt2_xl_on_t4():
    at = run({"model": "gpt2-xl"})
    change(at, "selectbox", "hw", "t4")
    change(at, "number_input", "context", 512)
    change(at, "number_input", "tp", 5)
    assert not at.error
    # T4 reports 15360 MiB; 25 heads over TP = 5 → 5 KV heads per GPU
    weights_per_gpu = 2 * GPT2_XL_PARAMS / 5
    kv_per_request = 512 * 2 * 48 * 5 * 64 * 2
    expected = math.floor((15360 * 2**20 - weights_per_gpu) / kv_per_request)
    assert metric(at, "Max batch (s = 512, TP = 5)") == f"{expected:,}"
    assert expected == cm.max_batch_size(cm.model("gpt2-xl"), cm.hardware("t4"), 512, tp=5)


def test_bytes_per_weight_and_kv():
    at = run()
    change(at, "selectbox", "wbytes", 1.0)
    change(at, "selectbox", "kvbytes", 1.0)
    expected = (85899345920 - LLAMA3_8B_PARAMS) // (1024 * 2 * 32 * 8 * 128)
    assert metric(at, "Max batch (s = 1024, TP = 1)") == f"{expected:,}"
    assert metric(at, "KV cache per token") == "65,536 bytes"
    assert at.query_params["wbytes"] in ("1", ["1"])


def test_tp_larger_than_heads_shows_error_and_the_rest_works():
    at = change(run(), "number_input", "tp", 64)
    assert "tp: 64 does not divide n_heads=32" in errors(at)
    assert "Valid TP degrees" in errors(at)
    assert metric(at, "Parameters") == f"{LLAMA3_8B_PARAMS:,}"   # the rest of the page stays
    page(at, "Roofline")
    assert "tp: 64" in errors(at)
    page(at, "Attention intensity")
    assert not at.error and len(at.dataframe) >= 3


def test_weights_that_do_not_fit():
    at = run({"model": "llama3-70b", "hw": "t4"})
    assert metric(at, "Max batch") == "0"
    assert "do not fit" in errors(at)
    assert "larger TP" in errors(at)


def test_kv_replication_warning_when_tp_exceeds_kv_heads():
    at = run({"tp": "16"})    # Llama3-8B has 8 KV heads
    assert any("replicated on 2 GPUs" in w.value for w in at.warning)
    plan = cm.batch_plan(cm.model("llama3-8b"), cm.hardware("a100-80gb"), 1024, tp=16)
    assert metric(at, "Max batch (s = 1024, TP = 16)") == f"{plan.max_batch:,}"


# ---------------------------------------------------------------- custom model, uploads
def test_custom_model_starts_from_the_preset_and_edits():
    at = change(run(), "selectbox", "model", "custom")
    assert at.number_input(key="m_n_layers").value == 32
    assert metric(at, "Parameters") == f"{LLAMA3_8B_PARAMS:,}"
    change(at, "number_input", "m_n_layers", 16)
    expected = cm.param_count(cm.model("llama3-8b").replace(n_layers=16))
    assert metric(at, "Parameters") == f"{expected:,}"
    assert at.query_params["m_n_layers"] in ("16", ["16"])
    # what the user typed survives a trip to a preset and back
    change(at, "selectbox", "model", "gpt2")
    change(at, "selectbox", "model", "custom")
    assert at.number_input(key="m_n_layers").value == 16


def test_custom_model_heads_not_dividing_d_model():
    at = change(run(), "selectbox", "model", "custom")
    change(at, "number_input", "m_n_heads", 30)
    assert "30 heads do not divide d_model=4096" in errors(at)
    assert at.number_input(key="m_n_heads").value == 30          # the input is kept
    page(at, "Attention intensity")                              # other pages work
    assert len(at.dataframe) >= 3
    assert not [e for e in at.error if "Attention" in e.value]


GPT2_CONFIG = {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12,
               "vocab_size": 50257, "n_positions": 1024, "activation_function": "gelu_new"}


def test_hf_config_upload_and_bad_file():
    at = run()
    at.file_uploader(key="hf_upload").set_value(
        ("config.json", json.dumps(GPT2_CONFIG).encode(), "application/json")).run()
    assert not at.exception
    assert at.selectbox(key="model").value == S.HF_CONFIG
    assert metric(at, "Parameters") == f"{124439808:,}"
    at.file_uploader(key="hf_upload").set_value(
        ("config.json", b'{"model_type": "gpt2", "n_layer": 12,', "application/json")).run()
    assert not at.exception
    assert "not valid JSON" in errors(at)
    page(at, "Attention intensity")
    assert len(at.dataframe) >= 3


def test_hf_parsing_helper():
    assert cm.param_count(inputs.model_from_upload(json.dumps(GPT2_CONFIG).encode())) == 124439808
    for bad, message in ((b"{", "not valid JSON"), (b"[1, 2]", "JSON object"),
                         (b"\xff\xfe", "UTF-8"),
                         (json.dumps({"model_type": "bert"}).encode(), "not supported"),
                         (json.dumps({**GPT2_CONFIG, "n_head": 7}).encode(), "n_heads")):
        with pytest.raises(ValueError, match=message):
            inputs.model_from_upload(bad)


def test_calibration_json_upload():
    hw = cm.hardware("t4").replace(name="my-t4", memory_bytes=24 * GIB)
    at = run()
    at.file_uploader(key="hw_upload").set_value(
        ("t4.json", json.dumps(hw.to_dict()).encode(), "application/json")).run()
    assert not at.exception and not at.error
    assert at.selectbox(key="hw").value == S.CALIBRATION
    m = cm.model("llama3-8b")
    expected = (24 * GIB - 2 * LLAMA3_8B_PARAMS) // 134217728
    assert metric(at, "Max batch") == str(cm.max_batch_size(m, hw, 1024)) == str(expected)
    with pytest.raises(ValueError, match="missing field"):
        inputs.hardware_from_upload(b'{"name": "x"}')


def test_custom_hardware_fields():
    at = change(run(), "selectbox", "hw", "custom")
    assert at.number_input(key="h_mem_gib").value == pytest.approx(80.0)
    change(at, "number_input", "h_mem_gib", 40.0)
    expected = (40 * GIB - 2 * LLAMA3_8B_PARAMS) // 134217728
    assert metric(at, "Max batch") == f"{expected:,}"


# ---------------------------------------------------------------- roofline page
def test_roofline_page_numbers_and_bound():
    at = page(run(), "Roofline")
    assert not at.error
    m, hw = cm.model("llama3-8b"), cm.hardware("a100-80gb")
    g = cm.generation(m, hw, 1024, 128, 1)
    assert metric(at, "TTFT") == time_text(g.ttft)
    assert metric(at, "Time per output token") == time_text(g.tpot_first)
    assert metric(at, "Throughput") == f"{g.throughput:,.1f} tokens/s"
    assert metric(at, "Prefill bound") == "compute"
    assert metric(at, "Decode bound") == "memory"
    scan = cm.sweep(m, hw, batch=list(range(1, 521)), context=1024, phase="decode")
    assert (scan["bound"] == "memory").all()
    assert any("never turns compute-bound" in i.value for i in at.info)
    ops = [df.value for df in at.dataframe if "operator" in df.value.columns]
    assert len(ops) == 2 and "qkv_proj" in set(ops[0]["operator"])


def test_roofline_compute_bound_batch_and_attention_kind():
    at = run({"prompt": "128", "page": "Roofline"})       # Llama3-8B, GQA: small KV reads
    m, hw = cm.model("llama3-8b"), cm.hardware("a100-80gb")
    top = cm.max_batch_size(m, hw, 128)
    scan = cm.sweep(m, hw, batch=list(range(1, top + 1)), context=128, phase="decode")
    first = int(scan.loc[scan["bound"] == "compute", "batch"].iloc[0])
    assert 1 < first < top
    assert any(f"batch B = {first:,}" in i.value for i in at.info)
    change(at, "radio", "attention", "fused")
    fused = cm.generation(m, hw, 128, 128, 1, attention="fused")
    assert metric(at, "TTFT") == time_text(fused.ttft)
    change(at, "number_input", "batch", 8)
    batched = cm.generation(m, hw, 128, 128, 8, attention="fused")
    assert metric(at, "Throughput") == f"{batched.throughput:,.1f} tokens/s"


def test_fitted_hardware_json_prices_as_analyze_then_custom_efficiencies():
    hw = cm.hardware("a100-80gb").replace(
        name="a100-fitted", eta_c=0.64, eta_m=0.49, eta_c_skinny=0.11, eta_m_elementwise=0.39,
        kernel_overhead=7.4e-6)
    m = cm.model("llama3-8b")
    at = run({"page": "Roofline"})
    at.file_uploader(key="hw_upload").set_value(
        ("fitted.json", json.dumps(hw.to_dict()).encode(), "application/json")).run()
    assert not at.exception and not at.error
    assert at.radio(key="eta").value == "hardware" and not at.slider
    assert metric(at, "TTFT") == time_text(cm.prefill(m, hw, 1024).time)
    assert metric(at, "Time per output token") == time_text(cm.decode_step(m, hw, 1024).time)
    assert metric(at, "TTFT") != time_text(cm.prefill(m, "a100-80gb", 1024).time)
    assert any("η_c = 0.64 (0.11" in c.value for c in at.caption)
    # custom: the sliders start from the hardware's own η_c, η_m and replace every efficiency
    change(at, "radio", "eta", "custom")
    assert (at.slider(key="eta_c").value, at.slider(key="eta_m").value) == (0.64, 0.49)
    custom = dict(eta_c=0.64, eta_m=0.49, eta_c_skinny=0.64, eta_m_elementwise=0.49)
    assert metric(at, "TTFT") == time_text(cm.prefill(m, hw, 1024, **custom).time)
    change(at, "slider", "eta_m", 0.2)
    assert metric(at, "Time per output token") == time_text(
        cm.decode_step(m, hw, 1024, **dict(custom, eta_m=0.2, eta_m_elementwise=0.2)).time)
    assert at.query_params["eta_m"] in ("0.2", ["0.2"])


# ---------------------------------------------------------------- other pages
def test_attention_intensity_page_text_and_exact_counts():
    at = page(run(), "Attention intensity")
    cases = at.dataframe[0].value.set_index("case")["FLOPs/byte"]
    n, d, b = 1024, 128, 2
    exact_prefill = (4 * n * n * d + 5 * n * n) / ((4 * n * d + 4 * n * n) * b)
    e0294_prefill = (4 * n * n * d + 5 * n * n) / ((4 * n * d + 3 * n * n + n * d) * b)
    assert cases["prefill, standard (exact)"] == pytest.approx(exact_prefill)
    assert cases["prefill, E0294 text's counts"] == pytest.approx(e0294_prefill)
    assert round(e0294_prefill, 2) == 71.31 and round(exact_prefill, 2) == 57.44
    change(at, "number_input", "ai_n", 2048)
    cases = at.dataframe[0].value.set_index("case")["FLOPs/byte"]
    assert cases["prefill, standard (exact)"] == pytest.approx(
        cm.attention_intensity(2048, 128, "prefill"))


def test_speculative_page():
    at = page(run(), "Speculative decoding")
    assert not at.error
    assert metric(at, "Expected tokens") == f"{(1 - 0.75**6) / 0.25:.3f}"
    r = cm.speculative_speedup(cm.model("llama3-8b"), cm.model("gpt2"),
                                        cm.hardware("a100-80gb"), 0.75, 5, context=1024)
    assert metric(at, "Speedup (roofline)") == f"{r['speedup']:.3f}×"
    assert metric(at, "Optimal γ") == str(cm.speculative.optimal_gamma(0.75, r["cost_ratio"]))
    change(at, "slider", "alpha", 0.5)
    assert metric(at, "Expected tokens") == f"{(1 - 0.5**6) / 0.5:.3f}"
    page(at, "Memory")
    page(at, "Speculative decoding")
    assert at.slider(key="alpha").value == 0.5                   # kept across pages


def test_formulas_page_shows_work():
    at = page(run(), "Formulas")
    assert not at.error
    latex = " ".join(x.value for x in at.latex)
    assert "8{,}030{,}261{,}248" in latex                        # P with the numbers in
    assert r"\left\lfloor" in latex and "520" in latex          # B_max
    assert "71.3103" in latex or "71.31" in latex               # E0294 prefill intensity


def test_validation_page(tmp_path):
    at = page(run(), "Validation")
    if compute_validation.measurement_files():
        assert at.dataframe
    else:
        assert "costmodel measure" in at.info[0].value
    assert compute_validation.measurement_files(tmp_path / "missing") == []
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    assert compute_validation.measurement_files(tmp_path) == [tmp_path / "a.csv"]


# ---------------------------------------------------------------- URL state
def test_state_from_url():
    at = run({"model": "gpt2-xl", "hw": "t4", "prompt": "512", "tp": "5",
              "page": "Roofline"})
    assert at.radio(key="page").value == "Roofline"
    assert metric(at, "Decode bound") == "memory"
    page(at, "Memory")
    assert metric(at, "Max batch (s = 512, TP = 5)") == str(
        cm.max_batch_size(cm.model("gpt2-xl"), cm.hardware("t4"), 512, tp=5))


def test_bad_url_falls_back_with_warnings():
    at = run({"model": "no-such-model", "batch": "abc", "tp": "-3", "wbytes": "3",
              "page": "Nope", "junk": "1"})
    warnings = " ".join(w.value for w in at.warning)
    for key in ("model", "batch", "tp", "wbytes", "page", "junk"):
        assert key in warnings
    assert metric(at, "Max batch (s = 1024, TP = 1)") == "520"


def test_query_param_round_trip():
    values, warnings = S.parse_query_params({"model": "gpt2", "batch": "8", "eta_c": "0.5",
                                             "m_n_layers": "3"})
    assert not warnings
    encoded = S.encode_query_params(values)
    assert encoded == {"model": "gpt2", "batch": "8", "eta_c": "0.5"}  # m_* only if custom
    assert S.parse_query_params(encoded)[0] == values | {"m_n_layers": 32}
