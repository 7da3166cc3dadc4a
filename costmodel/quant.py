"""Number formats of weights: bytes per weight (scales and zeros included) and the dtype the
matmuls compute in — the compute dtype picks the peak, not the weight bytes.

    format        bytes / weight                   matmul in   what it is
    bf16, fp16    2                                bf16/fp16   16-bit weights and activations
    fp32          4                                fp32
    fp8           1                                fp8         W8A8 FP8, per-tensor scales
    fp8-block128  1 + 4 / (128 · 128)              fp8         DeepSeek-V3: an fp32 scale per
                                                               128×128 block
    int8          1                                int8        W8A8 int8 (SmoothQuant)
    int8-wo       1                                16-bit      weight-only int8 (per-channel
                                                               scales, negligible per weight)
    int4-gG       0.5 + 2.5 / G                    16-bit      weight-only int4 (AWQ / GPTQ): a
                                                               16-bit scale and a 4-bit zero per
                                                               group of G weights
    mxfp4         (4 + 8 / 32) / 8 = 0.53125       fp4         OCP Microscaling: an 8-bit scale
                                                               per 32 4-bit values
    nvfp4         (4 + 8 / 16) / 8 = 0.5625        fp4         an fp8 scale per 16 4-bit values

A format whose compute dtype the hardware lacks (FP8 on an A100, FP4 on an H100) runs
weight-only: its weights are dequantized to 16 bits and multiplied at the 16-bit peak, as
engines do (Marlin-style kernels). Weight-only matmuls stream at the engine's η_m,quant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from costmodel.checks import check_int

#: Bytes of one element of each compute dtype.
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "fp4": 0.5}


def dtype_for_bytes(hw, nbytes: float) -> str:
    """The compute dtype a weight width implies on ``hw`` (anything with ``peak_flops``): 4 bytes
    → fp32; anything narrower → the 16-bit tensor path (bf16, else fp16), because weight-only
    int8/int4 kernels dequantise to 16 bits before the matmul. Ask for fp8/int8 compute with a
    format (``quant="fp8"``) or explicitly with ``dtype=``."""
    peaks: Mapping = hw.peak_flops
    order = ("fp32",) if nbytes >= 4 else ("bf16", "fp16", "fp32")
    for dtype in order:
        if dtype in peaks:
            return dtype
    return next(iter(peaks))


@dataclass(frozen=True)
class Format:
    """A weight format: bytes per weight and the matmul dtype (None: the 16-bit path)."""

    name: str
    weight_bytes: float
    compute: str | None

    def compute_dtype(self, hw) -> str:
        """The matmul dtype on ``hw``: the format's own where ``hw`` has it, else the 16-bit path
        (the weights dequantized on the fly)."""
        if self.compute is not None and self.compute in hw.peak_flops:
            return self.compute
        return dtype_for_bytes(hw, 4 if self.compute == "fp32" else 2)


FORMATS = {f.name: f for f in (
    Format("fp32", 4, "fp32"), Format("bf16", 2, "bf16"), Format("fp16", 2, "fp16"),
    Format("fp8", 1, "fp8"), Format("fp8-block128", 1 + 4 / (128 * 128), "fp8"),
    Format("int8", 1, "int8"), Format("int8-wo", 1, None),
    Format("mxfp4", (4 + 8 / 32) / 8, "fp4"), Format("nvfp4", (4 + 8 / 16) / 8, "fp4"),
)}


def weight_format(name: str) -> Format:
    """A format by name; ``int4-gG`` for any group size G (e.g. ``int4-g128``)."""
    if isinstance(name, str):
        if name in FORMATS:
            return FORMATS[name]
        m = re.fullmatch(r"int4-g(\d+)", name)
        if m:
            group = check_int("quant group size", int(m.group(1)), 8, 1 << 16)
            return Format(name, 0.5 + 2.5 / group, None)
    raise ValueError(f"quant: unknown format {str(name)[:40]!r} (choose from "
                     f"{', '.join(FORMATS)}, int4-gG such as int4-g128)")


__all__ = ["DTYPE_BYTES", "FORMATS", "Format", "dtype_for_bytes", "weight_format"]
