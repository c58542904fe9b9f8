"""Import layers: the pure modules stay pure, and telemetry stays in observe/.

The codec, the router and the session bookkeeping do no I/O, logging, metrics or
HTTP; the comparison core (the comparison values, shadow's compare and noise) not even
databases, threads or the OS; nothing in shadow/ imports structlog or prometheus_client.

Checked on the source with ``ast``, following imports inside ``gateway`` (package
``__init__`` files included, since importing ``a.b`` runs ``a/__init__.py``), so
an I/O import cannot sneak in through a helper module either.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from import_graph import SRC, imports, module_name, reach

GATEWAY = SRC / "gateway"
#: The shipped routing.yaml: a legacy and a gRPC backend.
ROUTING = SRC.parent / "routing.yaml"
SHADOW = GATEWAY / "shadow"
FORBIDDEN = frozenset(
    {
        "asyncio", "socket", "ssl", "selectors", "grpc", "logging", "structlog",
        "prometheus_client", "aiohttp",
    }
)  # fmt: skip
#: The shadow comparison core is stricter still: no database, thread, OS or process either.
NOT_EVEN_STORAGE = FORBIDDEN | {"sqlite3", "threading", "os", "subprocess"}
TELEMETRY = frozenset({"structlog", "prometheus_client"})
PURE = sorted(
    [
        *(GATEWAY / "codec").rglob("*.py"),
        GATEWAY / "routing.py",
        GATEWAY / "sessions" / "table.py",
        GATEWAY / "sessions" / "broker.py",
        GATEWAY / "sessions" / "logon_guard.py",
        GATEWAY / "sessions" / "refused_repeats.py",
        GATEWAY / "backends" / "retry_budget.py",
    ],
)
#: The comparison values, and the shadow's pure core that uses them.
COMPARISON = sorted((GATEWAY / "comparison").glob("*.py"))
SHADOW_CORE = [*COMPARISON, SHADOW / "compare.py", SHADOW / "noise.py"]
LAYERS = [(path, FORBIDDEN) for path in PURE] + [(p, NOT_EVEN_STORAGE) for p in SHADOW_CORE]


@pytest.mark.parametrize(
    ("path", "forbidden"), LAYERS, ids=[str(p.relative_to(SRC)) for p, _ in LAYERS]
)
def test_pure_modules_import_no_io(path: Path, forbidden: frozenset[str]) -> None:
    """Nothing a pure module imports, directly or through gateway, does I/O."""
    bad = {
        name: importer
        for name, importer in reach(path).foreign.items()
        if name.split(".")[0] in forbidden
    }
    assert bad == {}


@pytest.mark.parametrize("path", sorted(SHADOW.glob("*.py")), ids=lambda p: p.name)
def test_no_shadow_module_imports_telemetry(path: Path) -> None:
    """Metrics and logs subscribe to events elsewhere; shadow/ only returns values."""
    assert not {n for n in imports(path) if n.split(".")[0] in TELEMETRY}


def test_the_walk_follows_gatewayimports() -> None:
    """The shadow store is reached through gateway imports and its sqlite3 is seen."""
    assert "sqlite3" in reach(SHADOW / "report.py").foreign


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The scanner itself notices ``import asyncio`` and ``from logging import x``."""
    sample = tmp_path / "sample.py"
    sample.write_text("import asyncio\nfrom logging import getLogger\nimport json\n")
    assert {"asyncio", "logging", "logging.getLogger"} <= imports(sample)


def test_the_pure_list_is_not_empty() -> None:
    """The codec package, routing.py and the shadow core are really found on disk."""
    names = {module_name(p) for p, _ in LAYERS}
    assert {"gateway.codec.framing", "gateway.routing", "gateway.shadow.compare"} <= names


def test_serving_loads_grpc_only_for_a_grpc_backend_and_x509_never() -> None:
    """Each serving process pays only for what it runs (memory per worker, P6 of
    docs/benchmarks.md): reading routing.yaml (even one that names a ``kind: grpc`` backend)
    and starting a gateway import neither grpcio nor the X.509 library; building a
    ``kind: grpc`` backend then loads grpcio."""
    code = (
        "import sys, gateway.cli, gateway.app, gateway.backends, gateway.runtime.workers\n"
        "from pathlib import Path\n"
        "from gateway.config import load_routing\n"
        f"assert load_routing(Path({str(ROUTING)!r})).backends['persons-v2'].kind == 'grpc'\n"
        "heavy = ('grpc', 'cryptography')\n"
        "print(*[m for m in heavy if m in sys.modules])\n"
        "from gateway.backends import build_backend\n"
        "from gateway.backends.grpc_config import GrpcBackendConfig, grpc_target\n"
        "build_backend(GrpcBackendConfig('persons-v2', grpc_target('127.0.0.1:1'), None))\n"
        "print(*[m for m in heavy if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines() == ["", "grpc"]
