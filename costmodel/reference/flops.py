"""Counting a pass's FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` — the oracle the
exact checks hold the operator model against.

FlopCounterMode counts matmuls (2 FLOPs per multiply-add) and the attention kernels; torch
registers one formula for its fused attention kernels on CUDA (flash, memory-efficient,
cuDNN: ``sdpa_flop_count``, every q×K score of the square) and none for the CPU kernel of
``F.scaled_dot_product_attention``; :func:`flop_counter` maps the CPU kernel to that same
formula, so a CPU pass counts what the CUDA pass counts.

    n = count_flops(lambda: model(idx))                    # an int
    n = count_flops(lambda: hf(idx), exclude=("rotary_emb",))

``exclude`` leaves out the modules of those names: Hugging Face computes its rotary angles with
a (d_h/2 × 1)·(1 × T) matmul in ``rotary_emb``, which is not an operator of the model's layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_sdpa(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that also counts the CPU kernel of scaled-dot-product attention."""
    mapping = {}
    cpu = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu is not None:
        mapping[cpu] = _cpu_sdpa
    return FlopCounterMode(display=False, custom_mapping=mapping)


def count_flops(fn: Callable[[], Any], exclude: Sequence[str] = ()) -> tuple[int, Any]:
    """(FLOPs counted while ``fn()`` runs, its result), leaving out the modules whose last
    name is in ``exclude``."""
    counter = flop_counter()
    with counter:
        result = fn()
    total = int(counter.get_total_flops())
    if exclude:
        for name, ops in counter.get_flop_counts().items():
            if name.split(".")[-1] in exclude:
                total -= int(sum(ops.values()))
    return total, result


__all__ = ["count_flops", "flop_counter"]
