"""PNR pseudonyms: a keyed HMAC, so the mismatch store can group by person without holding PNRs.

There are only about 10^7 plausible PNRs, so an unkeyed hash would be reversed
by trying them all; the key is what makes a pseudonym hard to reverse, and it
must stay secret. That is why a key file readable by group or others is refused.

:func:`load_key` takes the key from a file, else from an environment variable,
else generates one into the file (mode 0600) so that ``make run`` needs no
manual step. The file holds the key as hex text.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from gateway.errors import ConfigError
from gateway.storage.files import private_directory, read_secret

#: The environment variable :func:`load_key` reads when there is no key file.
KEY_ENV = "CPR_GATEWAY_SHADOW_KEY"
#: Bytes in a generated key: SHA-256's output size, the least RFC 2104 recommends.
KEY_BYTES = 32
#: Shortest key accepted: shorter keys make the pseudonyms guessable.
MIN_KEY_BYTES = 16
#: Hex characters of the HMAC kept: 64 bits, enough to tell ~10^7 persons apart.
DIGEST_CHARS = 16
PREFIX = "p:"
#: A key file is a line of hex; one larger than this is not a key file.
_MAX_KEY_FILE_BYTES = 4096


class Pseudonymiser:
    """Maps a PNR to ``p:`` + 16 hex characters of HMAC-SHA256(key, PNR)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a pseudonym key needs at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def pnr(self, pnr: str) -> str:
        """The pseudonym of ``pnr`` (surrounding spaces ignored)."""
        digest = hmac.new(self._key, pnr.strip().encode("latin-1"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:DIGEST_CHARS]

    def __repr__(self) -> str:  # the key never reaches a log through repr
        return "Pseudonymiser(key=<redacted>)"


def is_pseudonym(text: str) -> bool:
    """True for text shaped like :meth:`Pseudonymiser.pnr`'s output."""
    digest = text.removeprefix(PREFIX)
    return (
        text.startswith(PREFIX)
        and len(digest) == DIGEST_CHARS
        and all(c in "0123456789abcdef" for c in digest)
    )


def load_key(path: Path | None, env: str = KEY_ENV, what: str = "shadow key") -> bytes:
    """The pseudonym key: from ``path`` if it exists, else ``$env``, else a new key in ``path``.

    Without a path and without the variable, a random key for this process only
    (pseudonyms then change on restart). ConfigError for an unreadable, too
    short or group/world-readable key file, or a too short variable; its messages
    begin with ``what`` and the path (the audit log has a key of its own).
    """
    if path is not None and path.exists():
        return _read_key_file(path, what)
    value = os.environ.get(env)
    if value:
        return _check(value.encode("utf-8"), f"${env}")
    key = secrets.token_bytes(KEY_BYTES)
    if path is None:
        return key
    return _write_key_file(path, key, what)


def _read_key_file(path: Path, what: str) -> bytes:
    raw = read_secret(path, f"{what} {path}", _MAX_KEY_FILE_BYTES)
    if len(raw) > _MAX_KEY_FILE_BYTES:
        raise ConfigError([f"{what} {path}: larger than {_MAX_KEY_FILE_BYTES} bytes"])
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except ValueError:  # UnicodeDecodeError included
        raise ConfigError([f"{what} {path}: expected hex text"]) from None
    return _check(key, f"{what} {path}")


def _write_key_file(path: Path, key: bytes, what: str) -> bytes:
    """Create ``path`` holding ``key`` (0600); if another process won the race, use its key."""
    try:
        private_directory(path.parent)  # 0700
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path, what)
    except OSError as exc:
        raise ConfigError([f"{what} {path}: cannot create it ({exc})"]) from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.hex() + "\n")
    return key


def _check(key: bytes, where: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError([f"{where}: a key needs at least {MIN_KEY_BYTES} bytes, got {len(key)}"])
    return key
