"""The README stays true: its Python block runs, and every line whose comment starts with a
value gives that value; every command of its command-line block runs and exits 0.

The values in the README are the project's independently checked answers, each held against
its oracle elsewhere: Llama-3-8B's 8,030,261,248 and DeepSeek-V3's 671,026,404,352 parameters
against Hugging Face's own classes (tests/test_architectures.py, tests/fixtures/hf_configs);
134,217,728 = 2 (K, V) × 32 layers × 8 KV heads × 128 × 2 bytes × 1024 tokens; 520 =
⌊(80 GiB − 16,060,522,496) / 134,217,728⌋ (the E0294 text's question, tests/test_cs229s.py);
70,272 = (512 latent + 64 rope) × 61 layers × 2 bytes, DeepSeek's own figure; its 37,552,282,624
active parameters are derived term by term in tests/test_notebooks.py (check_modern); 29 =
⌊(150,754,820,096 B an H200 reports − 671,190,229,157.75 B of fp8-block128 weights / 8) /
(70,272 × 32,768 B per request)⌋ = ⌊29.03⌋ (the latent cache is whole on every TP GPU).
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def claims(code: str) -> list[tuple[str, object]]:
    """(expression, value) for each line ``expr  # VALUE …`` whose comment opens with a literal."""
    out = []
    for line in code.splitlines():
        if "#" not in line:
            continue
        expr, comment = (part.strip() for part in line.split("#", 1))
        head = re.match(r"(\([^)]*\)|[\d_]+)", comment)
        try:
            statement = ast.parse(expr).body
        except SyntaxError:              # a continued line
            continue
        if head and len(statement) == 1 and isinstance(statement[0], ast.Expr):
            out.append((expr, ast.literal_eval(head.group(1))))
    return out


def test_quick_start_is_exactly_two_commands():
    quick = README.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in blocks("bash")[0].splitlines()]
    assert blocks("bash")[0] in quick
    assert [c for c in commands if c] == ["make app", "make test"]


def test_python_block_runs_and_its_values_hold():
    code = blocks("python")[0]
    found = claims(code)
    assert len(found) >= 8, found
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)       # every line runs
    for expr, value in found:
        assert eval(expr, namespace) == value, expr


CLI = [line.split("  #")[0].strip() for line in blocks("bash")[1].splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("line", [c for c in CLI if c and not c.startswith("costmodel bench")])
def test_command_line_examples_run(line, tmp_path):
    argv = shlex.split(line)
    assert argv[0] == "costmodel"
    done = subprocess.run([sys.executable, "-m", "costmodel", *argv[1:]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                               "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
