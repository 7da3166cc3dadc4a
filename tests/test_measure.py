"""Measuring the reference model: the grid, spec_for and the CSV."""

from __future__ import annotations

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import costmodel as cm  # noqa: E402
import costmodel.validation_commands  # noqa: E402,F401
from costmodel.cli import main  # noqa: E402
from costmodel.measure import (  # noqa: E402
    COLUMNS,
    MODELS,
    Point,
    gpt_config,
    grid_points,
    measure,
    spec_for,
    spec_from_row,
)
from costmodel.reference.gpt import GPT, GPTConfig  # noqa: E402


@pytest.mark.parametrize("name", list(MODELS))
def test_spec_for_counts_the_reference_parameters(name):
    config = gpt_config(name)
    spec = spec_for(config)
    with torch.device("meta"):
        model = GPT(config)
    assert cm.param_count(spec) == sum(p.numel() for p in model.parameters())
    assert spec.n_kv_heads == config.n_kv_head and spec.d_ff == config.d_ff


def test_spec_for_llama_variant_is_gqa():
    spec = spec_for(gpt_config("llama-gqa"))
    assert spec.gated_mlp and spec.norm == "rmsnorm" and spec.positions == "rotary"
    assert spec.n_heads == 3 * spec.n_kv_heads and not spec.tied_embeddings
    with pytest.raises(ValueError, match="LayerNorm without bias"):
        spec_for(GPTConfig(n_layer=1, n_head=2, n_embd=8, bias=False))


def test_grids_and_points():
    assert len(grid_points("full")) == 120
    assert len(grid_points("tiny")) == 4
    p = Point("gpt-nano", 2, 64, "decode_static")
    assert (p.new_tokens, p.cached_tokens, p.cache) == (1, 64, "static")
    assert Point("gpt2", 1, 32, "no_cache").cache == "none"
    with pytest.raises(ValueError, match="phase"):
        Point("gpt-nano", 1, 8, "decode")
    with pytest.raises(ValueError, match="grid"):
        grid_points("huge")


def test_measure_writes_a_complete_csv(tmp_path):
    out = tmp_path / "m.csv"
    grid = [Point("gpt-nano", 1, 8, "decode_static"), Point("gpt-nano", 2, 8, "prefill")]
    rows = measure(grid, out_csv=out, repeats=3, warmup=1, min_time=0.002)
    df = pd.read_csv(out)
    assert list(df.columns) == list(COLUMNS) and len(df) == 2 == len(rows)
    assert (df["time_s"] > 0).all() and (df["time_p10_s"] <= df["time_p90_s"]).all()
    assert (df["threads"] == 1).all() and (df["lm_head"] == "last").all()
    assert df.loc[0, "static_max_len"] == 1024 and df.loc[1, "new_tokens"] == 8
    spec = spec_from_row(df.iloc[0])
    assert spec == spec_for(gpt_config("gpt-nano")).replace(source="")
    assert not [p for p in tmp_path.iterdir() if p.name != "m.csv"]   # no temp files left


def test_measure_bad_input_writes_nothing(tmp_path, capsys):
    out = tmp_path / "m.csv"
    with pytest.raises(ValueError, match="device"):
        measure("tiny", device="gpu0", out_csv=out)
    assert main(["measure", "--grid", "tiny", "--device", "tpu", "--out", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()
