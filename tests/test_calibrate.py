"""Calibration of the machine at hand (quick mode: a few seconds)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

import costmodel.validation_commands  # noqa: E402,F401  (registers the CLI commands)
from costmodel.calibrate import calibrate, check_device, check_dtypes, time_call  # noqa: E402
from costmodel.cli import main  # noqa: E402
from costmodel.specs import HardwareSpec  # noqa: E402


@pytest.fixture(scope="module")
def quick_hw(tmp_path_factory):
    path = tmp_path_factory.mktemp("hw") / "cpu.json"
    return calibrate("cpu", "fp32", quick=True, out=path), path


def test_quick_calibration_measures_the_machine(quick_hw):
    hw, path = quick_hw
    assert hw.name.startswith("cpu-")
    assert hw.peak_flops["fp32"] > 1e8            # > 0.1 GFLOP/s on anything
    assert hw.bandwidth > 1e8                     # > 0.1 GB/s
    assert 0 < hw.kernel_overhead < 1e-2          # one op call: µs, not ms
    assert hw.memory_bytes > 2**28
    ex = hw.extra
    for key in ("device_name", "cores", "threads", "torch_version", "dtypes", "matmul", "copy",
                "overhead", "clock"):
        assert key in ex
    assert ex["threads"] == 1 and ex["dtypes"] == ["fp32"]
    best = max(r["flops_per_s"] for r in ex["matmul"])
    assert hw.peak_flops["fp32"] == best          # peak = best measured size
    assert {r["kind"] for r in ex["matmul"]} == {"square", "skinny"}
    assert all(r["bytes_moved"] == 2 * r["buffer_bytes"] for r in ex["copy"])
    assert torch.get_num_threads() >= 1


def test_saved_json_round_trips(quick_hw):
    hw, path = quick_hw
    assert HardwareSpec.load(path) == hw
    assert json.loads(path.read_text())["name"] == hw.name
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_unknown_and_unavailable_devices():
    with pytest.raises(ValueError, match="device: unknown 'tpu'"):
        check_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            calibrate("cuda", quick=True)
    with pytest.raises(ValueError, match="dtype"):
        check_dtypes("fp64", "cpu")
    with pytest.raises(ValueError, match="tf32"):
        check_dtypes("tf32", "cpu")
    assert check_dtypes("fp32, bf16", "cpu") == ["fp32", "bf16"]


def test_time_call_statistics():
    t = time_call(lambda: sum(range(1000)), repeats=5, warmup=1, min_time=1e-3)
    assert t["p10"] <= t["median"] <= t["p90"] and t["repeats"] == 5 and t["inner"] >= 1
    t = time_call(lambda: sum(range(1000)), repeats=5, warmup=1, clock="thread")
    assert t["clock"] == "thread" and t["median"] > 0
    with pytest.raises(ValueError, match="clock"):
        time_call(lambda: None, clock="sundial")


def test_cli_bad_device_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "hw.json"
    assert main(["calibrate", "--device", "tpu", "--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("costmodel: error: device") and "\n" not in err
    assert not out.exists()
