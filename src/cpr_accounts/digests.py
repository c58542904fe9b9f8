"""Password digests: Argon2id at current guidance, and the scrypt digests stored before it.

A digest is derived from the password (Latin-1, as on the wire) and the user's
salt. A new digest is Argon2id, stored with its parameters in front of the 32
raw bytes (``$argon2id$v=19$m=19456,t=2,p=1$`` + bytes, the PHC string's
spelling), so that a store holding digests of several costs (a cost raised in
config, a user not seen since) checks each with its own and knows which to
re-hash. A stored digest of exactly 32 bytes without that header is an scrypt
digest written before Argon2id (r=8, p=1, N from the user's ``cost`` column).

Deriving takes tens of milliseconds and tens of MiB by design: :func:`digest`
runs it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

#: Raw bytes of every digest: 256 bits, the salt's and the hash's usual size.
DIGEST_BYTES = 32
#: scrypt's r and p as RFC 7914 recommends for interactive logons (the old digests' values).
_SCRYPT_BLOCK_SIZE, _SCRYPT_PARALLEL = 8, 1
#: Bounds of a cost read from config or from a stored header: Argon2's own minimum memory
#: (8 KiB per lane) up to 1 GiB, beyond which one logon could exhaust a small server's memory.
MIN_MEMORY_KIB_PER_LANE, MAX_MEMORY_KIB = 8, 1024 * 1024
MAX_ITERATIONS, MAX_LANES = 64, 16
_HEADER = re.compile(rb"\$argon2id\$v=19\$m=([0-9]{1,7}),t=([0-9]{1,2}),p=([0-9]{1,2})\$")


@dataclass(frozen=True, slots=True)
class PasswordCost:
    """Argon2id's parameters for new digests; the default is OWASP's guidance (2025):
    m = 19 MiB, t = 2, p = 1. Tests and benchmarks lower it where logons are frequent."""

    memory_kib: int = 19 * 1024
    iterations: int = 2
    lanes: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.lanes <= MAX_LANES:
            raise ValueError(f"lanes must be 1-{MAX_LANES}, got {self.lanes}")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be 1-{MAX_ITERATIONS}, got {self.iterations}")
        least = MIN_MEMORY_KIB_PER_LANE * self.lanes
        if not least <= self.memory_kib <= MAX_MEMORY_KIB:
            raise ValueError(f"memory_kib must be {least}-{MAX_MEMORY_KIB}, got {self.memory_kib}")

    @property
    def header(self) -> bytes:
        """What a stored digest of this cost starts with."""
        m, t, p = self.memory_kib, self.iterations, self.lanes
        return f"$argon2id$v=19$m={m},t={t},p={p}$".encode("ascii")


@dataclass(frozen=True, slots=True)
class Scrypt:
    """The digests stored before Argon2id: scrypt with cost ``n``; verified, never written."""

    n: int


#: How a stored digest was made.
Scheme = PasswordCost | Scrypt


def scheme_of(stored: bytes, scrypt_n: int) -> Scheme:
    """How ``stored`` was made: Argon2id with the cost in its header, or (32 bytes, no header)
    scrypt with the user's ``scrypt_n``. ValueError for a form this code never wrote."""
    match = _HEADER.match(stored)
    if match is not None and len(stored) == match.end() + DIGEST_BYTES:
        return PasswordCost(*(int(group) for group in match.groups()))
    if len(stored) == DIGEST_BYTES and scrypt_n > 1:
        return Scrypt(scrypt_n)
    raise ValueError(f"a stored password digest of {len(stored)} bytes in no known form")


async def digest(password: str, salt: bytes, scheme: Scheme) -> bytes:
    """The stored form of ``password``'s digest under ``scheme``, computed off the event loop."""
    return await asyncio.to_thread(derive, password, salt, scheme)


def derive(password: str, salt: bytes, scheme: Scheme) -> bytes:
    """The stored form of ``password``'s digest under ``scheme`` (blocking: see :func:`digest`)."""
    data = password.encode("latin-1", errors="replace")
    if isinstance(scheme, Scrypt):
        return _scrypt(data, salt, scheme.n)
    kdf = Argon2id(
        salt=salt,
        length=DIGEST_BYTES,
        iterations=scheme.iterations,
        lanes=scheme.lanes,
        memory_cost=scheme.memory_kib,
    )
    return scheme.header + kdf.derive(data)


def _scrypt(data: bytes, salt: bytes, n: int) -> bytes:
    # 128 * N * r bytes of memory, plus headroom, so large N is not refused by OpenSSL's default.
    maxmem = 128 * n * _SCRYPT_BLOCK_SIZE * 2
    return hashlib.scrypt(
        data,
        salt=salt,
        n=n,
        r=_SCRYPT_BLOCK_SIZE,
        p=_SCRYPT_PARALLEL,
        maxmem=maxmem,
        dklen=DIGEST_BYTES,
    )
