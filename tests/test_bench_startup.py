"""The start-up benchmark (``costmodel.bench.startup``): it times real processes, names a failing
one, and reports the target beside the yardsticks (the times themselves are measurements)."""

from __future__ import annotations

import pytest

from costmodel.bench import startup as bench


def test_wall_times_of_a_process():
    times = bench.wall_times(["-c", "pass"], 2)
    assert len(times) == 2 and all(0 < t < 30 for t in times)


def test_a_failing_process_is_named():
    with pytest.raises(ValueError, match="status 3: boom"):
        bench.wall_times(["-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"], 1)


def test_the_queries_run_this_costmodel():
    # the measured processes import the package under test (PYTHONPATH first), and succeed
    for argv in bench.QUERIES.values():
        assert len(bench.wall_times(argv, 1)) == 1


def test_cpu_time_is_measured():
    ((wall, cpu),) = bench.timings(["-c", "sum(range(3_000_000))"], 1, warmup=0)
    assert cpu is None or 0 < cpu <= wall * 2 + 0.05   # ~one core busy while it runs


def test_report(monkeypatch):
    fake = iter(range(1, 1000))
    monkeypatch.setattr(bench, "timings",
                        lambda argv, runs, warmup=1: [(next(fake) / 10, 0.01)] * runs)
    (table,) = bench.run(runs=3)
    rows = {r["command"]: r for r in table.rows}
    assert set(rows) == {*bench.QUERIES, *bench.YARDSTICKS}
    kv = rows["costmodel kv --model llama3-8b --context 4096"]
    assert kv["target_s"] == 0.5 and kv["met"] == ("yes" if kv["median_s"] <= 0.5 else "NO")
    assert rows["python -c pass"]["target_s"] is None
    assert kv["median_cpu_s"] == 0.01
    assert "0.93 s" in table.notes[1] and "0.95–0.99 s" in table.notes[1]
    with pytest.raises(ValueError, match="runs"):
        bench.run(runs=0)
