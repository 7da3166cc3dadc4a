"""A step-by-step simulation of the scheduling policy of :mod:`costmodel.plan.batching`, for
the tests only (not a product feature): FCFS arrivals, every step one token for each decoding
request, then the rest of the token budget K to prompts in arrival order — whole or in chunks —
while fewer than N requests run; a prompt's first token at the end of the step that finishes
it, the next n − 1 one per step.

Step times come from a table of the same step function the analytic model is given (exact at
its nodes: every decode count 0…N and prompt tokens in steps of 16, linear in between), so the
test compares the queueing, not two pricings.
"""

from __future__ import annotations

from collections import deque

import numpy as np

GRAIN = 16


def step_table(step, max_decodes: int, max_tokens: int) -> np.ndarray:
    """``step`` at every decode count 0…max_decodes × prompt tokens 0, 16, … ≥ max_tokens."""
    D = np.arange(0, max_decodes + 1, dtype=float)[:, None]
    P = np.arange(0, max_tokens + 2 * GRAIN, GRAIN, dtype=float)[None, :]
    return np.broadcast_to(step(D, P), (D.size, P.size)).copy()


def table_step(table: np.ndarray):
    """A step function reading ``table``: exact at integer D, linear in P between nodes (and
    linear in D between integers, for the analytic model's mean decode counts)."""

    def step(D, P):
        D = np.clip(np.asarray(D, dtype=float), 0, table.shape[0] - 1)
        P = np.clip(np.asarray(P, dtype=float), 0, (table.shape[1] - 1) * GRAIN)
        i = np.minimum(np.floor(D).astype(int), table.shape[0] - 2)
        j = np.minimum(np.floor(P / GRAIN).astype(int), table.shape[1] - 2)
        a, b = D - i, P / GRAIN - j
        lo = table[i, j] + a * (table[i + 1, j] - table[i, j])
        hi = table[i, j + 1] + a * (table[i + 1, j + 1] - table[i, j + 1])
        return lo + b * (hi - lo)

    return step


def simulate(table: np.ndarray, rate: float, input_len: int, output_len: int,
             max_batched_tokens: int, max_concurrency: int, requests: int = 8000,
             arrivals: str = "poisson", seed: int = 0, warmup: float = 0.1) -> dict:
    """Mean TTFT, TPOT (s) and output tokens/s of ``requests`` requests (the first ``warmup``
    share and the last 5 % left out of the means)."""
    step = table_step(table)
    rng = np.random.default_rng(seed)
    if arrivals == "poisson":     # exponential gaps, scaled so the realised rate is ``rate``
        gaps = rng.exponential(1 / rate, requests)
        arrive = np.cumsum(gaps * (requests / rate) / gaps.sum())
    else:
        arrive = (np.arange(requests) + rng.random()) / rate
    waiting: deque = deque()
    prefill: list = []            # [request, prompt tokens left]
    decode: list = []             # [request, tokens left]
    first = np.full(requests, np.nan)
    done = np.full(requests, np.nan)
    now, nxt = 0.0, 0
    K, N = max_batched_tokens, max_concurrency
    while True:
        while nxt < requests and arrive[nxt] <= now:
            waiting.append(nxt)
            nxt += 1
        D = len(decode)
        budget = K - D
        chunks = []
        for r in prefill:
            if budget <= 0:
                break
            x = min(r[1], budget)
            chunks.append((r, x))
            budget -= x
        while waiting and budget > 0 and len(prefill) + len(decode) < N:
            r = [waiting.popleft(), input_len]
            prefill.append(r)
            x = min(input_len, budget)
            chunks.append((r, x))
            budget -= x
        P = sum(x for _, x in chunks)
        if D == 0 and P == 0:
            if nxt >= requests:
                break
            now = arrive[nxt]
            continue
        now += float(step(D, P))
        still = []
        for r in decode:
            r[1] -= 1
            if r[1] == 0:
                done[r[0]] = now
            else:
                still.append(r)
        for r, x in chunks:
            r[1] -= x
        left = []
        for r in prefill:
            if r[1] == 0:
                first[r[0]] = now
                if output_len > 1:
                    still.append([r[0], output_len - 1])
                else:
                    done[r[0]] = now
            else:
                left.append(r)
        prefill, decode = left, still
    lo, hi = int(warmup * requests), int(0.95 * requests)
    ttft = first[lo:hi] - arrive[lo:hi]
    tpot = (done[lo:hi] - first[lo:hi]) / max(output_len - 1, 1)
    span = done[hi - 1] - arrive[lo]
    return {"ttft": float(np.mean(ttft)), "tpot": float(np.mean(tpot)),
            "output_tokens_per_s": (hi - lo) * output_len / span}
