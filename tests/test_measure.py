"""Measuring the reference model: the grid, the configs, the CSV, and writing it (and the
speculative CSV) all-or-nothing."""

from __future__ import annotations

import io

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import costmodel as cm  # noqa: E402
from costmodel.cli import main  # noqa: E402
from costmodel.reference.config import GPTConfig  # noqa: E402
from costmodel.reference.gpt import GPT  # noqa: E402
from costmodel.validation import measure as measuring  # noqa: E402
from costmodel.validation import measure_speculative as spec_measuring  # noqa: E402
from costmodel.validation.grids import (  # noqa: E402
    MODELS,
    Point,
    gpt_config,
    grid_points,
)
from costmodel.validation.io import COLUMNS, read_measurements, spec_of  # noqa: E402
from costmodel.validation.measure import measure  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("name", list(MODELS))
def test_to_spec_counts_the_reference_parameters(name):
    config = gpt_config(name)
    spec = config.to_spec()
    with torch.device("meta"):
        model = GPT(config)
    # PyTorch's own count of the module's parameters (tied weights once) is the oracle
    assert cm.param_count(spec) == sum(p.numel() for p in model.parameters())
    assert spec.n_kv_heads == config.n_kv_head and spec.d_ff == config.d_ff


def test_llama_variant_is_gqa():
    spec = gpt_config("llama-gqa").to_spec()
    assert spec.gated_mlp and spec.norm == "rmsnorm" and spec.positions == "rotary"
    assert spec.n_heads == 3 * spec.n_kv_heads and not spec.tied_embeddings
    with pytest.raises(ValueError, match="LayerNorm without bias"):
        GPTConfig(n_layer=1, n_head=2, n_embd=8, bias=False).to_spec()


def test_grids_and_points():
    assert len(grid_points("full")) == 120
    assert len(grid_points("tiny")) == 4
    assert len(grid_points("modern")) == 4 * 2 * 3 * 4        # models × B × s × phases
    # the GPU grid: 4 models × B {1, 8, 64} × s {128, 1024, 4096} × (eager 3 phases, compiled
    # the static decode step, Hugging Face 3 phases); a static cache of s + 1 positions
    gpu = grid_points("gpu", "bf16")
    assert len(gpu) == 4 * 3 * 3 * 7 and {p.dtype for p in gpu} == {"bf16"}
    assert {p.engine for p in gpu} == {"eager", "compiled", "hf"}
    assert all(p.static_max_len == p.context + 1 for p in gpu if p.phase == "decode_static")
    assert len(grid_points("kit-tiny")) == 36 + 4 + 36
    p = Point("gpu-gpt2", 8, 1024, "decode_static", "bf16", "compiled", 1025)
    assert p.point_id == "gpu-gpt2|B8|s1024|decode_static|bf16|compiled"
    with pytest.raises(ValueError, match="engine"):
        Point("gpu-gpt2", 1, 8, "prefill", engine="vllm")
    with pytest.raises(ValueError, match="static_max_len"):
        Point("gpu-gpt2", 1, 8, "decode_static", static_max_len=8)
    # decode: one new token on s cached ones; the static cache is written in place
    assert Point("gpt-nano", 2, 64, "decode_static").workload == (1, 64, "static")
    assert Point("gpt-nano", 2, 64, "prefill").workload == (64, 0, "dynamic")
    assert Point("gpt2", 1, 32, "no_cache").workload == (32, 0, "none")
    with pytest.raises(ValueError, match="phase"):
        Point("gpt-nano", 1, 8, "decode")
    with pytest.raises(ValueError, match="grid"):
        grid_points("huge")
    with pytest.raises(ValueError, match="batch"):
        Point("gpt-nano", 2.5, 8, "prefill")


@pytest.fixture(scope="module")
def two_points(tmp_path_factory):
    out = tmp_path_factory.mktemp("m") / "m.csv"
    grid = [Point("gpt-nano", 1, 8, "decode_static"), Point("gpt-nano", 2, 8, "prefill")]
    with torch.inference_mode():
        before = torch.get_num_threads()
        rows = measure(grid, out_csv=out, repeats=3, warmup=1, min_time=0.002)
        assert torch.get_num_threads() == before
    return out, rows


def test_measure_writes_a_complete_csv(two_points):
    out, rows = two_points
    df = pd.read_csv(out)
    assert list(df.columns) == list(COLUMNS) and len(df) == 2 == len(rows)
    assert (df["time_s"] > 0).all() and (df["time_p10_s"] <= df["time_p90_s"]).all()
    assert (df["threads"] == 1).all() and (df["lm_head"] == "last").all()
    assert df.loc[0, "static_max_len"] == 1024 and df.loc[1, "new_tokens"] == 8
    # the static cache: K and V of 3 layers × 3 heads × 16 dims × 1024 positions × 4 bytes
    assert df.loc[0, "kv_cache_bytes_measured"] == 2 * 3 * 3 * 16 * 1024 * 4
    assert spec_of(df.iloc[0]) == gpt_config("gpt-nano").to_spec().replace(source="")
    checked = read_measurements(out, checks=True)      # the reader accepts what measure wrote
    assert list(checked["context"]) == [8, 8]
    assert [p.name for p in out.parent.iterdir()] == ["m.csv"]   # nothing staged left


def test_measure_bad_input_writes_nothing(tmp_path, capsys):
    out = tmp_path / "m.csv"
    with pytest.raises(ValueError, match="device"):
        measure("tiny", device="gpu0", out_csv=out)
    assert main(["measure", "--grid", "tiny", "--device", "tpu", "--out", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(ValueError, match="warmup"):
        measure("tiny", warmup=-1, out_csv=out)
    assert not out.exists() and not list(tmp_path.iterdir())


# ---------------------------------------------------------------- all-or-nothing outputs


@pytest.fixture
def old_outputs(tmp_path):
    """A measurement CSV and its speculative CSV from an earlier run."""
    out = tmp_path / "m.csv"
    spec = tmp_path / "m_speculative.csv"
    out.write_text("old grid\n")
    spec.write_text("old speculative\n")
    return out, spec


def _fake_measure(rows):
    def fake(*args, **kwargs):
        return [dict(r) for r in rows]
    return fake


def test_speculative_failure_leaves_both_csvs(old_outputs, two_points, monkeypatch, capsys):
    """`measure --speculative` measures the grid, then fails on the speculative part: the old
    m.csv is not replaced (both files are one output set)."""
    out, spec = old_outputs
    monkeypatch.setattr(measuring, "measure", _fake_measure(two_points[1]))

    def broken(*args, **kwargs):
        raise ValueError("speculative: the trained target/draft pair is not available")

    monkeypatch.setattr(spec_measuring, "measure_speculative", broken)
    assert main(["measure", "--grid", "tiny", "--out", str(out), "--speculative",
                 "--quiet"]) == 2
    assert "target/draft pair" in capsys.readouterr().err
    assert out.read_text() == "old grid\n" and spec.read_text() == "old speculative\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["m.csv", "m_speculative.csv"]


def test_unwritable_speculative_csv_fails_before_measuring(old_outputs, monkeypatch, capsys):
    out, spec = old_outputs
    spec.unlink()
    spec.mkdir()                     # a folder where the speculative CSV should go

    def never(*args, **kwargs):
        raise AssertionError("measured although a destination is unusable")

    monkeypatch.setattr(measuring, "measure", never)
    assert main(["measure", "--grid", "tiny", "--out", str(out), "--speculative"]) == 2
    err = capsys.readouterr().err
    assert str(spec) in err and "folder" in err and "staging" not in err
    assert out.read_text() == "old grid\n"


def test_measure_then_both_files_together(old_outputs, two_points, monkeypatch):
    out, spec = old_outputs
    monkeypatch.setattr(measuring, "measure", _fake_measure(two_points[1]))
    monkeypatch.setattr(spec_measuring, "measure_speculative",
                        lambda **kw: [{"gamma": 0, "method": "target_only", "time_s": 1.0}])
    assert main(["measure", "--grid", "tiny", "--out", str(out), "--speculative",
                 "--quiet"]) == 0
    assert len(pd.read_csv(out)) == 2
    assert pd.read_csv(spec)["method"].tolist() == ["target_only"]


def test_appending_keeps_the_rows_a_file_has(two_points, tmp_path, capsys):
    """--append adds points after the file's own rows, which stay as they were cell for cell
    (an older file gains the newer columns with the values its rows had); a point measured
    again is refused, and a failed append leaves the file alone."""
    from costmodel.validation.measure import appended_text

    out, rows = two_points
    older = tmp_path / "older.csv"
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    df.drop(columns=["engine", "flops_counted", "moe_dispatch", "n_experts"]).to_csv(
        older, index=False)
    before = older.read_text()
    more = measure([Point("gpt-nano", 1, 8, "prefill")], repeats=2, warmup=1,
                   min_time=0.002)
    text = appended_text(older, more)
    new = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert list(new.columns) == list(COLUMNS) and len(new) == 3
    kept = new.iloc[:2]
    for col in df.columns:
        if col in ("engine", "flops_counted", "moe_dispatch", "n_experts"):
            continue
        assert list(kept[col]) == list(df[col]), col
    assert list(kept["engine"]) == ["eager"] * 2 and list(kept["flops_counted"]) == [""] * 2
    assert list(kept["n_experts"]) == ["0"] * 2
    with pytest.raises(ValueError, match="already has 1 of these points"):
        appended_text(out, rows[:1])
    assert main(["measure", "--grid", "tiny", "--out", str(tmp_path / "nope.csv"),
                 "--append"]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert older.read_text() == before
