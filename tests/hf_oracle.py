"""Hugging Face's own model classes as an independent oracle: parameters, FLOPs and KV-cache bytes.

Nothing here comes from costmodel. Every number is read off the objects ``transformers`` builds
from a ``config.json`` dict:

- :func:`hf_param_count` instantiates the causal-LM class on the ``meta`` device (shapes only, no
  memory) and sums ``numel`` over its parameters (a tied ``lm_head`` shares the embedding's
  tensor, so ``model.parameters()`` yields it once);
- :func:`tiny_config` scales a real config down (same family, layer pattern, expert layout, MLA
  structure, window pattern, GQA ratio, biases, norms) so it runs on a CPU in milliseconds;
- :func:`hf_run` runs a config as given (pass it a :func:`tiny_config`) with random weights,
  eager attention and eager experts: a prefill of ``prompt`` tokens, then ``decode_steps``
  single-token steps through the model's own cache, each inside
  ``torch.utils.flop_counter.FlopCounterMode``; it records the counted FLOPs per operator and
  per module, and the cache object the model built (class and ``nbytes`` of every key/value
  tensor it holds, per layer). :func:`hf_flops` and :func:`hf_kv_bytes` are its two halves.
- :func:`hf_build_status` says whether the installed ``transformers`` can build a config on
  ``meta`` and run its tiny version, with the exact error where it cannot.

Why eager: in torch 2.13 FlopCounterMode does not count the CPU SDPA kernel, and the default
experts path (``grouped_mm``) is not a plain matmul either; ``attn_implementation="eager"`` and
``experts_implementation="eager"`` make every FLOP an ``mm``/``addmm``/``bmm`` it counts.

What the counter sees is what Hugging Face *computes*, not the ideal: eager attention scores the
whole key range it is handed and masks afterwards, so a prefill on a sliding-window layer counts
``q·K`` over all ``c + q`` keys, not ``min(·, window)`` (see ``fixtures/hf_configs/RESULTS.md``).

``python tests/hf_oracle.py`` renders ``tests/fixtures/hf_configs/RESULTS.md`` from these runs.
"""

from __future__ import annotations

import copy
import inspect
import json
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hf_configs"

#: The fifteen fixtures (file stems under ``tests/fixtures/hf_configs``).
FIXTURE_NAMES = (
    "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "llama-3.2-1b", "qwen2.5-7b", "qwen3-8b",
    "qwen3-30b-a3b", "mixtral-8x7b-v0.1", "mistral-7b-v0.1", "gemma-2-9b", "gemma-3-27b",
    "phi-3-mini-4k-instruct", "deepseek-v2-lite", "deepseek-v3", "gpt-oss-20b",
)

#: The run RESULTS.md reports and :func:`hf_build_status` tries (the tests use it too, so the
#: memoised runs are shared): prompt + steps exceeds the tiny window, so window layers wrap.
REPORT_BATCH, REPORT_PROMPT, REPORT_STEPS = 2, 6, 3

#: Above this many parameters :func:`hf_run` refuses to allocate (it is meant for tiny configs).
MAX_RUN_PARAMS = 5_000_000

#: Tiny sizes. Chosen so that no two of them coincide (a formula that confuses hidden size with
#: head_dim·heads, or the dense MLP width with an expert's, gives a different number).
TINY_LAYERS = 4
TINY_VOCAB = 256
TINY_DENSE_FF = 96
TINY_EXPERT_FF = 32
TINY_EXPERTS = 4
TINY_TOP_K = 2
TINY_WINDOW = 4
TINY_MLA = {"kv_lora_rank": 16, "q_lora_rank": 24, "qk_nope_head_dim": 8,
            "qk_rope_head_dim": 4, "v_head_dim": 12}

_DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def load_fixture(name: str) -> dict:
    """The fixture ``name`` (a stem of :data:`FIXTURE_NAMES`) as a dict, exactly as stored."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def hf_config(cfg: dict):
    """The ``PretrainedConfig`` Hugging Face builds from ``cfg`` (its ``model_type`` picks the
    class). ``auto_map`` is dropped: the in-library class is the oracle, never a repository's
    remote code (with ``auto_map`` present, ``from_config`` would ask for ``trust_remote_code``)."""
    from transformers import AutoConfig

    kwargs = copy.deepcopy(cfg)
    kwargs.pop("auto_map", None)
    model_type = kwargs.pop("model_type")
    return AutoConfig.for_model(model_type, **kwargs)


def _build(cfg: dict, device: str, dtype=None):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.set_verbosity_error()  # tiny configs trip harmless warnings (token ids, dtypes)

    config = hf_config(cfg)
    config._attn_implementation = "eager"
    kwargs = {"attn_implementation": "eager"}
    if dtype is not None:
        kwargs["dtype"] = dtype
    with torch.device(device):
        try:
            model = AutoModelForCausalLM.from_config(config, experts_implementation="eager",
                                                     **kwargs)
        except (TypeError, ValueError) as e:
            if "experts_implementation" not in str(e):
                raise
            model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model.eval()


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamCount:
    """Parameters of the Hugging Face causal-LM class built from a config on ``meta``.

    ``total`` counts each tensor once (a tied ``lm_head`` is the embedding's tensor).
    ``by_kind`` splits ``total`` by the parameter's name (see :func:`param_kind`); a tied
    ``lm_head`` appears under ``embedding`` only and ``lm_head`` is then 0.
    ``buffers`` counts the elements of persistent buffers that are not parameters but are saved
    in the state dict (DeepSeek-V3's router ``e_score_correction_bias``, one float per routed
    expert per MoE layer); ``buffer_names`` lists one example name per kind.
    """

    model_class: str
    total: int
    embedding: int
    lm_head: int
    tied: bool
    by_kind: dict[str, int] = field(default_factory=dict)
    buffers: int = 0
    buffer_names: tuple[str, ...] = ()


def param_kind(name: str) -> str:
    """The kind of a parameter, from its name in the HF module tree: ``embedding``, ``lm_head``,
    ``attention`` (``self_attn.*``, including q/k norms, biases and GPT-OSS sinks),
    ``router`` (the gate of an MoE block), ``routed_experts`` (``experts.*``),
    ``shared_experts`` (``shared_expert(s).*``, Qwen's ``shared_expert_gate``), ``mlp`` (a dense
    MLP), ``norm`` (layer norms outside attention) or ``other``."""
    if "embed_tokens" in name:
        return "embedding"
    if name.startswith("lm_head"):
        return "lm_head"
    if ".self_attn." in name:
        return "attention"
    if ".shared_expert" in name:
        return "shared_experts"
    if ".experts." in name:
        return "routed_experts"
    if ".mlp.gate." in name or ".mlp.router." in name or ".block_sparse_moe.gate." in name:
        return "router"
    if ".mlp." in name:
        return "mlp"
    if "norm" in name:
        return "norm"
    return "other"


def hf_param_count(cfg: dict) -> ParamCount:
    """Total parameters of the HF causal-LM class for ``cfg``, built on the ``meta`` device
    (memoised on the config's JSON text)."""
    return _param_count_cached(json.dumps(cfg, sort_keys=True))


@lru_cache(maxsize=64)
def _param_count_cached(cfg_json: str) -> ParamCount:
    model = _build(json.loads(cfg_json), "meta")
    by_kind: dict[str, int] = {}
    for name, p in model.named_parameters():  # yields a shared (tied) tensor once
        kind = param_kind(name)
        by_kind[kind] = by_kind.get(kind, 0) + p.numel()
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is emb
    params = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    buffers = {name: b for name, b in model.named_buffers() if name in model.state_dict()
               and name not in params}
    kinds = sorted({name.split(".")[-1] for name in buffers})
    return ParamCount(model_class=type(model).__name__, total=sum(by_kind.values()),
                      embedding=by_kind.get("embedding", 0), lm_head=by_kind.get("lm_head", 0),
                      tied=tied, by_kind=dict(sorted(by_kind.items())),
                      buffers=sum(b.numel() for b in buffers.values()),
                      buffer_names=tuple(kinds))


# --------------------------------------------------------------------------------------------
# Tiny configs
# --------------------------------------------------------------------------------------------


def _heads(cfg: dict) -> tuple[int, int]:
    h = cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or h
    return h, kv


def tiny_config(cfg: dict) -> dict:
    """A scaled-down copy of ``cfg`` with the same structure, runnable on a CPU in milliseconds.

    Kept: ``model_type`` and every structural switch (biases, norms, activation, tying, rope
    settings, softcaps, sinks, router options, ``norm_topk_prob``, ``q_lora_rank`` being null or
    not, ``use_sliding_window``); the GQA ratio (query heads per KV head) exactly; whether
    ``head_dim`` is explicit and whether heads·head_dim equals the hidden size; the local/global
    pattern (``layer_types`` cut to the first layers, or Gemma-3's period of 6 in full); the
    dense-first layers of DeepSeek (``first_k_dense_replace`` capped at half the layers); shared
    experts; the expert-group routing of DeepSeek-V3.

    Scaled: layers (4, Gemma-3 6), hidden size (≤ 64), head_dim (8–32), dense MLP width 96,
    expert width 32, experts 4 (DeepSeek-V3: 8 in 4 groups) with top-2, MLA ranks and head dims
    (:data:`TINY_MLA`), vocab 256, every sliding window 4, special token ids (0, 1, 2).
    ``quantization_config`` is dropped and ``torch_dtype`` set to ``float32``: the tiny model runs
    unquantized in float32, so its cache holds 4-byte elements.
    """
    src = cfg
    t = copy.deepcopy(cfg)
    t.pop("quantization_config", None)
    t.pop("dtype", None)
    t["torch_dtype"] = "float32"  # bf16 index_add_ (the eager experts) is slow on CPUs
    mt = src["model_type"]
    h, kv = _heads(src)
    ratio = h // kv
    mla = "kv_lora_rank" in src

    # Layers and the local/global pattern.
    n = 6 if mt == "gemma3_text" else TINY_LAYERS
    t["num_hidden_layers"] = n
    if isinstance(src.get("layer_types"), list):
        t["layer_types"] = src["layer_types"][:n]
    if "max_window_layers" in src:
        t["max_window_layers"] = n

    # Heads: keep the GQA ratio; one or two KV heads.
    if mla or ratio == 1:
        h_t, kv_t = 4, 4
    else:
        kv_t = 2 if ratio <= 4 else 1
        h_t = kv_t * ratio
    t["num_attention_heads"] = h_t
    t["num_key_value_heads"] = kv_t
    explicit = src.get("head_dim") is not None
    if mla:
        t["hidden_size"] = 64
        t.update({k: (None if k == "q_lora_rank" and src.get(k) is None else v)
                  for k, v in TINY_MLA.items()})
        t.pop("head_dim", None)
    elif explicit and src["head_dim"] * h != src["hidden_size"]:
        t["hidden_size"] = 64
        t["head_dim"] = 2 * 64 // h_t  # heads·head_dim = 2·hidden, never equal to it
    else:
        hd = 16 if h_t < 7 else 8 if h_t <= 8 else 4  # even, for the rotary halves
        t["hidden_size"] = h_t * hd
        if explicit:
            t["head_dim"] = hd

    t["vocab_size"] = TINY_VOCAB
    if "intermediate_size" in src:
        t["intermediate_size"] = TINY_DENSE_FF

    # Experts.
    for key in ("num_local_experts", "num_experts", "n_routed_experts"):
        if src.get(key):
            t[key] = TINY_EXPERTS
    for key in ("num_experts_per_tok", "experts_per_token"):
        if src.get(key):
            t[key] = TINY_TOP_K
    if src.get("moe_intermediate_size"):
        t["moe_intermediate_size"] = TINY_EXPERT_FF
    if mt == "gpt_oss":  # its intermediate_size is the expert width
        t["intermediate_size"] = TINY_EXPERT_FF
    if src.get("first_k_dense_replace"):
        t["first_k_dense_replace"] = min(src["first_k_dense_replace"], n // 2)
    if src.get("n_group", 1) > 1:  # DeepSeek-V3 group-limited routing: 8 experts in 4 groups
        t["n_routed_experts"] = 8
        t["n_group"] = 4
        t["topk_group"] = 2

    # Special token ids must lie inside the tiny vocabulary (they do not change any cost).
    for key, tiny_id in (("pad_token_id", 0), ("bos_token_id", 1), ("eos_token_id", 2)):
        if isinstance(src.get(key), int):
            t[key] = tiny_id
        elif isinstance(src.get(key), list):
            t[key] = [tiny_id]

    # Windows.
    if src.get("sliding_window") is not None:
        t["sliding_window"] = TINY_WINDOW
    if "sliding_window_size" in src:
        t["sliding_window_size"] = TINY_WINDOW
    return t


# --------------------------------------------------------------------------------------------
# Running a (tiny) config: FLOPs and cache bytes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counted:
    """FLOPs FlopCounterMode counted for one forward pass (2 per multiply-add).

    ``by_op``: aten operator name (``mm``, ``addmm``, ``bmm``, ``baddbmm``, …) → FLOPs, summed
    over the model. ``by_module``: module path (``model.layers.0.self_attn.q_proj``, …; the
    counter attributes a FLOP to every enclosing module too) → FLOPs.
    """

    total: int
    by_op: dict[str, int]
    by_module: dict[str, int]


@dataclass(frozen=True)
class LayerCache:
    """What one layer of the HF cache object holds: the layer class (``DynamicLayer``,
    ``DynamicSlidingWindowLayer``, …), the shapes of its key and value tensors
    (``[batch, heads, positions, dim]``; for MLA the *latent* ``[batch, 1, positions,
    kv_lora_rank]`` and the shared rope key ``[batch, 1, positions, qk_rope_head_dim]``), and
    their ``nbytes``."""

    layer_class: str
    key_shape: tuple[int, ...]
    value_shape: tuple[int, ...]
    key_bytes: int
    value_bytes: int

    @property
    def nbytes(self) -> int:
        return self.key_bytes + self.value_bytes

    @property
    def positions(self) -> int:
        return self.key_shape[-2] if self.key_shape else 0


@dataclass(frozen=True)
class Run:
    """A prefill and ``decode_steps`` cached single-token steps of a HF model."""

    batch: int
    prompt: int
    decode_steps: int
    dtype: str
    element_bytes: int
    cache_class: str
    prefill: Counted
    decode: tuple[Counted, ...]
    cache_after_prefill: tuple[LayerCache, ...]
    cache_after_steps: tuple[tuple[LayerCache, ...], ...]

    @property
    def kv_bytes(self) -> int:
        """Bytes of every key/value tensor the cache holds after the last step."""
        final = self.cache_after_steps[-1] if self.cache_after_steps else self.cache_after_prefill
        return sum(layer.nbytes for layer in final)


def _op_name(op) -> str:
    name = str(op)
    return name.split(".")[1] if name.startswith("aten.") else name


def _counted(fc) -> Counted:
    counts = fc.get_flop_counts()
    by_op = {_op_name(op): int(v) for op, v in counts.get("Global", {}).items()}
    by_module = {}
    for mod, ops in counts.items():
        if mod == "Global":
            continue
        # FlopCounterMode names modules "<ClassName>.<path>"; keep the path.
        path = mod.split(".", 1)[1] if "." in mod else ""
        if path:
            by_module[path] = int(sum(ops.values()))
    return Counted(total=int(fc.get_total_flops()), by_op=dict(sorted(by_op.items())),
                   by_module=by_module)


def _cache_layers(cache) -> tuple[LayerCache, ...]:
    out = []
    for layer in getattr(cache, "layers", ()):
        k = getattr(layer, "keys", None)
        v = getattr(layer, "values", None)
        k_ok = k is not None and hasattr(k, "nbytes")
        v_ok = v is not None and hasattr(v, "nbytes")
        out.append(LayerCache(
            layer_class=type(layer).__name__,
            key_shape=tuple(k.shape) if k_ok else (),
            value_shape=tuple(v.shape) if v_ok else (),
            key_bytes=int(k.nbytes) if k_ok else 0,
            value_bytes=int(v.nbytes) if v_ok else 0,
        ))
    return tuple(out)


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return out.past_key_values if cache is None else cache


def _dtype_name(cfg: dict) -> str:
    name = cfg.get("torch_dtype") or cfg.get("dtype") or "float32"
    return _DTYPES.get(name, "float32")


@lru_cache(maxsize=64)
def _run_cached(cfg_json: str, batch: int, prompt: int, decode_steps: int, seed: int) -> Run:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    cfg = json.loads(cfg_json)
    dtype_name = _dtype_name(cfg)
    dtype = getattr(torch, dtype_name)
    torch.manual_seed(seed)
    model = _build(cfg, "meta")
    n_params = sum(p.numel() for p in model.parameters())
    if n_params > MAX_RUN_PARAMS:
        raise ValueError(f"hf_run: {n_params:,} parameters is not a tiny config "
                         f"(limit {MAX_RUN_PARAMS:,}); pass tiny_config(cfg)")
    model = _build(cfg, "cpu", dtype=dtype)
    vocab = model.config.get_text_config().vocab_size
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, prompt), generator=gen)
    decode_counts = []
    after_steps = []
    # transformers 5.x names the cache argument and output `cache` (`past_key_values` before).
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters \
        else "past_key_values"
    with torch.no_grad():
        with FlopCounterMode(display=False) as fc:
            out = model(input_ids=ids, use_cache=True)
        prefill = _counted(fc)
        cache = _cache_of(out)
        after_prefill = _cache_layers(cache)
        for _ in range(decode_steps):
            nxt = torch.randint(0, vocab, (batch, 1), generator=gen)
            with FlopCounterMode(display=False) as fc:
                out = model(input_ids=nxt, use_cache=True, **{cache_arg: cache})
            cache = _cache_of(out)
            decode_counts.append(_counted(fc))
            after_steps.append(_cache_layers(cache))
    element_bytes = torch.empty((), dtype=dtype).element_size()
    return Run(batch=batch, prompt=prompt, decode_steps=decode_steps, dtype=dtype_name,
               element_bytes=element_bytes, cache_class=type(cache).__name__, prefill=prefill,
               decode=tuple(decode_counts), cache_after_prefill=after_prefill,
               cache_after_steps=tuple(after_steps))


def hf_run(cfg: dict, batch: int, prompt: int, decode_steps: int, seed: int = 0) -> Run:
    """Run ``cfg`` as given (meant for :func:`tiny_config` output) in Hugging Face's own class:
    random weights (seeded), the config's ``torch_dtype`` (float32 if none), eager attention and
    experts, a prefill of ``prompt`` random tokens for ``batch`` sequences, then
    ``decode_steps`` single-token steps through the cache the model built. Memoised on the
    arguments (the config by its JSON text)."""
    return _run_cached(json.dumps(cfg, sort_keys=True), batch, prompt, decode_steps, seed)


@dataclass(frozen=True)
class Flops:
    """Counted FLOPs of a prefill and of each following decode step."""

    prefill: Counted
    decode: tuple[Counted, ...]


def hf_flops(cfg: dict, batch: int, prompt: int, decode_steps: int) -> Flops:
    """FLOPs FlopCounterMode counts on the HF model for ``cfg`` (run as given: pass a
    :func:`tiny_config`), for the prefill of ``prompt`` tokens and each single-token decode step
    after it, per operator type and per module."""
    run = hf_run(cfg, batch, prompt, decode_steps)
    return Flops(prefill=run.prefill, decode=run.decode)


@dataclass(frozen=True)
class KvBytes:
    """Bytes of the HF cache object's key/value tensors after the prefill and after each step."""

    cache_class: str
    element_bytes: int
    after_prefill: tuple[LayerCache, ...]
    after_steps: tuple[tuple[LayerCache, ...], ...]

    @property
    def layers(self) -> tuple[LayerCache, ...]:
        """Per layer, after the last step."""
        return self.after_steps[-1] if self.after_steps else self.after_prefill

    @property
    def total(self) -> int:
        return sum(layer.nbytes for layer in self.layers)

    def totals(self) -> list[int]:
        """Total bytes after the prefill, then after each decode step."""
        return [sum(x.nbytes for x in step) for step in (self.after_prefill, *self.after_steps)]


def hf_kv_bytes(cfg: dict, batch: int, prompt: int, decode_steps: int) -> KvBytes:
    """The cache Hugging Face's implementation of ``cfg`` builds (its own ``DynamicCache`` with
    full and sliding-window layers) after a prefill of ``prompt`` tokens and ``decode_steps``
    decode steps: per layer, the class, shapes and ``nbytes`` of every key/value tensor held."""
    run = hf_run(cfg, batch, prompt, decode_steps)
    return KvBytes(cache_class=run.cache_class, element_bytes=run.element_bytes,
                   after_prefill=run.cache_after_prefill, after_steps=run.cache_after_steps)


# --------------------------------------------------------------------------------------------
# Build status
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildStatus:
    """Whether the installed transformers builds ``cfg`` on meta and runs its tiny version."""

    name: str
    builds_on_meta: bool
    runs_tiny: bool
    error: str | None = None


def hf_build_status(name: str, cfg: dict) -> BuildStatus:
    """Try :func:`hf_param_count` on ``cfg`` and :func:`hf_run` on its tiny version; report the
    exact exception text of the first that fails."""
    try:
        hf_param_count(cfg)
    except Exception as e:  # noqa: BLE001 - the report is the point
        return BuildStatus(name, False, False, f"{type(e).__name__}: {e}")
    try:
        hf_run(tiny_config(cfg), REPORT_BATCH, REPORT_PROMPT, REPORT_STEPS)
    except Exception as e:  # noqa: BLE001
        return BuildStatus(name, True, False, f"{type(e).__name__}: {e}")
    return BuildStatus(name, True, True)


# --------------------------------------------------------------------------------------------
# RESULTS.md
# --------------------------------------------------------------------------------------------

def _n(x: int) -> str:
    return f"{x:,}"


def _layout(layers: tuple[LayerCache, ...]) -> str:
    groups: list[list] = []
    for layer in layers:
        key = (layer.layer_class, layer.key_shape, layer.value_shape)
        if groups and groups[-1][0] == key:
            groups[-1][1] += 1
        else:
            groups.append([key, 1])
    short = {"DynamicLayer": "full", "DynamicSlidingWindowLayer": "window"}
    parts = []
    for (cls, k, v), count in groups:
        kv = f"K{list(k)} V{list(v)}" if k != v else f"K,V{list(k)}"
        parts.append(f"{count}× {short.get(cls, cls)} {kv}")
    return "; ".join(parts)


def render_results() -> str:
    """The RESULTS.md text: every number below is computed here, now, by the functions above."""
    import platform

    import torch
    import transformers

    b, q, s = REPORT_BATCH, REPORT_PROMPT, REPORT_STEPS
    lines = [
        "# What Hugging Face's own classes give for the fifteen fixtures",
        "",
        "Rendered by `python tests/hf_oracle.py` (do not edit by hand) with "
        f"transformers {transformers.__version__}, torch {torch.__version__}, "
        f"Python {platform.python_version()}. The tests recompute these live; this table is "
        "for reading.",
        "",
        "## Full configs, instantiated on the meta device",
        "",
        "`total` is `sum(p.numel() for p in model.parameters())` of the causal-LM class "
        "(a tied `lm_head` is the embedding's tensor, counted once; `lm_head` is then 0). "
        "The kinds split `total` by parameter name (`hf_oracle.param_kind`). `buffers`: "
        "persistent non-parameter tensors saved in the state dict.",
        "",
        "| fixture | HF class | total | embedding | lm_head | attention | dense MLP "
        "| routed experts | shared experts | router | norms | buffers |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    statuses = []
    for name in FIXTURE_NAMES:
        cfg = load_fixture(name)
        statuses.append(hf_build_status(name, cfg))
        try:
            pc = hf_param_count(cfg)
        except Exception as e:  # noqa: BLE001
            lines.append(f"| {name} | cannot build: {type(e).__name__} | | | | | | | | | | |")
            continue
        k = pc.by_kind
        lines.append(
            f"| {name} | {pc.model_class} | {_n(pc.total)} | {_n(pc.embedding)} | "
            f"{_n(pc.lm_head)}{' (tied)' if pc.tied else ''} | {_n(k.get('attention', 0))} | "
            f"{_n(k.get('mlp', 0))} | {_n(k.get('routed_experts', 0))} | "
            f"{_n(k.get('shared_experts', 0))} | {_n(k.get('router', 0))} | "
            f"{_n(k.get('norm', 0))} | {_n(pc.buffers)} |")
    lines += [
        "",
        "## Build status",
        "",
        "| fixture | builds on meta | tiny version runs | error |",
        "|---|---|---|---|",
    ]
    for st in statuses:
        lines.append(f"| {st.name} | {'yes' if st.builds_on_meta else 'no'} | "
                     f"{'yes' if st.runs_tiny else 'no'} | {st.error or ''} |")
    lines += [
        "",
        f"## Tiny configs: batch {b}, prompt {q}, {s} decode steps",
        "",
        "`tiny_config(fixture)` run in float32 with random weights (seed 0), eager attention and "
        "eager experts. FLOPs are FlopCounterMode's (2 per multiply-add), whole model including "
        "the lm_head on every position. KV bytes: the `nbytes` of every key/value tensor in the "
        "cache object after the prefill, then after each step.",
        "",
        "| fixture | tiny params | layers | prefill FLOPs (by op) | decode step FLOPs "
        "| KV bytes after prefill → steps | cache after the last step |",
        "|---|--:|--:|---|---|---|---|",
    ]
    for name in FIXTURE_NAMES:
        t = tiny_config(load_fixture(name))
        try:
            run = hf_run(t, b, q, s)
        except Exception as e:  # noqa: BLE001
            lines.append(f"| {name} | cannot run: {type(e).__name__}: {e} | | | | | |")
            continue
        by_op = ", ".join(f"{op} {_n(v)}" for op, v in run.prefill.by_op.items())
        totals = [sum(x.nbytes for x in st)
                  for st in (run.cache_after_prefill, *run.cache_after_steps)]
        lines.append(
            f"| {name} | {_n(hf_param_count(t).total)} | {t['num_hidden_layers']} | "
            f"{_n(run.prefill.total)} ({by_op}) | "
            f"{' / '.join(_n(d.total) for d in run.decode)} | "
            f"{' → '.join(_n(x) for x in totals)} | {_layout(run.cache_after_steps[-1])} |")
    lines += [
        "",
        "## Tiny config sizes",
        "",
        "| fixture | hidden | heads / kv heads | head_dim | intermediate_size | experts (top-k) "
        "| expert FF | window | MLA (q_lora, kv_lora, nope, rope, v) |",
        "|---|--:|---|--:|--:|---|--:|--:|---|",
    ]
    for name in FIXTURE_NAMES:
        t = tiny_config(load_fixture(name))
        experts = (t.get("num_local_experts") or t.get("num_experts")
                   or t.get("n_routed_experts"))
        mla = ""
        if "kv_lora_rank" in t:
            mla = (f"{t.get('q_lora_rank')}, {t['kv_lora_rank']}, {t['qk_nope_head_dim']}, "
                   f"{t['qk_rope_head_dim']}, {t['v_head_dim']}")
        moe_ff = t["model_type"] in ("mixtral", "gpt_oss")  # intermediate_size is the experts'
        dense_ff = "" if moe_ff else t.get("intermediate_size", "")
        window = t.get("sliding_window") or ""
        if window and t.get("use_sliding_window") is False:
            window = f"{window} (off: use_sliding_window false)"
        top_k = t.get("num_experts_per_tok")
        experts_text = f"{experts} ({top_k})" if experts else ""
        expert_ff = t.get("moe_intermediate_size") or (
            t["intermediate_size"] if t["model_type"] in ("mixtral", "gpt_oss") else "")
        lines.append(
            f"| {name} | {t['hidden_size']} | {t['num_attention_heads']} / "
            f"{t['num_key_value_heads']} | {t.get('head_dim') or ''} | "
            f"{dense_ff} | "
            f"{experts_text} | "
            f"{expert_ff} | {window} | {mla} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = FIXTURES / "RESULTS.md"
    notes = out.read_text().split("<!-- notes -->", 1)[1] if out.exists() and \
        "<!-- notes -->" in out.read_text() else ""
    out.write_text(render_results() + "\n<!-- notes -->" + notes)
    sys.stdout.write(f"wrote {out}\n")
