r"""KV-cache size.

Every layer keeps one key and one value vector per KV head per token:

    per token     2 · L · H_kv · d_h · b_kv   bytes
    per request   s · (per token)             for a context of s tokens
    batch         B · s · (per token)

b_kv is the element size: 2 for fp16/bf16, 1 for fp8/int8, 0.5 for int4. With grouped-query
attention H_kv < H shrinks the cache by H / H_kv (Llama-3-8B: 32 / 8 = 4×).
"""

from __future__ import annotations

import sympy as sp

from costmodel.checks import check_element_bytes, check_positive_int
from costmodel.formula import Formula
from costmodel.presets import model as model_preset
from costmodel.specs import ModelSpec
from costmodel.symbols import B, H_kv, L, b_kv, d_h, model_values, s

KV_PER_TOKEN = Formula("kv_bytes_per_token", 2 * L * H_kv * d_h * b_kv, "bytes",
                       "KV-cache bytes per token (all layers, K and V)",
                       symbol=r"\mathrm{KV}_{\mathrm{token}}")
KV_PER_REQUEST = Formula("kv_bytes_per_request", s * KV_PER_TOKEN.expr, "bytes",
                         "KV-cache bytes of one request of s tokens",
                         symbol=r"\mathrm{KV}_{\mathrm{request}}")
KV_BATCH = Formula("kv_cache_bytes", B * KV_PER_REQUEST.expr, "bytes",
                   "KV-cache bytes of B requests of s tokens", symbol=r"\mathrm{KV}")


def _exact(value: sp.Basic | int | float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def kv_bytes_per_token(m: ModelSpec | str, kv_bytes: float = 2) -> int | float:
    """Bytes of K and V for one token across all layers: 2 · L · H_kv · d_h · b_kv."""
    m = model_preset(m)
    check_element_bytes("kv_bytes", kv_bytes)
    return _exact(KV_PER_TOKEN.exact(**model_values(m), kv_bytes=kv_bytes))


def kv_cache_bytes(m: ModelSpec | str, context: int, batch: int = 1,
                   kv_bytes: float = 2) -> int | float:
    """KV-cache bytes of ``batch`` requests of ``context`` tokens: B·s·2·L·H_kv·d_h·b_kv.

    >>> import costmodel as cm
    >>> cm.kv_cache_bytes(cm.model("llama3-8b"), context=1024)   # 2·32·8·128·2 B/token · 1024
    134217728
    """
    m = model_preset(m)
    check_positive_int("context", context)
    check_positive_int("batch", batch)
    check_element_bytes("kv_bytes", kv_bytes)
    return _exact(KV_BATCH.exact(**model_values(m), context=context, batch=batch,
                                 kv_bytes=kv_bytes))
