"""Input checks: every entry point (API, CLI, app, file readers) validates through these.

Each check returns the value in its canonical type or raises ``ValueError`` that names the field
and the allowed range. Refused everywhere: booleans as numbers, strings as numbers, NaN and
infinities, integers with a fraction, and numbers beyond what the computation holds exactly
(counts above 2**53, the largest integer a float64 represents exactly).
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from costmodel.units import EXACT_FLOAT_INT

#: Largest count (tokens, batch, requests, iterations) anything accepts.
MAX_COUNT = EXACT_FLOAT_INT
#: Largest model dimension (layers, widths, heads, vocabulary, experts): int32, as frameworks
#: index tensors; a parameter count of such dimensions still fits a float64 without overflow.
MAX_DIM = 2**31 - 1
#: Bytes per element: 0.125 (1 bit) … 8 (fp64).
MIN_ELEMENT_BYTES, MAX_ELEMENT_BYTES = 0.125, 8.0
#: Largest drafted-token count γ: every loop over γ is bounded by it.
MAX_GAMMA = 1024


def _range_text(lo: float, hi: float, integer: bool, open_lo: bool = False) -> str:
    kind = "an integer" if integer else "a number"
    if integer and lo == 1 and hi == MAX_COUNT:
        return "a positive integer (at most 2**53)"
    if integer and lo == 0 and hi == MAX_COUNT:
        return "an integer >= 0 (at most 2**53)"
    if integer and lo == 1 and hi == MAX_DIM:
        return "a positive integer (at most 2**31 - 1)"
    left = "(" if open_lo else "["
    hi_text = "inf" if math.isinf(hi) else f"{hi:g}"
    if not math.isinf(hi):
        return f"{kind} in {left}{lo:g}, {hi_text}]"
    return f"{kind} {'>' if open_lo else '>='} {lo:g}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(name: str, value: object, lo: int = 1, hi: int = MAX_COUNT) -> int:
    """An integer in [lo, hi]; an integral float (2.0) is accepted, a bool or string is not."""
    if type(value) is int and lo <= value <= hi:   # the common case, fast
        return value
    if isinstance(value, (bool, np.bool_)):
        ok = False
    elif isinstance(value, numbers.Integral):
        ok, value = True, int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(float(value)) \
            and float(value).is_integer():
        ok, value = True, int(float(value))
    else:
        ok = False
    if not ok or not lo <= value <= hi:
        raise ValueError(f"{name}: must be {_range_text(lo, hi, True)}, got {_show(value)}")
    return value


def check_number(name: str, value: object, lo: float = 0.0, hi: float = math.inf, *,
                 open_lo: bool = True) -> float:
    """A finite real number in (lo, hi] (or [lo, hi] with ``open_lo=False``)."""
    if type(value) in (int, float) and (value > lo if open_lo else value >= lo) \
            and value <= hi and value != math.inf:  # the common case, fast (NaN fails all)
        return float(value)
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and math.isfinite(float(value)))
    if ok:
        x = float(value)
        ok = (x > lo if open_lo else x >= lo) and x <= hi
    if not ok:
        raise ValueError(f"{name}: must be {_range_text(lo, hi, False, open_lo)}, "
                         f"got {_show(value)}")
    return float(value)


def check_positive_int(name: str, value: object) -> int:
    """An integer >= 1 (at most 2**53)."""
    return check_int(name, value, 1, MAX_COUNT)


def check_nonneg_int(name: str, value: object) -> int:
    """An integer >= 0 (at most 2**53)."""
    return check_int(name, value, 0, MAX_COUNT)


def check_dim(name: str, value: object) -> int:
    """A model dimension: an integer in [1, 2**31 - 1]."""
    return check_int(name, value, 1, MAX_DIM)


def check_positive_number(name: str, value: object, hi: float = math.inf) -> float:
    """A finite number > 0 (and <= ``hi``)."""
    return check_number(name, value, 0.0, hi)


def check_nonneg_number(name: str, value: object, hi: float = math.inf) -> float:
    """A finite number >= 0 (and <= ``hi``)."""
    return check_number(name, value, 0.0, hi, open_lo=False)


def check_fraction(name: str, value: object, *, allow_zero: bool = False) -> float:
    """A number in (0, 1] (or [0, 1] with ``allow_zero``)."""
    return check_number(name, value, 0.0, 1.0, open_lo=not allow_zero)


def check_element_bytes(name: str, value: object) -> float:
    """Bytes per element (weight, KV or activation): a number in [0.125, 8]."""
    return check_number(name, value, MIN_ELEMENT_BYTES, MAX_ELEMENT_BYTES, open_lo=False)


def check_bool(name: str, value: object) -> bool:
    """True or False (numpy bools too); no strings, no numbers."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name}: must be true or false, got {_show(value)}")


def check_text(name: str, value: object, max_len: int = 200) -> str:
    """A string of 1 … ``max_len`` characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise ValueError(f"{name}: must be text of 1 to {max_len} characters, got "
                         f"{_show(value)}")
    return value


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """One of ``choices``; the error suggests the closest."""
    options = list(choices)
    if not isinstance(value, str) or value not in options:
        close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.4) \
            if isinstance(value, str) else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name}: unknown {_show(value)}{hint} (choose from "
                         f"{', '.join(options)})")
    return value


def check_mapping(name: str, value: object) -> Mapping:
    """A mapping (a JSON object)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{name}: must be a mapping (JSON object), got "
                         f"{type(value).__name__}")
    return value


def _as_array(name: str, values: object) -> np.ndarray:
    if isinstance(values, (str, bytes, Mapping)):
        raise ValueError(f"{name}: must be a number or a list of numbers, got {_show(values)}")
    arr = np.asarray(values, dtype=object).ravel() if not isinstance(values, np.ndarray) \
        else values.ravel()
    if arr.size == 0:
        raise ValueError(f"{name}: give at least one value")
    return arr


def check_ints(name: str, values: object, lo: int = 1, hi: int = MAX_COUNT) -> np.ndarray:
    """One integer or a list/array of them, each in [lo, hi], as a 1-d float64 array (exact:
    every value is at most 2**53)."""
    arr = _as_array(name, values)
    if arr.dtype.kind in "iu":
        if arr.min() < lo or arr.max() > hi:
            bad = arr[(arr < lo) | (arr > hi)][0]
            raise ValueError(f"{name}: every value must be {_range_text(lo, hi, True)}, got "
                             f"{int(bad)}")
        return arr.astype(np.float64)
    return np.array([check_int(name, v, lo, hi) for v in arr], dtype=np.float64)


def check_numbers(name: str, values: object, lo: float = 0.0, hi: float = math.inf, *,
                  open_lo: bool = True) -> np.ndarray:
    """One number or a list/array of them, each finite in (lo, hi], as a 1-d float64 array."""
    arr = _as_array(name, values)
    if arr.dtype.kind == "f":
        ok = np.isfinite(arr) & ((arr > lo) if open_lo else (arr >= lo)) & (arr <= hi)
        if not ok.all():
            raise ValueError(f"{name}: every value must be "
                             f"{_range_text(lo, hi, False, open_lo)}, got {arr[~ok][0]!r}")
        return arr.astype(np.float64)
    return np.array([check_number(name, v, lo, hi, open_lo=open_lo) for v in arr],
                    dtype=np.float64)


__all__ = ["MAX_COUNT", "MAX_DIM", "MAX_ELEMENT_BYTES", "MAX_GAMMA", "MIN_ELEMENT_BYTES",
           "check_bool", "check_choice", "check_dim", "check_element_bytes", "check_fraction",
           "check_int", "check_ints", "check_mapping", "check_nonneg_int", "check_nonneg_number",
           "check_number", "check_numbers", "check_positive_int", "check_positive_number",
           "check_text"]
