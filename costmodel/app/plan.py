"""The app's "Plan a deployment" page, without streamlit: the search (cm.plan) for the
sidebar's model, the ranked table, the Pareto chart as PNG bytes, and the chosen configuration's
memory breakdown with the formulas behind each term — plain functions of plain values that
its page (``costmodel.app.pages.plan``) caches."""

from __future__ import annotations

import io

from costmodel.plan.figures import pareto_chart
from costmodel.plan.memory import serving_memory
from costmodel.plan.search import GPUS, plan
from costmodel.presets import hardware_presets
from costmodel.specs import ModelSpec

#: GPUs the page offers: the presets with a bundled price.
DEFAULT_GPUS = GPUS
#: The table's columns, in order.
TABLE = ["rank", "gpu", "gpus", "replicas", "tp", "pp", "ep", "quant", "max_batched_tokens",
         "max_concurrency", "ttft_ms", "tpot_ms", "utilization", "usd_per_hour",
         "usd_per_mtok", "usd_per_mtok_input", "usd_per_mtok_output",
         "tokens_per_s_per_gpu", "tokens_per_s_per_user", "j_per_token", "kwh_per_mtok",
         "pareto"]
#: Each memory term's formula (vLLM's accounting, costmodel.plan.memory).
FORMULAS = [
    ("budget", r"u \cdot (M - R_{\mathrm{drv}})"),
    ("weights", r"W_{\mathrm{GPU}} = \frac{(P - P_e) b_w}{TP} + \frac{P_e b_{we}}{S_e}"
                r"\ (\times\ \lceil L/PP \rceil / L\ \text{per stage})"),
    ("activation peak", r"\max\big(\max_{op}(A_{read} + A_{write})(T) + 3\,T\,d\,b_a,\ "
                        r"2\,S\,V\cdot 4\big)"),
    ("KV cache", r"\mathrm{budget} - W_{\mathrm{GPU}} - A - R_{nt} - R_{comm}"),
    ("KV blocks", r"\lfloor \mathrm{KV} / (16 \cdot \mathrm{kv}_{token}) \rfloor"),
    ("max concurrency", r"\mathrm{blocks} \cdot 16 / \ell"),
]


def gpu_options() -> list[str]:
    """Hardware presets the page lists (the bundled-price ones first)."""
    names = list(hardware_presets())
    return list(DEFAULT_GPUS) + [n for n in names if n not in DEFAULT_GPUS]


def plan_page(m: ModelSpec, gpus: tuple[str, ...], rate: float, input_len: int,
              output_len: int, ttft_ms: float, tpot_ms: float, arrivals: str = "poisson",
              max_utilization: float = 0.8, engine: str = "tuned") -> dict:
    """The page's numbers: ``table`` (ranked rows), ``png`` (Pareto chart), ``best`` (the
    cheapest row), ``memory`` (its terms), ``reason`` and ``note`` (what was searched).
    Raises ValueError (e.g. "ttft: nothing meets …; the closest is …") for the page to show."""
    if not gpus:
        raise ValueError("gpus: pick at least one GPU")
    df = plan(m, list(gpus), rate=rate, input_len=input_len, output_len=output_len,
              ttft=ttft_ms / 1e3, tpot=tpot_ms / 1e3, arrivals=arrivals,
              max_utilization=max_utilization, engine=engine)
    shown = df.assign(ttft_ms=df["ttft_s"] * 1e3, tpot_ms=df["tpot_s"] * 1e3)[TABLE]
    buf = io.BytesIO()
    pareto_chart(df, f"{m.name}: {rate:g} requests/s").savefig(buf, format="png", dpi=130)
    best = df.iloc[0].to_dict()
    quant = None if best["quant"] == (m.weight_format or "bf16") else best["quant"]
    sm = serving_memory(m, best["gpu"], tp=int(best["tp"]), pp=int(best["pp"]),
                        ep=int(best["ep"]), quant=quant,
                        max_num_batched_tokens=int(best["max_batched_tokens"]),
                        max_num_seqs=int(best["max_concurrency"]),
                        request_len=int(-(-(input_len + output_len) // 1)))
    note = (f"{df.attrs['candidates']:,} candidate configurations searched in "
            f"{df.attrs['seconds']:.1f} s; {len(df):,} meet the targets ({arrivals} arrivals, "
            f"utilisation ≤ {max_utilization:.0%}).")
    return {"table": shown, "png": buf.getvalue(), "best": best, "memory": sm.terms(),
            "reason": sm.reason, "note": note, "formulas": FORMULAS}


__all__ = ["DEFAULT_GPUS", "FORMULAS", "TABLE", "gpu_options", "plan_page"]
