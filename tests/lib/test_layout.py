"""The layout's rules (docs/architecture.md), checked on the source: no import cycles anywhere, the
libraries never import the pipeline, and long modules say why they are long."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("modelkit", "distill", "export", "quantize", "pipelines", "distillery")
LIBRARIES = ("modelkit", "distill", "export", "quantize")
LONG = 300  # lines; a longer module says in its docstring why it reads better whole


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """{module: modules of `packages` it imports}, every import statement counted (also those
    inside functions: a cycle through a lazy import is still a cycle)."""
    files = [p for pkg in packages for p in (root / pkg).rglob("*.py") if "files" not in p.parts]
    modules = {module_name(p, root): p for p in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    package = package[: len(package) - node.level + 1]
                    base = ".".join([*package, base] if base else package)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    edges.add(target)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph = import_graph(ROOT)
    assert len(graph) > 60  # every module was read
    assert cycles(graph) == []


def test_the_cycle_check_catches_a_cycle(tmp_path):
    """The check above would fail on a cycle: two modules of a package importing each other,
    one of them only inside a function, as the old stages.py / stage modules did."""
    pkg = tmp_path / "pipelines"
    (pkg / "stages").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "stages" / "__init__.py").write_text("")
    (pkg / "stages" / "runner.py").write_text(
        "def run():\n    from pipelines.stages.teacher import main\n    return main\n"
    )
    (pkg / "stages" / "teacher.py").write_text("from pipelines.stages.runner import run\n")
    (pkg / "core.py").write_text("import os\n")
    graph = import_graph(tmp_path, ("pipelines",))
    assert cycles(graph) == [["pipelines.stages.runner", "pipelines.stages.teacher"]]
    (pkg / "stages" / "teacher.py").write_text("from pipelines import core\n")
    assert cycles(import_graph(tmp_path, ("pipelines",))) == []


def test_libraries_never_import_the_pipeline_or_each_other():
    graph = import_graph(ROOT)
    for name, edges in graph.items():
        top = name.split(".")[0]
        if top not in LIBRARIES:
            continue
        allowed = {top, "modelkit"}
        foreign = sorted(e for e in edges if e.split(".")[0] not in allowed)
        assert foreign == [], f"{name} imports {foreign}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_imports(package):
    for path in sorted((ROOT / package).rglob("*.py")):
        if "files" in path.parts or path.name == "__main__.py":  # scripts: they run on import
            continue
        importlib.import_module(module_name(path, ROOT))


def test_validating_a_recipe_loads_no_backend():
    """Recipe names are checked against the registries, and none of them needs torch or ORT."""
    code = (
        "import sys; from pipelines.core.config import load_recipe; "
        "load_recipe('recipes/sst2-minilm.yaml'); "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'transformers') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_long_modules_say_why():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = len(path.read_text().splitlines())
            if lines > LONG:
                doc = ast.get_docstring(ast.parse(path.read_text())) or ""
                assert "Why one module" in doc, f"{path} has {lines} lines and no 'Why one module'"
