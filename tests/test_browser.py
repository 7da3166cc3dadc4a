"""End to end in a real browser: `streamlit run app.py` on a free localhost port, driven by
Playwright's sync API in Debian's Chromium. Screenshots go to artifacts/screenshots/.

Skips (does not fail) when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import json
import math
import os
import random
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
#: How long the walk waits for an element it has just seen before taking it as gone.
GONE_MS = 5_000

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
    type_number(page, "Context s", 512)
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


# ---------------------------------------------------------------- random walk
WALK_STEPS = int(os.environ.get("COSTMODEL_WALK_STEPS", "220"))
WALK_SECONDS = float(os.environ.get("COSTMODEL_WALK_SECONDS", "900"))
WALK_SEED = 20261201
NOT_A_NUMBER = re.compile(r"(?<![A-Za-z_])(nan|NaN|-?inf|Infinity|None)(?![A-Za-z_])")
PAGES = ("Memory", "Roofline", "Attention intensity", "Speculative decoding", "Formulas",
         "Validation")
T4 = cm.hardware("t4").to_dict()
GPT2 = {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257,
        "n_positions": 1024}
HARDWARE_FILES = [
    ("t4.json", json.dumps(T4).encode()),
    ("fitted.json", json.dumps({**T4, "eta_c": 0.6, "eta_m": 0.5, "eta_c_skinny": 0.1,
                                "kernel_overhead": 7e-6}).encode()),
    ("huge-memory.json", json.dumps({**T4, "memory_bytes": 2**60}).encode()),
    ("peak-list.json", json.dumps({**T4, "peak_flops": [1e12]}).encode()),
    ("extra-list.json", json.dumps({**T4, "extra": [1, 2]}).encode()),
    ("nested.json", b"[" * 100_000),
    ("name-null.json", json.dumps({**T4, "name": None}).encode()),
    ("overhead-inf.json", json.dumps({**T4, "kernel_overhead": math.inf}).encode()),
    ("latency-bool.json", json.dumps({**T4, "interconnect_latency": True}).encode()),
    ("not-json.json", b"memory: 16 GB"),
    ("not-utf8.json", b"\xff\xfe\x00"),
]
CONFIG_FILES = [
    ("config.json", json.dumps(GPT2).encode()),
    ("config.json", json.dumps({**GPT2, "n_layer": 10**20}).encode()),
    ("config.json", json.dumps({"model_type": "mistral", "num_hidden_layers": 32,
                                "hidden_size": 4096, "num_attention_heads": 32,
                                "num_key_value_heads": 8, "intermediate_size": 14336,
                                "vocab_size": 32000, "max_position_embeddings": 32768,
                                "sliding_window": 4096}).encode()),
    ("config.json", json.dumps({**GPT2, "model_type": "llama",
                                "num_local_experts": 8}).encode()),
    ("config.json", b'{"model_type": "gpt2", "n_layer": 12,'),
    ("config.json", json.dumps({**GPT2, "n_layer": 2**31 - 1, "n_embd": 2**31 - 1,
                                "n_head": 2**31 - 1, "n_inner": 2**31 - 1}).encode()),
]


def visible(locator) -> list:
    return [locator.nth(i) for i in range(locator.count()) if locator.nth(i).is_visible()]


def _take(item) -> str | None:
    """Read and click an element found a moment ago; None if a rerun removed it meanwhile (the
    walk goes on: the page's health is what check_page judges after every step)."""
    try:
        text = item.inner_text(timeout=GONE_MS)
        item.click(timeout=GONE_MS)
    except sync_api.TimeoutError:
        return None
    return text


def check_page(page, step: str) -> None:
    """No exception box, no traceback or unexpected error, no inf/NaN shown as a metric, the
    page selector and both uploaders present."""
    assert page.get_by_test_id("stException").count() == 0, step
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and "unexpected error" not in body, step
    for value in page.get_by_test_id("stMetricValue").all_inner_texts():
        assert not NOT_A_NUMBER.search(value), f"{step}: metric {value!r}"
    assert page.get_by_test_id("stRadio").filter(has_text="Formulas").count() == 1, step
    assert page.get_by_test_id("stFileUploader").count() >= 2, step


def _number(page, rng) -> str:
    boxes = visible(page.locator('[data-testid="stNumberInput"] input'))
    if not boxes:
        return ""
    box = rng.choice(boxes)
    value = rng.choice(["0", "1", "-1", "2", "7", "64", "1024", "99999999", "1e30", "2147483647",
                        "0.5", "abc", "10000000", "1000000"])
    if value == "abc":              # not a number: typed key by key (fill refuses it)
        box.click()
        box.press("Control+A")
        box.press_sequentially(value)
    else:
        box.fill(value)
    box.press("Enter")
    return f"number {box.get_attribute('aria-label')} = {value}"


def _select(page, rng) -> str:
    boxes = visible(page.get_by_test_id("stSelectbox"))
    if not boxes:
        return ""
    box = rng.choice(boxes)
    box.click()
    options = visible(page.get_by_role("option"))
    if not options:
        page.keyboard.press("Escape")
        return "select (no options)"
    text = _take(rng.choice(options))
    if text is None:
        page.keyboard.press("Escape")
        return "select (the option list changed under the pointer)"
    return f"select {text}"


def _click(page, rng, testid: str, inner: str) -> str:
    items = visible(page.get_by_test_id(testid).locator(inner))
    if not items:
        return ""
    text = _take(rng.choice(items))
    if text is None:
        return f"{testid} (gone before the click)"
    return f"{testid} {text[:40]}"


def _slider(page, rng) -> str:
    sliders = visible(page.get_by_role("slider"))
    if not sliders:
        return ""
    s = rng.choice(sliders)
    s.focus()
    key = rng.choice(["Home", "End", "ArrowLeft", "ArrowRight", "PageUp", "PageDown"])
    for _ in range(rng.randint(1, 5)):
        s.press(key)
    return f"slider {key}"


def _upload(page, rng) -> str:
    which = rng.randrange(2)
    name, data = rng.choice(CONFIG_FILES if which == 0 else HARDWARE_FILES)
    page.get_by_test_id("stFileUploader").nth(which).locator("input[type=file]") \
        .set_input_files(files=[{"name": name, "mimeType": "application/json", "buffer": data}])
    return f"upload {name} ({len(data)} bytes) to uploader {which}"


def _button(page, rng) -> str:
    buttons = [b for b in visible(page.get_by_test_id("stButton").locator("button"))]
    if not buttons:
        return ""
    b = rng.choice(buttons)
    text = b.inner_text()[:40]
    b.click()
    return f"button {text}"


def test_random_walk(server, browser_page):
    """A seeded random walk through every kind of input: after every step the page holds no
    exception box, no traceback and no inf/NaN metric; the selector and uploaders stay."""
    page = browser_page
    page.goto(f"{server}/?model=custom&hw=custom&eta=custom")   # every kind of widget shown
    idle(page)
    rng = random.Random(WALK_SEED)
    actions = [
        (3, lambda: (go(page, rng.choice(PAGES)), "page")[1]),
        (5, lambda: _number(page, rng)),
        (3, lambda: _select(page, rng)),
        (2, lambda: _click(page, rng, "stCheckbox", "label")),
        (2, lambda: _click(page, rng, "stRadio", '[data-testid="stRadioOption"]')),
        (1, lambda: _slider(page, rng)),
        (2, lambda: _upload(page, rng)),
        (1, lambda: _button(page, rng)),
    ]
    weights = [w for w, _ in actions]
    counts: dict[str, int] = {}
    deadline = time.monotonic() + WALK_SECONDS
    steps = 0
    while steps < WALK_STEPS and time.monotonic() < deadline:
        _, act = rng.choices(actions, weights)[0]
        what = act()
        if not what:
            continue
        idle(page)
        steps += 1
        kind = what.split()[0]
        counts[kind] = counts.get(kind, 0) + 1
        check_page(page, f"step {steps}: {what}")
    print(f"\nrandom walk: {steps} interactions {dict(sorted(counts.items()))}")
    assert steps >= min(200, WALK_STEPS), f"only {steps} interactions in {WALK_SECONDS:.0f} s"
    shot(page, "walk_end")
    # every page once more, in a fresh session of another configuration
    page.goto(f"{server}/?model=llama3-70b&hw=h100-sxm&tp=8&batch=64&context=8192")
    idle(page)
    for name in PAGES:
        go(page, name)
        check_page(page, f"final {name}")
        shot(page, f"walk_{name.lower().replace(' ', '_')}")


def test_no_deploy_button(server, browser_page):
    page = browser_page
    page.goto(server)
    idle(page)
    page.wait_for_timeout(500)
    assert page.get_by_test_id("stAppDeployButton").count() == 0
    assert page.get_by_role("button", name="Deploy").count() == 0
