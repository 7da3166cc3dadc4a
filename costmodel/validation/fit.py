r"""The calibrated latency model: five efficiencies fitted to measured passes of the reference
model, priced by the one roofline pricing (:func:`costmodel.pricing.price`).

    t = Σ_op max(F / (η π), Q / (η' β)) + N_kernels · t_k

over the operators of ``cm.analyze`` with the reference model's options
(:func:`costmodel.workload.reference_options`), π and β the calibrated peak and bandwidth;
η = η_c,skinny for a weight matmul of at most ``skinny_rows`` rows (decode GEMVs, the LM head on
the last positions, short verifications), else η_c; η' = η_m,elementwise for the elementwise and
copy passes, else η_m; t_k a fixed cost per modelled kernel. Least squares on log time over a
training split (2/3 of the points by a stable hash of the point id; the rest held out).

:meth:`Fit.hardware` writes the fitted efficiencies into the HardwareSpec's typed fields and
keeps the calibrated peaks and bandwidth, so plain ``cm.analyze`` on it — in the CLI, the app or
:func:`predict` — prices a pass exactly as the validation did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from costmodel.lazy import deferred
from costmodel.pricing import price
from costmodel.roofline import analyze
from costmodel.specs import HardwareSpec
from costmodel.validation.hardware_io import read_hardware
from costmodel.validation.io import (
    TIME_COLUMN,
    analysis_kwargs,
    point_hash,
    read_measurements,
    spec_of,
)
from costmodel.workload import reference_options

pd = deferred("pandas")

#: A weight matmul with at most this many rows (M of M×K·K×N) is *skinny* and runs at
#: η_c,skinny: the rows of decode GEMMs (B·q with q = 1), the LM head on the last positions and
#: short speculative verifications. A constant of the method (the HardwareSpec default).
SKINNY_ROWS = 8
#: A point is held out when hash(point_id) % 3 == 0.
TEST_FRACTION_MOD = 3


# --------------------------------------------------------------------------- the terms


@dataclass
class Terms:
    """The pricing inputs (``Analysis.terms``) of every measured pass, in the row order of the
    measurements: per point a dict of per-operator arrays (ideal compute and memory seconds,
    communication, kernels, the masks of skinny matmuls and streaming passes), and the ideal
    bound of each pass. ``stacked``: the same arrays of the operators that do something, one
    row per pass, padded with zeros (what the fit's search prices at once)."""

    rows: list[dict]
    bounds: list[str]

    def __post_init__(self) -> None:
        # the search's arrays: the operators that do something, in order, padded with zeros
        active = [(r["compute_ideal"] != 0) | (r["memory_ideal"] != 0) | (r["comm"] != 0)
                  for r in self.rows]
        width = max(int(a.sum()) for a in active)
        stacked = {}
        for key in self.rows[0]:
            mask = np.asarray(self.rows[0][key]).dtype == bool
            arr = np.zeros((len(self.rows), width), dtype=bool if mask else float)
            for i, (r, a) in enumerate(zip(self.rows, active, strict=True)):
                values = np.broadcast_to(r[key], a.shape)[a]
                arr[i, :len(values)] = values
            stacked[key] = arr
        self.stacked = stacked

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def kernels(self) -> np.ndarray:
        """Modelled kernels per pass (Σ over operators)."""
        return np.array([float(np.sum(r["kernels"])) for r in self.rows])

    def take(self, mask: np.ndarray) -> Terms:
        return Terms([r for r, m in zip(self.rows, mask, strict=True) if m],
                     [b for b, m in zip(self.bounds, mask, strict=True) if m])

    def without_split(self) -> Terms:
        """The same passes with no skinny matmuls and no streaming passes: one η_c and one η_m
        for every operator."""
        rows = [{**r, "skinny": np.zeros_like(r["skinny"]),
                 "streaming": np.zeros_like(r["streaming"])} for r in self.rows]
        return Terms(rows, self.bounds)


def ideal_machine(hw: HardwareSpec) -> HardwareSpec:
    """The calibration as the ideal roofline: every η = 1, no kernel overhead, the fit's
    skinny threshold."""
    return hw.replace(eta_c=1.0, eta_m=1.0, eta_c_skinny=None, eta_m_elementwise=None,
                      skinny_rows=SKINNY_ROWS, kernel_overhead=0.0)


def terms_of(df, hw: HardwareSpec, **override) -> Terms:
    """The pricing inputs of every row of checked measurements on the calibration ``hw``
    (``override``: other ``cm.analyze`` options, e.g. ``attention="standard"``)."""
    machine = ideal_machine(hw)
    rows, bounds = [], []
    for _, row in df.iterrows():
        a = analyze(spec_of(row), machine, **{**analysis_kwargs(row), **override})
        rows.append(a.terms)
        bounds.append(a.bound)
    return Terms(rows, bounds)


class Params(NamedTuple):
    """The fitted parameters (and the rms log error of the fit)."""

    eta_c: float
    eta_c_skinny: float
    eta_m: float
    eta_m_elementwise: float
    kernel_overhead: float
    rms_log_error: float = float("nan")

    @property
    def efficiency(self) -> dict:
        """The keyword arguments of :func:`costmodel.pricing.price`."""
        return {"eta_c": self.eta_c, "eta_c_skinny": self.eta_c_skinny, "eta_m": self.eta_m,
                "eta_m_elementwise": self.eta_m_elementwise,
                "kernel_overhead": self.kernel_overhead}


IDEAL = Params(1.0, 1.0, 1.0, 1.0, 0.0)


def predict_terms(T: Terms, p: Params) -> np.ndarray:
    """Seconds of every pass of ``T`` priced with ``p`` (:func:`costmodel.pricing.price`, pass
    by pass: the same arithmetic as ``cm.analyze(...).time`` on :meth:`Fit.hardware`)."""
    return np.array([float(price(**r, **p.efficiency).time.sum()) for r in T.rows])


def least_squares(T: Terms, t: np.ndarray, split: bool = True) -> Params:
    """Least squares on log time over η_c, η_c,skinny, η_m, η_m,elementwise ∈ (0, 1] and
    t_k ≥ 0: a coarse log grid (the two η_m tied), then finer grids around the best point.
    Every candidate is priced by :func:`costmodel.pricing.price` with arrays of efficiencies
    (they broadcast over the passes and operators); the time is affine in t_k (the priced time
    at t_k = 0 plus t_k · Σ kernels), so t_k is searched on its own axis. ``split=False``
    fits one η_c and one η_m for every operator. An η no training point depends on is returned
    equal to its partner."""
    S = T.stacked if split else T.without_split().stacked
    C, M, skinny, stream = S["compute_ideal"], S["memory_ideal"], S["skinny"], S["streaming"]
    K = S["kernels"].sum(axis=1)
    logt = np.log(t)
    has_wide, has_skinny = bool((C * ~skinny).any()), bool((C * skinny).any())
    has_mm, has_elem = bool((M * ~stream).any()), bool((M * stream).any())

    def search(ec_grid, es_grid, em_grid, ee_grid, tk_grid):
        best = (np.inf, 1.0, 1.0, 1.0, 1.0, 0.0)
        for em in em_grid:
            for ee in (ee_grid if ee_grid is not None else [em]):
                roof = price(**S, eta_c=ec_grid[:, None, None, None],
                             eta_c_skinny=es_grid[None, :, None, None], eta_m=em,
                             eta_m_elementwise=ee, kernel_overhead=0.0).time.sum(-1)
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


# --------------------------------------------------------------------------- the fit


@dataclass(frozen=True)
class Fit:
    """The calibrated latency model of :func:`fit` (see the module docstring)."""

    eta_c: float
    eta_c_skinny: float
    eta_m: float
    eta_m_elementwise: float
    kernel_overhead: float
    n_train: int
    rms_log_error: float
    calibration: HardwareSpec | None = None
    split: pd.Series | None = field(default=None, compare=False, repr=False)  # id → train/test
    errors: pd.DataFrame | None = field(default=None, compare=False, repr=False)  # held out
    points: pd.DataFrame | None = field(default=None, compare=False, repr=False)  # predictions
    skinny_rows: int = SKINNY_ROWS

    @property
    def params(self) -> Params:
        return Params(self.eta_c, self.eta_c_skinny, self.eta_m, self.eta_m_elementwise,
                      self.kernel_overhead, self.rms_log_error)

    def to_dict(self) -> dict:
        return {"eta_c": self.eta_c, "eta_c_skinny": self.eta_c_skinny, "eta_m": self.eta_m,
                "eta_m_elementwise": self.eta_m_elementwise,
                "kernel_overhead_s": self.kernel_overhead, "skinny_rows": self.skinny_rows,
                "n_train": self.n_train, "rms_log_error": self.rms_log_error}

    def hardware(self, name: str | None = None) -> HardwareSpec:
        """The calibration with the fit in its typed efficiency fields (``eta_c``,
        ``eta_c_skinny``, ``eta_m``, ``eta_m_elementwise``, ``skinny_rows``,
        ``kernel_overhead`` = t_k), the calibrated peaks and bandwidth kept: ``cm.analyze`` on
        it is the calibrated model. Save it with ``.save("data/hardware/cpu-fitted.json")``."""
        hw = self.calibration
        if hw is None:
            raise ValueError("fit: no calibration attached (use costmodel.validation.fit)")
        extra = {k: v for k, v in (hw.extra or {}).items()
                 if k in ("device", "device_name", "cpu_model", "cores", "threads", "clock",
                          "torch_version", "dtypes", "date")}
        extra.update({"calibrated_kernel_overhead": hw.kernel_overhead,
                      "fit": {"n_train": self.n_train, "rms_log_error": self.rms_log_error}})
        return hw.replace(
            name=name or f"{hw.name}-fitted", eta_c=self.eta_c, eta_c_skinny=self.eta_c_skinny,
            eta_m=self.eta_m, eta_m_elementwise=self.eta_m_elementwise,
            skinny_rows=self.skinny_rows, kernel_overhead=self.kernel_overhead,
            source=f"costmodel.validation.fit of {hw.name} (η_c, η_c,skinny, η_m, "
                   f"η_m,elementwise and t_k fitted on {self.n_train} measured passes of the "
                   "reference model)",
            notes="peaks and bandwidth as calibrated; eta_c, eta_c_skinny (weight matmuls of "
                  "at most skinny_rows rows), eta_m, eta_m_elementwise (elementwise and copy "
                  "passes) and kernel_overhead (seconds per modelled kernel) fitted; "
                  "cm.analyze applies them all",
            extra=extra)


def split_of(point_ids) -> np.ndarray:
    """True where a point is held out (a stable hash of its id: a third of the points)."""
    return np.array([point_hash(str(p)) % TEST_FRACTION_MOD == 0 for p in point_ids])


def fit(measurements, hw, *, holdout: bool = True, split: bool = True,
        terms: Terms | None = None) -> Fit:
    """Fit η_c, η_c,skinny, η_m, η_m,elementwise and t_k to measured passes of the reference
    model.

    ``measurements``: a CSV written by ``costmodel measure`` (path) or its DataFrame; ``hw``:
    the calibration (path to ``costmodel calibrate``'s JSON or a HardwareSpec). With
    ``holdout`` a third of the points (stable hash of the point id) is held out (unless that
    leaves fewer than 3 to train on); the Fit carries the ``split``, per-point predictions
    (``points``) and the median / p90 |relative error| of the held-out points (``errors``:
    calibrated and ideal roofline). ``split=False`` fits one η_c and one η_m for every operator.
    ``terms``: the pricing inputs when already computed (:func:`terms_of`).
    """
    df = read_measurements(measurements)
    hw_spec = read_hardware(hw, df["dtype"].astype(str))
    T = terms if terms is not None else terms_of(df, hw_spec)
    t = df[TIME_COLUMN].to_numpy(float)
    test = split_of(df["point_id"]) if holdout else np.zeros(len(df), bool)
    if test.all() or (~test).sum() < 3:
        test = np.zeros(len(df), bool)
    train = ~test
    prm = least_squares(T.take(train), t[train], split)
    ideal = predict_terms(T, IDEAL)
    cal = predict_terms(T, prm)
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


def predict(spec, hw, batch: int = 1, new_tokens: int = 1, cached_tokens: int = 0,
            cache: str = "dynamic", attn_impl: str = "eager", kv_update: str | None = None,
            **kw) -> float:
    """Seconds of one pass of the reference model on ``hw`` (a fitted machine:
    ``Fit.hardware()`` or ``data/hardware/cpu-fitted.json``): plain ``cm.analyze`` with
    :func:`costmodel.workload.reference_options` (``kv_update``: how a measured dynamic cache
    grew, default the reference model's). ``kw`` goes to ``cm.analyze`` (byte widths, dtype,
    lm_head, ...)."""
    return analyze(spec, hw, batch=batch, new_tokens=new_tokens, cached_tokens=cached_tokens,
                   **{**reference_options(cache, attn_impl, kv_update), **kw}).time


def error_table(points, columns: dict[str, str], by: list[str]):
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


__all__ = ["Fit", "IDEAL", "Params", "SKINNY_ROWS", "Terms", "error_table", "fit",
           "ideal_machine", "least_squares", "predict", "predict_terms", "split_of",
           "terms_of"]
