"""The Formulas page's computation: each formula shown three ways ("show your work") — symbolic,
with the model's and the workload's numbers put in, and its result."""

from __future__ import annotations

from dataclasses import dataclass

from costmodel.app.inputs import check_workload_tp
from costmodel.app.state import Workload
from costmodel.batch import max_batch_formula
from costmodel.catalog import PARTS, architecture_formulas
from costmodel.formula import Formula
from costmodel.intensity import attention_formulas
from costmodel.kvcache import kv_formulas
from costmodel.ops import Options
from costmodel.params import expert_param_count, param_count_formula, weight_memory_formula
from costmodel.specs import HardwareSpec, ModelSpec
from costmodel.speculative import EXPECTED_TOKENS, SPEEDUP
from costmodel.symbols import model_values


@dataclass(frozen=True)
class ShownFormula:
    """A formula, the same with the numbers put in, and the result ("show your work")."""

    title: str                     # description (unit) and a note
    latex: str
    substituted: str
    result: str                    # LaTeX of the result


def show_formula(f: Formula, values: dict, note: str = "") -> ShownFormula:
    result = f.exact(**values)
    if isinstance(result, int) and abs(result) < 10**15:
        shown = f"{result:,}"
    else:
        shown = f"{float(result):,.6g}"
    return ShownFormula(f"**{f.description}** ({f.unit}){note}", f.latex(),
                        r"\small = " + f.substituted(**values),
                        r"= \mathbf{" + shown.replace(",", "{,}") + "}")


def memory_formulas(m: ModelSpec, w: Workload) -> list[ShownFormula]:
    """P, W and the KV cache per token / request / batch (the model's own: windows and latent
    attention change them; the workload's MLA cache layout)."""
    vals = _memory_values(m, w)
    kv = kv_formulas(m, w.mla)
    return [show_formula(f, vals) for f in (param_count_formula(m), weight_memory_formula(m),
                                            kv["per_token"], kv["per_request"], kv["batch"])]


def max_batch_shown(m: ModelSpec, w: Workload, hw: HardwareSpec) -> ShownFormula:
    """B_max with the hardware's memory, u = 1, R = 0 (and the workload's EP and MLA cache)."""
    check_workload_tp(m, w.tp, w.ep)
    return show_formula(max_batch_formula(m, w.mla, w.ep > 1),
                        dict(_memory_values(m, w), memory=hw.memory_bytes),
                        f" — M = {hw.name}'s memory, u = 1 usable, R = 0 reserved")


def _memory_values(m: ModelSpec, w: Workload) -> dict:
    """The numbers the memory formulas take: the model's, the workload's (its widths for the
    weights and the routed experts, as the pages' analyses use them; its TP and EP group)."""
    return dict(model_values(m), context=w.context, batch=w.batch, tp=w.tp,
                weight_bytes=w.weight_bytes, expert_weight_bytes=w.expert_bytes,
                kv_bytes=w.kv_bytes, mem_util=1, reserved=0, ep=w.ep,
                dp=w.ep // w.tp if w.ep > 1 else 1, expert_params=expert_param_count(m))


def architecture_formula_list(m: ModelSpec, w: Workload) -> list[tuple[str, list[ShownFormula]]]:
    """(title, formulas) per modern-architecture part of ``m`` (mixture of experts, latent
    attention, sliding window) from :func:`costmodel.catalog.architecture_formulas`, with the
    workload's numbers put in (a decode step of B sequences at context s)."""
    check_workload_tp(m, w.tp, w.ep)
    options = Options(mla=w.mla, expert_parallel=w.ep > 1)
    vals = _memory_values(m, w)
    out = []
    for part, found in architecture_formulas(m, options).items():
        title = PARTS[part]
        if part == "moe":
            title += (f" — B = {w.batch} sequences, TP = {w.tp}, EP = {w.ep}, b_w = "
                      f"{w.weight_bytes:.6g}, b_we = {w.expert_bytes:.6g}")
        elif part == "mla":
            title += f" — b_kv = {w.kv_bytes:g}"
        else:
            title += f" — s = {w.context}, b_kv = {w.kv_bytes:g}"
        out.append((title, [show_formula(f, vals) for f in found.values()]))
    return out


def attention_formula_list(d: int, w: Workload) -> list[ShownFormula]:
    """Attention intensity at N = s, d = d_h, B, b = b_kv: exact and the E0294 text's."""
    vals = {"n": w.context, "head_dim": d, "batch": w.batch, "bytes_per_element": w.kv_bytes}
    out = []
    for phase in ("prefill", "decode"):
        out.append(show_formula(attention_formulas(phase, attention=w.attention)["intensity"],
                                vals))
        out.append(show_formula(attention_formulas(phase, convention="e0294")["intensity"],
                                vals, " — the E0294 text's counts"))
    return out


def speculative_formulas(alpha: float, gamma: int, cost_ratio: float) -> list[ShownFormula]:
    vals = {"alpha": alpha, "gamma": gamma, "cost_ratio": round(cost_ratio, 6)}
    return [show_formula(EXPECTED_TOKENS, vals), show_formula(SPEEDUP, vals)]


__all__ = ["ShownFormula", "architecture_formula_list", "attention_formula_list", "max_batch_shown",
           "memory_formulas", "show_formula", "speculative_formulas"]
