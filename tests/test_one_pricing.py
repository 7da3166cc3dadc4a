"""One pricing everywhere: the fitted CPU machine (data/hardware/cpu-fitted.json, efficiencies in
its typed fields) gives the same seconds for the same pass through cm.analyze, cm.sweep, the
CLI, the app's computation and the validation's prediction — five faces, one
costmodel.pricing.price."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import costmodel as cm
from costmodel.app.compute_roofline import roofline_times
from costmodel.app.state import Workload
from costmodel.cli import main
from costmodel.validation.fit import predict

FITTED = Path(__file__).resolve().parent.parent / "data" / "hardware" / "cpu-fitted.json"


@pytest.mark.parametrize(("name", "batch", "context"), [("gpt2", 1, 128), ("gpt-mini", 4, 512)])
def test_a_fitted_machine_prices_alike_everywhere(name, batch, context, capsys):
    hw = cm.hardware(FITTED)
    assert hw.eta_c < 1 and hw.kernel_overhead > 0          # a fitted, not an ideal, machine
    fp32 = {"weight_bytes": 4, "kv_bytes": 4, "act_bytes": 4}
    api = cm.decode_step(name, hw, context, batch, attention="fused", **fp32).time

    grid = cm.sweep(name, hw, batch=[batch], context=[context], attention="fused", **fp32)
    assert grid["time"].iloc[0] == pytest.approx(api, rel=1e-12)

    assert main(["analyze", "--model", name, "--hardware", str(FITTED), "--phase", "decode",
                 "--context", str(context), "--batch", str(batch), "--attention", "fused",
                 "--weight-bytes", "4", "--kv-bytes", "4", "--act-bytes", "4",
                 "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    total = next(r for r in rows if r["op"] == "TOTAL")
    assert total["time_us"] * 1e-6 == pytest.approx(api, rel=1e-12)

    app = roofline_times(cm.model(name), hw, Workload(batch=batch, context=context, generate=2,
                                                      weight_bytes=4, kv_bytes=4, act_bytes=4,
                                                      attention="fused"))
    assert app.tpot_first == pytest.approx(api, rel=1e-12)

    validation = predict(cm.model(name), hw, batch, 1, context, cache="static", attn_impl="sdpa",
                         **fp32)
    assert validation == pytest.approx(api, rel=1e-12)
