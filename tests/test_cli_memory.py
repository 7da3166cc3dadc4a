"""CLI commands of the memory model (``costmodel.cli.memory``): presets, params, kv, batch.

Expected numbers come from Hugging Face's parameter counts, the course texts or hand algebra,
noted at each assertion."""

from __future__ import annotations

import json

import pytest
from test_cli import fail, run, run_csv, run_json, table_row

# --- presets -----------------------------------------------------------------------------


def test_presets_table(capsys):
    out = run(capsys, "presets")
    # llama3-8b: 32 layers, d 4096, 32 heads, 8 KV heads, d_ff 14336, vocab 128256,
    # 8,030,261,248 parameters (Hugging Face's count)
    assert table_row(out, "llama3-8b") == ["llama3-8b", "32", "4096", "32", "8", "14336",
                                           "128256", "8030261248"]
    assert table_row(out, "t4")[:4] == ["t4", "16", "GB", "GDDR6"]  # marketed "16 GB GDDR6"
    assert "Hardware presets" in out and "Model presets" in out


def test_presets_hardware_json(capsys):
    rows = run_json(capsys, "presets", "hardware")
    t4 = next(r for r in rows if r["name"] == "t4")
    assert t4["bandwidth_gbs"] == 300            # T4 datasheet PDF: 300 GB/s
    assert t4["memory_gib"] == 15                # 15360 MiB reported
    assert t4["bf16_tflops"] is None and t4["fp16_tflops"] == 65
    assert t4["source"] and t4["source_short"]
    a100 = next(r for r in rows if r["name"] == "a100-80gb")
    assert a100["memory_gib"] == 80 and a100["bf16_tflops"] == 312


def test_presets_models_csv(capsys):
    rows = run_csv(capsys, "presets", "models")
    gpt2 = next(r for r in rows if r["name"] == "gpt2")
    assert gpt2["params"] == "124439808"         # Hugging Face's count for GPT-2 small
    assert all(r["source"] for r in rows)


def test_presets_both_as_one_json_object(capsys):
    data = run_json(capsys, "presets")
    assert set(data) == {"models", "hardware", "engines"}
    gpt2 = next(r for r in data["models"] if r["name"] == "gpt2")
    assert gpt2["params"] == 124_439_808         # Hugging Face's count for GPT-2 small
    t4 = next(r for r in data["hardware"] if r["name"] == "t4")
    assert t4["bandwidth_gbs"] == 300            # T4 datasheet PDF
    # the roofline itself and the profile fitted to the published serving measurements
    assert {"ideal", "tuned"} <= {r["name"] for r in data["engines"]}


def test_presets_both_as_one_csv_with_a_table_column(capsys):
    rows = run_csv(capsys, "presets")
    assert list(rows[0])[0] == "table"
    by_table = {t: [r for r in rows if r["table"] == t] for t in ("models", "hardware")}
    gpt2 = next(r for r in by_table["models"] if r["name"] == "gpt2")
    assert gpt2["params"] == "124439808"
    assert gpt2["bandwidth_gbs"] == ""           # a hardware column, empty on a model row
    t4 = next(r for r in by_table["hardware"] if r["name"] == "t4")
    assert float(t4["bandwidth_gbs"]) == 300 and t4["params"] == ""


# --- params ------------------------------------------------------------------------------

def test_params_json(capsys):
    rows = run_json(capsys, "params", "--model", "llama3-8b")
    total = rows[-1]
    assert total["component"] == "total"
    assert total["params"] == 8_030_261_248
    # 2 bytes each: 16,060,522,496 bytes = 16.06 GB (1e9) = 14.96 GiB (2**30)
    assert total["weight_bytes"] == 16_060_522_496
    assert total["weight_gb"] == pytest.approx(16.060522496)
    assert total["weight_gib"] == pytest.approx(16_060_522_496 / 2**30)
    assert sum(r["params"] for r in rows[:-1]) == total["params"]


def test_params_table_labels_gb_and_gib(capsys):
    out = run(capsys, "params", "-m", "gpt2", "--weight-bytes", "4")
    assert "weight_gb" in out and "weight_gib" in out
    # 124,439,808 · 4 = 497,759,232 bytes
    assert table_row(out, "total")[1:3] == ["124439808", "497759232"]
    assert "GB (1e9)" in out and "GiB (2**30)" in out
    assert "× 4 bytes per weight" in out          # not "4.0"


def test_params_int4_bytes_are_exact(capsys):
    rows = run_json(capsys, "params", "-m", "gpt2", "--weight-bytes", "0.5")
    assert rows[-1]["weight_bytes"] == 62_219_904          # 124,439,808 / 2


def test_params_from_config(capsys, tmp_path):
    cfg = {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12,
           "n_positions": 1024, "vocab_size": 50257}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    rows = run_json(capsys, "params", "--config", str(tmp_path / "config.json"))
    assert rows[-1]["params"] == 124_439_808     # GPT-2 small, Hugging Face's count


# --- kv ----------------------------------------------------------------------------------

def test_kv_json(capsys):
    rows = {r["quantity"]: r for r in run_json(capsys, "kv", "--model", "llama3-8b",
                                                "--context", "1024", "--batch", "8")}
    assert rows["per token"]["bytes"] == 131_072             # 2·32·8·128·2
    assert rows["per request"]["bytes"] == 134_217_728       # × 1024
    assert rows["per request"]["gib"] == 0.125
    assert rows["batch"]["bytes"] == 8 * 134_217_728         # 2**30
    assert rows["batch"]["gib"] == 1.0
    assert rows["batch"]["gb"] == pytest.approx(1.073741824)


def test_kv_int4(capsys):
    rows = run_json(capsys, "kv", "-m", "llama3-8b", "-c", "1024", "--kv-bytes", "0.5")
    assert rows[1]["bytes"] == 33_554_432                    # 2·32·8·128·0.5·1024 = 2**25


def test_kv_at_the_largest_counts_is_exact(capsys):
    rows = run_json(capsys, "kv", "-m", "llama3-8b", "-c", str(2**53), "-b", str(2**53))
    # 131,072 bytes per token = 2**17, so the batch holds 2**17 · 2**53 · 2**53 = 2**123 bytes
    assert rows[2]["bytes"] == 2**123


def test_kv_count_in_scientific_notation(capsys):
    rows = run_json(capsys, "kv", "-m", "llama3-8b", "-c", "1e3")
    assert rows[1]["tokens"] == 1000 and rows[1]["bytes"] == 131_072 * 1000


# --- batch -------------------------------------------------------------------------------

def test_batch_a100_table(capsys):
    out = run(capsys, "batch", "--model", "llama3-8b", "--hardware", "a100-80gb")
    # context 1024, TP 1: ⌊(85,899,345,920 − 16,060,522,496) / 134,217,728⌋ = 520
    row = table_row(out, "1024", "1")
    assert row[4] == "520"
    # context 4096, TP 8: ⌊(85,899,345,920 − 2,007,565,312) / 67,108,864⌋ = ⌊1250.08⌋ = 1250
    assert table_row(out, "4096", "8")[4] == "1250"
    assert "a100-80gb" in out and "80 GiB" in out


def test_batch_e0294_reproduces_the_text(capsys):
    out = run(capsys, "batch", "--model", "llama3-8b", "--convention", "e0294",
              "--memory-gib", "80", "--contexts", "1024", "2048", "4096", "--tp", "1", "2",
              "4", "8")
    # E0294 Assignment 4 Problem 1 (a): 556 / 278 / 139 at 10.458 "GB" of weights
    for context, expected in (("1024", "556"), ("2048", "278"), ("4096", "139")):
        row = table_row(out, context, "1")
        assert row[4] == expected
        assert row[2].startswith("10.458")
    # (b) at context 1024: TP 2 / 4 / 8 → 1196 / 2476 / 5036
    for tp, expected in (("2", "1196"), ("4", "2476"), ("8", "5036")):
        assert table_row(out, "1024", tp)[4] == expected
    assert "5614665728" in out and "8030261248" in out  # both counts are named


def test_batch_e0294_json_and_csv_agree(capsys):
    argv = ["batch", "-m", "llama3-8b", "--convention", "e0294", "--memory-gib", "80",
            "--contexts", "1024", "--tp", "1", "2", "4", "8"]
    rows = run_json(capsys, *argv)
    assert [r["max_batch"] for r in rows] == [556, 1196, 2476, 5036]
    assert rows[0]["params"] == 5_614_665_728            # the text's count (5.61e+09)
    assert rows[0]["kv_per_request_per_gpu_bytes"] == 134_217_728
    table = run_csv(capsys, *argv)
    assert [int(r["max_batch"]) for r in table] == [556, 1196, 2476, 5036]
    assert list(table[0]) == list(rows[0])


def test_batch_replication_note(capsys):
    out = run(capsys, "batch", "-m", "llama3-8b", "--contexts", "1024", "--tp", "8", "16",
              "32")
    assert "replicated" in out
    # KV per GPU stays 2·32·1·128·2·1024 bytes = 0.015625 GiB at TP 8, 16 and 32
    for tp in ("8", "16", "32"):
        assert table_row(out, "1024", tp)[3] == "0.015625"
    assert table_row(out, "1024", "16")[6] == "2"         # each KV head on 2 GPUs


def test_batch_default_tp_skips_invalid(capsys):
    rows = run_json(capsys, "batch", "-m", "gpt2", "--contexts", "1024")
    assert [r["tp"] for r in rows] == [1, 2, 4]           # 12 heads: 8 does not divide them


def test_batch_weights_do_not_fit(capsys):
    out = run(capsys, "batch", "-m", "llama3-70b", "--hardware", "t4", "--contexts", "1024",
              "--tp", "1")
    assert table_row(out, "1024", "1")[4] == "0"
    assert "weights alone" in out


def test_batch_mem_util_and_reserved(capsys):
    rows = run_json(capsys, "batch", "-m", "llama3-8b", "--memory-bytes", "85899345920",
                    "--contexts", "1024", "--tp", "1", "--mem-util", "0.9",
                    "--reserved-gib", "4")
    # ⌊(0.9 · 85,899,345,920 − 4 · 2**30 − 16,060,522,496) / 134,217,728⌋ = ⌊424.3⌋
    assert rows[0]["max_batch"] == 424


def test_batch_rows_are_bounded(capsys):
    contexts = [str(c) for c in range(1, 1001)]
    line = fail(capsys, "batch", "-m", "llama3-8b", "--tp", *[str(t) for t in (1, 2, 4, 8)] * 3,
                "--contexts", *contexts)
    assert "at most 10,000" in line                       # 1000 contexts × 12 TP = 12,000 rows


# --- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "needle"), [
    (["kv", "--model", "llama3-8", "--context", "1024"], "llama3-8b"),       # suggestion
    (["batch", "--model", "llama3-8b", "--hardware", "a100-80"], "a100-80gb"),
    (["batch", "--model", "llama3-8b", "--tp", "3"], "tp"),
    (["batch", "--model", "llama3-8b", "--mem-util", "1.5"], "--mem-util: must be a number "
                                                             "in (0, 1], got 1.5"),
    (["params", "--config", "/no/such/config.json"], "does not exist"),
    (["batch", "--model", "gpt2", "--hardware", "/no/such/hw.json"], "does not exist"),
    (["kv", "-m", "gpt2", "-c", "8", "--kv-bytes", "1e308"], "in [0.125, 8]"),
    (["batch", "-m", "gpt2", "--weight-bytes", "1e300"], "in [0.125, 8]"),
    (["batch", "-m", "gpt2", "--reserved-gib", "1e308"], "--reserved-gib"),
    (["kv", "-m", "gpt2", "-c", "99999999999999999999999"], "at most 2**53"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    assert needle in fail(capsys, *argv)


def test_bad_config_file(capsys, tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    assert "not valid JSON" in fail(capsys, "params", "--config", str(tmp_path))
