"""The reference model's one configuration, ``GPTConfig`` (nanoGPT's single config), and its two
translations: :meth:`GPTConfig.to_spec` (the :class:`~costmodel.specs.ModelSpec` the calculator
prices) and :meth:`GPTConfig.from_spec` (a reference model for a ModelSpec or a preset of
``costmodel/data/models.csv``). Needs no torch.

    GPTConfig.from_preset("gpt2").to_spec() == cm.model("gpt2")    # up to name and source
    GPTConfig.from_spec(cm.model("gpt-nano"), block_size=1024, attn_impl="eager")
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from costmodel.presets import model as model_preset
from costmodel.specs import ModelSpec

CHOICES = {
    "norm": ("layernorm", "rmsnorm"),
    "positions": ("learned", "rotary"),
    "mlp": ("gelu", "swiglu"),
    "attn_impl": ("sdpa", "eager"),
    "gelu_approximate": ("tanh", "none"),
}
#: The fields that make a GPTConfig Llama-style (see :meth:`GPTConfig.llama_style`).
LLAMA_STYLE = dict(norm="rmsnorm", positions="rotary", mlp="swiglu", bias=False,
                   tie_embeddings=False)
SPEC_SOURCE = "costmodel.reference.config.GPTConfig"
#: The mixture-of-experts fields (at their defaults for a dense model).
MOE_FIELDS = ("n_experts", "experts_per_token", "d_ff_expert", "n_shared_experts", "d_ff_shared",
              "dense_layers", "router_bias")


@dataclass
class GPTConfig:
    """Hyper-parameters of a decoder-only transformer.

    ``n_kv_head`` defaults to ``n_head`` (multi-head attention); ``d_ff`` defaults to
    ``4 * n_embd`` for the GELU MLP and to Llama's ``round_up(8/3 * n_embd, 64)`` for SwiGLU.
    ``gelu_approximate="tanh"`` is GPT-2's / minGPT's GELU; nanoGPT checkpoints use ``"none"``.
    ``attn_impl="eager"`` computes attention with explicit matmuls (so FLOP counters see it);
    ``"sdpa"`` uses ``F.scaled_dot_product_attention``. ``bias`` puts a bias on every linear
    layer but the LM head and the shared experts (and on LayerNorm).

    Modern architectures, with the meaning of the ModelSpec fields of the same names:

    * ``sliding_window`` = W > 0 makes ``window_layers`` layers (all by default) attend to the
      last W tokens (the new token and W − 1 cached ones); which layers: spread evenly, layer
      i when ⌊(i + 1) L_w / L⌋ > ⌊i L_w / L⌋ (every other layer for L_w = L / 2).
    * ``n_experts`` = E > 0 replaces the MLP of every layer but the first ``dense_layers`` by a
      mixture of experts: a router Linear (d → E, ``router_bias``), each token's
      ``experts_per_token`` = k highest logits picked and their softmax weighting k expert MLPs
      of width ``d_ff_expert`` (default ``d_ff``; the MLP's type: GELU or SwiGLU), plus
      ``n_shared_experts`` always-on experts as one MLP of width ``d_ff_shared`` (default
      n_shared · d_ff_expert, no biases).
    """

    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_kv_head: int | None = None
    d_ff: int | None = None
    vocab_size: int = 50257
    block_size: int = 1024
    bias: bool = True
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    positions: Literal["learned", "rotary"] = "learned"
    mlp: Literal["gelu", "swiglu"] = "gelu"
    tie_embeddings: bool = True
    dropout: float = 0.0
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    gelu_approximate: Literal["tanh", "none"] = "tanh"
    attn_impl: Literal["sdpa", "eager"] = "sdpa"
    sliding_window: int = 0
    window_layers: int | None = None
    n_experts: int = 0
    experts_per_token: int = 0
    d_ff_expert: int | None = None
    n_shared_experts: int = 0
    d_ff_shared: int | None = None
    dense_layers: int = 0
    router_bias: bool = False
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.d_ff is None:
            if self.mlp == "swiglu":
                self.d_ff = 64 * math.ceil(8 * self.n_embd / 3 / 64)
            else:
                self.d_ff = 4 * self.n_embd
        for f in ("n_layer", "n_head", "n_embd", "n_kv_head", "d_ff", "vocab_size", "block_size"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"GPTConfig.{f} must be a positive int, got {v!r}")
        for f, allowed in CHOICES.items():
            if getattr(self, f) not in allowed:
                raise ValueError(
                    f"GPTConfig.{f} must be one of {allowed}, got {getattr(self, f)!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"GPTConfig.n_head ({self.n_head}) must be divisible by "
                             f"n_kv_head ({self.n_kv_head})")
        if self.positions == "rotary" and self.head_dim % 2:
            raise ValueError(f"rotary positions need an even head_dim, got {self.head_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        self._check_modern()

    def _check_modern(self) -> None:
        """Sliding window and mixture-of-experts fields (the ModelSpec rules)."""
        for f in ("sliding_window", "n_experts", "experts_per_token", "n_shared_experts",
                  "dense_layers"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"GPTConfig.{f} must be an int >= 0, got {v!r}")
        if not isinstance(self.router_bias, bool):
            raise ValueError(f"GPTConfig.router_bias must be true or false, got "
                             f"{self.router_bias!r}")
        if self.window_layers is None:
            self.window_layers = self.n_layer if self.sliding_window else 0
        wl = self.window_layers
        if isinstance(wl, bool) or not isinstance(wl, int) or not 0 <= wl <= self.n_layer:
            raise ValueError(f"GPTConfig.window_layers must be an int in [0, n_layer="
                             f"{self.n_layer}], got {wl!r}")
        if wl and not self.sliding_window:
            raise ValueError("GPTConfig.window_layers: window layers need a sliding_window > 0")
        if self.n_experts:
            if not 1 <= self.experts_per_token <= self.n_experts:
                raise ValueError(f"GPTConfig.experts_per_token must lie in [1, n_experts="
                                 f"{self.n_experts}], got {self.experts_per_token!r}")
            if self.d_ff_expert is None:
                self.d_ff_expert = self.d_ff
            if self.dense_layers > self.n_layer:
                raise ValueError(f"GPTConfig.dense_layers must be at most n_layer="
                                 f"{self.n_layer}, got {self.dense_layers}")
        else:
            for f in ("experts_per_token", "n_shared_experts", "dense_layers"):
                if getattr(self, f):
                    raise ValueError(f"GPTConfig.{f} needs n_experts > 0 (a mixture of "
                                     "experts)")
            if self.d_ff_expert is not None or self.router_bias:
                raise ValueError("GPTConfig.d_ff_expert, router_bias need n_experts > 0")
        if self.n_shared_experts:
            if self.d_ff_shared is None:
                self.d_ff_shared = self.n_shared_experts * self.d_ff_expert
        elif self.d_ff_shared is not None:
            raise ValueError("GPTConfig.d_ff_shared needs n_shared_experts > 0")
        for f in ("d_ff_expert", "d_ff_shared"):
            v = getattr(self, f)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise ValueError(f"GPTConfig.{f} must be a positive int, got {v!r}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_dim(self) -> int:
        """C_kv = n_kv_head * head_dim, the width of one cached K (or V) row."""
        return self.n_kv_head * self.head_dim

    def is_window_layer(self, i: int) -> bool:
        """Whether layer ``i`` attends through the sliding window: the ``window_layers`` layers
        spread evenly, ⌊(i + 1) L_w / L⌋ > ⌊i L_w / L⌋."""
        n, w = self.n_layer, self.window_layers
        return (i + 1) * w // n > i * w // n

    def is_moe_layer(self, i: int) -> bool:
        """Whether layer ``i`` has routed experts (all but the first ``dense_layers``)."""
        return self.n_experts > 0 and i >= self.dense_layers

    # ---- the calculator's view
    def to_spec(self) -> ModelSpec:
        """The :class:`ModelSpec` of this config: the operators ``cm.analyze`` prices are the
        ones this model runs (its inference options: ``costmodel.workload.reference_options``).
        A LayerNorm without bias has no ModelSpec equivalent (a ModelSpec LayerNorm carries
        weight and bias) and is refused."""
        if self.norm == "layernorm" and not self.bias:
            raise ValueError("config: LayerNorm without bias has no ModelSpec equivalent (a "
                             "ModelSpec LayerNorm carries weight and bias)")
        swiglu = self.mlp == "swiglu"
        return ModelSpec(name=self.name, n_layers=self.n_layer, d_model=self.n_embd,
                         n_heads=self.n_head, vocab_size=self.vocab_size,
                         max_context=self.block_size, n_kv_heads=self.n_kv_head,
                         head_dim=self.head_dim, d_ff=self.d_ff, gated_mlp=swiglu,
                         activation="silu" if swiglu else "gelu", norm=self.norm,
                         qkv_bias=self.bias, out_bias=self.bias, mlp_bias=self.bias,
                         lm_head_bias=False, tied_embeddings=self.tie_embeddings,
                         positions=self.positions, sliding_window=self.sliding_window,
                         window_layers=self.window_layers, n_experts=self.n_experts,
                         experts_per_token=self.experts_per_token,
                         d_ff_expert=self.d_ff_expert, n_shared_experts=self.n_shared_experts,
                         d_ff_shared=self.d_ff_shared, dense_layers=self.dense_layers,
                         router_bias=self.router_bias, source=SPEC_SOURCE)

    @classmethod
    def from_spec(cls, spec: ModelSpec, **overrides: Any) -> GPTConfig:
        """The reference model of a ModelSpec, with ``overrides`` of any GPTConfig field
        (fields a ModelSpec does not hold keep their defaults: ``attn_impl="sdpa"``, GPT-2's
        tanh GELU, ``norm_eps=1e-5``). A ModelSpec the reference GPT cannot build is refused
        by name: a head_dim other than d_model / n_heads, biases on some linear layers but not
        others, an LM-head bias, an MLP other than GELU or SwiGLU (SiLU-gated), a LayerNorm
        without biases, and what the reference GPT does not build (multi-head latent
        attention, q/k norms, attention sinks, post-norms, partial rotary). Sliding windows and
        mixtures of experts carry over."""
        if not isinstance(spec, ModelSpec):
            raise ValueError(f"spec: expected a ModelSpec, got {type(spec).__name__} (use "
                             "GPTConfig.from_preset for a preset name)")
        unbuilt = [(spec.mla, "multi-head latent attention (kv_lora_rank > 0)"),
                   (spec.qk_norm, "q/k norms (qk_norm)"),
                   (spec.attention_sinks, "attention sinks"),
                   (spec.norms_per_layer != 2, f"norms_per_layer = {spec.norms_per_layer}"),
                   (spec.rotary_fraction != 1, f"partial rotary (rotary_fraction = "
                                               f"{spec.rotary_fraction})")]
        for flag, what in unbuilt:
            if flag:
                raise ValueError(f"{spec.name}: {what}; the reference GPT does not build it")
        if spec.d_model % spec.n_heads or spec.head_dim != spec.d_model // spec.n_heads:
            raise ValueError(f"{spec.name}: head_dim {spec.head_dim} is not d_model / n_heads "
                             f"= {spec.d_model} / {spec.n_heads}; the reference GPT derives it")
        if len({spec.qkv_bias, spec.out_bias, spec.mlp_bias}) != 1:
            raise ValueError(f"{spec.name}: qkv_bias, out_bias and mlp_bias differ; the "
                             "reference GPT has one bias flag for every linear layer")
        if spec.lm_head_bias:
            raise ValueError(f"{spec.name}: lm_head_bias is true; the reference GPT's LM head "
                             "has no bias")
        if spec.activation != ("silu" if spec.gated_mlp else "gelu"):
            raise ValueError(f"{spec.name}: a {'gated' if spec.gated_mlp else 'plain'} MLP "
                             f"with {spec.activation}; the reference GPT builds a GELU MLP or "
                             "a SiLU-gated (SwiGLU) one")
        if spec.norm == "layernorm" and not spec.qkv_bias:
            raise ValueError(f"{spec.name}: LayerNorm with linear layers without bias; the "
                             "reference GPT's bias flag covers both")
        modern = dict(sliding_window=spec.sliding_window, window_layers=spec.window_layers,
                      n_experts=spec.n_experts, experts_per_token=spec.experts_per_token,
                      d_ff_expert=spec.d_ff_expert, n_shared_experts=spec.n_shared_experts,
                      d_ff_shared=spec.d_ff_shared, dense_layers=spec.dense_layers,
                      router_bias=spec.router_bias)
        kw = dict(n_layer=spec.n_layers, n_head=spec.n_heads, n_embd=spec.d_model,
                  n_kv_head=spec.n_kv_heads, d_ff=spec.d_ff, vocab_size=spec.vocab_size,
                  block_size=spec.max_context, bias=spec.qkv_bias, norm=spec.norm,
                  positions=spec.positions, mlp="swiglu" if spec.gated_mlp else "gelu",
                  tie_embeddings=spec.tied_embeddings, name=spec.name, **modern)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"GPTConfig: unknown field(s) {unknown}; known: {sorted(known)}")
        return cls(**{**kw, **overrides})

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPTConfig:
        """The reference model of a model preset (``gpt-nano`` … ``gpt2-xl``, from
        ``costmodel/data/models.csv``): ``from_spec(costmodel.presets.model(name),
        **overrides)``."""
        if not isinstance(name, str):
            raise ValueError(f"preset: expected a preset name, got {type(name).__name__}")
        return cls.from_spec(model_preset(name), **overrides)

    @classmethod
    def llama_style(cls, **kwargs: Any) -> GPTConfig:
        """A Llama-style config: RMSNorm, rotary positions, SwiGLU, no biases, untied head."""
        return cls(**{**LLAMA_STYLE, "name": "llama-style", **kwargs})

    def to_dict(self) -> dict:
        """The fields as a dict; the sliding-window and mixture-of-experts fields only where
        they are in use, so a dense config's dict is the one older files recorded."""
        d = asdict(self)
        if not self.sliding_window:
            for f in ("sliding_window", "window_layers"):
                d.pop(f)
        if not self.n_experts:
            for f in MOE_FIELDS:
                d.pop(f)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """A config from :meth:`to_dict`'s output (keys it does not know are ignored, so
        nanoGPT's ``model_args`` load)."""
        if not isinstance(d, dict):
            raise ValueError(f"GPTConfig: expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


__all__ = ["CHOICES", "GPTConfig", "LLAMA_STYLE", "MOE_FIELDS"]
