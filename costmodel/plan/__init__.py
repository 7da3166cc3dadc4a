"""Plan a deployment: serving memory as engines size it (``memory``), continuous batching with
chunked prefill (``batching``), pipeline parallelism (``pipeline``), cost and energy (``cost``),
one configuration served (``serving``), the SLO-aware search (``search``), vLLM's logs held
against the memory (``logs``) and the Pareto chart (``figures``).

The package itself is callable: ``cm.plan(model, gpus, rate=…, input_len=…, output_len=…,
ttft=…, tpot=…)`` is :func:`costmodel.plan.search.plan`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from costmodel.plan.search import plan


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`plan` (``cm.plan(...)``, whichever of the package and
    the function ``import costmodel`` hands out first)."""

    def __call__(self, *args: Any, **kwargs: Any):
        return plan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["plan"]
