"""One measured pass of the reference model, ready to run: the reference model's
(:func:`reference_pass`), an engine's (:func:`engine_pass`) and its FLOPs on the meta device
(:func:`meta_flops`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from costmodel.validation.io import measured_workload

# --------------------------------------------------------------------------- one pass


@dataclass
class ReferencePass:
    """A pass of the reference model ready to run: ``run()`` is the forward call that is
    timed (and FLOP-counted); ``kv_cache_bytes`` the bytes its cache holds; ``static_max_len``
    the static cache's length (0 without one)."""

    run: Callable[[], Any]
    kv_cache_bytes: int
    static_max_len: int
    after: Callable[[], Any] | None = None
    exclude: tuple = field(default_factory=tuple)


@contextmanager
def reference_pass(model, phase: str, context_ids, next_ids,
                   static_max_len: int | None = None, fill=None,
                   prefill_cache: bool = True) -> Iterator[ReferencePass]:
    """Set up the pass of ``phase`` on ``model`` (a ``costmodel.reference.gpt.GPT``) with
    ``context_ids`` (B, s) and ``next_ids`` (B, 1): prefill and no-cache run the s context
    tokens; a decode step runs one token on a cache holding them (dynamic: the growing cache,
    left unchanged by the step, which rewrites row s of its buffer; static: a preallocated
    cache of ``static_max_len`` positions, default the block size, the step rewriting position
    s). The KV bytes are those the cache holds after the pass (dynamic: the rows it holds;
    static: the allocation). The static cache is released on exit. ``fill``: a context
    manager the cache is filled in (the compiled engine fills it eagerly);
    ``prefill_cache=False``: a decode step's cache is not filled by a prefill but holds zeros
    (``GPT.blank_kv_cache``; a static cache as allocated) — the same step, without paying for
    the prefill. Call inside ``torch.inference_mode()``."""
    B, s = context_ids.shape
    q, c, cache = measured_workload(phase, s)
    kv_bytes, max_len = 0, 0
    fill = fill or nullcontext
    try:
        if phase == "prefill":
            def run():
                return model(context_ids, kv_cache=model.empty_kv_cache())
            kv_bytes = run()[2].nbytes
        elif cache == "dynamic":
            if prefill_cache:
                with fill():
                    _, _, kv = model(context_ids, kv_cache=model.empty_kv_cache())
            else:
                kv = model.blank_kv_cache(B, s)

            def run():
                return model(next_ids, kv_cache=kv)   # writes row s of the buffer each call
            kv_bytes = run()[2].nbytes
        elif cache == "static":
            max_len = model.config.block_size if static_max_len is None else static_max_len
            model.setup_static_cache(B, max_len)
            if prefill_cache:
                with fill():
                    model(context_ids, input_pos=0)

            def run():
                return model(next_ids, input_pos=c)   # rewrites position c each call
            run()
            kv_bytes = model.static_cache_nbytes
        else:
            def run():
                return model(context_ids)
        yield ReferencePass(run, int(kv_bytes), int(max_len))
    finally:
        model.clear_static_cache()


@contextmanager
def engine_pass(engine: str, model, phase: str, context_ids, next_ids,
                static_max_len: int | None = None,
                prefill_cache: bool = True) -> Iterator[ReferencePass]:
    """:func:`reference_pass` for the reference model's engines, the Hugging Face pass
    (:func:`costmodel.reference.engines.hf_pass`, whose caches are always filled by a
    prefill) for ``hf``."""
    if engine == "hf":
        from costmodel.reference.engines import hf_pass

        with hf_pass(model, phase, context_ids, next_ids, static_max_len) as p:
            yield ReferencePass(p.run, p.kv_cache_bytes, p.static_max_len, p.after, p.exclude)
    else:
        fill = None
        if engine == "compiled":
            from costmodel.reference.engines import eager_stance

            fill = eager_stance
        with reference_pass(model, phase, context_ids, next_ids, static_max_len, fill,
                            prefill_cache) as p:
            yield p


def meta_flops(config, phase: str, batch: int, context: int, static_max_len: int = 0,
               models: dict | None = None) -> int:
    """FLOPs FlopCounterMode counts for one measured pass of the reference model (``phase`` at
    ``context`` s, ``batch`` sequences) built on the meta device (no weights, no work; a
    mixture of experts spreads its assignments evenly there — the same FLOPs). ``models``
    caches the built models by config."""
    import torch

    from costmodel.reference.flops import count_flops
    from costmodel.reference.gpt import GPT

    measured_workload(phase, context)          # a ValueError naming a bad phase or context
    key = json.dumps(config.to_dict(), sort_keys=True)
    store = models if models is not None else {}
    if key not in store:
        with torch.device("meta"):
            store[key] = GPT(config).eval()
    model = store[key]
    ids = torch.zeros(batch, context, dtype=torch.long, device="meta")
    nxt = torch.zeros(batch, 1, dtype=torch.long, device="meta")
    with torch.inference_mode(), \
            reference_pass(model, phase, ids, nxt, static_max_len or None) as p:
        return count_flops(p.run)[0]
