"""Small in-repo training: minGPT's sort demo and a target/draft pair on the shipped text corpus.

    python -m costmodel.reference.train sort       # train gpt-nano to sort digits, compare caches
    python -m costmodel.reference.train textpair   # retrain the committed target/draft checkpoints
    python -m costmodel.reference.train corpus     # regenerate data/corpus.txt (seeded)

The corpus is procedurally generated structured English (arithmetic facts, counting, calendars,
short templated stories): public domain by construction and highly predictable, which is what
makes speculative decoding pay off. Models are character level.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from costmodel.reference.gpt import GPT, GPTConfig

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPUS_PATH = DATA_DIR / "corpus.txt"
TARGET_PATH = DATA_DIR / "text_target.pt"
DRAFT_PATH = DATA_DIR / "text_draft.pt"

# ----------------------------------------------------------------------------- sort demo


@dataclass
class SortTask:
    """minGPT's SortDataset: ``length`` digits in ``[0, num_digits)`` followed by them sorted."""

    length: int = 6
    num_digits: int = 3

    @property
    def block_size(self) -> int:
        return 2 * self.length - 1

    def batch(
        self, batch_size: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inp = torch.randint(self.num_digits, (batch_size, self.length), generator=generator)
        cat = torch.cat((inp, inp.sort(dim=1).values), dim=1)
        x, y = cat[:, :-1].clone(), cat[:, 1:].clone()
        y[:, : self.length - 1] = -1  # only the sorted half is predicted
        return x, y


def train_sort(
    max_iters: int = 400,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    task: SortTask | None = None,
    log_every: int = 0,
) -> tuple[GPT, SortTask]:
    """Train gpt-nano on the sort task (seconds on a CPU). Returns the model (eval) and task."""
    task = task or SortTask()
    torch.manual_seed(seed)
    config = GPTConfig.from_preset(
        "gpt-nano", vocab_size=task.num_digits, block_size=task.block_size
    )
    model = GPT(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for it in range(max_iters):
        x, y = task.batch(batch_size, g)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and it % log_every == 0:
            print(f"iter {it}: loss {loss.item():.4f}")
    return model.eval(), task


@torch.inference_mode()
def demo_sort(model: GPT, task: SortTask, n: int = 200, seed: int = 1) -> dict[str, float]:
    """Sort ``n`` random sequences with ``generate`` under every cache strategy.

    Returns accuracy (fraction sorted correctly) and ``mismatches`` (sequences where the dynamic or
    static cache output differs from the uncached output; must be 0).
    """
    g = torch.Generator().manual_seed(seed)
    inp = torch.randint(task.num_digits, (n, task.length), generator=g)
    outs = {
        c: model.generate(inp, task.length, cache=c)[:, task.length :]
        for c in ("none", "dynamic", "static")
    }
    ref = outs["none"]
    mismatches = int(((outs["dynamic"] != ref).any(1) | (outs["static"] != ref).any(1)).sum())
    accuracy = float((ref == inp.sort(dim=1).values).all(1).float().mean())
    return {"n": n, "accuracy": accuracy, "mismatches": mismatches}


# ----------------------------------------------------------------------------- corpus

_NUMBERS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
_DAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_MONTHS = (
    "january february march april may june july august september october november december"
).split()
_COLORS = "red blue green yellow brown white black grey".split()
_ANIMALS = "cat dog fox owl bear horse rabbit mouse goat duck".split()
_PLACES = "garden forest river market village field barn hill".split()
_FOODS = "apples bread carrots seeds honey cheese berries corn".split()


def _arithmetic(rng: random.Random) -> str:
    a, b = rng.randint(0, 10), rng.randint(0, 10)
    if rng.random() < 0.5:
        return f"{_NUMBERS[a]} plus {_NUMBERS[b]} is {_NUMBERS[a + b]}."
    a, b = max(a, b), min(a, b)
    return f"{_NUMBERS[a]} minus {_NUMBERS[b]} is {_NUMBERS[a - b]}."


def _counting(rng: random.Random) -> str:
    a = rng.randint(0, 14)
    b = rng.randint(a + 2, min(a + 8, 20))
    return f"count from {_NUMBERS[a]} to {_NUMBERS[b]}: " + ", ".join(_NUMBERS[a : b + 1]) + "."


def _calendar(rng: random.Random) -> str:
    if rng.random() < 0.5:
        i = rng.randrange(7)
        return f"after {_DAYS[i]} comes {_DAYS[(i + 1) % 7]}, and then {_DAYS[(i + 2) % 7]}."
    i = rng.randrange(12)
    return f"the month after {_MONTHS[i]} is {_MONTHS[(i + 1) % 12]}."


def _story(rng: random.Random) -> str:
    c, a, p, p2, f = (
        rng.choice(_COLORS),
        rng.choice(_ANIMALS),
        rng.choice(_PLACES),
        rng.choice(_PLACES),
        rng.choice(_FOODS),
    )
    return (
        f"the {c} {a} lives in the {p}. every morning the {c} {a} walks to the {p2} and eats "
        f"{f}. then the {c} {a} goes back to the {p}."
    )


def make_corpus(n_chars: int = 400_000, seed: int = 1234) -> str:
    """Deterministic structured English text of about ``n_chars`` characters."""
    rng = random.Random(seed)
    makers = (_arithmetic, _counting, _calendar, _story)
    lines: list[str] = []
    size = 0
    while size < n_chars:
        line = rng.choice(makers)(rng)
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


def load_corpus(path: Path = CORPUS_PATH) -> str:
    """The shipped corpus (regenerated from ``make_corpus`` if the file is missing)."""
    return path.read_text() if path.exists() else make_corpus()


class CharTokenizer:
    """Character-level tokenizer over a fixed alphabet."""

    def __init__(self, chars: str):
        self.chars = chars
        self.stoi = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, s: str) -> list[int]:
        unknown = sorted({ch for ch in s if ch not in self.stoi})
        if unknown:
            raise ValueError(f"characters not in the vocabulary: {unknown!r}")
        return [self.stoi[ch] for ch in s]

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


# ----------------------------------------------------------------------------- text pair

TARGET_CONFIG = dict(n_layer=8, n_head=4, n_embd=128, block_size=128, name="text-target")
DRAFT_CONFIG = dict(n_layer=1, n_head=2, n_embd=64, block_size=128, name="text-draft")


def train_lm(
    config: GPTConfig,
    data: torch.Tensor,
    max_iters: int,
    batch_size: int = 16,
    seq_len: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    max_seconds: float | None = None,
    log_every: int = 50,
) -> tuple[GPT, float]:
    """Train a character LM on a 1-D token tensor (random windows, AdamW, cosine decay).

    Returns the model in eval mode and the mean loss of the last 20 iterations.
    """
    torch.manual_seed(seed)
    model = GPT(config)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(seed)
    warmup = max(1, max_iters // 20)
    recent: list[float] = []
    t0 = time.perf_counter()
    model.train()
    for it in range(max_iters):
        frac = it / max_iters  # schedule progress: by iterations, or by time when time-limited
        if max_seconds is not None:
            frac = min(1.0, max(frac, (time.perf_counter() - t0) / max_seconds))
        for group in opt.param_groups:
            group["lr"] = (
                lr
                * min(1.0, (it + 1) / warmup)
                * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
            )
        ix = torch.randint(len(data) - seq_len - 1, (batch_size,), generator=g)
        x = torch.stack([data[i : i + seq_len] for i in ix.tolist()])
        y = torch.stack([data[i + 1 : i + 1 + seq_len] for i in ix.tolist()])
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent = (recent + [loss.item()])[-20:]
        elapsed = time.perf_counter() - t0
        if log_every and it % log_every == 0:
            print(f"{config.name} iter {it}: loss {loss.item():.4f} ({elapsed:.0f}s)", flush=True)
        if max_seconds is not None and elapsed > max_seconds:
            print(f"{config.name}: stopping at iter {it} after {elapsed:.0f}s", flush=True)
            break
    return model.eval(), sum(recent) / len(recent)


def save_checkpoint(model: GPT, path: Path, half: bool = True, **meta) -> None:
    """Save in nanoGPT's layout (``model_args`` + ``model``) plus our full ``config``.

    Floating tensors are stored as fp16 when ``half`` (to keep committed files small); a tied
    ``lm_head.weight`` is omitted (it is the embedding).
    """
    sd = model.state_dict()
    if model.config.tie_embeddings:
        sd.pop("lm_head.weight", None)
    sd = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in sd.items()
    }
    cfg = model.config.to_dict()
    torch.save({"model_args": cfg, "config": cfg, "model": sd, **meta}, path)


def train_textpair(
    target_iters: int = 1200,
    draft_iters: int = 2500,
    max_seconds: float | None = None,
    out_dir: Path = DATA_DIR,
    only: str | None = None,
    batch_size: int = 16,
    target_lr: float = 3e-3,
) -> dict[str, float]:
    """Train and save the target/draft pair on the shipped corpus."""
    text = load_corpus()
    tok = CharTokenizer.from_text(text)
    data = torch.tensor(tok.encode(text), dtype=torch.long)
    results = {}
    for name, cfg_kw, iters, lr, path in (
        ("draft", DRAFT_CONFIG, draft_iters, 3e-3, out_dir / DRAFT_PATH.name),
        ("target", TARGET_CONFIG, target_iters, target_lr, out_dir / TARGET_PATH.name),
    ):
        if only is not None and name != only:
            continue
        config = GPTConfig(vocab_size=tok.vocab_size, **cfg_kw)
        model, loss = train_lm(
            config, data, iters, batch_size=batch_size, lr=lr, max_seconds=max_seconds
        )
        save_checkpoint(model, path, chars=tok.chars, train_loss=loss)
        results[f"{name}_loss"] = loss
        print(
            f"saved {path.name}: {model.get_num_params() / 1e6:.2f}M params, loss {loss:.4f}",
            flush=True,
        )
    return results


def load_textpair(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> tuple[GPT, GPT, CharTokenizer]:
    """The committed target and draft models (eval mode) and their tokenizer."""
    from costmodel.reference.loading import load_checkpoint

    target, meta = load_checkpoint(TARGET_PATH, device=device, dtype=dtype, return_meta=True)
    draft, _ = load_checkpoint(DRAFT_PATH, device=device, dtype=dtype, return_meta=True)
    return target, draft, CharTokenizer(meta["chars"])


# ----------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m costmodel.reference.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("what", choices=["sort", "textpair", "corpus"])
    p.add_argument(
        "--iters", type=int, default=None, help="training iterations (target for textpair)"
    )
    p.add_argument("--draft-iters", type=int, default=2500)
    p.add_argument(
        "--max-seconds", type=float, default=None, help="stop each model's training after this"
    )
    p.add_argument("--out", type=Path, default=DATA_DIR, help="where textpair checkpoints go")
    p.add_argument("--only", choices=["target", "draft"], default=None, help="textpair: one model")
    p.add_argument("--batch-size", type=int, default=16, help="textpair: sequences per step")
    p.add_argument("--lr", type=float, default=None, help="textpair: target learning rate")
    args = p.parse_args(argv)
    if args.what == "corpus":
        CORPUS_PATH.write_text(make_corpus())
        print(f"wrote {CORPUS_PATH.name} ({CORPUS_PATH.stat().st_size} bytes)")
    elif args.what == "sort":
        t0 = time.perf_counter()
        model, task = train_sort(max_iters=args.iters or 1200, log_every=100)
        t1 = time.perf_counter()
        stats = demo_sort(model, task)
        print(
            f"trained in {t1 - t0:.1f}s; sorted {stats['accuracy']:.1%} of {stats['n']} "
            "test sequences; "
            f"cache mismatches: {stats['mismatches']}"
        )
        return 0 if stats["mismatches"] == 0 else 1
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        kw = {} if args.lr is None else {"target_lr": args.lr}
        results = train_textpair(
            args.iters or 1200,
            args.draft_iters,
            args.max_seconds,
            args.out,
            only=args.only,
            batch_size=args.batch_size,
            **kw,
        )
        print(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
