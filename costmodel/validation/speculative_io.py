"""The speculative measurement file (``costmodel measure --speculative``) and its reader, which
checks every row before anything is computed (the columns: ``costmodel.validation.io``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from costmodel.checks import MAX_COUNT, MAX_GAMMA, check_number
from costmodel.validation.io import SPECULATIVE_REQUIRED, check_columns
from costmodel.validation.rows import CsvRow, cell_number, is_blank, read_csv_file
from costmodel.workload import DYNAMIC_KV_UPDATES


def read_speculative(path: str | Path):
    """The speculative CSV (``costmodel measure --speculative``), checked: one
    ``target_only`` row and ``speculative`` rows of distinct γ ≥ 1, every time a positive
    number of seconds, ``accepted <= at_risk`` counts, both configs as JSON. Returns
    (target-only row, speculative rows sorted by γ) as dicts."""
    p = Path(path)
    label = f"speculative measurements {p}"
    df = read_csv_file(p, "speculative measurements")
    check_columns(df, SPECULATIVE_REQUIRED, label,
                     "write it with `costmodel measure --speculative`")
    base, spec, seen = None, [], {}
    for i, values in enumerate(df.to_dict("records")):
        row = CsvRow(label, i, values)
        method = row.choice("method", ("target_only", "speculative"))
        typed: dict[str, Any] = {"method": method, "row": i + 1,
                                 "time_s": row.number("time_s"),
                                 "context_mean": row.number("context_mean"),
                                 "target_config": row.json("target_config"),
                                 "draft_config": row.json("draft_config")}
        for col in ("target_step_s", "draft_step_s", "verify_s"):
            if col in values and not is_blank(values[col]):
                typed[col] = row.number(col)
        if "cache" in values and not is_blank(values["cache"]):
            typed["cache"] = row.choice("cache", ("dynamic", "static"))
        cache = typed.get("cache", "dynamic")
        if "kv_update" in values and not is_blank(values["kv_update"]):
            typed["kv_update"] = row.choice(
                "kv_update", DYNAMIC_KV_UPDATES if cache == "dynamic" else ("inplace",))
        else:                  # files written before the column: the torch.cat cache
            typed["kv_update"] = "concat" if cache == "dynamic" else "inplace"
        if "tokens_per_iteration" in values and not is_blank(values["tokens_per_iteration"]):
            typed["tokens_per_iteration"] = row.number("tokens_per_iteration", 0, MAX_COUNT)
        if method == "target_only":
            if base is not None:
                raise row.fail("method", f"a second target_only row (the first is row "
                                         f"{base['row']})")
            typed["gamma"] = row.int("gamma", 0, 0)
            base = typed
            continue
        gamma = row.int("gamma", 1, MAX_GAMMA)
        at_risk = row.int("at_risk", 1, MAX_COUNT)
        accepted = row.int("accepted", 0, MAX_COUNT)
        if accepted > at_risk:
            raise row.fail("accepted", f"{accepted} accepted of {at_risk} drafted tokens at "
                                       "risk: an acceptance above 1")
        if "alpha_hat" in values and not is_blank(values["alpha_hat"]):
            try:
                check_number("alpha_hat", cell_number(values["alpha_hat"]), 0.0, 1.0,
                             open_lo=False)
            except ValueError as e:
                raise ValueError(f"{row.where}: {e}") from None
        if gamma in seen:
            raise row.fail("gamma", f"γ = {gamma} appears twice (first at row {seen[gamma]})")
        seen[gamma] = i + 1
        typed.update(gamma=gamma, accepted=accepted, at_risk=at_risk)
        spec.append(typed)
    if base is None or not spec:
        raise ValueError(f"{label} needs a target_only row and speculative rows")
    alpha = sum(r["accepted"] for r in spec) / sum(r["at_risk"] for r in spec)
    if alpha >= 1:
        raise ValueError(f"{label}: every drafted token was accepted (pooled α = 1); the "
                         "speculative formula needs α < 1 (measure more or longer prompts)")
    return base, sorted(spec, key=lambda r: r["gamma"])


__all__ = ["read_speculative"]
