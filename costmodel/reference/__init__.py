"""The PyTorch reference model: GPT with no / dynamic / static KV cache, speculative decoding,
weight loading, in-repo training, the E0294 teaching model, benchmarks, and timing.

Optional extra ``torch``: the model modules need it; ``config`` (``GPTConfig``) and ``timing``
(machine description, statistics) import without it. The names below load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {"GPT": "costmodel.reference.gpt", "GPTConfig": "costmodel.reference.config",
        "generate_speculative": "costmodel.reference.speculative"}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'costmodel.reference' has no attribute {name!r}")
