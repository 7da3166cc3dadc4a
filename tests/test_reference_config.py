"""The reference model's one GPTConfig: to_spec / from_spec, the presets of models.csv, the
committed measurements' configs, and the Hugging Face reader through hfconfig."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

import costmodel as cm
from costmodel.reference.config import LLAMA_STYLE, GPTConfig
from costmodel.validation.grids import gpt_config, grid_models

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "data" / "measurements" / "cpu.csv"
PRESETS = ("gpt-nano", "gpt-micro", "gpt-mini", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")


def committed_configs() -> dict[str, str]:
    with COMMITTED.open() as f:
        out: dict[str, str] = {}
        for row in csv.DictReader(f):
            out.setdefault(row["model"], row["gpt_config"])
    return out


@pytest.mark.parametrize("model", grid_models("full") + grid_models("modern"))
def test_the_grid_builds_the_committed_models(model):
    """The measurement grid's configs are exactly the ones the committed CSV recorded (so the
    measurements still describe the models the code builds), and the JSON round-trips."""
    recorded = committed_configs()[model]
    assert json.dumps(gpt_config(model).to_dict(), sort_keys=True) == recorded
    assert GPTConfig.from_dict(json.loads(recorded)).to_dict() == json.loads(recorded)


@pytest.mark.parametrize("name", PRESETS)
def test_presets_come_from_models_csv(name):
    # minGPT's model types (n_layer, n_head, n_embd) and the GPT-2 family, as published:
    # minGPT model.py get_default_config; Radford et al. 2019 / the Hugging Face configs.
    dims = {"gpt-nano": (3, 3, 48), "gpt-micro": (4, 4, 128), "gpt-mini": (6, 6, 192),
            "gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024),
            "gpt2-large": (36, 20, 1280), "gpt2-xl": (48, 25, 1600)}[name]
    cfg = GPTConfig.from_preset(name)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd) == dims
    assert cfg.name == name and cfg.d_ff == 4 * cfg.n_embd and cfg.vocab_size == 50257
    assert cfg.block_size == cm.model(name).max_context
    spec = cfg.to_spec()
    assert spec.replace(source="") == cm.model(name).replace(source="")


def test_overrides_and_refusals():
    cfg = GPTConfig.from_spec(cm.model("gpt-nano"), block_size=1024, attn_impl="eager")
    assert (cfg.block_size, cfg.attn_impl, cfg.gelu_approximate) == (1024, "eager", "tanh")
    with pytest.raises(ValueError, match="unknown field"):
        GPTConfig.from_spec(cm.model("gpt-nano"), n_layers=2)
    with pytest.raises(ValueError, match="preset"):
        GPTConfig.from_preset("gpt5")
    with pytest.raises(ValueError, match="ModelSpec"):
        GPTConfig.from_spec("gpt2")
    # the E0294 model: biases on the MLP only, a biased untied output layer, a ReLU MLP
    with pytest.raises(ValueError, match="bias"):
        GPTConfig.from_preset("e0294-2layer")
    spec = cm.model("gpt2")
    with pytest.raises(ValueError, match="head_dim"):
        GPTConfig.from_spec(spec.replace(head_dim=32))
    with pytest.raises(ValueError, match="lm_head_bias"):
        GPTConfig.from_spec(spec.replace(lm_head_bias=True))
    with pytest.raises(ValueError, match="relu"):
        GPTConfig.from_spec(spec.replace(activation="relu"))
    with pytest.raises(ValueError, match="LayerNorm without bias"):
        GPTConfig(n_layer=1, n_head=2, n_embd=8, bias=False).to_spec()


def test_llama_style_round_trip():
    """A Llama-style config (GQA, SwiGLU, RMSNorm, rotary, untied) survives to_spec →
    from_spec with its numerics fields given back."""
    cfg = GPTConfig.llama_style(n_layer=2, n_head=6, n_kv_head=2, n_embd=96, vocab_size=300,
                                block_size=64, name="tiny-llama")
    spec = cfg.to_spec()
    assert spec.gated_mlp and spec.activation == "silu" and spec.n_kv_heads == 2
    assert not (spec.qkv_bias or spec.tied_embeddings) and spec.positions == "rotary"
    back = GPTConfig.from_spec(spec)
    assert back == cfg and back.name == "tiny-llama"
    assert {k: getattr(back, k) for k in LLAMA_STYLE} == LLAMA_STYLE
    # Llama-3-8B from models.csv: 8 KV heads of 128, SwiGLU of 14336 (Meta's config.json)
    big = GPTConfig.from_preset("llama3-8b")
    assert (big.n_kv_head, big.head_dim, big.d_ff, big.mlp) == (8, 128, 14336, "swiglu")


def test_gpt_config_from_hf_goes_through_hfconfig():
    pytest.importorskip("torch")
    from costmodel.reference.loading import gpt_config_from_hf

    hf = {"model_type": "gpt2", "n_layer": 2, "n_head": 4, "n_embd": 64, "vocab_size": 101,
          "n_positions": 48, "n_inner": None, "activation_function": "gelu",
          "layer_norm_epsilon": 1e-6}
    cfg = gpt_config_from_hf(hf)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.d_ff, cfg.block_size) == (2, 4, 64, 256, 48)
    assert (cfg.gelu_approximate, cfg.norm_eps, cfg.name) == ("none", 1e-6, "hf-gpt2")
    assert gpt_config_from_hf({**hf, "activation_function": "gelu_new"}).gelu_approximate \
        == "tanh"
    with pytest.raises(ValueError, match="only GPT-2"):
        gpt_config_from_hf({**hf, "model_type": "llama"})
    with pytest.raises(ValueError, match="n_layer"):
        gpt_config_from_hf({**hf, "n_layer": 2.5})      # hfconfig names the field
    with pytest.raises(ValueError, match="layer_norm_epsilon"):
        gpt_config_from_hf({**hf, "layer_norm_epsilon": "small"})
