"""Import layers of shadow/: the comparison core is pure; no module imports telemetry.

Checked on the source with ``ast``, following imports inside ``gateway``
(package ``__init__`` files included), so an I/O import cannot sneak in through
a helper module either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
SHADOW = SRC / "gateway" / "shadow"
#: What the pure core may not reach: I/O, databases, threads, logging, telemetry.
NOT_PURE = frozenset(
    {
        "asyncio", "socket", "ssl", "selectors", "sqlite3", "threading", "logging", "structlog",
        "prometheus_client", "aiohttp", "grpc", "os", "subprocess",
    }
)  # fmt: skip
#: Telemetry lives in observe/; the shadow package only returns values.
TELEMETRY = frozenset({"structlog", "prometheus_client"})
PURE = [SHADOW / "compare.py", SHADOW / "normalise.py", SHADOW / "noise.py"]


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
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
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


def _reachable(start: Path) -> dict[str, str]:
    """Foreign modules reachable from ``start`` through gateway modules: name → importer."""
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
            parts = name.split(".")
            for i in range(len(parts)):
                found = _path_of(".".join(parts[: i + 1]))
                if found is not None:
                    todo.append(found)
    return foreign


@pytest.mark.parametrize("path", PURE, ids=lambda p: p.name)
def test_the_comparison_core_imports_no_io(path: Path) -> None:
    """compare, normalise and noise reach no I/O, database, thread or logging module."""
    bad = {n: by for n, by in _reachable(path).items() if n.split(".")[0] in NOT_PURE}
    assert bad == {}


@pytest.mark.parametrize("path", sorted(SHADOW.glob("*.py")), ids=lambda p: p.name)
def test_no_shadow_module_imports_telemetry(path: Path) -> None:
    """Metrics and logs subscribe elsewhere; shadow/ never imports structlog or prometheus."""
    assert not {n for n in _imports(path) if n.split(".")[0] in TELEMETRY}


def test_the_check_sees_forbidden_imports(tmp_path: Path) -> None:
    """The scanner notices ``import sqlite3`` and ``from logging import x``."""
    sample = tmp_path / "sample.py"
    sample.write_text("import sqlite3\nfrom logging import getLogger\nimport json\n")
    assert {"sqlite3", "logging", "logging.getLogger", "json"} <= _imports(sample)


def test_the_check_follows_gateway_imports() -> None:
    """The store is reached through gateway imports and its sqlite3 is seen: the walk works."""
    assert "sqlite3" in _reachable(SHADOW / "report.py")
