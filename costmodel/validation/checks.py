"""The exact checks of a measurement set: FLOPs, KV-cache bytes and parameter bytes, point by
point, as integers.

* **FLOPs** — ``torch.utils.flop_counter.FlopCounterMode`` counting the measured pass (during
  the measurement, on its engine, where the row recorded it; else the reference model built on
  the meta device — so even GPT-2 costs nothing — running the same pass,
  :func:`costmodel.validation.passes.reference_pass`) equals Σ FLOPs of the ``matmul`` and
  ``attention`` operators of ``cm.analyze`` with the row's options.
* **KV bytes** — the cache the model allocated during the measurement (dynamic: the returned
  cache, c + q positions; static: the preallocated ``static_max_len`` positions) equals
  :func:`costmodel.kvcache.kv_cache_bytes`.
* **Parameter bytes** — Σ nbytes of the model's parameters (tied weights once) equals
  :func:`costmodel.params.param_count` · bytes per weight.
"""

from __future__ import annotations

import json

import numpy as np

from costmodel.kvcache import kv_cache_bytes
from costmodel.lazy import deferred
from costmodel.params import param_count
from costmodel.pricing import MATMUL_KINDS
from costmodel.roofline import analyze
from costmodel.specs import HardwareSpec
from costmodel.validation.io import analysis_kwargs, spec_of
from costmodel.validation.passes import meta_flops

pd = deferred("pandas")


def config_of(row):
    """The reference ``GPTConfig`` a measurement row recorded (its ``gpt_config`` JSON)."""
    from costmodel.reference.config import GPTConfig

    return GPTConfig.from_dict(json.loads(row["gpt_config"]))


def counted_flops(config, phase: str, batch: int, context: int, static_max_len: int = 0,
                  models: dict | None = None) -> int:
    """FLOPs FlopCounterMode counts for one measured pass of the reference model (``phase`` at
    ``context`` s, ``batch`` sequences) on the meta device
    (:func:`costmodel.validation.passes.meta_flops`). ``models`` caches the built models by
    config."""
    return meta_flops(config, phase, batch, context, static_max_len, models)


def analytic_flops(row, hw: HardwareSpec) -> int:
    """Σ FLOPs of the matmul and attention operators of ``cm.analyze`` for a measured row."""
    a = analyze(spec_of(row), hw, **analysis_kwargs(row))
    return int(round(float(a.quantities[:, 0][np.isin(a.kinds, MATMUL_KINDS)].sum())))


def check_flops(df, hw: HardwareSpec):
    """Per point: FlopCounterMode FLOPs vs the analytic matmul + attention FLOPs. The count is
    the one the measurement recorded (``flops_counted``: the measured pass itself, on its
    engine) where there is one, else the reference model's pass on the meta device; ``source``
    says which."""
    models: dict = {}
    rows = []
    for _, row in df.iterrows():
        analytic = analytic_flops(row, hw)
        recorded = int(row["flops_counted"]) if "flops_counted" in row else -1
        if recorded >= 0:
            counted, source = recorded, "measured pass"
        else:
            counted = counted_flops(config_of(row), str(row["phase"]), int(row["batch"]),
                                    int(row["context"]), int(row["static_max_len"]), models)
            source = "meta device"
        rows.append({"point_id": row["point_id"], "counted_flops": counted,
                     "analytic_flops": analytic, "difference": counted - analytic,
                     "exact": counted == analytic, "source": source})
    return pd.DataFrame(rows)


def check_bytes(df):
    """Per point: the KV cache and parameter bytes the model allocated vs the formulas."""
    rows = []
    for _, row in df.iterrows():
        spec = spec_of(row)
        B, q, c = int(row["batch"]), int(row["new_tokens"]), int(row["cached_tokens"])
        kvb, wb = row["kv_bytes"], row["weight_bytes"]
        cache = str(row["cache"])
        held = {"static": int(row["static_max_len"]), "dynamic": c + q, "none": 0}[cache]
        kv_formula = kv_cache_bytes(spec, context=held, batch=B, kv_bytes=kvb) if held else 0
        param_formula = param_count(spec) * wb
        kv_meas = int(row["kv_cache_bytes_measured"])
        p_meas = int(row["param_bytes_measured"])
        rows.append({"point_id": row["point_id"], "cache": cache,
                     "kv_bytes_measured": kv_meas, "kv_bytes_formula": int(kv_formula),
                     "kv_exact": kv_meas == kv_formula, "param_bytes_measured": p_meas,
                     "param_bytes_formula": int(param_formula),
                     "param_exact": p_meas == param_formula})
    return pd.DataFrame(rows)


__all__ = ["analytic_flops", "check_bytes", "check_flops", "config_of", "counted_flops"]
