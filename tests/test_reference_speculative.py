"""Speculative decoding: greedy equals target greedy; sampling preserves the target distribution."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from costmodel.reference.gpt import GPT, LLAMA_STYLE, GPTConfig  # noqa: E402
from costmodel.reference.speculative import generate_speculative  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(
    seed: int, vocab: int = 40, n_layer: int = 2, n_embd: int = 32, scale: float = 0.0, **kw
) -> GPT:
    torch.manual_seed(seed)
    model = GPT(
        GPTConfig(n_layer=n_layer, n_head=4, n_embd=n_embd, vocab_size=vocab, block_size=64, **kw)
    ).eval()
    if scale:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(scale * torch.randn_like(p))
    return model


@pytest.mark.parametrize("gamma", [1, 3, 6])
@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_greedy_speculative_equals_target_greedy(gamma: int, cache: str) -> None:
    target = tiny(0, scale=0.1)
    for draft in (tiny(1, n_layer=1, scale=0.1), target):  # a poor draft and a perfect one
        for prompt_len in (1, 7):
            idx = torch.randint(
                40, (1, prompt_len), generator=torch.Generator().manual_seed(prompt_len)
            )
            expected = target.generate(idx, 30, cache="none")
            res = generate_speculative(target, draft, idx, 30, gamma, cache=cache)
            assert torch.equal(res.tokens, expected)
            assert res.target_calls == res.iterations
            assert res.draft_calls == sum(res.proposed_counts)
            assert len(res.accepted_counts) == gamma
            if draft is target:
                assert res.acceptance_rate == 1.0
                assert res.iterations == -(-30 // (gamma + 1))


def test_speculative_llama_gqa_greedy() -> None:
    kw = dict(n_kv_head=2, **LLAMA_STYLE)
    target, draft = tiny(0, scale=0.1, **kw), tiny(3, n_layer=1, scale=0.1, **kw)
    idx = torch.tensor([[1, 2, 3]])
    assert torch.equal(
        generate_speculative(target, draft, idx, 20, 4).tokens,
        target.generate(idx, 20, cache="dynamic"),
    )


@torch.inference_mode()
def test_speculative_sampling_matches_target_distribution() -> None:
    """Chi-square goodness of fit of the first two sampled tokens against the target's exact law."""
    V, N, gamma, temperature = 4, 2000, 3, 1.0
    target = tiny(2, vocab=V, n_layer=1, n_embd=16, scale=0.15)
    draft = tiny(7, vocab=V, n_layer=1, n_embd=16, scale=0.15)
    idx = torch.tensor([[1, 3]])
    # exact target probabilities of (x1, x2)
    p1 = torch.softmax(target(idx)[0][0, -1] / temperature, -1)
    pairs = torch.cat((idx.repeat(V, 1), torch.arange(V)[:, None]), dim=1)
    p2 = torch.softmax(target(pairs)[0][:, -1] / temperature, -1)
    expected = (p1[:, None] * p2).flatten() * N
    q1 = torch.softmax(draft(idx)[0][0, -1], -1)
    assert (p1 - q1).abs().sum() > 0.2, (
        "draft should differ from target for the test to mean anything"
    )
    assert expected.min() >= 5
    g = torch.Generator().manual_seed(1234)
    counts = torch.zeros(V * V)
    accepted = 0
    for _ in range(N):
        res = generate_speculative(
            target, draft, idx, 2, gamma, temperature=temperature, generator=g
        )
        x1, x2 = res.tokens[0, -2:].tolist()
        counts[x1 * V + x2] += 1
        accepted += res.accepted_total
    assert 0 < accepted < 2 * N  # both accept and reject paths were exercised
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # critical value chi2.ppf(0.999, df=15) = 37.697 (scipy.stats.chi2; standard chi-square tables)
    assert chi2 < 37.697, f"chi-square {chi2:.1f} with 15 dof"


def test_mismatched_vocab_and_bad_input() -> None:
    target, draft = tiny(0, vocab=40), tiny(1, vocab=41)
    with pytest.raises(ValueError, match="vocab"):
        generate_speculative(target, draft, torch.tensor([[1]]), 5, 2)
    with pytest.raises(ValueError, match="one sequence"):
        generate_speculative(target, target, torch.tensor([[1], [2]]), 5, 2)
    with pytest.raises(ValueError, match="block_size"):
        generate_speculative(target, target, torch.tensor([[1]]), 70, 2)
    with pytest.raises(ValueError, match="gamma"):
        generate_speculative(target, target, torch.tensor([[1]]), 5, 0)
