"""Serving memory as vLLM sizes it (costmodel.plan.memory): hand derivations of each term, and
the max concurrency held against vLLM's own startup logs (data/published/vllm_kv_logs.csv):
within 5 % of each log, or the miss explained term by term by the log's own itemised lines."""

from __future__ import annotations

import math

import pytest

import costmodel as cm
from costmodel.plan.logs import LOGS, compare_logs
from costmodel.plan.memory import GIB, serving_memory


def test_forward_activation_by_hand():
    """Llama-3.1-8B, 20,000 tokens, 16-bit: the SiLU·mul reads gate and up (2 · T · 14336) and
    writes T · 14336; three T · 4096 hidden tensors beside it."""
    T = 20000
    hand = 3 * T * 14336 * 2 + 3 * T * 4096 * 2
    sm = serving_memory("llama3.1-8b", "rtx-3090", max_num_batched_tokens=T,
                        request_len=20000)
    assert sm.activation_forward == hand
    assert sm.activation_sampler == 2 * 256 * 128256 * 4      # fp32 logits + probabilities


def test_weights_kv_and_blocks_by_hand():
    """Llama-3.1-70B, TP4, fp8: linear layers at 1 byte, embeddings and head (2 × 128256 ×
    8192) kept at 2; KV per token per GPU = 80 layers × 2 (K, V) × 2 KV heads × 128 × 2 B."""
    p = cm.param_count("llama3.1-70b")
    ends = 2 * 128256 * 8192
    sm = serving_memory("llama3.1-70b", "h100-sxm", tp=4, quant="fp8", request_len=2304)
    assert sm.weights == pytest.approx(((p - ends) * 1 + ends * 2) / 4)
    assert sm.kv_per_token == 80 * 2 * 2 * 128 * 2
    budget = 0.9 * (81559 * 2**20 - 0.45 * GIB)
    kv = budget - sm.weights - sm.activation - 0.2 * GIB
    assert sm.kv == pytest.approx(kv)
    assert sm.blocks == math.floor(kv / (16 * 81920))
    assert sm.max_requests == sm.blocks // (2304 // 16)


@pytest.fixture(scope="module")
def logs():
    return compare_logs().set_index("id")


def test_at_least_eight_usable_logs(logs):
    assert len(logs) >= 8 and set(LOGS) <= set(logs.index)


#: Logs whose miss the itemised lines do not account for, and why (checked separately).
UNITEMISED = {
    "k17": "the logged KV line (8.69 GiB) is the driver's; the token count is the other "
           "worker's, which vLLM keeps as the minimum",
    "k03": "no memory lines in the excerpt; the weights term alone is checked (67.72 GiB)",
}


def test_max_concurrency_within_5_percent_or_explained(logs):
    for key, row in logs.iterrows():
        if key in UNITEMISED:
            continue
        shares = sum(row.get(f"{t}_share", 0) or 0 for t in ("weights", "activation",
                                                              "non_torch")
                     if not math.isnan(row.get(f"{t}_share", math.nan)))
        assert abs(row["error"]) <= 0.05 or abs(row["error"] + shares) <= 0.05, (key, row)


def test_unitemised_logs(logs):
    k17 = logs.loc["k17"]
    assert k17["kv_predicted_gib"] == pytest.approx(k17["kv_logged_gib"], rel=0.05)
    k03 = serving_memory("llama3.1-70b", "h100-sxm", quant="int8", request_len=2048,
                         gpu_memory_utilization=0.98)
    assert k03.weights / GIB == pytest.approx(67.7229, rel=0.01)


@pytest.mark.parametrize("kw,field", [({"tp": 3}, "tp"), ({"gpu_memory_utilization": 0},
                                                          "gpu_memory_utilization"),
                                      ({"non_torch": -1}, "non_torch"),
                                      ({"max_num_batched_tokens": 0},
                                       "max_num_batched_tokens"),
                                      ({"request_len": -5}, "request_len"),
                                      ({"pp": 1000}, "pp")])
def test_bad_input_names_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        serving_memory("llama3.1-70b", "h100-sxm", **kw)


def test_weights_that_do_not_fit_say_so():
    sm = serving_memory("llama3.1-70b", "l40s")
    assert not sm.fits and "weights alone" in sm.reason
