"""Config, shadow and telemetry share the comparison values without importing one another.

routing.yaml's shadow settings are read by gateway.config, used by gateway.shadow and
exported by gateway.observe; the values they share live in gateway.comparison, which
imports none of them. Checked on the source with ``ast``, following imports inside
``gateway`` (a module reached through a helper counts as imported).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import SRC, reach

GATEWAY = SRC / "gateway"
#: Package → gateway packages it must not reach, directly or through other modules.
MUST_NOT_REACH = {
    "gateway.comparison": ("gateway.config", "gateway.shadow", "gateway.observe"),
    "gateway.config": ("gateway.shadow",),
    "gateway.shadow": ("gateway.config", "gateway.routing", "gateway.dispatch"),
    "gateway.observe": ("gateway.shadow",),
}


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
    reached = reach(path).modules
    forbidden = MUST_NOT_REACH[package]
    assert sorted(n for n in reached if any(_inside(n, f) for f in forbidden)) == []


def test_the_walk_follows_imports_through_helpers() -> None:
    """The router reaches the comparison values through config.schema, and the walk sees it."""
    reached = reach(GATEWAY / "routing.py").modules
    assert {"gateway.config.schema", "gateway.comparison.rules"} <= reached
