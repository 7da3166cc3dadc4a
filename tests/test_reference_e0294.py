"""Tests of the E0294 2-layer reference model (costmodel/reference/e0294*.py)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from costmodel.reference import e0294_bench, e0294_cases, e0294_model  # noqa: E402
from costmodel.reference.e0294 import main  # noqa: E402
from costmodel.reference.e0294_model import DecoderOnlyTransformer  # noqa: E402
from costmodel.reference.loading import load_state_dict_checked  # noqa: E402

SD_PATH = e0294_model.DATA_DIR / e0294_model.STATE_DICT_FILENAME
TC_PATH = e0294_model.DATA_DIR / e0294_model.TEST_CASES_FILENAME


def _layer_keys(i: int) -> list[str]:
    """The text's per-layer keys (SingleHeadAttention registers W_k, W_v, W_q, W_o in order)."""
    return [
        f"layers.{i}.attention.W_k.weight",
        f"layers.{i}.attention.W_v.weight",
        f"layers.{i}.attention.W_q.weight",
        f"layers.{i}.attention.W_o.weight",
        f"layers.{i}.feed_forward.fc1.weight",
        f"layers.{i}.feed_forward.fc1.bias",
        f"layers.{i}.feed_forward.fc2.weight",
        f"layers.{i}.feed_forward.fc2.bias",
        f"layers.{i}.norm1.weight",
        f"layers.{i}.norm1.bias",
        f"layers.{i}.norm2.weight",
        f"layers.{i}.norm2.bias",
    ]


TEXT_KEYS = (
    ["token_embedding.weight", "pos_embedding.weight"]
    + _layer_keys(0)
    + _layer_keys(1)
    + ["norm.weight", "norm.bias", "output_projection.weight", "output_projection.bias"]
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """One torch thread: these tiny ops run 10-50x slower when 2 threads share busy cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> DecoderOnlyTransformer:
    """A default-dims model (the e0294-2layer preset), random weights, eval mode."""
    torch.manual_seed(0)
    return DecoderOnlyTransformer().eval()


@pytest.fixture(scope="module")
def small() -> DecoderOnlyTransformer:
    """A small model with a short position table, for the bad-input tests."""
    torch.manual_seed(0)
    return DecoderOnlyTransformer(
        vocab_size=50, d_model=16, d_ff=32, num_layers=2, max_seq_len=12
    ).eval()


# --- committed reference files --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["evaluate", "kv_evaluate"])
def test_evaluate_modes_pass_on_committed_files(mode: str, capsys: pytest.CaptureFixture) -> None:
    rc = main(["--mode", mode, "--model_state_dict", str(SD_PATH), "--test_cases", str(TC_PATH)])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines() == [
        f"Successfully loaded model state dictionary from {SD_PATH}",
        f"Test cases loaded from {TC_PATH}",
        "Evaluation Results:",
        "  Num test cases: 10",
        "  All tests passed: True",
        "  Pass rate: 100.00% (10/10)",
    ]


def test_evaluate_defaults_to_committed_files(capsys: pytest.CaptureFixture) -> None:
    assert main(["--mode", "evaluate"]) == 0
    assert "Pass rate: 100.00% (10/10)" in capsys.readouterr().out


def test_committed_files_are_small_and_reproducible(tmp_path: Path) -> None:
    assert SD_PATH.stat().st_size + TC_PATH.stat().st_size < 1_000_000
    sd_new, tc_new = e0294_cases.make_reference_files(tmp_path, seed=0)
    old_sd = torch.load(SD_PATH, weights_only=True)
    new_sd = torch.load(sd_new, weights_only=True)
    assert list(old_sd) == list(new_sd)
    assert all(torch.equal(old_sd[k], new_sd[k]) for k in old_sd)
    old_tc, new_tc = json.loads(TC_PATH.read_text()), json.loads(tc_new.read_text())
    assert len(old_tc["test_cases"]) == 10
    for a, b in zip(old_tc["test_cases"], new_tc["test_cases"], strict=True):
        assert a["input_ids"] == b["input_ids"]
        torch.testing.assert_close(
            torch.tensor(a["expected_logits"]),
            torch.tensor(b["expected_logits"]),
            rtol=0,
            atol=1e-9,
        )


def test_evaluate_reports_failure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = json.loads(TC_PATH.read_text())
    data["test_cases"][3]["expected_logits"][0][7] += 1e-2
    bad = tmp_path / "cases.json"
    bad.write_text(json.dumps(data))
    assert main(["--mode", "evaluate", "--test_cases", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "  All tests passed: False" in out and "  Pass rate: 90.00% (9/10)" in out


def test_text_mask_bug_is_caught_by_kv_evaluate(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the text's ``diagonal=1`` mask, the chunked step of kv_evaluate goes wrong."""
    ref = e0294_model.load_model(SD_PATH)
    cases = e0294_cases.load_test_cases(TC_PATH)
    assert all(e0294_cases.evaluate(ref, cases, use_cache=True))

    def text_mask(q_len: int, past_len: int, device: object = None) -> torch.Tensor:
        ones = torch.ones(q_len, past_len + q_len, dtype=torch.bool, device=device)
        return torch.triu(ones, diagonal=1)

    monkeypatch.setattr(e0294_model, "causal_mask", text_mask)
    assert not all(e0294_cases.evaluate(ref, cases, use_cache=True))


# --- cache correctness ----------------------------------------------------------------------


def test_causal_mask() -> None:
    m = e0294_model.causal_mask(3, 5)
    assert m.shape == (3, 8)
    # query i (absolute position 5 + i) sees keys 0..5+i
    assert m.tolist() == [[False] * 6 + [True] * 2, [False] * 7 + [True], [False] * 8]
    assert torch.equal(e0294_model.causal_mask(4, 0),
                       torch.triu(torch.ones(4, 4, dtype=torch.bool), 1))


@pytest.mark.parametrize("seq_len", [1, 2, 9, 33])
def test_cached_logits_match_uncached(model: DecoderOnlyTransformer, seq_len: int) -> None:
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.vocab_size, (2, seq_len), generator=gen)
    with torch.no_grad():
        full, none = model(ids)
        inc = e0294_cases.incremental_logits(model, ids)
    assert none is None
    assert inc.shape == full.shape == (2, seq_len, model.vocab_size)
    assert (inc - full).abs().max().item() <= 1e-5


def test_chunked_prefill_matches_uncached(model: DecoderOnlyTransformer) -> None:
    """Cache of 5 tokens, then a chunk of 3 on top (the text's mask is wrong here), then 1."""
    ids = torch.randint(0, model.vocab_size, (2, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full, _ = model(ids)
        a, kv = model(ids[:, :5], use_cache=True)
        b, kv = model(ids[:, 5:8], kv, use_cache=True)
        c, kv = model(ids[:, 8:], kv, use_cache=True)
    assert all(k.shape == (2, 9, model.d_model) and v.shape == k.shape for k, v in kv)
    assert (torch.cat([a, b, c], dim=1) - full).abs().max().item() <= 1e-5


def test_generate_same_tokens_with_and_without_cache(model: DecoderOnlyTransformer) -> None:
    ids = torch.randint(0, model.vocab_size, (2, 7), generator=torch.Generator().manual_seed(3))
    with_kv = model.generate(ids, 12, use_cache=True, do_sample=False)
    no_kv = model.generate(ids, 12, use_cache=False, do_sample=False)
    assert with_kv.shape == (2, 19)
    assert torch.equal(with_kv[:, :7], ids)
    assert torch.equal(with_kv, no_kv)
    sampled = [
        model.generate(ids, 5, use_cache=c, generator=torch.Generator().manual_seed(4))
        for c in (True, False)
    ]
    assert torch.equal(sampled[0], sampled[1])


def test_generate_restores_train_mode_and_disables_dropout() -> None:
    torch.manual_seed(0)
    m = DecoderOnlyTransformer(vocab_size=40, d_model=16, d_ff=32, max_seq_len=32, dropout=0.5)
    m.train()
    ids = torch.randint(0, 40, (1, 5))
    runs = [m.generate(ids, 6, do_sample=False) for _ in range(3)]
    assert m.training
    assert all(torch.equal(r, runs[0]) for r in runs)


# --- layout and size ------------------------------------------------------------------------


def test_state_dict_keys_match_text(model: DecoderOnlyTransformer) -> None:
    assert list(model.state_dict()) == TEXT_KEYS
    assert list(torch.load(SD_PATH, weights_only=True)) == TEXT_KEYS


def test_parameter_count_default_dims(model: DecoderOnlyTransformer) -> None:
    # V=1000, d=128, d_ff=512, S=2048, L=2
    # embeddings:  V*d + S*d                         = 128,000 + 262,144           = 390,144
    # per layer:   4d^2 (W_q, W_k, W_v, W_o, no bias) = 65,536
    #              + 2*2d (norm1, norm2)              = 512
    #              + d*d_ff + d_ff (fc1)              = 65,536 + 512
    #              + d_ff*d + d (fc2)                 = 65,536 + 128               = 197,760
    # 2 layers:                                                                    = 395,520
    # final norm:  2d                                                              = 256
    # output:      d*V + V (untied, with bias)        = 128,000 + 1,000            = 129,000
    # total:       390,144 + 395,520 + 256 + 129,000                               = 914,920
    assert sum(p.numel() for p in model.parameters()) == 914_920
    cfg = e0294_model.DEFAULT_CONFIG
    assert (cfg.vocab_size, cfg.d_model, cfg.d_ff, cfg.num_layers, cfg.max_seq_len) == (
        1000,
        128,
        512,
        2,
        2048,
    )


# --- bad input ------------------------------------------------------------------------------


def test_missing_key_raises(small: DecoderOnlyTransformer) -> None:
    sd = small.state_dict()
    del sd["layers.1.norm2.bias"]
    with pytest.raises(ValueError, match=r"missing keys: layers\.1\.norm2\.bias"):
        load_state_dict_checked(DecoderOnlyTransformer(50, 16, 32, 2, 12), sd)


def test_unexpected_key_raises(small: DecoderOnlyTransformer) -> None:
    sd = small.state_dict()
    sd["layers.0.attention.W_q.bias"] = torch.zeros(16)
    with pytest.raises(ValueError, match="unexpected keys: layers.0.attention.W_q.bias"):
        load_state_dict_checked(DecoderOnlyTransformer(50, 16, 32, 2, 12), sd)


def test_wrong_shape_raises(small: DecoderOnlyTransformer) -> None:
    sd = small.state_dict()
    sd["layers.0.feed_forward.fc2.weight"] = torch.zeros(16, 31)
    with pytest.raises(ValueError, match="wrong shapes: layers.0.feed_forward.fc2.weight"):
        load_state_dict_checked(DecoderOnlyTransformer(50, 16, 32, 2, 12), sd)


def test_too_long_prompt_raises(small: DecoderOnlyTransformer) -> None:
    with pytest.raises(ValueError, match="exceeds max_seq_len=12"):
        small(torch.zeros(1, 13, dtype=torch.long))
    _, kv = small(torch.zeros(1, 10, dtype=torch.long), use_cache=True)
    with pytest.raises(ValueError, match=r"12 tokens \(10 cached \+ 3 new\)|13 tokens"):
        small(torch.zeros(1, 3, dtype=torch.long), kv, use_cache=True)
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        small.generate(torch.zeros(1, 10, dtype=torch.long), 3)


@pytest.mark.parametrize("bad_id", [50, 1000, -1])
def test_out_of_range_id_raises(small: DecoderOnlyTransformer, bad_id: int) -> None:
    ids = torch.tensor([[1, 2, bad_id]])
    with pytest.raises(ValueError, match=f"token id {bad_id} outside the vocabulary"):
        small(ids)


def test_cli_bad_state_dict_exits_2_with_one_line(
    tmp_path: Path, small: DecoderOnlyTransformer, capsys: pytest.CaptureFixture
) -> None:
    sd = torch.load(SD_PATH, weights_only=True)
    del sd["norm.weight"]
    path = tmp_path / "broken.pt"
    torch.save(sd, path)
    assert main(["--mode", "evaluate", "--model_state_dict", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "missing keys: norm.weight" in err


def test_cli_bad_test_case_ids_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = json.loads(TC_PATH.read_text())
    data["test_cases"][0]["input_ids"] = [[1000]]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(data))
    assert main(["--mode", "kv_evaluate", "--test_cases", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "token id 1000 outside the vocabulary" in err


def test_cli_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nope.pt"
    assert main(["--mode", "benchmark", "--model_state_dict", str(missing)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


# --- benchmark and plot ---------------------------------------------------------------------


def test_benchmark_mode_writes_csv(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc = main(
        [
            "--mode",
            "benchmark",
            "--seq_lens",
            "10",
            "20",
            "--repeats",
            "1",
            "--num_tokens",
            "2",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(" |")[0] for ln in lines if ln.startswith("Seq Len:")] == [
        "Seq Len: 10",
        "Seq Len: 20",
    ]
    with (tmp_path / e0294_bench.BENCHMARK_CSV_FILENAME).open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["seq_len"]) for r in rows] == [10, 20]
    assert all(float(r["no_kv_s"]) > 0 and float(r["with_kv_s"]) > 0 for r in rows)


def test_benchmark_function_and_plot(tmp_path: Path) -> None:
    torch.manual_seed(0)
    m = DecoderOnlyTransformer(vocab_size=64, d_model=16, d_ff=32, max_seq_len=64)
    rows = e0294_bench.benchmark(m, [4, 8], num_tokens=2, repeats=1, warmup=0)
    assert [r["seq_len"] for r in rows] == [4, 8]
    assert set(rows[0]) >= {"no_kv_s", "with_kv_s", "speedup", "num_tokens", "device"}
    png = e0294_bench.plot_benchmark(rows, tmp_path / "lat.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="exceeds max_seq_len"):
        e0294_bench.benchmark(m, [63], num_tokens=2, repeats=1)


def test_plot_mode_writes_png(tmp_path: Path) -> None:
    rc = main(
        [
            "--mode",
            "plot",
            "--seq_lens",
            "4",
            "--repeats",
            "1",
            "--num_tokens",
            "1",
            "--warmup",
            "0",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    assert (tmp_path / e0294_bench.PLOT_FILENAME).stat().st_size > 1000
    assert (tmp_path / e0294_bench.BENCHMARK_CSV_FILENAME).is_file()
