"""The ``costmodel`` command line (``costmodel.cli``): the summary, the command listing, one-line
errors with exit 2 for every kind of bad input, ``--format`` on every command, and a real
subprocess. The helpers here (run, run_json, run_csv, fail, table_row) serve the other
test_cli_* modules."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from costmodel.cli import COMMANDS, LISTING, load_commands, main

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv: str) -> str:
    """Run a command that must succeed; its stdout (stderr must be empty)."""
    assert main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def strict_json(text: str):
    """Parse JSON, refusing NaN and ±Infinity (not JSON, though Python's json writes them)."""
    def refuse(name: str):
        raise AssertionError(f"{name} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def run_json(capsys, *argv: str):
    return strict_json(run(capsys, "--format", "json", *argv))


def run_csv(capsys, *argv: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(run(capsys, "--format", "csv", *argv))))


def table_row(out: str, *first: str) -> list[str]:
    """The table line whose first cells are ``first``, split on whitespace."""
    for line in out.splitlines():
        cells = line.split()
        if cells[: len(first)] == list(first):
            return cells
    raise AssertionError(f"no row starting {first} in:\n{out}")


def fail(capsys, *argv: str) -> str:
    """Run a command that must fail on bad input: exit 2, nothing on stdout, one line on
    stderr."""
    assert main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("costmodel: error: ")
    assert "Traceback" not in err
    return lines[0]


def cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m costmodel ARGV`` in a real process from the repository root."""
    return subprocess.run([sys.executable, "-m", "costmodel", *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


# --- no subcommand -----------------------------------------------------------------------

def test_summary(capsys):
    out = run(capsys)
    # Llama-3-8B on an A100-80GB: 8,030,261,248 parameters (Hugging Face's count);
    # KV per request at 1024 = 2·32·8·128·2·1024 = 134,217,728 bytes = 0.125 GiB;
    # max batch ⌊(85,899,345,920 − 16,060,522,496) / 134,217,728⌋ = 520
    assert "llama3-8b" in out and "a100-80gb" in out
    assert "8,030,261,248" in out
    assert "134,217,728" in out and "0.125 GiB" in out
    assert table_row(out, "max", "batch")[-1] == "520"
    for name in ("presets", "params", "kv", "batch"):
        assert f"  {name} " in out


def test_summary_as_json(capsys):
    rows = {r["quantity"]: r["value"] for r in run_json(capsys)}
    assert rows["parameters"] == 8_030_261_248          # Hugging Face's count
    assert rows["max_batch@1024 tp1"] == 520            # as in test_summary


def test_a_query_imports_its_command_module_alone():
    # `kv` lives in cli.memory: the roofline, benchmark and validation commands stay unloaded
    code = ("import sys; from costmodel.cli import main; main(['kv', '-m', 'gpt2', '-c', '8']);"
            "print(sorted(m for m in sys.modules if m.startswith('costmodel.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.splitlines()[-1]
    assert "costmodel.cli.memory" in out
    for other in ("roofline", "bench", "validation"):
        assert f"costmodel.cli.{other}'" not in out


def test_registry_lists_the_commands():
    load_commands()
    assert list(COMMANDS)[:4] == ["presets", "params", "kv", "batch"]
    listed = [c for c in LISTING if c in COMMANDS]
    assert list(COMMANDS) == listed + [c for c in COMMANDS if c not in LISTING]
    for cmd in COMMANDS.values():
        assert cmd.help and callable(cmd.add_arguments) and callable(cmd.run)


def test_help_exits_0(capsys):
    assert main(["kv", "--help"]) == 0
    assert "--context" in capsys.readouterr().out


# --- one-line errors, exit 2 -------------------------------------------------------------

@pytest.mark.parametrize(("argv", "needle"), [
    (["no-such-command"], "invalid choice"),
    (["batch", "--model", "llama3-8b", "--contexts", "abc"], "not a number"),
    (["kv", "--model", "llama3-8b", "--context", "0"], "positive integer"),
    (["kv", "--model", "llama3-8b"], "--context"),                 # required
    (["params"], "--model"),                                        # --model or --config
    (["params", "--model", "gpt2", "--config", "x.json"], "not allowed with"),
    (["batch", "-m", "gpt2", "--hardware", "t4", "--memory-gib", "16"], "not allowed with"),
    (["batch", "-m", "gpt2", "--memory-gib", "-1"], "--memory-gib"),
    (["batch", "-m", "gpt2", "--memory-gib", "nan"], "--memory-gib"),
    (["--format", "xml", "presets"], "invalid choice"),
    (["kv", "-m", "gpt2", "-c", "8", "--bogus"], "unrecognized arguments"),
    (["analyze", "-m", "gpt2", "--phase", "no-cache"], "invalid choice"),
])
def test_usage_errors_are_one_line_exit_2(capsys, argv, needle):
    assert needle in fail(capsys, *argv)


def test_subcommand_errors_name_the_command(capsys):
    assert fail(capsys, "kv", "-m", "gpt2", "-c", "x").startswith("costmodel: error: kv: ")


def test_unexpected_exception_is_one_line(capsys, monkeypatch):
    def boom(args):
        raise RecursionError("maximum recursion depth exceeded")

    load_commands("kv")
    monkeypatch.setitem(COMMANDS, "kv", dataclasses.replace(COMMANDS["kv"], run=boom))
    line = fail(capsys, "kv", "-m", "gpt2", "-c", "8")
    assert line == ("costmodel: error: internal error (RecursionError: maximum recursion depth "
                    "exceeded)")


def test_long_error_is_cut(capsys):
    line = fail(capsys, "params", "--config", "x" * 5000 + ".json")
    assert len(line) <= len("costmodel: error: ") + 1000


def test_presets_engines_lists_every_profile_of_the_csv(capsys):
    """Every row of costmodel/data/engines.csv (read here with the csv module) is listed, with
    its per-layer overhead in µs as the file gives it."""
    with files("costmodel.data").joinpath("engines.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    listed = {r["name"]: r for r in run_json(capsys, "presets", "engines")}
    assert set(listed) == {r["name"] for r in rows} >= {"ideal", "tuned", "llama.cpp", "eager"}
    for r in rows:
        assert listed[r["name"]]["source"] == r["source"]
        if float(r["layer_overhead_us"]):
            assert f"{float(r['layer_overhead_us']):.3g} µs per layer per pass" in \
                listed[r["name"]]["applies"]


# --- --format for every command ----------------------------------------------------------

FORMAT_CASES = [
    ["presets"],                                                     # three tables
    ["presets", "models"],
    ["presets", "engines"],
    ["params", "-m", "gpt2"],
    ["kv", "-m", "gpt2", "-c", "1024"],
    ["batch", "-m", "gpt2", "--contexts", "1024"],
    ["analyze", "-m", "gpt2", "--tp", "2"],
    ["analyze", "-m", "gpt2", "--generate", "8"],                    # two tables
    ["ai", "--n", "512", "1024"],
    ["specdec", "--cost-ratio", "0.1"],
    ["specdec", "--gamma", "1", "2"],
    ["sweep", "-m", "gpt2", "--batch", "1", "2"],
    [],                                                              # the summary
]


@pytest.mark.parametrize("argv", FORMAT_CASES, ids=lambda a: " ".join(a) or "summary")
def test_json_and_csv_for_every_command(capsys, argv):
    data = run_json(capsys, *argv)
    table = run_csv(capsys, *argv)
    if isinstance(data, dict):                  # several tables: {name: rows}
        assert len(data) >= 2
        assert list(table[0])[0] == "table"
        assert {r["table"] for r in table} == set(data)
        assert len(table) == sum(len(rows) for rows in data.values())
    else:
        assert isinstance(data, list) and data
        assert len(table) == len(data)
        assert list(table[0]) == list(data[0])
    for cell in (v for row in table for v in row.values()):
        assert cell not in ("nan", "inf", "-inf", "NaN")


def test_format_after_the_command(capsys):
    rows = json.loads(run(capsys, "batch", "-m", "llama3-8b", "--contexts", "1024", "--tp",
                          "1", "--format", "json"))
    assert rows[0]["max_batch"] == 520                  # as in test_summary


def test_abbreviated_global_option(capsys):
    rows = json.loads(run(capsys, "--form", "json", "kv", "-m", "gpt2", "-c", "8"))
    assert rows[0]["bytes"] == 36_864               # 2 · 12 layers · 768 · 2 bytes


def test_format_after_the_command_wins(capsys):
    out = run(capsys, "--format", "csv", "kv", "-m", "gpt2", "-c", "8", "-f", "json")
    assert isinstance(json.loads(out), list)


# --- a real process ----------------------------------------------------------------------

def test_subprocess_error_has_no_traceback():
    proc = cli("kv", "--model", "llama3-8", "--context", "1024")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [proc.stderr.strip()]  # exactly one line
    assert proc.stderr.startswith("costmodel: error: model: unknown preset 'llama3-8'")
    assert "did you mean 'llama3-8b'" in proc.stderr


def test_subprocess_usage_error_is_one_line():
    proc = cli("kv", "--model", "llama3-8b")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "costmodel: error: kv: the following arguments are required: --context/-c"]


def test_subprocess_success():
    proc = cli("--format", "json", "kv", "-m", "gpt2", "-c", "1024")
    assert proc.returncode == 0, proc.stderr
    # GPT-2: 2 · 12 layers · 768 · 2 bytes = 36,864 bytes per token; × 1024 = 37,748,736
    assert json.loads(proc.stdout)[1]["bytes"] == 37_748_736


@pytest.mark.parametrize("argv", [
    ["kv", "--model", "llama3-8b", "--context", "4096"],
    ["analyze", "--model", "llama3-8b", "--context", "4096"],
    ["batch", "--model", "llama3-8b"],
    ["params", "--model", "llama3-8b"],
])
def test_queries_do_not_import_pandas_or_matplotlib(argv):
    code = ("import sys, io, contextlib\nfrom costmodel.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    assert main({argv!r}) == 0\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'matplotlib'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
