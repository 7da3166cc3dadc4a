"""The engines a measured pass runs on, and building models at real sizes.

* ``eager`` — the reference GPT (:mod:`costmodel.reference.gpt`) as written.
* ``compiled`` — the same model with every transformer block compiled by ``torch.compile``
  (regional compilation: the blocks share one compiled graph, so compiling a 48-layer model
  costs about one layer); on a GPU with ``mode="reduce-overhead"``, which replays CUDA graphs
  (gpt-fast's configuration for the static-cache decode step).
* ``hf`` — Hugging Face's implementation of the same config (``GPT2LMHeadModel``,
  ``LlamaForCausalLM``, ``MixtralForCausalLM``, ``MistralForCausalLM``) with its own random
  weights, SDPA attention, logits for the last position only (``logits_to_keep=1``), its
  ``DynamicCache`` (grown by ``torch.cat``) and ``StaticCache``.

:func:`build_gpt` creates the parameters on the target device in the target dtype (a
Llama-3-8B-shaped model initialises in a second on a GPU instead of minutes on the CPU).
:func:`hf_pass` is :func:`costmodel.validation.passes.reference_pass` for a Hugging Face
model: the same four measured passes.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from costmodel.reference.config import GPTConfig
from costmodel.reference.gpt import GPT
from costmodel.workload import MEASURED_PHASES, substitute

ENGINES = ("eager", "compiled", "hf")


@contextmanager
def eager_stance() -> Iterator[None]:
    """Run compiled code eagerly inside (``torch.compiler.set_stance("force_eager")``): a
    compiled model's cache is filled without compiling the prefill's shapes."""
    stance = getattr(torch.compiler, "set_stance", None)
    if stance is None:
        yield
        return
    with stance("force_eager"):
        yield


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(prev)


def build_gpt(config: GPTConfig, device: str = "cpu", dtype: torch.dtype = torch.float32,
              seed: int = 0) -> GPT:
    """The reference GPT of ``config`` with random weights (seeded), its parameters created on
    ``device`` in ``dtype``, in eval mode."""
    torch.manual_seed(seed)
    with torch.device(device), _default_dtype(dtype):
        model = GPT(config)
    return model.eval()


def compile_blocks(model: GPT, backend: str = "inductor", mode: str | None = None) -> GPT:
    """Compile every transformer block in place (``nn.Module.compile``) with dynamic shapes
    (one graph for every batch, context and cache length); ``mode`` (e.g.
    ``"reduce-overhead"``: CUDA graphs, recorded per shape) applies to the inductor backend.
    Returns the model."""
    kwargs: dict[str, Any] = {"backend": backend, "dynamic": True}
    if backend == "inductor" and mode:
        kwargs["mode"] = mode
    # the static cache's buffers change size with the batch and the context: let them be
    # symbolic too (Dynamo specialises parameter and buffer shapes by default); a fresh
    # start for each model (its sizes are constants of the graph), room for its recompiles
    config = torch._dynamo.config
    if hasattr(config, "force_parameter_static_shapes"):
        config.force_parameter_static_shapes = False
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 64))
            break
    torch.compiler.reset()
    for block in model.transformer.h:
        block.compile(**kwargs)
    return model


# --------------------------------------------------------------------------- Hugging Face


def hf_config(config: GPTConfig):
    """The Hugging Face config of the same model, or a ValueError saying why there is none:
    GPT-2 (learned positions, LayerNorm, tanh GELU, biases, tied head), Llama (rotary, RMSNorm,
    SwiGLU, no biases), Mistral (Llama with a window on every layer) and Mixtral (Llama with
    routed experts on every layer, no shared expert, no router bias)."""
    try:
        import transformers
    except ImportError:
        raise ValueError("hf: the Hugging Face engine needs transformers") from None
    c = config
    gpt2 = (c.positions == "learned" and c.norm == "layernorm" and c.mlp == "gelu"
            and c.bias and c.tie_embeddings and c.n_kv_head == c.n_head
            and c.gelu_approximate == "tanh")
    llama = c.positions == "rotary" and c.norm == "rmsnorm" and c.mlp == "swiglu" and not c.bias
    if c.n_experts and (c.n_shared_experts or c.dense_layers or c.router_bias):
        raise ValueError("hf: Mixtral has no shared experts, dense layers or router bias")
    if c.sliding_window and (c.window_layers != c.n_layer or c.n_experts):
        raise ValueError("hf: Mistral's window is on every layer and it has no experts")
    if gpt2 and not c.n_experts and not c.sliding_window:
        return transformers.GPT2Config(
            n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd, n_inner=c.d_ff,
            vocab_size=c.vocab_size, n_positions=c.block_size, layer_norm_epsilon=c.norm_eps,
            activation_function="gelu_new", bos_token_id=0, eos_token_id=0)
    if not llama:
        raise ValueError(f"hf: no Hugging Face class builds {c.name} (GPT-2 or Llama-style "
                         "models only)")
    common = dict(hidden_size=c.n_embd, num_hidden_layers=c.n_layer,
                  num_attention_heads=c.n_head, num_key_value_heads=c.n_kv_head,
                  vocab_size=c.vocab_size, max_position_embeddings=c.block_size,
                  rms_norm_eps=c.norm_eps, tie_word_embeddings=c.tie_embeddings,
                  rope_theta=c.rope_theta, bos_token_id=0, eos_token_id=0)
    if c.n_experts:
        return transformers.MixtralConfig(intermediate_size=c.d_ff_expert,
                                          num_local_experts=c.n_experts,
                                          num_experts_per_tok=c.experts_per_token,
                                          sliding_window=None, **common)
    if c.sliding_window:
        return transformers.MistralConfig(intermediate_size=c.d_ff,
                                          sliding_window=c.sliding_window, **common)
    return transformers.LlamaConfig(intermediate_size=c.d_ff, attention_bias=False,
                                    mlp_bias=False, **common)


def build_hf(config: GPTConfig, device: str = "cpu", dtype: torch.dtype = torch.float32,
             seed: int = 0, attn_implementation: str = "sdpa"):
    """Hugging Face's model of ``config`` (random weights, seeded) on ``device`` in ``dtype``,
    experts run by its eager loop."""
    import transformers

    cfg = hf_config(config)
    classes = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM",
               "mistral": "MistralForCausalLM", "mixtral": "MixtralForCausalLM"}
    cls = getattr(transformers, classes[cfg.model_type])
    torch.manual_seed(seed)
    kwargs: dict[str, Any] = {"attn_implementation": attn_implementation}
    if config.n_experts:
        kwargs["experts_implementation"] = "eager"
    with torch.device(device), _default_dtype(dtype):
        try:
            model = cls._from_config(cfg, **kwargs)
        except TypeError:                   # an older transformers: no experts_implementation
            kwargs.pop("experts_implementation", None)
            model = cls._from_config(cfg, **kwargs)
    return model.to(dtype).eval()


def cache_kwarg(model) -> str:
    """The keyword of the cache argument (``cache`` in newer transformers)."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _returned_cache(out):
    cache = getattr(out, "past_key_values", None)
    return cache if cache is not None else getattr(out, "cache", None)


def hf_cache_nbytes(cache) -> int:
    """Bytes of the K and V tensors a Hugging Face cache holds (its layers' ``keys`` and
    ``values``; a static cache: as allocated)."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return sum(int(t.nbytes) for layer in layers for t in (getattr(layer, "keys", None),
                                                                getattr(layer, "values", None))
                   if isinstance(t, torch.Tensor))
    return sum(int(t.nbytes) for layer in cache for t in layer)     # legacy tuples


@dataclass
class EnginePass:
    """A pass ready to run: ``run()`` is the call that is timed; ``after()`` (or None) is run
    untimed after each call (a Hugging Face dynamic cache cut back to the context);
    ``kv_cache_bytes``: the bytes the cache holds after a call; ``static_max_len``: the static
    cache's positions (0 without one)."""

    run: Any
    kv_cache_bytes: int
    static_max_len: int
    after: Any = None
    exclude: tuple = field(default_factory=tuple)   # modules FLOP counting leaves out


@contextmanager
def hf_pass(model, phase: str, context_ids: torch.Tensor, next_ids: torch.Tensor,
            static_max_len: int | None = None) -> Iterator[EnginePass]:
    """The pass of ``phase`` (a key of :data:`costmodel.workload.MEASURED_PHASES`) on a
    Hugging Face model, as the reference model's: prefill and no-cache run the s context tokens;
    a decode step runs one token on a cache holding them (dynamic: its ``DynamicCache``, cut
    back after each call; static: a ``StaticCache`` of ``static_max_len`` positions, default
    s + 1 — Hugging Face attends to every position of a static cache — the step rewriting
    position s). Call inside ``torch.inference_mode()``."""
    from transformers import StaticCache

    name, cache = MEASURED_PHASES[phase]
    s = int(context_ids.size(1))
    _, c = substitute(name, s)
    kw = cache_kwarg(model)
    exclude = ("rotary_emb",)
    if phase == "prefill":
        def run():
            return model(context_ids, use_cache=True, logits_to_keep=1)
        kv = hf_cache_nbytes(_returned_cache(run()))
        yield EnginePass(run, kv, 0, None, exclude)
    elif cache == "dynamic":
        past = _returned_cache(model(context_ids, use_cache=True, logits_to_keep=1))

        def run():
            return model(next_ids, use_cache=True, logits_to_keep=1, **{kw: past})

        def rollback():
            excess = past.get_seq_length() - s
            if excess > 0:
                past.crop(-excess)
        run()
        kv = hf_cache_nbytes(past)
        rollback()
        yield EnginePass(run, kv, 0, rollback, exclude)
    elif cache == "static":
        max_len = s + 1 if static_max_len is None else static_max_len
        static = StaticCache(config=model.config, max_cache_len=max_len)
        pos = torch.arange(s, device=context_ids.device)
        model(context_ids, use_cache=True, logits_to_keep=1, cache_position=pos,
              **{kw: static})
        step = torch.tensor([c], device=context_ids.device)

        def run():
            return model(next_ids, use_cache=True, logits_to_keep=1, cache_position=step,
                         **{kw: static})

        def rewind():           # a cache that counts its positions: back to s, untimed
            excess = int(static.get_seq_length()) - s
            if excess > 0:
                static.crop(-excess)
        run()
        try:
            rewind()
        except (AttributeError, NotImplementedError, RuntimeError, TypeError):
            rewind = None       # an older StaticCache writes where cache_position says
        yield EnginePass(run, hf_cache_nbytes(static), max_len, rewind, exclude)
    else:
        def run():
            return model(context_ids, use_cache=False, logits_to_keep=1)
        yield EnginePass(run, 0, 0, None, exclude)


__all__ = ["ENGINES", "EnginePass", "build_gpt", "build_hf", "cache_kwarg", "compile_blocks",
           "eager_stance",
           "hf_cache_nbytes", "hf_config", "hf_pass"]
