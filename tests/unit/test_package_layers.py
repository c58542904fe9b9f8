"""The product imports none of its simulators; each package beside it imports only what is
below it. Checked on the source with ``ast`` (imports inside functions included), so a lazy
import cannot hide an arrow that points the wrong way.

    gateway                     the product
    cpr_accounts                what both simulated backends keep about customers
    cpr_mainframe, cpr_services the mainframe emulator + register; the reference gRPC services
    cpr_devtools                `up`, the client, the CA, the migration between the two
    cpr_bench                   the benchmark
"""

from __future__ import annotations

from pathlib import Path

import pytest
from import_graph import SRC, imports, module_name

#: Package → the first-party packages it may import besides itself.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "gateway": frozenset(),
    "cpr_accounts": frozenset({"gateway"}),
    "cpr_mainframe": frozenset({"gateway", "cpr_accounts"}),
    "cpr_services": frozenset({"gateway", "cpr_accounts"}),
    "cpr_devtools": frozenset({"gateway", "cpr_accounts", "cpr_mainframe", "cpr_services"}),
    "cpr_bench": frozenset(
        {"gateway", "cpr_accounts", "cpr_mainframe", "cpr_services", "cpr_devtools"}
    ),
}
#: Inside the product, each part sits on a layer and imports only parts on lower layers
#: (docs/architecture.md, "The request path"): the values at the bottom, the composition
#: root at the top. A part that is not listed fails the test until it is given a layer.
PRODUCT_LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        "__init__ model",
        "errors domain tls",
        "codec storage",
        "comparison render",
        "config cprv1 observe",
        "routing runtime",
        "sessions",
        "shadow backends",
        "dispatch audit",
        "canary",
        "server",
        "app",
        "cli",
    )
)
LAYER_OF = {part: rank for rank, layer in enumerate(PRODUCT_LAYERS) for part in layer}


def _modules() -> list[Path]:
    """Every hand-written module under src/ (generated protobuf code excluded)."""
    return sorted(p for p in SRC.rglob("*.py") if "pb" not in p.relative_to(SRC).parts)


def _package_of(path: Path) -> str:
    return path.relative_to(SRC).parts[0]


def first_party_imports(path: Path) -> set[str]:
    """Top-level first-party packages that ``path`` imports anywhere in its body."""
    return {name.split(".")[0] for name in imports(path)} & frozenset(MAY_IMPORT)


def test_every_package_under_src_has_a_place_in_the_table() -> None:
    """A new top-level package must say what it may import before it can land."""
    found = {p.parent.name for p in SRC.glob("*/__init__.py")}
    assert found == set(MAY_IMPORT)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_one_way(path: Path) -> None:
    """A module imports only its own package and the packages below it."""
    own = _package_of(path)
    assert first_party_imports(path) - {own} <= MAY_IMPORT[own]


def _part_of(module: str) -> str:
    """The product part ``gateway.x.y`` belongs to: ``x`` (a subpackage or a top module)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def product_imports(path: Path) -> set[str]:
    """The product modules (and names in them) ``path`` imports, lazy ones included."""
    return {name for name in imports(path) if name.split(".")[0] == "gateway"}


PRODUCT = [p for p in _modules() if _package_of(p) == "gateway"]


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: str(p.relative_to(SRC)))
def test_product_parts_import_only_lower_layers(path: Path) -> None:
    """dispatch may import routing, routing may not import dispatch, and so on up the table."""
    own = _part_of(module_name(path))
    upward = {
        name
        for name in product_imports(path)
        if (part := _part_of(name)) != own and LAYER_OF[part] >= LAYER_OF[own]
    }
    assert upward == set()


def test_every_product_part_has_a_layer() -> None:
    """A new subpackage or top-level module of the product must be placed in the table."""
    parts = {_part_of(module_name(p)) for p in PRODUCT}
    assert parts == set(LAYER_OF)


def test_the_check_sees_a_lazy_import(tmp_path: Path) -> None:
    """An import inside a function counts: laziness does not change which way an arrow points."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from cpr_mainframe.run import run_emulator\n")
    assert first_party_imports(sample) == {"cpr_mainframe"}
