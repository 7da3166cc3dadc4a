"""The MBU benchmark: the bytes it divides by come from the operator model (checked by hand
for GPT-2), and it runs end to end at a tiny size beside Hugging Face's GPT-2."""

from __future__ import annotations

import csv

import pytest

torch = pytest.importorskip("torch")

from costmodel.reference.bench import main  # noqa: E402
from costmodel.reference.bench_hf import decode_bytes_read  # noqa: E402
from costmodel.reference.config import GPTConfig  # noqa: E402


def test_decode_bytes_read_by_hand():
    """GPT-2 fp32, one decode step with 1024 positions after it: every weight once but the
    position table (one row of it and of the token table: the LM head reads the tied table
    whole) = (124,439,808 − 1024·768 + 2·768) · 4 bytes; K and V of 12 layers × 1024
    positions × 768 · 4 bytes."""
    cfg = GPTConfig.from_preset("gpt2", attn_impl="eager")
    r = decode_bytes_read(cfg, 1024, 4, "static")
    assert r["weight_read"] == (124_439_808 - 1024 * 768 + 2 * 768) * 4 == 494_619_648
    assert r["kv_read"] == 2 * 12 * 1024 * 768 * 4


def test_the_benchmark_runs_beside_hugging_face(tmp_path, capsys):
    pytest.importorskip("transformers")
    before = torch.get_num_threads()
    assert main(["mbu", "--models", "gpt-nano", "--contexts", "16,32", "--repeats", "2",
                 "--warmup", "1", "--out", str(tmp_path)]) == 0
    torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert "copy bandwidth" in out and "MBU" in out and "transformers GPT-2" in out
    lines = [ln for ln in (tmp_path / "mbu.csv").read_text().splitlines()
             if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    assert [r["what"] for r in rows] == ["static_decode", "dynamic_decode", "dynamic_decode"]
    assert [int(r["context"]) for r in rows] == [32, 16, 32]
    assert all(float(r["ours_ms"]) > 0 and 0 < float(r["mbu"]) for r in rows)
    assert all(float(r["hf_ms"]) > 0 for r in rows[1:])
