"""Maximum batch size: E0294 Assignment 4 Problem 1 (a) and (b), the corrected figures, TP > H_kv
replication, weights that do not fit, and properties against the hand formula."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costmodel as cm
from costmodel.batch import check_tp
from costmodel.conventions import E0294_GPU_MEMORY

SETTINGS = settings(max_examples=50, deadline=None)
GIB = 2**30
M80 = 80 * GIB  # 85,899,345,920 bytes: the text's "80 GB" (and what an A100-80GB reports)


@pytest.fixture(scope="module")
def llama():
    return cm.model("llama3-8b")


# --- E0294 Assignment 4, Problem 1 -------------------------------------------------------

def test_e0294_param_count(llama):
    # The text's formula (seeds/002, ques1a.py), by hand for Llama3-8B:
    #   embeddings V d             = 128256 · 4096                       =   525,336,576
    #   FFN L (2 d d_ff + d_ff + d) = 32 · (117,440,512 + 14,336 + 4,096) = 3,758,686,208
    #   attention L d (d + 2·8·128) = 32 · 4096 · 6144                   =   805,306,368
    #   output V d                                                       =   525,336,576
    #   total                                                            = 5,614,665,728
    # (the text prints 5.61e+09), i.e. 11,229,331,456 bytes = 10.458 GiB ("10.458 GB")
    p = cm.e0294_param_count(llama)
    assert p == 5_614_665_728
    assert round(2 * p / GIB, 3) == 10.458
    assert E0294_GPU_MEMORY == M80


@pytest.mark.parametrize(("context", "kv_gib", "expected"), [
    # E0294 (a) results table: (80 − 10.458) / KV per request, floored
    (1024, 0.125, 556),   # 69.5419 / 0.125 = 556.3
    (2048, 0.25, 278),    # 69.5419 / 0.25  = 278.2
    (4096, 0.5, 139),     # 69.5419 / 0.5   = 139.1
])
def test_e0294_part_a(llama, context, kv_gib, expected):
    plan = cm.batch_plan(llama, M80, context, params=cm.e0294_param_count(llama))
    assert plan.max_batch == expected
    assert round(plan.weight_bytes_per_gpu / GIB, 3) == 10.458
    assert plan.kv_bytes_per_request_per_gpu / GIB == kv_gib
    assert cm.max_batch_size(llama, M80, context, params=cm.e0294_param_count(llama)) == expected


@pytest.mark.parametrize(("tp", "weights_gib", "kv_gib", "expected"), [
    # E0294 (b) at context 1024: weights and KV divided by TP
    (2, 5.229, 0.0625, 1196),     # (80 − 5.229) / 0.0625    = 1196.3
    (4, 2.615, 0.03125, 2476),    # (80 − 2.615) / 0.03125   = 2476.3 (text prints 2.615)
    (8, 1.307, 0.015625, 5036),   # (80 − 1.307) / 0.015625  = 5036.3 (text prints 0.016)
])
def test_e0294_part_b(llama, tp, weights_gib, kv_gib, expected):
    plan = cm.batch_plan(llama, M80, 1024, tp=tp, params=cm.e0294_param_count(llama))
    assert plan.max_batch == expected
    assert plan.weight_bytes_per_gpu / GIB == pytest.approx(weights_gib, abs=6e-4)
    assert plan.kv_bytes_per_request_per_gpu / GIB == kv_gib
    assert plan.kv_replication == 1


@pytest.mark.parametrize(("context", "expected"), [
    # Corrected: exact 8,030,261,248 parameters (Hugging Face's count) → 16,060,522,496 bytes;
    # a100-80gb reports 81920 MiB = 85,899,345,920 bytes; left 69,838,823,424 bytes
    (1024, 520),   # ⌊69,838,823,424 / 134,217,728⌋ = ⌊520.3⌋
    (2048, 260),   # ⌊69,838,823,424 / 268,435,456⌋ = ⌊260.2⌋
    (4096, 130),   # ⌊69,838,823,424 / 536,870,912⌋ = ⌊130.1⌋
])
def test_corrected_single_gpu(llama, context, expected):
    plan = cm.batch_plan(llama, cm.hardware("a100-80gb"), context)
    assert plan.params == 8_030_261_248
    assert plan.weight_bytes_per_gpu == 16_060_522_496
    assert plan.max_batch == expected
    assert cm.max_batch_size(llama, "a100-80gb", context) == expected


@pytest.mark.parametrize(("tp", "expected"), [
    (1, 520),
    (2, 1160),    # ⌊(85,899,345,920 − 8,030,261,248) / 67,108,864⌋ = ⌊1160.3⌋
    (4, 2440),    # ⌊(85,899,345,920 − 4,015,130,624) / 33,554,432⌋ = ⌊2440.3⌋
    (8, 5000),    # ⌊(85,899,345,920 − 2,007,565,312) / 16,777,216⌋ = ⌊5000.3⌋
])
def test_corrected_tp(llama, tp, expected):
    assert cm.max_batch_size(llama, "a100-80gb", 1024, tp=tp) == expected


def test_tp_beyond_kv_heads_replicates(llama):
    # Llama-3-8B has 8 KV heads: at TP 16 and 32 each GPU still holds one whole KV head, so the
    # per-GPU cache stays 2·32·1·128·2·1024 = 16,777,216 bytes (it stopped shrinking at TP 8)
    plans = {tp: cm.batch_plan(llama, "a100-80gb", 1024, tp=tp) for tp in (8, 16, 32)}
    for tp, plan in plans.items():
        assert plan.kv_bytes_per_request_per_gpu == 16_777_216
        assert plan.kv_heads_per_gpu == 1
        assert plan.kv_replication == tp // 8
    assert "replicated" in plans[16].reason and "replicated" not in plans[8].reason
    # only the weights keep shrinking:
    #   TP 16: ⌊(85,899,345,920 − 1,003,782,656) / 16,777,216⌋ = ⌊5060.1⌋
    #   TP 32: ⌊(85,899,345,920 − 501,891,328) / 16,777,216⌋ = ⌊5090.0⌋
    assert plans[16].max_batch == 5060
    assert plans[32].max_batch == 5090


def test_weights_that_do_not_fit_give_zero_and_a_reason():
    # Llama-3-70B in bf16: 2 · 70,553,706,496 bytes ≈ 131.4 GiB ≫ a T4's 15 GiB
    plan = cm.batch_plan(cm.model("llama3-70b"), "t4", 1024)
    assert plan.max_batch == 0
    assert not plan.fits
    assert "weights alone" in plan.reason
    assert plan.kv_bytes_per_gpu == 0


def test_weights_fit_but_no_request_does(llama):
    memory = 16_060_522_496 + 1000  # weights + 1000 bytes: not one 134,217,728-byte request
    plan = cm.batch_plan(llama, memory, 1024)
    assert plan.max_batch == 0
    assert "KV cache" in plan.reason


def test_mem_util_and_reserved(llama):
    # u = 0.9: ⌊(0.9 · 85,899,345,920 − 16,060,522,496) / 134,217,728⌋
    #        = ⌊(77,309,411,328 − 16,060,522,496) / 134,217,728⌋ = ⌊456.3⌋
    assert cm.max_batch_size(llama, "a100-80gb", 1024, mem_util=0.9) == 456
    # R = 4 GiB: ⌊(85,899,345,920 − 4,294,967,296 − 16,060,522,496) / 134,217,728⌋ = ⌊488.3⌋
    assert cm.max_batch_size(llama, "a100-80gb", 1024, reserved=4 * GIB) == 488
    plan = cm.batch_plan(llama, "a100-80gb", 1024, mem_util=0.9, reserved=4 * GIB)
    assert plan.usable_bytes == 77_309_411_328 - 4 * GIB
    # ⌊(73,014,444,032 − 16,060,522,496) / 134,217,728⌋ = ⌊424.3⌋
    assert plan.max_batch == 424


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"tp": 3}, "tp"),                 # 3 does not divide 32 heads
    ({"tp": 64}, "tp"),                # more GPUs than query heads
    ({"tp": 0}, "tp"),
    ({"context": 0}, "context"),
    ({"mem_util": 0}, "mem_util"),
    ({"mem_util": 1.5}, "mem_util"),
    ({"reserved": -1}, "reserved"),
    ({"weight_bytes": 0}, "weight_bytes"),
    ({"kv_bytes": -2}, "kv_bytes"),
    ({"params": 0}, "params"),
])
def test_bad_input_names_the_field(llama, kwargs, field):
    args = {"context": 1024} | kwargs
    with pytest.raises(ValueError, match=field):
        cm.batch_plan(llama, "a100-80gb", **args)


def test_bad_memory_and_hardware(llama):
    with pytest.raises(ValueError, match="memory"):
        cm.max_batch_size(llama, 0, 1024)
    with pytest.raises(ValueError, match="memory"):
        cm.max_batch_size(llama, -1.5, 1024)
    with pytest.raises(ValueError, match="a100-80gb"):
        cm.max_batch_size(llama, "a100-80", 1024)


def test_tp_must_divide_or_be_a_multiple_of_kv_heads():
    # 12 heads, 4 KV heads: TP 6 divides the heads but neither divides nor is a multiple of 4
    m = cm.ModelSpec("g", n_layers=2, d_model=768, n_heads=12, n_kv_heads=4, vocab_size=100,
                     max_context=64)
    with pytest.raises(ValueError, match="n_kv_heads"):
        check_tp(m, 6)
    assert check_tp(m, 12) == 12 and check_tp(m, 2) == 2


def test_formula_has_the_symbols():
    text = cm.max_batch_formula().latex()
    assert text.startswith(r"B_{\max} = ")
    assert "TP" in text and r"\left\lceil" in text and r"\left\lfloor" in text
    # with a spec, P is expanded into that architecture's count
    expanded = cm.max_batch_formula(cm.model("gpt2"))
    assert "params" not in expanded.free_names and "vocab_size" in expanded.free_names


# --- properties ---------------------------------------------------------------------------

def _valid_tps(m: cm.ModelSpec) -> list[int]:
    out = []
    for tp in range(1, m.n_heads + 1):
        if m.n_heads % tp == 0 and (m.n_kv_heads % tp == 0 or tp % m.n_kv_heads == 0):
            out.append(tp)
    return out


@st.composite
def specs(draw, mha: bool = False):
    n_heads = draw(st.sampled_from([1, 2, 4, 8, 12, 16, 32]))
    n_kv = n_heads if mha else draw(st.sampled_from([k for k in range(1, n_heads + 1)
                                                     if n_heads % k == 0]))
    head_dim = draw(st.sampled_from([32, 64, 128]))
    d = n_heads * head_dim
    gated = draw(st.booleans())
    return cm.ModelSpec(
        "random", n_layers=draw(st.integers(1, 48)), d_model=d, n_heads=n_heads,
        n_kv_heads=n_kv, d_ff=draw(st.sampled_from([2 * d, 4 * d, 8 * d // 3 // 64 * 64 or 64])),
        vocab_size=draw(st.integers(100, 160_000)), max_context=4096, gated_mlp=gated,
        norm="rmsnorm" if gated else "layernorm", positions="rotary" if gated else "learned",
        tied_embeddings=not gated)


memories = st.integers(1 * GIB, 192 * GIB)
widths = st.sampled_from([0.5, 1, 2, 4])


@SETTINGS
@given(specs(), memories, st.integers(1, 1 << 16), st.integers(1, 1 << 16), widths)
def test_non_increasing_in_context(m, memory, c1, c2, b):
    lo, hi = sorted((c1, c2))
    assert (cm.max_batch_size(m, memory, hi, kv_bytes=b)
            <= cm.max_batch_size(m, memory, lo, kv_bytes=b))


@SETTINGS
@given(specs(), memories, st.integers(1, 1 << 15), st.data())
def test_non_decreasing_in_tp(m, memory, context, data):
    tps = _valid_tps(m)
    t1 = data.draw(st.sampled_from(tps))
    t2 = data.draw(st.sampled_from([t for t in tps if t >= t1]))
    assert (cm.max_batch_size(m, memory, context, tp=t1)
            <= cm.max_batch_size(m, memory, context, tp=t2))


@SETTINGS
@given(specs(), memories, st.integers(1, 1 << 15), st.sampled_from([1, 2, 4]),
       st.sampled_from([1, 2, 4]))
def test_tp1_equals_single_gpu_hand_formula(m, memory, context, wb, kb):
    # ⌊(M − P·b_w) / (s · 2 · L · H_kv · d_h · b_kv)⌋, or 0 when negative (integers: exact)
    p = cm.param_count(m)
    per_request = context * 2 * m.n_layers * m.n_kv_heads * m.head_dim * kb
    expected = max(0, (memory - p * wb) // per_request)
    assert cm.max_batch_size(m, memory, context, weight_bytes=wb, kv_bytes=kb) == expected


@SETTINGS
@given(specs(mha=True), memories, st.integers(1, 1 << 15))
def test_mha_equals_2_L_d(m, memory, context):
    # n_kv_heads = n_heads: KV per request = s · 2 · L · d · b_kv
    p = cm.param_count(m)
    expected = max(0, (memory - 2 * p) // (context * 2 * m.n_layers * m.d_model * 2))
    assert cm.max_batch_size(m, memory, context) == expected


@SETTINGS
@given(specs(), memories, st.integers(1, 1 << 15), st.data())
def test_tp_hand_formula(m, memory, context, data):
    # ⌊(M − P·2/TP) / (s · 2 · L · ⌈H_kv/TP⌉ · d_h · 2)⌋ with exact rationals
    tp = data.draw(st.sampled_from(_valid_tps(m)))
    p = cm.param_count(m)
    heads = -(-m.n_kv_heads // tp)
    expected = max(0, (memory * tp - 2 * p) // (tp * context * 2 * m.n_layers * heads
                                                  * m.head_dim * 2))
    assert cm.max_batch_size(m, memory, context, tp=tp) == expected
