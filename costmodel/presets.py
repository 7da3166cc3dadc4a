"""Presets: models and hardware read from the CSV files in ``costmodel/data`` (each row cites its
source), and the one resolver every API function uses to accept a spec, a preset name, or a file.

Hardware CSV columns carry their unit in the name (MiB, GB/s, TFLOPS, µs); the loader converts
them to bytes, bytes/s, FLOP/s and seconds.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Mapping
from dataclasses import fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from costmodel.hfconfig import spec_from_hf_config
from costmodel.specs import EngineProfile, HardwareSpec, ModelSpec
from costmodel.units import GB, MIB, TERA

ALIASES = {
    "a100-80gb-sxm": "a100-80gb",
    "a100-40gb-sxm": "a100-40gb",
    "h100": "h100-sxm",
    "h200-sxm": "h200",
    "4090": "rtx-4090",
    "gpt2-small": "gpt2",
    "meta-llama-3-8b": "llama3-8b",
    "llama-3-8b": "llama3-8b",
    "llama-2-7b": "llama2-7b",
}
_BOOL = {"true": True, "false": False}
_DTYPE_COLUMNS = {"fp32": "fp32_tflops", "tf32": "tf32_tflops", "fp16": "fp16_tflops",
                  "bf16": "bf16_tflops", "fp8": "fp8_tflops", "int8": "int8_tops",
                  "fp4": "fp4_tflops"}


def _rows(filename: str) -> list[dict[str, str]]:
    text = resources.files("costmodel").joinpath("data", filename).read_text()
    return list(csv.DictReader(text.splitlines()))


def _cell(field: str, text: str):
    """A CSV cell as the ModelSpec field's type (an empty cell: the field's default)."""
    kind = _FIELD_TYPES[field]
    if "bool" in kind:
        return _BOOL[text]
    if "int" in kind:
        return int(text)
    if "float" in kind:
        return float(text)
    return text


_FIELD_TYPES = {f.name: str(f.type) for f in fields(ModelSpec)}


@cache
def model_presets() -> dict[str, ModelSpec]:
    """Every model preset, by name (``costmodel/data/models.csv``: one column per ModelSpec
    field; an empty cell takes the field's default)."""
    out = {}
    for row in _rows("models.csv"):
        out[row["name"]] = ModelSpec(**{k: _cell(k, v) for k, v in row.items() if v != ""})
    return out


@cache
def hardware_presets() -> dict[str, HardwareSpec]:
    """Every hardware preset, by name."""
    out = {}
    for row in _rows("hardware.csv"):
        peaks = {dt: float(row[col]) * TERA for dt, col in _DTYPE_COLUMNS.items() if row[col]}
        out[row["name"]] = HardwareSpec(
            name=row["name"],
            memory_marketed=row["marketed"],
            memory_bytes=int(row["memory_mib"]) * MIB,
            bandwidth=float(row["bandwidth_gbs"]) * GB,
            peak_flops=peaks,
            interconnect_bandwidth=float(row["interconnect_gbs"]) * GB,
            interconnect_latency=float(row["interconnect_latency_us"]) * 1e-6,
            tdp_watts=float(row["tdp_w"]),
            source=row["source"],
            notes=row["notes"],
        )
    return out


@cache
def engine_presets() -> dict[str, EngineProfile]:
    """Every engine profile, by name (``costmodel/data/engines.csv``, with the 80 % bands of
    ``costmodel/data/engine_bands.csv``). Seconds are stored in µs columns."""
    bands: dict[str, dict] = {}
    for row in _rows("engine_bands.csv"):
        bands.setdefault(row["engine"], {})[row["regime"]] = (float(row["low"]),
                                                              float(row["high"]))
    return _engine_table("engines.csv", bands)


@cache
def engine_defaults() -> dict[str, EngineProfile]:
    """The engine profiles before any fit, by name (``costmodel/data/engine_defaults.csv``:
    the starting values from the microbenchmarks of REFERENCES §5–6, no bands): what
    ``costmodel validate --published`` fits from and reports beside the fitted ones."""
    return _engine_table("engine_defaults.csv", {})


def _engine_table(filename: str, bands: dict[str, dict]) -> dict[str, EngineProfile]:
    out = {}
    for row in _rows(filename):
        def num(col, scale=1.0, row=row):
            return None if row[col] == "" else float(row[col]) * scale
        out[row["name"]] = EngineProfile(
            name=row["name"], eta_c=num("eta_c"), eta_m=num("eta_m"),
            eta_c_8bit=num("eta_c_8bit") if "eta_c_8bit" in row else None,
            eta_c_skinny=num("eta_c_skinny"), eta_m_elementwise=num("eta_m_elementwise"),
            eta_m_quant=num("eta_m_quant"), kernel_overhead=num("kernel_overhead_us", 1e-6),
            step_overhead=num("step_overhead_us", 1e-6),
            layer_overhead=num("layer_overhead_us", 1e-6),
            comm_latency=num("comm_latency_us", 1e-6), attention=row["attention"],
            bands=bands.get(row["name"], {}), source=row["source"], notes=row["notes"])
    return out


def _lookup(kind: str, name: str, table: dict):
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table) + list(ALIASES), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    shown = name if len(name) <= 60 else name[:57] + "..."
    raise ValueError(f"{kind}: unknown preset {shown!r}{hint} (known: {', '.join(sorted(table))})")


def model(m: str | ModelSpec | Path | Mapping[str, Any]) -> ModelSpec:
    """A model from anything that names one: a ModelSpec (passes through), a preset name
    (``cm.model("llama3-8b")``), a Hugging Face ``config.json`` path or folder, or a parsed
    Hugging Face config dict."""
    if isinstance(m, ModelSpec):
        return m
    if isinstance(m, Mapping):
        return spec_from_hf_config(m)
    if isinstance(m, Path) or (isinstance(m, str) and (m.endswith(".json") or "/" in m)):
        return spec_from_hf_config(m)
    if not isinstance(m, str):
        raise ValueError(f"model: expected a preset name, a ModelSpec or a config.json, got "
                         f"{type(m).__name__}")
    return _lookup("model", m, model_presets())


def hardware(h: str | HardwareSpec | Path) -> HardwareSpec:
    """Hardware from anything that names it: a HardwareSpec (passes through), a preset name
    (``cm.hardware("a100-80gb")``), or a JSON hardware file (a path ending in .json, e.g. one
    written by ``costmodel calibrate``)."""
    if isinstance(h, HardwareSpec):
        return h
    if isinstance(h, Path) or (isinstance(h, str) and h.endswith(".json")):
        return HardwareSpec.load(h)
    if not isinstance(h, str):
        raise ValueError(f"hardware: expected a preset name, a .json file or HardwareSpec, "
                         f"got {type(h).__name__}")
    return _lookup("hardware", h, hardware_presets())


def engine(e: str | EngineProfile) -> EngineProfile:
    """An engine profile by name (``cm.engine("tuned")``); an EngineProfile passes through."""
    if isinstance(e, EngineProfile):
        return e
    if not isinstance(e, str):
        raise ValueError(f"engine: expected a profile name or EngineProfile, got "
                         f"{type(e).__name__}")
    return _lookup("engine", e, engine_presets())


__all__ = ["ALIASES", "engine", "engine_defaults", "engine_presets", "hardware",
           "hardware_presets", "model", "model_presets"]
