"""The calibration reader: a ``costmodel calibrate`` JSON (or a HardwareSpec) checked to cover
every dtype of the measurements, its machine description checked field by field."""

from __future__ import annotations

from collections.abc import Iterable

from costmodel.checks import check_dim, check_int, check_mapping, check_number, check_text
from costmodel.specs import DTYPES, HardwareSpec


def read_hardware(source, dtypes: Iterable[str] = ()) -> HardwareSpec:
    """A calibration (``costmodel calibrate``'s JSON, or a HardwareSpec) that covers every
    dtype of the measurements; the machine description the report reads from ``extra`` is
    checked field by field."""
    if isinstance(source, HardwareSpec):
        hw, label = source, f"hardware {source.name}"
    else:
        hw, label = HardwareSpec.load(source), f"hardware file {source}"
    ex = hw.extra or {}
    for key in ("device_name", "torch_version", "clock", "device"):
        if key in ex and not isinstance(ex[key], str):
            raise ValueError(f"{label}: extra.{key} must be text, got {ex[key]!r}")
    for key in ("cores", "threads"):
        if key in ex:
            try:
                check_dim(f"extra.{key}", ex[key])
            except ValueError as e:
                raise ValueError(f"{label}: {e}") from None
    listed = ex.get("dtypes", list(hw.peak_flops))
    if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
        raise ValueError(f"{label}: extra.dtypes must be a list of dtype names, got {listed!r}")
    for d in listed:
        if d not in DTYPES:
            raise ValueError(f"{label}: extra.dtypes: unknown dtype {d!r} (choose from "
                             f"{', '.join(DTYPES)})")
    matmul = ex.get("matmul", [])
    if not isinstance(matmul, list):
        raise ValueError(f"{label}: extra.matmul must be a list, got {type(matmul).__name__}")
    for i, m in enumerate(matmul):
        try:
            check_mapping(f"extra.matmul[{i}]", m)
            check_text(f"extra.matmul[{i}].kind", m.get("kind"))
            check_int(f"extra.matmul[{i}].m", m.get("m"), 1, 2**31 - 1)
            check_number(f"extra.matmul[{i}].flops_per_s", m.get("flops_per_s"))
        except ValueError as e:
            raise ValueError(f"{label}: {e}") from None
    calibrated = [d for d in listed if d in hw.peak_flops] or list(hw.peak_flops)
    for d in sorted(set(dtypes)):
        if d not in hw.peak_flops or d not in calibrated:
            raise ValueError(f"{label}: {hw.name} was calibrated for {', '.join(calibrated)} "
                             f"but the measurements are {d}; calibrate with `costmodel "
                             f"calibrate --dtype {d}`")
    return hw


__all__ = ["read_hardware"]
