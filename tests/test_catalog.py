"""The catalogue of formulas (``costmodel.catalog``): every formula of one model by name, the
modern-architecture parts among them, each the same object (or the same expression) the
numbers come from. Expected numbers: Hugging Face's parameter counts (RESULTS.md) and hand
algebra."""

from __future__ import annotations

import pytest
import sympy as sp

import costmodel as cm
from costmodel.catalog import PARTS, architecture_formulas, formulas
from costmodel.kvcache import kv_formulas
from costmodel.ops import experts_touched
from costmodel.params import active_param_formula
from costmodel.symbols import B, model_values


def values(m, **extra):
    return dict(model_values(m), **extra)


def test_parts_of_each_architecture():
    assert set(architecture_formulas("deepseek-v3")) == {"moe", "mla"}
    assert set(architecture_formulas("gpt-oss-20b")) == {"moe", "window"}
    assert set(architecture_formulas("gemma3-27b")) == {"window"}
    assert architecture_formulas("llama3-8b") == {}
    assert set(PARTS) == {"moe", "mla", "window"}


def test_moe_formulas_with_numbers():
    m = cm.model("deepseek-v3")
    moe = architecture_formulas(m)["moe"]
    # 671,026,404,352 − 653,908,770,816 · 248/256 (Hugging Face's split)
    assert moe["active_param_count"].exact(**values(m)) == 37_552_282_624
    assert moe["params_router"].exact(**values(m)) == 106_430_464          # 58 · 7168 · 256
    assert moe["params_experts"].exact(**values(m)) == 653_908_770_816
    # U = E (1 − (1 − k/E)^B): B = 1 reaches exactly k; B = 64 → 222.44…
    assert moe["experts_touched"].exact(**values(m, batch=1)) == 8
    assert moe["experts_touched"](**values(m, batch=64)) == pytest.approx(
        256 * (1 - (248 / 256) ** 64))
    assert moe["experts_touched"].expr == experts_touched(B)            # the operators' own


def test_the_moe_weights_a_decode_step_reads_are_the_operators():
    m = cm.model("mixtral-8x7b")
    f = architecture_formulas(m)["moe"]["moe_weight_read_decode"]
    for batch in (1, 4):
        a = cm.decode_step(m, "h100-sxm", 100, batch)
        moe = a.ops[a.ops["block"] == "moe"]["weight_read"].sum()
        assert f(**values(m, batch=batch, tp=1, weight_bytes=2, expert_weight_bytes=2)) == \
            pytest.approx(moe, rel=1e-12)
    # B = 1: the router (32 · 4096 · 8) and k = 2 experts of 3 · 4096 · 14336 per layer
    assert f.exact(**values(m, batch=1, tp=1, weight_bytes=2, expert_weight_bytes=2)) == \
        2 * 32 * (4096 * 8 + 2 * 3 * 4096 * 14336)


def test_mla_and_window_formulas_are_the_kv_cache_ones():
    m = cm.model("deepseek-v3")
    mla = architecture_formulas(m)["mla"]
    assert mla["kv_per_token_absorbed"] is kv_formulas(m, "absorbed")["per_token"]
    assert mla["kv_per_token_absorbed"].exact(**values(m, kv_bytes=2)) == 61 * 576 * 2
    assert mla["kv_per_token_expanded"].exact(**values(m, kv_bytes=2)) == 61 * 128 * 320 * 2
    g = cm.model("gemma3-27b")
    window = architecture_formulas(g)["window"]
    # (L − L_w)·s + L_w·min(s, W − 1) = 10·32768 + 52·1023
    assert window["kv_layer_tokens"].exact(**values(g, context=32768)) == 380_876
    assert window["kv_window_layers"].exact(**values(g, context=32768, kv_bytes=2)) == \
        cm.kv_by_layer_type(g, 32768)["window_layers"] == 52 * 1023 * 8192


def test_formulas_use_the_models_own_kv_cache_and_active_parameters():
    m = cm.model("gemma3-27b")
    all_ = formulas(m)
    assert all_["kv_cache_bytes"] is kv_formulas(m)["batch"]              # windows counted
    assert all_["kv_cache_bytes"].exact(**values(m, context=32768, batch=1, kv_bytes=2)) == \
        cm.kv_cache_bytes(m, 32768)
    d = formulas("deepseek-v3", cm.Options(mla="expanded"))
    assert d["kv_bytes_per_token"] is kv_formulas("deepseek-v3", "expanded")["per_token"]
    assert "active_param_count" in d and "experts_touched" in d
    dense = cm.model("llama3-8b")
    assert sp.simplify(active_param_formula(dense).expr - formulas(dense)["param_count"].expr) \
        == 0
