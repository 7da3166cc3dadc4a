"""Reference files and evaluation of the E0294 model: an independent float64 forward pass, the
committed test cases, and the check of the model's logits (with and without the KV cache).

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

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from costmodel.reference.e0294_model import (
    REFERENCE_CONFIG,
    STATE_DICT_FILENAME,
    TEST_CASES_FILENAME,
    DecoderOnlyTransformer,
    infer_config,
)

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
