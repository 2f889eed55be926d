"""The packages' layers: every import of one of our modules points down, never up or sideways,
so there is no import cycle; and imports inside functions only where a module is optional.

The layers, top to bottom (a module may import only modules of lower layers):

    microlm_app                     the desktop app (its own layers below)
    microlm.cli                     the `microlm` command (a package: a module per command;
                                    its modules may import each other)
    microlm.examples                demos of the public API: they import `from microlm` only
    microlm (the package's facade)  what `from microlm import ...` offers
    microlm.budget, bench           the one time-budget policy; measuring this machine
    microlm.machine_profile         this machine's probe and speed, remembered across launches
    microlm.recommendation          the recommendation for a time budget
    microlm.recommendation_reasons  its reasons: a plain sentence and the details behind it
    microlm.presets                 presets, estimates of speed, time and memory
    microlm.calibration             timing this machine's training steps
    microlm.speed, thread_watch     the cost model; the thread count while training runs
    microlm.neurons, stepwise, surprise  explaining the network (over inspection)
    microlm.trainer, inspection, prepared
    microlm.run                     the books of a training run: its plan, clock and records
    microlm.generator, checkpoint, distributed, schedule, precision
    microlm.hardware, config, data, events, evaluation, kept_weights
    microlm.model, tokenizer, units, naming, thread_choice, remembered
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYERS: list[set[str]] = [
    {"microlm_app.__main__", "microlm_app"},
    {"microlm_app.screenshots"},
    {"microlm_app.main_window"},
    {"microlm_app.tabs"},
    {"microlm_app.loss_panel"},
    {"microlm_app.loss_plot", "microlm_app.workers", "microlm_app.help"},
    {"microlm_app.session", "microlm_app.launch_checks", "microlm_app.loss_words"},
    {"microlm.__main__"},
    {"microlm.cli"},
    {"microlm.examples"},
    {"microlm"},
    {"microlm.budget", "microlm.bench", "microlm.machine_profile"},
    {"microlm.recommendation"},
    {"microlm.recommendation_reasons"},
    {"microlm.presets"},
    {"microlm.calibration"},
    {"microlm.speed", "microlm.thread_watch"},
    {"microlm.neurons", "microlm.stepwise", "microlm.surprise"},
    {"microlm.trainer", "microlm.inspection", "microlm.prepared"},
    {"microlm.run"},
    {"microlm.generator", "microlm.checkpoint", "microlm.distributed", "microlm.schedule",
     "microlm.precision"},
    {"microlm.hardware", "microlm.config", "microlm.data", "microlm.events",
     "microlm.evaluation", "microlm.kept_weights"},
    {"microlm.model", "microlm.tokenizer", "microlm.units", "microlm.naming",
     "microlm.thread_choice", "microlm.remembered"},
]

# Imports inside a function are for what is truly optional: a module that must not load
# before it is needed (the app's window and Qt, after the launch checks have run).
FUNCTION_LEVEL_ALLOWED = {
    "microlm_app.__main__": {"microlm_app.screenshots", "microlm_app.main_window", "microlm"},
    "microlm_app": {"microlm_app.main_window"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    """The index of the layer holding `module` (a module inside a listed subpackage, such as
    microlm_app.tabs, belongs to its layer); None for a module no layer names."""
    best: tuple[int, int] | None = None  # (length of the matched name, layer)
    for index, members in enumerate(LAYERS):
        for member in members:
            if module == member or ("." in member and module.startswith(member + ".")):
                if best is None or len(member) > best[0]:
                    best = (len(member), index)
    return None if best is None else best[1]


def imports_in(source: str, module: str, is_package: bool) -> list[tuple[str, bool, int]]:
    """(imported module, inside a function?, line) for every import of microlm or
    microlm_app in `source`, relative imports resolved; `from . import x` names module x."""
    package = module if is_package else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                found.extend((alias.name, in_function, child.lineno) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = package.split(".")
                    base = parts[:len(parts) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                names = [f"{target}.{alias.name}" for alias in child.names]
                modules = [name for name in names if is_module(name)]
                found.extend((name, in_function, child.lineno) for name in modules or [target])
            visit(child, nested)

    visit(ast.parse(source), False)
    return [(name, inside, line) for name, inside, line in found
            if name.split(".")[0] in ("microlm", "microlm_app")]


def is_module(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").exists() or path.is_dir()


def our_imports(path: Path) -> list[tuple[str, bool, int]]:
    return imports_in(path.read_text(encoding="utf-8"), module_name(path),
                      path.name == "__init__.py")


def against_the_layers(module: str, imports: list[tuple[str, bool, int]]) -> list[str]:
    """The imports that point up or sideways. Modules inside one subpackage of a layer (the
    app's tabs) may import each other; test_no_import_cycle keeps those acyclic."""
    own = layer_of(module)
    return [f"line {line}: {name}" for name, _, line in imports
            if layer_of(name) is not None and layer_of(name) <= own
            and not name.startswith(module + ".") and name != module
            and not same_subpackage(module, name)]


def same_subpackage(first: str, second: str) -> bool:
    """Both inside one subpackage named in LAYERS (such as microlm_app.tabs)."""
    return any("." in member and first.startswith(member + ".")
               and second.startswith(member + ".")
               for members in LAYERS for member in members)


SOURCES = sorted(p for package in ("microlm", "microlm_app")
                 for p in (ROOT / package).rglob("*.py"))


def test_every_module_has_a_layer():
    assert [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None] == []


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_point_down(path):
    module = module_name(path)
    assert against_the_layers(module, our_imports(path)) == [], (
        f"{module} imports a module of its own layer or above")


def test_no_import_cycle():
    graph = {module_name(p): {name for name, _, _ in our_imports(p)} for p in SOURCES}
    state: dict[str, str] = {}  # "open" while its imports are walked, then "done"

    def walk(module: str, trail: list[str]) -> None:
        state[module] = "open"
        for name in sorted(graph.get(module, ())):
            if state.get(name) == "open":
                pytest.fail("import cycle: " + " -> ".join([*trail, module, name]))
            if name in graph and name not in state:
                walk(name, [*trail, module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module, [])


@pytest.mark.parametrize("path", SOURCES, ids=module_name)
def test_imports_inside_functions_only_for_what_is_optional(path):
    module = module_name(path)
    allowed = FUNCTION_LEVEL_ALLOWED.get(module, set())
    assert [f"line {line}: {name}" for name, in_function, line in our_imports(path)
            if in_function and name not in allowed] == []


@pytest.mark.parametrize("module, source, forbidden", [
    ("microlm.trainer", "from .recommendation import recommend\n",
     ["line 1: microlm.recommendation"]),
    ("microlm.model", "import microlm.cli\n", ["line 1: microlm.cli"]),
    ("microlm.generator", "from . import checkpoint\n", ["line 1: microlm.checkpoint"]),
    ("microlm.hardware", "def f():\n    from .speed import MachineSpeed\n",
     ["line 2: microlm.speed"]),
    ("microlm.cli", "from .trainer import ModelTrainer\nfrom . import hardware\n", []),
    ("microlm_app.tabs.train_tab", "from ..loss_plot import LossPlot\n", []),
])
def test_the_check_finds_an_import_against_the_layers(module, source, forbidden):
    assert against_the_layers(module, imports_in(source, module, False)) == forbidden
