"""The import graph of lbadmin/: no cycles, and every import points down the layers.

Every .py under lbadmin/ is parsed with ast. Every import counts: at the top of a module,
inside a function, under ``if TYPE_CHECKING:``; relative ones are resolved. ``from package
import name`` is an import of the module package/name.py when there is one, else of the
package's __init__.py.

The layers, top to bottom (LAYERS): a module imports modules of its own layer or of the layers
below it, never of one above.

- entry: what Django, Celery and manage.py call: the URLconf and the views, the management
  commands (beside the views), the middleware, context processors, signal handlers, the menu,
  the app config, and the Celery tasks. lbadmin.tasks imports services only (the tasks are
  thin wrappers around them), and no module imports it but lbadmin.apps, which loads it so
  that its tasks register with lbadmin.services.jobs, through which the services enqueue them.
- forms: validate what a page posts (reading the database to check it, never writing it).
- services: the appliance's operations; they write the database and the audit log, render and
  apply configurations (render, engines). They never import a form, but for the exceptions
  in UPWARD_EXCEPTIONS.
- models: the database (and its migrations). Nothing below imports them.
- domain: lbadmin.wizard (the Lync wizard's answers and plan), lbadmin.allowlists (which values
  are allowed), lbadmin.validators (password rules) and lbadmin.document (the cluster
  configuration as typed models; no Django at all, tests/document/test_package.py): pure
  rules, no database. Used by the
  forms, the services, the views and the management commands; the models may use them too.
- render: configuration text (haproxy.cfg, stunnel, keepalived.conf) from snapshots: pure
  functions, no Django. render may import engines (today only the RuntimeLayout type, where
  the paths it writes into the files come from); engines never import render.
- engines: drive the daemons and the host (subprocesses, files, sockets); no Django, and no
  lbadmin module outside lbadmin.engines.

An import inside a function says why it is not at the top, in a comment on its lines.
"""

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "lbadmin"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "entry",
        (
            "lbadmin.urls",
            "lbadmin.views",
            "lbadmin.management",
            "lbadmin.apps",
            "lbadmin.middleware",
            "lbadmin.context_processors",
            "lbadmin.signals",
            "lbadmin.menu",
            "lbadmin.tasks",
        ),
    ),
    ("forms", ("lbadmin.forms",)),
    ("services", ("lbadmin.services",)),
    ("models", ("lbadmin.models", "lbadmin.migrations")),
    ("domain", ("lbadmin.wizard", "lbadmin.allowlists", "lbadmin.validators", "lbadmin.document")),
    ("render", ("lbadmin.render",)),
    ("engines", ("lbadmin.engines",)),
)

# Third-party packages a layer never imports.
FORBIDDEN_PACKAGES: dict[str, tuple[str, ...]] = {
    "render": ("django",),
    "engines": ("django",),
}

# The only module that imports lbadmin.tasks (see the docstring), and what the tasks import.
TASKS = "lbadmin.tasks"
TASKS_IMPORTED_BY = ("lbadmin.apps",)
TASKS_IMPORT_LAYER = "services"

_TYPED_MODEL = "replaced by the typed configuration model, issue 19 part 1"
# Imports against the layers, each with what ends it. The configuration import path (a
# document imported, synced from the HA master, rolled back) validates each object through
# the WebUI's own forms.
UPWARD_EXCEPTIONS: tuple[tuple[str, str, str], ...] = (
    ("lbadmin.services.config", "lbadmin.forms.l7", _TYPED_MODEL),
    ("lbadmin.services.config", "lbadmin.forms.terminations", _TYPED_MODEL),
    ("lbadmin.services.l4", "lbadmin.forms.l4", _TYPED_MODEL),
    ("lbadmin.services.ha_node", "lbadmin.forms.ha", _TYPED_MODEL),
)


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # an lbadmin module, resolved; any other as written ("django.db")
    where: str  # path:line
    in_function: bool
    commented: bool  # a comment stands on one of the statement's lines


# --- Reading the graph ---------------------------------------------------------------------------


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def parse_imports(
    module: str, source: str, *, is_package: bool, known: Iterable[str], path: str = ""
) -> list[Import]:
    """The imports of one module's source text."""
    known = set(known)
    lines = source.splitlines()
    package = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []

    def add(node: ast.stmt, target: str, in_function: bool) -> None:
        text = lines[node.lineno - 1 : node.end_lineno]
        found.append(
            Import(
                source=module,
                target=target,
                where=f"{path or module}:{node.lineno}",
                in_function=in_function,
                commented=any("#" in line for line in text),
            )
        )

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(child, _resolve(alias.name, known), in_function)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package
                    for _ in range(child.level - 1):
                        base = base.rpartition(".")[0]
                    name = f"{base}.{child.module}" if child.module else base
                else:
                    name = child.module or ""
                for alias in child.names:
                    submodule = f"{name}.{alias.name}"
                    add(
                        child,
                        submodule if submodule in known else _resolve(name, known),
                        in_function,
                    )
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, inside)

    visit(ast.parse(source), False)
    return found


def _resolve(name: str, known: set[str]) -> str:
    """An lbadmin name to the module that holds it (the longest known prefix); others as is."""
    if name != PACKAGE and not name.startswith(f"{PACKAGE}."):
        return name
    probe = name
    while probe and probe not in known:
        probe = probe.rpartition(".")[0]
    return probe or name


def read_graph(root: Path = ROOT) -> list[Import]:
    files = module_files(root)
    imports = []
    for module, path in files.items():
        imports += parse_imports(
            module,
            path.read_text(),
            is_package=path.name == "__init__.py",
            known=files,
            path=str(path.relative_to(root)),
        )
    return imports


def internal(imports: Iterable[Import]) -> list[Import]:
    """The imports between two modules of the package."""
    return [item for item in imports if _is_internal(item.target) and item.source != item.target]


def _is_internal(name: str) -> bool:
    return name == PACKAGE or name.startswith(f"{PACKAGE}.")


# --- Checking it ---------------------------------------------------------------------------------


def layer_of(module: str) -> str | None:
    best, length = None, 0
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(f"{prefix}.")) and len(prefix) > length:
                best, length = layer, len(prefix)
    return best


def _rank(layer: str) -> int:
    return [name for name, _ in LAYERS].index(layer)  # 0 is the top


@dataclass(frozen=True)
class Cycle:
    modules: list[str]  # every module of the tangle: each reaches each other one
    loop: list[Import]  # the shortest loop of imports through the first of them

    def __str__(self) -> str:
        steps = [self.loop[0].source, *(f"{item.target} [{item.where}]" for item in self.loop)]
        return f"{', '.join(self.modules)}\n    for one: {' -> '.join(steps)}"


def cycles(imports: Iterable[Import]) -> list[Cycle]:
    """The sets of modules that import each other, whether at their top or inside a function
    (Tarjan's strongly connected components)."""
    edges: dict[str, dict[str, Import]] = {}
    for item in internal(imports):
        edges.setdefault(item.source, {}).setdefault(item.target, item)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return [Cycle(component, _loop(component, edges)) for component in components]


def _loop(component: list[str], edges: dict[str, dict[str, Import]]) -> list[Import]:
    """The shortest way from the component's first module back to it."""
    members = set(component)
    start = component[0]
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt, item in sorted(edges.get(node, {}).items()):
                if nxt == start:
                    return [*paths[node], item]
                if nxt in members and nxt not in paths:
                    paths[nxt] = [*paths[node], item]
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no loop through {component}")  # a component always has one


def violations(imports: Iterable[Import]) -> list[str]:
    """Every import against the layers, as a line that says where and why."""
    imports = list(imports)
    allowed = {(source, target) for source, target, _why in UPWARD_EXCEPTIONS}
    problems = []
    for item in imports:
        source_layer = layer_of(item.source)
        if source_layer is None:
            problems.append(f"{item.where}: {item.source} is in no layer: place it in LAYERS")
            continue
        said = f"{item.where}: {item.source} ({source_layer}) imports {item.target}"
        if not _is_internal(item.target):
            top = item.target.split(".")[0]
            if top in FORBIDDEN_PACKAGES.get(source_layer, ()):
                problems.append(f"{said}: {source_layer} never imports {top}")
            continue
        if item.source == item.target:
            continue
        target_layer = layer_of(item.target)
        if target_layer is None:
            problems.append(f"{said}, which is in no layer: place it in LAYERS")
            continue
        if item.target == TASKS and item.source not in TASKS_IMPORTED_BY:
            problems.append(
                f"{said}: only {', '.join(TASKS_IMPORTED_BY)} imports the tasks; enqueue "
                "them by name with lbadmin.services.jobs.enqueue()"
            )
        elif item.source == TASKS and target_layer != TASKS_IMPORT_LAYER:
            problems.append(f"{said} ({target_layer}): the tasks import services only")
        elif (
            _rank(target_layer) < _rank(source_layer) and (item.source, item.target) not in allowed
        ):
            problems.append(f"{said} ({target_layer}), a layer above it")
    return problems


def unused_exceptions(imports: Iterable[Import]) -> list[str]:
    present = {(item.source, item.target) for item in imports}
    return [
        f"{source} -> {target} ({why}) no longer happens: strike it from UPWARD_EXCEPTIONS"
        for source, target, why in UPWARD_EXCEPTIONS
        if (source, target) not in present
    ]


# --- The package as it is ------------------------------------------------------------------------


def test_no_module_imports_itself_back() -> None:
    found = cycles(read_graph())
    assert not found, "Modules that import each other:\n" + "\n".join(f"- {c}" for c in found)


def test_every_import_points_down_the_layers() -> None:
    imports = read_graph()
    unplaced = [name for name in module_files() if name != PACKAGE and layer_of(name) is None]
    assert not unplaced, f"Modules in no layer (place them in LAYERS): {unplaced}"
    problems = violations(imports)
    assert not problems, "Imports against the layers:\n" + "\n".join(problems)


def test_every_exception_is_still_needed() -> None:
    stale = unused_exceptions(internal(read_graph()))
    assert not stale, "\n".join(stale)


def test_imports_inside_functions_say_why() -> None:
    silent = [
        f"{item.where}: {item.source} imports {item.target}"
        for item in read_graph()
        if item.in_function and not item.commented
    ]
    assert not silent, (
        "Imports inside a function need a comment saying why they are not at the top:\n"
        + "\n".join(silent)
    )


# --- The checker itself, on made-up modules ------------------------------------------------------

_KNOWN = {
    "lbadmin.tasks",
    "lbadmin.services.a",
    "lbadmin.services.b",
    "lbadmin.forms.l7",
    "lbadmin.models",
    "lbadmin.render.haproxy",
    "lbadmin.engines.daemons",
}


def _imports(module: str, source: str, *, is_package: bool = False) -> list[Import]:
    return parse_imports(module, source, is_package=is_package, known=_KNOWN)


def test_the_checker_refuses_a_service_that_imports_the_tasks() -> None:
    source = "def apply():\n    from lbadmin.tasks import config_apply_task  # no\n"
    imports = _imports("lbadmin.services.a", source)
    assert [(i.target, i.in_function, i.commented) for i in imports] == [
        ("lbadmin.tasks", True, True)
    ]
    problems = violations(imports)
    assert len(problems) == 1 and "enqueue them by name" in problems[0]
    # At the top of the module just the same.
    assert violations(_imports("lbadmin.services.a", "from lbadmin import tasks\n"))


def test_the_checker_finds_a_cycle_through_a_function_level_import() -> None:
    imports = _imports("lbadmin.services.a", "from lbadmin.services.b import x\n") + _imports(
        "lbadmin.services.b", "def f():\n    from . import a\n"
    )
    [cycle] = cycles(imports)
    assert cycle.modules == ["lbadmin.services.a", "lbadmin.services.b"]
    assert [(item.source, item.target) for item in cycle.loop] == [
        ("lbadmin.services.a", "lbadmin.services.b"),
        ("lbadmin.services.b", "lbadmin.services.a"),
    ]
    assert not cycles(imports[:1])


def test_the_checker_knows_the_layers_and_their_exceptions() -> None:
    assert not violations(_imports("lbadmin.forms.l7", "from lbadmin.services import a\n"))
    upward = _imports("lbadmin.services.a", "from lbadmin.forms.l7 import Form\n")
    assert "a layer above it" in violations(upward)[0]
    assert "models" in violations(_imports("lbadmin.render.haproxy", "import lbadmin.models\n"))[0]
    assert (
        "never imports django"
        in violations(_imports("lbadmin.engines.daemons", "from django.conf import settings\n"))[0]
    )
    assert not violations(_imports("lbadmin.render.haproxy", "from ..engines import daemons\n"))
    assert violations(_imports("lbadmin.engines.daemons", "from lbadmin.render import haproxy\n"))
    assert "services only" in violations(_imports("lbadmin.tasks", "import lbadmin.models\n"))[0]
    assert "in no layer" in violations(_imports("lbadmin.newcomer", "import os\n"))[0]
    exception = _imports("lbadmin.services.config", "from lbadmin.forms.l7 import Form\n")
    assert exception[0].target == "lbadmin.forms.l7" and not violations(exception)
    assert unused_exceptions(exception)  # the other exceptions do not happen here
