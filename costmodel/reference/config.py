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


@dataclass
class GPTConfig:
    """Hyper-parameters of a decoder-only transformer.

    ``n_kv_head`` defaults to ``n_head`` (multi-head attention); ``d_ff`` defaults to
    ``4 * n_embd`` for the GELU MLP and to Llama's ``round_up(8/3 * n_embd, 64)`` for SwiGLU.
    ``gelu_approximate="tanh"`` is GPT-2's / minGPT's GELU; nanoGPT checkpoints use ``"none"``.
    ``attn_impl="eager"`` computes attention with explicit matmuls (so FLOP counters see it);
    ``"sdpa"`` uses ``F.scaled_dot_product_attention``. ``bias`` puts a bias on every linear
    layer but the LM head (and on LayerNorm).
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

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_dim(self) -> int:
        """C_kv = n_kv_head * head_dim, the width of one cached K (or V) row."""
        return self.n_kv_head * self.head_dim

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
                         positions=self.positions, source=SPEC_SOURCE)

    @classmethod
    def from_spec(cls, spec: ModelSpec, **overrides: Any) -> GPTConfig:
        """The reference model of a ModelSpec, with ``overrides`` of any GPTConfig field
        (fields a ModelSpec does not hold keep their defaults: ``attn_impl="sdpa"``, GPT-2's
        tanh GELU, ``norm_eps=1e-5``). A ModelSpec the reference GPT cannot build is refused
        by name: a head_dim other than d_model / n_heads, biases on some linear layers but not
        others, an LM-head bias, an MLP other than GELU or SwiGLU (SiLU-gated), a LayerNorm
        without biases."""
        if not isinstance(spec, ModelSpec):
            raise ValueError(f"spec: expected a ModelSpec, got {type(spec).__name__} (use "
                             "GPTConfig.from_preset for a preset name)")
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
        kw = dict(n_layer=spec.n_layers, n_head=spec.n_heads, n_embd=spec.d_model,
                  n_kv_head=spec.n_kv_heads, d_ff=spec.d_ff, vocab_size=spec.vocab_size,
                  block_size=spec.max_context, bias=spec.qkv_bias, norm=spec.norm,
                  positions=spec.positions, mlp="swiglu" if spec.gated_mlp else "gelu",
                  tie_embeddings=spec.tied_embeddings, name=spec.name)
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
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        """A config from :meth:`to_dict`'s output (keys it does not know are ignored, so
        nanoGPT's ``model_args`` load)."""
        if not isinstance(d, dict):
            raise ValueError(f"GPTConfig: expected a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


__all__ = ["CHOICES", "GPTConfig", "LLAMA_STYLE"]
