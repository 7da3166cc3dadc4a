"""In-repo training: the sort demo, the shipped corpus and the committed target/draft pair."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from costmodel.reference.gpt import GPTConfig  # noqa: E402
from costmodel.reference.loading import load_checkpoint  # noqa: E402
from costmodel.reference.speculative import generate_speculative  # noqa: E402
from costmodel.reference.train import (  # noqa: E402
    CORPUS_PATH,
    DRAFT_PATH,
    TARGET_PATH,
    CharTokenizer,
    demo_sort,
    load_corpus,
    load_textpair,
    make_corpus,
    save_checkpoint,
    train_lm,
    train_sort,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sort_demo_generate_with_and_without_cache_agree() -> None:
    model, task = train_sort(max_iters=250)
    stats = demo_sort(model, task, n=100)
    assert stats["mismatches"] == 0  # generate with and without cache: identical sequences
    assert stats["accuracy"] > 0.8


def test_shipped_corpus_is_the_generated_one() -> None:
    assert make_corpus(5000, seed=3) == make_corpus(5000, seed=3)
    text = load_corpus()
    assert CORPUS_PATH.exists() and 100_000 < len(text) < 1_000_000
    assert text == make_corpus()
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode("seven plus one is eight.")) == "seven plus one is eight."
    with pytest.raises(ValueError, match="vocabulary"):
        tok.encode("Q")


def test_committed_checkpoints_are_small_and_speculate() -> None:
    assert TARGET_PATH.stat().st_size + DRAFT_PATH.stat().st_size < 10 * 2**20
    target, draft, tok = load_textpair()
    assert target.config.vocab_size == draft.config.vocab_size == tok.vocab_size
    assert target.config.n_layer > draft.config.n_layer
    prompt = torch.tensor([tok.encode("count from three to")])
    ref = target.generate(prompt, 40, cache="dynamic")
    assert torch.equal(ref, target.generate(prompt, 40, cache="none"))
    res = generate_speculative(target, draft, prompt, 40, 4)
    assert torch.equal(res.tokens, ref)
    assert res.acceptance_rate > 0.5  # the pair agrees on most of this predictable text
    assert tok.decode(ref[0, prompt.size(1) :].tolist()).startswith(" ")


def test_train_lm_and_checkpoint_roundtrip(tmp_path) -> None:
    data = torch.tensor(CharTokenizer("ab").encode("ab" * 200))
    config = GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=2, block_size=32)
    model, loss = train_lm(
        config, data, max_iters=30, batch_size=4, seq_len=16, lr=1e-2, log_every=0
    )
    assert loss < 0.5  # alternating text is learnt at once
    save_checkpoint(model, tmp_path / "ckpt.pt", half=False, chars="ab")
    loaded, meta = load_checkpoint(tmp_path, return_meta=True)
    assert meta["chars"] == "ab" and loaded.config == model.config
    idx = torch.tensor([[0, 1, 0]])
    assert torch.equal(loaded.generate(idx, 5), model.generate(idx, 5))
