"""Hostile input to the validation's readers: every broken measurement CSV, speculative CSV and
calibration JSON is refused with one error naming the file, the row and the field — before
anything is computed, written, or handed to torch."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from costmodel.cli import main
from costmodel.validation.grids import grid_models
from costmodel.validation.io import MODERN_SPEC_COLUMNS, read_measurements
from costmodel.validation.speculative_io import read_speculative
from costmodel.validation.validate import validate

ROOT = Path(__file__).resolve().parent.parent
GRID = ROOT / "data" / "measurements" / "cpu.csv"
SPECULATIVE = ROOT / "data" / "measurements" / "cpu_speculative.csv"
CALIBRATION = ROOT / "data" / "hardware" / "cpu.json"


@pytest.fixture(scope="module")
def grid() -> pd.DataFrame:
    """The first 8 committed points (gpt-nano, batch 1, s = 32 and 128, every phase)."""
    df = pd.read_csv(GRID).head(8)
    assert list(df["phase"][:4]) == ["prefill", "decode_dynamic", "decode_static", "no_cache"]
    return df


def _write(tmp_path: Path, df: pd.DataFrame, name: str = "m.csv") -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def _set(df: pd.DataFrame, row: int, col: str, value) -> pd.DataFrame:
    df = df.copy()
    df[col] = df[col].astype(object)
    df.loc[row, col] = value
    return df


def test_the_committed_files_read_clean(grid):
    df = read_measurements(GRID, checks=True)
    assert len(df) == 120 + 96 and df["batch"].dtype.kind == "i"     # full grid + modern
    # the rows measured before the dynamic cache grew in place ran torch.cat: they say so
    older = df["model"].isin(grid_models("full")) & (df["cache"] == "dynamic")
    assert (df.loc[older, "kv_update"] == "concat").all() and older.sum() == 60
    assert (df.loc[~older & (df["cache"] == "dynamic"), "kv_update"] == "inplace").all()
    assert (df.loc[df["model"].isin(grid_models("modern")), "flops_counted"] > 0).all()
    assert (df["context"] == df["cached_tokens"].where(df["phase"].str.startswith("decode"),
                                                      df["new_tokens"])).all()
    base, rows = read_speculative(SPECULATIVE)
    assert base["method"] == "target_only" and [r["gamma"] for r in rows] == list(range(1, 9))


# (row index, column, value, what the message must say after "row <index + 1> ...: ")
GRID_CASES = {
    "time zero": (2, "time_s", 0, r"time_s: must be a number > 0, got 0"),
    "time negative": (2, "time_s", -1e-3, r"time_s: must be a number > 0"),
    "time infinite": (2, "time_s", float("inf"), r"time_s: must be a number > 0, got inf"),
    "time missing": (2, "time_s", None, r"time_s: missing value"),
    "time text": (2, "time_s", "fast", r"time_s: must be a number > 0, got 'fast'"),
    "cached tokens 1e30": (1, "cached_tokens", 1e30,
                           r"cached_tokens: must be an integer in \[0, 1023\], got 1\d{30}"),
    "batch with a fraction": (0, "batch", 2.5, r"batch: must be .*integer.*got 2\.5"),
    "batch beyond a tensor": (0, "batch", 10**12, r"batch: .* beyond what the reference"),
    "flag maybe": (3, "gated_mlp", "maybe", r"gated_mlp: must be true or false, got 'maybe'"),
    "kv_cache yes": (1, "kv_cache", "yes", r"kv_cache: must be true or false"),
    "unknown dtype": (0, "dtype", "fp64", r"dtype: unknown 'fp64'"),
    "byte width": (0, "weight_bytes", 2, r"weight_bytes: a fp32 measurement has 4 bytes"),
    "unknown phase": (1, "phase", "decode", r"phase: unknown 'decode'"),
    "cache of another phase": (0, "cache", "static", r"cache: phase prefill runs the dynamic"),
    "q and c of another phase": (1, "new_tokens", 5, r"new_tokens: phase decode_dynamic"),
    "context": (0, "context", 31, r"context: must equal the pass's context 32"),
    "zero layers": (4, "n_layers", 0, r"n_layers: must be a positive integer"),
    "options": (0, "lm_head", "all", r"lm_head: the reference model runs .* 'last'"),
    "config": (2, "gpt_config", "{", r"gpt_config: not valid JSON"),
    "config of another model": (2, "gpt_config", json.dumps(
        {"n_layer": 10**6, "n_head": 3, "n_embd": 48, "attn_impl": "eager"}),
        r"gpt_config: describes another model"),
    "config fields": (2, "gpt_config", json.dumps({"n_layer": "three", "attn_impl": "eager"}),
                      r"gpt_config: GPTConfig\.n_layer must be a positive int"),
    "static length": (2, "static_max_len", 16, r"static_max_len: .* needs static_max_len >= 33"),
    "measured bytes": (0, "kv_cache_bytes_measured", -1, r"kv_cache_bytes_measured: must be"),
    "threads": (5, "threads", "many", r"threads: must be a positive integer"),
    "repeats": (5, "repeats", 0, r"repeats: must be a positive integer"),
    "clock": (5, "clock", "sundial", r"clock: unknown 'sundial'"),
    "p90": (5, "time_p90_s", -2.0, r"time_p90_s: must be a number > 0"),
    "static cache by concat": (2, "kv_update", "concat",
                               r"kv_update: a static cache is updated inplace, got 'concat'"),
    "kv_update unknown": (1, "kv_update", "append", r"kv_update: unknown 'append'"),
    "engine": (0, "engine", "vllm", r"engine: unknown 'vllm'"),
    "flops counted": (0, "flops_counted", 1.5, r"flops_counted: must be .*integer"),
    "window": (0, "sliding_window", -1, r"sliding_window: must be an integer"),
    "experts without a router": (0, "experts_per_token", 2, r"needs n_experts > 0"),
    "moe dispatch": (0, "moe_dispatch", "grouped", r"moe_dispatch: the reference model runs"),
}


def test_older_files_are_read_as_they_ran(grid, tmp_path):
    """A file from before the engine, FLOP, kv_update and modern columns: eager, dense, its
    dynamic cache the torch.cat one it ran, its FLOPs counted again on the meta device."""
    new = ["kv_update", "moe_dispatch", "engine", "flops_counted", *MODERN_SPEC_COLUMNS]
    df = read_measurements(_write(tmp_path, grid.drop(columns=new)), checks=True)
    assert (df.loc[df["cache"] == "dynamic", "kv_update"] == "concat").all()
    assert (df.loc[df["cache"] != "dynamic", "kv_update"] == "inplace").all()
    assert (df["engine"] == "eager").all() and (df["flops_counted"] == -1).all()
    assert (df["n_experts"] == 0).all() and (df["sliding_window"] == 0).all()


@pytest.mark.parametrize("case", list(GRID_CASES))
def test_a_broken_row_is_named(grid, tmp_path, case):
    row, col, value, message = GRID_CASES[case]
    path = _write(tmp_path, _set(grid, row, col, value))
    out = tmp_path / "report"
    with pytest.raises(ValueError) as e:
        validate(path, CALIBRATION, out)
    text = str(e.value)
    assert text.startswith(f"measurements {path}, row {row + 1}"), text
    assert re.search(message, text), text
    assert "torch" not in text.lower() and "\n" not in text
    assert not out.exists()


@pytest.mark.parametrize("case", ["time zero", "cached tokens 1e30", "flag maybe"])
def test_the_cli_says_it_in_one_line(grid, tmp_path, capsys, case):
    row, col, value, message = GRID_CASES[case]
    path = _write(tmp_path, _set(grid, row, col, value))
    assert main(["validate", "-m", str(path), "-H", str(CALIBRATION), "-o",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("costmodel: error: measurements") and err.count("\n") == 1
    assert "Traceback" not in err and re.search(message, err)


def test_whole_file_problems(grid, tmp_path):
    cases = {
        "duplicate": (pd.concat([grid, grid.iloc[[3]]]), r"row 9 .*point 'gpt-nano\|B1\|s32\|"
                                                         r"no_cache\|fp32' appears twice "
                                                         r"\(first at row 4\)"),
        "missing column": (grid.drop(columns=["n_kv_heads"]), r"lacks column\(s\) "
                                                              r"\['n_kv_heads'\]"),
        "foreign units": (grid.assign(time_ms=grid["time_s"] * 1e3).drop(columns=["time_s"]),
                          r"has 'time_ms' but times must be in seconds"),
        "no rows": (grid.head(0), r"has no rows"),
        "check columns": (grid.drop(columns=["gpt_config"]), r"lacks column\(s\) "
                                                             r"\['gpt_config'\]"),
    }
    for name, (df, message) in cases.items():
        path = _write(tmp_path, df, f"{name}.csv")
        with pytest.raises(ValueError, match=message) as e:
            validate(path, CALIBRATION)
        assert str(path) in str(e.value), name
    raw = {"not utf-8": (b"point_id,model\n\xff\xfe\x00x,y\n", r"is not UTF-8 text"),
           "empty": (b"", r"is empty"), "blank": (b"\n\n  \n", r"is empty"),
           "not csv": (b'a,b\n"1,2\n3', r"not a readable CSV|lacks column")}
    for name, (data, message) in raw.items():
        path = tmp_path / f"{name}.csv"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=message):
            read_measurements(path)
    with pytest.raises(ValueError, match="does not exist"):
        read_measurements(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="is a folder"):
        read_measurements(tmp_path)


# ---------------------------------------------------------------- speculative CSV

SPEC_CASES = {
    "time zero": (3, "time_s", 0, r"time_s: must be a number > 0, got 0"),
    "target time zero": (0, "time_s", 0.0, r"time_s: must be a number > 0"),
    "acceptance above 1": (2, "accepted", 10**6, r"accepted: .* an acceptance above 1"),
    "nothing at risk": (2, "at_risk", 0, r"at_risk: must be a positive integer"),
    "infinite alpha": (2, "alpha_hat", float("inf"), r"alpha_hat: must be a number in \[0, 1\]"),
    "alpha above 1": (2, "alpha_hat", 1.5, r"alpha_hat: must be a number in \[0, 1\]"),
    "gamma fraction": (2, "gamma", 2.5, r"gamma: must be an integer"),
    "gamma twice": (2, "gamma", 1, r"gamma: γ = 1 appears twice \(first at row 2\)"),
    "gamma huge": (2, "gamma", 10**9, r"gamma: must be an integer in \[1, 1024\]"),
    "method": (2, "method", "magic", r"method: unknown 'magic'"),
    "config": (1, "draft_config", "[1, 2]", r"draft_config: must be a JSON object"),
    "second target row": (2, "method", "target_only", r"method: a second target_only row"),
    "pass cost": (1, "verify_s", -1.0, r"verify_s: must be a number > 0"),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_a_broken_speculative_row_is_named(grid, tmp_path, case):
    row, col, value, message = SPEC_CASES[case]
    sp = pd.read_csv(SPECULATIVE)
    spec = _write(tmp_path, _set(sp, row, col, value), "s.csv")
    grid_path = _write(tmp_path, grid)
    out = tmp_path / "report"
    with pytest.raises(ValueError) as e:
        validate(grid_path, CALIBRATION, out, speculative_csv=spec)
    text = str(e.value)
    assert text.startswith(f"speculative measurements {spec}, row {row + 1}"), text
    assert re.search(message, text), text
    assert not out.exists()


def test_speculative_file_problems(tmp_path):
    sp = pd.read_csv(SPECULATIVE)
    every = sp.assign(accepted=sp["at_risk"])       # every drafted token accepted: α = 1
    cases = {"all accepted": (every, r"pooled α = 1"),
             "no baseline": (sp[sp["method"] != "target_only"], r"needs a target_only row"),
             "missing column": (sp.drop(columns=["at_risk"]), r"lacks column\(s\) \['at_risk'\]")}
    for name, (df, message) in cases.items():
        path = _write(tmp_path, df, f"{name}.csv")
        with pytest.raises(ValueError, match=message) as e:
            read_speculative(path)
        assert str(path) in str(e.value)
    with pytest.raises(ValueError, match="does not exist"):
        validate(GRID, CALIBRATION, speculative_csv=tmp_path / "nope.csv")


# ---------------------------------------------------------------- calibration JSON


def test_broken_calibrations_are_named(grid, tmp_path, capsys):
    good = json.loads(CALIBRATION.read_text())
    grid_path = _write(tmp_path, grid)
    cases = {
        "peak list": ({**good, "peak_flops": [1e12]}, r"peak_flops: must be a mapping"),
        "peak text": ({**good, "peak_flops": {"fp32": "fast"}}, r"peak_flops\[fp32\]"),
        "extra list": ({**good, "extra": [1, 2]}, r"extra: must be a mapping"),
        "matmul rows": ({**good, "extra": {**good["extra"], "matmul": [1, 2]}},
                        r"extra\.matmul\[0\]: must be a mapping"),
        "matmul rate": ({**good, "extra": {**good["extra"], "matmul": [
            {"kind": "skinny", "m": 1, "flops_per_s": -5}]}}, r"extra\.matmul\[0\]\.flops_per_s"),
        "cores": ({**good, "extra": {**good["extra"], "cores": "two"}}, r"extra\.cores"),
        "dtypes": ({**good, "extra": {**good["extra"], "dtypes": "fp32"}},
                   r"extra\.dtypes must be a list"),
        "other dtype": ({**good, "peak_flops": {"bf16": 1e11},
                         "extra": {**good["extra"], "dtypes": ["bf16"]}},
                        r"calibrated for bf16 but the measurements are fp32"),
        "overhead": ({**good, "kernel_overhead": float("inf")}, r"kernel_overhead"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(data))
        with pytest.raises(ValueError, match=message):
            validate(grid_path, path, tmp_path / "out")
        assert main(["validate", "-m", str(grid_path), "-H", str(path), "-o",
                     str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and str(path) in err, name
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 100000)
    with pytest.raises(ValueError, match="nested deeper"):
        validate(grid_path, nested)
    assert not (tmp_path / "out").exists()
