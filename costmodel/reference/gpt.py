"""A small, readable GPT (nanoGPT / minGPT architecture) with two KV-cache strategies.

Architecture (defaults = GPT-2): learned absolute positions, pre-LayerNorm blocks, GELU MLP with
a 4x hidden layer, LM head tied to the token embedding. The same ``GPTConfig`` also describes a
Llama-style variant (RMSNorm, rotary positions, SwiGLU MLP with its own ``d_ff``, grouped-query
attention via ``n_kv_head``, no biases, untied head), so GQA models can be measured too, and
the modern layers the calculator prices: sliding-window attention on some layers and a mixture
of experts (router, top-k experts, shared experts; see :class:`GPTConfig`).

Every forward pass is ``B`` sequences, each adding ``q`` new tokens that attend to ``c`` cached
tokens plus themselves (causal; a window layer to the last W of them). Three ways to run it:

* **no cache** -- ``logits, loss = model(idx)``: re-encode the whole context (``q = T, c = 0``).
* **dynamic cache** (seed 001 / minGPT homework contract) --
  ``logits, loss, kv_cache = model(idx, kv_cache=kv_cache)``. ``kv_cache`` is a list with one
  entry per layer, each ``[k, v]`` with shape ``(B, c, C_kv)`` (stored *before* the head split,
  ``C_kv = n_kv_head * head_dim``; a window layer holds its last W − 1 rows), or ``None`` for a
  layer not yet populated. Start with ``model.empty_kv_cache()`` (= ``[None] * n_layer``). When
  the cache is populated, ``idx`` holds only the **new** tokens; ``compute_first=True`` ignores
  whatever the cache holds and encodes ``idx`` from position 0, populating the cache from
  scratch. The tensors are views into buffers with spare capacity: a step writes its new rows
  in place (:mod:`costmodel.reference.caches`: growth is geometric, so amortised O(1) rows).
* **static cache** (CS229S / gpt-fast style) -- ``model.setup_static_cache(B, max_len)`` registers
  preallocated buffers in every attention layer; ``logits, loss = model(idx, input_pos=p)``
  writes the new keys/values in place at positions ``p .. p+q-1`` and attends to positions
  ``0 .. p+q-1``. Rolling back is just passing an earlier ``input_pos``.

Attention runs as explicit matmuls (``attn_impl="eager"``: FLOP counters see them; the caches
are then stored so a decode step's products stream through memory: channel-major, K head-major
in the static cache) or through
``F.scaled_dot_product_attention`` (``"sdpa"``: token-major dynamic and head-major static
caches, as fused kernels want them).

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

from costmodel.reference.caches import DynamicKVCache, StaticKVCache, append_rows, blank_entry
from costmodel.reference.config import LLAMA_STYLE, GPTConfig

# ----------------------------------------------------------------------------- layers


def rotary_tables(start: int, q: int, head_dim: int, theta: float,
                  device: torch.device | str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (1, q, 1, head_dim) of positions ``start .. start+q-1`` (computed once per
    forward pass and shared by every layer, as Hugging Face's rotary embedding)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device,
                                             dtype=torch.float32) / head_dim))
    pos = torch.arange(start, start + q, device=device, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)  # (q, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)[None, :, None, :]  # (1, q, 1, hd)
    return emb.cos(), emb.sin()


def _rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE (Hugging Face Llama convention) on ``x`` of shape (B, T, H, hd)."""
    hd = x.size(-1)
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


def window_mask(q_len: int, past_len: int, window: int,
                device: torch.device | str | None = None) -> torch.Tensor:
    """:func:`causal_mask` that also forbids keys W or more positions behind the query (key
    ``j`` is ``past_len + i − j`` positions behind query ``i``)."""
    ones = torch.ones(q_len, past_len + q_len, dtype=torch.bool, device=device)
    return torch.triu(ones, diagonal=past_len + 1) | torch.tril(ones, diagonal=past_len - window)


class CausalSelfAttention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention with optional KV cache; with
    ``window`` W, attention to the last W tokens only."""

    def __init__(self, config: GPTConfig, window: int | None = None):
        super().__init__()
        self.n_head, self.n_kv_head = config.n_head, config.n_kv_head
        self.head_dim, self.n_embd, self.kv_dim = config.head_dim, config.n_embd, config.kv_dim
        # q, k, v projections in one matmul (nanoGPT naming, so GPT-2 weights load directly)
        self.c_attn = nn.Linear(config.n_embd, config.n_embd + 2 * config.kv_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout
        self.attn_impl = config.attn_impl
        self.window = window
        self.block_size = config.block_size
        self.static_cache: StaticKVCache | None = None

    @property
    def layout(self) -> str:
        """The dynamic cache's layout: channel-major for the explicit matmuls, token-major
        for SDPA (:mod:`costmodel.reference.caches`)."""
        return "channel" if self.attn_impl == "eager" else "token"

    def forward(self, x: torch.Tensor, kv_cache: list | None = None,
                input_pos: int | None = None, rope: tuple | None = None,
                dynamic: bool | None = None, start: int = 0
                ) -> tuple[torch.Tensor, list | None]:
        """Attend the ``q`` new tokens in ``x`` (B, q, C) to the cache plus themselves.

        ``kv_cache``: this layer's dynamic-cache entry (``None``: empty) with ``dynamic``
        (default: whether ``kv_cache`` is given); the updated entry is returned. ``input_pos``:
        use the static cache, writing at this position (then the returned entry is ``None``).
        ``rope``: the rotary (cos, sin) of the new positions; ``start``: the sequence's
        position before this pass.
        """
        B, q, C = x.size()
        if dynamic is None:
            dynamic = kv_cache is not None
        if input_pos is not None:
            start = input_pos
        elif dynamic and kv_cache is not None and not start:
            start = int(kv_cache[0].size(1))
        qkv = self.c_attn(x)
        qx, k, v = qkv.split([self.n_embd, self.kv_dim, self.kv_dim], dim=2)
        qh = qx.view(B, q, self.n_head, self.head_dim)
        if rope is not None:     # q and k rotated in one pass (the model's one rotary operator)
            qk = qkv[..., :self.n_embd + self.kv_dim].view(
                B, q, self.n_head + self.n_kv_head, self.head_dim)
            qk = _rotary(qk, *rope)
            qh = qk[:, :, :self.n_head]
            k = qk[:, :, self.n_head:].reshape(B, q, self.kv_dim)
        qh = qh.transpose(1, 2)  # (B, nh, q, hd)

        new_entry = None
        if input_pos is not None:
            if self.static_cache is None:
                raise ValueError(
                    "input_pos given but no static cache: call model.setup_static_cache()"
                )
            kh = k.view(B, q, self.n_kv_head, self.head_dim).transpose(1, 2)
            vh = v.view(B, q, self.n_kv_head, self.head_dim).transpose(1, 2)
            if self.window is not None:
                y = self._ring_attend(qh, kh, vh, input_pos)
            else:
                keys, values = self.static_cache.update(input_pos, kh, vh)
                y = self._attend(qh, keys, values)
        elif dynamic:
            new_entry, keys, values = append_rows(kv_cache, k, v, self.n_kv_head, self.layout,
                                                  self.block_size, self.window, start)
            y = self._attend(qh, keys, values)
        else:
            keys = k.view(B, q, self.n_kv_head, self.head_dim).transpose(1, 2)
            values = v.view(B, q, self.n_kv_head, self.head_dim).transpose(1, 2)
            y = self._attend(qh, keys, values)
        y = y.transpose(1, 2).contiguous().view(B, q, C)   # a view when q = 1
        y = self.resid_dropout(self.c_proj(y))
        return y, new_entry

    def _mask(self, nq: int, total: int, device) -> torch.Tensor | None:
        """True where query i may not see key j (keys: the last ``total``, queries last)."""
        if nq == 1:
            return None                  # one new token sees every key it is given
        if self.window is None:
            return causal_mask(nq, total - nq, device)
        return window_mask(nq, total - nq, self.window, device)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(q kᵀ / √d) v for q (B, H, nq, hd) and k, v (B, H_kv, K, hd) views; the
        queries are the last nq of the K positions."""
        nq, total = q.size(2), k.size(2)
        groups = self.n_head // self.n_kv_head
        dropout_p = self.dropout if self.training else 0.0
        mask = self._mask(nq, total, q.device)
        if self.attn_impl == "sdpa":
            kwargs = {"enable_gqa": True} if groups > 1 else {}
            if mask is None:
                return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, **kwargs)
            if nq == total and self.window is None:
                return F.scaled_dot_product_attention(
                    q, k, v, dropout_p=dropout_p, is_causal=True, **kwargs
                )
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=~mask, dropout_p=dropout_p, **kwargs
            )
        # eager: explicit matmuls (FLOP counters see these)
        if groups > 1:
            k, v = _repeat_heads(k, groups), _repeat_heads(v, groups)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if mask is not None:
            att = att.masked_fill(mask, float("-inf"))
        att = F.softmax(att.float(), dim=-1).to(q.dtype)
        att = self.attn_dropout(att)
        return _times_values(att, v)

    def _ring_attend(self, q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
                     input_pos: int) -> torch.Tensor:
        """A window layer on the static cache: attend to the ring's W − 1 (or fewer) slots and
        the new tokens (two score blocks, one softmax), then write the new rows into the ring.
        The ring's slots are not in position order; the mask uses the positions they hold."""
        cache = self.static_cache
        kr, vr = cache.ring(input_pos)
        nq, n = q.size(2), kr.size(2)
        groups = self.n_head // self.n_kv_head
        kn, vn = k_new, v_new
        if groups > 1:
            kr, vr, kn, vn = (t.repeat_interleave(groups, dim=1) for t in (kr, vr, kn, vn))
        scale = 1.0 / math.sqrt(q.size(-1))
        att = torch.cat((q @ kr.transpose(-2, -1), q @ kn.transpose(-2, -1)), dim=-1) * scale
        if nq > 1:
            query = input_pos + torch.arange(nq, device=q.device)[:, None]
            held = cache.ring_positions(input_pos)[None, :]
            old = held <= query - self.window                      # out of the window
            new = window_mask(nq, 0, self.window, q.device)
            att = att.masked_fill(torch.cat((old, new), dim=-1), float("-inf"))
        att = F.softmax(att.float(), dim=-1).to(q.dtype)
        att = self.attn_dropout(att)
        y = att[..., :n] @ vr + att[..., n:] @ vn
        cache.ring_write(input_pos, k_new, v_new)
        return y


def _repeat_heads(t: torch.Tensor, groups: int) -> torch.Tensor:
    """``repeat_interleave`` of the KV heads (B, H_kv, K, hd) → (B, H, K, hd), copied in the
    view's own memory order: a channel-major cache stays channel-major (no transposing copy)."""
    if t.stride(-2) == 1 and t.size(-2) > 1:
        return t.transpose(-2, -1).repeat_interleave(groups, dim=1).transpose(-2, -1)
    return t.repeat_interleave(groups, dim=1)


def _times_values(att: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """att @ v; for channel-major values (unit stride along positions) as (vᵀ attᵀ)ᵀ, which
    streams each head's values row by row."""
    if v.stride(-2) == 1 and v.size(-2) > 1:
        return (v.transpose(-2, -1) @ att.transpose(-2, -1)).transpose(-2, -1)
    return att @ v


class MLP(nn.Module):
    """GELU MLP (``c_fc -> gelu -> c_proj``) or SwiGLU (``c_fc`` holds gate and up, stacked),
    of width ``d_ff`` (default the config's)."""

    def __init__(self, config: GPTConfig, d_ff: int | None = None, bias: bool | None = None):
        super().__init__()
        width = config.d_ff if d_ff is None else d_ff
        bias = config.bias if bias is None else bias
        self.swiglu = config.mlp == "swiglu"
        self.c_fc = nn.Linear(config.n_embd, 2 * width if self.swiglu else width, bias=bias)
        self.gelu = nn.GELU(approximate=config.gelu_approximate)
        self.c_proj = nn.Linear(width, config.n_embd, bias=bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = self.gelu(h)
        return self.dropout(self.c_proj(h))


class MoE(nn.Module):
    """A mixture of experts (Mixtral's routing): ``router`` logits (d → E), each token's top-k
    experts weighted by the softmax of their logits, the experts run one after another on the
    tokens routed to them (Hugging Face's eager loop: only the experts some token picked run),
    plus an always-on ``shared`` MLP.

    Each token reaches exactly k experts, so the expert FLOPs are 2 · T · k · d · f_e per
    matrix whatever the routing. On the meta device (FLOP counting without weights) there is no
    routing to read, so the T · k assignments are spread evenly over the experts — the same
    FLOPs."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.k = config.experts_per_token
        self.router = nn.Linear(config.n_embd, config.n_experts, bias=config.router_bias)
        self.experts = nn.ModuleList(MLP(config, config.d_ff_expert)
                                     for _ in range(config.n_experts))
        self.shared = MLP(config, config.d_ff_shared, bias=False) \
            if config.n_shared_experts else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        logits = self.router(flat)                                   # (N, E)
        top, chosen = torch.topk(logits, self.k, dim=-1)             # (N, k)
        weights = F.softmax(top.float(), dim=-1).to(x.dtype)
        out = self._dispatch(flat, chosen, weights)
        if self.shared is not None:
            out = out + self.shared(flat)
        return out.view(shape)

    @torch.compiler.disable
    def _dispatch(self, flat: torch.Tensor, chosen: torch.Tensor, weights: torch.Tensor
                  ) -> torch.Tensor:
        """Σ over each token's experts of weight · expert(token): the tokens sorted by expert,
        each expert run once on its rows. Data-dependent, so ``torch.compile`` leaves it eager
        (the compiled engine compiles the rest of the block around it)."""
        E = len(self.experts)
        out = torch.zeros_like(flat)
        if flat.is_meta:
            n = flat.size(0) * self.k
            counts = [n // E + (e < n % E) for e in range(E)]
            rows = [torch.zeros(c, dtype=torch.long, device=flat.device) for c in counts]
            scales = [torch.zeros(c, 1, dtype=flat.dtype, device=flat.device) for c in counts]
        else:
            order = torch.argsort(chosen.reshape(-1), stable=True)
            counts = torch.bincount(chosen.reshape(-1), minlength=E).tolist()
            token = order // self.k
            scale = weights.reshape(-1)[order].unsqueeze(-1)
            bounds = [0]
            for c in counts:
                bounds.append(bounds[-1] + c)
            rows = [token[bounds[e]:bounds[e + 1]] for e in range(E)]
            scales = [scale[bounds[e]:bounds[e + 1]] for e in range(E)]
        for e, expert in enumerate(self.experts):
            if counts[e]:
                out.index_add_(0, rows[e], expert(flat[rows[e]]) * scales[e])
        return out


def _norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd, eps=config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))`` (layer
    ``index`` of the config: a window layer and an MoE layer where the config says so)."""

    def __init__(self, config: GPTConfig, index: int = 0):
        super().__init__()
        window = config.sliding_window if config.is_window_layer(index) else None
        self.ln_1 = _norm(config)
        self.attn = CausalSelfAttention(config, window)
        self.ln_2 = _norm(config)
        self.mlp = MoE(config) if config.is_moe_layer(index) else MLP(config)

    def forward(
        self, x: torch.Tensor, kv_cache: list | None = None, input_pos: int | None = None,
        rope: tuple | None = None, dynamic: bool | None = None, start: int = 0,
    ) -> tuple[torch.Tensor, list | None]:
        y, kv_cache = self.attn(self.ln_1(x), kv_cache=kv_cache, input_pos=input_pos,
                                rope=rope, dynamic=dynamic, start=start)
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
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
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
        self._gemv_layout()
        self._pack_weights()

    def _pack_weights(self) -> None:
        """On the CPU, lay the matmul weights out end to end in one buffer, in the order a
        forward pass reads them (each block's QKV, output, MLP or router and experts, then the
        LM head): a decode step, which reads every weight once, streams one run of memory and
        the hardware prefetchers carry on from one matrix into the next (a few per cent of a
        decode step on a 2-core EPYC). Nothing else changes: the same parameters, shapes,
        strides and state dict; ``.to()`` another device or dtype unpacks them."""
        head = self.lm_head.weight
        if head.device.type != "cpu" or head.is_meta:
            return
        linears = [m for m in self.transformer.h.modules() if isinstance(m, nn.Linear)]
        owners = [(m, "weight") for m in linears]
        owners.append((self.transformer.wte if self.config.tie_embeddings else self.lm_head,
                       "weight"))
        total = sum(getattr(m, name).numel() for m, name in owners)
        buf = torch.empty(total, dtype=head.dtype)
        offset = 0
        with torch.no_grad():
            for module, name in owners:
                w = getattr(module, name)
                view = buf[offset:offset + w.numel()].as_strided(w.shape, w.stride())
                view.copy_(w)
                setattr(module, name, nn.Parameter(view))
                offset += w.numel()
        if self.config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight

    def _gemv_layout(self) -> None:
        """Store each matmul weight with its longer dimension contiguous.

        Logically the weights stay ``nn.Linear`` (out, in) tensors (same names, shapes and state
        dict); only the strides change: a weight with at least as many outputs as inputs is
        stored (in, out)-contiguous (GPT-2 Conv1D's memory layout), one with more inputs than
        outputs keeps (out, in). CPU BLAS runs the M=1 matrix-vector products of decoding
        markedly faster on the long rows (the tied 50257-row LM head about 2x, the 3072 → 768
        MLP projection 1.5x on a 2-core EPYC, one thread). ``.to(dtype/device)`` and
        ``load_state_dict`` preserve it.
        """
        def long_rows(w: torch.Tensor) -> torch.Tensor:
            out, inp = w.shape
            return w.detach().t().contiguous().t() if out >= inp else w.detach().contiguous()

        for module in self.modules():
            if isinstance(module, nn.Linear) and module is not self.lm_head:
                module.weight = nn.Parameter(long_rows(module.weight))
        if self.config.tie_embeddings:
            wte = self.transformer.wte
            wte.weight = nn.Parameter(long_rows(wte.weight))
            self.lm_head.weight = wte.weight
        else:
            self.lm_head.weight = nn.Parameter(long_rows(self.lm_head.weight))

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

    def blank_kv_cache(self, batch_size: int, length: int) -> DynamicKVCache:
        """A dynamic cache of ``batch_size`` sequences of ``length`` positions whose keys and
        values are zeros, laid out as a prefill leaves them (the measurement of a decode step
        does not need their values, only their place)."""
        if not 0 <= length <= self.config.block_size or batch_size <= 0:
            raise ValueError(f"blank cache: need batch_size > 0 and 0 <= length <= block_size "
                             f"({self.config.block_size}), got {batch_size}, {length}")
        p = self.transformer.wte.weight
        return DynamicKVCache(
            blank_entry(batch_size, self.config.kv_dim, length, b.attn.layout,
                        self.config.block_size, b.attn.window, p.dtype, p.device)
            for b in self.transformer.h)

    def setup_static_cache(
        self,
        batch_size: int,
        max_len: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> int:
        """Allocate static KV buffers in every layer (a window layer: a ring of
        min(W − 1, max_len) slots); returns the bytes allocated."""
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
        layout = "split" if self.config.attn_impl == "eager" else "head"
        for block in self.transformer.h:
            block.attn.static_cache = StaticKVCache(
                batch_size, self.config.n_kv_head, max_len, self.config.head_dim, dtype, device,
                layout, block.attn.window)
        return self.static_cache_nbytes

    def clear_static_cache(self) -> None:
        for block in self.transformer.h:
            block.attn.static_cache = None

    @property
    def static_cache(self) -> StaticKVCache | None:
        """Layer 0's static cache (all layers share its batch size and max_len), or ``None``."""
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
            cached_batch = kv_cache.batch_size
            if start and cached_batch != B:
                raise ValueError(
                    f"kv_cache was built for batch size {cached_batch}, "
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
        rope = None
        if "wpe" in self.transformer:
            pos = torch.arange(start, start + q, dtype=torch.long, device=idx.device)
            x = x + self.transformer.wpe(pos)
        else:
            rope = rotary_tables(start, q, self.config.head_dim, self.config.rope_theta,
                                 idx.device)
        x = self.transformer.drop(x)
        for i, block in enumerate(self.transformer.h):
            entry = kv_cache[i] if use_dynamic else None
            x, entry = block(x, kv_cache=entry, input_pos=input_pos, rope=rope,
                             dynamic=use_dynamic, start=start)
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


__all__ = ["GPT", "GPTConfig", "LLAMA_STYLE", "MoE", "DynamicKVCache", "StaticKVCache",
           "causal_mask", "filter_logits", "parse_dtype", "rotary_tables", "sample_next",
           "window_mask"]
