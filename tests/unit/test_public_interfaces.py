"""Herald uses Quart, Hypercorn and aiokafka through what they document.

Only two quarantined modules may reach into Hypercorn's inside, each imported lazily by its
one loader: the fast path (service/transports/direct.py, by fast_path.load) and what bounds
an HTTP/3 stream (transports/h3_inside.py, by h3.load); everything else is checked here, by
reading the source: no private attribute of another object, no framework-internal module,
no subclass of a framework class.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"
# Each quarantined module and the one module that may import it.
LOADERS = {
    SERVICE / "transports" / "direct.py": "fast_path.py",
    SERVICE / "transports" / "h3_inside.py": "h3.py",
}
QUARANTINED = set(LOADERS)
# The modules of each framework that its documentation presents as its interface.
PUBLIC_MODULES = {
    "quart": {"quart"},
    "hypercorn": {"hypercorn.asyncio", "hypercorn.config", "hypercorn.typing"},
    "aiokafka": {
        "aiokafka",
        "aiokafka.admin",
        "aiokafka.errors",
        "aiokafka.helpers",
        "aiokafka.structs",
        "aiokafka.partitioner",
    },
}
FRAMEWORK_CLASSES = ("quart", "hypercorn")


def modules() -> list[Path]:
    return sorted(path for path in SERVICE.rglob("*.py") if path not in QUARANTINED)


def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def imported(module: ast.Module) -> list[tuple[str, str]]:
    """(module, name) of every ``import`` and ``from ... import`` at any depth."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            found += [(alias.name, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(SERVICE)))
def test_no_framework_internals_are_imported(path: Path) -> None:
    wrong = []
    for module, name in imported(tree(path)):
        framework = module.split(".")[0]
        if framework not in PUBLIC_MODULES:
            continue
        if module not in PUBLIC_MODULES[framework] or name.startswith("_"):
            wrong.append(f"{module}:{name}")
    assert not wrong, f"{path.name} imports framework internals: {wrong}"


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_accesses(module: ast.Module) -> list[str]:
    """``x._name`` (x not self or cls) and ``getattr(x, "_name")``-like calls."""
    found = []
    for node in ast.walk(module):
        if (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"line {node.lineno}: .{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append(f"line {node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return found


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(SERVICE)))
def test_no_private_attribute_of_another_object_is_touched(path: Path) -> None:
    wrong = private_accesses(tree(path))
    assert not wrong, f"{path.name} reaches into private attributes: {wrong}"


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(SERVICE)))
def test_no_framework_class_is_subclassed(path: Path) -> None:
    module = tree(path)
    framework_names = {
        name for source, name in imported(module) if source.split(".")[0] in FRAMEWORK_CLASSES
    }
    wrong = [
        node.name
        for node in ast.walk(module)
        if isinstance(node, ast.ClassDef)
        for base in node.bases
        if (isinstance(base, ast.Name) and base.id in framework_names)
        or (
            isinstance(base, ast.Attribute) and ast.unparse(base).split(".")[0] in FRAMEWORK_CLASSES
        )
    ]
    assert not wrong, f"{path.name} subclasses framework classes: {wrong}"


@pytest.mark.parametrize("quarantined", sorted(LOADERS), ids=lambda path: path.name)
def test_a_quarantined_module_is_imported_only_by_its_loader(quarantined: Path) -> None:
    name = quarantined.stem
    importers = [
        path.name
        for path in modules()
        if any(
            module.endswith(f"transports.{name}") or imported_name == name
            for module, imported_name in imported(tree(path))
        )
        or f"from . import {name}" in path.read_text()
    ]
    assert importers == [LOADERS[quarantined]]


@pytest.mark.parametrize("quarantined", sorted(LOADERS), ids=lambda path: path.name)
def test_the_checks_see_what_they_look_for(quarantined: Path) -> None:
    # Each quarantined module does what the checks look for, so a check that never fires
    # would show here.
    module = tree(quarantined)
    assert any(name.startswith("hypercorn.protocol") for name, _ in imported(module))
    assert private_accesses(module)
