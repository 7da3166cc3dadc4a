"""Layers of the reference GPT: rotary positions, the attention masks, causal self-attention
(grouped-query, sliding window, dynamic and static caches), the MLP, the mixture of experts and
the pre-norm block that holds them (:mod:`costmodel.reference.gpt` stacks them into the model).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from costmodel.reference.caches import StaticKVCache, append_rows
from costmodel.reference.config import GPTConfig


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
    the reference models (the GPT of :mod:`costmodel.reference.gpt`, the E0294 model of
    :mod:`costmodel.reference.e0294_model`).
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


