"""Reference GPT: cache correctness (dynamic, static), generation, weight loading, bad input."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from costmodel.reference.gpt import GPT, LLAMA_STYLE, DynamicKVCache, GPTConfig  # noqa: E402
from costmodel.reference.loading import load_checkpoint, load_hf_gpt2, load_state_dict_checked  # noqa: E402

TOL = 1e-4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


CONFIGS = {
    "gpt": dict(n_layer=2, n_head=4, n_embd=32, vocab_size=61, block_size=24),
    "gpt-eager": dict(
        n_layer=2, n_head=4, n_embd=32, vocab_size=61, block_size=24, attn_impl="eager"
    ),
    "llama-gqa": dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=32, vocab_size=61,
                      block_size=24, d_ff=48, **LLAMA_STYLE),
    "llama-gqa-eager": dict(n_layer=2, n_head=4, n_kv_head=1, n_embd=32, vocab_size=61,
                            block_size=24, attn_impl="eager", **LLAMA_STYLE),
}


def make_model(name: str = "gpt", seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**CONFIGS[name], **overrides})).eval()
    with torch.no_grad():  # larger weights than GPT-2's init, so logits differ clearly by position
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("prompt_len", [1, 5, 12])
@torch.inference_mode()
def test_cached_logits_equal_uncached(name: str, prompt_len: int) -> None:
    model = make_model(name)
    B, T = 3, model.config.block_size
    idx = torch.randint(model.config.vocab_size, (B, T))
    full, _ = model(idx, all_logits=True)

    # dynamic: prefill then chunks of 1 and 3 tokens
    logits, _, kv = model(idx[:, :prompt_len], kv_cache=model.empty_kv_cache(), all_logits=True)
    assert isinstance(kv, DynamicKVCache) and kv.seq_len == prompt_len
    k0 = kv[0][0]
    assert k0.shape == (B, prompt_len, model.config.kv_dim)  # (B, seq, C_kv) before the head split
    outs, t = [logits], prompt_len
    while t < T:
        q = 1 if t % 2 else 3
        logits, _, kv = model(idx[:, t : t + q], kv_cache=kv, all_logits=True)
        outs.append(logits)
        t += q
    dyn = torch.cat(outs, dim=1)
    assert (dyn - full).abs().max().item() <= TOL

    # static: same schedule, written in place into preallocated buffers
    model.setup_static_cache(B, T)
    logits, _ = model(idx[:, :prompt_len], input_pos=0, all_logits=True)
    outs, t = [logits], prompt_len
    while t < T:
        logits, _ = model(idx[:, t : t + 1], input_pos=t, all_logits=True)
        outs.append(logits)
        t += 1
    stat = torch.cat(outs, dim=1)
    assert (stat - full).abs().max().item() <= TOL
    assert (stat - dyn).abs().max().item() <= TOL

    # last-position-only head by default
    last, _ = model(idx)
    assert last.shape == (B, 1, model.config.vocab_size)
    assert (last[:, 0] - full[:, -1]).abs().max().item() <= TOL


@pytest.mark.parametrize("name", ["gpt", "llama-gqa"])
@pytest.mark.parametrize("prompt_len", [3, 20, 30])
def test_generate_same_tokens_across_caches_and_block_boundary(name: str, prompt_len: int) -> None:
    model = make_model(name)
    idx = torch.randint(model.config.vocab_size, (2, prompt_len))
    n = 20  # prompt_len + n crosses block_size (24): the context is cropped, caches re-encode
    ref = model.generate(idx, n, cache="none")
    assert ref.shape == (2, prompt_len + n)
    for cache in ("dynamic", "static"):
        assert torch.equal(model.generate(idx, n, cache=cache), ref), cache
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a = model.generate(idx, n, do_sample=True, top_k=10, cache="none", generator=g1)
    b = model.generate(idx, n, do_sample=True, top_k=10, cache="dynamic", generator=g2)
    assert torch.equal(a, b)


def test_cache_nbytes_match_formula() -> None:
    model = make_model("llama-gqa")
    c = model.config
    with torch.inference_mode():
        _, _, kv = model(torch.zeros(2, 10, dtype=torch.long), kv_cache=model.empty_kv_cache())
    per_token = 2 * c.n_layer * c.n_kv_head * c.head_dim * 4  # K and V, fp32
    assert kv.nbytes == 2 * 10 * per_token
    assert model.setup_static_cache(2, 16) == 2 * 16 * per_token == model.static_cache_nbytes
    assert model.static_cache.k_cache.shape == (2, c.n_kv_head, 16, c.head_dim)


def test_flop_counter_sees_eager_attention() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = make_model("gpt-eager")
    T = 16
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        model(torch.zeros(1, T, dtype=torch.long), all_logits=True)
    c = model.config
    linear = (
        2 * T * c.n_layer * (c.n_embd * 3 * c.n_embd + c.n_embd * c.n_embd + 2 * c.n_embd * c.d_ff)
    )
    head = 2 * T * c.n_embd * c.vocab_size
    attention = c.n_layer * 2 * (2 * T * T * c.n_embd)  # QK^T and AV over the full T x T square
    assert fc.get_total_flops() == linear + head + attention


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="n_embd"):
        GPTConfig(n_layer=1, n_head=3, n_embd=32)
    with pytest.raises(ValueError, match="n_kv_head"):
        GPTConfig(n_layer=1, n_head=4, n_kv_head=3, n_embd=32)
    with pytest.raises(ValueError, match="n_layer"):
        GPTConfig(n_layer=0)
    with pytest.raises(ValueError, match="norm"):
        GPTConfig(norm="batchnorm")
    assert GPTConfig.from_preset("gpt2-xl").n_embd == 1600
    assert GPTConfig.llama_style(n_embd=96, n_head=4).d_ff == 256
    with pytest.raises(ValueError, match="preset"):
        GPTConfig.from_preset("gpt5")


def test_bad_cache_inputs() -> None:
    model = make_model("gpt")
    idx = torch.randint(model.config.vocab_size, (2, 8))
    model.setup_static_cache(2, 6)
    with pytest.raises(ValueError, match="static cache"):
        model(idx, input_pos=0)  # prompt longer than the static cache
    with pytest.raises(ValueError, match="batch size"):
        model(idx[:1, :4], input_pos=0)  # static cache from another batch size
    with torch.inference_mode():
        _, _, kv = model(idx, kv_cache=model.empty_kv_cache())
    with pytest.raises(ValueError, match="batch size"):
        model(torch.zeros(3, 1, dtype=torch.long), kv_cache=kv)  # dynamic cache from another batch
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(2, 20, dtype=torch.long), kv_cache=kv)  # 8 + 20 > 24
    with pytest.raises(ValueError, match="one entry per layer"):
        model(idx, kv_cache=[None])
    with pytest.raises(ValueError, match="setup_static_cache"):
        make_model("gpt")(idx, input_pos=0)


def hf_gpt2(seed: int, **config):
    """A Hugging Face GPT2LMHeadModel with random weights (eager attention) and its config."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(bos_token_id=0, eos_token_id=0, **config)
    return transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="eager").eval(), cfg


def test_hf_gpt2_weights_give_hf_logits(tmp_path) -> None:
    hf, cfg = hf_gpt2(0, n_layer=2, n_head=4, n_embd=64, vocab_size=101, n_positions=48)
    hf.save_pretrained(tmp_path)
    ours = load_hf_gpt2(tmp_path)
    idx = torch.randint(cfg.vocab_size, (2, 40))
    with torch.inference_mode():
        expected = hf(idx).logits
        got, _ = ours(idx, all_logits=True)
        assert (got - expected).abs().max().item() <= TOL
        # and with our KV cache
        a, _, kv = ours(idx[:, :30], kv_cache=ours.empty_kv_cache(), all_logits=True)
        b, _, _ = ours(idx[:, 30:], kv_cache=kv, all_logits=True)
        assert (torch.cat((a, b), 1) - expected).abs().max().item() <= TOL


def test_hf_pytorch_model_bin(tmp_path) -> None:
    hf, cfg = hf_gpt2(1, n_layer=1, n_head=2, n_embd=32, vocab_size=50, n_positions=16)
    cfg.save_pretrained(tmp_path)
    torch.save(
        {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"},
        tmp_path / "pytorch_model.bin",
    )
    ours = load_hf_gpt2(tmp_path)
    idx = torch.randint(50, (1, 16))
    with torch.inference_mode():
        assert (ours(idx, all_logits=True)[0] - hf(idx).logits).abs().max().item() <= TOL


def test_nanogpt_checkpoint_roundtrip(tmp_path) -> None:
    model = make_model("gpt", bias=False, gelu_approximate="none")
    c = model.config
    sd = {"_orig_mod." + k: v for k, v in model.state_dict().items()}  # as torch.compile saves it
    model_args = dict(
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_embd=c.n_embd,
        block_size=c.block_size,
        bias=False,
        vocab_size=c.vocab_size,
        dropout=0.0,
    )
    torch.save({"model_args": model_args, "model": sd, "iter_num": 0}, tmp_path / "ckpt.pt")
    loaded = load_checkpoint(tmp_path)
    idx = torch.randint(c.vocab_size, (2, 10))
    with torch.inference_mode():
        assert torch.allclose(
            loaded(idx, all_logits=True)[0], model(idx, all_logits=True)[0], atol=TOL
        )


def test_malformed_state_dict() -> None:
    model = make_model("gpt")
    sd = model.state_dict()
    sd.pop("transformer.h.0.attn.c_attn.weight")
    sd["transformer.h.9.mlp.c_fc.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys.*c_attn.*unexpected keys.*h\.9"):
        load_state_dict_checked(make_model("gpt"), sd)
    sd = model.state_dict()
    sd["transformer.wpe.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="shape"):
        load_state_dict_checked(make_model("gpt"), sd)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_runs(dtype) -> None:
    model = make_model("llama-gqa").to(dtype)
    idx = torch.randint(model.config.vocab_size, (1, 6))
    out = model.generate(idx, 4, cache="static")
    assert out.shape == (1, 10)
    assert model.static_cache.k_cache.dtype == dtype
