r"""Speculative decoding held against its measurement: the measured per-token acceptance α and
the calibrated roofline's cost of the passes the reference loop runs give a predicted
improvement per γ (:func:`speculative_prediction`), beside the measured improvement (time of the
target alone / time with speculation) and the same formula with the *measured* pass costs.

Every time is ``cm.analyze`` on the fitted machine (through
:func:`costmodel.decoding.speculative_speedup`); nothing is fitted to the speculative runs.
"""

from __future__ import annotations

import numpy as np

from costmodel.decoding import speculative_speedup
from costmodel.lazy import deferred
from costmodel.specs import HardwareSpec
from costmodel.speculative import speedup
from costmodel.validation.io import BYTES_PER_DTYPE
from costmodel.workload import reference_options

pd = deferred("pandas")

#: Torch calls outside the model's forward, read off the reference loops (each priced at the
#: fitted t_k, like a modelled kernel; nothing fitted here):
#: ``GPT.generate`` per token: ``idx[:, -1:]``, ``logits[:, -1, :]``, argmax, ``torch.cat``.
GENERATE_STEP_CALLS = 4
#: ``generate_speculative`` per draft step: ``torch.tensor``, ``logits[0]``, ``[-1]``, argmax,
#: ``int()``; per verification: ``torch.tensor``, ``logits[0]``, the γ+1 slice, argmax,
#: ``tolist``; per rejection (probability 1 − α^γ) ``DynamicKVCache.crop`` slices K and V of
#: every layer of both models.
DRAFT_STEP_CALLS = 5
VERIFY_CALLS = 5


def speculative_prediction(tspec, dspec, hw: HardwareSpec, alpha: float, gamma: int,
                           context: int, cache: str = "dynamic", attn_impl: str = "sdpa",
                           kv_update: str | None = None, **kw) -> dict:
    """Predicted improvement of the reference model's greedy speculative decoding
    (``costmodel.reference.speculative.generate_speculative``) over ``GPT.generate``, priced on
    ``hw`` (e.g. ``Fit.hardware()``) the way the reference runs it:

    * target alone, per token: one decode step (q = 1, c, LM head on the last position) plus
      the loop's ``GENERATE_STEP_CALLS`` torch calls;
    * per speculative iteration: γ draft decode steps (q = 1, c + i, all logits) plus
      ``DRAFT_STEP_CALLS`` each, one verification pass of the target with q = γ + 1 new tokens
      on the cache (its masked attention path, LM head on all γ + 1 positions) plus
      ``VERIFY_CALLS``, and (1 − α^γ) · 2 (L_T + L_D) cache-crop slices;
    * improvement = E(α, γ) · t_token / t_iteration with E = (1 − α^(γ+1)) / (1 − α).
    """
    t_k = hw.kernel_overhead
    r = speculative_speedup(
        tspec, dspec, hw, alpha, gamma, context, 1, draft_lm_head="all", verify_lm_head="all",
        overheads={"token": GENERATE_STEP_CALLS * t_k, "draft": DRAFT_STEP_CALLS * t_k,
                   "verify": VERIFY_CALLS * t_k,
                   "rejection": 2 * (tspec.n_layers + dspec.n_layers) * t_k},
        **{**reference_options(cache, attn_impl, kv_update), **kw})
    return {"t_token_s": r["target_step_s"], "t_drafts_s": r["drafts_s"],
            "t_verify_s": r["verify_s"], "expected_tokens": r["expected_tokens"],
            "improvement": r["speedup"], "verify_over_step": r["verify_over_step"],
            "cost_ratio": (r["drafts_s"] / gamma) / r["target_step_s"]}


def pooled_alpha(rows: list[dict]) -> float:
    """The maximum-likelihood per-token acceptance pooled over every γ: Σ accepted / Σ drafted
    tokens at risk."""
    return sum(r["accepted"] for r in rows) / sum(r["at_risk"] for r in rows)


def speculative_table(base: dict, rows: list[dict], hw: HardwareSpec, dtype: str):
    """Measured vs predicted improvement per γ (``base``, ``rows``: the checked speculative
    CSV, :func:`costmodel.validation.speculative_io.read_speculative`; ``hw``: the fitted machine).

    Columns: the pooled and per-γ acceptance, E(α, γ) and the measured tokens per iteration,
    the predicted cost ratio and verification cost (in target steps), ``improvement_pred``
    (:func:`speculative_prediction`), ``improvement_pred_passes_only`` (the passes alone — LM
    heads on the last position, no loop calls — each operator at one η_c and one η_m),
    ``improvement_pred_simple`` (verification priced as one target step: E / (γc + 1)), the
    measured cost ratio and ``improvement_from_measured_costs`` when the passes were timed
    alone, the measured improvement and the relative error of ``improvement_pred``."""
    from costmodel.reference.config import GPTConfig

    tcfg = GPTConfig.from_dict(base["target_config"])
    tspec, dspec = tcfg.to_spec(), GPTConfig.from_dict(base["draft_config"]).to_spec()
    alpha = pooled_alpha(rows)
    nb = BYTES_PER_DTYPE[dtype]
    cache = base.get("cache", "dynamic")
    kv_update = base.get("kv_update")
    kw = dict(weight_bytes=nb, kv_bytes=nb, act_bytes=nb, dtype=dtype)
    ctx = int(round(base["context_mean"]))
    t_base = base["time_s"]
    plain = {k: v for k, v in reference_options(cache, tcfg.attn_impl, kv_update).items()
             if k != "kv_cache"}
    one_eta = {"eta_c_skinny": hw.eta_c, "eta_m_elementwise": hw.eta_m}
    out = []
    for r in rows:
        g = r["gamma"]
        p = speculative_prediction(tspec, dspec, hw, alpha, g, ctx, cache, tcfg.attn_impl,
                                   kv_update, **kw)
        passes = speculative_speedup(tspec, dspec, hw, alpha, g, context=ctx,
                                     **plain, **one_eta, **kw)
        measured = t_base / r["time_s"]
        costs = {}
        if all(k in r for k in ("target_step_s", "draft_step_s", "verify_s")):
            tt, td, tv = r["target_step_s"], r["draft_step_s"], r["verify_s"]
            costs = {"cost_ratio_meas": td / tt, "verify_over_step_meas": tv / tt,
                     "improvement_from_measured_costs": p["expected_tokens"] * tt
                     / (g * td + tv)}
        out.append({"gamma": g, "alpha_pooled": alpha,
                    "alpha_gamma": r["accepted"] / r["at_risk"],
                    "expected_tokens": p["expected_tokens"],
                    "measured_tokens_per_iteration": r.get("tokens_per_iteration", np.nan),
                    "cost_ratio_pred": p["cost_ratio"],
                    "verify_over_step_pred": p["verify_over_step"],
                    "improvement_pred": p["improvement"],
                    "improvement_pred_passes_only": float(passes["speedup"]),
                    "improvement_pred_simple": float(speedup(alpha, g, p["cost_ratio"])),
                    **costs, "improvement_measured": measured,
                    "rel_error": p["improvement"] / measured - 1})
    return pd.DataFrame(out)


__all__ = ["DRAFT_STEP_CALLS", "GENERATE_STEP_CALLS", "VERIFY_CALLS", "pooled_alpha",
           "speculative_prediction", "speculative_table"]
