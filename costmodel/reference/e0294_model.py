"""The E0294 teaching model (Assignment 4, Problem 2), its dims, and loading its state dict.

A 2-layer, single-head, decoder-only transformer.
This is the reference model behind the ``e0294-2layer`` preset (default dims: vocab_size=1000,
d_model=128, d_ff=512, num_layers=2, max_seq_len=2048). Its ``state_dict`` has exactly the key
layout of the course skeleton, so a student's ``model_state_dict.pt`` loads unchanged::

    token_embedding.weight, pos_embedding.weight,
    layers.N.attention.{W_k,W_v,W_q,W_o}.weight          (Linear, no bias)
    layers.N.feed_forward.{fc1,fc2}.{weight,bias}         (Linear; ReLU + dropout between)
    layers.N.norm1.{weight,bias}, layers.N.norm2.{weight,bias}   (LayerNorm, pre-norm)
    norm.{weight,bias}, output_projection.{weight,bias}   (final LayerNorm; untied output)

Each block is pre-norm: ``x = x + drop(attn(norm1(x)))`` then ``x = x + drop(ffn(norm2(x)))``.

Bugs of the course text fixed here (the student's answer, seed 002):

1. Position ids were clamped to ``max_seq_len - 1``: every position past the table silently
   reused the last embedding. Here a sequence (cache + new tokens) longer than ``max_seq_len``
   raises ``ValueError``.
2. The causal mask with a KV cache was ``triu(ones(q, past + q), diagonal=1)``, which masks the
   wrong columns when ``past_len > 0`` and ``q > 1`` (chunked prefill): query ``i`` (absolute
   position ``past + i``) may see keys ``0 .. past + i``, so the mask is
   ``triu(ones(q, past + q), diagonal=past + 1)`` (:func:`causal_mask`).
3. Dropout (p=0.1 in the feed-forward and both residual branches) is active in train mode; the
   text's ``generate`` never switched to eval. :meth:`DecoderOnlyTransformer.generate` runs in
   eval mode (restoring the previous mode afterwards), and the CLI evaluates in eval mode.
4. Input ids were clamped into ``[0, vocab_size - 1]``, hiding bad input (and ``generate``
   clamped its output for no reason). Here ids outside the vocabulary raise ``ValueError``.
5. ``generate(use_cache=True)`` fed the *whole* sequence together with the cache at every step,
   so keys were duplicated and positions ran past the table (hidden by bug 1) — which is why the
   text measured only a 1.28x speedup. Here only the newest token is fed once the cache exists.
6. ``past_kv`` passed with ``use_cache=False`` was ignored for keys but still shifted the mask:
   here a given ``past_kv`` is always attended to; ``use_cache`` only says whether the updated
   cache is returned.

The reference files and evaluation are in :mod:`costmodel.reference.e0294_cases`, the benchmark
in :mod:`costmodel.reference.e0294_bench`, the command line in :mod:`costmodel.reference.e0294`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from costmodel.reference.layers import causal_mask
from costmodel.reference.loading import load_state_dict_checked

KVCache = list[tuple[torch.Tensor, torch.Tensor]]

DATA_DIR = Path(__file__).resolve().parent / "data"
STATE_DICT_FILENAME = "e0294_model_state_dict.pt"
TEST_CASES_FILENAME = "e0294_test_cases.json"


@dataclass(frozen=True)
class E0294Config:
    """Dimensions of :class:`DecoderOnlyTransformer` (defaults: the ``e0294-2layer`` preset)."""

    vocab_size: int = 1000
    d_model: int = 128
    d_ff: int = 512
    num_layers: int = 2
    max_seq_len: int = 2048


DEFAULT_CONFIG = E0294Config()
REFERENCE_CONFIG = E0294Config(vocab_size=1000, d_model=32, d_ff=128, num_layers=2, max_seq_len=256)


class SingleHeadAttention(nn.Module):
    """Single-head causal self-attention, no biases, scores scaled by ``1/sqrt(d_model)``."""

    def __init__(self, d_model: int) -> None:
        """Create the four ``d_model x d_model`` projections (registered in the text's order)."""
        super().__init__()
        self.d_model = d_model
        self.W_k = nn.Linear(d_model, d_model, bias=False)
        self.W_v = nn.Linear(d_model, d_model, bias=False)
        self.W_q = nn.Linear(d_model, d_model, bias=False)
        self.W_o = nn.Linear(d_model, d_model, bias=False)

    def forward(
        self,
        z: torch.Tensor,
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Attend ``z`` ``[B, q, d]`` to the cached keys/values plus its own (causally).

        Returns the output ``[B, q, d]`` and, when ``use_cache``, the updated ``(K, V)``
        ``[B, past + q, d]`` each.
        """
        q_len = z.shape[1]
        key = self.W_k(z)
        value = self.W_v(z)
        query = self.W_q(z)
        past_len = 0
        if past_kv is not None:
            past_k, past_v = past_kv
            past_len = past_k.shape[1]
            key = torch.cat([past_k, key], dim=1)
            value = torch.cat([past_v, value], dim=1)
        scores = torch.bmm(query, key.transpose(1, 2)) / math.sqrt(self.d_model)
        if q_len > 1:  # a single new query may see everything in the cache
            scores = scores.masked_fill(causal_mask(q_len, past_len, z.device), float("-inf"))
        weights = F.softmax(scores, dim=-1)
        output = self.W_o(torch.bmm(weights, value))
        return output, ((key, value) if use_cache else None)


class FeedForward(nn.Module):
    """Position-wise MLP: ``fc2(dropout(relu(fc1(z))))`` (both Linear layers with bias)."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1) -> None:
        """Create ``fc1: d_model -> d_ff`` and ``fc2: d_ff -> d_model``."""
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff)
        self.fc2 = nn.Linear(d_ff, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to every position of ``z``."""
        return self.fc2(self.dropout(F.relu(self.fc1(z))))


class DecoderLayer(nn.Module):
    """Pre-norm block: attention then MLP, each with a residual connection and dropout."""

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.1) -> None:
        """Create attention, MLP, the two LayerNorms and the residual dropout."""
        super().__init__()
        self.attention = SingleHeadAttention(d_model)
        self.feed_forward = FeedForward(d_model, d_ff, dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        z: torch.Tensor,
        past_kv: tuple[torch.Tensor, torch.Tensor] | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """``z + drop(attn(norm1(z)))``, then ``+ drop(ffn(norm2(.)))``; returns the layer's KV."""
        attn_out, new_kv = self.attention(self.norm1(z), past_kv, use_cache)
        z = z + self.dropout(attn_out)
        z = z + self.dropout(self.feed_forward(self.norm2(z)))
        return z, new_kv


class DecoderOnlyTransformer(nn.Module):
    """The E0294 decoder-only transformer (see the module docstring for the fixed text bugs)."""

    def __init__(
        self,
        vocab_size: int = DEFAULT_CONFIG.vocab_size,
        d_model: int = DEFAULT_CONFIG.d_model,
        d_ff: int = DEFAULT_CONFIG.d_ff,
        num_layers: int = DEFAULT_CONFIG.num_layers,
        max_seq_len: int = DEFAULT_CONFIG.max_seq_len,
        dropout: float = 0.1,
    ) -> None:
        """Create the embeddings, ``num_layers`` decoder layers, final norm and output head."""
        super().__init__()
        for name, value in (
            ("vocab_size", vocab_size),
            ("d_model", d_model),
            ("d_ff", d_ff),
            ("num_layers", num_layers),
            ("max_seq_len", max_seq_len),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: must lie in [0, 1), got {dropout!r}")
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.d_ff = d_ff
        self.num_layers = num_layers
        self.max_seq_len = max_seq_len
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.pos_embedding = nn.Embedding(max_seq_len, d_model)
        self.layers = nn.ModuleList(
            [DecoderLayer(d_model, d_ff, dropout) for _ in range(num_layers)]
        )
        self.norm = nn.LayerNorm(d_model)
        self.output_projection = nn.Linear(d_model, vocab_size)

    @property
    def config(self) -> E0294Config:
        """The model's dimensions."""
        return E0294Config(
            self.vocab_size, self.d_model, self.d_ff, self.num_layers, self.max_seq_len
        )

    def _check_input_ids(self, input_ids: torch.Tensor) -> None:
        """Raise ValueError unless ``input_ids`` is a non-empty ``[B, T]`` int tensor in range."""
        if not isinstance(input_ids, torch.Tensor):
            raise ValueError(f"input_ids: must be a torch.Tensor, got {type(input_ids).__name__}")
        if input_ids.dim() != 2 or input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
            raise ValueError(
                f"input_ids: must have shape [batch, seq] with both > 0, "
                f"got {tuple(input_ids.shape)}"
            )
        if (
            input_ids.dtype.is_floating_point
            or input_ids.dtype.is_complex
            or input_ids.dtype == torch.bool
        ):
            raise ValueError(f"input_ids: must be an integer tensor, got {input_ids.dtype}")
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"input_ids: token id {bad} outside the vocabulary [0, {self.vocab_size - 1}]"
            )

    def _check_past_kv(
        self, past_kv: Sequence[tuple[torch.Tensor, torch.Tensor]], batch: int
    ) -> int:
        """Validate a per-layer ``(K, V)`` cache against this model; return its length."""
        if len(past_kv) != self.num_layers:
            raise ValueError(
                f"past_kv: expected {self.num_layers} (K, V) pairs, got {len(past_kv)}"
            )
        past_len = -1
        for i, pair in enumerate(past_kv):
            if pair is None or len(pair) != 2:
                raise ValueError(f"past_kv[{i}]: must be a (K, V) pair")
            for name, t in zip("KV", pair, strict=True):
                if t.dim() != 3 or t.shape[0] != batch or t.shape[2] != self.d_model:
                    raise ValueError(
                        f"past_kv[{i}] {name}: expected shape [{batch}, past, "
                        f"{self.d_model}], got {tuple(t.shape)}"
                    )
                if past_len not in (-1, t.shape[1]):
                    raise ValueError("past_kv: all layers must cache the same number of tokens")
                past_len = t.shape[1]
        return past_len

    def forward(
        self,
        input_ids: torch.Tensor,
        past_kv: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Logits ``[B, T, vocab]`` of ``input_ids`` ``[B, T]`` placed after ``past_kv``.

        ``past_kv`` is a per-layer list of ``(K, V)`` ``[B, past, d_model]`` (or None); the new
        tokens take positions ``past .. past + T - 1``. Returns ``(logits, new_past_kv)``, where
        ``new_past_kv`` is the cache extended by these tokens when ``use_cache`` and None
        otherwise. Raises ValueError for ids outside the vocabulary, a sequence longer than
        ``max_seq_len``, or a cache that does not fit this model.
        """
        self._check_input_ids(input_ids)
        batch, seq_len = input_ids.shape
        past_len = 0 if past_kv is None else self._check_past_kv(past_kv, batch)
        if past_len + seq_len > self.max_seq_len:
            raise ValueError(
                f"sequence of {past_len + seq_len} tokens ({past_len} cached + "
                f"{seq_len} new) exceeds max_seq_len={self.max_seq_len}"
            )
        positions = torch.arange(past_len, past_len + seq_len, device=input_ids.device)
        x = self.token_embedding(input_ids) + self.pos_embedding(positions).unsqueeze(0)
        new_past_kv: KVCache = []
        for i, layer in enumerate(self.layers):
            x, layer_kv = layer(x, None if past_kv is None else past_kv[i], use_cache)
            if use_cache:
                new_past_kv.append(layer_kv)
        logits = self.output_projection(self.norm(x))
        return logits, (new_past_kv if use_cache else None)

    @torch.inference_mode()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        use_cache: bool = True,
        do_sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` tokens to ``input_ids`` ``[B, T]``; returns ``[B, T + n]``.

        ``do_sample=True`` (the text's behaviour) samples from ``softmax(logits / temperature)``
        with ``generator``; ``do_sample=False`` is greedy (argmax). With ``use_cache`` the prompt
        is processed once and each later step feeds only the newest token; without it the whole
        sequence is re-run every step. Runs in eval mode (dropout off) and restores the
        previous mode. Raises ValueError when the prompt plus new tokens exceed ``max_seq_len``.
        """
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, int)
            or max_new_tokens < 0
        ):
            raise ValueError(f"max_new_tokens: must be an integer >= 0, got {max_new_tokens!r}")
        if do_sample and not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature: must be > 0 when sampling, got {temperature!r}")
        self._check_input_ids(input_ids)
        total = input_ids.shape[1] + max_new_tokens
        if total > self.max_seq_len:
            raise ValueError(
                f"prompt of {input_ids.shape[1]} tokens + {max_new_tokens} new "
                f"tokens exceeds max_seq_len={self.max_seq_len}"
            )
        was_training = self.training
        self.eval()
        try:
            generated = input_ids
            past_kv: KVCache | None = None
            for _ in range(max_new_tokens):
                step_input = generated if past_kv is None else generated[:, -1:]
                logits, past_kv = self(step_input, past_kv, use_cache)
                next_logits = logits[:, -1, :]
                if do_sample:
                    probs = F.softmax(next_logits / temperature, dim=-1)
                    next_token = torch.multinomial(probs, num_samples=1, generator=generator)
                else:
                    next_token = next_logits.argmax(dim=-1, keepdim=True)
                generated = torch.cat([generated, next_token.to(generated.dtype)], dim=1)
            return generated
        finally:
            self.train(was_training)


# ---------------------------------------------------------------------------------------------
# State dicts and configs


def infer_config(state_dict: Mapping[str, torch.Tensor]) -> E0294Config:
    """Read the model dims off a state dict with the E0294 key layout (ValueError if absent)."""
    needed = ("token_embedding.weight", "pos_embedding.weight", "layers.0.feed_forward.fc1.weight")
    missing = [k for k in needed if k not in state_dict]
    if missing:
        raise ValueError(f"state dict: missing key(s) {missing}; not an E0294 model state dict")
    for k in needed:
        if not isinstance(state_dict[k], torch.Tensor) or state_dict[k].dim() != 2:
            raise ValueError(f"state dict: {k} must be a 2-D tensor")
    vocab_size, d_model = state_dict["token_embedding.weight"].shape
    max_seq_len = state_dict["pos_embedding.weight"].shape[0]
    d_ff = state_dict["layers.0.feed_forward.fc1.weight"].shape[0]
    layer_ids = {int(m.group(1)) for k in state_dict if (m := re.match(r"layers\.(\d+)\.", k))}
    return E0294Config(
        int(vocab_size), int(d_model), int(d_ff), max(layer_ids) + 1, int(max_seq_len)
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """``torch.load`` a state dict (tensors only, to CPU); ValueError if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model state dict {str(path)!r}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is bad input
        raise ValueError(f"model state dict {str(path)!r}: cannot be read ({exc})") from exc
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"model state dict {str(path)!r}: not a mapping of tensors")
    return dict(obj)


def load_model(
    path: str | Path,
    device: str | torch.device = "cpu",
    overrides: Mapping[str, int] | None = None,
) -> DecoderOnlyTransformer:
    """Build a model with the dims inferred from the state dict at ``path`` (or ``overrides``),
    load the weights strictly, move it to ``device`` and put it in eval mode."""
    state_dict = read_state_dict(path)
    cfg = asdict(infer_config(state_dict))
    cfg.update({k: v for k, v in (overrides or {}).items() if v is not None})
    model = DecoderOnlyTransformer(**cfg)
    load_state_dict_checked(model, state_dict)
    return model.to(device).eval()
