"""Presets: every row cites a source, names resolve (with suggestions), units convert."""

from __future__ import annotations

import pytest

import costmodel as cm

MIB = 2**20
GIB = 2**30


@pytest.mark.parametrize("name", sorted(cm.model_presets()))
def test_every_model_preset_has_a_source(name):
    assert cm.model(name).source.strip()
    assert cm.model(name).name == name


@pytest.mark.parametrize("name", sorted(cm.hardware_presets()))
def test_every_hardware_preset_has_a_source(name):
    hw = cm.hardware(name)
    assert hw.source.strip()
    assert hw.memory_marketed.strip()
    # dense tensor-core peaks are above the FP32 CUDA-core peak wherever both are given
    if "fp32" in hw.peak_flops:
        for dtype in ("fp16", "bf16"):
            if dtype in hw.peak_flops:
                assert hw.peak_flops[dtype] > hw.peak_flops["fp32"]


def test_t4_bandwidth_and_notes():
    t4 = cm.hardware("t4")
    # T4 datasheet PDF: 300 GB/s (the board brief says 320; the notes say so)
    assert t4.bandwidth == 300e9
    assert "320" in t4.notes
    assert t4.memory_bytes == 15 * GIB      # nvidia-smi: 15360 MiB of the marketed "16 GB"
    assert t4.peak("fp16") == 65e12         # datasheet: 65 TFLOPS FP16


def test_a100_80gb_reports_80_gib():
    # 81920 MiB = 80 · 2**30 = 85,899,345,920 bytes
    assert cm.hardware("a100-80gb").memory_bytes == 81920 * MIB == 85_899_345_920
    assert cm.hardware("a100-80gb").bandwidth == 2039e9


def test_h100_peak_is_dense():
    # H100 SXM datasheet: 1979 TFLOPS bf16 *with sparsity*; dense = 1979 / 2 ≈ 989.5
    assert cm.hardware("h100-sxm").peak("bf16") == 989.5e12


@pytest.mark.parametrize(("alias", "name"), [
    ("Llama-3-8B", "llama3-8b"), ("meta-llama-3-8b", "llama3-8b"), ("gpt2-small", "gpt2"),
    (" GPT2 ", "gpt2"),
])
def test_model_aliases(alias, name):
    assert cm.model(alias).name == name


@pytest.mark.parametrize(("alias", "name"), [
    ("h100", "h100-sxm"), ("A100-80GB-SXM", "a100-80gb"), ("4090", "rtx-4090")])
def test_hardware_aliases(alias, name):
    assert cm.hardware(alias).name == name


@pytest.mark.parametrize(("lookup", "typo", "suggestion"), [
    (cm.model, "llama3-8", "llama3-8b"),
    (cm.model, "mistral7b", "mistral-7b"),
    (cm.hardware, "a100-80", "a100-80gb"),
    (cm.hardware, "h2000", "h200"),
])
def test_unknown_preset_suggests_the_closest(lookup, typo, suggestion):
    with pytest.raises(ValueError, match=f"did you mean '{suggestion}'"):
        lookup(typo)


def test_unknown_preset_names_the_kind():
    with pytest.raises(ValueError, match="^model: unknown preset"):
        cm.model("no-such-model-at-all")
    with pytest.raises(ValueError, match="^hardware: unknown preset"):
        cm.hardware("no-such-gpu-at-all")


def test_wrong_types():
    with pytest.raises(ValueError, match="model"):
        cm.model(123)
    with pytest.raises(ValueError, match="hardware"):
        cm.hardware(80)


def test_specs_pass_through():
    m, hw = cm.model("gpt2"), cm.hardware("t4")
    assert cm.model(m) is m and cm.hardware(hw) is hw


def test_hardware_from_missing_json_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        cm.hardware(str(tmp_path / "nope.json"))


@pytest.mark.parametrize(("name", "dims"), [
    # (layers, d_model, heads, kv heads, d_ff, vocab) from each model's Hugging Face config.json
    ("gpt2", (12, 768, 12, 12, 3072, 50257)),
    ("gpt2-xl", (48, 1600, 25, 25, 6400, 50257)),
    ("llama3-8b", (32, 4096, 32, 8, 14336, 128256)),
    ("llama3-70b", (80, 8192, 64, 8, 28672, 128256)),
    ("llama2-7b", (32, 4096, 32, 32, 11008, 32000)),
    ("mistral-7b", (32, 4096, 32, 8, 14336, 32000)),
])
def test_model_dims(name, dims):
    m = cm.model(name)
    assert (m.n_layers, m.d_model, m.n_heads, m.n_kv_heads, m.d_ff, m.vocab_size) == dims


def test_presets_are_cached_and_frozen():
    assert cm.model_presets() is cm.model_presets()
    with pytest.raises(AttributeError):
        cm.model("gpt2").n_layers = 3  # frozen dataclass
