r"""The SLO-aware search: the cheapest deployments that serve a rate within TTFT and TPOT
targets — :func:`plan`.

Candidates are every GPU type × TP × PP × EP × weight format × max_num_batched_tokens (K) ×
max_num_seqs (N) × replicas (R); each is one engine configuration run R times, the arrivals
split evenly. For each:

1. memory (:mod:`costmodel.plan.memory`): the KV blocks left after weights, the profile step's
   activation peak and the reserves must hold N requests of s + n tokens per micro-batch;
2. the steady state (:mod:`costmodel.plan.batching`) at λ / (R · PP) per micro-batch, with the
   steps priced from a table of the roofline per deployment — D decode rows × P prompt tokens
   on a grid, one :func:`costmodel.grid.steps` call per GPU type, format and EP — interpolated
   bilinearly while the fixed point iterates (vectorised over all candidates at once);
3. the targets: TTFT ≤ target, TPOT ≤ target (at the percentile asked for, from the engine's
   error band) and utilisation λ/λ_sat ≤ ``max_utilization``. Under Poisson arrivals the
   analytic model follows the simulated scheduler within 10 % up to 80 % of saturation when a
   prompt fits one step, so the search keeps to that range: K ≥ s + N and utilisation ≤ 0.8.

Of each (deployment, K, N) the fewest replicas that meet the targets are kept and priced again
exactly (the fixed point resumed with :func:`costmodel.grid.steps` itself), ranked by $/hour —
the same ranking as $/Mtok, the traffic being fixed — and marked ``pareto`` when no other kept
row has both more output tokens/s per GPU and more tokens/s per user (1/TPOT).
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import costmodel.plan.batching as batching
import costmodel.plan.cost as cost
from costmodel.batch import check_parallel, check_tp
from costmodel.checks import check_choice, check_element_bytes, check_int, check_number
from costmodel.grid import steps
from costmodel.lazy import deferred
from costmodel.plan.memory import (
    BLOCK_SIZE,
    DRIVER_RESERVE,
    GPU_MEMORY_UTILIZATION,
    NON_TORCH,
    forward_activation,
    kv_blocks,
    sampler_activation,
    shards,
)
from costmodel.plan.pipeline import cycle_time
from costmodel.plan.serving import (
    DEFAULT_ENGINE,
    PERCENTILES,
    Deployment,
    band_factors,
    utilisation,
)
from costmodel.presets import engine as engine_preset
from costmodel.presets import hardware as hardware_preset
from costmodel.presets import model as model_preset
from costmodel.quant import weight_format
from costmodel.roofline import default_act_bytes
from costmodel.specs import ModelSpec
from costmodel.units import GIB

pd = deferred("pandas")

GPUS = ("h100-sxm", "h200", "mi300x", "l40s")
QUANTS = (None, "fp8", "int4-g128")
TPS = (1, 2, 4, 8)
PPS = (1, 2)
EPS = (1, 8, 16)
CONCURRENCIES = (8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
BATCHED_TOKENS = (2048, 4096, 8192, 16384)
MAX_REPLICAS = 64
MAX_GPUS_PER_INSTANCE = 16
MAX_UTILIZATION = 0.8
#: The step table's grid: decode rows and prompt tokens of a step.
D_GRID = np.array([0, 1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384,
                   512, 640, 768, 1024, 1536, 2048], dtype=float)
P_GRID = np.array([0, 16, 64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 2560, 3072, 4096,
                   5120, 6144, 8192, 10240, 12288, 16384, 24576, 32768], dtype=float)
#: Fixed-point iterations on the table, then priced exactly from the table's solution.
TABLE_ITERATIONS, POLISH = 15, 6
COLUMNS = ["rank", "gpu", "gpus", "replicas", "tp", "pp", "ep", "quant", "max_batched_tokens",
           "max_concurrency", "ttft_s", "tpot_s", "utilization", "saturation_rate",
           "usd_per_hour", "usd_per_mtok", "usd_per_mtok_input", "usd_per_mtok_output",
           "tokens_per_s_per_gpu", "tokens_per_s_per_user", "watts_per_gpu", "j_per_token",
           "kwh_per_mtok", "kv_tokens", "weights_gib", "activation_gib", "kv_gib", "pareto"]


@dataclass(frozen=True)
class _Deps:
    """The deployments of a search, as parallel arrays (one entry per deployment)."""

    items: list                 # Deployment objects
    hw: np.ndarray              # index into the hardware list
    tp: np.ndarray
    pp: np.ndarray
    ep: np.ndarray
    gpus: np.ndarray
    price: np.ndarray
    weights: np.ndarray
    kv_token: np.ndarray
    budget: np.ndarray
    f_decode: np.ndarray
    f_prompt: np.ndarray


def _quant_label(m: ModelSpec, quant: str | None) -> str:
    return quant or m.weight_format or "bf16"


def _deployments(m: ModelSpec, hws: list, quants: Sequence, tps, pps, eps, kv_bytes,
                 engine, request_len: int, gpu_memory_utilization: float, max_gpus: int,
                 prices: dict, percentile: int) -> _Deps:
    items, rows = [], []
    for hi, h in enumerate(hws):
        usd = cost.gpu_price(h, prices)
        for quant in quants:
            for tp in tps:
                try:
                    check_tp(m, tp)
                except ValueError:
                    continue
                for ep in (eps if m.moe else (1,)):
                    try:
                        check_parallel(m, tp, ep)
                    except ValueError:
                        continue
                    for pp in pps:
                        if pp > m.n_layers or max(tp, ep) * pp > max_gpus:
                            continue
                        if max(tp, ep) * pp > 1 and h.interconnect_bandwidth <= 0:
                            continue
                        dep = Deployment(m, h, tp, pp, ep, quant, kv_bytes, engine)
                        prec = dep.precision
                        w, kv_tok = shards(m, tp, pp, ep, prec.weight_bytes,
                                           prec.expert_weight_bytes, kv_bytes, request_len)
                        budget = gpu_memory_utilization * (h.memory_bytes - DRIVER_RESERVE)
                        if w >= budget:
                            continue
                        fd, fp = band_factors(dep, percentile)
                        items.append(dep)
                        rows.append((hi, tp, pp, ep, dep.gpus, usd, w, kv_tok, budget, fd,
                                     fp))
    if not items:
        names = ", ".join(h.name for h in hws)
        raise ValueError(f"gpus: {m.name} fits on none of {names} with at most {max_gpus} "
                         f"GPUs per instance (TP {list(tps)}, PP {list(pps)}); add GPUs, "
                         "allow more per instance or quantize")
    cols = list(zip(*rows, strict=True))
    return _Deps(items, *(np.array(c, dtype=float) for c in cols))


def _tables(m: ModelSpec, deps: _Deps, hws: list, input_len: float, output_len: float):
    """Cycle time of every deployment on the (D, P) grid: shape (deployments, D, P)."""
    context = float(batching.decode_context(input_len, output_len))
    s = float(input_len)
    D = D_GRID[:, None]
    P = P_GRID[None, :]
    out = np.empty((len(deps.items), D_GRID.size, P_GRID.size))
    groups: dict = {}
    for i, dep in enumerate(deps.items):   # one TP per call with EP (the attention replicas)
        groups.setdefault((int(deps.hw[i]), dep.quant, dep.ep, dep.tp if dep.ep > 1 else 0),
                          []).append(i)
    for (hi, quant, ep, _), idx in groups.items():
        h = hws[hi]
        tps = np.array([deps.items[i].tp for i in idx], dtype=float)[:, None, None]
        st = steps(m, h, D[None], 1.0, context, tps, ep,
                   groups=[(P[None] / s, np.where(P[None] > 0, s, 0.0), 0.0)], quant=quant,
                   kv_bytes=deps.items[idx[0]].kv_bytes, engine=deps.items[idx[0]].engine)
        shape = (len(idx), D_GRID.size, P_GRID.size)
        time = np.broadcast_to(st.time, shape)
        layer = np.broadcast_to(st.layer_time, shape)
        pps = np.array([deps.items[i].pp for i in idx], dtype=float)[:, None, None]
        act = default_act_bytes(deps.items[idx[0]].precision.weight_bytes)
        out[idx] = cycle_time(time, layer, D[None] + P[None], m.n_layers, pps, m.d_model,
                              act, h.interconnect_bandwidth, h.interconnect_latency)
    return out


def _table_step(tables: np.ndarray, e: np.ndarray, f_decode, f_prompt):
    """``step(D, P)`` for candidates of deployments ``e``: bilinear in the deployment's table
    (D and P clipped to the grid), times the band factor of the step's kind."""
    flat = tables.reshape(-1)
    n_p = P_GRID.size
    base = e.astype(np.int64) * (D_GRID.size * n_p)

    def step(D, P):
        D = np.clip(np.asarray(D, dtype=float), 0, D_GRID[-1])
        P = np.clip(np.asarray(P, dtype=float), 0, P_GRID[-1])
        i = np.minimum(np.searchsorted(D_GRID, D, side="right") - 1, D_GRID.size - 2)
        j = np.minimum(np.searchsorted(P_GRID, P, side="right") - 1, n_p - 2)
        a = (D - D_GRID[i]) / (D_GRID[i + 1] - D_GRID[i])
        b = (P - P_GRID[j]) / (P_GRID[j + 1] - P_GRID[j])
        idx = base + i * n_p + j
        lo = flat[idx] + a * (flat[idx + n_p] - flat[idx])
        hi = flat[idx + 1] + a * (flat[idx + n_p + 1] - flat[idx + 1])
        return (lo + b * (hi - lo)) * np.where(P > 0, f_prompt, f_decode)

    return step


def _exact_step(m: ModelSpec, deps: _Deps, hws: list, e: np.ndarray, input_len: float,
                output_len: float):
    """``step(D, P)`` priced exactly by :func:`costmodel.grid.steps` for candidates of
    deployments ``e`` (one call per GPU type, format and EP; TP and PP as arrays)."""
    context = float(batching.decode_context(input_len, output_len))
    s = float(input_len)
    groups: dict = {}
    for row, i in enumerate(e):
        dep = deps.items[int(i)]
        groups.setdefault((int(deps.hw[int(i)]), dep.quant, dep.ep,
                           dep.tp if dep.ep > 1 else 0), []).append(row)
    groups = {k: np.array(v) for k, v in groups.items()}
    fd, fp = deps.f_decode[e], deps.f_prompt[e]

    def step(D, P):
        D = np.broadcast_to(np.asarray(D, dtype=float), e.shape)
        P = np.broadcast_to(np.asarray(P, dtype=float), e.shape)
        out = np.empty(e.shape)
        for (hi, quant, ep, _), rows in groups.items():
            h = hws[hi]
            first = deps.items[int(e[rows[0]])]
            tp = deps.tp[e[rows]]
            pp = deps.pp[e[rows]]
            st = steps(m, h, D[rows], 1.0, context, tp, ep,
                       groups=[(P[rows] / s, np.where(P[rows] > 0, s, 0.0), 0.0)],
                       quant=quant, kv_bytes=first.kv_bytes, engine=first.engine)
            act = default_act_bytes(first.precision.weight_bytes)
            out[rows] = cycle_time(st.time, st.layer_time, D[rows] + P[rows], m.n_layers, pp,
                                   m.d_model, act, h.interconnect_bandwidth,
                                   h.interconnect_latency)
        return out * np.where(P > 0, fp, fd)

    return step


def _check_list(name: str, values, check) -> list:
    if isinstance(values, (str, int, float)) or values is None:
        values = [values]
    out = []
    for v in values:
        c = check(v)
        if all(c is not o and c != o for o in out):
            out.append(c)
    if not out:
        raise ValueError(f"{name}: give at least one")
    return out


def _quant(m: ModelSpec, q):
    if q in (None, "default", "checkpoint"):
        return None
    weight_format(q)
    return q


def plan(m: ModelSpec | str, gpus: Sequence = GPUS, *, rate: float, input_len: float,
         output_len: float, ttft: float, tpot: float, quants: Sequence = QUANTS,
         tps: Sequence[int] = TPS, pps: Sequence[int] = PPS, eps: Sequence[int] = EPS,
         concurrencies: Sequence[int] = CONCURRENCIES,
         batched_tokens: Sequence[int] = BATCHED_TOKENS, max_replicas: int = MAX_REPLICAS,
         max_gpus_per_instance: int = MAX_GPUS_PER_INSTANCE, engine=DEFAULT_ENGINE,
         kv_bytes: float = 2, arrivals: str = "poisson", input_spread: float = 0.0,
         output_spread: float = 0.0, percentile: int = 50,
         max_utilization: float = MAX_UTILIZATION,
         gpu_memory_utilization: float = GPU_MEMORY_UTILIZATION, prices: dict | None = None,
         top: int | None = None):
    """The deployments of ``m`` on ``gpus`` that serve ``rate`` requests/s of ``input_len``
    prompt and ``output_len`` output tokens with TTFT ≤ ``ttft`` and TPOT ≤ ``tpot`` seconds,
    cheapest first (see the module docstring): a DataFrame with one row per (deployment, K, N)
    at its fewest replicas (``top``: the first rows only). ``attrs`` holds the number of
    candidates (all of them checked for memory; ``solved``: those that fit, whose steady state
    was solved), the seconds the search took and the targets. When nothing meets the targets a
    ValueError names the target and the closest configuration."""
    started = clock.perf_counter()
    m = model_preset(m)
    traffic = batching.Traffic(rate, input_len, output_len, input_spread, output_spread,
                               arrivals)
    t_ttft = check_number("ttft", ttft, 0.0, 3600.0)
    t_tpot = check_number("tpot", tpot, 0.0, 3600.0)
    hws = _check_list("gpus", gpus, hardware_preset)
    hws = list({h.name: h for h in hws}.values())
    quants = _check_list("quants", quants, lambda q: _quant(m, q))
    tps = _check_list("tps", tps, lambda v: check_int("tps", v, 1, 1024))
    pps = _check_list("pps", pps, lambda v: check_int("pps", v, 1, 1024))
    eps = _check_list("eps", eps, lambda v: check_int("eps", v, 1, 4096))
    Ns = _check_list("concurrencies", concurrencies,
                     lambda v: check_int("concurrencies", v, 1, int(D_GRID[-1])))
    Ks = _check_list("batched_tokens", batched_tokens,
                     lambda v: check_int("batched_tokens", v, 1, int(P_GRID[-1])))
    max_replicas = check_int("max_replicas", max_replicas, 1, 4096)
    max_gpus = check_int("max_gpus_per_instance", max_gpus_per_instance, 1, 4096)
    check_element_bytes("kv_bytes", kv_bytes)
    check_choice("percentile", str(percentile), [str(p) for p in PERCENTILES])
    max_util = check_number("max_utilization", max_utilization, 0.0, 1.0)
    prices = cost.check_prices(prices)
    profile = None if engine is None else engine_preset(engine)
    if top is not None:
        top = check_int("top", top, 1, 10**9)
    request_len = traffic.request_len
    deps = _deployments(m, hws, quants, tps, pps, eps, kv_bytes, profile, request_len,
                        gpu_memory_utilization, max_gpus, prices, percentile)
    tables = _tables(m, deps, hws, traffic.input_len, traffic.output_len)

    # ---- memory of each (deployment, K, N): the profile step's activation (K tokens, N rows
    # of logits) and the KV blocks left must hold N requests per micro-batch
    n_dep = len(deps.items)
    e, K, N = (a.ravel() for a in np.meshgrid(np.arange(n_dep), np.array(Ks, dtype=float),
                                              np.array(Ns, dtype=float), indexing="ij"))
    act = np.empty(e.size)
    for i, dep in enumerate(deps.items):
        rows = slice(i * len(Ks) * len(Ns), (i + 1) * len(Ks) * len(Ns))
        prec = dep.precision
        fwd = forward_activation(m, K[rows], dep.tp, dep.ep, prec.weight_bytes,
                                 prec.expert_weight_bytes, None, kv_bytes)
        act[rows] = np.maximum(fwd, sampler_activation(m, N[rows]))
    kv, blocks = kv_blocks(deps.budget[e], deps.weights[e], act, NON_TORCH, 0.0,
                           deps.kv_token[e], BLOCK_SIZE)
    max_requests = blocks // math.ceil(request_len / BLOCK_SIZE)
    fits = (max_requests >= N * deps.pp[e]) & (K >= N)
    if traffic.arrivals == "poisson":   # the analytic model's validated range (batching)
        fits &= K >= traffic.input_len + traffic.input_spread + N
    if not fits.any():
        raise ValueError(f"concurrencies: no deployment's KV cache holds "
                         f"{min(Ns)} requests of {request_len:,} tokens; lower the "
                         "concurrencies or the lengths, or allow more GPUs per instance")
    candidates = e.size * max_replicas
    # ---- candidates: the configurations that fit × replicas
    keep = np.flatnonzero(fits)
    reps = np.arange(1, max_replicas + 1, dtype=float)
    c = np.repeat(keep, max_replicas)
    e, K, N, act, kv = e[c], K[c], N[c], act[c], kv[c]
    R = np.tile(reps, keep.size)
    pp = deps.pp[e]
    lam = traffic.rate / (R * pp)
    step = _table_step(tables, e, deps.f_decode[e], deps.f_prompt[e])
    solved = e.size
    ss = batching.steady_state(step, lam, traffic.input_len, traffic.output_len, K, N,
                               traffic.arrivals, traffic.input_spread, iterations=TABLE_ITERATIONS)
    ok = (ss["ttft"] <= t_ttft) & (ss["tpot"] <= t_tpot) & (ss["utilization"] <= max_util)
    if not ok.any():
        raise ValueError(_closest(m, deps, e, K, N, R, ss, traffic, t_ttft, t_tpot, max_util))
    # the fewest replicas of each (deployment, K, N) that meet the targets
    idx = np.flatnonzero(ok)
    key = (e[idx] * 10**6 + K[idx]) * 10**4 + N[idx]
    order = np.lexsort((R[idx], key))
    first = np.ones(order.size, dtype=bool)
    first[1:] = key[order][1:] != key[order][:-1]
    best = idx[order[first]]
    e, K, N, R, act, kv = e[best], K[best], N[best], R[best], act[best], kv[best]
    pp = deps.pp[e]
    lam = traffic.rate / (R * pp)
    exact = _exact_step(m, deps, hws, e, traffic.input_len, traffic.output_len)
    ss = batching.steady_state(exact, lam, traffic.input_len, traffic.output_len, K, N,
                               traffic.arrivals, traffic.input_spread,
                               start=(ss["step"][best], ss["prefill_share"][best]),
                               iterations=POLISH)
    met = (ss["ttft"] <= t_ttft) & (ss["tpot"] <= t_tpot) & (ss["utilization"] <= max_util)
    df = _frame(m, deps, hws, e, K, N, R, act, kv, ss, traffic, met)
    if df.empty:
        raise ValueError(_closest(m, deps, e, K, N, R, ss, traffic, t_ttft, t_tpot, max_util))
    df.attrs.update({"candidates": int(candidates), "solved": int(solved),
                     "seconds": clock.perf_counter() - started,
                     "deployments": n_dep, "model": m.name, "rate": traffic.rate,
                     "input_len": traffic.input_len, "output_len": traffic.output_len,
                     "ttft": t_ttft, "tpot": t_tpot, "percentile": percentile,
                     "arrivals": traffic.arrivals, "max_utilization": max_util})
    return df if top is None else df.head(top)


def _frame(m, deps, hws, e, K, N, R, act, kv, ss, traffic, met):
    """The kept rows as a ranked DataFrame with cost, energy and the Pareto mark."""
    gpus = deps.gpus[e] * R
    share = ss["prefill_share"] * (ss["t1"] - ss["t0"]) / ss["step"]
    money = cost.money(gpus, deps.price[e], traffic.rate, traffic.input_len,
                       traffic.output_len, share)
    lam = traffic.rate / (R * deps.pp[e])
    watts = np.empty(e.size)
    busy = utilisation(ss["ttft"], ss["tpot"], traffic.output_len, lam)
    for hi, h in enumerate(hws):
        rows = deps.hw[e] == hi
        if rows.any():
            watts[rows] = cost.power(h, busy[rows])
    tokens = traffic.rate * (traffic.input_len + traffic.output_len)
    j = gpus * watts / tokens
    data = {
        "gpu": [hws[int(deps.hw[i])].name for i in e], "gpus": gpus.astype(int),
        "replicas": R.astype(int), "tp": deps.tp[e].astype(int), "pp": deps.pp[e].astype(int),
        "ep": deps.ep[e].astype(int),
        "quant": [_quant_label(m, deps.items[int(i)].quant) for i in e],
        "max_batched_tokens": K.astype(int), "max_concurrency": N.astype(int),
        "ttft_s": ss["ttft"], "tpot_s": ss["tpot"], "utilization": ss["utilization"],
        "saturation_rate": ss["saturation_rate"] * deps.pp[e],
        **money,
        "tokens_per_s_per_gpu": traffic.rate * traffic.output_len / gpus,
        "tokens_per_s_per_user": 1 / ss["tpot"], "watts_per_gpu": watts, "j_per_token": j,
        "kwh_per_mtok": j * 1e6 / cost.JOULES_PER_KWH,
        "kv_tokens": (kv / deps.kv_token[e] // BLOCK_SIZE * BLOCK_SIZE).astype(np.int64),
        "weights_gib": deps.weights[e] / GIB, "activation_gib": act / GIB,
        "kv_gib": kv / GIB,
    }
    df = pd.DataFrame(data)[met].reset_index(drop=True)
    df = df.sort_values(["usd_per_hour", "gpus", "ttft_s", "max_concurrency",
                         "max_batched_tokens"], kind="mergesort")
    # one row per deployment and replica count: the (K, N) with the best TTFT, then the least
    # memory (the cost is the same)
    df = df.drop_duplicates(["gpu", "tp", "pp", "ep", "quant", "replicas"])
    df = df.reset_index(drop=True)
    x, y = df["tokens_per_s_per_gpu"].to_numpy(), df["tokens_per_s_per_user"].to_numpy()
    dominated = np.zeros(len(df), dtype=bool)
    order = np.lexsort((-y, -x))
    best_y = -np.inf
    for i in order:                       # by x descending: dominated if a larger x has ≥ y
        if y[i] <= best_y:
            dominated[i] = True
        best_y = max(best_y, y[i])
    df["pareto"] = ~dominated
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df[COLUMNS]


def _closest(m, deps, e, K, N, R, ss, traffic, t_ttft, t_tpot, max_util) -> str:
    """One line: which target nothing meets, and the configuration closest to meeting all."""
    with np.errstate(invalid="ignore", divide="ignore"):
        miss = np.maximum.reduce([ss["ttft"] / t_ttft, ss["tpot"] / t_tpot,
                                  ss["utilization"] / max_util])
    miss = np.where(np.isfinite(miss), miss, np.inf)
    i = int(np.argmin(miss))
    targets = f"TTFT ≤ {_ms(t_ttft)} and TPOT ≤ {_ms(t_tpot)} at {traffic.rate:g} requests/s"
    if not np.isfinite(miss[i]):
        return (f"rate: nothing serves {traffic.rate:g} requests/s below saturation with up "
                f"to {int(R.max())} replicas; allow more replicas or GPUs")
    dep = deps.items[int(e[i])]
    worst = max((("ttft", ss["ttft"][i] / t_ttft), ("tpot", ss["tpot"][i] / t_tpot),
                 ("max_utilization", ss["utilization"][i] / max_util)), key=lambda kv: kv[1])
    name = worst[0]
    what = {"ttft": f"TTFT ≤ {_ms(t_ttft)}", "tpot": f"TPOT ≤ {_ms(t_tpot)}",
            "max_utilization": f"utilisation ≤ {max_util:.0%}"}[name]
    return (f"{name}: nothing meets {what} ({targets}); the closest is "
            f"{dep.label()} × {int(R[i])} (K={int(K[i])}, N={int(N[i])}): TTFT "
            f"{_ms(float(ss['ttft'][i]))}, TPOT {_ms(float(ss['tpot'][i]))}, utilisation "
            f"{float(ss['utilization'][i]):.0%}")


def _ms(seconds: float) -> str:
    if not np.isfinite(seconds):
        return "∞"
    return f"{seconds * 1e3:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


__all__ = ["BATCHED_TOKENS", "COLUMNS", "CONCURRENCIES", "D_GRID", "EPS", "GPUS",
           "MAX_GPUS_PER_INSTANCE", "MAX_REPLICAS", "MAX_UTILIZATION", "PPS", "P_GRID", "QUANTS",
           "TPS", "plan"]
