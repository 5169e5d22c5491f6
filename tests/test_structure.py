"""The library's shape: no import cycles (function-local imports included), names that do not change
under you, and one registry from architecture name to model class."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ilrm"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _resolve(current: str, is_package: bool, module: str | None, level: int) -> str:
    if level == 0:
        return module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_graph() -> dict[str, set[str]]:
    """Explicit imports between ilrm modules, found anywhere in each file (top level, functions,
    TYPE_CHECKING blocks excluded). ``from pkg import name`` counts as an import of ``pkg.name`` when
    that is a module, else of ``pkg``. Implicit imports of parent packages are not edges."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        type_checking = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                type_checking.update(id(n) for n in ast.walk(node))
        for node in ast.walk(tree):
            if id(node) in type_checking:
                continue
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, path.name == "__init__.py", node.module, node.level)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                while t and t not in mods:  # import ilrm.a.b where only ilrm.a is ours
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_graph_sees_function_local_imports():
    """The graph must count imports inside functions, or a hidden cycle would pass."""
    graph = import_graph()
    assert "ilrm.rendering" in graph["ilrm.video"]  # imported lazily inside iter_render_video


def test_no_import_cycles_in_ilrm():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_render_is_the_function_after_any_import():
    """``from ilrm import render`` must be the renderer, whatever submodules were imported first (the
    renderer package is ``ilrm.rendering``, so no submodule import can rebind the name)."""
    code = (
        "import importlib, pkgutil, inspect, ilrm\n"
        "for m in pkgutil.walk_packages(ilrm.__path__, 'ilrm.'):\n"
        "    if m.name.startswith('ilrm.integrations') or m.name == 'ilrm.__main__':\n"
        "        continue\n"
        "    importlib.import_module(m.name)\n"
        "from ilrm import render\n"
        "assert inspect.isfunction(render), type(render)\n"
        "assert list(inspect.signature(render).parameters)[:5] == ['gaussians', 'K', 'c2w', 'height', 'width']\n"
        "assert 'Render Gaussians' in render.__doc__\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_every_ilrm_module_imports():
    for m in pkgutil.walk_packages(importlib.import_module("ilrm").__path__, "ilrm."):
        if m.name.startswith("ilrm.integrations") or m.name == "ilrm.__main__":
            continue  # optional third-party APIs (tested where installed); __main__ runs the CLI
        importlib.import_module(m.name)


def test_one_model_registry():
    from ilrm import ILRMConfig, ILRMInputError
    from ilrm.models import ILRM as RegisteredILRM
    from ilrm.models import MODELS, FullAttentionLRM, build_model

    assert {"ilrm": RegisteredILRM, "full-attention": FullAttentionLRM} == MODELS
    cfg = ILRMConfig.preset("tiny")
    assert type(build_model(cfg)) is RegisteredILRM
    assert type(build_model(cfg.replace(arch="full-attention"))) is FullAttentionLRM
    with pytest.raises(ILRMInputError, match="arch"):
        RegisteredILRM(cfg.replace(arch="full-attention"))
    # nothing outside the registry picks a class by arch
    offenders = [
        str(path.relative_to(ROOT))
        for path in PKG.rglob("*.py")
        if path.parent.name != "models" and ("else FullAttentionLRM" in path.read_text() or "ILRM if " in path.read_text())
    ]
    assert not offenders, offenders
