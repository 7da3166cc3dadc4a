"""The dynamic cache grows in place: seed 001's contract (a list of ``[k, v]`` of shape
(B, c, C_kv) per layer) kept, nothing copied but the new rows, geometric growth, plain tensors
accepted, roll-back and private copies — and the layouts the attention reads."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from costmodel.reference.caches import (  # noqa: E402
    MIN_ROOM,
    DynamicKVCache,
    KVEntry,
    grown_capacity,
)
from costmodel.reference.gpt import GPT, LLAMA_STYLE, GPTConfig  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFG = dict(n_layer=2, n_head=4, n_embd=32, vocab_size=61, block_size=256)


def model(impl: str = "eager", **kw) -> GPT:
    torch.manual_seed(0)
    m = GPT(GPTConfig(**{**CFG, "attn_impl": impl, **kw})).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@torch.inference_mode()
def test_a_step_writes_its_row_in_place(impl):
    m = model(impl)
    idx = torch.randint(61, (2, 40))
    _, _, kv = m(idx[:, :30], kv_cache=m.empty_kv_cache())
    entry = kv[0]
    assert isinstance(kv, DynamicKVCache) and isinstance(entry, KVEntry)
    assert tuple(entry[0].shape) == (2, 30, 32)                   # (B, c, C_kv), as seed 001
    assert entry.buffer.capacity == grown_capacity(30, 0, 256) == 30 + MIN_ROOM
    before = entry[0].clone()
    _, _, kv2 = m(idx[:, 30:31], kv_cache=kv)
    # the same buffer, one row longer; the old rows not copied (same storage, same values)
    assert kv2[0].buffer is entry.buffer
    assert kv2[0][0].data_ptr() == entry[0].data_ptr()
    assert torch.equal(kv2[0][0][:, :30], before) and kv2.seq_len == 31
    # a view of the buffer: the layout the attention reads (channel-major for eager)
    assert entry.buffer.k.shape == ((2, 32, entry.buffer.capacity) if impl == "eager"
                                    else (2, entry.buffer.capacity, 32))


@torch.inference_mode()
def test_growth_is_geometric():
    """Decoding 200 tokens one by one reallocates a handful of times (each at least doubling),
    not every step."""
    m = model()
    idx = torch.randint(61, (1, 201))
    _, _, kv = m(idx[:, :1], kv_cache=m.empty_kv_cache())
    buffers = [kv[0].buffer]
    for t in range(1, 201):
        _, _, kv = m(idx[:, t:t + 1], kv_cache=kv)
        if kv[0].buffer is not buffers[-1]:
            buffers.append(kv[0].buffer)
    caps = [b.capacity for b in buffers]
    assert len(caps) <= 3
    assert all(b >= min(2 * a, 256) for a, b in zip(caps, caps[1:], strict=False))
    assert kv.allocated_nbytes == 2 * 2 * caps[-1] * 32 * 4 >= kv.nbytes == 2 * 2 * 201 * 32 * 4


@torch.inference_mode()
def test_plain_tensors_and_private_copies():
    m = model()
    idx = torch.randint(61, (2, 20))
    full, _ = m(idx, all_logits=True)
    _, _, kv = m(idx[:, :12], kv_cache=m.empty_kv_cache())
    # a cache of plain tensors (built elsewhere) is copied into a buffer on the first step
    plain = [[t.clone() for t in entry] for entry in kv]
    got, _, kv_plain = m(idx[:, 12:], kv_cache=plain, all_logits=True)
    assert (got - full[:, 12:]).abs().max().item() <= 1e-5
    assert isinstance(kv_plain[0], KVEntry)
    # stepping an older cache rewrites the rows a later one holds; a clone is private
    copy = kv.clone()
    _, _, later = m(idx[:, 12:13], kv_cache=kv)
    held = later[0][0][:, 12].clone()
    m(idx[:, 13:14], kv_cache=kv)                       # the same position, another token
    assert not torch.equal(later[0][0][:, 12], held)    # shared buffer: row 12 rewritten
    _, _, own = m(idx[:, 12:13], kv_cache=copy)
    assert own[0].buffer is not kv[0].buffer and torch.equal(own[0][0][:, 12], held)


@torch.inference_mode()
def test_crop_rolls_back_and_window_layers_refuse_what_they_dropped():
    m = model(**LLAMA_STYLE, n_kv_head=2, d_ff=48, sliding_window=6, window_layers=1)
    idx = torch.randint(61, (1, 24))
    full, _ = m(idx, all_logits=True)
    _, _, kv = m(idx[:, :4], kv_cache=m.empty_kv_cache())
    _, _, kv = m(idx[:, 4:5], kv_cache=kv)
    back = kv.crop(4)                 # the window layer still holds everything: fine
    got, _, _ = m(idx[:, 4:10], kv_cache=back, all_logits=True)
    assert (got - full[:, 4:10]).abs().max().item() <= 1e-5
    _, _, long = m(idx[:, :12], kv_cache=m.empty_kv_cache())
    with pytest.raises(ValueError, match="sliding-window"):
        long.crop(10)                 # it kept the last 5 rows only
    assert tuple(long[1][0].shape)[1] == 5 and tuple(long[0][0].shape)[1] == 12


def test_static_cache_layouts():
    """For the explicit-matmul attention K head-major and V channel-major, gpt-fast's
    head-major buffers for SDPA; a window layer's ring holds W − 1 slots."""
    e = model("eager", n_kv_head=2, sliding_window=5, window_layers=1)
    s = model("sdpa")
    e.setup_static_cache(3, 16)
    s.setup_static_cache(3, 16)
    # K (B, n_kv_head, max_len, head_dim), V (B, n_kv_head, head_dim, max_len); the window
    # layer's ring (B, n_kv_head, W − 1, hd)
    assert tuple(e.transformer.h[0].attn.static_cache.k_cache.shape) == (3, 2, 16, 8)
    assert tuple(e.transformer.h[0].attn.static_cache.v_cache.shape) == (3, 2, 8, 16)
    assert tuple(e.transformer.h[1].attn.static_cache.k_cache.shape) == (3, 2, 4, 8)
    assert tuple(s.transformer.h[0].attn.static_cache.k_cache.shape) == (3, 4, 16, 8)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@torch.inference_mode()
def test_a_blank_cache_is_laid_out_as_a_prefill_leaves_it(impl):
    """The measurement's blank cache (zeros, no prefill run): the shapes, holdings and
    capacities a prefill leaves, so the decode step after it does the same work."""
    m = model(impl, **LLAMA_STYLE, n_kv_head=2, d_ff=48, sliding_window=6, window_layers=1)
    idx = torch.randint(61, (2, 40))
    _, _, filled = m(idx, kv_cache=m.empty_kv_cache())
    blank = m.blank_kv_cache(2, 40)
    assert blank.seq_len == filled.seq_len == 40 and blank.nbytes == filled.nbytes
    for i, (a, b) in enumerate(zip(blank, filled, strict=True)):
        assert a[0].shape == b[0].shape and not a[0].any()
        if not m.config.is_window_layer(i):     # a full layer: the very same buffer shape
            assert a[0].stride() == b[0].stride() and a.buffer.capacity == b.buffer.capacity
    _, _, after = m(idx[:, :1], kv_cache=blank)
    _, _, step = m(idx[:, :1], kv_cache=filled)
    assert after.nbytes == step.nbytes
    # the step writes in place on both (room to grow, nothing reallocated)
    assert all(x.buffer is y.buffer for x, y in zip(after, blank, strict=True))
    assert all(x.buffer is y.buffer for x, y in zip(step, filled, strict=True))
    with pytest.raises(ValueError, match="blank cache"):
        m.blank_kv_cache(2, 300)


def test_weights_are_packed_in_the_order_a_pass_reads_them():
    """On the CPU the matmul weights sit end to end in one buffer, in use order (so a decode
    step streams one run of memory), each with the layout its matrix-vector product reads
    fastest: the longer dimension contiguous."""
    m = model("eager")
    order = []
    for block in m.transformer.h:
        order += [block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj]
    weights = [lin.weight for lin in order] + [m.transformer.wte.weight]
    for a, b in zip(weights, weights[1:], strict=False):
        assert b.data_ptr() == a.data_ptr() + a.numel() * a.element_size()
    assert m.lm_head.weight is m.transformer.wte.weight
    c_fc, c_proj = m.transformer.h[0].mlp.c_fc.weight, m.transformer.h[0].mlp.c_proj.weight
    assert c_fc.stride() == (1, 128) and c_proj.stride() == (128, 1)   # (out, in) (128, 32)
    assert m.state_dict()["transformer.h.0.mlp.c_fc.weight"].shape == (128, 32)
