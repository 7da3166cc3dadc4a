r"""Engine profiles fitted to the published GPU measurements, their leave-one-source-out errors
and the 80 % bands.

Per engine class a handful of global, physical parameters (no per-row or per-model one), each
bounded:

    parameter        bounds          what it is
    eta_c            [0.05, 1]       fraction of the dense peak the GEMMs reach (prefill, batches)
    eta_c_8bit       [0.05, 1]       the same when they compute in fp8 or int8
    eta_m            [0.05, 1]       fraction of the bandwidth weight and KV streaming reaches
    eta_m_quant      [0.05, 1]       the same for weight-only quantized GEMMs (dequantized on
                                     the fly: int8-wo, int4)
    layer_overhead   [10 ns, 5 ms]   seconds per layer per pass (launch gaps, small kernels)
    comm_latency     [10 ns, 500 µs] seconds per all-reduce beyond its bytes / link bandwidth

Every candidate is an :class:`~costmodel.specs.EngineProfile` and every row is priced by
:meth:`~costmodel.validation.published.Request.predict` (``cm.generation(...,
engine=profile)``): the one pricing, no second formula. The residual of a row is
r = log(predicted time / measured time).

The fit has two stages (least squares, Levenberg–Marquardt on the logs of the parameters,
clipped to the bounds): (1) one *pooled* profile on every training row; (2) each class on its
own rows, with a pull toward the pooled values — a residual (log θ − log θ_pooled) / ln 3 per
parameter, i.e. a class's value is taken to lie within a factor 3 of the all-engine one unless
its rows say otherwise. A parameter a class's rows do not inform (η_c of a class measured only
at batch 1), and every parameter of a class with no training row (its one source held out),
stays at the pooled value. The attention implementation (:data:`ATTENTION_CHOICES`: fused or
eager) is chosen the same way: the one that fits the rows better, pooled, then per class; a
class with no row takes the pooled one.

The two stages run twice. First with squared residuals; then with the Cauchy loss
Σ s² ln(1 + (r / s)²) on the rows, s the median |r| of the first fit on the same rows
(:func:`robust_scale`, from the training rows alone), searched from the first fit's
values. A row far off (a source whose engine is faster or slower than the others in a
way no global parameter describes) then weighs ~ s² / r² of a square's pull instead of
dragging every other row's parameters toward it: least squares is the right loss for
Gaussian residuals, and these are not (each source's median ratio sits apart from the others':
loso_by_source.csv).

Leave one source out: fit on the other sources, price the held-out one. Bands: the split-
conformal 10 % and 90 % order statistics (:func:`band_of`) of measured / predicted time over
the leave-one-source-out predictions of a class and regime
(:func:`costmodel.workload.regime`), with :data:`MIN_BAND_ROWS` rows at least,
else the class's "all" band (else the pooled rows').
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from costmodel.presets import engine_defaults
from costmodel.specs import EngineProfile
from costmodel.validation.io import csv_text
from costmodel.validation.published import ENGINE_CLASSES, Request
from costmodel.workload import REGIMES

#: The fitted parameters, their bounds (seconds for the overheads) and scale in engines.csv.
PARAMS = ("eta_c", "eta_c_8bit", "eta_m", "eta_m_quant", "layer_overhead", "comm_latency")
BOUNDS = {"eta_c": (0.05, 1.0), "eta_c_8bit": (0.05, 1.0), "eta_m": (0.05, 1.0),
          "eta_m_quant": (0.05, 1.0), "layer_overhead": (1e-8, 5e-3),
          "comm_latency": (1e-8, 5e-4)}
#: The spread a class's parameter is allowed around the pooled value (stage 2): a factor 3.
CLASS_SPREAD = math.log(3.0)
#: Stage 1 leans on the REFERENCES defaults this weakly (a factor 10), where they are > 0.
DEFAULT_SPREAD = math.log(10.0)
#: Fewer rows than this in a class and regime: the band falls back to the class's "all".
MIN_BAND_ROWS = 10
BAND_QUANTILES = (0.1, 0.9)
#: Significant digits of the fitted values as written to engines.csv (and priced).
DIGITS = 6
ATTENTION_CHOICES = ("fused", "eager")
ENGINE_COLUMNS = ("name", "eta_c", "eta_c_8bit", "eta_m", "eta_c_skinny", "eta_m_elementwise",
                  "eta_m_quant", "kernel_overhead_us", "step_overhead_us", "layer_overhead_us",
                  "comm_latency_us", "attention", "source", "notes")
BAND_COLUMNS = ("engine", "regime", "low", "high", "n", "source")
_LO = np.log([BOUNDS[p][0] for p in PARAMS])
_HI = np.log([BOUNDS[p][1] for p in PARAMS])


def _round(x: float) -> float:
    return float(f"{x:.{DIGITS}g}")


def profile(name: str, values: Mapping[str, float], like: EngineProfile, source: str = "",
            notes: str = "") -> EngineProfile:
    """An EngineProfile of class ``name`` with the fitted ``values`` (rounded to the digits
    engines.csv keeps, so the profile priced here is the one written), the rest from ``like``
    (attention, the efficiencies not fitted)."""
    return like.replace(name=name, source=source or like.source, notes=notes or like.notes,
                        bands={}, **{p: _round(values[p]) for p in PARAMS})


def values_of(p: EngineProfile) -> dict[str, float]:
    """The fitted parameters of a profile, clipped into their bounds (a 0 becomes the floor)."""
    out = {}
    for name in PARAMS:
        v = getattr(p, name)
        if v is None:
            v = {"eta_m_quant": p.eta_m, "eta_c_8bit": p.eta_c}.get(name, 0.0)
        lo, hi = BOUNDS[name]
        out[name] = min(max(float(v), lo), hi)
    return out


# --------------------------------------------------------------------------- least squares


def levenberg_marquardt(fun: Callable[[np.ndarray], np.ndarray], x0: np.ndarray,
                        lo: np.ndarray, hi: np.ndarray, iterations: int = 40,
                        step: float = 1e-3, rtol: float = 1e-7) -> np.ndarray:
    """Minimise |fun(x)|² over lo ≤ x ≤ hi: Levenberg–Marquardt with a forward-difference
    Jacobian (backward at an upper bound), every trial point clipped into the box."""
    x = np.clip(np.asarray(x0, dtype=float), lo, hi)
    f = fun(x)
    cost = float(f @ f)
    damping = 1e-3
    for _ in range(iterations):
        J = np.empty((f.size, x.size))
        for j in range(x.size):
            h = step if x[j] + step <= hi[j] else -step
            xj = x.copy()
            xj[j] += h
            J[:, j] = (fun(xj) - f) / h
        A, g = J.T @ J, J.T @ f
        moved = False
        for _ in range(10):
            delta = np.linalg.solve(A + damping * np.diag(np.diag(A) + 1e-9), -g)
            xn = np.clip(x + delta, lo, hi)
            fn = fun(xn)
            cn = float(fn @ fn)
            if cn < cost:
                moved = cost - cn > rtol * max(cost, 1e-12)
                x, f, cost = xn, fn, cn
                damping = max(damping / 3, 1e-9)
                break
            damping *= 8
        if not moved:
            break
    return x


def log_ratios(requests: Sequence[Request], profiles: Mapping[str, EngineProfile]) -> np.ndarray:
    """log(predicted time / measured time) of each request, priced with its class's profile."""
    return np.array([math.log(r.time_ratio(r.predict(profiles[r.engine_class])))
                     for r in requests])


# --------------------------------------------------------------------------- the fit


@dataclass
class ProfileFit:
    """Fitted profiles by class, the pooled profile's values, the rows each saw, and the scale
    of the Cauchy loss (None: least squares)."""

    profiles: dict[str, EngineProfile]
    pooled: dict[str, float]
    rows: dict[str, int]
    pooled_attention: str | None = None
    rms: dict[str, float] = field(default_factory=dict)
    scale: float | None = None


def cauchy(r: np.ndarray, scale: float | None) -> np.ndarray:
    """Residuals r recast so that their sum of squares is the Cauchy loss
    Σ s² ln(1 + (r / s)²): sign(r) · s · √ln(1 + (r / s)²) (``scale`` None: r itself)."""
    if scale is None:
        return r
    return np.sign(r) * scale * np.sqrt(np.log1p((r / scale) ** 2))


def robust_scale(r: np.ndarray) -> float:
    """The scale of the robust loss: the median |log ratio| of the least-squares fit on the
    same rows (floored at 1 %)."""
    return max(float(np.median(np.abs(r))), 0.01)


def _fit(requests: Sequence[Request], classes: Sequence[str], iterations: int,
         scale: float | None, x_start: np.ndarray | None = None) -> ProfileFit:
    """One pass of the two-stage fit (module docstring) with the loss :func:`cauchy` of
    ``scale`` on the rows (the pulls toward the defaults and the pooled values stay squares),
    searched from ``x_start`` (log values; default: the tuned defaults)."""
    defaults = engine_defaults()
    start = np.log([values_of(defaults["tuned"])[p] for p in PARAMS])
    prior = np.array([values_of(defaults["tuned"])[p] > BOUNDS[p][0] * 1.0001 for p in PARAMS])
    x0 = start if x_start is None else x_start

    def pooled_residuals(x: np.ndarray, attention: str) -> np.ndarray:
        vals = dict(zip(PARAMS, np.exp(x), strict=True))
        like = {c: defaults[c].replace(attention=attention) for c in classes}
        r = log_ratios(requests, {c: profile(c, vals, like[c]) for c in classes})
        return np.concatenate([cauchy(r, scale), ((x - start) / DEFAULT_SPREAD)[prior]])

    x_pooled, pooled_attention, best_cost = start, None, math.inf
    for attention in ATTENTION_CHOICES if requests else ():
        x = levenberg_marquardt(lambda x, a=attention: pooled_residuals(x, a), x0, _LO, _HI,
                                iterations)
        f = pooled_residuals(x, attention)
        if f @ f < best_cost:
            x_pooled, pooled_attention, best_cost = x, attention, float(f @ f)
    pooled = dict(zip(PARAMS, np.exp(x_pooled), strict=True))
    profiles, rows, rms = {}, {}, {}
    for c in classes:
        mine = [r for r in requests if r.engine_class == c]
        rows[c] = len(mine)
        if not mine:
            like = defaults[c] if pooled_attention is None \
                else defaults[c].replace(attention=pooled_attention)
            profiles[c] = profile(c, pooled, like)
            continue
        best = None
        for attention in ATTENTION_CHOICES:
            like = defaults[c].replace(attention=attention)

            def class_residuals(x: np.ndarray, mine=mine, c=c, like=like) -> np.ndarray:
                vals = dict(zip(PARAMS, np.exp(x), strict=True))
                r = log_ratios(mine, {c: profile(c, vals, like)})
                return np.concatenate([cauchy(r, scale), (x - x_pooled) / CLASS_SPREAD])

            x = levenberg_marquardt(class_residuals, x_pooled, _LO, _HI, iterations)
            f = class_residuals(x)
            if best is None or f @ f < best[0]:
                best = (float(f @ f), profile(c, dict(zip(PARAMS, np.exp(x), strict=True)), like))
        profiles[c] = best[1]
        rms[c] = float(np.sqrt(np.mean(log_ratios(mine, profiles) ** 2)))
    return ProfileFit(profiles, pooled, rows, pooled_attention=pooled_attention, rms=rms,
                      scale=scale)


def fit_profiles(requests: Sequence[Request], classes: Sequence[str] = ENGINE_CLASSES,
                 iterations: int = 40) -> ProfileFit:
    """Fit every class's profile to ``requests`` (see the module docstring): least squares,
    then the Cauchy loss at the scale the least-squares residuals give (:func:`robust_scale`),
    searched from the least-squares values (no rows: the defaults, as least squares left them)."""
    first = _fit(requests, classes, iterations, None)
    if not requests:
        return first
    scale = robust_scale(log_ratios(requests, first.profiles))
    return _fit(requests, classes, iterations, scale, np.log([first.pooled[p] for p in PARAMS]))


# --------------------------------------------------------------------------- bands


def band_of(ratios: np.ndarray) -> tuple[float, float]:
    """(low, high) factors of an 80 % band from n time ratios predicted / measured: the
    split-conformal order statistics of measured / predicted, the ⌊(n + 1) · 0.1⌋-th smallest
    and the ⌈(n + 1) · 0.9⌉-th smallest (clamped to 1..n) — a new row exchangeable with the n
    falls inside with probability ≥ 80 % (Vovk et al. 2005; Lei et al. 2018, JASA 113:1094),
    where the interpolated 10th and 90th percentiles cover less for small n."""
    m = np.sort(1.0 / np.asarray(ratios, dtype=float))
    n = len(m)
    lo_q, hi_q = BAND_QUANTILES
    k_lo = min(max(math.floor(round((n + 1) * lo_q, 9)), 1), n)
    k_hi = min(max(math.ceil(round((n + 1) * hi_q, 9)), 1), n)
    return float(m[k_lo - 1]), float(m[k_hi - 1])


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    n: int
    basis: str            # "<class> <regime>", "<class> all" or "pooled all"


def bands_for(classes: Sequence[str], regimes: Sequence[str], ratios: np.ndarray,
              class_names: Sequence[str] = ENGINE_CLASSES) -> dict[str, dict[str, Band]]:
    """The bands of every class and regime (and "all") from rows (class, regime, ratio): a
    class and regime with at least :data:`MIN_BAND_ROWS` rows has its own; else the class's
    "all" band, computed from its rows where it has that many, else from every row."""
    classes, regimes = np.asarray(classes), np.asarray(regimes)
    ratios = np.asarray(ratios, dtype=float)
    pooled = Band(*band_of(ratios), len(ratios), "pooled all") if len(ratios) else None
    out: dict[str, dict[str, Band]] = {}
    for c in class_names:
        mine = classes == c
        if mine.sum() >= MIN_BAND_ROWS:
            every = Band(*band_of(ratios[mine]), int(mine.sum()), f"{c} all")
        else:
            every = pooled
        if every is None:
            continue
        out[c] = {"all": every}
        for reg in REGIMES:
            sel = mine & (regimes == reg)
            out[c][reg] = Band(*band_of(ratios[sel]), int(sel.sum()), f"{c} {reg}") \
                if sel.sum() >= MIN_BAND_ROWS else every
    return out


def covered(ratio: float, band: Band) -> bool:
    """Whether a measurement lies inside the band around its prediction: measured / predicted
    time in [low, high]."""
    m = 1.0 / ratio
    return band.low <= m <= band.high


# --------------------------------------------------------------------------- CSV text


def _num(x: float | None, scale: float = 1.0) -> str:
    return "" if x is None else f"{x * scale:.{DIGITS}g}"


def engines_csv_text(fitted: Mapping[str, EngineProfile]) -> str:
    """``costmodel/data/engines.csv`` with the fitted classes (the "ideal" row and any class not
    fitted kept from the defaults)."""
    defaults = engine_defaults()
    rows = []
    for name, p in {**defaults, **fitted}.items():
        rows.append({"name": name, "eta_c": _num(p.eta_c), "eta_c_8bit": _num(p.eta_c_8bit),
                     "eta_m": _num(p.eta_m),
                     "eta_c_skinny": _num(p.eta_c_skinny),
                     "eta_m_elementwise": _num(p.eta_m_elementwise),
                     "eta_m_quant": _num(p.eta_m_quant),
                     "kernel_overhead_us": _num(p.kernel_overhead, 1e6),
                     "step_overhead_us": _num(p.step_overhead, 1e6),
                     "layer_overhead_us": _num(p.layer_overhead, 1e6),
                     "comm_latency_us": _num(p.comm_latency, 1e6), "attention": p.attention,
                     "source": p.source, "notes": p.notes})
    return csv_text(rows, ENGINE_COLUMNS)


def bands_csv_text(bands: Mapping[str, Mapping[str, Band]], source: str) -> str:
    """``costmodel/data/engine_bands.csv``: per class its "all" band and every regime that has
    a band of its own (a regime left out falls back to "all" in ``Analysis.time_interval``)."""
    rows = []
    for c, by_regime in bands.items():
        for reg, b in by_regime.items():
            if reg == "all" or b.basis == f"{c} {reg}":
                rows.append({"engine": c, "regime": reg, "low": f"{b.low:.4f}",
                             "high": f"{b.high:.4f}", "n": b.n,
                             "source": f"{source} ({b.basis}, {b.n} rows)"})
    return csv_text(rows, BAND_COLUMNS)


__all__ = ["BAND_COLUMNS", "BAND_QUANTILES", "BOUNDS", "Band", "CLASS_SPREAD", "DEFAULT_SPREAD",
           "ENGINE_COLUMNS", "MIN_BAND_ROWS", "PARAMS", "ProfileFit", "band_of", "bands_for",
           "bands_csv_text", "cauchy", "covered", "engines_csv_text",
           "fit_profiles", "levenberg_marquardt", "log_ratios", "profile", "robust_scale",
           "values_of"]
