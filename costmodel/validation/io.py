"""The measurement files: the CSV schema of ``costmodel measure`` (grid and speculative) and the
grid reader that checks every row before anything is computed (the speculative reader is in
``costmodel.validation.speculative_io``, the calibration reader in
``costmodel.validation.hardware_io``, the typed cells in ``costmodel.validation.rows``).

A measurement row is one pass of the reference model: its ModelSpec fields (the sliding-window
and mixture-of-experts fields optional: files written before they existed are dense), the
inference options it ran with, the workload (phase, cache, B, q, c, dtype and byte widths),
the engine that ran it (``eager``: the reference model; ``compiled``: the same under
``torch.compile``; ``hf``: Hugging Face's implementation of the same config), the timing, the
machine, the FLOPs FlopCounterMode counted during the measurement (where recorded), the bytes
it allocated, and its ``GPTConfig`` as JSON. A dynamic-cache row records how its cache grew
(``kv_update``: ``inplace`` for the reference's growing buffer, ``concat`` for a ``torch.cat``
cache — the reference model before it grew in place, and Hugging Face's ``DynamicCache``); a
file without the column is read as ``concat``, what the reference ran when it wrote such
files. The readers name the file,
the row (``row 1`` = the first line under the header) and the field of anything wrong: a time
that is not a positive number of seconds, a count with a fraction, a flag that is not true or
false, a token count beyond the model's context, an unknown dtype, a duplicate point, a missing
column, a file that is not UTF-8 CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import numbers
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from costmodel.checks import MAX_COUNT, check_choice, check_element_bytes
from costmodel.lazy import deferred
from costmodel.ops import ATTENTION, CAUSAL, KV_UPDATE, LM_HEAD, MOE_DISPATCH
from costmodel.specs import ACTIVATIONS, MODEL_FLAGS, NORMS, POSITIONS, ModelSpec
from costmodel.validation.rows import CsvRow, cell_number, is_blank, read_csv_file
from costmodel.workload import (
    ATTENTION_IMPLS,
    CACHES,
    DYNAMIC_KV_UPDATES,
    MEASURED_PHASES,
    reference_options,
    substitute,
)

pd = deferred("pandas")

#: Bytes per element of the dtypes the reference model is measured in.
BYTES_PER_DTYPE = {"fp32": 4, "bf16": 2, "fp16": 2}
SPEC_COLUMNS = ("n_layers", "d_model", "n_heads", "vocab_size", "max_context", "n_kv_heads",
                "head_dim", "d_ff", "gated_mlp", "activation", "norm", "qkv_bias", "out_bias",
                "mlp_bias", "lm_head_bias", "tied_embeddings", "positions")
#: ModelSpec columns of the modern architectures: optional (absent or blank: the dense default).
MODERN_SPEC_COLUMNS = ("sliding_window", "window_layers", "n_experts", "experts_per_token",
                       "d_ff_expert", "n_shared_experts", "d_ff_shared", "dense_layers",
                       "router_bias")
OPTION_COLUMNS = ("attention", "causal", "lm_head", "kv_cache")
TIME_COLUMN = "time_s"
#: The engines a measurement may come from (see the module docstring).
ENGINES = ("eager", "compiled", "hf")
#: Every column ``costmodel measure`` writes, in order.
COLUMNS = ("point_id", "model", *SPEC_COLUMNS, *MODERN_SPEC_COLUMNS, *OPTION_COLUMNS,
           "kv_update", "moe_dispatch", "engine", "phase", "cache",
           "batch", "new_tokens", "cached_tokens", "context", "static_max_len", "dtype",
           "weight_bytes", "act_bytes", "kv_bytes", "device", "device_name", "torch_version",
           "threads", "warmup", "repeats", "inner", TIME_COLUMN, "time_p10_s", "time_p90_s",
           "time_q25_s", "time_q75_s", "time_wall_s", "clock", "rounds", "flops_counted",
           "kv_cache_bytes_measured", "param_bytes_measured", "gpt_config")
#: The columns a prediction needs.
REQUIRED_COLUMNS = ("point_id", "model", *SPEC_COLUMNS, *OPTION_COLUMNS, "phase", "cache",
                    "batch", "new_tokens", "cached_tokens", "dtype", "weight_bytes", "act_bytes",
                    "kv_bytes", TIME_COLUMN)
#: The columns the exact checks (FLOPs, KV and parameter bytes) need besides.
CHECK_COLUMNS = ("static_max_len", "kv_cache_bytes_measured", "param_bytes_measured",
                 "gpt_config")
#: Columns of the speculative CSV (``costmodel measure --speculative``), in order.
SPECULATIVE_COLUMNS = ("gamma", "method", "time_s", "time_p10_s", "time_p90_s", "tokens",
                       "prompts", "iterations", "accepted", "at_risk", "alpha_hat",
                       "tokens_per_iteration", "prompt_tokens", "context_mean", "threads",
                       "clock", "cache", "kv_update", "target_step_s", "draft_step_s",
                       "verify_s",
                       "pass_context", "device", "device_name", "torch_version",
                       "target_config", "draft_config")
SPECULATIVE_REQUIRED = ("gamma", "method", "time_s", "accepted", "at_risk", "context_mean",
                        "target_config", "draft_config")
_FOREIGN_TIME = re.compile(r"(time|latency|duration|elapsed)\w*_(ms|us|µs|ns|min|h)$|"
                           r"^(ms|us|ns|milliseconds|microseconds)$", re.IGNORECASE)
#: The largest tensor (elements) a measured point may ask the reference model to build.
MAX_TENSOR_ELEMENTS = 2**53
#: Seconds columns other than the median: positive where given.
_OTHER_TIMES = ("time_p10_s", "time_p90_s", "time_q25_s", "time_q75_s", "time_wall_s")
#: Counts that describe how a point was timed (the report quotes them): integers where given.
_TIMING_COUNTS = {"threads": 1, "repeats": 1, "rounds": 1, "inner": 1, "warmup": 0}


# --------------------------------------------------------------------------- small helpers


def point_hash(text: str) -> int:
    """A stable integer hash of a string (the train/test split of the fit)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def speculative_path(measurements_csv: str | Path) -> Path:
    """Where the speculative measurements sit beside a grid CSV: ``<stem>_speculative.csv``."""
    p = Path(measurements_csv)
    return p.with_name(f"{p.stem}_speculative.csv")


def measured_workload(phase: str, context: int) -> tuple[int, int, str]:
    """(q, c, cache strategy) of a measured phase (``prefill``, ``decode_dynamic``,
    ``decode_static``, ``no_cache``) at context s: :data:`costmodel.workload.MEASURED_PHASES`
    and :func:`costmodel.workload.substitute`."""
    check_choice("phase", phase, MEASURED_PHASES)
    name, cache = MEASURED_PHASES[phase]
    q, c = substitute(name, context)
    return int(q), int(c), cache


def context_of(phase: str, new_tokens: int, cached_tokens: int) -> int:
    """The context s of a measured pass, the inverse of :func:`measured_workload`: c for the
    phases that substitute c = s (decode), else q (prefill, no cache)."""
    _, c, _ = measured_workload(phase, 2)
    return cached_tokens if c == 2 else new_tokens


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as CSV text with ``columns`` in order (how the measurement files are written)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def check_columns(df, required: Sequence[str], label: str, hint: str) -> None:
    if TIME_COLUMN not in df.columns:
        foreign = [c for c in df.columns if _FOREIGN_TIME.search(str(c))]
        if foreign:
            raise ValueError(f"{label} has {foreign[0]!r} but times must be in seconds in a "
                             f"{TIME_COLUMN!r} column (convert the units; costmodel measure "
                             "writes time_s)")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(f"{label} lacks column(s) {missing} ({hint})")


# --------------------------------------------------------------------------- grid CSV


def _check_row(row: CsvRow, checks: bool) -> dict:
    """The typed values of one measurement row (see the module docstring)."""
    out: dict[str, Any] = {"point_id": row.text("point_id"), "model": row.text("model")}
    for col in SPEC_COLUMNS:
        if col in MODEL_FLAGS:
            out[col] = row.bool(col)
        elif col == "activation":
            out[col] = row.choice(col, ACTIVATIONS)
        elif col == "norm":
            out[col] = row.choice(col, NORMS)
        elif col == "positions":
            out[col] = row.choice(col, POSITIONS)
        else:
            out[col] = row.int(col, 1, 2**31 - 1)
    for col in MODERN_SPEC_COLUMNS:
        if col not in row.values or is_blank(row.values[col]):
            continue
        out[col] = row.bool(col) if col == "router_bias" else \
            row.int(col, 1 if col.startswith("d_ff") else 0, 2**31 - 1)
    try:
        spec = spec_of(out)
    except ValueError as e:
        raise ValueError(f"{row.where}: {e}") from None
    out.update({col: getattr(spec, col) for col in MODERN_SPEC_COLUMNS})
    phase = row.choice("phase", MEASURED_PHASES)
    cache = row.choice("cache", CACHES)
    if cache != MEASURED_PHASES[phase][1]:
        raise row.fail("cache", f"phase {phase} runs the {MEASURED_PHASES[phase][1]} cache, "
                                f"got {cache!r}")
    limit = spec.max_context
    q = row.int("new_tokens", 1, limit)
    c = row.int("cached_tokens", 0, limit - 1)
    if q + c > limit:
        raise row.fail("cached_tokens", f"new_tokens + cached_tokens = {q + c} exceeds the "
                                        f"model's context max_context = {limit}")
    s = context_of(phase, q, c)
    if measured_workload(phase, s)[:2] != (q, c):
        raise row.fail("new_tokens", f"phase {phase} at context {s} has (q, c) = "
                                     f"{measured_workload(phase, s)[:2]}, got ({q}, {c})")
    if "context" in row.values and row.int("context", 1, limit) != s:
        raise row.fail("context", f"must equal the pass's context {s} (phase {phase}, "
                                  f"q = {q}, c = {c}), got {row.values['context']!r}")
    batch = row.int("batch", 1, MAX_COUNT)
    width = max(spec.vocab_size, 2 * spec.d_ff, spec.n_heads * (q + c), 3 * spec.d_model)
    if batch * (q + c) * width > MAX_TENSOR_ELEMENTS:
        raise row.fail("batch", f"{batch} sequences of {q + c} tokens make tensors of "
                                f"{batch * (q + c) * width:.3g} elements, beyond what the "
                                f"reference model can build (2**53)")
    dtype = row.choice("dtype", BYTES_PER_DTYPE)
    out.update(phase=phase, cache=cache, batch=batch, new_tokens=q, cached_tokens=c,
               context=s, dtype=dtype)
    for col in ("weight_bytes", "act_bytes", "kv_bytes"):
        try:
            out[col] = check_element_bytes(col, cell_number(row.raw(col)))
        except ValueError as e:
            raise ValueError(f"{row.where}: {e}") from None
        if out[col] != BYTES_PER_DTYPE[dtype]:
            raise row.fail(col, f"a {dtype} measurement has {BYTES_PER_DTYPE[dtype]} bytes per "
                                f"element, got {out[col]:g}")
        out[col] = int(out[col])
    out[TIME_COLUMN] = row.number(TIME_COLUMN)
    for col in _OTHER_TIMES:
        if col in row.values and not is_blank(row.values[col]):
            out[col] = row.number(col)
    for col, lo in _TIMING_COUNTS.items():
        if col in row.values and not is_blank(row.values[col]):
            out[col] = row.int(col, lo, MAX_COUNT)
    if "clock" in row.values and not is_blank(row.values["clock"]):
        out["clock"] = row.choice("clock", ("wall", "thread", "cuda"))
    config = row.json("gpt_config") if "gpt_config" in row.values \
        and not is_blank(row.values["gpt_config"]) else None
    attn_impl = _attn_impl(row, config)
    out["engine"] = row.choice("engine", ENGINES) if "engine" in row.values \
        and not is_blank(row.values["engine"]) else "eager"
    if "kv_update" in row.values and not is_blank(row.values["kv_update"]):
        kv_update = row.choice("kv_update", KV_UPDATE)
        allowed = DYNAMIC_KV_UPDATES if cache == "dynamic" else ("inplace",)
        if kv_update not in allowed:
            raise row.fail("kv_update", f"a {cache} cache is updated {' or '.join(allowed)}, "
                                        f"got {kv_update!r}")
    else:
        kv_update = "concat" if cache == "dynamic" else "inplace"
    options = reference_options(cache, attn_impl, kv_update)
    out["attn_impl"], out["kv_update"] = attn_impl, kv_update
    for col in OPTION_COLUMNS + ("moe_dispatch",):
        if col not in row.values or (col == "moe_dispatch" and is_blank(row.values[col])):
            continue
        recorded = row.bool(col) if col == "kv_cache" else row.choice(
            col, {"attention": ATTENTION, "causal": CAUSAL, "lm_head": LM_HEAD,
                  "moe_dispatch": MOE_DISPATCH}[col])
        want = options[col]
        if col == "attention" and recorded == "standard" and want == "eager":
            recorded = "eager"       # older files recorded the eager path as "standard"
        if recorded != want:
            raise row.fail(col, f"the reference model runs a {phase} pass with {col} = "
                                f"{want!r}; the row records {recorded!r}")
    if checks:
        if config is None:
            raise row.fail("gpt_config", "missing value (the exact checks rebuild the model)")
        _check_config(row, config, spec)
        static = row.int("static_max_len", 0, limit)
        if cache == "static" and static < q + c:
            raise row.fail("static_max_len", f"a static cache holding {q + c} positions needs "
                                             f"static_max_len >= {q + c}, got {static}")
        out["static_max_len"] = static
        out["kv_cache_bytes_measured"] = row.int("kv_cache_bytes_measured", 0, MAX_COUNT)
        out["param_bytes_measured"] = row.int("param_bytes_measured", 1, MAX_COUNT)
        out["flops_counted"] = row.int("flops_counted", 0, MAX_COUNT) \
            if "flops_counted" in row.values and not is_blank(row.values["flops_counted"]) \
            else -1
    return out


#: The exact checks build the reference model (on the meta device) layer by layer.
MAX_CHECKED_LAYERS = 1024


def _check_config(row: CsvRow, config: dict, spec: ModelSpec) -> None:
    """The recorded ``GPTConfig`` must build the model the spec columns describe."""
    from costmodel.reference.config import GPTConfig

    try:
        built = GPTConfig.from_dict(config).to_spec()
    except (ValueError, TypeError) as e:
        raise row.fail("gpt_config", " ".join(str(e).split())) from None
    if built.replace(name=spec.name, source=spec.source) != spec:
        diff = [f"{k} {getattr(built, k)!r} vs {getattr(spec, k)!r}" for k in SPEC_COLUMNS
                if getattr(built, k) != getattr(spec, k)]
        raise row.fail("gpt_config", f"describes another model than the row's spec columns "
                                     f"({'; '.join(diff)})")
    if spec.n_layers > MAX_CHECKED_LAYERS:
        raise row.fail("n_layers", f"the exact checks build the model layer by layer; at most "
                                   f"{MAX_CHECKED_LAYERS} layers, got {spec.n_layers}")


def _attn_impl(row: CsvRow, config: dict | None) -> str:
    """The attention path a row ran: the GPTConfig's ``attn_impl`` when recorded, else the
    ``attention`` column (``eager`` or the older ``standard`` = the eager path; ``fused`` =
    SDPA)."""
    if config is not None:
        impl = config.get("attn_impl", "sdpa")
        if impl not in ATTENTION_IMPLS:
            raise row.fail("gpt_config", f"attn_impl must be one of {', '.join(ATTENTION_IMPLS)}"
                                         f", got {impl!r}")
        return impl
    att = row.choice("attention", ("eager", "standard", "fused"))
    return "sdpa" if att == "fused" else "eager"


def spec_of(values: Mapping[str, Any]) -> ModelSpec:
    """The ModelSpec written in a measurement row (its ``model`` name and spec columns; the
    modern-architecture columns where present and not blank)."""
    modern = {c: _plain(values[c]) for c in MODERN_SPEC_COLUMNS
              if c in values and not is_blank(values[c])}
    return ModelSpec(name=str(values["model"]), **{c: values[c] for c in SPEC_COLUMNS},
                     **modern)


def _plain(value: Any) -> Any:
    """A checked cell as a Python value (numpy integers and bools as int and bool)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def read_measurements(source, checks: bool = False):
    """A measurement CSV (``costmodel measure``) as a DataFrame with every row checked; the
    errors name the file, the row and the field. ``source``: a path, or a DataFrame (rows are
    checked alike). ``checks``: also require what the exact checks need (the ``gpt_config``
    JSON, ``static_max_len`` and the measured bytes)."""
    if isinstance(source, pd.DataFrame):
        df, label = source.reset_index(drop=True), "measurements"
    else:
        label = f"measurements {Path(source)}"
        df = read_csv_file(source, "measurements")
    check_columns(df, REQUIRED_COLUMNS + (CHECK_COLUMNS if checks else ()), label,
                     "write it with `costmodel measure`")
    if df.empty:
        raise ValueError(f"{label} has no rows")
    rows, seen = [], {}
    for i, values in enumerate(df.to_dict("records")):
        pid = values.get("point_id")
        row = CsvRow(label, i, values, f"point {pid!r}" if isinstance(pid, str) else "")
        typed = _check_row(row, checks)
        if typed["point_id"] in seen:
            raise row.fail("point_id", f"point {typed['point_id']!r} appears twice (first at "
                                       f"row {seen[typed['point_id']] + 1})")
        seen[typed["point_id"]] = i
        rows.append(typed)
    out = df.copy()
    for col in rows[0]:
        out[col] = [r[col] for r in rows]
    return out


def analysis_kwargs(row: Mapping[str, Any]) -> dict:
    """``cm.analyze`` keyword arguments of a checked measurement row: its pass (B, q, c), byte
    widths and dtype, and :func:`costmodel.workload.reference_options` of its cache and
    attention path."""
    return {"batch": int(row["batch"]), "new_tokens": int(row["new_tokens"]),
            "cached_tokens": int(row["cached_tokens"]), "weight_bytes": row["weight_bytes"],
            "act_bytes": row["act_bytes"], "kv_bytes": row["kv_bytes"],
            "dtype": str(row["dtype"]),
            **reference_options(str(row["cache"]), str(row["attn_impl"]),
                                str(row["kv_update"]))}


__all__ = ["BYTES_PER_DTYPE", "CHECK_COLUMNS", "COLUMNS", "ENGINES", "MODERN_SPEC_COLUMNS",
           "OPTION_COLUMNS", "REQUIRED_COLUMNS",
           "SPECULATIVE_COLUMNS", "SPEC_COLUMNS", "TIME_COLUMN", "analysis_kwargs", "context_of",
           "csv_text", "measured_workload", "point_hash", "read_measurements", "spec_of",
           "speculative_path"]
