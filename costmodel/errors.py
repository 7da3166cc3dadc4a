"""Input checks that fail with a ValueError naming the field and the constraint."""

from __future__ import annotations

import difflib
import math
import numbers
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def check_positive_int(name: str, value: object) -> int:
    """``value`` must be an int > 0 (bools and floats with a fraction are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer() and value > 0:
            return int(value)
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    return int(value)


def check_nonneg_int(name: str, value: object) -> int:
    """``value`` must be an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        raise ValueError(f"{name}: must be an integer >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: must be an integer >= 0, got {value!r}")
    return int(value)


def check_positive_number(name: str, value: object) -> float:
    """``value`` must be a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}: must be a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: must be a positive finite number, got {value!r}")
    return float(value)


def check_fraction(name: str, value: object, *, allow_zero: bool = False) -> float:
    """``value`` must lie in (0, 1] (or [0, 1] with ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"{name}: must be a number in (0, 1], got {value!r}")
    low_ok = value >= 0 if allow_zero else value > 0
    if not low_ok or value > 1:
        bound = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name}: must lie in {bound}, got {value!r}")
    return float(value)


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """``value`` must be one of ``choices``; the error suggests the closest."""
    options = list(choices)
    if value not in options:
        close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.4)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{name}: unknown {value!r}{hint} (choose from {', '.join(options)})")
    return str(value)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder, then rename: a reader
    never sees a half-written file, and a failure leaves the old file in place. The file gets
    the usual permissions (0666 less the umask), not mkstemp's private 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    atomic_write_bytes(path, text.encode())
