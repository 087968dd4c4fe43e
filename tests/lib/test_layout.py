"""The layout's rules (docs/architecture.md), checked on the source: no import cycles anywhere, no
import from a higher layer (inside functions too), the libraries never import the pipeline or each
other, no two modules share a file name unless their docstrings say why, long modules and long
functions say why they are long, and the wheel installs every package."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import tomllib

from tests.conftest import ROOT

PACKAGES = ("modelkit", "distill", "export", "quantize", "pipelines", "distillery")
LIBRARIES = ("modelkit", "distill", "export", "quantize")
LONG = 300  # lines; a longer module says in its docstring why it reads better whole
LONG_FUNCTION = 80  # lines; a longer function says in its docstring why it reads better whole

# The layers, lowest first (docs/architecture.md, "Who imports whom"): a module imports its own
# layer and the layers below it, never one above, inside a function included. A module belongs to
# the layer of the longest name here that is it or its package; `pipelines` alone is the package
# itself, so a new package under pipelines must be placed here before its test passes.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("modelkit",),  # what the libraries share
    ("distill", "export", "quantize"),  # the libraries (never each other: a test below)
    ("pipelines.core",),  # recipe, run folders, errors, StageContext
    ("pipelines.data", "pipelines.train"),  # data and training machinery of every stage
    (  # stage helpers, each package named for its stage (multitask: the transfer variants)
        "pipelines.teacher",
        "pipelines.search",
        "pipelines.distillation",
        "pipelines.multitask",
        "pipelines.bench",
        "pipelines.report",
        "pipelines.bundle",
    ),
    ("pipelines.stages",),  # one module per stage: main(ctx) -> StageResult
    ("pipelines.run",),  # runner, registry, hashing, preflight
    ("pipelines.cli", "pipelines.__main__", "pipelines", "distillery"),  # the entry points
)

# Functions over LONG_FUNCTION lines that another helper of issue #27 splits on its branch
# (value: whose area); the lead shrinks this as those merge. An entry that is no longer long fails.
LONG_FUNCTIONS_BEING_SPLIT: dict[str, str] = {}


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


def layer_of(module: str) -> int | None:
    """The index in LAYERS of `module`'s layer, or None when no entry covers it."""
    best, found = -1, None
    for index, names in enumerate(LAYERS):
        for name in names:
            covers = module == name or (name != "pipelines" and module.startswith(name + "."))
            if covers and len(name) > best:
                best, found = len(name), index
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """'a -> b' for each import of a module from a higher layer than the importer's."""
    return [
        f"{name} (layer {layer_of(name)}) -> {target} (layer {layer_of(target)})"
        for name, edges in sorted(graph.items())
        for target in sorted(edges)
        if layer_of(target) > layer_of(name)
    ]


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


def test_every_module_has_a_layer():
    unplaced = sorted(name for name in import_graph(ROOT) if layer_of(name) is None)
    assert unplaced == [], f"add these to LAYERS in tests/test_layout.py: {unplaced}"


def test_no_import_from_a_higher_layer():
    assert upward_imports(import_graph(ROOT)) == []


def test_the_layer_check_catches_a_lazy_upward_import(tmp_path):
    """A function of pipelines.core importing a stage helper is an upward import, as the old
    `core/context.py` importing pipelines.data inside a function was; the other way is fine."""
    pkg = tmp_path / "pipelines"
    for sub in ("core", "search"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "context.py").write_text(
        "def data():\n    from pipelines.search import space\n"
    )
    (pkg / "search" / "space.py").write_text("import os\n")
    graph = import_graph(tmp_path, ("pipelines",))
    assert upward_imports(graph) == [  # `from pipelines.search import space`: both count
        "pipelines.core.context (layer 2) -> pipelines.search (layer 4)",
        "pipelines.core.context (layer 2) -> pipelines.search.space (layer 4)",
    ]
    (pkg / "core" / "context.py").write_text("import os\n")
    (pkg / "search" / "space.py").write_text("from pipelines.core import context\n")
    assert upward_imports(import_graph(tmp_path, ("pipelines",))) == []


def test_no_test_module_imports_another():
    """Shared helpers and constants live in tests/conftest.py (and tests/families.py, the tiny
    models of every family); a test module importing another (inside a function too) ties one
    module's tests to another's helpers."""
    graph = import_graph(ROOT, ("tests",))
    assert "tests.conftest" in graph  # the tests were read
    found = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if target.rpartition(".")[2].startswith("test_")
    ]
    assert found == []


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


def test_every_stage_and_variant_module_has_a_main():
    """The registry's module strings name real modules (a rename that misses one fails here), and
    a transfer recipe runs the teacher and distill stages' multitask variants, nothing else."""
    from pipelines.core.config import load_recipe
    from pipelines.run.registry import STAGES

    for stage in STAGES.values():
        for module in (stage.module, *(v.module for v in stage.variants)):
            assert callable(importlib.import_module(module).main), module
    plain = load_recipe(ROOT / "recipes" / "demo.yaml")
    transfer = load_recipe(ROOT / "recipes" / "demo-transfer.yaml")
    assert {n: s.module_for(plain) for n, s in STAGES.items()} == {
        n: f"pipelines.stages.{n}" for n in STAGES
    }
    assert {n: s.module_for(transfer) for n, s in STAGES.items() if s.variants} == {
        "teacher": "pipelines.multitask.teacher_variant",
        "distill": "pipelines.multitask.distill_variant",
    }


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


def project_modules() -> list[Path]:
    """Every module of the project but package __init__/__main__ files and shipped scripts."""
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name not in ("__init__.py", "__main__.py") and "files" not in path.parts
    ]


def test_no_two_modules_share_a_file_name_unless_their_docstrings_say_why():
    """Two modules of one name are the same idea at two layers (e.g. modelkit.errors and
    pipelines.core.errors), and each one's docstring names the other; otherwise one is renamed."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in project_modules():
        by_name[path.name].append(path)
    unexplained = []
    for paths in by_name.values():
        for path in paths:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            for other in paths:
                dotted = module_name(other, ROOT)
                slashed = str(other.relative_to(ROOT))
                if other != path and dotted not in doc and slashed not in doc:
                    unexplained.append(f"{path.relative_to(ROOT)} does not name {dotted}")
    assert unexplained == []


def long_functions() -> dict[str, int]:
    """{'path:function': lines} of every function over LONG_FUNCTION lines whose docstring does
    not say 'Why one function'."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                lines = node.end_lineno - node.lineno + 1
                if lines > LONG_FUNCTION and "Why one function" not in (
                    ast.get_docstring(node) or ""
                ):
                    found[f"{path.relative_to(ROOT)}:{node.name}"] = lines
    return found


def test_long_functions_say_why():
    """A function over LONG_FUNCTION lines says in its docstring why it reads better whole
    ('Why one function: ...'), or is split; LONG_FUNCTIONS_BEING_SPLIT lists those another
    branch is splitting, and an entry that is no longer long must leave the list."""
    found = long_functions()
    unlisted = {k: v for k, v in found.items() if k not in LONG_FUNCTIONS_BEING_SPLIT}
    assert unlisted == {}, "split these, or say 'Why one function' in their docstrings"
    assert sorted(set(LONG_FUNCTIONS_BEING_SPLIT) - set(found)) == []


def test_the_wheel_installs_every_package(tmp_path):
    """Nothing is importable only because the working directory is the repository: pyproject's
    `packages.find` include list names exactly the top-level packages of the tree, every folder
    of modules is a package (or package data), and a fresh interpreter started elsewhere imports
    every package from a copy laid out as the wheel installs it."""
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    include = config["packages"]["find"]["include"]
    top = sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())
    assert sorted(set(top) - {"tests"}) == sorted(PACKAGES)
    assert [t for t in PACKAGES if not any(fnmatch.fnmatch(t, i) for i in include)] == []
    assert [i for i in include if not any(fnmatch.fnmatch(t, i) for t in PACKAGES)] == []
    packages = find_packages(str(ROOT), include=include)
    data = {
        ROOT.joinpath(*package.split("."), pattern.split("/")[0])
        for package, patterns in config.get("package-data", {}).items()
        for pattern in patterns
    }
    folders = {p.parent for t in PACKAGES for p in (ROOT / t).rglob("*.py")}
    not_packaged = sorted(
        str(f.relative_to(ROOT))
        for f in folders
        if ".".join(f.relative_to(ROOT).parts) not in packages and f not in data
    )
    assert not_packaged == [], "add an __init__.py (or a package-data entry)"

    site = tmp_path / "site"  # what the wheel puts in site-packages: the packages' own files
    for package in packages:
        source = ROOT.joinpath(*package.split("."))
        target = site.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for path in source.glob("*.py"):
            shutil.copy2(path, target / path.name)
    for folder in data:
        shutil.copytree(folder, site / folder.relative_to(ROOT))
    code = (
        "import importlib, importlib.resources, sys\n"
        f"for name in {packages!r}:\n"
        "    module = importlib.import_module(name)\n"
        f"    assert module.__file__.startswith({str(site)!r}), module.__file__\n"
        "predict = importlib.resources.files('pipelines.bundle') / 'files' / 'predict.py'\n"
        "assert predict.is_file()\n"
        "print(len(sys.argv))\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=elsewhere,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
