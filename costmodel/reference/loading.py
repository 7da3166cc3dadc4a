"""Load weights into :class:`GPT`: nanoGPT checkpoints and Hugging Face GPT-2 from a local dir.

* nanoGPT ``ckpt.pt``: ``{"model_args": {...}, "model": state_dict, ...}``; keys may carry the
  ``_orig_mod.`` prefix that ``torch.compile`` adds. nanoGPT uses exact (erf) GELU. Checkpoints
  written by :mod:`costmodel.reference.train` add a full ``config`` dict, which wins.
* Hugging Face GPT-2 (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``): the same
  parameter names as nanoGPT (nanoGPT copied them), but the attention/MLP projections are
  ``Conv1D`` modules whose weights are stored (in, out), i.e. transposed relative to
  ``nn.Linear``.

Nothing is downloaded; a user who has GPT-2 on disk points :func:`load_hf_gpt2` at it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from costmodel.reference.gpt import GPT, GPTConfig, parse_dtype

_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers, not parameters
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def load_state_dict_checked(model: GPT, state_dict: dict[str, torch.Tensor]) -> GPT:
    """Copy ``state_dict`` into ``model``; ``ValueError`` lists missing/unexpected/mis-shaped keys.

    A missing ``lm_head.weight`` is fine when the head is tied to the embedding.
    """
    own = model.state_dict()
    sd = {k: v for k, v in state_dict.items() if not k.endswith(_IGNORED_SUFFIXES)}
    missing = sorted(k for k in own if k not in sd)
    if model.config.tie_embeddings and "lm_head.weight" in missing:
        missing.remove("lm_head.weight")
        sd["lm_head.weight"] = sd.get("transformer.wte.weight", own["lm_head.weight"])
    unexpected = sorted(k for k in sd if k not in own)
    shapes = sorted(
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and sd[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {missing}")
        if unexpected:
            parts.append(f"unexpected keys: {unexpected}")
        if shapes:
            parts.append(f"shape mismatches: {shapes}")
        raise ValueError("malformed state dict; " + "; ".join(parts))
    dtype = model.transformer.wte.weight.dtype
    model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, strict=True)
    return model


def _finish(model: GPT, device, dtype) -> GPT:
    dt = parse_dtype(dtype) if dtype is not None else None
    return model.to(device=device, dtype=dt).eval()


def load_checkpoint(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = torch.float32,
    return_meta: bool = False,
    **overrides,
):
    """Load a nanoGPT-style ``ckpt.pt`` (or a directory holding one).

    ``overrides`` replace config fields (e.g. ``attn_impl="eager"``). With ``return_meta`` returns
    ``(model, checkpoint_dict_without_weights)``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "ckpt.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if (
        not isinstance(ckpt, dict)
        or "model" not in ckpt
        or ("model_args" not in ckpt and "config" not in ckpt)
    ):
        raise ValueError(f"{path.name}: not a nanoGPT checkpoint (needs 'model_args' and 'model')")
    if "config" in ckpt:
        config = GPTConfig.from_dict({**ckpt["config"], **overrides})
    else:
        args = dict(ckpt["model_args"])
        args.setdefault("gelu_approximate", "none")  # nanoGPT uses nn.GELU() (erf)
        config = GPTConfig.from_dict({**args, **overrides})
    prefix = "_orig_mod."
    sd = {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in ckpt["model"].items()}
    model = load_state_dict_checked(GPT(config), sd)
    model = _finish(model, device, dtype)
    if return_meta:
        return model, {k: v for k, v in ckpt.items() if k != "model"}
    return model


def gpt_config_from_hf(hf: dict, **overrides) -> GPTConfig:
    """``GPTConfig`` from a Hugging Face GPT-2 ``config.json`` dict."""
    if hf.get("model_type", "gpt2") != "gpt2":
        raise ValueError(
            f"only GPT-2 checkpoints are supported, got model_type={hf.get('model_type')!r}"
        )
    act = hf.get("activation_function", "gelu_new")
    return GPTConfig(
        **{
            "n_layer": hf["n_layer"],
            "n_head": hf["n_head"],
            "n_embd": hf["n_embd"],
            "d_ff": hf.get("n_inner") or 4 * hf["n_embd"],
            "vocab_size": hf["vocab_size"],
            "block_size": hf.get("n_positions", hf.get("n_ctx", 1024)),
            "norm_eps": hf.get("layer_norm_epsilon", 1e-5),
            "gelu_approximate": "none" if act == "gelu" else "tanh",
            "tie_embeddings": hf.get("tie_word_embeddings", True),
            "name": "hf-gpt2",
            **overrides,
        }
    )


def convert_hf_gpt2_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (add ``transformer.``) and transpose Conv1D weights to nn.Linear layout."""
    out = {}
    for k, v in sd.items():
        if k.endswith(_IGNORED_SUFFIXES):
            continue
        if not k.startswith(("transformer.", "lm_head.")):
            k = "transformer." + k  # GPT2Model (no LM head) checkpoints
        if k.endswith(_CONV1D):
            v = v.t()
        out[k] = v.contiguous()
    return out


def load_hf_gpt2(
    directory: str | Path,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = torch.float32,
    **overrides,
) -> GPT:
    """Our GPT with Hugging Face GPT-2 weights from a local ``save_pretrained`` directory."""
    directory = Path(directory)
    cfg_path = directory / "config.json"
    if not cfg_path.exists():
        raise ValueError(f"no config.json in {directory}")
    config = gpt_config_from_hf(json.loads(cfg_path.read_text()), **overrides)
    if (directory / "model.safetensors").exists():
        from safetensors.torch import load_file

        sd = load_file(str(directory / "model.safetensors"))
    elif (directory / "pytorch_model.bin").exists():
        sd = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"no model.safetensors or pytorch_model.bin in {directory}")
    model = load_state_dict_checked(GPT(config), convert_hf_gpt2_state_dict(sd))
    return _finish(model, device, dtype)
