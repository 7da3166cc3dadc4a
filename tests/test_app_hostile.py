"""Hostile input through streamlit's AppTest: on every page, every widget set to its edge values
(min, max, zero where allowed, beyond the range, every option) and broken files uploaded in
both uploaders. After every render: no exception element, no "unexpected error" (every failure
is a ValueError naming its field), no inf / NaN / None shown as an answer, and the page
selector and both uploaders still there. Each test prints how many renders it checked.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

pytest.importorskip("streamlit")
from streamlit.runtime.scriptrunner.script_cache import ScriptCache  # noqa: E402
from streamlit.testing.v1 import AppTest, local_script_runner  # noqa: E402

import costmodel as cm  # noqa: E402
from costmodel.app.state import FIELDS, PAGES  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Glyph .* missing from font")
APP = str(Path(__file__).resolve().parent.parent / "app.py")
#: A number shown as an answer that is not one.
NOT_A_NUMBER = re.compile(r"(?<![A-Za-z_])(nan|NaN|-?inf|Infinity|None)(?![A-Za-z_])")
#: An error names what to change: a field ("peak_flops: …", "tp: …"), the file when the file
#: itself is broken ("config.json: not valid JSON …"), or says what does not fit.
NAMES_A_FIELD = re.compile(r"(\b[a-z][a-z0-9_]*(\[[A-Za-z0-9]+\])?:\s)|do not fit|Nothing fits|"
                           r"^(Model|Hardware): no [\w. ]+ uploaded yet|"
                           r"(hardware JSON|config\.json): ")

T4 = cm.hardware("t4").to_dict()
GPT2 = {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12,
        "vocab_size": 50257, "n_positions": 1024}
LLAMA = {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
         "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
         "vocab_size": 128256, "max_position_embeddings": 8192}


def _hw(**changes) -> bytes:
    return json.dumps({**T4, **changes}).encode()


def _without(d: dict, key: str) -> bytes:
    return json.dumps({k: v for k, v in d.items() if k != key}).encode()


#: (file bytes, a text the error must contain: the field or what is wrong with the file)
BROKEN_HARDWARE = {
    "peak_flops list": (_hw(peak_flops=[1e12]), "peak_flops"),
    "peak_flops string": (_hw(peak_flops="1e12"), "peak_flops"),
    "peak_flops value string": (_hw(peak_flops={"fp16": "1e12"}), "peak_flops[fp16]"),
    "peak_flops negative": (_hw(peak_flops={"fp16": -1.0}), "peak_flops[fp16]"),
    "peak_flops unknown dtype": (_hw(peak_flops={"fp99": 1e12}), "peak_flops dtype"),
    "peak_flops empty": (_hw(peak_flops={}), "peak_flops"),
    "extra list": (_hw(extra=[1, 2]), "extra"),
    "deep nesting": (b"[" * 100_000, "nested"),
    "deep object": (b'{"a":' * 70 + b"1" + b"}" * 70, "nested"),
    "name null": (_hw(name=None), "name"),
    "name list": (_hw(name=["a"]), "name"),
    "name empty": (_hw(name=""), "name"),
    "name huge": (_hw(name="x" * 100_000), "name"),
    "kernel_overhead Infinity": (_hw(kernel_overhead=math.inf), "kernel_overhead"),
    "kernel_overhead NaN": (_hw(kernel_overhead=math.nan), "kernel_overhead"),
    "kernel_overhead bool": (_hw(kernel_overhead=True), "kernel_overhead"),
    "kernel_overhead negative": (_hw(kernel_overhead=-1.0), "kernel_overhead"),
    "interconnect_latency Infinity": (_hw(interconnect_latency=math.inf),
                                      "interconnect_latency"),
    "interconnect_latency bool": (_hw(interconnect_latency=True), "interconnect_latency"),
    "interconnect_bandwidth Infinity": (_hw(interconnect_bandwidth=math.inf),
                                        "interconnect_bandwidth"),
    "interconnect_bandwidth bool": (_hw(interconnect_bandwidth=False),
                                    "interconnect_bandwidth"),
    "memory_bytes 1e40": (_hw(memory_bytes=1e40), "memory_bytes"),
    "memory_bytes fraction": (_hw(memory_bytes=1.5), "memory_bytes"),
    "memory_bytes negative": (_hw(memory_bytes=-1), "memory_bytes"),
    "memory_bytes string": (_hw(memory_bytes="16 GB"), "memory_bytes"),
    "bandwidth zero": (_hw(bandwidth=0), "bandwidth"),
    "bandwidth string": (_hw(bandwidth="fast"), "bandwidth"),
    "eta_c above 1": (_hw(eta_c=1.5), "eta_c"),
    "eta_m zero": (_hw(eta_m=0), "eta_m"),
    "eta_c_skinny string": (_hw(eta_c_skinny="x"), "eta_c_skinny"),
    "skinny_rows zero": (_hw(skinny_rows=0), "skinny_rows"),
    "tdp_watts NaN": (_hw(tdp_watts=math.nan), "tdp_watts"),
    "unknown field": (_hw(foo=1), "unknown field"),
    "missing bandwidth": (_without(T4, "bandwidth"), "missing field"),
    "top-level list": (b"[1, 2, 3]", "JSON object"),
    "top-level number": (b"42", "JSON object"),
    "empty file": (b"", "not valid JSON"),
    "not JSON": (b"memory: 16 GB", "not valid JSON"),
    "truncated JSON": (_hw()[:-10], "not valid JSON"),
    "not UTF-8": (b"\xff\xfe\x00{", "UTF-8"),
    "too large": (b" " * (16 * 2**20 + 1), "bytes"),
}

BROKEN_CONFIG = {
    "not JSON": (b'{"model_type": "gpt2", "n_layer": 12,', "not valid JSON"),
    "not UTF-8": (b"\xff\xfe", "UTF-8"),
    "deep nesting": (b"[" * 100_000, "nested"),
    "top-level list": (b"[1, 2]", "JSON object"),
    "empty object": (b"{}", "model_type"),
    "model_type bert": (json.dumps({"model_type": "bert"}).encode(), "model_type"),
    "model_type list": (json.dumps({**GPT2, "model_type": ["gpt2"]}).encode(), "model_type"),
    "n_layer string": (json.dumps({**GPT2, "n_layer": "12"}).encode(), "n_layer"),
    "n_layer fraction": (json.dumps({**GPT2, "n_layer": 12.5}).encode(), "n_layer"),
    "n_layer bool": (json.dumps({**GPT2, "n_layer": True}).encode(), "n_layer"),
    "n_layer 10**20": (json.dumps({**GPT2, "n_layer": 10**20}).encode(), "n_layer"),
    "num_hidden_layers 10**20": (json.dumps({**LLAMA, "num_hidden_layers": 10**20}).encode(),
                                 "num_hidden_layers"),
    "n_head not dividing": (json.dumps({**GPT2, "n_head": 7}).encode(), "n_heads"),
    "vocab_size negative": (json.dumps({**GPT2, "vocab_size": -1}).encode(), "vocab_size"),
    "missing n_embd": (_without(GPT2, "n_embd"), "n_embd"),
    "activation tanh": (json.dumps({**GPT2, "activation_function": "tanh"}).encode(),
                        "activation"),
    "tie_word_embeddings string": (json.dumps({**GPT2, "tie_word_embeddings": "yes"}).encode(),
                                   "tie_word_embeddings"),
    # cost fields of another family (a llama config with experts, a window, a latent cache)
    "sliding_window on llama": (json.dumps({**LLAMA, "sliding_window": 4096}).encode(),
                                "sliding_window"),
    "num_local_experts on llama": (json.dumps({**LLAMA, "num_local_experts": 8}).encode(),
                                   "num_local_experts"),
    "num_experts on qwen2": (json.dumps({**LLAMA, "model_type": "qwen2",
                                         "num_experts": 60}).encode(), "num_experts"),
    "quantization_config unknown": (json.dumps({**LLAMA, "quantization_config":
                                                {"bits": 4}}).encode(), "quantization_config"),
    "mamba_d_state": (json.dumps({**LLAMA, "mamba_d_state": 16}).encode(), "mamba_d_state"),
    "layer_types unknown": (json.dumps({**LLAMA, "model_type": "mistral", "layer_types":
                                       ["linear_attention"] * 32}).encode(), "layer_types"),
    "kv_lora_rank": (json.dumps({**LLAMA, "kv_lora_rank": 512}).encode(), "kv_lora_rank"),
}

#: Valid but extreme: shown, never a crash (scientific notation where numbers are huge).
EXTREME_HARDWARE = {
    "memory at the limit": _hw(memory_bytes=2**60),
    "slowest": _hw(bandwidth=1.0, peak_flops={"fp16": 1.0}, memory_bytes=1),
    "fastest": _hw(bandwidth=1e17, peak_flops={"fp16": 1e21, "fp32": 1e21},
                   interconnect_bandwidth=1e17),
    "fitted efficiencies": _hw(eta_c=0.64, eta_m=0.49, eta_c_skinny=0.11,
                               eta_m_elementwise=0.39, kernel_overhead=7.4e-6),
    "worst efficiencies": _hw(eta_c=1e-9, eta_m=1e-9, kernel_overhead=1.0,
                              interconnect_latency=1.0),
}
EXTREME_CONFIG = {
    "largest dims": json.dumps({**GPT2, "n_layer": 2**31 - 1, "n_embd": 2**31 - 1,
                                "n_head": 2**31 - 1, "vocab_size": 2**31 - 1,
                                "n_positions": 2**31 - 1, "n_inner": 2**31 - 1}).encode(),
    "smallest dims": json.dumps({**GPT2, "n_layer": 1, "n_embd": 1, "n_head": 1,
                                 "vocab_size": 1, "n_positions": 1, "n_inner": 1}).encode(),
    "sliding window covering the context": json.dumps(
        {**LLAMA, "model_type": "mistral", "sliding_window": 8192}).encode(),
    "sliding window": json.dumps({**LLAMA, "model_type": "mistral", "sliding_window": 4096,
                                  "max_position_embeddings": 32768}).encode(),
    "mixture of experts": json.dumps({**LLAMA, "model_type": "mixtral", "num_local_experts": 8,
                                      "num_experts_per_tok": 2}).encode(),
}


@pytest.fixture(autouse=True)
def one_script_cache(monkeypatch):
    """app.py compiled once per test, as `streamlit run` keeps it, instead of on every run."""
    shared = ScriptCache()
    monkeypatch.setattr(local_script_runner, "ScriptCache", lambda: shared)


class Checked:
    """An AppTest whose every render is checked; counts renders and inputs."""

    def __init__(self, params: dict) -> None:
        self.at = AppTest.from_file(APP, default_timeout=120)
        self.at.query_params.update(params)
        self.renders = 0
        self.run("first render")

    def run(self, what: str) -> None:
        self.at.run()
        self.renders += 1
        check(self.at, what)

    def set(self, kind: str, key: str, value, what: str = "") -> None:
        widget = getattr(self.at, kind)(key=key)
        widget.set_value(value)
        self.run(what or f"{kind} {key} = {str(value)[:60]}")

    def upload(self, key: str, data: bytes, name: str = "file.json") -> None:
        self.at.file_uploader(key=key).set_value((name, data, "application/json"))
        self.run(f"upload {name} to {key}")


def _texts(at: AppTest) -> list[str]:
    """Every text the page shows as an answer (errors and warnings may quote the bad input)."""
    out = []
    for kind in ("markdown", "caption", "latex", "info", "success", "title", "header",
                 "subheader", "text"):
        out += [str(e.value) for e in getattr(at, kind)]
    for m in at.metric:
        out += [str(m.label), str(m.value)]
    return out


def check(at: AppTest, what: str) -> None:
    assert not at.exception, f"{what}: exception {at.exception[0].value}"
    errors = [e.value for e in at.error]
    unexpected = [e for e in errors if "unexpected error" in e]
    assert not unexpected, f"{what}: {unexpected}"
    unnamed = [e for e in errors if not NAMES_A_FIELD.search(e)]
    assert not unnamed, f"{what}: errors that name no field: {unnamed}"
    bad = [t for t in _texts(at) if NOT_A_NUMBER.search(t)]
    assert not bad, f"{what}: inf/NaN/None shown: {[t[:200] for t in bad]}"
    for df in at.dataframe:
        frame = df.value
        for col in frame.columns:
            values = frame[col]
            if values.dtype.kind == "f":
                assert values.map(math.isfinite).all(), f"{what}: non-finite in {col}"
            elif values.dtype.kind not in "iub":
                shown = [str(v) for v in values]
                assert not [s for s in shown if NOT_A_NUMBER.fullmatch(s.strip())], \
                    f"{what}: inf/NaN/None in column {col}"
    assert at.radio(key="page").value in PAGES, f"{what}: the page selector is gone"
    keys = {u.key for u in at.file_uploader}
    assert {"hf_upload", "hw_upload"} <= keys, f"{what}: an uploader is gone ({keys})"


def _edges(widget) -> list:
    """Edge values of a number input or slider: min, max, zero when allowed, beyond the range
    (the widget refuses those and keeps its value)."""
    lo, hi = widget.min, widget.max
    values = [lo, hi]
    if lo is not None and hi is not None and lo < 0 < hi:
        values.append(0)
    if hi is not None:
        values.append(hi + 1 if isinstance(hi, int) else hi * 10)   # refused: the value stays
    return values


TEXTS = ("", " ", "x" * 80, "<script>alert(1)</script>", "名前 ✓", "0")


def sweep_widgets(c: Checked, skip: set[str]) -> int:
    """Every widget present, every edge value; each widget set back afterwards."""
    at = c.at
    inputs = 0
    plan = []
    for w in at.number_input:
        plan.append(("number_input", w.key, _edges(w), w.value))
    for w in at.slider:
        plan.append(("slider", w.key, _edges(w)[:3], w.value))
    for w in at.selectbox:
        plan.append(("selectbox", w.key, _choices(w), w.value))
    for w in at.checkbox:
        plan.append(("checkbox", w.key, [not w.value], w.value))
    for w in at.radio:
        plan.append(("radio", w.key, _choices(w), w.value))
    for w in at.text_input:
        plan.append(("text_input", w.key, list(TEXTS), w.value))
    for kind, key, values, original in plan:
        if key in skip or key is None:
            continue
        for value in values:
            c.set(kind, key, value)
            inputs += 1
        if getattr(c.at, kind)(key=key).value != original:
            c.set(kind, key, original, f"{kind} {key} back")
    return inputs


def _choices(widget) -> list:
    """The values (not the shown labels) a select widget offers."""
    field = FIELDS.get(widget.key)
    return list(field.options()) if field is not None else list(widget.options)


@pytest.mark.parametrize("page", PAGES)
def test_every_widget_at_its_edges(page):
    c = Checked({"page": page, "model": "custom", "hw": "custom", "eta": "custom"})
    inputs = sweep_widgets(c, skip={"page"})
    print(f"\n{page}: {inputs} edge inputs, {c.renders} renders checked")
    assert inputs >= 60


@pytest.mark.parametrize("page", PAGES)
def test_broken_and_extreme_uploads(page):
    c = Checked({"page": page})
    inputs = 0
    for name, (data, field) in BROKEN_HARDWARE.items():
        c.upload("hw_upload", data, f"{name}.json")
        inputs += 1
        errors = " | ".join(e.value for e in c.at.error)
        assert field in errors, f"{name}: {field!r} not named in {errors[:300]}"
    for name, (data, field) in BROKEN_CONFIG.items():
        c.upload("hf_upload", data, "config.json")
        inputs += 1
        errors = " | ".join(e.value for e in c.at.error)
        assert field in errors, f"{name}: {field!r} not named in {errors[:300]}"
    for name, data in EXTREME_HARDWARE.items():
        c.upload("hw_upload", data, f"{name}.json")
        inputs += 1
        assert not [e for e in c.at.error if e.value.startswith("Hardware:")], name
    for name, data in EXTREME_CONFIG.items():
        c.upload("hf_upload", data, "config.json")
        inputs += 1
        assert not [e for e in c.at.error if e.value.startswith("Model:")], name
    print(f"\n{page}: {inputs} uploads, {c.renders} renders checked")


#: The widgets of modern architectures, weight formats and engines (shown for a model with
#: experts and latent attention: EP and the MLA cache appear only then).
ARCHITECTURE_KEYS = {"quant", "engine", "attention", "ep", "mla", "tp", "eta"}


@pytest.mark.parametrize("page", ["Memory", "Roofline", "Speculative decoding", "Formulas"])
@pytest.mark.parametrize("model", ["deepseek-v2-lite", "gpt-oss-20b"])
def test_architecture_widgets_at_their_edges(page, model):
    c = Checked({"page": page, "model": model, "hw": "h100-sxm"})
    keys = {w.key for kind in ("number_input", "selectbox", "radio", "slider", "checkbox",
                               "text_input") for w in getattr(c.at, kind)}
    expected = {"quant", "engine", "ep"} | ({"mla"} if model == "deepseek-v2-lite" else set())
    assert expected <= keys, expected - keys
    inputs = sweep_widgets(c, skip=keys - ARCHITECTURE_KEYS)
    # EP not dividing the experts, not a multiple of TP, beyond the experts: named errors
    # (the Speculative page runs target and draft on one GPU: no TP, no EP there)
    for ep, tp in ((3, 1), (2, 4), (128, 16)):
        c.set("number_input", "tp", tp)
        c.set("number_input", "ep", ep)
        inputs += 2
        shown = " | ".join(e.value for e in c.at.error)
        if page == "Speculative decoding":
            assert "ep: " not in shown
        else:
            assert "ep: " in shown and "Valid EP degrees" in shown, shown
    print(f"\n{model} {page}: {inputs} edge inputs, {c.renders} renders checked")
    assert inputs >= 25
