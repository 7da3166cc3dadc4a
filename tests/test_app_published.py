"""The Validation page's GPU half: the loader of the committed ``validate --published`` output
(missing, unreadable and foreign files named, never a traceback) and the page itself."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from costmodel.app.published import PAGE_TABLES, PUBLISHED_DIR, published_results

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_the_committed_output_loads():
    res = published_results()
    assert not res.problems
    assert set(PAGE_TABLES) <= set(res.tables)
    assert res.figure is not None and res.figure.startswith(b"\x89PNG")
    assert res.report is not None and res.report.name == "published_report.md"
    with (PUBLISHED_DIR / "headline.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(res.tables["headline"]["result"]) == [r["result"] for r in rows]


def test_missing_unreadable_and_foreign_files(tmp_path):
    assert published_results(tmp_path / "nowhere").empty
    (tmp_path / "headline.csv").write_text("")                       # empty
    (tmp_path / "errors_by_regime.csv").write_bytes(b"\xff\xfe\x00bad")  # not UTF-8
    (tmp_path / "predicted_vs_measured.png").write_text("not a picture")
    (tmp_path / "bands.csv").write_text("engine_class,regime,low,high\ntuned,all,0.8,1.4\n")
    res = published_results(tmp_path)
    assert list(res.tables) == ["bands"]
    assert res.figure is None
    text = " ".join(res.problems)
    assert "headline.csv" in text and "errors_by_regime.csv" in text
    assert "predicted_vs_measured.png: not a PNG file" in text


def test_the_validation_page_shows_the_gpu_validation():
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.radio(key="page").set_value("Validation").run()
    assert not at.exception
    assert not at.error
    assert "Predictions vs published GPU measurements" in [h.value for h in at.subheader]
    shown = at.dataframe[0].value
    res = published_results()
    assert list(shown["result"]) == list(res.tables["headline"]["result"])
