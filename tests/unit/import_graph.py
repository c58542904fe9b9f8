"""Who imports what under ``src/``, read from the source with ``ast``: the one scanner the
import-layer tests share (test_import_layers, test_comparison_layers, test_package_layers).

Imports inside functions count (laziness does not change which way an arrow points), and
relative imports are resolved against the importing module's package.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def module_name(path: Path) -> str:
    """``src/gateway/codec/__init__.py`` → ``gateway.codec``."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def path_of(module: str) -> Path | None:
    """The file a module name is, if it is one of ours (a package is its ``__init__.py``)."""
    base = SRC.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _package(path: Path) -> str:
    """The package a relative import in ``path`` starts from."""
    module = module_name(path)
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def imports(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports: modules, and ``module.name`` for each
    name taken from one (``from a import b`` gives ``a`` and ``a.b``)."""
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


def with_parents(module: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass
class Reach:
    """What importing one module runs, following imports through gateway modules."""

    #: Gateway modules run (a package counts: its ``__init__`` runs).
    modules: set[str] = field(default_factory=set)
    #: Names outside gateway that get imported → the gateway module that first imports each.
    foreign: dict[str, str] = field(default_factory=dict)


def reach(start: Path) -> Reach:
    """Everything importing ``start`` runs, directly or through other gateway modules."""
    found = Reach()
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imports(path):
            if name.split(".")[0] != "gateway":
                found.foreign.setdefault(name, module_name(path))
                continue
            for module in with_parents(name):
                if (file := path_of(module)) is not None:
                    found.modules.add(module)
                    todo.append(file)
    return found
