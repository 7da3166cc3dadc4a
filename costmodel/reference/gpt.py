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

from costmodel.reference.caches import DynamicKVCache, StaticKVCache, blank_entry
from costmodel.reference.config import LLAMA_STYLE, GPTConfig
from costmodel.reference.layers import Block, _norm, rotary_tables
from costmodel.reference.sampling import sample_next


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


__all__ = ["GPT", "GPTConfig", "LLAMA_STYLE", "DynamicKVCache", "StaticKVCache", "parse_dtype"]
