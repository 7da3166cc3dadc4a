r"""Cost and energy of a deployment: $/hour per GPU (sourced, dated defaults the user can
override), $/Mtok for input and for output tokens, and power from a simple model.

    cost ($/s)      = GPUs · price / 3600
    $/Mtok (all)    = cost / (λ · (s + n)) · 10⁶
    $/Mtok input    = cost · f_in / (λ · s) · 10⁶          f_in = p · (T1 − t0) / t̄: the share of
    $/Mtok output   = cost · (1 − f_in) / (λ · n) · 10⁶    step time prompts add (plan.batching)

    power (W/GPU)   = idle + utilisation · (TDP − idle)
    utilisation     = 1 − e^(−L)                         the share of time steps run (L requests
                                                         in the system); a running step counts as
                                                         full load: an upper bound on decode
    J/token         = GPUs · power / (λ · (s + n));  kWh/Mtok = J/token · 10⁶ / 3.6·10⁶

TDPs are the hardware presets'; idle powers are public nvidia-smi readings where there are any,
else IDLE_FRACTION · TDP (the median of the measured idle/TDP ratios).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from functools import cache
from importlib import resources

import numpy as np

from costmodel.checks import check_positive_number
from costmodel.presets import hardware as hardware_preset
from costmodel.specs import HardwareSpec

#: Idle / TDP for a GPU without an idle reading: the median of the measured ratios (H100 68/700,
#: H200 78/700, A100-80GB 63/400, A100-40GB 50.5/400, RTX 3090 17/350 → 0.049 … 0.158).
IDLE_FRACTION = 0.111
JOULES_PER_KWH = 3.6e6
#: Most dollars per GPU-hour accepted (a price is a positive number below this).
MAX_PRICE = 1e4


def _table(filename: str) -> list[dict[str, str]]:
    text = resources.files("costmodel").joinpath("data", filename).read_text()
    return list(csv.DictReader(text.splitlines()))


@cache
def price_table() -> dict[str, dict[str, str]]:
    """The bundled on-demand prices (``costmodel/data/gpu_prices.csv``) by hardware preset."""
    return {row["gpu"]: row for row in _table("gpu_prices.csv")}


@cache
def power_table() -> dict[str, dict[str, str]]:
    """The bundled idle powers (``costmodel/data/gpu_power.csv``) by hardware preset."""
    return {row["gpu"]: row for row in _table("gpu_power.csv")}


def gpu_price(hw: HardwareSpec | str, prices: Mapping[str, float] | None = None) -> float:
    """$ per GPU-hour: the user's (``prices`` by hardware name), else the bundled default;
    a GPU with neither is refused by name."""
    h = hardware_preset(hw)
    if prices and h.name in prices:
        return check_positive_number(f"prices[{h.name}]", prices[h.name], MAX_PRICE)
    row = price_table().get(h.name)
    if row is None:
        raise ValueError(f"prices: no bundled price for {h.name}; give one, e.g. "
                         f"prices={{'{h.name}': 2.5}} ($ per GPU-hour; bundled: "
                         f"{', '.join(sorted(price_table()))})")
    return float(row["usd_per_gpu_hour"])


def check_prices(prices: Mapping[str, float] | None) -> dict[str, float]:
    """User prices: hardware name → $ per GPU-hour, each a positive number."""
    if prices is None:
        return {}
    if not isinstance(prices, Mapping):
        raise ValueError("prices: give a mapping of hardware name to $ per GPU-hour")
    out = {}
    for name, value in prices.items():
        h = hardware_preset(name)
        out[h.name] = check_positive_number(f"prices[{name}]", value, MAX_PRICE)
    return out


def idle_power(hw: HardwareSpec | str) -> float:
    """Idle watts: a public reading where there is one, else IDLE_FRACTION · TDP."""
    h = hardware_preset(hw)
    row = power_table().get(h.name)
    if row is not None:
        return float(row["idle_w"])
    if not h.tdp_watts:
        raise ValueError(f"hardware: {h.name} has no TDP (tdp_watts), so its power is unknown")
    return IDLE_FRACTION * h.tdp_watts


def power(hw: HardwareSpec | str, utilisation):
    """Watts per GPU: idle + utilisation · (TDP − idle) (utilisation in [0, 1], arrays OK)."""
    h = hardware_preset(hw)
    if not h.tdp_watts:
        raise ValueError(f"hardware: {h.name} has no TDP (tdp_watts), so its power is unknown")
    u = np.clip(np.asarray(utilisation, dtype=float), 0, 1)
    idle = idle_power(h)
    return idle + u * (h.tdp_watts - idle)


def money(gpus, usd_per_gpu_hour, rate, input_len, output_len, prefill_time_share) -> dict:
    """$/hour, $/Mtok (all tokens, input, output) of ``gpus`` GPUs serving ``rate`` requests/s
    of ``input_len`` + ``output_len`` tokens (arrays broadcast; module docstring)."""
    per_s = np.asarray(gpus, dtype=float) * np.asarray(usd_per_gpu_hour, dtype=float) / 3600
    lam = np.asarray(rate, dtype=float)
    s, n = np.asarray(input_len, dtype=float), np.asarray(output_len, dtype=float)
    f_in = np.clip(np.asarray(prefill_time_share, dtype=float), 0, 1)
    return {"usd_per_hour": per_s * 3600,
            "usd_per_mtok": per_s / (lam * (s + n)) * 1e6,
            "usd_per_mtok_input": per_s * f_in / (lam * s) * 1e6,
            "usd_per_mtok_output": per_s * (1 - f_in) / (lam * n) * 1e6}


def energy(hw: HardwareSpec | str, gpus, utilisation, rate, input_len, output_len) -> dict:
    """Watts per GPU, J per token and kWh per million tokens (all tokens, input + output)."""
    watts = power(hw, utilisation)
    tokens = np.asarray(rate, dtype=float) * (np.asarray(input_len, dtype=float)
                                              + np.asarray(output_len, dtype=float))
    j = np.asarray(gpus, dtype=float) * watts / tokens
    return {"watts_per_gpu": watts, "j_per_token": j, "kwh_per_mtok": j * 1e6 / JOULES_PER_KWH}


__all__ = ["IDLE_FRACTION", "JOULES_PER_KWH", "MAX_PRICE", "check_prices", "energy",
           "gpu_price", "idle_power", "money", "power", "power_table", "price_table"]
