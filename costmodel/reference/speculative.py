"""Speculative decoding: a small draft model proposes ``gamma`` tokens, the target verifies them.

Greedy verification (``temperature == 0``) keeps the longest prefix of drafted tokens that equals
the target's argmax and then appends the target's own token, so the output is token-for-token the
target's greedy output. Speculative sampling (``temperature > 0``, Leviathan et al. 2023 / Chen et
al. 2023) accepts drafted token ``x`` with probability ``min(1, p(x) / q(x))``; on rejection it
resamples from ``norm(max(0, p - q))``; when all ``gamma`` are accepted it draws a bonus token from
``p``. The output then has exactly the target's sampling distribution.

Both models keep a KV cache (dynamic by default, static optionally); after a rejection each cache
is rolled back to the accepted prefix (crop for dynamic, rewind the write position for static).
One iteration = ``gamma`` draft forward calls + 1 target forward call of ``gamma + 1`` tokens
(``q = gamma + 1`` new tokens on ``c`` cached ones).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from costmodel.reference.gpt import GPT
from costmodel.reference.sampling import filter_logits


@dataclass
class SpeculativeResult:
    """Tokens and acceptance statistics of one ``generate_speculative`` call."""

    tokens: torch.Tensor  # (1, T_prompt + max_new_tokens)
    gamma: int
    iterations: int = 0
    target_calls: int = 0
    draft_calls: int = 0
    accepted_counts: list[int] = field(
        default_factory=list
    )  # [i]: times draft token i was accepted
    proposed_counts: list[int] = field(
        default_factory=list
    )  # [i]: times draft token i was proposed
    accepted_total: int = 0  # drafted tokens accepted, all iterations

    @property
    def mean_accepted(self) -> float:
        """Mean drafted tokens accepted per iteration (excluding the target's own token)."""
        return self.accepted_total / self.iterations if self.iterations else 0.0

    @property
    def tokens_per_iteration(self) -> float:
        """Mean tokens produced per target call (accepted drafts + the corrected/bonus token)."""
        return (self.accepted_total + self.iterations) / self.iterations if self.iterations else 0.0

    @property
    def acceptance_rate(self) -> float:
        """Fraction of proposed draft tokens that were accepted."""
        proposed = sum(self.proposed_counts)
        return self.accepted_total / proposed if proposed else 0.0

    @property
    def per_position_acceptance(self) -> list[float]:
        """P(draft token i accepted | proposed), for i = 0 .. gamma-1."""
        return [
            a / p if p else 0.0
            for a, p in zip(self.accepted_counts, self.proposed_counts, strict=True)
        ]


class _Runner:
    """A model plus its KV cache: feed tokens not yet cached, roll back to a length."""

    def __init__(self, model: GPT, cache: str, max_len: int):
        self.model, self.cache, self.length = model, cache, 0
        self.kv = model.empty_kv_cache() if cache == "dynamic" else None
        if cache == "static":
            model.setup_static_cache(1, max_len)
        self.calls = 0

    def feed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Run ``tokens`` (1, q) after the cached prefix; return logits (q, V) at every position."""
        self.calls += 1
        if self.cache == "dynamic":
            logits, _, self.kv = self.model(tokens, kv_cache=self.kv, all_logits=True)
        else:
            logits, _ = self.model(tokens, input_pos=self.length, all_logits=True)
        self.length += tokens.size(1)
        return logits[0]

    def rollback(self, length: int) -> None:
        if length < self.length:
            self.length = length
            if self.cache == "dynamic":
                self.kv = self.kv.crop(length)


@torch.inference_mode()
def generate_speculative(
    target: GPT,
    draft: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    gamma: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    cache: str = "dynamic",
) -> SpeculativeResult:
    """Generate ``max_new_tokens`` after ``idx`` (1, T) with ``target``, drafting with ``draft``.

    Returns a :class:`SpeculativeResult` (``.tokens`` has shape (1, T + max_new_tokens)). The
    whole sequence must fit both models' block size (no sliding window here).
    """
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError(
            f"draft vocab_size ({draft.config.vocab_size}) != "
            f"target vocab_size ({target.config.vocab_size})"
        )
    if idx.dim() != 2 or idx.size(0) != 1:
        raise ValueError(
            f"speculative decoding takes one sequence, idx of shape (1, T); got {tuple(idx.shape)}"
        )
    if gamma < 1:
        raise ValueError(f"gamma must be >= 1, got {gamma}")
    if cache not in ("dynamic", "static"):
        raise ValueError(f"cache must be 'dynamic' or 'static', got {cache!r}")
    total = idx.size(1) + max_new_tokens
    limit = min(target.config.block_size, draft.config.block_size)
    if total + gamma > limit:
        raise ValueError(
            f"prompt ({idx.size(1)}) + max_new_tokens ({max_new_tokens}) + gamma ({gamma}) "
            f"exceeds block_size {limit}"
        )
    greedy = temperature == 0
    t_run = _Runner(target, cache, total + gamma)
    d_run = _Runner(draft, cache, total + gamma)
    res = SpeculativeResult(
        tokens=idx, gamma=gamma, accepted_counts=[0] * gamma, proposed_counts=[0] * gamma
    )
    seq = idx[0].tolist()
    n_prompt = len(seq)

    def probs(logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(filter_logits(logits, temperature, top_k), dim=-1)

    while len(seq) - n_prompt < max_new_tokens:
        g = min(gamma, max_new_tokens - (len(seq) - n_prompt))
        # 1. draft g tokens autoregressively (first call also absorbs any uncached tokens)
        drafted: list[int] = []
        q_probs: list[torch.Tensor] = []
        pending = seq[d_run.length :]
        for _ in range(g):
            logits = d_run.feed(torch.tensor([pending], device=idx.device))[-1]
            if greedy:
                tok = int(torch.argmax(logits))
            else:
                qp = probs(logits)
                tok = int(torch.multinomial(qp, 1, generator=generator))
                q_probs.append(qp)
            drafted.append(tok)
            pending = [tok]
        # 2. the target scores every drafted prefix in one call (q = uncached + g tokens)
        fed = seq[t_run.length :] + drafted
        t_logits = t_run.feed(torch.tensor([fed], device=idx.device))[-(g + 1) :]  # (g+1, V)
        # 3. verify
        n_acc = 0
        if greedy:
            t_tokens = torch.argmax(t_logits, dim=-1).tolist()
            while n_acc < g and drafted[n_acc] == t_tokens[n_acc]:
                n_acc += 1
            nxt = t_tokens[n_acc]
        else:
            p_all = probs(t_logits)
            nxt = None
            while n_acc < g:
                tok = drafted[n_acc]
                p, q = p_all[n_acc], q_probs[n_acc]
                r = torch.rand((), generator=generator, device=p.device)
                if r * q[tok] < p[tok]:  # accept with probability min(1, p/q)
                    n_acc += 1
                    continue
                residual = torch.clamp(p - q, min=0)
                mass = residual.sum()
                residual = residual / mass if mass > 0 else p
                nxt = int(torch.multinomial(residual, 1, generator=generator))
                break
            if nxt is None:  # all accepted: bonus token from the target
                nxt = int(torch.multinomial(p_all[g], 1, generator=generator))
        for i in range(g):
            res.proposed_counts[i] += 1
            if i < n_acc:
                res.accepted_counts[i] += 1
        res.accepted_total += n_acc
        res.iterations += 1
        seq.extend(drafted[:n_acc])
        seq.append(nxt)
        # 4. roll back both caches to the accepted prefix (the new last token is not cached yet)
        t_run.rollback(len(seq) - 1)
        d_run.rollback(len(seq) - 1)

    seq = seq[: n_prompt + max_new_tokens]
    res.tokens = torch.tensor([seq], dtype=idx.dtype, device=idx.device)
    res.target_calls, res.draft_calls = t_run.calls, d_run.calls
    return res
