"""Plan a deployment: serving memory as engines size it (``memory``), continuous batching with
chunked prefill (``batching``), pipeline parallelism (``pipeline``), cost and energy (``cost``),
one configuration served (``serving``) and the SLO-aware search (``search``).

The package itself is callable: ``cm.plan(model, gpus, rate=…, input_len=…, output_len=…,
ttft=…, tpot=…)`` is :func:`costmodel.plan.search.plan`.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def plan(*args: Any, **kwargs: Any):
    """:func:`costmodel.plan.search.plan` (imported on first use)."""
    from costmodel.plan.search import plan as search_plan

    return search_plan(*args, **kwargs)


class _CallablePackage(types.ModuleType):
    """This package, callable as :func:`plan` (``cm.plan(...)``, whichever of the package and
    the function ``import costmodel`` hands out first)."""

    def __call__(self, *args: Any, **kwargs: Any):
        return plan(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage

__all__ = ["plan"]
