r"""Hold the calculator against measurements of the reference model: exact checks, latency
error tables, speculative decoding, and a report (markdown + figures).

    report = validate("data/measurements/cpu.csv", "data/hardware/cpu.json", "data/validation")
    report.errors            # DataFrame: median / p90 |relative error| by regime
    report.figures           # {"scatter": Path, "context": Path, "speculative": Path}

Checks
------
* **FLOPs (exact)** — ``torch.utils.flop_counter.FlopCounterMode`` on the reference model
  (eager attention, built on the meta device, so even GPT-2 costs nothing) for the same
  (B, q, c) and cache strategy equals Σ FLOPs of the ``matmul`` and ``attention`` operators of
  ``cm.analyze`` — per point, as integers.
* **Bytes (exact)** — the KV cache the model allocated during the measurement (sum of the
  cache tensors' bytes; dynamic: c + q positions; static: the preallocated ``max_len``) equals
  ``cm.kv_cache_bytes``; the parameter bytes equal ``cm.param_count(spec) · bytes``.
* **Latency** — per point, (a) the *ideal roofline* on the calibrated peaks (η = 1, no
  overhead), (b) the roofline plus the calibrated per-op overhead (no fit), and (c) the
  *calibrated model*

      t = Σ_op max(F / (η π), Q / (η' β)) + N_kernels · t_k

  (η = η_c, or η_c,skinny for weight matmuls of at most 8 rows; η' = η_m, or η_m,elementwise for
  the elementwise and copy passes)
  over the operators of ``cm.analyze`` with the reference model's options
  (:func:`reference_options`: ``attention="eager"``, ``kv_update="concat"`` for the dynamic
  cache, ``"inplace"`` for the static one, ``kv_cache=False`` without a cache), five global
  parameters fitted by least squares on log time over a training split (2/3 of the points by a
  stable hash of the point id) and judged on the held-out third (:func:`fit`; its
  ``Fit.hardware()`` is a HardwareSpec with the fit folded in); a leave-one-model-out table
  shows how it carries to a model it never saw. Errors are |predicted / measured − 1|, reported
  as median and 90th percentile by regime (prefill / decode / no-cache × memory- /
  compute-bound × cache strategy).
* **Speculative decoding** — from ``<measurements>_speculative.csv`` (``costmodel measure
  --speculative``): the measured per-token acceptance α and the calibrated roofline's cost of
  γ draft steps, one verification pass and the loops' own torch calls give a predicted
  improvement per γ (:func:`speculative_prediction`), held against the measured improvement
  (time of the target alone / time with speculation); the same formula with the *measured*
  pass costs separates an error of the speculative formula from an error of the predicted
  pass costs.
"""

from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

import costmodel as cm
from costmodel.errors import atomic_write_bytes
from costmodel.measure import (
    OPTION_COLUMNS,
    SPEC_COLUMNS,
    TIME_COLUMN,
    point_hash,
    spec_from_row,
    speculative_path,
)
from costmodel.roofline import roofline_time
from costmodel.specs import HardwareSpec

REQUIRED_COLUMNS = ("point_id", "model", *SPEC_COLUMNS, *OPTION_COLUMNS, "phase", "cache",
                    "batch", "new_tokens", "cached_tokens", "dtype", "weight_bytes", "act_bytes",
                    "kv_bytes", TIME_COLUMN)
CHECK_COLUMNS = ("static_max_len", "kv_cache_bytes_measured", "param_bytes_measured",
                 "gpt_config")
_FOREIGN_TIME = re.compile(r"(time|latency|duration|elapsed)\w*_(ms|us|µs|ns|min|h)$|"
                           r"^(ms|us|ns|milliseconds|microseconds)$", re.IGNORECASE)
TARGETS = {"median": 0.10, "p90": 0.25, "speculative": 0.15}
TEST_FRACTION_MOD = 3      # a point is held out when hash(point_id) % 3 == 0


# --------------------------------------------------------------------------- inputs


def load_measurements(path: str | Path) -> pd.DataFrame:
    """Read a measurement CSV; ValueError naming what is missing or in foreign units."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"measurements: {p} does not exist")
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise ValueError(f"measurements: {p} is not a readable CSV ({e})") from None
    if TIME_COLUMN not in df.columns:
        foreign = [c for c in df.columns if _FOREIGN_TIME.search(str(c))]
        if foreign:
            raise ValueError(f"measurements: {p} has {foreign[0]!r} but times must be in "
                             f"seconds in a {TIME_COLUMN!r} column (convert the units; "
                             "costmodel measure writes time_s)")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"measurements: {p} lacks column(s) {missing} (write it with "
                         "`costmodel measure`)")
    if df.empty:
        raise ValueError(f"measurements: {p} has no rows")
    t = pd.to_numeric(df[TIME_COLUMN], errors="coerce")
    if t.isna().any() or not np.isfinite(t).all() or (t <= 0).any():
        raise ValueError(f"measurements: {TIME_COLUMN} must be a positive number of seconds "
                         "in every row")
    df[TIME_COLUMN] = t.astype(float)
    if df["point_id"].duplicated().any():
        dup = df.loc[df["point_id"].duplicated(), "point_id"].iloc[0]
        raise ValueError(f"measurements: point {dup!r} appears twice")
    return df


def load_hardware(path: str | Path, dtypes) -> HardwareSpec:
    """Read a calibration file and check it covers every dtype of the measurements."""
    return _check_dtypes(HardwareSpec.load(path), dtypes, Path(path).name)


def _check_dtypes(hw: HardwareSpec, dtypes, label: str) -> HardwareSpec:
    measured = sorted(set(dtypes))
    listed = list(hw.extra.get("dtypes", hw.peak_flops)) if hw.extra else list(hw.peak_flops)
    calibrated = [d for d in listed if d in hw.peak_flops] or list(hw.peak_flops)
    for d in measured:
        if d not in hw.peak_flops or d not in calibrated:
            raise ValueError(f"hardware: {label} was calibrated for "
                             f"{', '.join(calibrated)} but the measurements are {d}; calibrate "
                             f"with `costmodel calibrate --dtype {d}`")
    return hw


# --------------------------------------------------------------------------- exact checks


def _config_of(row):
    from costmodel.measure import gpt_config
    from costmodel.reference.gpt import GPTConfig

    raw = row.get("gpt_config") if hasattr(row, "get") else None
    if isinstance(raw, str) and raw.strip():
        return GPTConfig.from_dict(json.loads(raw))
    return gpt_config(str(row["model"]))


def counted_flops(config, phase: str, batch: int, new_tokens: int, cached_tokens: int,
                  static_max_len: int = 0, _cache: dict | None = None) -> int:
    """FLOPs FlopCounterMode counts for one forward pass of the reference model (meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from costmodel.reference.gpt import GPT

    key = json.dumps(config.to_dict(), sort_keys=True)
    store = _cache if _cache is not None else {}
    if key not in store:
        with torch.device("meta"):
            store[key] = GPT(config).eval()
    model = store[key]
    B, q, c = int(batch), int(new_tokens), int(cached_tokens)
    idx = torch.zeros(B, q, dtype=torch.long, device="meta")
    with torch.inference_mode():
        if phase == "prefill":
            def run():
                return model(idx, kv_cache=model.empty_kv_cache())
        elif phase == "decode_dynamic":
            ctx = torch.zeros(B, c, dtype=torch.long, device="meta")
            _, _, cache = model(ctx, kv_cache=model.empty_kv_cache())

            def run():
                return model(idx, kv_cache=cache)
        elif phase == "decode_static":
            model.setup_static_cache(B, static_max_len or (c + q))
            ctx = torch.zeros(B, c, dtype=torch.long, device="meta")
            if c:
                model(ctx, input_pos=0)

            def run():
                return model(idx, input_pos=c)
        elif phase == "no_cache":
            def run():
                return model(idx)
        else:
            raise ValueError(f"phase: unknown {phase!r}")
        try:
            with FlopCounterMode(display=False) as counter:
                run()
        finally:
            model.clear_static_cache()
    return int(counter.get_total_flops())


def _attention_of(row) -> str:
    """The ``cm.analyze`` attention option of a measured row: the reference model's eager path is
    ``"eager"`` (older CSVs recorded it as ``"standard"``), its SDPA path ``"fused"``."""
    raw = row.get("gpt_config") if hasattr(row, "get") else None
    if isinstance(raw, str) and raw.strip():
        impl = json.loads(raw).get("attn_impl")
        if impl in ("eager", "sdpa"):
            return "eager" if impl == "eager" else "fused"
    att = str(row["attention"])
    return "eager" if att == "standard" else att


def reference_options(cache: str, attn_impl: str = "eager") -> dict:
    """``cm.analyze`` options that describe a pass of the reference model
    (``costmodel.reference.gpt``): ``cache`` "dynamic" (``torch.cat`` growth:
    ``kv_update="concat"``), "static" (written in place) or "none" (``kv_cache=False``), and its
    attention path ("eager": explicit matmuls, ``attention="eager"``; "sdpa": ``"fused"``).

        cm.analyze(spec, fit.hardware(), batch=1, new_tokens=1, cached_tokens=128,
                   **reference_options("dynamic"), weight_bytes=4, kv_bytes=4)
    """
    if cache not in ("dynamic", "static", "none"):
        raise ValueError(f"cache: must be dynamic, static or none, got {cache!r}")
    if attn_impl not in ("eager", "sdpa"):
        raise ValueError(f"attn_impl: must be eager or sdpa, got {attn_impl!r}")
    return {"attention": "eager" if attn_impl == "eager" else "fused",
            "kv_update": "concat" if cache == "dynamic" else "inplace",
            "kv_cache": cache != "none"}


def _workload(row) -> dict:
    cache = str(row["cache"])
    return {"batch": int(row["batch"]), "new_tokens": int(row["new_tokens"]),
            "cached_tokens": int(row["cached_tokens"]), "weight_bytes": int(row["weight_bytes"]),
            "act_bytes": int(row["act_bytes"]), "kv_bytes": int(row["kv_bytes"]),
            "dtype": str(row["dtype"]), "attention": _attention_of(row),
            "causal": str(row["causal"]), "lm_head": str(row["lm_head"]),
            "kv_cache": cache != "none",
            "kv_update": "concat" if cache == "dynamic" else "inplace"}


def check_flops(df: pd.DataFrame, hw: HardwareSpec) -> pd.DataFrame:
    """Per point: FlopCounterMode FLOPs vs the analytical matmul + attention FLOPs."""
    models: dict = {}
    rows = []
    for _, row in df.iterrows():
        spec = spec_from_row(row)
        wl = _workload(row)
        a = cm.analyze(spec, hw, **wl)
        analytic = int(round(a.ops.loc[a.ops["kind"].isin(("matmul", "attention")),
                                       "flops"].sum()))
        counted = counted_flops(_config_of(row), str(row["phase"]), wl["batch"],
                                wl["new_tokens"], wl["cached_tokens"],
                                int(row.get("static_max_len", 0) or 0), models)
        rows.append({"point_id": row["point_id"], "counted_flops": counted,
                     "analytic_flops": analytic, "difference": counted - analytic,
                     "exact": counted == analytic})
    return pd.DataFrame(rows)


def check_bytes(df: pd.DataFrame) -> pd.DataFrame:
    """Per point: the KV cache and parameter bytes the model allocated vs the formulas."""
    rows = []
    for _, row in df.iterrows():
        spec = spec_from_row(row)
        B, q, c = int(row["batch"]), int(row["new_tokens"]), int(row["cached_tokens"])
        kvb, wb = row["kv_bytes"], row["weight_bytes"]
        cache = str(row["cache"])
        if cache == "static":
            kv_formula = cm.kv_cache_bytes(spec, context=int(row["static_max_len"]), batch=B,
                                           kv_bytes=kvb)
        elif cache == "dynamic":
            kv_formula = cm.kv_cache_bytes(spec, context=c + q, batch=B, kv_bytes=kvb)
        else:
            kv_formula = 0
        param_formula = cm.param_count(spec) * wb
        kv_meas = int(row["kv_cache_bytes_measured"])
        p_meas = int(row["param_bytes_measured"])
        rows.append({"point_id": row["point_id"], "cache": cache,
                     "kv_bytes_measured": kv_meas, "kv_bytes_formula": int(kv_formula),
                     "kv_exact": kv_meas == kv_formula, "param_bytes_measured": p_meas,
                     "param_bytes_formula": int(param_formula),
                     "param_exact": p_meas == param_formula})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- latency model


#: A weight matmul with at most this many rows (M of M×K·K×N) is *skinny*: decode GEMMs, the
#: LM head on the last positions, verification of up to 7 drafts. One CPU core runs them far
#: below the square-GEMM peak, so they get their own compute efficiency η_c,skinny. The grid's
#: skinny passes have 1–4 rows and its wide ones ≥ 32; the calibration measures 16-row GEMMs
#: at ~0.3 of the peak, about 3× the fitted skinny rate, so the skinny regime ends below 16:
#: 8 is the log-midpoint of 4 and 16.
SKINNY_ROWS = 8
#: Optionally only matmuls whose weights exceed this many bytes per occurrence (e.g. an L2
#: cache) are skinny; 0 = every weight matmul (a 1 MiB threshold fitted the CPU grid worse).
SKINNY_MIN_WEIGHT_BYTES = 0


def skinny_ops(a, rows: int = SKINNY_ROWS,
               min_weight_bytes: float = SKINNY_MIN_WEIGHT_BYTES) -> np.ndarray:
    """True for the weight matmuls of an Analysis with at most ``rows`` rows
    (:func:`matmul_rows`) and more than ``min_weight_bytes`` of weights per occurrence."""
    o = a.ops
    weights = (o["weight_read"] / o["count"]).to_numpy()
    return ((o["kind"] == "matmul").to_numpy() & (matmul_rows(a) <= rows)
            & (weights > min_weight_bytes))


def matmul_rows(a) -> np.ndarray:
    """Rows M of each operator of an Analysis (``a.ops`` order): B·q for the projections and
    MLP, the LM head's output positions, q for the per-(sequence, head) attention matmuls;
    a huge number for the other operators (their compute time never matters)."""
    o = a.ops
    B, q = int(a.workload["batch"]), int(a.workload["new_tokens"])
    head = B if a.options.lm_head == "last" else B * q
    return np.where(o["kind"] == "matmul", np.where(o["op"] == "lm_head", head, B * q),
                    np.where(o["kind"] == "attention", q, np.iinfo(np.int64).max))


def streaming_ops(a) -> np.ndarray:
    """True for the operators of an Analysis that are not matmuls or attention matmuls: the
    elementwise and copy passes (norms, activations, residuals, softmax, scale, mask, K/V
    copies and cache writes), priced with η_m,elementwise."""
    return ~a.ops["kind"].isin(("matmul", "attention")).to_numpy()


def fitted_time(a, hw: HardwareSpec | None = None) -> float:
    """Seconds of an Analysis on a fitted machine (``Fit.hardware()``): Σ_op max(compute,
    memory) + comm + overhead, with the compute time of skinny matmuls (:func:`matmul_rows` ≤
    ``skinny_rows``) scaled by η_c / η_c,skinny and the memory time of the elementwise and copy
    passes (:func:`streaming_ops`) by η_m / η_m,elementwise, the η from ``hw.extra``. Equals
    ``a.time`` on a machine without them."""
    hw = hw or a.hardware
    ex = hw.extra or {}
    o = a.ops
    compute = o["compute_time"].to_numpy()
    memory = o["memory_time"].to_numpy()
    if "eta_c_skinny" in ex and "eta_c" in ex:
        skinny = skinny_ops(a, int(ex.get("skinny_rows", SKINNY_ROWS)),
                            float(ex.get("skinny_min_weight_bytes", SKINNY_MIN_WEIGHT_BYTES)))
        compute = compute * np.where(skinny, float(ex["eta_c"]) / float(ex["eta_c_skinny"]),
                                     1.0)
    if "eta_m_elementwise" in ex and "eta_m" in ex:
        memory = memory * np.where(streaming_ops(a),
                                   float(ex["eta_m"]) / float(ex["eta_m_elementwise"]), 1.0)
    if "eta_c" not in ex:
        return a.time
    return float(roofline_time(compute, memory, o["comm_time"].to_numpy(),
                               o["overhead_time"].to_numpy()).sum())


def predict(spec, hw, batch: int = 1, new_tokens: int = 1, cached_tokens: int = 0,
            cache: str = "dynamic", attn_impl: str = "eager", **kw) -> float:
    """Calibrated seconds of one pass of the reference model on a fitted machine
    (``Fit.hardware()`` or ``data/hardware/cpu-fitted.json``): ``cm.analyze`` with
    :func:`reference_options` priced by :func:`fitted_time`. ``kw`` goes to ``cm.analyze``
    (byte widths, dtype, lm_head, ...)."""
    a = cm.analyze(spec, hw, batch=batch, new_tokens=new_tokens, cached_tokens=cached_tokens,
                   **{**reference_options(cache, attn_impl), **kw})
    return fitted_time(a)


@dataclass
class Terms:
    """Per point: per-operator ideal compute and memory times (η = 1) of ``cm.analyze`` with the
    reference model's options, which operators are skinny matmuls, the number of modelled
    kernels, and the ideal bound."""

    C: np.ndarray
    M: np.ndarray
    S: np.ndarray
    E: np.ndarray
    K: np.ndarray
    bounds: list

    def take(self, mask: np.ndarray) -> Terms:
        return Terms(self.C[mask], self.M[mask], self.S[mask], self.E[mask], self.K[mask],
                     [b for b, m in zip(self.bounds, mask, strict=True) if m])


def _terms(df: pd.DataFrame, hw: HardwareSpec, **override) -> Terms:
    compute, memory, skinny, stream, kernels, bounds = [], [], [], [], [], []
    for _, row in df.iterrows():
        a = cm.analyze(spec_from_row(row), hw, kernel_overhead=1.0,
                       **{**_workload(row), **override})
        compute.append(a.ops["compute_time"].to_numpy())
        memory.append(a.ops["memory_time"].to_numpy())
        skinny.append(skinny_ops(a))
        stream.append(streaming_ops(a))
        kernels.append(float(a.ops["overhead_time"].sum()))   # = Σ kernels · count
        bounds.append(a.bound)
    width = max(len(x) for x in compute)
    C = np.zeros((len(compute), width))
    M = np.zeros_like(C)
    S = np.zeros(C.shape, bool)
    E = np.zeros(C.shape, bool)
    for i, (cc, mm, ss, ee) in enumerate(zip(compute, memory, skinny, stream, strict=True)):
        C[i, :len(cc)] = cc
        M[i, :len(mm)] = mm
        S[i, :len(ss)] = ss
        E[i, :len(ee)] = ee
    return Terms(C, M, S, E, np.asarray(kernels), bounds)


class Params(NamedTuple):
    """The fitted parameters (and the rms log error of the fit)."""

    eta_c: float
    eta_c_skinny: float
    eta_m: float
    eta_m_elementwise: float
    kernel_overhead: float
    rms_log_error: float = float("nan")


IDEAL = Params(1.0, 1.0, 1.0, 1.0, 0.0)


def _predict(T: Terms, p: Params) -> np.ndarray:
    ec = np.where(T.S, p.eta_c_skinny, p.eta_c)
    em = np.where(T.E, p.eta_m_elementwise, p.eta_m)
    return roofline_time(T.C / ec, T.M / em).sum(axis=1) + T.K * p.kernel_overhead


def _least_squares(C: np.ndarray, M: np.ndarray, K: np.ndarray, t: np.ndarray,
                   S: np.ndarray | None = None, E: np.ndarray | None = None) -> Params:
    """Least squares on log time over η_c, η_c,skinny, η_m, η_m,elementwise ∈ (0, 1] and
    t_k ≥ 0: a coarse log grid (the two η_m tied), then finer grids around the best point
    (numpy only). ``S`` marks skinny matmuls, ``E`` elementwise / copy passes (default none:
    their η equals the other). An η no training point depends on is returned equal to its
    partner."""
    S = np.zeros(C.shape, bool) if S is None else np.asarray(S, bool)
    E = np.zeros(C.shape, bool) if E is None else np.asarray(E, bool)
    logt = np.log(t)
    has_wide, has_skinny = bool((C * ~S).any()), bool((C * S).any())
    has_mm, has_elem = bool((M * ~E).any()), bool((M * E).any())
    CW, CS = np.where(S, 0.0, C), np.where(S, C, 0.0)
    MM, ME = np.where(E, 0.0, M), np.where(E, M, 0.0)

    def search(ec_grid, es_grid, em_grid, ee_grid, tk_grid):
        best = (np.inf, 1.0, 1.0, 1.0, 1.0, 0.0)
        comp = (CW[None, None] / ec_grid[:, None, None, None]
                + CS[None, None] / es_grid[None, :, None, None])           # (ec, es, n, ops)
        for em in em_grid:
            for ee in (ee_grid if ee_grid is not None else [em]):
                mem = MM / em + ME / ee
                roof = roofline_time(comp, mem[None, None]).sum(-1)           # (ec, es, n)
                pred = roof[..., None] + K[None, None, :, None] * tk_grid  # (ec, es, n, tk)
                e = ((np.log(pred) - logt[None, None, :, None]) ** 2).sum(axis=2)
                i, j, k = np.unravel_index(int(np.argmin(e)), e.shape)
                if e[i, j, k] < best[0]:
                    best = (float(e[i, j, k]), float(ec_grid[i]), float(es_grid[j]), float(em),
                            float(ee), float(tk_grid[k]))
        return best

    one = np.ones(1)
    coarse = np.logspace(-2.5, 0, 26)
    best = search(coarse if has_wide else one, coarse if has_skinny else one, coarse, None,
                  np.concatenate([[0.0], np.logspace(-8, -2, 61)]))
    for width in (0.3, 0.1, 0.03):
        _, ec, es, em, ee, tk = best
        local = np.logspace(-width, width, 9)

        def around(x, on=True, local=local):
            return np.unique(np.clip(x * local, 1e-4, 1.0)) if on else one

        best = search(around(ec, has_wide), around(es, has_skinny),
                      around(em, has_mm or has_elem),
                      around(ee, has_elem) if has_elem and has_mm else None,
                      np.concatenate([[0.0], (tk if tk > 0 else 1e-8)
                                      * np.logspace(-width, width, 15)]))
    err, ec, es, em, ee, tk = best
    if not has_wide:
        ec = es
    if not has_skinny:
        es = ec
    if not has_elem:
        ee = em
    if not has_mm:
        em = ee
    return Params(ec, es, em, ee, tk, math.sqrt(err / len(t)))


@dataclass(frozen=True)
class Fit:
    """The calibrated latency model of :func:`fit`:

        t = Σ_op max(F / (η π), Q / (η' β)) + N_kernels · t_k

    over the operators of ``cm.analyze`` with the reference model's options
    (:func:`reference_options`); η = η_c,skinny for matmuls of at most ``SKINNY_ROWS`` rows,
    else η_c; η' = η_m,elementwise for the elementwise and copy passes
    (:func:`streaming_ops`), else η_m. Five global parameters fitted by least squares on log
    time over the training split. :meth:`hardware` folds them into a HardwareSpec: plain
    ``cm.analyze`` on it prices every operator with η_c and η_m; :func:`predict` /
    :func:`fitted_time` on it apply the two splits.
    """

    eta_c: float
    eta_c_skinny: float
    eta_m: float
    eta_m_elementwise: float
    kernel_overhead: float
    n_train: int
    rms_log_error: float
    calibration: HardwareSpec | None = None
    split: pd.Series | None = field(default=None, compare=False, repr=False)  # point_id → split
    errors: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    points: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    skinny_rows: int = SKINNY_ROWS
    skinny_min_weight_bytes: int = SKINNY_MIN_WEIGHT_BYTES

    def to_dict(self) -> dict:
        return {"eta_c": self.eta_c, "eta_c_skinny": self.eta_c_skinny, "eta_m": self.eta_m,
                "eta_m_elementwise": self.eta_m_elementwise,
                "kernel_overhead_s": self.kernel_overhead, "skinny_rows": self.skinny_rows,
                "skinny_min_weight_bytes": self.skinny_min_weight_bytes,
                "n_train": self.n_train, "rms_log_error": self.rms_log_error}

    def hardware(self, name: str | None = None) -> HardwareSpec:
        """The calibrated HardwareSpec with the fit folded in: peak FLOP/s × η_c, bandwidth ×
        η_m (so max(F / π', Q / β') is the fitted roofline with η = 1), ``kernel_overhead``
        = t_k, and in ``extra`` η_c, η_c,skinny, η_m, η_m,elementwise, ``skinny_rows`` and the
        calibrated peaks,
        bandwidth and op-call cost. Save it with ``.save("data/hardware/cpu-fitted.json")``."""
        hw = self.calibration
        if hw is None:
            raise ValueError("fit: no calibration attached (use costmodel.validate.fit)")
        extra = {k: v for k, v in (hw.extra or {}).items()
                 if k in ("device", "device_name", "cpu_model", "cores", "threads", "clock",
                          "torch_version", "dtypes", "date")}
        extra.update({"eta_c": self.eta_c, "eta_c_skinny": self.eta_c_skinny,
                      "eta_m": self.eta_m, "eta_m_elementwise": self.eta_m_elementwise,
                      "skinny_rows": self.skinny_rows,
                      "skinny_min_weight_bytes": self.skinny_min_weight_bytes,
                      "calibrated_peak_flops": dict(hw.peak_flops),
                      "calibrated_bandwidth": hw.bandwidth,
                      "calibrated_kernel_overhead": hw.kernel_overhead,
                      "fit": self.to_dict()})
        return hw.replace(
            name=name or f"{hw.name}-fitted",
            peak_flops={d: self.eta_c * v for d, v in hw.peak_flops.items()},
            bandwidth=self.eta_m * hw.bandwidth, kernel_overhead=self.kernel_overhead,
            source=f"costmodel.validate.fit of {hw.name} (η_c, η_c,skinny, η_m, t_k fitted on "
                   f"{self.n_train} measured passes of the reference model)",
            notes="peaks = η_c · calibrated peak, bandwidth = η_m · calibrated bandwidth, "
                  "kernel_overhead = fitted t_k per modelled kernel; matmuls of at most "
                  "skinny_rows rows run at eta_c_skinny, elementwise and copy passes at "
                  "eta_m_elementwise (costmodel.validate.predict / fitted_time apply them; "
                  "plain cm.analyze does not)",
            extra=extra)


def _split(point_ids) -> np.ndarray:
    """True where a point is held out (a stable hash of its id: a third of the points)."""
    return np.array([point_hash(str(p)) % TEST_FRACTION_MOD == 0 for p in point_ids])


def _load_any(measurements) -> pd.DataFrame:
    if isinstance(measurements, pd.DataFrame):
        df = measurements.copy()
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"measurements: lacks column(s) {missing} (write it with "
                             "`costmodel measure`)")
        if df.empty:
            raise ValueError("measurements: no rows")
        return df.reset_index(drop=True)
    return load_measurements(measurements).reset_index(drop=True)


def fit(measurements, hw, *, holdout: bool = True, split: bool = True,
        _terms_cache: Terms | None = None) -> Fit:
    """Fit η_c, η_c,skinny, η_m, η_m,elementwise and t_k to measured passes of the reference
    model.

    ``measurements``: a CSV written by ``costmodel measure`` (path) or its DataFrame; ``hw``:
    the calibration (path to ``costmodel calibrate``'s JSON or a HardwareSpec). With
    ``holdout`` a third of the points (stable hash of the point id) is held out; the returned
    Fit carries the ``split``, per-point predictions (``points``) and the median / p90
    |relative error| of the held-out points (``errors``: calibrated and ideal roofline).
    ``split=False`` fits one η_c and one η_m for every operator.
    """
    df = _load_any(measurements)
    if isinstance(hw, HardwareSpec):
        hw_spec = _check_dtypes(hw, df["dtype"].astype(str), hw.name)
    else:
        hw_spec = load_hardware(hw, df["dtype"].astype(str))
    T = _terms_cache if _terms_cache is not None else _terms(df, hw_spec)
    t = df[TIME_COLUMN].to_numpy(float)
    test = _split(df["point_id"]) if holdout else np.zeros(len(df), bool)
    if test.all() or (~test).sum() < 3:
        test = np.zeros(len(df), bool)
    train = ~test
    prm = _least_squares(T.C[train], T.M[train], T.K[train], t[train],
                         T.S[train] if split else None, T.E[train] if split else None)
    ideal = _predict(T, IDEAL)
    cal = _predict(T, prm)
    split_ = np.where(test, "test", "train")
    points = pd.DataFrame({"point_id": df["point_id"].to_numpy(), "split": split_,
                           TIME_COLUMN: t, "pred_ideal_s": ideal, "pred_calibrated_s": cal,
                           "err_ideal": ideal / t - 1, "err_calibrated": cal / t - 1})
    judged = points[points["split"] == "test"] if test.any() else points
    errors = pd.DataFrame({"n": [len(judged)] * 2,
                           "median": [judged["err_calibrated"].abs().median(),
                                      judged["err_ideal"].abs().median()],
                           "p90": [judged["err_calibrated"].abs().quantile(0.9),
                                   judged["err_ideal"].abs().quantile(0.9)]},
                          index=pd.Index(["calibrated", "ideal"], name="model"))
    return Fit(prm.eta_c, prm.eta_c_skinny, prm.eta_m, prm.eta_m_elementwise,
               prm.kernel_overhead, int(train.sum()), prm.rms_log_error, hw_spec,
               pd.Series(split_, index=df["point_id"].to_numpy(), name="split"), errors, points)


def _phase_group(phase: str) -> str:
    return "decode" if phase.startswith("decode") else phase


def error_table(points: pd.DataFrame, columns: dict[str, str], by: list[str]) -> pd.DataFrame:
    """Median and 90th-percentile |relative error| per group (and an 'all' row)."""
    out = []
    groups = list(points.groupby(by, sort=True)) + [(("all",) * len(by), points)]
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        rec = dict(zip(by, key, strict=True))
        rec["n"] = len(g)
        for label, col in columns.items():
            e = g[col].abs()
            rec[f"{label}_median"] = float(e.median())
            rec[f"{label}_p90"] = float(e.quantile(0.9))
        out.append(rec)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- speculative


def _spec_from_json(text: str):
    from costmodel.measure import spec_for
    from costmodel.reference.gpt import GPTConfig

    config = GPTConfig.from_dict(json.loads(text))
    return config, spec_for(config)


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
                           **kw) -> dict:
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
    r = cm.speculative.speedup_roofline(
        tspec, dspec, hw, alpha, gamma, context, 1, time_of=fitted_time, draft_lm_head="all",
        verify_lm_head="all",
        overheads={"token": GENERATE_STEP_CALLS * t_k, "draft": DRAFT_STEP_CALLS * t_k,
                   "verify": VERIFY_CALLS * t_k,
                   "rejection": 2 * (tspec.n_layers + dspec.n_layers) * t_k},
        **{**reference_options(cache, attn_impl), **kw})
    return {"t_token_s": r["target_step_s"], "t_drafts_s": r["drafts_s"],
            "t_verify_s": r["verify_s"], "expected_tokens": r["expected_tokens"],
            "improvement": r["speedup"], "verify_over_step": r["verify_over_step"],
            "cost_ratio": (r["drafts_s"] / gamma) / r["target_step_s"]}


def speculative_table(path: Path, fit_: Fit, dtype: str) -> pd.DataFrame:
    """Measured vs predicted improvement per γ (predicted: measured α, fitted roofline)."""
    sp = pd.read_csv(path)
    need = {"gamma", "method", "time_s", "accepted", "at_risk", "context_mean",
            "target_config", "draft_config"}
    missing = sorted(need - set(sp.columns))
    if missing:
        raise ValueError(f"speculative measurements: {path} lacks column(s) {missing}")
    base = sp[sp["method"] == "target_only"]
    spec_rows = sp[sp["method"] == "speculative"].sort_values("gamma")
    if base.empty or spec_rows.empty:
        raise ValueError(f"speculative measurements: {path} needs a target_only row and "
                         "speculative rows")
    hw = fit_.hardware()
    t_base = float(base["time_s"].iloc[0])
    alpha = float(spec_rows["accepted"].sum() / spec_rows["at_risk"].sum())
    alpha = min(max(alpha, 0.0), 0.999)
    tcfg, tspec = _spec_from_json(base["target_config"].iloc[0])
    _, dspec = _spec_from_json(base["draft_config"].iloc[0])
    nb = 4 if dtype == "fp32" else 2
    cache = str(base["cache"].iloc[0]) if "cache" in base.columns else "dynamic"
    kw = dict(weight_bytes=nb, kv_bytes=nb, act_bytes=nb, dtype=dtype)
    ctx = int(round(float(base["context_mean"].iloc[0])))
    rows = []
    for _, r in spec_rows.iterrows():
        g = int(r["gamma"])
        p = speculative_prediction(tspec, dspec, hw, alpha, g, ctx, cache, tcfg.attn_impl, **kw)
        plain = cm.speculative.speedup_roofline(
            tspec, dspec, hw, alpha, g, context=ctx,
            **{k: v for k, v in reference_options(cache, tcfg.attn_impl).items()
               if k != "kv_cache"}, **kw)
        alpha_g = float(r["accepted"]) / max(float(r["at_risk"]), 1.0)
        measured = t_base / float(r["time_s"])
        costs = {}
        if {"target_step_s", "draft_step_s", "verify_s"} <= set(r.index):
            tt, td, tv = (float(r[k]) for k in ("target_step_s", "draft_step_s", "verify_s"))
            costs = {"cost_ratio_meas": td / tt, "verify_over_step_meas": tv / tt,
                     "improvement_from_measured_costs": p["expected_tokens"] * tt
                     / (g * td + tv)}
        rows.append({"gamma": g, "alpha_pooled": alpha, "alpha_gamma": alpha_g,
                     "expected_tokens": p["expected_tokens"],
                     "measured_tokens_per_iteration": float(r.get("tokens_per_iteration",
                                                                  np.nan)),
                     "cost_ratio_pred": p["cost_ratio"],
                     "verify_over_step_pred": p["verify_over_step"],
                     "improvement_pred": p["improvement"],
                     "improvement_pred_passes_only": float(plain["speedup"]),
                     "improvement_pred_simple": float(cm.speculative.speedup(
                         alpha, g, p["cost_ratio"])),
                     **costs, "improvement_measured": measured,
                     "rel_error": p["improvement"] / measured - 1})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- report


@dataclass
class Report:
    """What :func:`validate` found; DataFrames for the app, paths of the written files."""

    out_dir: Path
    markdown: Path
    figures: dict[str, Path]
    points: pd.DataFrame          # one row per point: measured, predictions, errors, split
    flops: pd.DataFrame           # FlopCounterMode vs analytic, per point
    bytes: pd.DataFrame           # KV and parameter bytes, per point
    errors: pd.DataFrame          # |rel error| by regime (held-out points)
    errors_all: pd.DataFrame      # same over every point
    leave_one_model_out: pd.DataFrame
    fit: Fit
    speculative: pd.DataFrame | None
    summary: dict = field(default_factory=dict)

    @property
    def exact_checks_pass(self) -> bool:
        return bool(self.flops["exact"].all() and self.bytes["kv_exact"].all()
                    and self.bytes["param_exact"].all())


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


PHASE_COLORS = {"prefill": "tab:blue", "decode_dynamic": "tab:orange",
                "decode_static": "tab:green", "no_cache": "tab:red"}


def _fig_scatter(points: pd.DataFrame) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5), sharex=True, sharey=True)
    lo = min(points["time_s"].min(), points["pred_ideal_s"].min()) / 1.5
    hi = max(points["time_s"].max(), points["pred_calibrated_s"].max()) * 1.5
    for ax, col, title in ((axes[0], "pred_ideal_s", "ideal roofline (η = 1, no overhead)"),
                           (axes[1], "pred_calibrated_s", "calibrated (η_c, η_m, t_k)")):
        for phase, g in points.groupby("phase"):
            test = g[g["split"] == "test"]
            train = g[g["split"] != "test"]
            ax.scatter(train["time_s"], train[col], s=18, facecolors="none",
                       edgecolors=PHASE_COLORS.get(phase, "k"), label=f"{phase} (train)")
            ax.scatter(test["time_s"], test[col], s=22, c=PHASE_COLORS.get(phase, "k"),
                       label=f"{phase} (held out)")
        ax.plot([lo, hi], [lo, hi], "k-", lw=1, label="y = x")
        ax.fill_between([lo, hi], [lo / 1.25, hi / 1.25], [lo * 1.25, hi * 1.25],
                        color="grey", alpha=0.15, label="±25 %")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured seconds per pass")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("predicted seconds per pass")
    axes[1].legend(fontsize=7, loc="upper left")
    fig.suptitle("Reference model on this machine: predicted vs measured (log–log)")
    return _png(fig)


def _fig_context(points: pd.DataFrame, hw: HardwareSpec) -> bytes:
    """Measured vs predicted (``hw``: the fitted HardwareSpec) over the context."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in ("gpt-mini", "gpt2", "llama-gqa", "gpt-micro", "gpt-nano")
              if m in set(points["model"])]
    models = models[:2] or list(points["model"].unique())[:2]
    batch = int(points["batch"].min())
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=False):
        sub = points[(points["model"] == model) & (points["batch"] == batch)]
        if sub.empty:
            continue
        row0 = sub.iloc[0]
        spec = spec_from_row(row0)
        cmax = int(sub["context"].max())
        grid = np.unique(np.geomspace(max(1, int(sub["context"].min() / 1.3)), cmax * 1.5,
                                      40).astype(int))
        for phase in ("decode_static", "decode_dynamic", "no_cache"):
            g = sub[sub["phase"] == phase].sort_values("context")
            if g.empty:
                continue
            color = PHASE_COLORS[phase]
            ax.plot(g["context"], g["time_s"], "o", color=color, label=f"{phase} measured")
            pred = []
            for s in grid:
                gw = _workload(g.iloc[0])
                kw = {**gw, "new_tokens": 1 if phase != "no_cache" else int(s),
                      "cached_tokens": int(s) if phase != "no_cache" else 0}
                pred.append(fitted_time(cm.analyze(spec, hw, **kw)))
            ax.plot(grid, pred, "-", color=color, alpha=0.8, label=f"{phase} predicted")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("context s (tokens)")
        ax.set_ylabel("seconds per generated token (one step)")
        ax.set_title(f"{model}, batch {batch}: KV cache vs no cache")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _png(fig)


def _fig_speculative(spec: pd.DataFrame) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(spec["gamma"], spec["improvement_measured"], "o-", label="measured")
    ax.plot(spec["gamma"], spec["improvement_pred"], "s--",
            label="predicted (measured α, calibrated roofline)")
    ax.plot(spec["gamma"], spec["improvement_pred_simple"], ":", color="grey",
            label="predicted, verify priced as one step")
    if "improvement_from_measured_costs" in spec:
        ax.plot(spec["gamma"], spec["improvement_from_measured_costs"], "^-.", color="tab:green",
                label="formula with measured α and measured pass costs")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("γ (drafted tokens per iteration)")
    ax.set_ylabel("walltime improvement over the target alone")
    ax.set_title(f"Speculative decoding, α = {spec['alpha_pooled'].iloc[0]:.3f}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def _fmt_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    from tabulate import tabulate

    df = df.copy()
    for col in df.columns:
        if pd.api.types.is_integer_dtype(df[col]):
            df[col] = df[col].astype(str)          # counts stay integers
    return tabulate(df, headers="keys", tablefmt="github", showindex=False, floatfmt=floatfmt)


def _pct(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def validate(measurements_csv: str | Path, hardware_json: str | Path,
             out_dir: str | Path | None = None, speculative_csv: str | Path | None = None,
             figures: bool = True, fitted_hardware_json: str | Path | None = None) -> Report:
    """Run every check on a measurement CSV and a calibration JSON; write the report to
    ``out_dir`` (``validation_report.md`` and PNGs, each written atomically) when given.

    ``fitted_hardware_json``: also save ``Fit.hardware()`` there (atomically).
    Inputs are checked before anything is written: missing columns, times not in seconds, or a
    calibration of another dtype raise ValueError and leave ``out_dir`` untouched.
    """
    df = load_measurements(measurements_csv)
    hw = load_hardware(hardware_json, df["dtype"].astype(str))
    missing = [c for c in CHECK_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"measurements: lacks column(s) {missing} needed by the exact checks")
    if speculative_csv is None:
        cand = speculative_path(measurements_csv)
        speculative_csv = cand if cand.exists() else None
    elif not Path(speculative_csv).exists():
        raise ValueError(f"speculative measurements: {speculative_csv} does not exist")

    flops = check_flops(df, hw)
    nbytes = check_bytes(df)

    # --- latency: one global fit of the per-operator model with the reference's options
    df = df.reset_index(drop=True)
    T = _terms(df, hw)
    f = fit(df, hw, _terms_cache=T)
    fitted_hw = f.hardware()
    t = df[TIME_COLUMN].to_numpy(float)
    test = (f.split.to_numpy() == "test")
    in_sample = not test.any()
    ideal = _predict(T, IDEAL)
    overhead_only = _predict(T, IDEAL._replace(kernel_overhead=hw.kernel_overhead))
    calibrated = _predict(T, Params(f.eta_c, f.eta_c_skinny, f.eta_m, f.eta_m_elementwise,
                                    f.kernel_overhead))
    # the public route (plain cm.analyze on Fit.hardware()) gives the same numbers
    api = np.array([fitted_time(cm.analyze(spec_from_row(row), fitted_hw, **_workload(row)))
                    for _, row in df.iterrows()])
    assert np.allclose(api, calibrated, rtol=1e-9), "Fit.hardware() disagrees with the fit"
    # the same fit without the eager operators (attention="standard", in-place cache writes)
    T_std = _terms(df, hw, attention="standard", kv_update="inplace")
    standard_ops = _predict(T_std, _least_squares(T_std.C[~test], T_std.M[~test],
                                                  T_std.K[~test], t[~test], T_std.S[~test],
                                                  T_std.E[~test]))
    # one η_c and one η_m for every operator (no split)
    one_eta = _predict(T, _least_squares(T.C[~test], T.M[~test], T.K[~test], t[~test]))
    points = df[["point_id", "model", "phase", "cache", "batch", "new_tokens", "cached_tokens",
                 TIME_COLUMN]].copy()
    points["context"] = df["context"] if "context" in df.columns else \
        df["new_tokens"] + df["cached_tokens"]
    points["phase_group"] = [_phase_group(p) for p in df["phase"]]
    points["bound"] = T.bounds
    points["kernels"] = T.K
    points["pred_ideal_s"] = ideal
    points["pred_overhead_s"] = overhead_only
    points["pred_standard_ops_s"] = standard_ops
    points["pred_one_eta_s"] = one_eta
    points["pred_calibrated_s"] = calibrated
    points["err_ideal"] = ideal / t - 1
    points["err_overhead"] = overhead_only / t - 1
    points["err_standard_ops"] = standard_ops / t - 1
    points["err_one_eta"] = one_eta / t - 1
    points["err_calibrated"] = calibrated / t - 1
    points["split"] = f.split.to_numpy()
    cols = {"ideal": "err_ideal", "overhead_only": "err_overhead",
            "standard_ops": "err_standard_ops", "one_eta": "err_one_eta",
            "calibrated": "err_calibrated"}
    by = ["phase_group", "bound", "cache"]
    held = points[points["split"] == "test"] if not in_sample else points
    errors = error_table(held, cols, by)
    errors_all = error_table(points, cols, by)

    # leave one model out: fit on the other models, predict the held-out model
    lomo = []
    models = list(dict.fromkeys(points["model"]))
    if len(models) > 1:
        for m in models:
            hold = (points["model"] == m).to_numpy()
            q_ = _least_squares(T.C[~hold], T.M[~hold], T.K[~hold], t[~hold], T.S[~hold],
                                T.E[~hold])
            e = np.abs(_predict(T.take(hold), q_) / t[hold] - 1)
            lomo.append({"held_out_model": m, "n": int(hold.sum()), "eta_c": q_.eta_c,
                         "eta_c_skinny": q_.eta_c_skinny, "eta_m": q_.eta_m,
                         "eta_m_elementwise": q_.eta_m_elementwise,
                         "kernel_overhead_us": 1e6 * q_.kernel_overhead,
                         "median": float(np.median(e)), "p90": float(np.quantile(e, 0.9))})
    lomo_df = pd.DataFrame(lomo)

    spec_df = None
    if speculative_csv is not None:
        spec_df = speculative_table(Path(speculative_csv), f, str(df["dtype"].iloc[0]))

    overall = errors[errors["phase_group"] == "all"].iloc[0]
    summary = {
        "points": len(df), "test_points": int(test.sum()), "in_sample": in_sample,
        "flops_exact": int(flops["exact"].sum()), "kv_exact": int(nbytes["kv_exact"].sum()),
        "param_exact": int(nbytes["param_exact"].sum()),
        "calibrated_median": float(overall["calibrated_median"]),
        "calibrated_p90": float(overall["calibrated_p90"]),
        "ideal_median": float(overall["ideal_median"]), "ideal_p90": float(overall["ideal_p90"]),
        "overhead_only_median": float(overall["overhead_only_median"]),
        "fit": f.to_dict(),
    }
    summary["latency_target_met"] = (summary["calibrated_median"] <= TARGETS["median"]
                                     and summary["calibrated_p90"] <= TARGETS["p90"])
    if spec_df is not None and not spec_df.empty:
        best = spec_df.loc[spec_df["improvement_measured"].idxmax()]
        summary["speculative_best_gamma"] = int(best["gamma"])
        summary["speculative_pred_best_gamma"] = int(
            spec_df.loc[spec_df["improvement_pred"].idxmax(), "gamma"])
        summary["speculative_measured"] = float(best["improvement_measured"])
        summary["speculative_predicted"] = float(best["improvement_pred"])
        summary["speculative_rel_error"] = float(best["rel_error"])
        summary["speculative_target_met"] = abs(best["rel_error"]) <= TARGETS["speculative"]

    out = Path(out_dir) if out_dir is not None else None
    fig_paths: dict[str, Path] = {}
    report = Report(out or Path("."), (out or Path(".")) / "validation_report.md", fig_paths,
                    points, flops, nbytes, errors, errors_all, lomo_df, f, spec_df, summary)
    if out is not None:
        blobs = {}
        if figures:
            blobs["scatter"] = _fig_scatter(points)
            blobs["context"] = _fig_context(points.assign(
                **{c: df[c] for c in df.columns if c not in points.columns}), fitted_hw)
            if spec_df is not None and not spec_df.empty:
                blobs["speculative"] = _fig_speculative(spec_df)
        names = {"scatter": "predicted_vs_measured.png", "context": "latency_vs_context.png",
                 "speculative": "speculative_speedup.png"}
        for key in blobs:
            fig_paths[key] = out / names[key]
        text = render_markdown(report, hw, df, Path(measurements_csv), Path(hardware_json),
                               speculative_csv, fitted_hardware_json)
        tables = {"headline.csv": pd.DataFrame(headline_rows(summary),
                                               columns=["check", "result", "target", "met"]),
                  "errors_by_regime.csv": errors, "points.csv": points}
        if spec_df is not None:
            tables["speculative.csv"] = spec_df
        for key, data in blobs.items():
            atomic_write_bytes(fig_paths[key], data)
        for name, table in tables.items():
            atomic_write_bytes(out / name, table.to_csv(index=False).encode())
        atomic_write_bytes(report.markdown, text.encode())
    if fitted_hardware_json is not None:
        fitted_hw.save(fitted_hardware_json)
        Path(fitted_hardware_json).chmod(0o644)
    return report


def headline_rows(s: dict) -> list[list[str]]:
    """The headline table of the report (check, result, target, met) from a Report summary."""
    rows = [
        ["matmul FLOPs (FlopCounterMode = analytic)", f"{s['flops_exact']}/{s['points']} "
         "points exact", "all exact", "yes" if s["flops_exact"] == s["points"] else "NO"],
        ["KV-cache bytes (allocated = formula)", f"{s['kv_exact']}/{s['points']} exact",
         "all exact", "yes" if s["kv_exact"] == s["points"] else "NO"],
        ["parameter bytes (allocated = formula)", f"{s['param_exact']}/{s['points']} exact",
         "all exact", "yes" if s["param_exact"] == s["points"] else "NO"],
        ["calibrated latency, held-out median |err|", _pct(s["calibrated_median"]), "≤ 10 %",
         "yes" if s["calibrated_median"] <= TARGETS["median"] else "NO"],
        ["calibrated latency, held-out p90 |err|", _pct(s["calibrated_p90"]), "≤ 25 %",
         "yes" if s["calibrated_p90"] <= TARGETS["p90"] else "NO"],
        ["ideal roofline, held-out median / p90 |err|",
         f"{_pct(s['ideal_median'])} / {_pct(s['ideal_p90'])}", "(reported)", "—"],
    ]
    if "speculative_rel_error" in s:
        rows.append([f"speculative improvement at the measured best γ = "
                     f"{s['speculative_best_gamma']} (predicted best γ = "
                     f"{s['speculative_pred_best_gamma']})",
                     f"predicted {s['speculative_predicted']:.2f}× vs measured "
                     f"{s['speculative_measured']:.2f}× ({_pct(s['speculative_rel_error'])})",
                     "within 15 %", "yes" if s["speculative_target_met"] else "NO"])
    return rows


def render_markdown(r: Report, hw: HardwareSpec, df: pd.DataFrame, csv_path: Path,
                    hw_path: Path, spec_path, fitted_path=None) -> str:
    s = r.summary
    ex = hw.extra or {}
    f = r.fit
    L = []
    L.append("# Validation of costmodel against the PyTorch reference model\n")
    L.append(f"Machine: **{hw.name}** — {ex.get('device_name', '?')}, {ex.get('cores', '?')} "
             f"cores, calibrated with {ex.get('threads', '?')} thread(s), torch "
             f"{ex.get('torch_version', '?')}. Measurements: `{csv_path}` ({s['points']} "
             f"points, dtype {', '.join(sorted(set(df['dtype'].astype(str))))}, threads "
             f"{', '.join(map(str, sorted(set(df['threads'])))) if 'threads' in df else '?'}). "
             f"Calibration: `{hw_path}`.\n")
    L.append("Rerun: `costmodel validate --measurements "
             f"{csv_path} --hardware {hw_path} --out {r.out_dir}"
             + (f" --save-fitted {fitted_path}" if fitted_path else "") + "`\n")
    clocks = ", ".join(sorted(set(df["clock"].astype(str)))) if "clock" in df else "wall"
    rounds = int(df["rounds"].max()) if "rounds" in df else 1
    L.append(f"Timing: torch limited to one intra-op thread; clock `{clocks}` (`thread` = CPU "
             "time of the measuring thread, robust to other processes taking turns on the "
             f"shared cores); the grid swept {rounds}× with samples pooled; each point the "
             f"median of {int(df['repeats'].median()) if 'repeats' in df else '?'} samples after "
             "warm-up (p10/p90 and quartiles in the CSV). FLOPs count a multiply-add as 2; "
             "GB = 1e9 bytes.\n")
    L.append("## Headline\n")
    rows = headline_rows(s)
    from tabulate import tabulate

    L.append(tabulate(rows, headers=["check", "result", "target", "met"], tablefmt="github"))
    L.append("")
    if s["in_sample"]:
        L.append("*Too few points to hold any out: the fit and the errors are in-sample.*\n")
    L.append("## Calibrated model\n")
    L.append("t = Σ_op max(F / (η · π), Q / (η' · β)) + N_kernels · t_k, with η = η_c for "
             f"matmuls and η_c,skinny for *skinny* weight matmuls of at most {f.skinny_rows} rows "
             "(M of M×K·K×N: B·q for the projections and the MLP, the LM head's output "
             "positions; the grid's skinny passes have 1–4 rows, its wide ones ≥ 32, and the "
             "calibration measures 16-row GEMMs at ~0.3 of the peak, so the step is put at "
             "8, the log-midpoint of 4 and 16), η' = η_m for the matmul and "
             "attention operators and η_m,elementwise for the elementwise and copy passes "
             "(norms, activations, residuals, softmax, scale, mask, K/V copies, cache "
             "writes) — the roofline of "
             "`costmodel.roofline.op_times` over the operators of `cm.analyze` with the "
             "reference model's options (`costmodel.validate.reference_options`: "
             "`attention=\"eager\"` for its explicit-matmul attention, `kv_update=\"concat\"` for "
             "the dynamic cache grown by `torch.cat`, `\"inplace\"` for the static cache, "
             "`kv_cache=False` for the no-cache step) and five global parameters fitted by "
             f"least squares on log time over {f.n_train} training points (a stable hash of the "
             "point id holds out a third). No per-point, per-model, per-phase or per-cache "
             "parameter; the two splits are by operator shape and kind: skinny vs wide matmuls "
             "(the calibration itself shows one core's GEMMs of few rows far below the peak, "
             "below) and matmul streaming vs eager elementwise passes (which include exp, erf "
             "and boolean masks, and stream slower on one core). `costmodel.validate.fit(csv, "
             "hw)` "
             "returns it; `Fit.hardware()` folds it into a HardwareSpec (peaks × η_c, "
             "bandwidth × η_m, kernel_overhead = t_k, η_c,skinny and η_m,elementwise in "
             "`extra`; committed as "
             "`data/hardware/cpu-fitted.json`), and `costmodel.validate.predict(spec, "
             "fitted_hw, batch, q, c, cache)` = `cm.analyze` on it with the skinny matmuls and "
             "the elementwise passes re-priced gives the *calibrated* column (plain "
             "`cm.analyze` on the fitted HardwareSpec prices every operator with η_c, η_m).\n")
    L.append("The eager operators (`ops.py`: `kv_layout`, `scale`, `mask_fill`, `out_copy`, "
             "the concat `kv_write`) are bytes and calls the reference's eager PyTorch spends "
             "beyond a fused kernel set; the column *standard_ops* refits the same "
             "parameters with `attention=\"standard\"` and in-place cache writes instead, to "
             "show what they are worth; *one_eta* refits one η_c and one η_m for every operator "
             "(no split).\n")
    L.append(tabulate([
        *[[f"π ({d} peak, calibrated)", f"{v / 1e9:.1f} GFLOP/s"]
          for d, v in hw.peak_flops.items()],
        ["β (copy bandwidth, calibrated)", f"{hw.bandwidth / 1e9:.2f} GB/s"],
        ["per-op call overhead (calibrated, 1-element add)", f"{hw.kernel_overhead * 1e6:.2f} µs"],
        [f"η_c (fitted; matmuls of more than {f.skinny_rows} rows)", f"{f.eta_c:.3f}"],
        [f"η_c,skinny (fitted; weight matmuls of ≤ {f.skinny_rows} rows)",
         f"{f.eta_c_skinny:.3f}"],
        ["η_m (fitted; matmul and attention operand streaming)", f"{f.eta_m:.3f}"],
        ["η_m,elementwise (fitted; elementwise and copy passes)",
         f"{f.eta_m_elementwise:.3f}"],
        ["t_k per modelled kernel (fitted)", f"{f.kernel_overhead * 1e6:.2f} µs"],
        ["rms log error (train)", f"{f.rms_log_error:.3f}"],
    ], headers=["parameter", "value"], tablefmt="github"))
    L.append("")
    L.append("## Latency error by regime (held-out points)\n")
    L.append("|relative error| = |predicted / measured − 1|. *ideal*: the roofline on the "
             "calibrated peaks (η = 1, no overhead); *overhead_only*: ideal + the calibrated "
             "per-op call cost per modelled kernel (nothing fitted); *calibrated*: the fitted "
             "model. Bound = what dominates the ideal roofline.\n")
    L.append(_fmt_table(r.errors))
    L.append("\n### All points (train + held out)\n")
    L.append(_fmt_table(r.errors_all))
    if not r.leave_one_model_out.empty:
        L.append("\n### Leave one model out (fit on the other models, judge the held-out one)\n")
        L.append(_fmt_table(r.leave_one_model_out))
    L.append("\n### Why the ideal roofline is off, and what limits the calibrated model\n")
    ratio = float(np.median(r.points["time_s"] / r.points["pred_ideal_s"]))
    skinny_rate = ""
    mm = [m for m in (ex.get("matmul") or []) if m.get("kind") == "skinny"]
    if mm:
        skinny_rate = " (the calibration's own skinny GEMMs: " + ", ".join(
            f"{m['m']} row{'s' if m['m'] > 1 else ''} {m['flops_per_s'] / 1e9:.0f}"
            for m in mm) + " GFLOP/s against the square peak)"
    L.append(f"The ideal roofline is {ratio:.1f}× too fast at the median point. On a CPU "
             "with PyTorch eager every operator is a Python + dispatcher call costing "
             "microseconds whatever its size, and the small models' passes are a few hundred "
             "such calls moving a few MB: the fixed per-op cost, not FLOPs or bytes, sets their "
             "time — which is what the per-kernel term t_k models (the fitted t_k is larger "
             "than one bare op call because a modelled kernel stands for several PyTorch "
             "calls — view, transpose, split, dropout, bias, dtype casts — plus the nn.Module "
             "machinery). η_m below 1 says the decode GEMVs and the eager elementwise passes "
             "stream below the copy bandwidth on one core; η_c below 1 that the model's GEMM "
             "shapes do not reach the best square-GEMM rate. And a matmul of few rows (decode, "
             f"verification, the last-position LM head) runs at η_c,skinny{skinny_rate}: on "
             "this core a 4-row decode step costs 2–3× a 1-row one (measured), so those GEMMs "
             "are compute-bound at a small fraction of the peak, which neither the ideal "
             "roofline nor a single η_c can express (column *one_eta*). The ideal roofline "
             "ignores all of these.\n")
    spread = None
    if "time_p10_s" in df.columns and "time_p90_s" in df.columns:
        spread = float(((df["time_p90_s"] - df["time_p10_s"]) / df[TIME_COLUMN]).median())
    L.append("What limits the calibrated model here: (1) *noise* — times are the measuring "
             "thread's CPU time (`clock` column), robust to time slicing but not to cache and "
             "memory-bandwidth contention from the other core"
             + (f"; the median point's p10–p90 spread is {100 * spread:.0f} % of its median"
                if spread is not None else "")
             + "; (2) *what the operator list leaves out* — kernel counts are the modelled "
             "operators', not the torch calls the reference makes (its rotary embedding is "
             "about 14 calls per q or k per layer, modelled as one kernel; the Llama-style "
             "model makes ~3.9 torch calls per modelled kernel against ~1.8 for the GPT-2 "
             "style ones), and elementwise FLOPs (softmax's exp over the s² scores) are priced "
             "at the matmul peak: the largest under-predictions are the long no-cache / "
             "prefill passes of gpt-nano, whose time is the eager softmax over the scores; "
             "(3) *shape-dependent efficiency* beyond the skinny/wide split: the measured "
             "rate rises smoothly with the rows (the calibration's skinny GEMMs), which the "
             "two-level η_c approximates with a step at 8 rows (a verification of 8 drafts, "
             "9 rows, is priced as wide; smooth laws η_c·(M/M₀)^p, a continuous step and a "
             "weights-beyond-L2 condition all fitted worse on this grid), and the LM head's "
             "d = 48 … 768 columns.\n")
    L.append("Points (largest calibrated errors first):\n")
    worst = r.points.assign(abs_err=r.points["err_calibrated"].abs()).sort_values(
        "abs_err", ascending=False).head(8)
    L.append(_fmt_table(worst[["point_id", "split", "bound", "time_s", "pred_ideal_s",
                               "pred_calibrated_s", "err_calibrated"]], ".4g"))
    L.append("\n## Exact checks\n")
    L.append(f"FLOPs: FlopCounterMode on the reference model (eager attention, meta device) vs "
             f"Σ FLOPs of the matmul and attention operators of `cm.analyze`: "
             f"{int(r.flops['exact'].sum())}/{len(r.flops)} points equal, largest difference "
             f"{int(r.flops['difference'].abs().max())} FLOPs.\n")
    L.append(f"KV cache: allocated bytes (dynamic: Σ k, v of the returned cache = c + q "
             f"positions; static: the preallocated max_len buffers) vs `cm.kv_cache_bytes`: "
             f"{int(r.bytes['kv_exact'].sum())}/{len(r.bytes)} equal. Parameters: Σ nbytes "
             f"of the model's parameters vs `cm.param_count(spec) · bytes`: "
             f"{int(r.bytes['param_exact'].sum())}/{len(r.bytes)} equal.\n")
    sample = r.flops.merge(r.bytes, on="point_id").head(6)
    L.append(_fmt_table(sample[["point_id", "counted_flops", "analytic_flops",
                                "kv_bytes_measured", "kv_bytes_formula",
                                "param_bytes_measured", "param_bytes_formula"]], ".0f"))
    if r.speculative is not None:
        L.append("\n## Speculative decoding\n")
        L.append(f"From `{spec_path}`: greedy speculative decoding of the committed text "
                 "target/draft pair vs the target alone (same prompts, tokens and cache). α is "
                 "the maximum-likelihood per-token acceptance pooled over all γ (accepted / "
                 "drafted tokens at risk). *improvement_pred* = "
                 "`costmodel.validate.speculative_prediction` on the fitted HardwareSpec, the "
                 "way the reference runs it: per token of the target alone one decode step "
                 "(q = 1, LM head on the last position) plus the `generate` loop's "
                 f"{GENERATE_STEP_CALLS} torch calls; per iteration γ draft decode steps "
                 f"(+{DRAFT_STEP_CALLS} calls each) and one verification pass with q = γ + 1 "
                 "new tokens on the cache (the target's attention path with its causal mask, "
                 f"LM head on all γ + 1 positions, +{VERIFY_CALLS} calls) and, with probability "
                 "1 − α^γ, the cache crop (2 slices per layer of both models) — every call "
                 "priced at the fitted t_k, nothing fitted to the speculative runs. "
                 "*improvement_pred_passes_only* is `cm.speculative.speedup_roofline` on the "
                 "same machine (passes only, verification LM head on the last position); "
                 "*improvement_pred_simple* prices the verification as one target step "
                 "(E / (γc + 1)). *improvement_from_measured_costs* puts the measured cost of "
                 "one target step, one draft step and the verification pass (timed alone at "
                 "the mean context) into the same formula: where it matches the measurement "
                 "but *improvement_pred* does not, the speculative algebra holds and the pass "
                 "costs are what the roofline misses (compare `cost_ratio_pred` / "
                 "`cost_ratio_meas` and `verify_over_step_pred` / `verify_over_step_meas`). "
                 "Two caveats. The verification of γ = 8 drafts has 9 rows, past the skinny "
                 "step at 8: it is priced at the wide η_c, hence the jump of the prediction at "
                 "γ = 8 (the measured verification cost rises smoothly with γ). And this "
                 "measurement is noisy: three runs on this machine (7, 7 and 3 repeats) put "
                 "the best measured improvement at 2.1× (γ = 7, committed), 2.0× (γ = 5) and "
                 "2.6× (γ = 8), with the target's own step at 1.7–3.0 ms.\n")
        L.append(_fmt_table(r.speculative))
    L.append("\n## Figures\n")
    for key, p in r.figures.items():
        L.append(f"![{key}]({p.name})\n")
    return "\n".join(L) + "\n"


__all__ = ["Fit", "Report", "check_bytes", "check_flops", "counted_flops", "error_table", "fit",
           "load_hardware", "load_measurements", "reference_options", "speculative_prediction",
           "speculative_table", "validate", "headline_rows", "predict", "fitted_time",
           "matmul_rows", "skinny_ops", "streaming_ops", "Params", "SKINNY_ROWS",
           "SKINNY_MIN_WEIGHT_BYTES"]
