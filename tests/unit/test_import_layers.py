"""Import layers: the codec and the router stay pure (no I/O, logging, metrics or HTTP).

Checked on the source with ``ast``, following imports inside ``gateway`` (package
``__init__`` files included, since importing ``a.b`` runs ``a/__init__.py``), so
an I/O import cannot sneak in through a helper module either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
FORBIDDEN = frozenset(
    {
        "asyncio", "socket", "ssl", "selectors", "grpc", "logging", "structlog",
        "prometheus_client", "aiohttp",
    }
)  # fmt: skip
PURE = sorted(
    [*(SRC / "gateway" / "codec").rglob("*.py"), SRC / "gateway" / "routing.py"],
)


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


def _package(path: Path) -> str:
    """The package a relative import in ``path`` starts from."""
    module = _module_name(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = _package(path).split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _with_parents(module: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _reachable_foreign_imports(start: Path) -> dict[str, str]:
    """Non-gateway modules reachable from ``start`` through gateway modules: name → importer."""
    seen: set[Path] = set()
    foreign: dict[str, str] = {}
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imports(path):
            if name.split(".")[0] != "gateway":
                foreign.setdefault(name, _module_name(path))
                continue
            todo.extend(p for m in _with_parents(name) if (p := _path_of(m)) is not None)
    return foreign


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(SRC)))
def test_pure_modules_import_no_io(path: Path) -> None:
    """Nothing the codec or the router imports, directly or through gateway, does I/O."""
    bad = {
        name: importer
        for name, importer in _reachable_foreign_imports(path).items()
        if name.split(".")[0] in FORBIDDEN
    }
    assert bad == {}


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The scanner itself notices ``import asyncio`` and ``from logging import x``."""
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nfrom logging import getLogger\nimport json\n")
    assert {"asyncio", "logging", "logging.getLogger"} <= _imports(sample)


def test_the_pure_list_is_not_empty() -> None:
    """The codec package and routing.py are really found on disk."""
    names = {_module_name(p) for p in PURE}
    assert {"gateway.codec.framing", "gateway.codec.messages", "gateway.routing"} <= names
