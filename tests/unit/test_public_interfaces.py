"""Herald uses Quart, Hypercorn and aiokafka through what they document.

Only the quarantined fast path (service/transports/direct.py, imported lazily by
fast_path.load) may reach into Hypercorn's inside; everything else is checked here, by
reading the source: no private attribute of another object, no framework-internal module,
no subclass of a framework class.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVICE = Path(__file__).resolve().parents[2] / "service"
QUARANTINED = {SERVICE / "transports" / "direct.py"}
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


def test_the_quarantined_module_is_imported_only_by_the_fast_path_loader() -> None:
    importers = [
        path.name
        for path in modules()
        if any(
            module.endswith("transports.direct") or name == "direct"
            for module, name in imported(tree(path))
        )
        or "from . import direct" in path.read_text()
    ]
    assert importers == ["fast_path.py"]


def test_the_checks_see_what_they_look_for() -> None:
    # The quarantined module does all three, so a check that never fires would show here.
    [direct] = QUARANTINED
    module = tree(direct)
    assert any(name.startswith("hypercorn.protocol") for name, _ in imported(module))
    assert any("_writer" in access for access in private_accesses(module))
