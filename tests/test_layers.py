"""The floor plan holds: each stage package imports only the stages below it, and no module of ggo
takes part in an import cycle. Every import counts, those inside functions included (a cycle
hidden in a function-level import is still a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ggo"

#: The stages, bottom up, with what each may import besides itself and the package face (``ggo``).
#: The same table, with a line per stage, opens ggo/__init__.py.
ALLOWED: dict[str, set[str]] = {
    "core": set(),  # config.py, paths.py, heads.py: the schema, where things live, the heads
    "runtime": {"core"},  # how this process runs: backend, threads, signals
    "tracking": {"core"},  # the only stage that talks to MLflow's client
    "data": {"core"},  # reading, placement, preprocessing, splits, cache
    "models": {"core"},  # generators and discriminators
    "evaluation": {"core", "data", "tracking"},  # predict -> postprocess -> score, statistics, pictures
    "serving": {"core", "data", "models", "evaluation"},  # the shipped MLflow model
    "training": {"core", "runtime", "tracking", "data", "models", "evaluation", "serving"},  # the GAN, one run
    "sweeps": {"core", "runtime", "tracking", "data", "evaluation", "serving"},  # parent runs, summaries, CV
    "ship": {"core", "tracking", "data", "evaluation", "serving", "sweeps"},  # promote, predict
    "bench": {"core", "runtime", "tracking", "data", "models", "evaluation", "serving", "training"},
    "entry": {"core", "runtime", "tracking", "data", "models", "evaluation", "serving", "training", "sweeps", "ship", "bench"},
}
CORE = {"config", "paths", "heads"}  # ggo/config/ is a package of the core
#: Top-level modules that are commands: ``__main__`` (``python -m ggo COMMAND``, the front door
#: that dispatches to every command), ``train`` (the Hydra entry point) and the thin
#: ``python -m ggo.X`` shims over modules that live in a stage package.
ENTRY = {"__main__", "train", "promote", "predict", "compare", "join", "runs", "report"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def stage(module: str) -> str:
    """The stage a module of ggo belongs to ('face' for the package's own ``__init__``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "face"
    if parts[1] in CORE:
        return "core"
    if len(parts) == 2 and parts[1] in ENTRY:
        return "entry"
    return parts[1]


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every module of ggo that ``path`` imports, at any depth of its code."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ggo")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ggo":
                continue
            for alias in node.names:  # `from ggo.x import y` imports the module ggo.x.y when there is one
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
    return {m for m in found if m != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: imports_of(path, modules) & modules for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_of_ggo_belongs_to_a_stage_of_the_table(graph: dict[str, set[str]]) -> None:
    unknown = sorted(m for m in graph if stage(m) not in ALLOWED and stage(m) != "face")
    assert unknown == [], f"modules outside every stage of tests/test_layers.py's ALLOWED table: {unknown}"


def test_each_stage_imports_only_the_stages_below_it(graph: dict[str, set[str]]) -> None:
    offences = sorted(
        f"{module} ({stage(module)}) imports {target} ({stage(target)})"
        for module, targets in graph.items()
        for target in targets
        if stage(target) not in {stage(module), "face"} and stage(target) not in ALLOWED.get(stage(module), set())
    )
    assert offences == [], "imports against the layers:\n" + "\n".join(offences)


def test_no_module_of_ggo_is_in_an_import_cycle(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_the_checks_see_function_level_imports_and_cycles() -> None:
    """The checks above would fail on a cycle hidden in a function and on an upward import."""
    source = "def f():\n    from ggo.sweeps.cv import summarize_cv\n"
    tree_imports = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            tree_imports.add(node.module)
    assert tree_imports == {"ggo.sweeps.cv"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert stage("ggo.evaluation.metrics") == "evaluation" and stage("ggo.config") == "core" and stage("ggo.promote") == "entry"
    assert "data" not in ALLOWED["models"] and "training" not in ALLOWED["serving"]


def test_the_keras_tuner_plugin_does_not_import_ggo() -> None:
    """The sweeper plugin is a Hydra plugin of its own: it drives ``ggo.train`` only by the task
    Hydra hands it, so it installs and loads without ggo's stages."""
    plugin = ROOT / "hydra_plugins"
    offenders = [str(p.relative_to(ROOT)) for p in plugin.rglob("*.py") if imports_of(p, set()) - {""}]
    assert offenders == []
