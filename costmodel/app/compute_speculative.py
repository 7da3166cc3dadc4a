"""The Speculative page's computation: one speculative iteration (target and draft decode steps,
the verification) priced through the roofline, and the improvement against γ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from costmodel.app.compute import SIDE, png
from costmodel.app.display import display_frame
from costmodel.app.state import SpeculativeSettings, Workload
from costmodel.decoding import speculative_speedup
from costmodel.lazy import deferred
from costmodel.plots import speedup_vs_gamma
from costmodel.presets import model as model_preset
from costmodel.roofline import decode_step
from costmodel.specs import HardwareSpec, ModelSpec
from costmodel.speculative import expected_tokens, optimal_gamma, speedup

pd = deferred("pandas")


@dataclass(frozen=True)
class SpeculativePage:
    """One speculative iteration priced through the roofline, and the improvement vs γ."""

    target_step: float             # seconds of one target decode step at s
    draft_step: float              # seconds of one draft decode step at s
    verify: float                  # seconds of the target verifying γ + 1 tokens
    cost_ratio: float              # c = draft step / target step
    expected_tokens: float         # E(α, γ) per iteration
    speedup: float                 # roofline improvement
    speedup_simple: float          # the c-only formula E / (γc + 1)
    verify_over_step: float
    best_gamma: int
    table: Any
    png: bytes
    target_band: tuple[float, float] | None = None   # 80 % bands of the two steps
    draft_band: tuple[float, float] | None = None


GAMMA_COLUMNS = {"gamma": "γ", "expected_tokens": "tokens per iteration E",
                 "speedup": "speedup (×)", "no_bonus": "speedup, no bonus token (×)"}


def speculative_page(target: ModelSpec, hw: HardwareSpec, w: Workload,
                     s: SpeculativeSettings) -> SpeculativePage:
    """Target and draft decode on one GPU (TP = 1, EP = 1) at the workload's context and
    batch, with the workload's engine and formats (the draft's weights in the same format)."""
    draft = model_preset(s.draft)
    opts = {k: v for k, v in w.options().items() if k not in ("tp", "ep")}
    r = speculative_speedup(target, draft, hw, s.alpha, s.gamma, context=w.context,
                            batch=w.batch, **opts)
    bands = [decode_step(x, hw, w.context, w.batch, **opts).time_interval
             for x in (target, draft)]
    ratio = r["cost_ratio"]
    gammas = np.arange(1, max(16, s.gamma) + 1)
    table = pd.DataFrame({GAMMA_COLUMNS["gamma"]: gammas,
                          GAMMA_COLUMNS["expected_tokens"]: expected_tokens(s.alpha, gammas),
                          GAMMA_COLUMNS["speedup"]: speedup(s.alpha, gammas, ratio),
                          GAMMA_COLUMNS["no_bonus"]: speedup(s.alpha, gammas, ratio,
                                                             bonus=False)})
    return SpeculativePage(
        target_step=r["target_step_s"], draft_step=r["draft_step_s"], verify=r["verify_s"],
        cost_ratio=ratio, expected_tokens=r["expected_tokens"], speedup=r["speedup"],
        speedup_simple=r["speedup_simple"], verify_over_step=r["verify_over_step"],
        best_gamma=optimal_gamma(s.alpha, ratio), table=display_frame(table),
        png=png(speedup_vs_gamma(s.alpha, ratio, gammas), SIDE), target_band=bands[0],
        draft_band=bands[1])


__all__ = ["GAMMA_COLUMNS", "SpeculativePage", "speculative_page"]
