r"""Pipeline parallelism beside TP and EP: stages, their imbalance, bubbles, and the
point-to-point hand-over of activations.

PP stages split the L layers; L need not divide by PP, so the stages hold ⌈L/PP⌉ or ⌊L/PP⌋
layers (the larger ones first, and the first or last stage also holds the embeddings or the
LM head). A step of one micro-batch crosses every stage and PP − 1 links:

    t_stage,max = t_layers · ⌈L/PP⌉ / L + t_rest         (t_rest: embeddings, head, overhead)
    t_p2p       = T · d · b_a / β_link + latency          (T tokens of the micro-batch)
    latency     = Σ_s t_stage,s + (PP − 1) · t_p2p         (one micro-batch, pipeline empty)
    cycle       = PP · (t_stage,max + t_p2p)               (PP micro-batches in flight)

The engine keeps PP micro-batches in flight (vLLM's virtual engines), each serving 1/PP of the
requests; a request's next token waits for its micro-batch to come round: one ``cycle``. The
pipeline then works the fraction Σ_s t_stage,s / (PP · t_stage,max) of the time: the rest is
the bubble of unequal stages (1 − 1/imbalance), besides the PP − 1 links.
"""

from __future__ import annotations

import numpy as np

from costmodel.checks import check_int
from costmodel.pricing import p2p_time


def stage_layers(n_layers: int, pp: int) -> tuple[int, ...]:
    """Layers of each of ``pp`` stages, the larger first: ⌈L/PP⌉ on L mod PP stages."""
    n_layers = check_int("n_layers", n_layers, 1, 2**31 - 1)
    pp = check_int("pp", pp, 1, n_layers)
    base, extra = divmod(n_layers, pp)
    return tuple(base + 1 if i < extra else base for i in range(pp))


def imbalance(n_layers: int, pp: int) -> float:
    """The largest stage over the mean stage: ⌈L/PP⌉ / (L/PP) (1 when PP divides L)."""
    return stage_layers(n_layers, pp)[0] * pp / n_layers


def largest_stage(n_layers: int, pp):
    """⌈L/PP⌉: the layers of the largest stage (``pp`` may be an array)."""
    return np.ceil(n_layers / np.asarray(pp, dtype=float))


def stage_time(time, layer_time, n_layers: int, pp):
    """t_stage,max: the largest stage's share of the layers' time plus everything outside the
    layers (embeddings, head, the engine's fixed overhead), charged to it."""
    share = largest_stage(n_layers, pp) / n_layers
    return np.asarray(layer_time) * share + (np.asarray(time) - np.asarray(layer_time))


def handover_time(tokens, d_model: int, act_bytes: float, link_bandwidth: float,
                  latency: float):
    """t_p2p: one stage's activations (T · d · b_a bytes) sent to the next."""
    return p2p_time(np.asarray(tokens, dtype=float) * d_model * act_bytes, link_bandwidth,
                    latency)


def cycle_time(time, layer_time, tokens, n_layers: int, pp, d_model: int,
               act_bytes: float, link_bandwidth: float, latency: float):
    """Seconds between two steps of one micro-batch with PP micro-batches in flight:
    PP · (t_stage,max + t_p2p); the whole step's ``time`` when PP = 1 (``pp`` may be an
    array)."""
    pp = np.asarray(pp, dtype=float)
    if np.all(pp == 1):
        return np.asarray(time, dtype=float)
    hop = handover_time(tokens, d_model, act_bytes, link_bandwidth, latency)
    return np.where(pp > 1, pp * (stage_time(time, layer_time, n_layers, pp) + hop),
                    np.asarray(time, dtype=float))


def bubble(n_layers: int, pp: int) -> float:
    """Fraction of the pipeline's time its stages idle for unequal stages: 1 − 1/imbalance."""
    return 1 - 1 / imbalance(n_layers, pp)


__all__ = ["bubble", "cycle_time", "handover_time", "imbalance", "largest_stage", "stage_layers",
           "stage_time"]
