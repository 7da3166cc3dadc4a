"""ModelSpec / HardwareSpec validation: bad input is a ValueError that names the field."""

from __future__ import annotations

import json

import pytest

import costmodel as cm
from costmodel.quant import dtype_for_bytes
from costmodel.specs import EngineProfile, HardwareSpec, ModelSpec

BASE = dict(name="m", n_layers=2, d_model=64, n_heads=4, vocab_size=100, max_context=32)


def spec(**changes) -> ModelSpec:
    return ModelSpec(**(BASE | changes))


def test_defaults():
    m = spec()
    assert m.n_kv_heads == 4          # MHA
    assert m.head_dim == 16           # 64 / 4
    assert m.d_ff == 256              # 4 · 64
    assert m.group_size == 1
    assert spec(n_kv_heads=1).group_size == 4   # MQA


SIZE_FIELDS = ("n_layers", "d_model", "n_heads", "vocab_size", "max_context", "n_kv_heads",
               "head_dim", "d_ff")
OPTIONAL = ("n_kv_heads", "head_dim", "d_ff")  # None there means "use the default"


@pytest.mark.parametrize(("field", "bad"), [
    (f, b) for f in SIZE_FIELDS for b in (0, -1, 1.5, True, "12", None)
    if not (b is None and f in OPTIONAL)])
def test_non_positive_or_non_integer_sizes(field, bad):
    with pytest.raises(ValueError, match=field):
        spec(**{field: bad})


def test_integral_float_is_accepted():
    assert spec(n_layers=2.0).n_layers == 2


def test_heads_must_divide_d_model():
    with pytest.raises(ValueError, match="n_heads") as e:
        spec(d_model=100, n_heads=3)
    assert "d_model" in str(e.value)
    # unless head_dim is given explicitly
    assert spec(d_model=100, n_heads=3, head_dim=32).head_dim == 32


def test_kv_heads_must_divide_heads():
    with pytest.raises(ValueError, match="n_kv_heads"):
        spec(n_heads=4, n_kv_heads=3)


@pytest.mark.parametrize(("field", "bad"), [
    ("norm", "batchnorm"), ("positions", "alibi"), ("activation", "tanh")])
def test_unknown_choices(field, bad):
    with pytest.raises(ValueError, match=field):
        spec(**{field: bad})


def test_choice_error_suggests_the_closest():
    with pytest.raises(ValueError, match="rmsnorm"):
        spec(norm="rmsnom")


@pytest.mark.parametrize("field", ["gated_mlp", "qkv_bias", "out_bias", "mlp_bias",
                                   "lm_head_bias", "tied_embeddings"])
def test_flags_must_be_bool(field):
    with pytest.raises(ValueError, match=field):
        spec(**{field: "yes"})


def test_tp_must_divide_heads():
    # llama3-8b has 32 query heads: TP 3 leaves a GPU with a fraction of a head
    with pytest.raises(ValueError, match="tp"):
        cm.max_batch_size(cm.model("llama3-8b"), "a100-80gb", 1024, tp=3)
    with pytest.raises(ValueError, match="n_heads"):
        cm.max_batch_size(cm.model("gpt2"), "a100-80gb", 1024, tp=8)  # 12 heads


def test_replace_validates_again():
    m = spec()
    assert m.replace(n_layers=5).n_layers == 5
    with pytest.raises(ValueError, match="n_layers"):
        m.replace(n_layers=0)


def test_dict_round_trip():
    m = cm.model("llama3-8b")
    assert ModelSpec.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="colour"):
        ModelSpec.from_dict(m.to_dict() | {"colour": "red"})


# --- HardwareSpec ------------------------------------------------------------------------

HW = dict(name="x", memory_bytes=2**30, bandwidth=1e12, peak_flops={"bf16": 1e14})


@pytest.mark.parametrize(("changes", "field"), [
    ({"memory_bytes": 0}, "memory_bytes"),
    ({"memory_bytes": 1.5}, "memory_bytes"),
    ({"bandwidth": -1}, "bandwidth"),
    ({"bandwidth": float("inf")}, "bandwidth"),
    ({"peak_flops": {}}, "peak_flops"),
    ({"peak_flops": {"fp3": 1e15}}, "dtype"),
    ({"peak_flops": {"bf16": 0}}, "bf16"),
    ({"interconnect_bandwidth": -1}, "interconnect_bandwidth"),
    ({"interconnect_latency": float("nan")}, "interconnect_latency"),
    ({"kernel_overhead": -1e-6}, "kernel_overhead"),
])
def test_hardware_bad_input(changes, field):
    with pytest.raises(ValueError, match=field):
        HardwareSpec(**(HW | changes))


def test_hardware_peak_and_ridge():
    a100 = cm.hardware("a100-80gb")
    # A100 datasheet: 312 TFLOPS dense bf16, 2039 GB/s → ridge 312e12 / 2039e9 ≈ 153.0 FLOP/B
    assert a100.peak("bf16") == 312e12
    assert a100.ridge_point("bf16") == pytest.approx(312e12 / 2039e9)
    with pytest.raises(ValueError, match="fp8"):
        a100.peak("fp8")  # Ampere has no FP8 path


def test_dtype_for_bytes():
    assert dtype_for_bytes(cm.hardware("a100-80gb"), 2) == "bf16"
    assert dtype_for_bytes(cm.hardware("t4"), 2) == "fp16"      # Turing: no bf16
    assert dtype_for_bytes(cm.hardware("a100-80gb"), 4) == "fp32"
    assert dtype_for_bytes(cm.hardware("a100-80gb"), 0.5) == "bf16"


def test_hardware_save_load(tmp_path):
    hw = cm.hardware("h100-sxm")
    path = tmp_path / "h100.json"
    hw.save(path)
    assert HardwareSpec.load(path) == hw
    assert cm.hardware(str(path)) == hw  # a .json path works where a preset name does
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"name": "x"}), "missing"),
    (json.dumps(HW | {"colour": "red"}), "colour"),
])
def test_hardware_load_errors(tmp_path, content, message):
    path = tmp_path / "hw.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message):
        HardwareSpec.load(path)


def test_engine_profile_describes_what_it_applies():
    e = EngineProfile("x", eta_c=0.5, eta_c_8bit=0.25, eta_m=0.8, eta_m_quant=0.6,
                      step_overhead=2e-6, layer_overhead=50e-6, comm_latency=20e-6,
                      attention="fused", bands={"all": (0.8, 1.25)})
    assert e.describe() == (
        "η_c 0.5, η_c 0.25 in 8-bit dtypes, η_m 0.8, η_m 0.6 on weight-only quantized matmuls, "
        "2 µs per pass, 50 µs per layer per pass, 20 µs per all-reduce, fused attention; "
        "80 % bands: all ×0.8–1.25")
    assert EngineProfile("y").describe() == ("η_c 1, η_m 1, standard attention; "
                                             "80 % bands: none (no fitted band yet)")
