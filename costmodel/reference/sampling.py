"""Next-token choice for the reference models: temperature and top-k filtering of logits, and
the greedy or sampled next token."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """Scale by temperature (0 means greedy: unscaled) and keep the top-k logits (others -inf)."""
    logits = logits.float()
    if temperature and temperature > 0:
        logits = logits / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits = logits.masked_fill(logits < v[..., [-1]], float("-inf"))
    return logits


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    do_sample: bool = False,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Next token (B, 1) from last-position logits (B, V): sampled, or argmax when greedy."""
    if not do_sample or temperature == 0:
        return torch.argmax(logits, dim=-1, keepdim=True)
    probs = F.softmax(filter_logits(logits, temperature, top_k), dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)
