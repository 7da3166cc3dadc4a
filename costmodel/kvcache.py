r"""KV-cache size, per token, per request, per batch, per layer type.

Every layer keeps, per token, e elements for its keys and values:

    e = 2 · H_kv · d_h            multi-head / grouped-query attention (K and V per KV head)
    e = r_kv + d_r                multi-head latent attention, latent cache (serving engines)
    e = H (d_n + d_r + d_v)       multi-head latent attention, expanded cache (Hugging Face)

A full-attention layer holds all s tokens of a request; a sliding-window layer holds the last
W − 1 (the new token makes W): so a request of s tokens holds

    KV(s) = b_kv · e · ((L − L_w) · s + L_w · min(s, W − 1))   bytes

and a batch B of them B · KV(s). For a model without windows this is the classic
s · 2 · L · H_kv · d_h · b_kv. b_kv is the element size: 2 for fp16/bf16, 1 for fp8/int8, 0.5
for int4. Grouped-query attention shrinks the cache by H / H_kv (Llama-3-8B: 32 / 8 = 4×).
"""

from __future__ import annotations

from functools import cache

import sympy as sp

from costmodel.checks import check_choice, check_element_bytes, check_positive_int
from costmodel.formula import Formula
from costmodel.ops import MLA, Structure, layer_counts, spec_flags
from costmodel.presets import model as model_preset
from costmodel.specs import ModelSpec
from costmodel.symbols import B, H, H_kv, L, L_w, W, b_kv, d_h, d_n, d_r, d_v, model_values, r_kv, s

KV_PER_TOKEN = Formula("kv_bytes_per_token", 2 * L * H_kv * d_h * b_kv, "bytes",
                       "KV-cache bytes per token (all layers, K and V)",
                       symbol=r"\mathrm{KV}_{\mathrm{token}}")
KV_PER_REQUEST = Formula("kv_bytes_per_request", s * KV_PER_TOKEN.expr, "bytes",
                         "KV-cache bytes of one request of s tokens",
                         symbol=r"\mathrm{KV}_{\mathrm{request}}")
KV_BATCH = Formula("kv_cache_bytes", B * KV_PER_REQUEST.expr, "bytes",
                   "KV-cache bytes of B requests of s tokens", symbol=r"\mathrm{KV}")


def layer_elements(structure: Structure, mla: str = "absorbed") -> sp.Expr:
    """e: KV elements one layer caches per token (see the module docstring)."""
    if not structure.mla:
        return 2 * H_kv * d_h
    return H * (d_n + d_r + d_v) if mla == "expanded" else r_kv + d_r


def held_tokens(structure: Structure, context: sp.Expr = s) -> tuple[sp.Expr, sp.Expr]:
    """(full-attention layers, window layers): Σ over those layers of the tokens each holds for
    a request of ``context`` tokens."""
    full, window = layer_counts(structure.window, L_w)
    return full * context, window * sp.Min(context, W - 1)


#: How each latent-attention cache layout stores a token (said in the formulas' descriptions).
MLA_LAYOUTS = {"absorbed": "the latent r_kv + d_r, as serving engines cache it",
               "naive": "the latent r_kv + d_r, up-projected every pass",
               "expanded": "per-head K and V, H (d_n + d_r + d_v), as Hugging Face caches it"}


@cache
def _formulas(structure: Structure, mla: str) -> dict[str, Formula]:
    if structure.window == "none" and not structure.mla:
        return {"per_token": KV_PER_TOKEN, "per_request": KV_PER_REQUEST, "batch": KV_BATCH}
    e = layer_elements(structure, mla)
    layout = f"; {MLA_LAYOUTS[mla]}" if structure.mla else ""
    per_layer = Formula("kv_bytes_per_token_layer", e * b_kv, "bytes",
                        f"KV-cache bytes per token in one layer{layout}",
                        symbol=r"\mathrm{KV}_{\mathrm{layer}}")
    request = Formula("kv_bytes_per_request", e * b_kv * sp.Add(*held_tokens(structure)),
                      "bytes",
                      "KV-cache bytes of one request of s tokens (window layers hold at most "
                      "W − 1)", symbol=r"\mathrm{KV}_{\mathrm{request}}")
    full, window = held_tokens(structure)
    within = ", within the window" if structure.window != "none" else ""
    return {"per_token": Formula("kv_bytes_per_token", L * e * b_kv, "bytes",
                                 f"KV-cache bytes per token (all layers{within}{layout})",
                                 symbol=r"\mathrm{KV}_{\mathrm{token}}"),
            "per_token_layer": per_layer, "per_request": request,
            "batch": Formula("kv_cache_bytes", B * request.expr, "bytes",
                             "KV-cache bytes of B requests of s tokens", symbol=r"\mathrm{KV}"),
            "layer_tokens": Formula("kv_layer_tokens", full + window, "layer-tokens",
                                    "tokens held summed over the layers for one request of s "
                                    "tokens (a window layer holds at most W − 1)",
                                    symbol=r"N_{\mathrm{held}}"),
            "full_layers": Formula("kv_full_layers", e * b_kv * full, "bytes",
                                   "KV-cache bytes of one request in the full-attention layers",
                                   symbol=r"\mathrm{KV}_{\mathrm{full}}"),
            "window_layers": Formula("kv_window_layers", e * b_kv * window, "bytes",
                                     "KV-cache bytes of one request in the sliding-window layers",
                                     symbol=r"\mathrm{KV}_{\mathrm{window}}")}


def kv_formulas(m: ModelSpec | str, mla: str = "absorbed") -> dict[str, Formula]:
    """The KV Formulas of ``m``: per_token, per_request, batch (and, for the architectures
    beyond dense MHA/GQA, per_token_layer, layer_tokens and the bytes of one request in the
    full_layers and the window_layers). ``mla``: the latent-attention cache layout (absorbed
    and naive cache the latent; expanded the per-head K and V)."""
    check_choice("mla", mla, MLA)
    return _formulas(spec_flags(model_preset(m)), mla)


def _exact(value: sp.Basic | int | float) -> int | float:
    return int(value) if float(value).is_integer() else float(value)


def kv_bytes_per_token(m: ModelSpec | str, kv_bytes: float = 2,
                       mla: str = "absorbed") -> int | float:
    """Bytes of K and V for one token across all layers (while the context is within every
    layer's window): 2 · L · H_kv · d_h · b_kv for MHA/GQA."""
    m = model_preset(m)
    check_element_bytes("kv_bytes", kv_bytes)
    return _exact(kv_formulas(m, mla)["per_token"].exact(**model_values(m), kv_bytes=kv_bytes))


def kv_cache_bytes(m: ModelSpec | str, context: int, batch: int = 1,
                   kv_bytes: float = 2, mla: str = "absorbed") -> int | float:
    """KV-cache bytes of ``batch`` requests of ``context`` tokens (window layers hold at most
    W − 1 tokens).

    >>> import costmodel as cm
    >>> cm.kv_cache_bytes(cm.model("llama3-8b"), context=1024)   # 2·32·8·128·2 B/token · 1024
    134217728
    """
    m = model_preset(m)
    check_positive_int("context", context)
    check_positive_int("batch", batch)
    check_element_bytes("kv_bytes", kv_bytes)
    return _exact(kv_formulas(m, mla)["batch"].exact(**model_values(m), context=context,
                                                     batch=batch, kv_bytes=kv_bytes))


def kv_by_layer_type(m: ModelSpec | str, context: int, kv_bytes: float = 2,
                     mla: str = "absorbed") -> dict[str, int | float]:
    """Bytes one request of ``context`` tokens holds in the full-attention layers and in the
    sliding-window layers."""
    m = model_preset(m)
    check_positive_int("context", context)
    check_element_bytes("kv_bytes", kv_bytes)
    f = kv_formulas(m, mla)
    values = dict(model_values(m), context=context, kv_bytes=kv_bytes)
    if "full_layers" not in f:       # dense MHA/GQA: every layer is a full-attention layer
        return {"full_layers": _exact(f["per_request"].exact(**values)), "window_layers": 0}
    return {name: _exact(f[name].exact(**values)) for name in ("full_layers", "window_layers")}


__all__ = ["KV_BATCH", "KV_PER_REQUEST", "KV_PER_TOKEN", "MLA_LAYOUTS", "held_tokens",
           "kv_by_layer_type", "kv_bytes_per_token", "kv_cache_bytes", "kv_formulas",
           "layer_elements"]
