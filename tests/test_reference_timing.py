"""The one timer, the one device resolver and the machine description
(costmodel.reference.timing), and what a machine without torch is told."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from costmodel.reference.timing import (
    check_device,
    cpu_model_name,
    get_clock,
    summarize,
    synchronizer,
    system_memory_bytes,
    time_call,
    time_once,
)

ROOT = Path(__file__).resolve().parent.parent


def test_summarize_matches_numpy_percentiles():
    samples = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8]
    s = summarize(samples)
    # numpy's default (linear) percentiles are the independent oracle
    for key, p in (("p10", 10), ("p90", 90), ("q25", 25), ("q75", 75)):
        assert s[key] == pytest.approx(np.percentile(samples, p), abs=1e-15)
    assert s["median"] == 0.5 and s["repeats"] == 7


def test_time_call_statistics_and_callbacks():
    calls = []
    t = time_call(lambda: calls.append("f"), repeats=5, warmup=2, min_time=0.0)
    assert len(calls) == 2 + 5 and t["inner"] == 1
    assert t["p10"] <= t["median"] <= t["p90"] and t["repeats"] == 5
    calls.clear()
    t = time_call(lambda: calls.append("f"), repeats=3, warmup=1,
                  after=lambda: calls.append("after"))
    assert calls == ["f", "after"] * 4            # after every call, warm-up included
    calls.clear()
    time_call(lambda: calls.append("f"), repeats=2, warmup=0)
    assert calls == ["f", "f"]                    # no warm-up asked, none made
    t = time_call(lambda: sum(range(1000)), repeats=5, warmup=1, min_time=1e-3)
    assert t["inner"] >= 1 and t["median"] > 0
    t = time_call(lambda: sum(range(1000)), repeats=3, warmup=1, clock="thread")
    assert t["clock"] == "thread" and len(t["walls"]) == 3
    with pytest.raises(ValueError, match="clock"):
        time_call(lambda: None, clock="sundial")
    assert time_once(lambda: None) >= 0 and get_clock("wall")() > 0


def test_devices():
    assert check_device("cpu") == "cpu"
    for bad in ("tpu", "cuda:x", "gpu0", 3, None, "cpu " * 30):
        with pytest.raises(ValueError, match="device: unknown"):
            check_device(bad)
    synchronizer("cpu")()                         # a no-op
    assert isinstance(cpu_model_name(), str) and system_memory_bytes() > 2**20


def test_unavailable_devices():
    torch = pytest.importorskip("torch")
    from costmodel.reference.timing import describe_device, resolve_device

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            check_device("cuda:0")
        assert check_device("auto") in ("cpu", "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    info = describe_device("cpu")
    assert {"device_name", "cores", "threads", "torch_version", "cpu_model"} <= set(info)


def test_without_torch_the_install_hint_names_the_real_extra():
    """On a machine without torch the machine description still works, and calibrate /
    measure say which extra to install: costmodel[torch]."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from costmodel.reference import timing, config\n"
        "assert timing.cpu_model_name() and timing.summarize([1.0])['median'] == 1.0\n"
        "assert config.GPTConfig.from_preset('gpt2').to_spec().n_layers == 12\n"
        "from costmodel.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    for argv in (["calibrate", "--quick"], ["measure", "--grid", "tiny", "--out", "never.csv"]):
        p = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 2, p.stderr
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
        assert "pip install 'costmodel[torch]'" in p.stderr and "[reference]" not in p.stderr
    assert not (ROOT / "never.csv").exists()
