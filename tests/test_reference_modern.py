"""The reference model's modern layers — sliding-window attention and a mixture of experts —
held against Hugging Face's own Mistral and Mixtral with the same weights, against themselves
across the three ways to run (no cache, dynamic, static), and against the calculator's
formulas (parameters, KV bytes, FLOPs)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import costmodel as cm  # noqa: E402
from costmodel.pricing import MATMUL_KINDS  # noqa: E402
from costmodel.reference.config import LLAMA_STYLE, GPTConfig  # noqa: E402
from costmodel.reference.flops import count_flops  # noqa: E402
from costmodel.reference.gpt import GPT  # noqa: E402
from costmodel.reference.layers import MoE  # noqa: E402
from costmodel.roofline import analyze_phase  # noqa: E402
from costmodel.validation.passes import meta_flops, reference_pass  # noqa: E402
from costmodel.workload import reference_options  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-4
BASE = dict(n_layer=3, n_head=4, n_embd=32, vocab_size=61, block_size=24)
LLAMA = dict(BASE, n_kv_head=2, d_ff=48, **LLAMA_STYLE)
VARIANTS = {
    "window-some": dict(sliding_window=5, window_layers=2),
    "window-all": dict(sliding_window=4),
    "moe-shared-dense": dict(n_experts=4, experts_per_token=2, d_ff_expert=24,
                             n_shared_experts=1, dense_layers=1),
    "moe-window-bias": dict(n_experts=3, experts_per_token=1, router_bias=True,
                            sliding_window=6, window_layers=1),
}


def make(style: str, impl: str, seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    base = LLAMA if style == "llama" else BASE
    model = GPT(GPTConfig(**{**base, "attn_impl": impl, **kw})).eval()
    with torch.no_grad():          # larger weights than the init, so positions matter
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def run_chunks(model: GPT, idx, prompt_len: int, cache: str):
    """Logits of every position: a prefill of ``prompt_len`` then chunks of 1 and 3 tokens."""
    B, T = idx.shape
    if cache == "static":
        model.setup_static_cache(B, T)
        logits, _ = model(idx[:, :prompt_len], input_pos=0, all_logits=True)
    else:
        logits, _, kv = model(idx[:, :prompt_len], kv_cache=model.empty_kv_cache(),
                              all_logits=True)
    outs, t = [logits], prompt_len
    while t < T:
        q = min(1 if t % 2 else 3, T - t)
        if cache == "static":
            logits, _ = model(idx[:, t:t + q], input_pos=t, all_logits=True)
        else:
            logits, _, kv = model(idx[:, t:t + q], kv_cache=kv, all_logits=True)
        outs.append(logits)
        t += q
    return torch.cat(outs, 1), (kv if cache == "dynamic" else None)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("style,impl", [("gpt", "eager"), ("llama", "eager"),
                                        ("llama", "sdpa")])
@torch.inference_mode()
def test_caches_give_the_uncached_logits(variant, style, impl):
    """Dynamic and static caches — window layers with a ring of W − 1 slots, queries of 1
    and 3 tokens that straddle the window — give the no-cache logits."""
    model = make(style, impl, **VARIANTS[variant])
    idx = torch.randint(61, (3, 24))
    full, _ = model(idx, all_logits=True)
    for prompt_len in (1, 5, 12):
        for cache in ("dynamic", "static"):
            got, kv = run_chunks(model, idx, prompt_len, cache)
            assert (got - full).abs().max().item() <= TOL, (cache, prompt_len)
            if kv is not None:        # a window layer keeps its last W − 1 rows
                c = model.config
                for i, entry in enumerate(kv):
                    held = c.sliding_window - 1 if c.is_window_layer(i) else 24
                    assert tuple(entry[0].shape) == (3, min(24, held), c.kv_dim)


def hf_weights(ours: GPT) -> dict:
    """Our Llama-style state dict under Hugging Face's Mistral / Mixtral names."""
    c = ours.config
    d, kv, f = c.n_embd, c.kv_dim, c.d_ff
    sd = ours.state_dict()
    out = {"model.embed_tokens.weight": sd["transformer.wte.weight"],
           "model.norm.weight": sd["transformer.ln_f.weight"],
           "lm_head.weight": sd["lm_head.weight"]}
    for i in range(c.n_layer):
        h, m = f"transformer.h.{i}.", f"model.layers.{i}."
        qkv = sd[h + "attn.c_attn.weight"]
        out.update({m + "self_attn.q_proj.weight": qkv[:d], m + "self_attn.k_proj.weight":
                    qkv[d:d + kv], m + "self_attn.v_proj.weight": qkv[d + kv:],
                    m + "self_attn.o_proj.weight": sd[h + "attn.c_proj.weight"],
                    m + "input_layernorm.weight": sd[h + "ln_1.weight"],
                    m + "post_attention_layernorm.weight": sd[h + "ln_2.weight"]})
        if c.n_experts:
            E = c.n_experts
            out[m + "mlp.gate.weight"] = sd[h + "mlp.router.weight"]
            out[m + "mlp.experts.gate_up_proj"] = torch.stack(
                [sd[h + f"mlp.experts.{e}.c_fc.weight"] for e in range(E)])
            out[m + "mlp.experts.down_proj"] = torch.stack(
                [sd[h + f"mlp.experts.{e}.c_proj.weight"] for e in range(E)])
        else:
            fc = sd[h + "mlp.c_fc.weight"]
            out.update({m + "mlp.gate_proj.weight": fc[:f], m + "mlp.up_proj.weight": fc[f:],
                        m + "mlp.down_proj.weight": sd[h + "mlp.c_proj.weight"]})
    return out


@pytest.mark.parametrize("variant", ["mistral", "mixtral"])
@torch.inference_mode()
def test_hugging_face_mistral_and_mixtral_agree(variant):
    """Hugging Face's own Mistral (a window on every layer) and Mixtral (top-2 of 4 experts)
    with our weights give our logits, and their caches the same bytes as ours."""
    pytest.importorskip("transformers")
    from costmodel.reference.engines import build_hf, hf_cache_nbytes

    kw = dict(sliding_window=5) if variant == "mistral" else \
        dict(n_experts=4, experts_per_token=2)
    ours = make("llama", "eager", seed=1, **kw)
    hf = build_hf(ours.config)
    assert hf.config.model_type == variant
    hf.load_state_dict(hf_weights(ours))
    idx = torch.randint(61, (2, 20))
    expected = hf(idx).logits
    got, _ = ours(idx, all_logits=True)
    assert (got - expected).abs().max().item() <= TOL
    # the cache after a prefill of 20: ours holds what Hugging Face's holds
    past = hf(idx, use_cache=True).past_key_values
    _, _, kv = ours(idx, kv_cache=ours.empty_kv_cache())
    assert kv.nbytes == hf_cache_nbytes(past) == cm.kv_cache_bytes(
        ours.config.to_spec(), context=20, batch=2, kv_bytes=4)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_spec_parameters_and_kv_bytes(variant):
    """to_spec holds the window and expert fields; PyTorch's own parameter count and the
    caches' allocations are the calculator's formulas."""
    model = make("llama", "eager", **VARIANTS[variant])
    c, spec = model.config, model.config.to_spec()
    for name in ("sliding_window", "window_layers", "n_experts", "experts_per_token",
                 "dense_layers", "n_shared_experts", "router_bias"):
        assert getattr(spec, name) == getattr(c, name)
    assert GPTConfig.from_spec(spec, attn_impl="eager", block_size=24) == c
    assert cm.param_count(spec) == sum(p.numel() for p in model.parameters())
    # static: full layers 16 positions, window layers a ring of min(16, W − 1) slots
    assert model.setup_static_cache(2, 16) == cm.kv_cache_bytes(spec, context=16, batch=2,
                                                                kv_bytes=4)


@pytest.mark.parametrize("phase", ["prefill", "decode_dynamic", "decode_static", "no_cache"])
def test_moe_flops_on_the_meta_device_are_the_routed_ones(phase):
    """Each token reaches exactly k experts, so the even spread of the meta device counts the
    FLOPs the real routing does — and both are the operator model's."""
    cfg = GPTConfig(**{**LLAMA, "attn_impl": "eager", "block_size": 64},
                    **VARIANTS["moe-shared-dense"])
    model = make("llama", "eager", **{"block_size": 64, **VARIANTS["moe-shared-dense"]})
    ids = torch.randint(61, (3, 20))
    with torch.inference_mode(), reference_pass(model, phase, ids, ids[:, :1]) as p:
        real = count_flops(p.run)[0]
    assert real == meta_flops(cfg, phase, 3, 20)
    name, cache = {"prefill": ("prefill", "dynamic"), "decode_dynamic": ("decode", "dynamic"),
                   "decode_static": ("decode", "static"), "no_cache": ("no_cache", "none")}[phase]
    a = analyze_phase(cfg.to_spec(), "a100-80gb", name, 20, 3, weight_bytes=4, kv_bytes=4,
                      act_bytes=4, **reference_options(cache, "eager"))
    assert real == int(round(float(a.quantities[:, 0][np.isin(a.kinds, MATMUL_KINDS)].sum())))


def test_moe_routes_each_token_to_k_experts():
    """Top-k routing by hand: the output is Σ softmax(top-k logits) · expert(x)."""
    cfg = GPTConfig(**{**LLAMA, "n_layer": 1}, n_experts=4, experts_per_token=2, d_ff_expert=8)
    torch.manual_seed(3)
    moe = MoE(cfg).eval()
    x = torch.randn(2, 5, 32)
    with torch.inference_mode():
        got = moe(x)
        flat = x.reshape(-1, 32)
        top, idx = moe.router(flat).topk(2, dim=-1)
        w = torch.softmax(top, dim=-1)
        want = torch.stack([sum(w[t, j] * moe.experts[int(idx[t, j])](flat[t:t + 1])[0]
                                for j in range(2)) for t in range(10)])
    assert (got.reshape(-1, 32) - want).abs().max().item() <= 1e-5


def test_config_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="experts_per_token"):
        GPTConfig(**BASE, n_experts=4, experts_per_token=5)
    with pytest.raises(ValueError, match="window_layers"):
        GPTConfig(**BASE, window_layers=2)
    with pytest.raises(ValueError, match="needs n_experts"):
        GPTConfig(**BASE, dense_layers=1)
    with pytest.raises(ValueError, match="latent attention"):
        GPTConfig.from_spec(cm.model("deepseek-v2-lite"))
    with pytest.raises(ValueError, match="qk_norm"):
        GPTConfig.from_spec(cm.model("qwen3-8b"))
    # a dense config's dict is the one older files recorded (no modern keys)
    assert "n_experts" not in GPTConfig(**BASE).to_dict()
    assert GPTConfig(**BASE, sliding_window=4).to_dict()["window_layers"] == 3
    # Mixtral's preset builds, window and experts carried over
    mixtral = GPTConfig.from_spec(cm.model("mixtral-8x7b"))
    assert (mixtral.n_experts, mixtral.experts_per_token) == (8, 2)


def test_the_operator_model_prices_experts_run_one_call_each():
    """``moe_dispatch="loop"`` (the reference's and Hugging Face's eager experts) moves the
    same FLOPs and bytes as one grouped kernel per operator, in more calls: per MoE layer the
    router's step takes 8 kernels (router matmul, top-k, softmax, zero, argsort, count,
    divide, gather) and each of the U touched experts 4 (up, gate, activation, down) + 3
    (gather, scale, scatter), against 6 grouped — U = E (1 − (1 − k/E)^T) = 8 (1 − 0.75⁴) for
    Mixtral's top-2 of 8 and 4 tokens."""
    m = cm.model("mixtral-8x7b")
    kw = dict(batch=4, new_tokens=1, cached_tokens=100, kernel_overhead=1e-6)
    grouped = cm.analyze(m, "h100-sxm", **kw)
    loop = cm.analyze(m, "h100-sxm", moe_dispatch="loop", **kw)
    assert loop.flops == grouped.flops and loop.bytes == pytest.approx(grouped.bytes)
    U = 8 * (1 - 0.75 ** 4)
    extra = m.moe_layers * ((8 + 7 * U) - 6)
    assert loop.terms["kernels"].sum() - grouped.terms["kernels"].sum() == pytest.approx(extra)
    assert loop.time - grouped.time == pytest.approx(extra * 1e-6)
    with pytest.raises(ValueError, match="moe_dispatch"):
        cm.analyze(m, "h100-sxm", moe_dispatch="fused", **kw)
