"""Units: the scales of bytes, FLOPs and time, exact-number coercion, and the display formatters.

Inside the package every quantity is a plain SI number: bytes, FLOPs (a multiply-add = 2),
seconds, bytes/s, FLOP/s. The decimal and binary scales below appear only where something is
displayed, and the label then names the unit: GB = 1e9 bytes, GiB = 2**30 bytes.
"""

from __future__ import annotations

import math
import numbers

KIB, MIB, GIB = 2**10, 2**20, 2**30
KB, MB, GB, TB = 10**3, 10**6, 10**9, 10**12
GIGA, TERA = 10**9, 10**12
#: Integers up to this are exact in float64 (2**53); counts beyond it are refused by the checks.
EXACT_FLOAT_INT = 2**53


def exact_number(value: float) -> int | float:
    """An int when ``value`` is integral and finite (byte counts print as 248879616, not
    248879616.0), else the float."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    x = float(value)
    return int(x) if math.isfinite(x) and x.is_integer() else x


def number_text(value: float, digits: int = 4) -> str:
    """A number for a label: grouped digits in the usual range, scientific notation beyond it
    (so an extreme but valid value never overflows a widget or a column)."""
    x = float(value)
    if not math.isfinite(x):
        return "—"
    if x != 0 and (abs(x) >= 1e15 or abs(x) < 10 ** (-digits)):
        return f"{x:.{digits}g}"
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.{digits}g}" if abs(x) < 1 else f"{x:,.{max(digits - 2, 1)}f}"


def bytes_text(nbytes: float) -> str:
    """'16.06 GB (14.96 GiB)' for large sizes, 'x MB (y MiB)' for small ones: both units,
    named."""
    n = float(nbytes)
    if abs(n) >= 1e16:
        return f"{n:.4g} bytes ({n / GB:.4g} GB)"
    if abs(n) >= 1e8:
        return f"{n / GB:,.2f} GB ({n / GIB:,.2f} GiB)"
    return f"{n / MB:,.3f} MB ({n / MIB:,.3f} MiB)"


def time_text(seconds: float) -> str:
    """Seconds in the unit that reads best: '7.36 ms', '12.5 µs', '3.20 s'."""
    t = float(seconds)
    if not math.isfinite(t):
        return "—"
    if t >= 1e6:
        return f"{t:.4g} s"
    if t >= 1:
        return f"{t:,.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:,.2f} ms"
    if t >= 1e-6 or t == 0:
        return f"{t * 1e6:,.1f} µs"
    return f"{t:.3g} s"


def band_text(seconds: float, interval: tuple[float, float] | None) -> str:
    """A time with its 80 % band: '7.40 ms, 80 % band 6.30–8.90 ms'; '7.40 ms, no band' when
    there is none (an engine profile without a band for the regime)."""
    if interval is None:
        return f"{time_text(seconds)}, no band"
    lo, hi = time_text(interval[0]), time_text(interval[1])
    unit = hi.rsplit(" ", 1)[-1]
    if lo.endswith(" " + unit):          # one unit: '6.30–8.90 ms'
        lo = lo[: -len(unit) - 1]
    return f"{time_text(seconds)}, 80 % band {lo}–{hi}"


__all__ = ["EXACT_FLOAT_INT", "GB", "GIB", "GIGA", "KB", "KIB", "MB", "MIB", "TB", "TERA",
           "band_text", "bytes_text", "exact_number", "number_text", "time_text"]
