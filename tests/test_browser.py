"""End to end in a real browser: `streamlit run app.py` on a free localhost port, driven by
Playwright's sync API in Debian's Chromium. Screenshots go to artifacts/screenshots/.

Skips (does not fail) when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import costmodel as cm

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TIMEOUT_MS = 45_000

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
expect = sync_api.expect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app under `streamlit run`, killed (with its process group) whatever happens."""
    port = _free_port()
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    streamlit = shutil.which("streamlit", path=str(Path(sys.executable).parent)) or "streamlit"
    cmd = [streamlit, "run", str(ROOT / "app.py"), "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser_page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1800})
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def idle(page) -> None:
    """Wait until the script run triggered by the last action has finished."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(700)       # let data grids and images paint
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def metric_value(page, label_prefix: str):
    return (page.locator('[data-testid="stMetric"]').filter(has_text=label_prefix)
            .locator('[data-testid="stMetricValue"]'))


def go(page, name: str) -> None:
    """Switch to the page ``name`` with the page selector at the top."""
    pages = page.get_by_test_id("stRadio").filter(has_text="Formulas")
    pages.get_by_text(name, exact=True).click()
    idle(page)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` (the start of its text) in the sidebar selectbox called ``label``."""
    box = page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").filter(
        has=page.get_by_text(label, exact=True))
    box.click()
    page.get_by_role("option", name=re.compile(rf"^{re.escape(option)}\b")).first.click()
    idle(page)


def type_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    idle(page)


def test_end_to_end(server, browser_page):
    page = browser_page
    page.goto(server)
    idle(page)
    expect(metric_value(page, "Max batch")).to_have_text("520")
    assert page.get_by_test_id("stException").count() == 0
    shot(page, "01_memory_llama3-8b_a100")

    choose(page, "Model", "gpt2-xl")
    choose(page, "Hardware", "t4")
    type_number(page, "Prompt s", 512)
    type_number(page, "TP degree", 5)
    m, hw = cm.model("gpt2-xl"), cm.hardware("t4")
    expected = cm.max_batch_size(m, hw, 512, tp=5)
    expect(metric_value(page, "Max batch (s = 512, TP = 5)")).to_have_text(f"{expected:,}")
    expect(metric_value(page, "Parameters")).to_have_text("1,557,611,200")
    assert "model=gpt2-xl" in page.url and "tp=5" in page.url
    shot(page, "02_memory_gpt2-xl_t4_tp5")

    go(page, "Roofline")
    decode = cm.decode_step(m, hw, 512, tp=5)
    expect(metric_value(page, "Decode bound")).to_have_text(decode.bound)
    expect(metric_value(page, "Prefill bound")).to_have_text(cm.prefill(m, hw, 512,
                                                                        tp=5).bound)
    shot(page, "03_roofline_gpt2-xl_t4_tp5")

    for i, name in enumerate(("Attention intensity", "Speculative decoding", "Formulas",
                              "Validation"), start=4):
        go(page, name)
        assert page.get_by_test_id("stException").count() == 0
        shot(page, f"0{i}_{name.lower().replace(' ', '_')}")

    go(page, "Memory")
    page.get_by_text("Load a Hugging Face config.json").click()
    page.get_by_test_id("stFileUploader").first.locator("input[type=file]").set_input_files(
        files=[{"name": "config.json", "mimeType": "application/json",
                "buffer": b'{"model_type": "gpt2", "n_layer": 12,'}])
    idle(page)
    alert = page.get_by_test_id("stAlert").filter(has_text="not valid JSON").first
    expect(alert).to_be_visible()
    assert page.get_by_test_id("stException").count() == 0
    expect(page.get_by_label("TP degree", exact=True)).to_have_value("5")   # input kept
    shot(page, "08_bad_config_json")
