r"""The one phase vocabulary: every forward pass is B sequences, each adding q new tokens that
attend to c cached tokens plus themselves (causal). A phase is a substitution of (q, c):

    phase       q        c        cache
    prefill     s        0        written (K, V of the prompt are kept)
    decode      1        s        read, one row written
    no_cache    s        0        none: the baseline re-encodes the whole context
    verify      γ + 1    s        read, γ + 1 rows written (speculative verification)
    chunk       chunk    s        read, chunk rows written (chunked prefill, s tokens done)

with s the ``context``: the tokens a sequence holds before the pass (the prompt length of a
prefill). Nothing else in the package turns a phase name into q and c. :func:`substitute` works
on numbers, numpy arrays (sweeps) and sympy symbols (formulas) alike.

A cache *strategy* says how the cache is stored, which changes the bytes a pass moves:
``static`` (preallocated, written in place), ``dynamic`` (grown as the sequence grows: the
reference model writes each step's rows in place into a buffer with spare capacity, which
grows geometrically — an amortised O(1) rows per step the operator model leaves out) and
``none``. The operator model's ``kv_update="concat"`` is the older dynamic cache that
``torch.cat`` rebuilt every step (what measurements recorded before the reference model grew
in place record with their rows). :func:`cache_options` maps a strategy to the operator
model's options; :data:`MEASURED_PHASES` names the reference model's measured (phase, cache)
pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from costmodel.checks import (
    MAX_COUNT,
    MAX_GAMMA,
    check_choice,
    check_int,
    check_nonneg_int,
    check_positive_int,
)

PHASES = ("prefill", "decode", "no_cache", "verify", "chunk")
CACHES = ("static", "dynamic", "none")
ATTENTION_IMPLS = ("eager", "sdpa")
#: The reference model's measured passes (the ``phase`` column of a measurement CSV) as
#: (phase, cache strategy).
MEASURED_PHASES = {"prefill": ("prefill", "dynamic"), "decode_dynamic": ("decode", "dynamic"),
                   "decode_static": ("decode", "static"), "no_cache": ("no_cache", "none")}


def substitute(phase: str, context: Any, gamma: Any = 4, chunk: Any = 1) -> tuple[Any, Any]:
    """(q, c) of ``phase`` at context s (numbers, numpy arrays or sympy expressions)."""
    check_choice("phase", phase, PHASES)
    zero = context * 0
    if phase == "decode":
        return zero + 1, context
    if phase == "verify":
        return zero + gamma + 1, context
    if phase == "chunk":
        return zero + chunk, context
    return context, zero          # prefill, no_cache


def writes_cache(phase: str) -> bool:
    """Whether the pass keeps a KV cache (every phase but the no-cache baseline)."""
    return check_choice("phase", phase, PHASES) != "no_cache"


@dataclass(frozen=True)
class Pass:
    """One forward pass: ``batch`` sequences add ``new_tokens`` (q) to ``cached_tokens`` (c)."""

    batch: int
    new_tokens: int
    cached_tokens: int
    kv_cache: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch", check_positive_int("batch", self.batch))
        object.__setattr__(self, "new_tokens", check_positive_int("new_tokens", self.new_tokens))
        object.__setattr__(self, "cached_tokens",
                           check_nonneg_int("cached_tokens", self.cached_tokens))

    @property
    def tokens(self) -> int:
        """New tokens of the pass, all sequences: B · q."""
        return self.batch * self.new_tokens

    def kwargs(self) -> dict:
        """The pass as ``cm.analyze`` keyword arguments."""
        return {"batch": self.batch, "new_tokens": self.new_tokens,
                "cached_tokens": self.cached_tokens, "kv_cache": self.kv_cache}


def phase_pass(phase: str, context: int, batch: int = 1, gamma: int = 4,
               chunk: int = 1) -> Pass:
    """The :class:`Pass` of ``phase`` at context s = ``context``."""
    check_choice("phase", phase, PHASES)
    s = check_nonneg_int("context", context) if phase in ("decode", "verify", "chunk") \
        else check_positive_int("context", context)
    g = check_int("gamma", gamma, 1, MAX_GAMMA) if phase == "verify" else gamma
    k = check_int("chunk", chunk, 1, MAX_COUNT) if phase == "chunk" else chunk
    q, c = substitute(phase, s, g, k)
    return Pass(batch, q, c, writes_cache(phase))


REGIMES = ("quantized", "tp", "prefill", "decode_b1", "decode_batched")


def regime(batch, new_tokens, tp=1, weight_bytes: float = 2):
    """The regime a pass belongs to, for error bands (first that applies): quantized weights
    (narrower than 16 bits), tensor parallelism (TP ≥ 2), prefill (q > 1), decode of one
    sequence, batched decode. Arrays broadcast to an array of regime names (a grid of passes);
    numbers give one name."""
    conditions = [np.asarray(weight_bytes) < 2, np.asarray(tp) > 1,
                  np.asarray(new_tokens) > 1, np.asarray(batch) == 1]
    names = np.select(conditions, list(REGIMES[:4]), REGIMES[4])
    return str(names) if names.ndim == 0 else names


#: The operator model's ``kv_update`` a dynamic-cache measurement may record: ``inplace`` (the
#: reference model's growing buffer) or ``concat`` (its older ``torch.cat`` cache).
DYNAMIC_KV_UPDATES = ("inplace", "concat")


def cache_options(cache: str) -> dict:
    """Operator-model options of a cache strategy: ``dynamic`` and ``static`` →
    ``kv_update="inplace"`` (the new rows written in place), ``none`` → ``kv_cache=False``."""
    check_choice("cache", cache, CACHES)
    return {"kv_cache": cache != "none", "kv_update": "inplace"}


def attention_option(attn_impl: str) -> str:
    """The operator model's attention option of a PyTorch attention path: explicit matmuls
    (``eager``) are ``"eager"``; ``F.scaled_dot_product_attention`` (``sdpa``) is ``"fused"``."""
    return "eager" if check_choice("attn_impl", attn_impl, ATTENTION_IMPLS) == "eager" \
        else "fused"


def reference_options(cache: str, attn_impl: str = "eager", kv_update: str | None = None
                      ) -> dict:
    """``cm.analyze`` options that describe a pass of the PyTorch reference model with this
    cache strategy and attention path (its LM head runs on the last position, every q×K score
    is computed, the experts of a mixture run one call each). ``kv_update``: what a measurement
    recorded for a dynamic cache (one of :data:`DYNAMIC_KV_UPDATES`; default: how the reference
    model now runs)."""
    options = {"attention": attention_option(attn_impl), "causal": "full", "lm_head": "last",
               "moe_dispatch": "loop", **cache_options(cache)}
    if kv_update is not None:
        allowed = DYNAMIC_KV_UPDATES if cache == "dynamic" else (options["kv_update"],)
        options["kv_update"] = check_choice("kv_update", kv_update, allowed)
    return options


__all__ = ["ATTENTION_IMPLS", "CACHES", "DYNAMIC_KV_UPDATES", "MEASURED_PHASES", "PHASES",
           "REGIMES", "Pass", "attention_option", "regime",
           "cache_options", "phase_pass", "reference_options", "substitute", "writes_cache"]
