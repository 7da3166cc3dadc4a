"""E0294 (Assignment 4, Problem 2): a 2-layer, single-head, decoder-only teaching transformer.

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

Command line (``python -m costmodel.reference.e0294 --mode MODE``):

* ``evaluate``: logits of the prompt, computed without a cache, against the test-case file.
* ``kv_evaluate``: the same logits computed incrementally with the KV cache (the first half of
  the prompt as one chunk, up to 3 more tokens as a second chunk on top of the cache, then one
  token at a time: :func:`incremental_logits`) against the same file.
* ``benchmark``: latency of generating ``--num_tokens`` tokens (greedy) after prompts of each
  ``--seq_lens`` length, with and without the cache (warm-up, repeats, median); prints a table
  and writes ``e0294_benchmark.csv`` to ``--out``.
* ``plot``: the same measurements, also drawn to ``e0294_latency.png`` in ``--out``.

Bad input (missing file, state dict with missing/unexpected keys or wrong shapes, prompt too
long, ids out of range, unavailable device) prints one ``error: ...`` line to stderr and exits 2;
a failed evaluation exits 1.

The committed reference files (``data/e0294_model_state_dict.pt`` and
``data/e0294_test_cases.json``, written by :func:`make_reference_files`) use a *smaller* model of
the same architecture (:data:`REFERENCE_CONFIG`: d_model=32, d_ff=128, max_seq_len=256), because
the default dims hold 914,920 parameters (3.7 MB in fp32) and the two files must stay under 1 MB.
The CLI infers the dims from the state dict it loads, so a student's default-dims file works too.
The test-case file stores, per prompt, the float64 logits of the *last* prompt position only
(``[batch, vocab]``), computed by an independent functional implementation
(:func:`reference_forward`); a file whose ``expected_logits`` are ``[batch, seq, vocab]`` (all
positions) is accepted as well and then compared at every position.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from costmodel.lazy import deferred
from costmodel.reference.gpt import causal_mask
from costmodel.reference.loading import load_state_dict_checked
from costmodel.reference.timing import resolve_device, synchronizer, time_once

mfigure = deferred("matplotlib.figure")

KVCache = list[tuple[torch.Tensor, torch.Tensor]]

DATA_DIR = Path(__file__).resolve().parent / "data"
STATE_DICT_FILENAME = "e0294_model_state_dict.pt"
TEST_CASES_FILENAME = "e0294_test_cases.json"
BENCHMARK_CSV_FILENAME = "e0294_benchmark.csv"
PLOT_FILENAME = "e0294_latency.png"
DEFAULT_SEQ_LENS: tuple[int, ...] = (10, 50, 100, 500, 1000)
DEFAULT_ATOL = 1e-4
TEST_CASES_FORMAT = "costmodel.e0294.test_cases/v1"
# (batch, prompt length) of the 10 committed test cases.
REFERENCE_CASES: tuple[tuple[int, int], ...] = (
    (1, 1),
    (1, 2),
    (2, 5),
    (1, 8),
    (1, 16),
    (2, 31),
    (1, 64),
    (1, 100),
    (1, 128),
    (1, 200),
)


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


# ---------------------------------------------------------------------------------------------
# Reference files


def reference_forward(
    state_dict: Mapping[str, torch.Tensor], input_ids: torch.Tensor, num_layers: int | None = None
) -> torch.Tensor:
    """Logits ``[B, T, vocab]`` in float64 written out from the formulas, independent of
    :class:`DecoderOnlyTransformer` (no cache, no dropout); used to make the expected logits."""
    sd = {k: v.detach().to("cpu", torch.float64) for k, v in state_dict.items()}
    n_layers = infer_config(state_dict).num_layers if num_layers is None else num_layers
    d_model = sd["token_embedding.weight"].shape[1]
    ids = input_ids.to("cpu", torch.long)
    seq = ids.shape[1]

    def layer_norm(x: torch.Tensor, prefix: str) -> torch.Tensor:
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * sd[f"{prefix}.weight"] + sd[f"{prefix}.bias"]

    x = sd["token_embedding.weight"][ids] + sd["pos_embedding.weight"][:seq]
    allowed = torch.tril(torch.ones(seq, seq, dtype=torch.bool))
    for i in range(n_layers):
        p = f"layers.{i}"
        h = layer_norm(x, f"{p}.norm1")
        q = h @ sd[f"{p}.attention.W_q.weight"].T
        k = h @ sd[f"{p}.attention.W_k.weight"].T
        v = h @ sd[f"{p}.attention.W_v.weight"].T
        scores = (q @ k.transpose(1, 2)) / math.sqrt(d_model)
        scores = torch.where(allowed, scores, torch.tensor(float("-inf"), dtype=torch.float64))
        scores = scores - scores.amax(-1, keepdim=True)
        weights = scores.exp() / scores.exp().sum(-1, keepdim=True)
        x = x + (weights @ v) @ sd[f"{p}.attention.W_o.weight"].T
        h = layer_norm(x, f"{p}.norm2")
        h = torch.clamp(
            h @ sd[f"{p}.feed_forward.fc1.weight"].T + sd[f"{p}.feed_forward.fc1.bias"], min=0.0
        )
        x = x + h @ sd[f"{p}.feed_forward.fc2.weight"].T + sd[f"{p}.feed_forward.fc2.bias"]
    h = layer_norm(x, "norm")
    return h @ sd["output_projection.weight"].T + sd["output_projection.bias"]


def make_reference_files(out_dir: str | Path, seed: int = 0) -> tuple[Path, Path]:
    """Write the reference state dict and test cases (:data:`REFERENCE_CONFIG`) to ``out_dir``.

    Weights are drawn from ``torch.Generator().manual_seed(seed)``: embeddings N(0, 1), Linear
    weights N(0, 1/fan_in) (so attention is far from uniform), biases N(0, 0.1^2), LayerNorm
    weight 1 + N(0, 0.1^2) and bias N(0, 0.1^2). The 10 prompts (:data:`REFERENCE_CASES`) come
    from the same generator; each case stores ``input_ids`` ``[B, T]`` and the float64 logits of
    the last prompt position ``[B, vocab]`` from :func:`reference_forward`, as plain JSON
    numbers (nothing rounded). Returns ``(state_dict_path, test_cases_path)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    cfg = REFERENCE_CONFIG
    template = DecoderOnlyTransformer(**asdict(cfg)).state_dict()
    state_dict: dict[str, torch.Tensor] = {}
    for key, tensor in template.items():
        shape = tensor.shape
        if key.endswith("embedding.weight"):
            value = torch.randn(shape, generator=gen)
        elif ("norm" in key) and key.endswith(".weight"):
            value = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif key.endswith(".bias"):
            value = 0.1 * torch.randn(shape, generator=gen)
        else:  # Linear weight [out, in]
            value = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
        state_dict[key] = value.to(torch.float32).contiguous()
    cases = []
    for batch, length in REFERENCE_CASES:
        ids = torch.randint(0, cfg.vocab_size, (batch, length), generator=gen)
        logits = reference_forward(state_dict, ids, cfg.num_layers)[:, -1, :]
        cases.append({"input_ids": ids.tolist(), "expected_logits": logits.tolist()})
    payload = {
        "format": TEST_CASES_FORMAT,
        "description": "E0294 2-layer reference: prompts and float64 logits of the last prompt "
        "position, made by costmodel.reference.e0294.make_reference_files",
        "seed": seed,
        "logits_position": "last",
        "atol": DEFAULT_ATOL,
        "model_config": asdict(cfg),
        "test_cases": cases,
    }
    sd_path = out / STATE_DICT_FILENAME
    tc_path = out / TEST_CASES_FILENAME
    torch.save(state_dict, sd_path)
    tc_path.write_text(json.dumps(payload) + "\n")
    return sd_path, tc_path


@dataclass
class TestCase:
    """One evaluation case: ``input_ids`` ``[B, T]`` and expected ``[B, V]`` or ``[B, T, V]``."""

    __test__ = False  # not a pytest class

    input_ids: torch.Tensor
    expected_logits: torch.Tensor


def load_test_cases(path: str | Path) -> list[TestCase]:
    """Read a test-case JSON file (a ``{"test_cases": [...]}`` object or a bare list of cases,
    each with ``input_ids`` and ``expected_logits``); ValueError when malformed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"test cases {str(path)!r}: file not found")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"test cases {str(path)!r}: not valid JSON ({exc})") from exc
    raw = data.get("test_cases") if isinstance(data, dict) else data
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"test cases {str(path)!r}: expected a non-empty list of test cases")
    cases = []
    for i, case in enumerate(raw):
        try:
            ids = torch.tensor(case["input_ids"], dtype=torch.long)
            expected = torch.tensor(case["expected_logits"], dtype=torch.float64)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"test case {i}: needs numeric 'input_ids' and 'expected_logits' ({exc})"
            ) from exc
        if ids.dim() == 1:
            ids = ids.unsqueeze(0)
        if expected.dim() == 1:
            expected = expected.unsqueeze(0)
        ok = (
            ids.dim() == 2
            and ids.shape[1] > 0
            and expected.shape[0] == ids.shape[0]
            and (expected.dim() == 2 or (expected.dim() == 3 and expected.shape[1] == ids.shape[1]))
        )
        if not ok:
            raise ValueError(
                f"test case {i}: input_ids {tuple(ids.shape)} and expected_logits "
                f"{tuple(expected.shape)} do not match ([B, T] with [B, V] or "
                f"[B, T, V])"
            )
        cases.append(TestCase(ids, expected))
    return cases


# ---------------------------------------------------------------------------------------------
# Evaluation


@torch.inference_mode()
def incremental_logits(
    model: DecoderOnlyTransformer, input_ids: torch.Tensor, prefix_len: int | None = None
) -> torch.Tensor:
    """Logits ``[B, T, V]`` of ``input_ids`` computed with the KV cache.

    The first ``prefix_len`` tokens (default ``max(1, T // 2)``) go in as one chunk, the next
    ``min(3, rest)`` as a second chunk on top of the cache (chunked prefill: the case the text's
    mask got wrong), then the remainder one token at a time (decode).
    """
    seq = input_ids.shape[1]
    prefix = max(1, seq // 2) if prefix_len is None else prefix_len
    if not 1 <= prefix <= seq:
        raise ValueError(f"prefix_len: must lie in [1, {seq}], got {prefix}")
    logits, past_kv = model(input_ids[:, :prefix], use_cache=True)
    chunks = [logits]
    second = min(prefix + 3, seq)
    if second > prefix:
        step_logits, past_kv = model(input_ids[:, prefix:second], past_kv, use_cache=True)
        chunks.append(step_logits)
    for t in range(second, seq):
        step_logits, past_kv = model(input_ids[:, t : t + 1], past_kv, use_cache=True)
        chunks.append(step_logits)
    return torch.cat(chunks, dim=1)


def evaluate(
    model: DecoderOnlyTransformer,
    cases: Sequence[TestCase],
    use_cache: bool = False,
    atol: float = DEFAULT_ATOL,
) -> list[bool]:
    """Per case, whether the model's logits match the expected ones (``allclose``, rtol=0)."""
    model.eval()
    device = next(model.parameters()).device
    results = []
    for case in cases:
        ids = case.input_ids.to(device)
        with torch.inference_mode():
            logits = incremental_logits(model, ids) if use_cache else model(ids)[0]
        logits = logits.to("cpu", torch.float64)
        if case.expected_logits.dim() == 2:
            logits = logits[:, -1, :]
        same_shape = logits.shape == case.expected_logits.shape
        results.append(
            bool(same_shape and torch.allclose(logits, case.expected_logits, rtol=0.0, atol=atol))
        )
    return results


# ---------------------------------------------------------------------------------------------
# Benchmark


def benchmark(
    model: DecoderOnlyTransformer,
    seq_lens: Sequence[int] = DEFAULT_SEQ_LENS,
    num_tokens: int = 8,
    repeats: int = 5,
    *,
    warmup: int = 1,
    batch_size: int = 1,
    seed: int = 0,
) -> list[dict[str, float | int | str]]:
    """Median latency (s) of ``generate`` (greedy, ``num_tokens`` new tokens) after a random
    prompt of each length in ``seq_lens``, without and with the KV cache.

    Each length gets ``warmup`` untimed runs of both variants, then ``repeats`` timed runs that
    alternate the two. Returns one dict per length: ``seq_len``, ``num_tokens``, ``batch_size``,
    ``repeats``, ``no_kv_s``, ``with_kv_s``, ``speedup`` (no_kv / with_kv), ``device``,
    ``threads``. Raises ValueError when a length plus ``num_tokens`` exceeds ``max_seq_len``.
    """
    for name, value in (
        ("num_tokens", num_tokens),
        ("repeats", repeats),
        ("batch_size", batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup: must be an integer >= 0, got {warmup!r}")
    if not seq_lens:
        raise ValueError("seq_lens: must not be empty")
    for s in seq_lens:
        if isinstance(s, bool) or not isinstance(s, int) or s <= 0:
            raise ValueError(f"seq_lens: must be positive integers, got {s!r}")
        if s + num_tokens > model.max_seq_len:
            raise ValueError(
                f"seq_len {s} + num_tokens {num_tokens} exceeds max_seq_len={model.max_seq_len}"
            )
    device = next(model.parameters()).device
    sync = synchronizer(device)
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, float | int | str]] = []
    for seq_len in seq_lens:
        prompt = torch.randint(0, model.vocab_size, (batch_size, seq_len), generator=gen)
        prompt = prompt.to(device)

        def run(use_cache: bool, prompt: torch.Tensor = prompt) -> float:
            return time_once(lambda: model.generate(prompt, num_tokens, use_cache=use_cache,
                                                    do_sample=False), sync)

        for _ in range(warmup):
            run(False)
            run(True)
        no_kv, with_kv = [], []
        for _ in range(repeats):
            no_kv.append(run(False))
            with_kv.append(run(True))
        no_kv_s, with_kv_s = statistics.median(no_kv), statistics.median(with_kv)
        rows.append(
            {
                "seq_len": seq_len,
                "num_tokens": num_tokens,
                "batch_size": batch_size,
                "repeats": repeats,
                "no_kv_s": no_kv_s,
                "with_kv_s": with_kv_s,
                "speedup": no_kv_s / with_kv_s if with_kv_s > 0 else float("inf"),
                "device": str(device),
                "threads": torch.get_num_threads(),
            }
        )
    return rows


def format_benchmark_row(row: Mapping[str, float | int | str]) -> str:
    """``Seq Len: 10 | No KV: 0.6300s | With KV: 0.2501s | Speedup: 2.52x``."""
    return (
        f"Seq Len: {row['seq_len']} | No KV: {row['no_kv_s']:.4f}s | "
        f"With KV: {row['with_kv_s']:.4f}s | Speedup: {row['speedup']:.2f}x"
    )


def write_benchmark_csv(rows: Sequence[Mapping[str, float | int | str]], path: Path) -> Path:
    """Write the :func:`benchmark` rows as CSV (one header line, one line per length)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_benchmark(rows: Sequence[Mapping[str, float | int | str]], path: Path) -> Path:
    """Draw latency vs prompt length with and without the KV cache to a PNG at ``path``."""
    seq = [int(r["seq_len"]) for r in rows]
    fig = mfigure.Figure(figsize=(7, 5))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(seq, [float(r["no_kv_s"]) for r in rows], marker="o", label="Without KV cache")
    ax.plot(seq, [float(r["with_kv_s"]) for r in rows], marker="s", label="With KV cache")
    ax.set_xlabel("Prompt length (tokens)")
    ax.set_ylabel(f"Latency to generate {rows[0]['num_tokens']} tokens (s)")
    ax.set_title(
        f"E0294 2-layer model: generation latency vs prompt length "
        f"({rows[0]['device']}, {rows[0]['threads']} thread(s), "
        f"median of {rows[0]['repeats']})",
        fontsize=10,
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


# ---------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(
        prog="python -m costmodel.reference.e0294",
        description="E0294 2-layer decoder: evaluate, kv_evaluate, benchmark, plot.",
    )
    p.add_argument(
        "--mode", required=True, choices=["evaluate", "kv_evaluate", "benchmark", "plot"]
    )
    p.add_argument(
        "--model_state_dict",
        default=None,
        help="state dict (.pt); default: the committed reference for evaluate modes, "
        "a randomly initialised default-dims model for benchmark/plot",
    )
    p.add_argument(
        "--test_cases", default=None, help="test-case JSON; default: the committed reference"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (default cpu)")
    p.add_argument("--out", default=".", help="folder for the CSV and PNG (default: .)")
    p.add_argument("--num_tokens", type=int, default=8, help="tokens to generate (default 8)")
    p.add_argument("--seq_lens", type=int, nargs="+", default=list(DEFAULT_SEQ_LENS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    for name in ("vocab_size", "d_model", "d_ff", "num_layers", "max_seq_len"):
        p.add_argument(
            f"--{name}",
            type=int,
            default=None,
            help="default: read off the state dict, else the preset's value",
        )
    return p


def _run(args: argparse.Namespace) -> int:
    """Carry out one CLI mode; returns the exit code."""
    device = resolve_device(args.device)
    if args.threads is not None:
        if args.threads <= 0:
            raise ValueError(f"threads: must be a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in asdict(DEFAULT_CONFIG)}
    if args.mode in ("evaluate", "kv_evaluate"):
        sd_path = args.model_state_dict or str(DATA_DIR / STATE_DICT_FILENAME)
        tc_path = args.test_cases or str(DATA_DIR / TEST_CASES_FILENAME)
        model = load_model(sd_path, device, overrides)
        print(f"Successfully loaded model state dictionary from {sd_path}")
        cases = load_test_cases(tc_path)
        print(f"Test cases loaded from {tc_path}")
        results = evaluate(model, cases, use_cache=args.mode == "kv_evaluate", atol=args.atol)
        passed = sum(results)
        print("Evaluation Results:")
        print(f"  Num test cases: {len(results)}")
        print(f"  All tests passed: {passed == len(results)}")
        print(f"  Pass rate: {100.0 * passed / len(results):.2f}% ({passed}/{len(results)})")
        return 0 if passed == len(results) else 1

    if args.model_state_dict:
        model = load_model(args.model_state_dict, device, overrides)
        print(f"Successfully loaded model state dictionary from {args.model_state_dict}")
    else:
        torch.manual_seed(args.seed)
        cfg = {**asdict(DEFAULT_CONFIG), **{k: v for k, v in overrides.items() if v is not None}}
        model = DecoderOnlyTransformer(**cfg).to(device).eval()
        print(f"Randomly initialised model {model.config} (seed {args.seed})")
    print("Benchmarking...")
    rows = benchmark(
        model,
        args.seq_lens,
        args.num_tokens,
        args.repeats,
        warmup=args.warmup,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    for row in rows:
        print(format_benchmark_row(row))
    out = Path(args.out)
    print(f"CSV written to {write_benchmark_csv(rows, out / BENCHMARK_CSV_FILENAME)}")
    if args.mode == "plot":
        print(f"Plot written to {plot_benchmark(rows, out / PLOT_FILENAME)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; 0 on success, 1 when an evaluation fails, 2 on bad input (one stderr line)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (ValueError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
