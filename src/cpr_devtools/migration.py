"""``cpr-gateway migrate``: the emulator's register file copied into the reference services' store.

The glue between two simulators, so it lives with the tools: the register belongs to the
mainframe emulator, the store to the reference services, and neither imports the other.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from cpr_mainframe.register.store import Register
from cpr_services.migrate import BATCH_SIZE, MigrationReport, migrate


def migrate_register(
    register_path: Path,
    store_path: str | Path,
    progress: bool = True,
    batch_size: int = BATCH_SIZE,
) -> MigrationReport:
    """Copy every person of the register file at ``register_path`` into ``store_path``.

    ConfigError when either cannot be opened; ``progress`` shows a bar on stderr.
    """
    with closing(Register.open(register_path)) as register:
        return migrate(register, store_path, progress, batch_size)
