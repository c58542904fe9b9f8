"""Structure-aware mutations of routing.yaml: change the document, not its bytes.

libFuzzer's byte mutations mostly break a YAML document's syntax, so they exercise the YAML
parser more than the gateway's reading of it. Half of the mutations here parse the input,
change one to three values of the document (delete a key, put a value of another type or an
edge value in its place, move a subtree elsewhere, rename a key to another known key) and
write it back; the other half are libFuzzer's own byte mutations.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import yaml

ByteMutator = Callable[[bytes, int], bytes]

#: Places of a document a mutation chooses among; routing.yaml has a few hundred.
_MOST_PLACES = 2000

#: Values that sit at the edges of what routing.yaml's scalars accept.
_EDGES: tuple[object, ...] = (
    None, True, 0, -1, 1, 2**63, 1e308, float("nan"), "", " ", "0s", "1ms", "-1s", "10s", "5m",
    "1h", "100%", "0%", "101%", "10%", "1.5%", "x", "0001", "  12", "PRIV", "lookup", "legacy",
    "grpc", "127.0.0.1:0", "[::1]:5000", "::1", "0.0.0.0/0", "TLSv1.3", "TLSv1", "64MiB", [], {},
    [None], {"": None},
)  # fmt: skip
#: Keys routing.yaml knows somewhere, for renaming one key into another's place.
_KEYS = (
    "version", "listen", "admin", "limits", "sessions", "backends", "routes", "shadowing",
    "canary", "audit", "tls", "cert", "key", "ca", "server_name", "host", "port", "kind",
    "address", "match", "backend", "split", "deadline", "shadow", "sample", "steps", "name",
    "proxy_protocol", "trusted", "breaker", "fallback", "retry_budget", "read_timeout",
    "max_connections", "token_file", "store", "key_file", "directory", "operation", "customer",
)  # fmt: skip


def mutate(data: bytes, max_size: int, seed: int, bytewise: ByteMutator) -> bytes:
    """One mutation of ``data``, at most ``max_size`` bytes; ``bytewise`` is libFuzzer's."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        return bytewise(data, max_size)
    try:
        document = yaml.safe_load(data)
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        return bytewise(data, max_size)
    for _ in range(rng.randint(1, 3)):
        document = _mutate_once(document, rng)
    try:
        text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=1 << 16)
    except (yaml.YAMLError, RecursionError):
        return bytewise(data, max_size)
    out = text.encode()
    return out if len(out) <= max_size else bytewise(data, max_size)


def _mutate_once(document: object, rng: random.Random) -> object:
    """``document`` with one place in it changed (the whole document is a place too)."""
    places = list(_places(document))
    if not places:
        return rng.choice(_EDGES)
    container, key = rng.choice(places)
    action = rng.randrange(4)
    if action == 0:
        del container[key]
    elif action == 1:
        container[key] = rng.choice(_EDGES)
    elif action == 2:
        other, other_key = rng.choice(places)
        container[key] = other[other_key] if _has(other, other_key) else None
    elif isinstance(container, dict):
        container[rng.choice(_KEYS)] = container.pop(key)
    else:
        container.insert(key, container[key])
    return document


def _places(document: object) -> list[tuple[Any, Any]]:
    """(container, key) of the values inside ``document``, the first :data:`_MOST_PLACES`
    of them: a subtree shared through YAML aliases is met once per path to it, and those
    paths can be exponentially many."""
    found: list[tuple[Any, Any]] = []
    pending = [document]
    while pending and len(found) < _MOST_PLACES:
        value = pending.pop()
        if isinstance(value, dict):
            keys: list[Any] = list(value)
        elif isinstance(value, list):
            keys = list(range(len(value)))
        else:
            continue
        found += [(value, key) for key in keys]
        pending += [value[key] for key in keys]
    return found[:_MOST_PLACES]


def _has(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and 0 <= key < len(container)
