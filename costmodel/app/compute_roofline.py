"""The Roofline page's computation: the generation's times with their bands, the per-operator
tables, and the decode step over every batch that fits (``cm.sweep``), priced through the one
path (``costmodel.roofline`` → ``costmodel.pricing.price``) as ``cm.analyze`` is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from costmodel.app.compute import SIDE, png
from costmodel.app.display import display_frame
from costmodel.app.inputs import check_workload_tp
from costmodel.app.state import Workload
from costmodel.batch import max_batch_size
from costmodel.catalog import architecture_formulas
from costmodel.decoding import Generation, generation
from costmodel.grid import sweep
from costmodel.plots import decode_intensity_vs_batch, roofline_chart
from costmodel.specs import HardwareSpec, ModelSpec


@dataclass(frozen=True)
class RooflineTimes:
    """The Roofline page's headline numbers (seconds, FLOPs per byte)."""

    ttft: float                    # the prefill pass
    tpot_first: float              # the first decode step (context s)
    tpot_mean: float               # mean decode step over the generation
    total: float                   # prefill + every decode step
    throughput: float              # generated tokens per second, all requests
    prefill_bound: str
    decode_bound: str
    prefill_intensity: float
    decode_intensity: float
    ridge: float                   # peak / bandwidth of the dtype used
    dtype: str
    # 80 % bands (seconds; None where the engine has none for the regime)
    ttft_band: tuple[float, float] | None = None
    tpot_first_band: tuple[float, float] | None = None
    tpot_mean_band: tuple[float, float] | None = None
    total_band: tuple[float, float] | None = None
    prefill_regime: str = ""
    decode_regime: str = ""
    engine: str = ""               # the engine profile priced with ("" : none)
    fixed: float = 0.0             # the engine's seconds per pass outside the operators

    @property
    def throughput_band(self) -> tuple[float, float] | None:
        """Tokens per second at the ends of the total time's band (high time → low rate)."""
        if self.total_band is None:
            return None
        tokens = self.throughput * self.total
        return tokens / self.total_band[1], tokens / self.total_band[0]


def _generation(m: ModelSpec, hw: HardwareSpec, w: Workload) -> Generation:
    check_workload_tp(m, w.tp, w.ep)
    return generation(m, hw, w.context, w.generate, w.batch, **w.options())


def _times(gen: Generation) -> RooflineTimes:
    pre, dec = gen.prefill, gen.first_decode
    return RooflineTimes(ttft=gen.ttft, tpot_first=gen.tpot_first, tpot_mean=gen.tpot_mean,
                         total=gen.total_time, throughput=gen.throughput,
                         prefill_bound=pre.bound, decode_bound=dec.bound,
                         prefill_intensity=pre.intensity, decode_intensity=dec.intensity,
                         ridge=pre.ridge_point, dtype=pre.dtype, ttft_band=gen.ttft_interval,
                         tpot_first_band=gen.tpot_first_interval,
                         tpot_mean_band=gen.tpot_mean_interval, total_band=gen.total_interval,
                         prefill_regime=pre.regime, decode_regime=dec.regime,
                         engine=pre.efficiency.engine, fixed=pre.fixed)


def roofline_times(m: ModelSpec, hw: HardwareSpec, w: Workload) -> RooflineTimes:
    """The times the Roofline page shows for (model, hardware, workload): the same calls as
    ``cm.prefill`` / ``cm.decode_step`` / ``cm.generation`` with the workload's options."""
    return _times(_generation(m, hw, w))


@dataclass(frozen=True)
class RooflinePage:
    times: RooflineTimes
    prefill_ops: Any               # Analysis.ops of the prefill (DataFrame)
    decode_ops: Any
    max_batch: int                 # requests of s tokens that fit (0: not even one)
    first_compute: int | None      # first decode batch that is compute-bound, within max_batch
    batch_table: Any               # decode step vs batch
    png: bytes
    moe_png: bytes | None = None   # a mixture of experts: decode intensity vs batch
    n_experts: int = 0


def batch_scan_points(max_batch: int, cap: int = 1 << 16) -> np.ndarray:
    """Every batch 1 … max_batch (at most ``cap``; beyond, a geometric grid)."""
    top = max(int(max_batch), 1)
    if top <= cap:
        return np.arange(1, top + 1)
    return np.unique(np.concatenate([np.arange(1, cap + 1),
                                     np.geomspace(cap, top, 256).astype(np.int64)]))


def roofline_page(m: ModelSpec, hw: HardwareSpec, w: Workload) -> RooflinePage:
    """The Roofline page: the generation's times (with their bands), the per-operator tables,
    and the decode step over every batch that fits (``cm.sweep``): where it turns
    compute-bound and, for a mixture of experts, how many experts it touches."""
    gen = _generation(m, hw, w)
    pre, dec = gen.prefill, gen.first_decode
    chart = roofline_chart(pre, dec, labels=["prefill (q = s, c = 0)",
                                             "decode step (q = 1, c = s)"])
    top = max_batch_size(m, hw, w.context, tp=w.tp, **w.memory())
    scan = sweep(m, hw, batch=batch_scan_points(top), context=w.context, phase="decode",
                 **w.options())
    hit = scan.loc[scan["bound"] == "compute", "batch"]
    first = int(hit.iloc[0]) if top and len(hit) else None
    shown = sorted({int(b) for b in 2 ** np.arange(0, 21) if b <= max(top, 1)} | {max(top, 1)}
                   | ({first} if first else set()))
    table = scan[scan["batch"].isin(shown)].copy()
    columns = {"batch": "batch"}
    moe_png = None
    if m.moe:
        touched = architecture_formulas(m)
        u = touched["moe"]["experts_touched"](batch=table["batch"].to_numpy(dtype=float),
                                              n_experts=m.n_experts,
                                              experts_per_token=m.experts_per_token)
        table["experts"] = np.broadcast_to(u, table["batch"].shape)
        columns["experts"] = f"experts touched per layer (of {m.n_experts})"
        all_b = scan["batch"].to_numpy(dtype=float)
        u_all = touched["moe"]["experts_touched"](batch=all_b, n_experts=m.n_experts,
                                                  experts_per_token=m.experts_per_token)
        fig = decode_intensity_vs_batch(all_b, scan["intensity"].to_numpy(), pre.ridge_point,
                                        experts=np.broadcast_to(u_all, all_b.shape),
                                        n_experts=m.n_experts, first_compute=first,
                                        title=f"{m.name} decode on {hw.name}, s = {w.context}")
        moe_png = png(fig, SIDE)
    table["time"] = table["time"] * 1e3
    columns.update({"intensity": "FLOPs/byte", "time": "step time (ms)"})
    if "time_lo" in table and table["time_lo"].notna().any():
        table["time_lo"] = table["time_lo"] * 1e3
        table["time_hi"] = table["time_hi"] * 1e3
        columns.update({"time_lo": "80 % band low (ms)", "time_hi": "80 % band high (ms)"})
    columns.update({"tokens_per_s": "tokens/s", "bound": "bound"})
    table["bound"] = table["bound"].astype(str)
    table = table[list(columns)].rename(columns=columns)
    return RooflinePage(times=_times(gen), prefill_ops=pre.ops, decode_ops=dec.ops,
                        max_batch=top, first_compute=first,
                        batch_table=display_frame(table.reset_index(drop=True)),
                        png=png(chart), moe_png=moe_png, n_experts=m.n_experts)


__all__ = ["RooflinePage", "RooflineTimes", "batch_scan_points", "roofline_page", "roofline_times"]
