"""A long-running process's start-up heap, kept out of the cyclic garbage collector's way.

CPython's collector walks every tracked object on each full (oldest-generation)
collection. A server imports its modules, reads its config, builds its tables and opens
its ports once, then serves for weeks, and every full collection walked all of that
again: tens of milliseconds in which that process answers nobody, so every request in
flight carries it (in the gRPC services one came a few seconds into every load run;
docs/benchmarks.md, "Where the time goes, and what was changed": ``gc.freeze``). Once a
process has started, :func:`settle` collects once and moves what survived to the permanent
generation (``gc.freeze``): later collections walk only what was made since, and the
start-up heap is never walked again.

Only the processes' own entry points call it (``cpr-gateway serve``, ``backend``,
``emulator``, the load generator's processes): in a test runner, an earlier test's server
that is still alive when the heap is frozen would never be collected once it became
cyclic garbage.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect, then exempt every object still alive from later collections; returns how many
    objects are exempt now (``gc.get_freeze_count``)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
