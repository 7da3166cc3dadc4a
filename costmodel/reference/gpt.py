"""A small, readable GPT (nanoGPT / minGPT architecture) with two KV-cache strategies.

Architecture (defaults = GPT-2): learned absolute positions, pre-LayerNorm blocks, GELU MLP with
a 4x hidden layer, LM head tied to the token embedding. The same ``GPTConfig`` also describes a
Llama-style variant (RMSNorm, rotary positions, SwiGLU MLP with its own ``d_ff``, grouped-query
attention via ``n_kv_head``, no biases, untied head), so GQA models can be measured too.

Every forward pass is ``B`` sequences, each adding ``q`` new tokens that attend to ``c`` cached
tokens plus themselves (causal). Three ways to run it:

* **no cache** -- ``logits, loss = model(idx)``: re-encode the whole context (``q = T, c = 0``).
* **dynamic cache** (seed 001 / minGPT homework contract) --
  ``logits, loss, kv_cache = model(idx, kv_cache=kv_cache)``. ``kv_cache`` is a list with one
  entry per layer, each ``[k, v]`` with shape ``(B, c, C_kv)`` (stored *before* the head split,
  ``C_kv = n_kv_head * head_dim``), or ``None`` for a layer not yet populated. Start with
  ``model.empty_kv_cache()`` (= ``[None] * n_layer``). When the cache is populated, ``idx`` holds
  only the **new** tokens; ``compute_first=True`` ignores whatever the cache holds and encodes
  ``idx`` from position 0, populating the cache from scratch. The cache grows by concatenation.
* **static cache** (CS229S / gpt-fast style) -- ``model.setup_static_cache(B, max_len)`` registers
  preallocated buffers ``(B, n_kv_head, max_len, head_dim)`` in every attention layer;
  ``logits, loss = model(idx, input_pos=p)`` writes the new keys/values in place at positions
  ``p .. p+q-1`` and attends to positions ``0 .. p+q-1``. Rolling back is just passing an earlier
  ``input_pos``.

Return contract of ``GPT.forward``: ``(logits, loss)``, plus the updated dynamic cache as a third
element iff a ``kv_cache`` argument (not ``None``) was passed. When ``targets`` is ``None`` the LM
head runs on the last position only (nanoGPT) unless ``all_logits=True``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
from torch.nn import functional as F

from costmodel.reference.config import LLAMA_STYLE, GPTConfig

# ----------------------------------------------------------------------------- caches


class DynamicKVCache(list):
    """Seed-001 dynamic cache: a list with one ``[k, v]`` (or ``None``) per layer.

    ``k`` and ``v`` have shape ``(B, seq, C_kv)``. Being a ``list``, it is exactly the homework's
    contract; the extra methods are conveniences.
    """

    @property
    def seq_len(self) -> int:
        """Number of cached positions (0 when empty)."""
        return 0 if not self or self[0] is None else int(self[0][0].size(1))

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache tensors (sum of ``nbytes`` of every k and v)."""
        return sum(t.nbytes for entry in self if entry is not None for t in entry)

    def crop(self, length: int) -> DynamicKVCache:
        """Keep the first ``length`` positions (used to roll back rejected speculative tokens)."""
        return DynamicKVCache(
            None if e is None else [e[0][:, :length], e[1][:, :length]] for e in self
        )


class StaticKVCache(nn.Module):
    """Per-layer static cache (gpt-fast ``KVCache``): ``(B, n_kv_head, max_len, hd)`` buffers."""

    def __init__(
        self,
        batch_size: int,
        n_kv_head: int,
        max_len: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        shape = (batch_size, n_kv_head, max_len, head_dim)
        self.register_buffer(
            "k_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False
        )
        self.register_buffer(
            "v_cache", torch.zeros(shape, dtype=dtype, device=device), persistent=False
        )

    @property
    def batch_size(self) -> int:
        return self.k_cache.size(0)

    @property
    def max_len(self) -> int:
        return self.k_cache.size(2)

    @property
    def nbytes(self) -> int:
        """Bytes actually allocated for this layer's K and V buffers."""
        return self.k_cache.nbytes + self.v_cache.nbytes

    def update(
        self, input_pos: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k, v`` (B, n_kv_head, q, hd) at ``input_pos`` in place; return the prefix."""
        end = input_pos + k.size(2)
        self.k_cache[:, :, input_pos:end] = k
        self.v_cache[:, :, input_pos:end] = v
        return self.k_cache[:, :, :end], self.v_cache[:, :, :end]


# ----------------------------------------------------------------------------- layers


def _rotary(x: torch.Tensor, start: int, theta: float) -> torch.Tensor:
    """Rotate-half RoPE (Hugging Face Llama convention) on ``x`` of shape (B, T, H, hd)."""
    T, hd = x.size(1), x.size(-1)
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, device=x.device, dtype=torch.float32) / hd))
    pos = torch.arange(start, start + T, device=x.device, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)  # (T, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)[None, :, None, :]  # (1, T, 1, hd)
    cos, sin = emb.cos(), emb.sin()
    xf = x.float()
    x1, x2 = xf[..., : hd // 2], xf[..., hd // 2 :]
    rotated = torch.cat((-x2, x1), dim=-1)
    return (xf * cos + rotated * sin).to(x.dtype)


def causal_mask(q_len: int, past_len: int, device: torch.device | str | None = None
                ) -> torch.Tensor:
    """Boolean mask ``[q_len, past_len + q_len]``, True where attention is *forbidden*.

    Query ``i`` sits at absolute position ``past_len + i`` and may attend to keys
    ``0 .. past_len + i``, hence ``triu(ones, diagonal=past_len + 1)``. The one causal mask of
    the reference models (GPT here, the E0294 model in :mod:`costmodel.reference.e0294`).
    """
    ones = torch.ones(q_len, past_len + q_len, dtype=torch.bool, device=device)
    return torch.triu(ones, diagonal=past_len + 1)


class CausalSelfAttention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention with optional KV cache."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim, self.n_embd, self.kv_dim = config.head_dim, config.n_embd, config.kv_dim
        # q, k, v projections in one matmul (nanoGPT naming, so GPT-2 weights load directly)
        self.c_attn = nn.Linear(config.n_embd, config.n_embd + 2 * config.kv_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout
        self.rotary = config.positions == "rotary"
        self.rope_theta = config.rope_theta
        self.attn_impl = config.attn_impl
        self.static_cache: StaticKVCache | None = None

    def forward(
        self, x: torch.Tensor, kv_cache: list | None = None, input_pos: int | None = None
    ) -> tuple[torch.Tensor, list | None]:
        """Attend the ``q`` new tokens in ``x`` (B, q, C) to the cache plus themselves.

        ``kv_cache``: ``None`` (start empty) or ``[k, v]`` of shape (B, c, C_kv); the updated
        ``[k, v]`` is returned. ``input_pos``: use the static cache, writing at this position
        (then the returned cache is ``None``).
        """
        B, q, C = x.size()
        qkv = self.c_attn(x)
        qx, k, v = qkv.split([self.n_embd, self.kv_dim, self.kv_dim], dim=2)
        if input_pos is not None:
            start = input_pos
        elif kv_cache is not None:
            start = kv_cache[0].size(1)
        else:
            start = 0
        qh = qx.view(B, q, self.n_head, self.head_dim)
        kh = k.view(B, q, self.n_kv_head, self.head_dim)
        if self.rotary:
            qh = _rotary(qh, start, self.rope_theta)
            kh = _rotary(kh, start, self.rope_theta)
            k = kh.reshape(B, q, self.kv_dim)
        qh = qh.transpose(1, 2)  # (B, nh, q, hd)

        new_cache = None
        if input_pos is not None:
            if self.static_cache is None:
                raise ValueError(
                    "input_pos given but no static cache: call model.setup_static_cache()"
                )
            keys, values = self.static_cache.update(
                input_pos,
                kh.transpose(1, 2),
                v.view(B, q, self.n_kv_head, self.head_dim).transpose(1, 2),
            )
        else:
            if kv_cache is not None:
                k = torch.cat((kv_cache[0], k), dim=1)
                v = torch.cat((kv_cache[1], v), dim=1)
            new_cache = [k, v]
            T = k.size(1)
            keys = k.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)
            values = v.view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)

        y = self._attend(qh, keys, values)  # (B, nh, q, hd)
        y = y.transpose(1, 2).contiguous().view(B, q, C)
        y = self.resid_dropout(self.c_proj(y))
        return y, new_cache

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        nq, total = q.size(2), k.size(2)
        groups = self.n_head // self.n_kv_head
        dropout_p = self.dropout if self.training else 0.0
        if self.attn_impl == "sdpa":
            kwargs = {"enable_gqa": True} if groups > 1 else {}
            if nq == 1:  # one new token sees every cached key: no mask needed
                return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, **kwargs)
            if nq == total:
                return F.scaled_dot_product_attention(
                    q, k, v, dropout_p=dropout_p, is_causal=True, **kwargs
                )
            allowed = ~causal_mask(nq, total - nq, q.device)
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=allowed, dropout_p=dropout_p, **kwargs
            )
        # eager: explicit matmuls (FLOP counters see these)
        if groups > 1:
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if nq > 1:
            att = att.masked_fill(causal_mask(nq, total - nq, q.device), float("-inf"))
        att = F.softmax(att.float(), dim=-1).to(q.dtype)
        att = self.attn_dropout(att)
        return att @ v


class MLP(nn.Module):
    """GELU MLP (``c_fc -> gelu -> c_proj``) or SwiGLU (``c_fc`` holds gate and up, stacked)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        width = 2 * config.d_ff if self.swiglu else config.d_ff
        self.c_fc = nn.Linear(config.n_embd, width, bias=config.bias)
        self.gelu = nn.GELU(approximate=config.gelu_approximate)
        self.c_proj = nn.Linear(config.d_ff, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = self.gelu(h)
        return self.dropout(self.c_proj(h))


def _norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = _norm(config)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = _norm(config)
        self.mlp = MLP(config)

    def forward(
        self, x: torch.Tensor, kv_cache: list | None = None, input_pos: int | None = None
    ) -> tuple[torch.Tensor, list | None]:
        y, kv_cache = self.attn(self.ln_1(x), kv_cache=kv_cache, input_pos=input_pos)
        x = x + y
        x = x + self.mlp(self.ln_2(x))
        return x, kv_cache


# ----------------------------------------------------------------------------- model


class GPT(nn.Module):
    """Decoder-only transformer. See the module docstring for the forward/caching contract."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        modules = dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=_norm(config),
        )
        if config.positions == "learned":
            modules["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        self.transformer = nn.ModuleDict(modules)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():  # GPT-2 scaled init of the residual projections
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        self._in_out_layout()

    def _in_out_layout(self) -> None:
        """Store every matmul weight (in, out)-contiguous, i.e. GPT-2 Conv1D's memory layout.

        Logically the weights stay ``nn.Linear`` (out, in) tensors (same names, shapes and state
        dict); only the strides change. CPU BLAS runs the M=1 matrix-vector products of decoding
        markedly faster on this layout (the tied 50257-row LM head about 2x on a 2-core EPYC).
        ``.to(dtype/device)`` and ``load_state_dict`` preserve it.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear) and module is not self.lm_head:
                module.weight = nn.Parameter(module.weight.detach().t().contiguous().t())
        if self.config.tie_embeddings:
            wte = self.transformer.wte
            wte.weight = nn.Parameter(wte.weight.detach().t().contiguous().t())
            self.lm_head.weight = wte.weight
        else:
            self.lm_head.weight = nn.Parameter(self.lm_head.weight.detach().t().contiguous().t())

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    @property
    def block_size(self) -> int:
        return self.config.block_size

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameter count (tied weights once); nanoGPT subtracts the position embedding."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and "wpe" in self.transformer:
            n -= self.transformer.wpe.weight.numel()
        return n

    # --- caches ---------------------------------------------------------------------------

    def empty_kv_cache(self) -> DynamicKVCache:
        """An empty dynamic cache (``[None] * n_layer``) to pass as ``kv_cache``."""
        return DynamicKVCache([None] * self.config.n_layer)

    def setup_static_cache(
        self,
        batch_size: int,
        max_len: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> int:
        """Allocate static KV buffers in every layer; returns the bytes allocated."""
        max_len = self.config.block_size if max_len is None else max_len
        if batch_size <= 0 or max_len <= 0:
            raise ValueError(
                f"static cache needs batch_size > 0 and max_len > 0, got {batch_size}, {max_len}"
            )
        if max_len > self.config.block_size:
            raise ValueError(
                f"static cache max_len {max_len} exceeds block_size {self.config.block_size}"
            )
        p = self.transformer.wte.weight
        dtype = p.dtype if dtype is None else dtype
        device = p.device if device is None else device
        for block in self.transformer.h:
            block.attn.static_cache = StaticKVCache(
                batch_size, self.config.n_kv_head, max_len, self.config.head_dim, dtype, device
            )
        return self.static_cache_nbytes

    def clear_static_cache(self) -> None:
        for block in self.transformer.h:
            block.attn.static_cache = None

    @property
    def static_cache(self) -> StaticKVCache | None:
        """Layer 0's static cache (all layers share its shape), or ``None``."""
        return self.transformer.h[0].attn.static_cache

    @property
    def static_cache_nbytes(self) -> int:
        """Total bytes allocated by the static caches of all layers (0 when none)."""
        return sum(
            b.attn.static_cache.nbytes
            for b in self.transformer.h
            if b.attn.static_cache is not None
        )

    # --- forward --------------------------------------------------------------------------

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        kv_cache: list | None = None,
        compute_first: bool = False,
        *,
        input_pos: int | None = None,
        all_logits: bool = False,
    ):
        """Run ``idx`` (B, q) through the model.

        Returns ``(logits, loss)``, or ``(logits, loss, kv_cache)`` when ``kv_cache`` is given.
        ``logits`` is (B, q, vocab) when ``targets`` is given or ``all_logits``, else (B, 1, vocab).
        """
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
        B, q = idx.size()
        use_dynamic = kv_cache is not None
        if use_dynamic and input_pos is not None:
            raise ValueError(
                "pass either kv_cache (dynamic cache) or input_pos (static cache), not both"
            )
        if use_dynamic:
            if len(kv_cache) != self.config.n_layer:
                raise ValueError(
                    f"kv_cache must have one entry per layer ({self.config.n_layer}), "
                    f"got {len(kv_cache)}"
                )
            kv_cache = DynamicKVCache([None] * self.config.n_layer if compute_first else kv_cache)
            start = kv_cache.seq_len
            if start and kv_cache[0][0].size(0) != B:
                raise ValueError(
                    f"kv_cache was built for batch size {kv_cache[0][0].size(0)}, "
                    f"but idx has batch size {B}"
                )
        elif input_pos is not None:
            cache = self.static_cache
            if cache is None:
                raise ValueError(
                    "input_pos given but no static cache: call model.setup_static_cache() first"
                )
            if cache.batch_size != B:
                raise ValueError(
                    f"static cache was set up for batch size {cache.batch_size}, "
                    f"but idx has batch size {B}"
                )
            if input_pos < 0 or input_pos + q > cache.max_len:
                raise ValueError(
                    f"tokens at positions {input_pos}..{input_pos + q - 1} do not fit the "
                    "static cache "
                    f"(max_len {cache.max_len}); prompt too long for the static cache"
                )
            start = input_pos
        else:
            start = 0
        if start + q > self.config.block_size:
            raise ValueError(
                f"cannot forward positions up to {start + q} tokens: "
                f"block_size is only {self.config.block_size}"
            )

        x = self.transformer.wte(idx)
        if "wpe" in self.transformer:
            pos = torch.arange(start, start + q, dtype=torch.long, device=idx.device)
            x = x + self.transformer.wpe(pos)
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            entry = kv_cache[i] if use_dynamic else None
            x, entry = block(x, kv_cache=entry, input_pos=input_pos)
            if use_dynamic:
                kv_cache[i] = entry
        x = self.transformer.ln_f(x)

        loss = None
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1
            )
        elif all_logits:
            logits = self.lm_head(x)
        else:
            logits = self.lm_head(x[:, [-1], :])  # inference: last position only
        if use_dynamic:
            return logits, loss, kv_cache
        return logits, loss

    # --- generation -----------------------------------------------------------------------

    @torch.inference_mode()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        do_sample: bool = False,
        top_k: int | None = None,
        cache: Literal["none", "dynamic", "static"] = "none",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Complete ``idx`` (B, T) with ``max_new_tokens`` tokens (nanoGPT's loop).

        The context is cropped to the last ``block_size`` tokens. With a cache, the prompt is
        prefilled once and each step feeds one token; once the context would exceed
        ``block_size``, every step re-encodes the cropped window from scratch (the learned
        positions shift, so old cache entries are invalid). Cached and uncached paths therefore
        produce the same tokens.
        """
        if cache not in ("none", "dynamic", "static"):
            raise ValueError(f"cache must be 'none', 'dynamic' or 'static', got {cache!r}")
        bs = self.config.block_size
        kv = None
        pos = 0
        if cache == "static":
            B = idx.size(0)
            need = min(bs, idx.size(1) + max_new_tokens)
            sc = self.static_cache
            if sc is None or sc.batch_size != B or sc.max_len < need:
                self.setup_static_cache(B, need)
        for _ in range(max_new_tokens):
            window = idx if idx.size(1) <= bs else idx[:, -bs:]
            fresh = idx.size(1) > bs or (kv is None and pos == 0)
            if cache == "none":
                logits, _ = self(window)
            elif cache == "dynamic":
                if fresh:
                    logits, _, kv = self(window, kv_cache=self.empty_kv_cache(), compute_first=True)
                else:
                    logits, _, kv = self(idx[:, -1:], kv_cache=kv)
            else:
                if fresh:
                    logits, _ = self(window, input_pos=0)
                    pos = window.size(1)
                else:
                    logits, _ = self(idx[:, -1:], input_pos=pos)
                    pos += 1
            idx_next = sample_next(logits[:, -1, :], temperature, do_sample, top_k, generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """Scale by temperature (0 means greedy: unscaled) and keep the top-k logits (others -inf)."""
    logits = logits.float()
    if temperature and temperature > 0:
        logits = logits / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits = logits.masked_fill(logits < v[..., [-1]], float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    do_sample: bool = False,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token (B, 1) from last-position logits (B, V): sampled, or argmax when greedy."""
    if not do_sample or temperature == 0:
        return torch.argmax(logits, dim=-1, keepdim=True)
    probs = F.softmax(filter_logits(logits, temperature, top_k), dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"fp32"|"bf16"|"fp16"`` (or torch names) to a ``torch.dtype``."""
    if isinstance(name, torch.dtype):
        return name
    table = {
        "fp32": torch.float32,
        "float32": torch.float32,
        "bf16": torch.bfloat16,
        "bfloat16": torch.bfloat16,
        "fp16": torch.float16,
        "float16": torch.float16,
    }
    if name not in table:
        raise ValueError(f"unknown dtype {name!r}; use one of fp32, bf16, fp16")
    return table[name]


__all__ = ["GPT", "GPTConfig", "LLAMA_STYLE", "DynamicKVCache", "StaticKVCache", "causal_mask",
           "filter_logits", "parse_dtype", "sample_next"]
