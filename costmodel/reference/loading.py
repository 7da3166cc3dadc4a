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

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn

from costmodel.files import read_json
from costmodel.hfconfig import spec_from_hf_config
from costmodel.reference.gpt import GPT, GPTConfig, parse_dtype

_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers, not parameters
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                            tied: Mapping[str, str] | None = None) -> nn.Module:
    """Copy ``state_dict`` into ``model`` strictly, each tensor cast to the dtype of the
    model's own; ValueError listing every missing, unexpected and mis-shaped key (the first
    five of each, then a count). ``tied`` maps a key that may be absent to the key it shares
    its tensor with (a tied LM head: ``{"lm_head.weight": "transformer.wte.weight"}``).
    The one checked loader of the reference models (GPT checkpoints, Hugging Face GPT-2 and
    the E0294 model)."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"state dict: expected a mapping of tensors, got {type(state_dict).__name__}")
    own = model.state_dict()
    sd = dict(state_dict)
    for key, source in (tied or {}).items():
        if key in own and key not in sd and source in sd:
            sd[key] = sd[source]
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [
        f"{k} {tuple(sd[k].shape) if isinstance(sd[k], torch.Tensor) else '?'}"
        f" != {tuple(own[k].shape)}"
        for k in own
        if k in sd and (not isinstance(sd[k], torch.Tensor) or sd[k].shape != own[k].shape)
    ]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("wrong shapes", wrong)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{label}: {', '.join(items[:5])}{more}")
    if problems:
        label = getattr(model, "config", None) or type(model).__name__
        raise ValueError(f"state dict does not fit {label}: {'; '.join(problems)}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()}, strict=True)
    return model


#: A GPT's tied LM head may be absent from a checkpoint (it is the token embedding).
GPT_TIED = {"lm_head.weight": "transformer.wte.weight"}


def _gpt_state_dict(model: GPT, sd: Mapping[str, torch.Tensor]) -> GPT:
    sd = {k: v for k, v in sd.items() if not k.endswith(_IGNORED_SUFFIXES)}
    return load_state_dict_checked(model, sd, GPT_TIED if model.config.tie_embeddings else None)


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
    model = _finish(_gpt_state_dict(GPT(config), sd), device, dtype)
    if return_meta:
        return model, {k: v for k, v in ckpt.items() if k != "model"}
    return model


def gpt_config_from_hf(hf: Mapping, **overrides) -> GPTConfig:
    """``GPTConfig`` of a Hugging Face GPT-2 ``config.json`` dict: the architecture through
    :func:`costmodel.hfconfig.spec_from_hf_config` and :meth:`GPTConfig.from_spec`, plus the
    two numerics a ModelSpec does not hold (``layer_norm_epsilon``; ``activation_function``
    ``gelu`` = exact erf GELU, the others GPT-2's tanh approximation)."""
    if not isinstance(hf, Mapping):
        raise ValueError(f"config.json: expected a JSON object, got {type(hf).__name__}")
    if hf.get("model_type", "gpt2") != "gpt2":
        raise ValueError(
            f"only GPT-2 checkpoints are supported, got model_type={hf.get('model_type')!r}")
    spec = spec_from_hf_config({**hf, "model_type": "gpt2"}, name="hf-gpt2")
    act = hf.get("activation_function", "gelu_new")
    eps = hf.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ValueError(f"config.json: field 'layer_norm_epsilon' must be a number in (0, 1), "
                         f"got {eps!r}")
    return GPTConfig.from_spec(spec, **{"norm_eps": float(eps),
                                        "gelu_approximate": "none" if act == "gelu" else "tanh",
                                        **overrides})


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
    config = gpt_config_from_hf(read_json(cfg_path, "config.json"), **overrides)
    if (directory / "model.safetensors").exists():
        from safetensors.torch import load_file

        sd = load_file(str(directory / "model.safetensors"))
    elif (directory / "pytorch_model.bin").exists():
        sd = torch.load(directory / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"no model.safetensors or pytorch_model.bin in {directory}")
    model = _gpt_state_dict(GPT(config), convert_hf_gpt2_state_dict(sd))
    return _finish(model, device, dtype)


__all__ = ["GPT_TIED", "convert_hf_gpt2_state_dict", "gpt_config_from_hf", "load_checkpoint",
           "load_hf_gpt2", "load_state_dict_checked"]
