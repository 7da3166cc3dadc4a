"""Display helpers of the app: tables made safe for the table widget (no integer beyond int64,
no NaN, infinity or missing value shown as a number), rates and sizes as text, the
per-operator table in display units, the weights' widths in words, and file-name slugs.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

import numpy as np

from costmodel.app.state import Workload
from costmodel.lazy import deferred
from costmodel.units import GB, MB, number_text

pd = deferred("pandas")

INT64 = 2**63
#: What an absent or non-finite value shows as.
MISSING = "—"


def _text(value: Any) -> str:
    if value is None or isinstance(value, str):
        return MISSING if value is None or not value.strip() else value
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Real):
        return number_text(value)
    return str(value)


def _finite_number(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(float(value)))


def display_frame(df):
    """A copy of ``df`` the table widget shows as it is: integer columns beyond int64 and
    numeric columns holding NaN or infinities become text (scientific notation, '—' for a
    missing value), as do columns that mix numbers and text."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        kind = s.dtype.kind
        if kind in "iub":
            continue
        if kind == "f":
            if not np.isfinite(s.to_numpy()).all():
                out[col] = [_text(None if not math.isfinite(v) else v) for v in s]
            continue
        if kind in "mM":
            continue
        values = list(s)
        if values and all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
                          for v in values) and all(-INT64 <= v < INT64 for v in values):
            out[col] = s.astype("int64")
        elif values and all(_finite_number(v) for v in values) and not any(
                isinstance(v, numbers.Integral) and abs(v) > 2**53 for v in values):
            out[col] = s.astype("float64")
        else:
            out[col] = [_text(v) if not (isinstance(v, float) and not math.isfinite(v))
                        else MISSING for v in values]
    return out


def is_numeric_column(df, col: str) -> bool:
    """Whether a column of a display frame holds numbers (a number format applies)."""
    return col in df.columns and df[col].dtype.kind in "iuf"


def rate_text(value: float, unit: str) -> str:
    """'1,234.5 tokens/s' in the usual range, scientific notation beyond it, '—' when not
    finite."""
    x = float(value)
    if not math.isfinite(x):
        return MISSING
    if x == 0 or 0.05 <= abs(x) < 1e15:
        return f"{x:,.1f} {unit}"
    return f"{number_text(x)} {unit}"


def count_text(value: float) -> str:
    """An exact count with grouped digits ('8,030,261,248'); scientific notation beyond 1e15."""
    return number_text(value) if abs(float(value)) >= 1e15 else f"{int(value):,}"


def fixed_text(value: float, digits: int, unit: str = "") -> str:
    """``value`` with ``digits`` decimals and grouped digits in the usual range, scientific
    notation beyond it ('—' when not finite)."""
    x = float(value)
    if not math.isfinite(x):
        return MISSING
    text = f"{x:,.{digits}f}" if x == 0 or 10 ** -digits <= abs(x) < 1e15 \
        else f"{x:.4g}"
    return f"{text} {unit}".rstrip()


OP_DISPLAY = {"op": "operator", "block": "block", "count": "count", "flops": "GFLOP",
              "bytes": "MB moved", "intensity": "FLOPs/byte", "time": "time (µs)",
              "bound": "bound"}


def ops_display(ops):
    """The per-operator table in display units (GFLOP = 1e9 FLOPs, MB = 1e6 bytes, µs)."""
    df = ops[list(OP_DISPLAY)].copy()
    df["flops"] = df["flops"] / GB
    df["bytes"] = df["bytes"] / MB
    df["time"] = df["time"] * 1e6
    df["bound"] = df["bound"].astype(str)
    return display_frame(df.rename(columns=OP_DISPLAY))


def weights_label(w: Workload) -> str:
    """'fp8-block128', 'b_w = 2', '16-bit, experts mxfp4': the widths the weights are at."""
    dense = w.quant or f"b_w = {w.weight_bytes:g}"
    if w.expert_quant:
        return f"{w.quant or f'{w.weight_bytes:g} B'}, experts {w.expert_quant}"
    return dense


def slug(*parts: Any) -> str:
    """A file-name-safe name of ``parts`` (at most 100 characters)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(map(str, parts))).strip("-")[:100] or "x"


__all__ = ["MISSING", "OP_DISPLAY", "count_text", "display_frame", "fixed_text",
           "is_numeric_column", "ops_display", "rate_text", "slug", "weights_label"]
