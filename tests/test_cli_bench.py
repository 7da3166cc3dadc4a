"""``costmodel bench`` (``costmodel.cli.bench``): the core benchmarks print their figures as
tables (JSON and CSV too), their options are checked, and the reference-model benchmarks are
dispatched with their errors on one line."""

from __future__ import annotations

import pytest
from test_cli import fail, run, run_json


def test_bench_sweep_small_as_json(capsys):
    rows = run_json(capsys, "bench", "sweep", "--runs", "1", "--loop-points", "3",
                    "--batches", "2", "--contexts", "2")
    assert [r["measure"] for r in rows] == ["sweep seconds", "sweep µs per point",
                                            "loop µs per point", "sweep vs loop per point"]


def test_bench_sweep_table_prints_the_targets(capsys):
    out = run(capsys, "bench", "sweep", "--runs", "1", "--loop-points", "2", "--batches", "2",
              "--contexts", "2")
    assert "< 1 s" in out and ">= 1,000×" in out and "64 points" in out   # 2·2·4·4


def test_bench_format_after_the_benchmark(capsys):
    out = run(capsys, "bench", "sweep", "--runs", "1", "--loop-points", "2", "--batches", "1",
              "--contexts", "1", "--format", "csv")
    assert out.splitlines()[0].startswith("measure,median,best,target,met")


@pytest.mark.parametrize(("argv", "needle"), [
    (["bench", "sweep", "--loop-points", "0"], "--loop-points: must be a positive integer"),
    (["bench", "sweep", "--batches", "1000", "--contexts", "1000"], "grid cells"),
    (["bench", "analyze", "--runs", "-1"], "--runs"),
    (["bench", "analyze", "--runs", "5000"], "runs"),
    (["bench", "nope"], "invalid choice"),
    (["bench"], "required"),
    (["--format", "json", "bench", "kv"], "--format json applies to analyze, startup and sweep"),
])
def test_bench_errors_are_one_line(capsys, argv, needle):
    assert needle in fail(capsys, *argv)


def test_reference_benchmark_option_error_is_one_line(capsys):
    pytest.importorskip("torch")
    line = fail(capsys, "bench", "kv", "--repeats", "many")
    assert line.startswith("costmodel: error: bench kv: ") and "--repeats" in line


def test_bench_analyze_and_startup_through_the_cli(capsys):
    rows = run_json(capsys, "bench", "analyze", "--runs", "1")
    assert rows[0]["target"] == ">= 20,000/s" and rows[0]["configs_per_s"] > 0
    rows = run_json(capsys, "bench", "startup", "--runs", "1")
    assert {r["command"] for r in rows} >= {"python -c pass", 'python -c "import pandas"'}
    assert all(r["median_s"] > 0 for r in rows)
