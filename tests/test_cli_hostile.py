"""The hostile-input suite of the command line: every subcommand fed malformed arguments (bad
numbers, NaN and infinities, 1e300, huge integers, booleans, negatives, unknown options and
choices, missing required ones) and broken files (hardware JSON and Hugging Face config.json:
wrong types, non-finite numbers, unmodelled fields, deep nesting, not UTF-8, a folder instead of
a file). Each input must end with exit status 2, exactly one stderr line starting
``costmodel: error:``, nothing on stdout, no traceback, no "internal error" and within a few
seconds.

Most inputs run in-process through :func:`costmodel.cli.main`; a handful run in a real
``python -m costmodel`` process. Each test prints its count (``pytest -s`` shows it):
inputs tried, clean errors, anything else (which must be 0).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from costmodel.cli import main

ROOT = Path(__file__).resolve().parent.parent
#: Seconds one in-process input may take (the slowest, a chart rendered before its path is
#: refused, takes ~0.5 s; the limit leaves room for a busy machine).
IN_PROCESS_LIMIT_S = 5.0

# --------------------------------------------------------------------------- the inputs

#: Refused by every numeric option, whatever its range.
BAD_ANYWHERE = ["abc", "", " ", "nan", "NaN", "inf", "-inf", "Infinity", "1e300", "-1e300",
                "1e999", "true", "False", "None", "null", "-1", "99999999999999999999999",
                "-99999999999999999999999", "0x10", "1,000", "1.5.2", "[1]", "1e-400j", "--1"]
#: Refused as well, by kind of option.
BAD_BY_KIND = {
    "count": ["0", "2.5", "1e-3", str(2**53 + 1), "9007199254740993.0"],
    "nonneg_count": ["2.5", str(2**53 + 1)],
    "dim": ["0", "2.5", str(2**31)],
    "gamma": ["0", "1025", "1000000", "2.5"],
    "bytes": ["0", "0.1", "8.5", "16", "1e308"],
    "fraction": ["0", "1.5", "1.0000001", "1e308"],
    "overhead": ["1.5", "1e308"],
    "gib": ["0", "1e308", str(2**31)],
    "reserved": ["1e308", str(2**31)],
    "memory_bytes": ["0", "2.5", str(2**60 + 1)],
    "alpha": ["1", "1.0", "2"],
    "cost": ["1e7", "1e308"],
    "runs": ["0", "2.5"],
}

#: (base argv, {option: kind}) for every subcommand with numeric options.
NUMERIC = [
    (["params", "-m", "gpt2"], {"--weight-bytes": "bytes", "--expert-weight-bytes": "bytes"}),
    (["kv", "-m", "gpt2", "-c", "8"],
     {"--context": "count", "--batch": "count", "--kv-bytes": "bytes"}),
    (["batch", "-m", "gpt2", "--contexts", "8"],
     {"--contexts": "count", "--tp": "dim", "--weight-bytes": "bytes", "--kv-bytes": "bytes",
      "--mem-util": "fraction", "--reserved-gib": "reserved", "--memory-gib": "gib",
      "--memory-bytes": "memory_bytes", "--ep": "dim", "--expert-weight-bytes": "bytes"}),
    (["analyze", "-m", "gpt2"],
     {"--context": "nonneg_count", "--batch": "count", "--gamma": "gamma", "--chunk": "count",
      "--generate": "count", "--tp": "dim", "--weight-bytes": "bytes", "--kv-bytes": "bytes",
      "--act-bytes": "bytes", "--eta-c": "fraction", "--eta-m": "fraction",
      "--eta-c-skinny": "fraction", "--eta-m-elementwise": "fraction",
      "--kernel-overhead": "overhead", "--ep": "dim", "--expert-weight-bytes": "bytes"}),
    (["ai"], {"--n": "count", "--d": "dim", "--batch": "count", "--bytes": "bytes"}),
    (["specdec", "--cost-ratio", "0.1"],
     {"--alpha": "alpha", "--gamma": "gamma", "--cost-ratio": "cost",
      "--context": "nonneg_count", "--ep": "dim", "--weight-bytes": "bytes",
      "--expert-weight-bytes": "bytes"}),
    (["sweep", "-m", "gpt2", "--batch", "1", "--context", "8"],
     {"--batch": "count", "--context": "count", "--tp": "dim", "--gamma": "gamma",
      "--chunk": "count", "--mem-util": "fraction", "--weight-bytes": "bytes",
      "--kv-bytes": "bytes", "--act-bytes": "bytes", "--eta-c": "fraction",
      "--eta-m": "fraction", "--kernel-overhead": "overhead", "--ep": "dim",
      "--expert-weight-bytes": "bytes"}),
    (["bench", "analyze"], {"--runs": "runs"}),
    (["bench", "startup"], {"--runs": "runs"}),
    (["bench", "sweep"], {"--runs": "runs", "--loop-points": "runs", "--batches": "runs",
                          "--contexts": "runs"}),
    (["measure", "--out", "x.csv"], {"--repeats": "runs", "--rounds": "runs",
                                     "--threads": "runs"}),
    (["calibrate"], {"--threads": "runs"}),
]

#: Malformed command lines that are not about one number.
MALFORMED = [
    # unknown options, stray words, missing values, everywhere
    *([cmd, "--bogus"] for cmd in ("presets", "params", "kv", "batch", "analyze", "ai",
                                   "specdec", "sweep", "calibrate", "measure", "validate")),
    ["kv", "-m", "gpt2", "-c", "8", "extra"], ["analyze", "-m", "gpt2", "stray"],
    ["kv", "-m"], ["kv", "-m", "gpt2", "-c"], ["analyze", "-m", "gpt2", "--hardware"],
    ["sweep", "-m", "gpt2", "--batch"], ["--format"], ["-f", "yaml"], ["--bogus"],
    ["no-such-command"], ["KV"], [""], ["-"], ["--"], ["kv", "--", "-m", "gpt2"],
    ["kv", "-m", "gpt2", "-c", "8", "--format", "xml"], ["presets", "-f", "JSON"],
    # missing required
    ["kv", "-c", "8"], ["kv", "-m", "gpt2"], ["params"], ["batch"], ["analyze"], ["sweep"],
    ["validate"], ["validate", "-m", "m.csv"], ["measure"], ["bench"],
    # mutually exclusive
    ["params", "-m", "gpt2", "--config", "c.json"],
    ["batch", "-m", "gpt2", "--memory-gib", "8", "--memory-bytes", "8"],
    ["batch", "-m", "gpt2", "--hardware", "t4", "--memory-bytes", "8"],
    # bad choices
    ["presets", "gpus"], ["analyze", "-m", "gpt2", "--phase", "no-cache"],
    ["analyze", "-m", "gpt2", "--phase", "PREFILL"], ["analyze", "-m", "gpt2", "--attention",
                                                       "flash"],
    ["analyze", "-m", "gpt2", "--attention", "eager"], ["analyze", "-m", "gpt2", "--causal", "x"],
    ["analyze", "-m", "gpt2", "--lm-head", "first"], ["analyze", "-m", "gpt2", "--dtype", "fp64"],
    ["ai", "--phase", "verify"], ["ai", "--kv", "x"], ["ai", "--convention", "x"],
    ["ai", "--attention", "x"], ["batch", "-m", "gpt2", "--convention", "x"],
    ["sweep", "-m", "gpt2", "--phase", "no-cache"], ["sweep", "-m", "gpt2", "--attention", "x"],
    ["bench", "nope"], ["bench", "analyze", "--bogus"], ["bench", "sweep", "extra"],
    ["measure", "--out", "x.csv", "--grid", "huge"], ["calibrate", "--clock", "sundial"],
    # unknown presets and values the API refuses
    ["kv", "-m", "llama3-8", "-c", "8"], ["params", "-m", ""], ["params", "-m", " "],
    ["params", "-m", "x" * 100_000], ["params", "-m", "gpt2\x00"], ["params", "-m", "../gpt2"],
    ["analyze", "-m", "gpt2", "--hardware", "a100"], ["analyze", "-m", "gpt2", "--hardware", ""],
    ["sweep", "-m", "gpt2", "--hardware", "t4", "nope"],
    ["specdec", "--target", "nope"], ["specdec", "--draft", "gpt2", "--hardware", "x"],
    ["batch", "-m", "gpt2", "--hardware", "nope"], ["batch", "-m", "gpt2", "--tp", "5"],
    ["analyze", "-m", "gpt2", "--tp", "7"], ["analyze", "-m", "gpt2", "--tp", "2",
                                            "--hardware", "t4", "--dtype", "bf16"],
    ["analyze", "-m", "gpt2", "--phase", "prefill", "--context", "0"],
    ["sweep", "-m", "gpt2", "--tp", "5"], ["sweep", "-m", "gpt2", "--dtype", "fp8",
                                           "--hardware", "t4"],
    ["specdec", "--alpha", "0.5", "--cost-ratio", "0", "--plot", "/no/such/dir/\x00x.png"],
    # lists too long, grids too large
    ["ai", "--n", *[str(n) for n in range(1, 1002)]],
    ["sweep", "-m", "gpt2", "--batch", *[str(b) for b in range(1, 201)], "--context",
     *[str(c) for c in range(1, 201)]],
    ["specdec", "--cost-ratio", "0.1", "--gamma", *["1"] * 1001],
    ["bench", "sweep", "--batches", "100000", "--contexts", "100000"],
    ["-f", "csv", "bench", "e0294"],
    # plots
    ["analyze", "-m", "gpt2", "--plot", "chart.svg"], ["specdec", "--plot", "x.pdf"],
    # weight formats, engines, expert parallelism, latent attention
    *([cmd, *base, opt, value] for cmd, base in (("params", ["-m", "gpt2"]),
                                                 ("batch", ["-m", "gpt2"]),
                                                 ("analyze", ["-m", "gpt2"]),
                                                 ("sweep", ["-m", "gpt2"]),
                                                 ("specdec", []))
      for opt, value in (("--quant", "int3"), ("--quant", ""), ("--quant", "FP8"),
                         ("--quant", "int4-g7"), ("--quant", "int4-g0"),
                         ("--quant", "int4-g99999999"), ("--quant", "int4-g"),
                         ("--quant", "x" * 10_000), ("--quant", "fp8\x00"),
                         ("--quant", "nan"), ("--quant", "2"))),
    *([cmd, *base, "--expert-quant", value] for cmd, base in (("params", ["-m", "mixtral-8x7b"]),
                                                              ("analyze", ["-m", "gpt2"]),
                                                              ("sweep", ["-m", "gpt2"]))
      for value in ("int3", "", "bf17")),
    ["batch", "-m", "gpt2", "--expert-quant", "fp8"],             # batch takes widths only
    ["params", "-m", "gpt2", "--quant", "fp8", "--weight-bytes", "1"],
    ["analyze", "-m", "mixtral-8x7b", "--expert-quant", "fp8", "--expert-weight-bytes", "1"],
    *([cmd, *base, "--engine", value] for cmd, base in (("analyze", ["-m", "gpt2"]),
                                                        ("sweep", ["-m", "gpt2"]),
                                                        ("specdec", []))
      for value in ("", " ", "nope", "tuend", "IDEAL?", "x" * 10_000, "ideal\x00")),
    ["params", "-m", "gpt2", "--engine", "tuned"], ["kv", "-m", "gpt2", "-c", "8", "--ep", "2"],
    *(["analyze", "-m", "gpt2", opt, value] for opt, value in (
        ("--mla", "latent"), ("--mla", ""), ("--experts", "some"), ("--experts", "ALL"),
        ("--causal", "window"))),
    ["kv", "-m", "gpt2", "-c", "8", "--mla", "x"], ["batch", "-m", "gpt2", "--mla", "x"],
    ["sweep", "-m", "gpt2", "--experts", "x"], ["specdec", "--mla", "x"],
    ["specdec", "--causal", "x"],
    # expert parallelism the model does not allow
    ["analyze", "-m", "gpt2", "--ep", "2"], ["analyze", "-m", "mixtral-8x7b", "--ep", "3"],
    ["analyze", "-m", "mixtral-8x7b", "--ep", "16"],
    ["analyze", "-m", "mixtral-8x7b", "--tp", "4", "--ep", "2"],
    ["analyze", "-m", "mixtral-8x7b", "--ep", str(2**31 - 1)],
    ["batch", "-m", "mixtral-8x7b", "--ep", "3"], ["batch", "-m", "gpt2", "--ep", "2"],
    ["batch", "-m", "mixtral-8x7b", "--ep", "2", "--tp", "4"],
    ["sweep", "-m", "mixtral-8x7b", "--ep", "3"], ["sweep", "-m", "gpt2", "--ep", "2"],
    ["sweep", "-m", "mixtral-8x7b", "--tp", "1", "8", "--ep", "4"],
    ["specdec", "--ep", "2"], ["specdec", "--target", "mixtral-8x7b", "--ep", "5"],
]


def _hardware_base() -> dict:
    return {"name": "broken", "memory_bytes": 85899345920, "bandwidth": 2.0e12,
            "peak_flops": {"bf16": 3.12e14, "fp16": 3.12e14, "fp32": 1.95e13},
            "interconnect_bandwidth": 3.0e11}


#: Hardware JSON texts (or bytes) that must be refused, by label.
def broken_hardware() -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    variant = _variants(out, _hardware_base)

    variant("peak_flops list", peak_flops=[1e12])
    variant("peak_flops string", peak_flops="1e12")
    variant("peak_flops number", peak_flops=1e12)
    variant("peak_flops value string", peak_flops={"bf16": "312e12"})
    variant("peak_flops value bool", peak_flops={"bf16": True})
    variant("peak_flops value null", peak_flops={"bf16": None})
    variant("peak_flops value negative", peak_flops={"bf16": -1.0})
    variant("peak_flops unknown dtype", peak_flops={"fp128": 1e12})
    variant("peak_flops empty", peak_flops={})
    variant("extra list", extra=[1, 2])
    variant("extra string", extra="x")
    for field in ("kernel_overhead", "interconnect_latency", "interconnect_bandwidth",
                  "bandwidth", "memory_bytes", "tdp_watts"):
        for label, value in (("Infinity", float("inf")), ("-Infinity", float("-inf")),
                             ("NaN", float("nan")), ("true", True), ("string", "1"),
                             ("list", [1]), ("negative", -1)):
            variant(f"{field} {label}", **{field: value})
    variant("kernel_overhead 10 s", kernel_overhead=10.0)
    variant("interconnect_latency 1e300", interconnect_latency=1e300)
    variant("memory_bytes 1e40", memory_bytes=1e40)
    variant("memory_bytes 2.5", memory_bytes=2.5)
    variant("memory_bytes 0", memory_bytes=0)
    variant("bandwidth 0", bandwidth=0)
    variant("bandwidth null", bandwidth=None)
    for eta in ("eta_c", "eta_m", "eta_c_skinny", "eta_m_elementwise"):
        for value in (1.5, 0, -0.5, True, "high", None if eta == "eta_c" else 1e300):
            variant(f"{eta} {value!r}", **{eta: value})
    variant("skinny_rows 0", skinny_rows=0)
    variant("skinny_rows 2.5", skinny_rows=2.5)
    variant("name null", name=None)
    variant("name list", name=["a100"])
    variant("name empty", name="")
    variant("name number", name=7)
    variant("name huge", name="x" * 100_000)
    variant("unknown field", turbo=True)
    variant("missing bandwidth", bandwidth=_DROP)
    variant("missing peak_flops", peak_flops=_DROP)
    variant("missing name", name=_DROP)
    out["deep brackets"] = "[" * 100_000
    out["deep objects"] = '{"a":' * 50_000 + "1" + "}" * 50_000
    out["deep inside a field"] = json.dumps(_hardware_base())[:-1] + ', "extra": ' \
        + "[" * 10_000 + "]" * 10_000 + "}"
    out["not UTF-8"] = b"\xff\xfe\x00\x00{\x80\x81}"
    out["latin-1 name"] = '{"name": "caf\xe9"}'.encode("latin-1")
    out["empty"] = ""
    out["whitespace"] = "  \n"
    out["null"] = "null"
    out["list"] = "[]"
    out["number"] = "42"
    out["string"] = '"a100-80gb"'
    out["truncated"] = json.dumps(_hardware_base())[:-10]
    out["NaN literal"] = json.dumps(_hardware_base())[:-1] + ', "tdp_watts": NaN}'
    out["trailing comma"] = json.dumps(_hardware_base())[:-1] + ",}"
    out["huge number literal"] = json.dumps(_hardware_base())[:-1] + ', "tdp_watts": ' \
        + "9" * 5000 + "}"
    out["BOM"] = "\ufeff" + json.dumps(_hardware_base()).replace("3.12e14", '"x"', 1)
    return out


_DROP = object()


def _variants(out: dict, base):
    """``variant(label, **changes)``: puts into ``out`` the JSON of ``base()`` with ``changes``
    applied (a value of ``_DROP`` removes the key)."""
    def variant(label: str, **changes) -> None:
        data = base()
        for key, value in changes.items():
            if value is _DROP:
                data.pop(key)
            else:
                data[key] = value
        out[label] = json.dumps(data)
    return variant


def _llama_base() -> dict:
    return {"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
            "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
            "vocab_size": 128256, "max_position_embeddings": 8192}


#: Hugging Face config.json texts (or bytes) that must be refused, by label.
def broken_configs() -> dict[str, str | bytes]:
    out: dict[str, str | bytes] = {}
    variant = _variants(out, _llama_base)

    for field in ("num_hidden_layers", "hidden_size", "num_attention_heads",
                  "num_key_value_heads", "intermediate_size", "vocab_size",
                  "max_position_embeddings"):
        for label, value in (("10**20", 10**20), ("-1", -1), ("0", 0), ("1.5", 1.5),
                             ("true", True), ("string", "4096"), ("list", [4096]),
                             ("Infinity", float("inf")), ("NaN", float("nan"))):
            variant(f"{field} {label}", **{field: value})
    variant("missing hidden_size", hidden_size=_DROP)
    variant("kv heads 3", num_key_value_heads=3)
    variant("kv heads 64 > heads", num_key_value_heads=64)
    variant("hidden not divisible by heads", hidden_size=4097)
    variant("sliding_window (llama has none)", sliding_window=4096,
            max_position_embeddings=32768)
    variant("num_local_experts", num_local_experts=8)
    variant("num_experts", num_experts=64)
    variant("quantization_config", quantization_config={"quant_method": "awq", "bits": 4})
    variant("kv_lora_rank", kv_lora_rank=512)
    variant("layer_types", layer_types=["sliding_attention"] * 32)
    variant("hidden_act weird", hidden_act="weird")
    variant("hidden_act list", hidden_act=["silu"])
    variant("tie_word_embeddings maybe", tie_word_embeddings="maybe")
    variant("attention_bias 1", attention_bias=1)
    variant("model_type bert", model_type="bert")
    variant("model_type null", model_type=None)
    variant("model_type list", model_type=["llama"])
    variant("model_type missing", model_type=_DROP)
    out["gpt2 n_layer 10**20"] = json.dumps({"model_type": "gpt2", "n_layer": 10**20,
                                             "n_embd": 768, "n_head": 12, "n_positions": 1024,
                                             "vocab_size": 50257})
    out["gpt2 activation none"] = json.dumps({"model_type": "gpt2", "n_layer": 12,
                                              "n_embd": 768, "n_head": 12,
                                              "n_positions": 1024, "vocab_size": 50257,
                                              "activation_function": None})
    out["nested deeply"] = '{"model_type": "llama", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    out["deep brackets"] = "[" * 100_000
    out["not UTF-8"] = b"\xff\xfe{\x00"
    out["empty"] = ""
    out["list"] = "[1, 2]"
    out["null"] = "null"
    out["truncated"] = json.dumps(_llama_base())[:-5]
    return out


def numeric_cases() -> Iterator[list[str]]:
    for base, options in NUMERIC:
        for option, kind in options.items():
            for value in BAD_ANYWHERE + BAD_BY_KIND[kind]:
                yield [*base, option, value]
                yield [*base, f"{option}={value}"]


def file_cases(folder: Path, validate: bool = False) -> Iterator[tuple[str, list[str]]]:
    """(label, argv) for each broken file through each command that reads one (``validate``:
    through the validate command only)."""
    hw_dir, cfg_dir = folder / "hw", folder / "cfg"
    hw_dir.mkdir()
    cfg_dir.mkdir()
    hardware_files = []
    for i, (label, text) in enumerate(broken_hardware().items()):
        path = hw_dir / f"hw{i}.json"
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        hardware_files.append((label, str(path)))
    folder_json = hw_dir / "folder.json"
    folder_json.mkdir()
    hardware_files += [("a folder", str(folder_json)), ("missing", str(hw_dir / "none.json")),
                       ("a file in a file", str(hw_dir / "hw0.json" / "x.json"))]
    big = hw_dir / "big.json"
    big.write_text('{"name": "' + "x" * (17 * 2**20) + '"}')
    hardware_files.append(("17 MiB", str(big)))
    for label, path in hardware_files:
        if validate:
            yield f"hardware {label}", ["validate", "-m", str(folder / "m.csv"), "-H", path,
                                        "-o", str(folder / "out")]
            continue
        for argv in (["analyze", "-m", "gpt2", "--hardware", path],
                     ["batch", "-m", "gpt2", "--hardware", path],
                     ["sweep", "-m", "gpt2", "--hardware", path],
                     ["sweep", "-m", "gpt2", "--hardware", "t4", path],
                     ["specdec", "--hardware", path]):
            yield f"hardware {label}", argv
    if validate:
        return
    config_files = []
    for i, (label, text) in enumerate(broken_configs().items()):
        path = cfg_dir / f"config{i}.json"
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        config_files.append((label, str(path)))
    empty_dir = cfg_dir / "empty"
    empty_dir.mkdir()
    config_files += [("a folder without config.json", str(empty_dir)),
                     ("missing", str(cfg_dir / "none.json"))]
    for label, path in config_files:
        for argv in (["params", "--config", path], ["kv", "--config", path, "-c", "8"],
                     ["batch", "--config", path], ["analyze", "--config", path],
                     ["sweep", "--config", path], ["specdec", "--target", path],
                     ["specdec", "--draft", path]):
            yield f"config {label}", argv


# --------------------------------------------------------------------------- the checks

def attempt(argv: list[str]) -> tuple[int, str, str, float]:
    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except BaseException as e:  # noqa: BLE001 - counted as "anything else"
            rc = f"raised {type(e).__name__}: {e}"
    return rc, out.getvalue(), err.getvalue(), time.perf_counter() - t0


def verdict(rc, out: str, err: str, seconds: float, limit: float) -> str | None:
    """None for a clean error, else what is wrong."""
    lines = err.splitlines()
    if rc != 2:
        return f"exit {rc!r}"
    if len(lines) != 1:
        return f"{len(lines)} stderr lines: {err[:300]!r}"
    if not lines[0].startswith("costmodel: error: ") or "Traceback" in err:
        return f"stderr {lines[0][:200]!r}"
    if "internal error" in lines[0]:
        return f"not a clean error: {lines[0][:300]!r}"
    if out:
        return f"stdout {out[:200]!r}"
    if seconds > limit:
        return f"took {seconds:.1f} s"
    return None


def run_suite(name: str, cases: list[tuple[str, list[str]]]) -> None:
    clean, other = 0, []
    for label, argv in cases:
        problem = verdict(*attempt(argv), limit=IN_PROCESS_LIMIT_S)
        if problem is None:
            clean += 1
        else:
            shown = " ".join(a if len(a) < 80 else a[:40] + "…" for a in argv)
            other.append(f"{label}: costmodel {shown} → {problem}")
    print(f"\nhostile CLI suite, {name}: {len(cases)} inputs tried, {clean} clean one-line "
          f"errors, {len(other)} anything else")
    assert not other, "\n".join(other)


# --------------------------------------------------------------------------- the tests

def test_bad_numbers_on_every_numeric_option(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)             # nothing may be written, but if so, not in the repo
    cases = [(" ".join(argv[:2]), argv) for argv in numeric_cases()]
    assert len(cases) > 2000
    run_suite("malformed numbers", cases)
    assert list(tmp_path.iterdir()) == []


def test_malformed_command_lines(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    run_suite("malformed command lines", [(argv[0] if argv else "", argv) for argv in MALFORMED])
    assert list(tmp_path.iterdir()) == []


def test_broken_files(tmp_path):
    cases = list(file_cases(tmp_path))
    assert len(cases) > 1000
    run_suite("broken files", cases)


def test_broken_hardware_files_through_validate(tmp_path):
    (tmp_path / "m.csv").write_text("point_id,time_s\n")
    rc, _, err, _ = attempt(["validate", "-m", str(tmp_path / "m.csv"), "-H", "x.json", "-o",
                             str(tmp_path / "out")])
    if "internal error (ModuleNotFoundError" in err:
        pytest.skip(f"the validate command cannot import its modules here: {err.strip()}")
    cases = list(file_cases(tmp_path, validate=True))
    run_suite("broken hardware files through validate", cases)
    assert not (tmp_path / "out").exists()


SUBPROCESS_CASES = [
    ["analyze", "-m", "gpt2", "--hardware", "{deep}"],
    ["kv", "--config", "{huge_layers}", "-c", "8"],
    ["sweep", "-m", "llama3-8b", "--batch", "99999999999999999999999"],
    ["specdec", "--gamma", "1000000"],
    ["batch", "-m", "llama3-8b", "--weight-bytes", "1e300"],
    ["kv", "-m", "llama3-8b", "-c", "8", "--kv-bytes", "1e308"],
    ["bench", "sweep", "--loop-points", "0"],
    ["analyze", "-m", "gpt2", "--bogus"],
    ["--format", "json", "analyze", "-m", "gpt2", "--hardware", "{not_utf8}"],
    ["bench", "kv", "--format", "json"],    # the reference benchmark's own parser refuses it
]


def test_in_a_real_process(tmp_path):
    files = {"deep": tmp_path / "deep.json", "huge_layers": tmp_path / "config.json",
             "not_utf8": tmp_path / "latin.json"}
    files["deep"].write_text("[" * 100_000)
    files["huge_layers"].write_text(json.dumps({**_llama_base(), "num_hidden_layers": 10**20}))
    files["not_utf8"].write_bytes(b"\xff\xfe{")
    clean, other = 0, []
    for argv in SUBPROCESS_CASES:
        argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "costmodel", *argv], capture_output=True,
                              text=True, timeout=60, cwd=ROOT)
        problem = verdict(proc.returncode, proc.stdout, proc.stderr, time.perf_counter() - t0,
                          limit=10.0)
        if problem is None:
            clean += 1
        else:
            other.append(f"costmodel {' '.join(argv)} → {problem}")
    print(f"\nhostile CLI suite, real processes: {len(SUBPROCESS_CASES)} inputs tried, {clean} "
          f"clean one-line errors, {len(other)} anything else")
    assert not other, "\n".join(other)


@pytest.mark.parametrize("argv", [
    ["kv", "-m", "llama3-8b", "-c", str(2**53), "-b", str(2**53), "--kv-bytes", "8"],
    ["analyze", "-m", "llama3-70b", "--context", str(2**52), "--batch", str(2**53),
     "--generate", str(2**52), "--tp", "8"],
    ["analyze", "-m", "gpt2", "--phase", "verify", "--gamma", "1024", "--context", str(2**53)],
    ["analyze", "-m", "gpt2", "--phase", "chunk", "--chunk", str(2**53)],
    ["specdec", "--alpha", "0.999999", "--cost-ratio", "1e-300", "--gamma", "1024"],
    ["specdec", "--alpha", "0.99", "--gamma", *[str(g) for g in range(1, 1001)]],
    ["sweep", "-m", "llama3-70b", "--batch", str(2**53), "--context", str(2**53), "--tp", "8"],
    ["batch", "-m", "llama3-8b", "--contexts", str(2**53), "--memory-bytes", str(2**60),
     "--reserved-gib", str(2**30)],
    ["ai", "--n", str(2**53), "--batch", str(2**53), "--d", str(2**31 - 1), "--bytes", "8"],
    ["analyze", "-m", "deepseek-v3", "--tp", "8", "--ep", "256", "--context", str(2**52),
     "--batch", str(2**53), "--generate", str(2**52), "--engine", "eager", "--quant", "nvfp4"],
    ["sweep", "-m", "gpt-oss-20b", "--batch", str(2**53), "--context", str(2**53), "--ep", "32",
     "--experts", "all", "--expert-quant", "int4-g8"],
    ["kv", "-m", "gemma3-27b", "-c", str(2**53), "-b", str(2**53)],
    ["batch", "-m", "deepseek-v3", "--contexts", str(2**53), "--ep", "256", "--tp", "1",
     "--mla", "expanded"],
])
def test_valid_but_extreme_inputs_answer_quickly_and_finitely(argv):
    rc, out, err, seconds = attempt(["--format", "json", *argv])
    assert rc == 0, err
    assert err == ""
    assert seconds < 5, f"{seconds:.1f} s"

    def refuse(name: str):
        raise AssertionError(f"{name} in the output")

    data = json.loads(out, parse_constant=refuse)
    rows = data if isinstance(data, list) else [r for v in data.values() for r in v]
    for row in rows:
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in (
                    "intensity",):
                assert value >= 0, (key, value)
