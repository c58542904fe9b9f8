"""Config, shadow and telemetry share the comparison values without importing one another.

routing.yaml's shadow settings are read by gateway.config, used by gateway.shadow and
exported by gateway.observe; the values they share live in gateway.comparison, which
imports none of them. Checked on the source with ``ast``, following imports inside
``gateway`` (a module reached through a helper counts as imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
GATEWAY = SRC / "gateway"
#: Package → gateway packages it must not reach, directly or through other modules.
MUST_NOT_REACH = {
    "gateway.comparison": ("gateway.config", "gateway.shadow", "gateway.observe"),
    "gateway.config": ("gateway.shadow",),
    "gateway.shadow": ("gateway.config", "gateway.routing", "gateway.dispatch"),
    "gateway.observe": ("gateway.shadow",),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _path_of(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _gateway_imports(path: Path) -> dict[str, Path]:
    """Every gateway module ``path`` imports (and the packages that runs), with its file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    modules = {
        ".".join(name.split(".")[: i + 1])
        for name in names
        if name.split(".")[0] == "gateway"
        for i in range(name.count(".") + 1)
    }
    return {name: file for name in modules if (file := _path_of(name)) is not None}


def _reachable(start: Path) -> set[str]:
    """Gateway modules reachable from ``start`` through gateway imports."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for name, file in _gateway_imports(todo.pop()).items():
            if name not in seen:
                seen.add(name)
                todo.append(file)
    return seen


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


CASES = [
    (path, package)
    for package in MUST_NOT_REACH
    for path in sorted(SRC.joinpath(*package.split(".")).rglob("*.py"))
]


@pytest.mark.parametrize(
    ("path", "package"), CASES, ids=[str(p.relative_to(GATEWAY)) for p, _ in CASES]
)
def test_no_arrow_points_back(path: Path, package: str) -> None:
    """Nothing a module of ``package`` imports, however indirectly, is on its forbidden list."""
    reached = _reachable(path)
    forbidden = MUST_NOT_REACH[package]
    assert sorted(n for n in reached if any(_inside(n, f) for f in forbidden)) == []


def test_the_walk_follows_imports_through_helpers() -> None:
    """The router reaches the comparison values through config.schema, and the walk sees it."""
    reached = _reachable(GATEWAY / "routing.py")
    assert {"gateway.config.schema", "gateway.comparison.rules"} <= reached
