"""The optimizer package is layered kernel -> function -> module (Liger-Kernel's layout): ``functional``
imports nothing of lion_bench, ``lion_triton`` only ``functional``, ``lion`` both; no module imports one
above it, not even inside a function (a cycle hidden in function bodies is still a cycle)."""

from __future__ import annotations

import ast
from pathlib import Path

import lion_bench.optimizers

PACKAGE = Path(lion_bench.optimizers.__file__).parent
ALLOWED = {
    "functional": set(),
    "lion_triton": {"functional"},
    "lion": {"functional", "lion_triton"},
}


def imported_optimizer_modules(path: Path) -> set[str]:
    """Modules of lion_bench.optimizers that ``path`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("lion_bench.optimizers."):
                found.add(name.split(".")[2])
    return found & {path.stem for path in PACKAGE.glob("*.py")}


def test_update_rule_kernel_and_optimizer_are_layered():
    for module, allowed in ALLOWED.items():
        assert imported_optimizer_modules(PACKAGE / f"{module}.py") == allowed, module


def test_no_import_cycle_among_optimizer_modules():
    graph = {path.stem: imported_optimizer_modules(path) - {path.stem} for path in PACKAGE.glob("*.py")}

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for successor in graph.get(start, ()):
            if successor == target or (successor not in seen and reaches(successor, target, seen | {successor})):
                return True
        return False

    cycles = [module for module in graph if reaches(module, module, set())]
    assert not cycles, f"import cycles through {cycles}: {graph}"
