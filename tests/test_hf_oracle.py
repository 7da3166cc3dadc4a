"""The Hugging Face oracle (tests/hf_oracle.py) checked against hand algebra and published
figures, never against costmodel: parameter counts on the meta device, counted FLOPs of tiny
configs (dense, MoE, MLA, sliding window), and the cache objects HF builds."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import hf_oracle as o  # noqa: E402

BATCH, PROMPT, STEPS = o.REPORT_BATCH, o.REPORT_PROMPT, o.REPORT_STEPS  # 2, 6, 3: 9 > window 4


@pytest.fixture(scope="module")
def fixtures() -> dict[str, dict]:
    return {name: o.load_fixture(name) for name in o.FIXTURE_NAMES}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def test_the_hand_counts_below_assume_batch_2_prompt_6_and_3_steps():
    assert (BATCH, PROMPT, STEPS) == (2, 6, 3)


def test_the_fifteen_fixtures_are_there_and_parse(fixtures):
    on_disk = sorted(p.stem for p in o.FIXTURES.glob("*.json"))
    assert on_disk == sorted(o.FIXTURE_NAMES)
    for name, cfg in fixtures.items():
        assert isinstance(cfg.get("model_type"), str), name
        text = (o.FIXTURES / f"{name}.json").read_text()
        assert json.loads(text) == cfg


@pytest.mark.parametrize("name", o.FIXTURE_NAMES)
def test_every_fixture_builds_on_meta_and_its_tiny_version_runs(name, fixtures):
    status = o.hf_build_status(name, fixtures[name])
    assert status.error is None
    assert status.builds_on_meta and status.runs_tiny


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def test_llama_3_1_8b_parameters_match_meta_and_the_hand_count(fixtures):
    # By hand (d = 4096, L = 32, H = 32, KV = 8, d_h = 128, F = 14336, V = 128256, untied):
    #   per layer: q, o 2·d·d = 33,554,432; k, v 2·d·KV·d_h = 8,388,608;
    #              MLP 3·d·F = 176,160,768; 2 RMSNorms 2·d = 8,192 → 218,112,000
    #   32 layers 6,979,584,000 + embedding V·d 525,336,576 + lm_head 525,336,576
    #   + final norm 4,096 = 8,030,261,248.
    # Published: the checkpoint's safetensors hold 16,060,522,496 bytes of bf16
    # = 2 × 8,030,261,248 (github.com/thamada/modelQuery, README, Llama-3.1-8B row).
    pc = o.hf_param_count(fixtures["llama-3.1-8b"])
    assert pc.total == 8_030_261_248 == 16_060_522_496 // 2
    assert pc.embedding == pc.lm_head == 128256 * 4096
    assert not pc.tied
    assert pc.model_class == "LlamaForCausalLM"


def test_llama_3_2_1b_counts_its_tied_embedding_once(fixtures):
    # By hand (d = 2048, L = 16, H = 32, KV = 8, d_h = 64, F = 8192, V = 128256, tied):
    #   per layer: q, o 2·2048·2048 = 8,388,608; k, v 2·2048·512 = 2,097,152;
    #              MLP 3·2048·8192 = 50,331,648; norms 4,096 → 60,821,504
    #   16 layers 973,144,064 + embedding 262,668,288 (once) + final norm 2,048
    #   = 1,235,814,400.
    pc = o.hf_param_count(fixtures["llama-3.2-1b"])
    assert pc.tied
    assert pc.lm_head == 0
    assert pc.embedding == 128256 * 2048
    assert pc.total == 1_235_814_400
    untied = o.hf_param_count({**fixtures["llama-3.2-1b"], "tie_word_embeddings": False})
    assert untied.total - pc.total == 128256 * 2048


def test_qwen2_5_7b_matches_the_hub_figure(fixtures):
    # The Open Arabic LLM Leaderboard's request file for Qwen/Qwen2.5-7B records "params": 7.616
    # (billions, read from the hub's safetensors metadata; huggingface.co/datasets/OALL/
    # requests_v2, Qwen/Qwen2.5-7B_eval_request_False_bfloat16_Original.json).
    pc = o.hf_param_count(fixtures["qwen2.5-7b"])
    assert round(pc.total / 1e9, 3) == 7.616


def test_deepseek_v3_matches_deepseeks_published_counts(fixtures):
    # huggingface.co/deepseek-ai/DeepSeek-V3-Base, README_WEIGHTS.md: main model "Total
    # parameters: 671B", "Activation parameters: 36.6B (including 0.9B for the output Head)".
    # Active by hand from HF's split: everything but the input embedding (a lookup) and the
    # routed experts a token does not reach (8 of 256): total − embedding − routed·(248/256).
    pc = o.hf_param_count(fixtures["deepseek-v3"])
    assert round(pc.total / 1e9) == 671
    active = pc.total - pc.embedding - pc.by_kind["routed_experts"] * 248 // 256
    assert round(active / 1e9, 1) == 36.6
    assert round(pc.lm_head / 1e9, 1) == 0.9


def test_deepseek_v3_router_bias_is_a_buffer_not_a_parameter(fixtures):
    # 58 MoE layers (61 − first_k_dense_replace 3) × 256 routed experts = 14,848 floats of
    # e_score_correction_bias, saved in the checkpoint but registered as a buffer.
    pc = o.hf_param_count(fixtures["deepseek-v3"])
    assert pc.buffers == 58 * 256
    assert pc.buffer_names == ("e_score_correction_bias",)


def test_moe_parameter_split_is_by_expert(fixtures):
    # Mixtral-8x7B: 32 layers × 8 experts × 3·4096·14336 weights = 45,097,156,608 routed;
    # router 32 × 8 × 4096 = 1,048,576.
    pc = o.hf_param_count(fixtures["mixtral-8x7b-v0.1"])
    assert pc.by_kind["routed_experts"] == 32 * 8 * 3 * 4096 * 14336
    assert pc.by_kind["router"] == 32 * 8 * 4096
    assert "mlp" not in pc.by_kind


# --------------------------------------------------------------------------------------------
# Tiny configs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", o.FIXTURE_NAMES)
def test_tiny_config_keeps_the_structure(name, fixtures):
    cfg = fixtures[name]
    t = o.tiny_config(cfg)
    assert t["model_type"] == cfg["model_type"]
    assert t["hidden_size"] <= 64 and t["vocab_size"] <= 256
    assert t["num_hidden_layers"] <= 6
    h, kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads") or cfg["num_attention_heads"]
    if "kv_lora_rank" not in cfg:
        assert t["num_attention_heads"] // t["num_key_value_heads"] == h // kv
    if cfg.get("head_dim") is not None:
        same = cfg["head_dim"] * h == cfg["hidden_size"]
        assert (t["head_dim"] * t["num_attention_heads"] == t["hidden_size"]) == same
    for key in ("tie_word_embeddings", "attention_bias", "mlp_bias", "hidden_act",
                "hidden_activation", "norm_topk_prob", "use_sliding_window", "scoring_func"):
        assert t.get(key) == cfg.get(key), key
    assert (t.get("q_lora_rank") is None) == (cfg.get("q_lora_rank") is None)
    assert (t.get("sliding_window") is None) == (cfg.get("sliding_window") is None)
    if "layer_types" in cfg:
        assert t["layer_types"] == cfg["layer_types"][: t["num_hidden_layers"]]
    assert o.hf_param_count(t).total < o.MAX_RUN_PARAMS


def test_tiny_layer_patterns_show_local_and_global_layers(fixtures):
    gemma3 = o.hf_kv_bytes(o.tiny_config(fixtures["gemma-3-27b"]), BATCH, PROMPT, STEPS)
    assert [x.layer_class for x in gemma3.layers] == ["DynamicSlidingWindowLayer"] * 5 + [
        "DynamicLayer"]
    gemma2 = o.hf_kv_bytes(o.tiny_config(fixtures["gemma-2-9b"]), BATCH, PROMPT, STEPS)
    assert [x.layer_class for x in gemma2.layers] == ["DynamicSlidingWindowLayer",
                                                      "DynamicLayer"] * 2
    v3 = o.hf_param_count(o.tiny_config(fixtures["deepseek-v3"]))
    assert v3.by_kind["mlp"] == 2 * 3 * 64 * o.TINY_DENSE_FF  # two dense-first layers


def test_hf_run_refuses_a_full_size_config(fixtures):
    with pytest.raises(ValueError, match="not a tiny config"):
        o.hf_run(fixtures["llama-3.1-8b"], 1, 2, 0)


# --------------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------------


def test_dense_decode_grows_by_one_key_per_step(fixtures):
    # Tiny Llama-3.1-8B: L = 4, H = 8, d_h = 8, B = 2. Each decode step adds one key to every
    # full-attention layer: QKᵀ and PV each gain 2·B·H·1·d_h FLOPs per layer, so the step total
    # grows by L·2·(2·B·H·d_h) = 4·2·(2·2·8·8) = 2,048 and nothing else changes.
    f = o.hf_flops(o.tiny_config(fixtures["llama-3.1-8b"]), BATCH, PROMPT, STEPS)
    steps = [d.total for d in f.decode]
    assert [b - a for a, b in zip(steps, steps[1:], strict=False)] == [2048, 2048]


def test_eager_prefill_scores_every_key_on_a_window_layer(fixtures):
    # Tiny Mistral (window 4) and tiny Llama-3.1-8B have the same sizes (d = 64, H = 8, KV = 2,
    # d_h = 8). HF's eager attention computes QKᵀ and PV over all q = 6 prompt keys and masks
    # the ones outside the window afterwards, so each layer's attention matmuls count
    # 2·(2·B·H·q·q·d_h) = 2·(2·2·8·6·6·8) = 18,432 FLOPs, not the 2·(2·B·H·Σmin(i, 4)·d_h) a
    # window-aware kernel would need, and the two prefills count the same.
    mistral = o.hf_flops(o.tiny_config(fixtures["mistral-7b-v0.1"]), BATCH, PROMPT, STEPS)
    llama = o.hf_flops(o.tiny_config(fixtures["llama-3.1-8b"]), BATCH, PROMPT, STEPS)
    mods = mistral.prefill.by_module
    inner = mods["model.layers.0.self_attn"] - sum(
        mods[f"model.layers.0.self_attn.{p}"] for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
    assert inner == 18_432
    assert mistral.prefill.total == llama.prefill.total


def test_mla_decode_re_expands_the_whole_latent_cache(fixtures):
    # Tiny DeepSeek-V3: L = 4, H = 4, kv_lora 16, nope 8, rope 4, v 12, B = 2. HF's naive MLA
    # decode runs kv_b_proj (16 → H·(nope + v) = 80) over every cached position at every step,
    # so one more cached position adds per layer
    #   kv_b_proj 2·B·16·80 = 5,120, QKᵀ 2·B·H·(nope + rope) = 192, PV 2·B·H·v = 192,
    # and a step costs 4·5,504 = 22,016 FLOPs more than the one before.
    f = o.hf_flops(o.tiny_config(fixtures["deepseek-v3"]), BATCH, PROMPT, STEPS)
    steps = [d.total for d in f.decode]
    assert [b - a for a, b in zip(steps, steps[1:], strict=False)] == [22_016, 22_016]


def test_tiny_moe_flops_equal_the_hand_count(fixtures):
    # Tiny Mixtral: d = 64, expert width F = 96, E = 4 experts, k = 2 per token, L = 4.
    # Every token reaches exactly k experts, each a SwiGLU of three d×F matmuls, so the routed
    # expert FLOPs of a pass over T tokens are L·T·k·2·3·d·F whatever the routing:
    #   prefill T = B·q = 12: 4·12·2·2·3·64·96 = 3,538,944; a decode step T = 2: 589,824.
    # The router is one d×E matmul per token: L·T·2·d·E = 4·12·2·64·4 = 24,576 at prefill.
    t = o.tiny_config(fixtures["mixtral-8x7b-v0.1"])
    assert (t["hidden_size"], t["intermediate_size"]) == (64, 96)
    assert (t["num_local_experts"], t["num_experts_per_tok"]) == (4, 2)
    for seed in (0, 1):  # a different routing gives the same expert FLOPs
        run = o.hf_run(t, BATCH, PROMPT, STEPS, seed=seed)
        experts = [sum(v for k, v in c.by_module.items() if k.endswith("mlp.experts"))
                   for c in (run.prefill, *run.decode)]
        assert experts == [3_538_944] + [589_824] * STEPS
        router = sum(v for k, v in run.prefill.by_module.items() if k.endswith("mlp.gate"))
        assert router == 24_576


def test_tiny_deepseek_v3_flops_split_dense_shared_and_routed(fixtures):
    # Tiny DeepSeek-V3: d = 64, L = 4, first_k_dense_replace = 2 → layers 0, 1 dense
    # (width 96), layers 2, 3 MoE: 8 routed experts of width 32, top-2, 1 shared expert of
    # width 32. Prefill T = 12 tokens:
    #   dense MLPs   2 layers · 12 · 2·3·64·96       = 884,736
    #   routed       2 layers · 12 · 2 · 2·3·64·32   = 589,824
    #   shared       2 layers · 12 · 2·3·64·32       = 294,912
    t = o.tiny_config(fixtures["deepseek-v3"])
    run = o.hf_run(t, BATCH, PROMPT, STEPS)
    mods = run.prefill.by_module
    dense = sum(mods[f"model.layers.{i}.mlp"] for i in (0, 1))
    routed = sum(mods[f"model.layers.{i}.mlp.experts"] for i in (2, 3))
    shared = sum(mods[f"model.layers.{i}.mlp.shared_experts"] for i in (2, 3))
    assert (dense, routed, shared) == (884_736, 589_824, 294_912)


# --------------------------------------------------------------------------------------------
# Caches
# --------------------------------------------------------------------------------------------


def test_full_attention_cache_holds_every_position(fixtures):
    # Tiny Llama-3.1-8B in float32: per layer K and V of [B, KV, positions, d_h] = [2, 2, 9, 8]
    # → 2·(2·2·9·8)·4 bytes = 2,304 per layer, 9,216 for 4 layers.
    kv = o.hf_kv_bytes(o.tiny_config(fixtures["llama-3.1-8b"]), BATCH, PROMPT, STEPS)
    assert kv.element_bytes == 4
    assert {x.key_shape for x in kv.layers} == {(2, 2, PROMPT + STEPS, 8)}
    assert kv.total == 4 * 2 * (2 * 2 * 9 * 8) * 4 == 9216
    assert kv.totals() == [4 * 2 * (2 * 2 * n * 8) * 4 for n in range(PROMPT, PROMPT + STEPS + 1)]


def test_sliding_window_cache_holds_at_most_window_positions(fixtures):
    # Tiny Mistral-7B-v0.1: every layer slides with window 4. HF's DynamicSlidingWindowLayer
    # keeps the last window − 1 = 3 positions between steps and attends to them plus the new
    # one (window = 4 keys), so after prompt + steps = 9 > 4 positions each layer holds 3, and
    # every decode step costs the same.
    t = o.tiny_config(fixtures["mistral-7b-v0.1"])
    window = t["sliding_window"]
    run = o.hf_run(t, BATCH, PROMPT, STEPS)
    for layer in run.cache_after_steps[-1]:
        assert layer.layer_class == "DynamicSlidingWindowLayer"
        assert layer.positions == window - 1 <= window
    assert len({d.total for d in run.decode}) == 1


def test_mla_cache_holds_the_latent(fixtures):
    # Tiny DeepSeek-V3 (kv_lora_rank 16, qk_rope_head_dim 4): transformers 5.24 caches the
    # compressed latent c_kv [B, 1, positions, 16] as "keys" and the shared rotary key
    # [B, 1, positions, 4] as "values", and re-expands both through kv_b_proj at every step.
    # Bytes per token per layer: (16 + 4)·4 = 80 in float32; total 4 layers · 2 · 9 · 80.
    t = o.tiny_config(fixtures["deepseek-v3"])
    kv = o.hf_kv_bytes(t, BATCH, PROMPT, STEPS)
    for layer in kv.layers:
        assert layer.key_shape == (BATCH, 1, PROMPT + STEPS, t["kv_lora_rank"])
        assert layer.value_shape == (BATCH, 1, PROMPT + STEPS, t["qk_rope_head_dim"])
    assert kv.total == 4 * BATCH * (PROMPT + STEPS) * (16 + 4) * 4
