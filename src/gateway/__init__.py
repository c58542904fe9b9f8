"""cpr-gateway: a strangler-fig compatibility gateway for CPR Direkte (see docs/architecture.md)."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    # Looked up on demand: importlib.metadata pulls in email and zipfile, which a serving
    # worker would otherwise pay for in memory (docs/benchmarks.md, P6).
    if name != "__version__":
        raise AttributeError(f"module 'gateway' has no attribute {name!r}")
    from importlib import metadata  # noqa: PLC0415  (see above)

    try:
        return metadata.version("cpr-gateway")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"
