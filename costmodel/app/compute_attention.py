"""The Attention page's computation: attention FLOPs, bytes and intensity, exact beside the E0294
text's counts, and the intensity against N (prefill) and B (decode)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from costmodel.app.compute import SIDE, png
from costmodel.app.display import display_frame
from costmodel.app.state import AttentionSettings
from costmodel.intensity import attention_counts, attention_intensity
from costmodel.lazy import deferred
from costmodel.plots import intensity_vs_batch, intensity_vs_n

pd = deferred("pandas")


@dataclass(frozen=True)
class AttentionPage:
    cases: Any                     # exact counts beside the course text's, at (N, d, B, b)
    vs_n: Any                      # prefill intensity vs N
    vs_b: Any                      # decode intensity vs B
    png_n: bytes
    png_b: bytes


def attention_page(a: AttentionSettings) -> AttentionPage:
    d, n, batch, b = a.d, a.n, a.batch, a.bytes_per_element
    rows = []
    for label, phase, bb, kw in (
            ("prefill, standard (exact)", "prefill", 1, {}),
            ("prefill, fused / FlashAttention", "prefill", 1, {"attention": "fused"}),
            ("prefill, E0294 text's counts", "prefill", 1, {"convention": "e0294"}),
            ("decode, 1 request (exact)", "decode", 1, {}),
            ("decode, 1 request, E0294 text's counts", "decode", 1, {"convention": "e0294"}),
            (f"decode, B = {batch}, per-request K/V (serving)", "decode", batch, {}),
            (f"decode, B = {batch}, shared K/V", "decode", batch, {"kv": "shared"}),
            (f"decode, B = {batch}, E0294 text's formula", "decode", batch,
             {"convention": "e0294"})):
        r = attention_counts(n, d, phase, bb, b, **kw)
        rows.append({"case": label, "FLOPs": float(r["flops"]), "bytes": float(r["bytes"]),
                     "FLOPs/byte": float(r["intensity"])})
    ns = np.array(sorted({128, 256, 512, 1024, 2048, 4096, 8192, n}))
    bs = np.array(sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, batch}))
    vs_n = pd.DataFrame({"N (tokens)": ns,
                         "standard (exact)": attention_intensity(ns, d, "prefill", 1, b),
                         "fused": attention_intensity(ns, d, "prefill", 1, b,
                                                      attention="fused"),
                         "E0294 text": attention_intensity(ns, d, "prefill", 1, b,
                                                           convention="e0294")})
    vs_b = pd.DataFrame({"B (requests)": bs,
                         "per-request K/V": np.broadcast_to(
                             attention_intensity(n, d, "decode", bs, b), bs.shape),
                         "shared K/V": attention_intensity(n, d, "decode", bs, b, kv="shared"),
                         "E0294 text": attention_intensity(n, d, "decode", bs, b,
                                                           convention="e0294")})
    return AttentionPage(display_frame(pd.DataFrame(rows)), display_frame(vs_n),
                         display_frame(vs_b), png(intensity_vs_n(d, ns, b), SIDE, ylog=True),
                         png(intensity_vs_batch(n, d, bs, b), SIDE))


__all__ = ["AttentionPage", "attention_page"]
