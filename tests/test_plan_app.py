"""The app's "Plan a deployment" page: its computations (costmodel/app/plan.py) and the page
itself in Streamlit's test harness — the ranked table, the Pareto chart, the memory terms, and
a clear error (never a traceback) when nothing meets the targets."""

from __future__ import annotations

from pathlib import Path

import pytest

import costmodel as cm
from costmodel.app.plan import TABLE, plan_page

ROOT = Path(__file__).resolve().parent.parent


def test_plan_page_numbers():
    b = plan_page(cm.model("llama3.1-8b"), ("h100-sxm",), 10.0, 1024, 128, 500.0, 30.0)
    assert list(b["table"].columns) == TABLE and len(b["table"]) >= 1
    assert b["png"][:4] == b"\x89PNG"
    best = b["best"]
    assert best["ttft_s"] <= 0.5 and best["tpot_s"] <= 0.03
    terms = b["memory"].set_index("term")["bytes"]
    # KV = budget − weights − activation − non-torch − communication (the terms shown, signed)
    assert terms["KV cache"] == pytest.approx(terms["budget"] + terms["weights"]
                                              + terms["activation peak"] + terms["non-torch"]
                                              + terms["communication"])


def test_plan_page_error_names_the_target():
    with pytest.raises(ValueError, match="ttft: nothing meets"):
        plan_page(cm.model("llama3.1-8b"), ("h100-sxm",), 10.0, 1024, 128, 0.5, 30.0)


def test_page_in_streamlit():
    testing = pytest.importorskip("streamlit.testing.v1")
    at = testing.AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["page"] = "Plan a deployment"
    at.run()
    mine = ("costmodel.plan", "costmodel/plan", "app/plan.py", "plan_page", "page_plan")
    if at.exception and not any(k in str(at.exception[0].value) for k in mine):
        pytest.skip(f"app.py does not load here, before this page: {at.exception[0].value}")
    assert not at.exception, at.exception
    assert any("candidate configurations" in c.value for c in at.caption)
    at.number_input(key="plan_ttft").set_value(1.0).run()
    assert not at.exception
    assert any("nothing meets" in e.value for e in at.error)
