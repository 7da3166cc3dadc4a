"""The sweep benchmark (``costmodel.bench.sweep``): its grid, its checked options and its
report (the speed is measured by ``costmodel bench sweep``, not asserted here)."""

from __future__ import annotations

import pytest

from costmodel.bench import sweep as bench


def test_default_grid_is_a_million_points():
    batches, contexts = bench.grid()
    # 50 batches × 1250 contexts × 4 TP × 4 hardware = 1,000,000
    assert len(batches) * len(contexts) * len(bench.TPS) * len(bench.HARDWARE) == 1_000_000
    assert batches[0] == 4 and batches[-1] == 200 and contexts[0] == 1 and contexts[-1] == 8192


def test_small_run_reports_the_targets():
    (table,) = bench.run(runs=1, loop_points=3, batches=2, contexts=3)
    rows = {r["measure"]: r for r in table.rows}
    assert rows["sweep seconds"]["target"] == "< 1 s"
    assert rows["sweep vs loop per point"]["target"] == ">= 1,000×"
    assert rows["loop µs per point"]["median"] > 0
    assert "96 points" in table.notes[0]                 # 2 × 3 × 4 TP × 4 hardware


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"loop_points": 0}, "loop_points"),
    ({"runs": 0}, "runs"),
    ({"runs": 2.5}, "runs"),
    ({"batches": 1000, "contexts": 1000}, "grid cells"),
    ({"contexts": True}, "contexts"),
])
def test_options_are_checked(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        bench.run(**kwargs)
