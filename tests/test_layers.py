"""The import graph: layers import downward only, and no modules import each other in a circle.

Module-level imports make the graph (an import inside a function runs when it is called: a
lower layer may reach a higher one that way, as ``Recording.save`` reaches the disk writer);
``dynamics`` never imports ``scenes``, not even inside a function.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PACKAGES = ("dynamics", "scenes")
#: dynamics.recording's layers, lowest first: each imports only those before it.
RECORDING_LAYERS = ("model", "format", "reader", "sink", "memory", "files", "locks", "disk")
#: dynamics.capture's layers, lowest first (the modules of ``quantities`` may import each
#: other: a quantity built on another, gradients on parameters).
CAPTURE_LAYERS = (
    "errors",
    "schedules",
    "torch_compat",
    "blocks",
    "quantities",
    "metadata",
    "output",
    "resume",
    "recorder",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """The modules an ``import from`` names (``from . import x`` names ``pkg.x`` if a module)."""
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module
    return [target] + [f"{target}.{a.name}" for a in node.names]


def imports(path: Path, *, anywhere: bool) -> set[str]:
    """The project modules ``path`` imports: at module level, or ``anywhere``."""
    module, tree = module_name(path), ast.parse(path.read_text())
    nodes = ast.walk(tree) if anywhere else _module_level(tree.body)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.update(resolve(module, path.name == "__init__.py", node))
    return {m for m in found if m in MODULES and m != module}


def _module_level(body):
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        yield node
        for field in ("body", "orelse", "handlers", "finalbody"):
            yield from _module_level(getattr(node, field, []) or [])


FILES = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
MODULES = set(FILES)
GRAPH = {m: imports(p, anywhere=False) for m, p in FILES.items()}


def test_the_graph_is_read_from_real_imports():
    assert "dynamics.recording.model" in GRAPH["dynamics.recording.disk"]
    assert "dynamics.recording" in GRAPH["dynamics.capture.recorder"]
    assert "dynamics.capture.quantities.base" in GRAPH["dynamics.capture.quantities.gradients"]
    assert "dynamics.recording.reader" not in GRAPH["dynamics.recording.model"]  # lazy only
    assert "dynamics.recording.reader" in imports(FILES["dynamics.recording.model"], anywhere=True)


def test_no_module_imports_itself_through_others():
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    path: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        path.append(m)
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n) :] + [n]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if n not in state:
                walk(n)
        path.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            walk(m)


def test_dynamics_never_imports_scenes():
    bad = {
        m: sorted(n for n in imports(FILES[m], anywhere=True) if n.split(".")[0] == "scenes")
        for m in MODULES
        if m.startswith("dynamics")
    }
    assert {m: v for m, v in bad.items() if v} == {}


def test_recording_layers_import_downward_only():
    layer = {f"dynamics.recording.{name}": i for i, name in enumerate(RECORDING_LAYERS)}
    assert set(layer) | {"dynamics.recording"} == {
        m for m in MODULES if m.startswith("dynamics.recording")
    }, "a new module of dynamics.recording needs its place in RECORDING_LAYERS"
    for m, i in layer.items():
        up = [n for n in GRAPH[m] if n.startswith("dynamics") and layer.get(n, -1) >= i]
        outside = [n for n in GRAPH[m] if n.startswith("dynamics") and n not in layer]
        assert not up, f"{m} imports {up}: a layer above it"
        assert not outside, f"{m} imports {outside}: the recording package stands alone"
        lazy = imports(FILES[m], anywhere=True)
        assert not [n for n in lazy if n.startswith(("dynamics.recorder", "dynamics.capture"))]


def test_capture_layers_import_downward_only():
    def layer(m: str) -> int:
        return CAPTURE_LAYERS.index(m.split(".")[2])

    inside = [m for m in MODULES if m.startswith("dynamics.capture.")]
    assert {m.split(".")[2] for m in inside} == set(CAPTURE_LAYERS), (
        "a new module of dynamics.capture needs its place in CAPTURE_LAYERS"
    )
    for m in inside:
        for n in GRAPH[m]:
            if n.startswith("dynamics.capture.") and not (
                layer(n) < layer(m) or (layer(n) == layer(m) == CAPTURE_LAYERS.index("quantities"))
            ):
                pytest.fail(f"{m} imports {n}: a layer above it")
            if n == "dynamics.capture" or n.startswith("dynamics.integrations"):
                pytest.fail(f"{m} imports {n}: the capture package's face or its users")


def test_curvature_stands_below_capture():
    """``dynamics.curvature`` (sharpness) is torch alone; the Sharpness quantity builds on it."""
    assert "dynamics.curvature" in GRAPH["dynamics.capture.quantities.sharpness"]
    lazy = imports(FILES["dynamics.curvature"], anywhere=True)
    assert not [n for n in lazy if n.startswith(("dynamics.capture", "dynamics.recorder"))]


def test_every_relative_import_names_a_module_that_exists():
    """An import inside a function fails only when it runs: check them all here (moving a
    module into a package turns ``from .x`` into a module that is not there)."""
    missing = []
    for m, path in FILES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                target = resolve(m, path.name == "__init__.py", node)[0]
                if target not in MODULES:
                    missing.append(f"{m}: from {'.' * node.level}{node.module or ''} ({target})")
    assert missing == []


def test_no_private_name_crosses_modules_outside_a_subpackage():
    """A module uses another's private names (``_x``) only inside one subpackage built as one
    design (``dynamics.recording``'s layers, ``dynamics.capture``'s); elsewhere what is
    shared is public (``scenes.render`` used ``WeightsScene._panel`` and
    ``ParticlesScene._limit``, ``scenes.weights`` ``plotting._finite_range``)."""

    def package(m: str) -> str:
        parts = m.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 else parts[0] + ".<flat>"

    crossing = []
    for m, path in FILES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = resolve(m, path.name == "__init__.py", node)[0]
                private = [
                    a.name
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                    and f"{target}.{a.name}" not in MODULES  # a private module is fine
                ]  # fmt: skip
                if private and target in MODULES and package(target) != package(m):
                    crossing.append(f"{m}: from {target} import {', '.join(private)}")
                elif private and target in MODULES and package(m).endswith("<flat>"):
                    crossing.append(f"{m}: from {target} import {', '.join(private)}")
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                owner = node.value
                if (
                    isinstance(owner, ast.Name)
                    and owner.id[:1].isupper()
                    and not node.attr.startswith("__")
                ):
                    defined_here = any(
                        isinstance(n, ast.ClassDef) and n.name == owner.id for n in ast.walk(tree)
                    )
                    if not defined_here:
                        crossing.append(f"{m}: {owner.id}.{node.attr}")
    assert crossing == []
