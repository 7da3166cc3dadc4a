"""The import graph of the package, read with ast: no cycles, every import goes down the layer
order of docs/ARCHITECTURE.md, imports inside functions only for optional dependencies, and no
module imports the package root (``import costmodel``) from inside the package."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "costmodel"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
#: Optional extras, imported inside the functions that use them: third-party packages, and the
#: reference model (`costmodel.reference`, which needs the `torch` extra).
OPTIONAL = {"torch", "transformers", "streamlit", "playwright", "safetensors",
            "costmodel.reference"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layers() -> list[tuple[int, str]]:
    """(layer, module pattern) rows of the layer table in docs/ARCHITECTURE.md: lines
    ``| 3 | `costmodel.presets` ... |``; a pattern ending in ``.*`` covers a package."""
    rows = []
    for line in ARCHITECTURE.read_text().splitlines():
        m = re.match(r"\|\s*(\d+)\s*\|(.*)\|", line)
        if m:
            for pattern in re.findall(r"`(costmodel[\w.*]*)`", m.group(2)):
                rows.append((int(m.group(1)), pattern))
    return rows


def layer_of(name: str, table: list[tuple[int, str]]) -> int | None:
    best = None
    for layer, pattern in table:
        if pattern.endswith(".*"):
            base = pattern[:-2]
            if name == base or name.startswith(base + "."):
                if best is None or len(base) > best[1]:
                    best = (layer, len(base))
        elif name == pattern and (best is None or len(pattern) >= best[1]):
            best = (layer, len(pattern))
    return None if best is None else best[0]


def _resolve(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) of every import and ``deferred("x")``."""
    tree = ast.parse(path.read_text())
    known = modules()
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                      ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _resolve(child, name, path.name == "__init__.py")
                for a in child.names:   # `from pkg import sub` imports the submodule
                    sub = f"{base}.{a.name}"
                    out.append((sub if sub in known else base, child.lineno, in_function))
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Name)
                  and child.func.id == "deferred" and child.args
                  and isinstance(child.args[0], ast.Constant)):
                out.append((child.args[0].value, child.lineno, in_function))
            visit(child, inner)

    visit(tree, False)
    return out


def internal_edges() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = {n: set() for n in known}
    for name, path in known.items():
        for target, _, _ in imports_of(name, path):
            if target in known and target != name:
                edges[name].add(target)
    return edges


def test_the_layer_table_covers_every_module():
    table = layers()
    assert table, "docs/ARCHITECTURE.md has no layer table"
    missing = [n for n in modules() if layer_of(n, table) is None]
    assert not missing, f"modules without a layer in docs/ARCHITECTURE.md: {missing}"


def test_no_import_cycle():
    edges = internal_edges()
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges[n]):
            if state.get(m) == 1:
                cycle = stack[stack.index(m):] + [m]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if m not in state:
                dfs(m)
        stack.pop()
        state[n] = 2

    for n in sorted(edges):
        if n not in state:
            dfs(n)


def test_imports_go_down_the_layers():
    table = layers()
    bad = []
    for src, targets in internal_edges().items():
        for dst in targets:
            if dst == "costmodel" and src != "costmodel.__main__":
                bad.append(f"{src} imports the package root")
                continue
            ls, ld = layer_of(src, table), layer_of(dst, table)
            if ls is not None and ld is not None and ld > ls:
                bad.append(f"{src} (layer {ls}) imports {dst} (layer {ld})")
    assert not bad, "\n".join(sorted(bad))


def test_imports_inside_functions_only_for_optional_dependencies():
    bad = []
    for name, path in modules().items():
        for target, line, in_function in imports_of(name, path):
            if in_function and not any(target == o or target.startswith(o + ".")
                                       for o in OPTIONAL):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target} inside a function")
    assert not bad, "\n".join(bad)


def test_the_reader_sees_every_kind_of_import(tmp_path):
    # the reader itself, on a hand-written module: top-level, from-, deferred and in-function
    path = tmp_path / "sample.py"
    path.write_text("import numpy\nfrom costmodel import checks\npd = deferred('pandas')\n"
                    "def f():\n    import torch\n    import sympy\n")
    found = imports_of("costmodel.sample", path)
    assert found == [("numpy", 1, False), ("costmodel.checks", 2, False), ("pandas", 3, False),
                     ("torch", 5, True), ("sympy", 6, True)]


def test_a_module_that_needs_an_extra_at_import_is_reached_only_through_an_extra():
    """A module importing an optional extra (streamlit, torch, …) at its top — the app's layout
    modules, the reference model — is imported at the top only by modules that need that extra
    too, so ``import costmodel`` and every CLI command work without the extras."""
    known = modules()
    needs = {name for name, path in known.items()
             if any(not inside and any(t == o or t.startswith(o + ".") for o in OPTIONAL
                                       if not o.startswith("costmodel"))
                    for t, _, inside in imports_of(name, path))}
    assert {"costmodel.app.sidebar", "costmodel.app.pages.memory"} <= needs
    changed = True
    while changed:                         # what imports such a module at its top needs it too
        changed = False
        for name, path in known.items():
            if name not in needs and any(t in needs and not inside
                                         for t, _, inside in imports_of(name, path)):
                needs.add(name)
                changed = True
    core = [n for n in needs if not (n.startswith("costmodel.app.") or
                                     n.startswith("costmodel.reference"))]
    assert not core, f"modules that need an optional extra to import: {sorted(core)}"
    logic = {f"costmodel.app.{n}" for n in ("state", "inputs", "compute", "compute_roofline",
                                             "compute_attention", "compute_speculative",
                                             "compute_formulas", "compute_validation",
                                             "display", "published", "plan")}
    assert logic <= set(known) and not logic & needs   # the app's logic runs without Streamlit
