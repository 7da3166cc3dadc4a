"""Reading a measurement CSV row by row: the file as a DataFrame (size-limited, UTF-8) and its
cells typed one by one, with errors that name the file, the row and the field."""

from __future__ import annotations

import io
import math
import numbers
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from costmodel.checks import (
    MAX_COUNT,
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_text,
)
from costmodel.files import parse_json, read_limited
from costmodel.lazy import deferred

pd = deferred("pandas")

#: Measurement files larger than this are refused before parsing.
MAX_CSV_BYTES = 64 * 2**20


def read_csv_file(path: str | Path, what: str):
    """A CSV file as a DataFrame; ValueError naming the file when it cannot be one."""
    p = Path(path)
    raw = read_limited(p, f"{what}: {p}", "CSV", MAX_CSV_BYTES)
    if not raw.strip():
        raise ValueError(f"{what}: {p} is empty")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what}: {p} is not UTF-8 text (byte {e.start})") from None
    try:
        return pd.read_csv(io.BytesIO(raw))
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as e:
        raise ValueError(f"{what}: {p} is not a readable CSV "
                         f"({' '.join(str(e).split())})") from None


class CsvRow:
    """One row of a measurement file, with errors that name the file, the row and the field."""

    def __init__(self, label: str, index: int, values: Mapping[str, Any], point: str = ""):
        self.where = f"{label}, row {index + 1}" + (f" ({point})" if point else "")
        self.values = values

    def fail(self, field: str, message: str) -> ValueError:
        return ValueError(f"{self.where}: {field}: {message}")

    def raw(self, field: str) -> Any:
        value = self.values[field]
        if value is None or (isinstance(value, float) and math.isnan(value)) \
                or (isinstance(value, str) and not value.strip()):
            raise self.fail(field, "missing value")
        return value

    def _checked(self, field: str, check, *args):
        try:
            return check(field, cell_number(self.raw(field)), *args)
        except ValueError as e:
            raise ValueError(f"{self.where}: {e}") from None

    def int(self, field: str, lo: int = 1, hi: int = MAX_COUNT) -> int:
        return self._checked(field, check_int, lo, hi)

    def number(self, field: str, lo: float = 0.0, hi: float = math.inf) -> float:
        return self._checked(field, check_number, lo, hi)

    def bool(self, field: str) -> bool:
        value = self.raw(field)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        try:
            return check_bool(field, value)
        except ValueError as e:
            raise ValueError(f"{self.where}: {e}") from None

    def choice(self, field: str, choices: Iterable[str]) -> str:
        try:
            return check_choice(field, self.raw(field), choices)
        except ValueError as e:
            raise ValueError(f"{self.where}: {e}") from None

    def text(self, field: str) -> str:
        try:
            return check_text(field, self.raw(field))
        except ValueError as e:
            raise ValueError(f"{self.where}: {e}") from None

    def json(self, field: str) -> dict:
        data = parse_json(str(self.raw(field)), f"{self.where}: {field}")
        if not isinstance(data, dict):
            raise self.fail(field, "must be a JSON object")
        return data


def cell_number(value: Any) -> Any:
    """A CSV cell as a number when it reads as one (a string "2.5" → 2.5); else unchanged, so
    the check names what it got. numpy scalars become Python numbers."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def is_blank(value: Any) -> bool:
    """A cell left empty: None, NaN or blank text."""
    return value is None or (isinstance(value, float) and math.isnan(value)) \
        or (isinstance(value, str) and not value.strip())


__all__ = ["MAX_CSV_BYTES", "CsvRow", "cell_number", "is_blank", "read_csv_file"]
