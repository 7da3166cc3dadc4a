"""Calibration of the machine at hand (quick mode: a few seconds), and its bad input."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from costmodel.cli import main  # noqa: E402
from costmodel.specs import HardwareSpec  # noqa: E402
from costmodel.validation.calibrate import calibrate, check_dtypes  # noqa: E402


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
    assert (hw.eta_c, hw.eta_m, hw.eta_c_skinny) == (1.0, 1.0, None)   # the fit sets them
    ex = hw.extra
    for key in ("device_name", "cores", "threads", "torch_version", "dtypes", "matmul", "copy",
                "overhead", "clock"):
        assert key in ex
    assert ex["threads"] == 1 and ex["dtypes"] == ["fp32"]
    best = max(r["flops_per_s"] for r in ex["matmul"])
    assert hw.peak_flops["fp32"] == best          # peak = best measured size
    for r in ex["matmul"]:                        # 2·m·k·n FLOPs per GEMM
        assert r["flops"] == 2 * r["m"] * r["k"] * r["n"]
    assert {r["kind"] for r in ex["matmul"]} == {"square", "skinny"}
    assert all(r["bytes_moved"] == 2 * r["buffer_bytes"] for r in ex["copy"])
    assert torch.get_num_threads() >= 1


def test_saved_json_round_trips(quick_hw):
    hw, path = quick_hw
    assert HardwareSpec.load(path) == hw
    assert json.loads(path.read_text())["name"] == hw.name
    assert [p.name for p in path.parent.iterdir()] == ["cpu.json"]   # nothing staged left


def test_bad_devices_and_dtypes():
    with pytest.raises(ValueError, match="device: unknown 'tpu'"):
        calibrate("tpu", quick=True)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            calibrate("cuda", quick=True)
    with pytest.raises(ValueError, match="dtype"):
        check_dtypes("fp64", "cpu")
    with pytest.raises(ValueError, match="tf32"):
        check_dtypes("tf32", "cpu")
    assert check_dtypes("fp32, bf16", "cpu") == ["fp32", "bf16"]
    with pytest.raises(ValueError, match="threads"):
        calibrate("cpu", quick=True, threads=0)


def test_cli_bad_device_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "hw.json"
    assert main(["calibrate", "--device", "tpu", "--out", str(out), "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("costmodel: error: device") and "\n" not in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_out_that_is_a_folder_fails_before_measuring(tmp_path, capsys, monkeypatch):
    import costmodel.validation.calibrate as cal

    def never(*a, **k):
        raise AssertionError("measured although the destination is unusable")

    monkeypatch.setattr(cal, "measure_matmul", never)
    folder = tmp_path / "hw.json"
    folder.mkdir()
    assert main(["calibrate", "--quick", "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(folder) in err and "folder" in err
    assert "staging" not in err
    old = tmp_path / "old.json"
    old.write_text("{}")
    assert main(["calibrate", "--quick", "--out", str(old / "x.json")]) == 2
    assert "not a folder" in capsys.readouterr().err and old.read_text() == "{}"
