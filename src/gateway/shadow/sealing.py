"""The values a mismatch row keeps, sealed: AES-256-GCM under a key derived from the shadow key.

A differing field's two values are whatever the backends answered: names,
addresses, dates. The pseudonym keeps the PNR out of the store; sealing keeps
those values out of it too, so that a copy of the database file, a backup or a
DBA's ``SELECT`` shows no person's data. One secret is configured
(``shadowing.key_file``); the sealing keys are derived from it with HKDF-SHA256
under a purpose of their own, so the pseudonyms stay as they are (searchable) and
no key tells another.

A sealed value is URL-safe base64 of a 16-byte salt, a random 12-byte nonce, then
the ciphertext and its 16-byte tag. The salt names the data key, HKDF of the
shadow key and that salt: each :class:`Sealer` (each gateway process) draws its
own, so that no data key seals anywhere near the 2^32 values that NIST SP 800-38D
allows one AES-GCM key with random nonces, however long a key file is kept.
The row's route, kind, operation, backends, record, field, subject and side
(primary or candidate) are the associated data: a value moved to another row or
column does not open. Each row names its
``value_format``: :data:`SEALED`, or :data:`CLEAR` for rows written before
sealing (and by a store opened without a key), read as they are.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: ``value_format`` of a row whose values are sealed by :class:`Sealer`.
SEALED = "aes256gcm-v1"
#: ``value_format`` of a row whose values are stored as they are (before sealing).
CLEAR = "clear"
#: What is shown in a value's place when it cannot be opened.
NO_KEY = "(encrypted; no key)"
OTHER_KEY = "(encrypted; another key)"
#: HKDF's ``info``: the purpose the derived key serves, and nothing else.
_PURPOSE = b"cpr-gateway shadow store values v1"
_NONCE_BYTES = 12  # AES-GCM's standard nonce; random, so at most 2^32 seals per data key
_SALT_BYTES = 16
#: Data keys a reader keeps derived: one per gateway process that wrote the rows read; when
#: more are met, the cache starts over (a derivation costs microseconds).
_MAX_CACHED_KEYS = 256


@dataclass(frozen=True, slots=True)
class RowContext:
    """Where a value sits: a sealed value opens only in the row and column it was sealed for."""

    route: str
    kind: str
    operation: str
    primary_backend: str
    shadow_backend: str
    record: str
    field: str
    subject: str

    def associated(self, side: str) -> bytes:
        """The associated data of the value on ``side`` (``primary`` or ``candidate``)."""
        parts = (
            self.route,
            self.kind,
            self.operation,
            self.primary_backend,
            self.shadow_backend,
            self.record,
            self.field,
            self.subject,
            side,
        )
        return "\x1f".join(parts).encode("utf-8")  # unit separator: absent from config names


class Sealer:
    """Seals values with a data key of its own and opens values sealed by any data key of
    the same shadow key (both derived from it with HKDF-SHA256)."""

    __slots__ = ("_keys", "_salt", "_shadow_key")

    def __init__(self, shadow_key: bytes) -> None:
        self._shadow_key = shadow_key
        self._salt = os.urandom(_SALT_BYTES)
        self._keys = {self._salt: self._data_key(self._salt)}

    def seal(self, value: str, associated: bytes) -> str:
        """``value`` sealed, as text for a TEXT column."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self._salt].encrypt(nonce, value.encode("utf-8"), associated)
        return base64.urlsafe_b64encode(self._salt + nonce + sealed).decode("ascii")

    def open(self, sealed: str, associated: bytes) -> str | None:
        """The value ``sealed`` holds; None when it does not open (another shadow key, another
        row or column, or altered)."""
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415 (see _data_key)

        try:
            raw = base64.urlsafe_b64decode(sealed.encode("ascii"))
            salt, nonce = raw[:_SALT_BYTES], raw[_SALT_BYTES : _SALT_BYTES + _NONCE_BYTES]
            ciphertext = raw[_SALT_BYTES + _NONCE_BYTES :]
            plain = self._key_of(salt).decrypt(nonce, ciphertext, associated)
            return plain.decode("utf-8")
        except (InvalidTag, ValueError, binascii.Error):  # UnicodeError is a ValueError
            return None

    def _key_of(self, salt: bytes) -> AESGCM:
        if len(salt) != _SALT_BYTES:
            raise ValueError("a sealed value too short for its salt")
        key = self._keys.get(salt)
        if key is None:
            if len(self._keys) >= _MAX_CACHED_KEYS:
                self._keys = {self._salt: self._keys[self._salt]}
            key = self._keys[salt] = self._data_key(salt)
        return key

    def _data_key(self, salt: bytes) -> AESGCM:
        # Imported here, not at the top: a worker that reads routing.yaml or never opens a
        # shadow store does not pay cryptography's memory (docs/benchmarks.md, P6).
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: PLC0415

        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_PURPOSE)
        return AESGCM(derived.derive(self._shadow_key))

    def __repr__(self) -> str:  # the key never reaches a log through repr
        return "Sealer(key=<redacted>)"


def reveal(
    stored: str, value_format: str, associated: bytes, sealer: Sealer | None
) -> tuple[str, bool]:
    """What a stored value shows, and whether it is the value itself: a clear row's value as
    it is; a sealed one opened with ``sealer``, else :data:`NO_KEY` or :data:`OTHER_KEY`."""
    if value_format == CLEAR:
        return stored, True
    if sealer is None:
        return NO_KEY, False
    opened = sealer.open(stored, associated) if value_format == SEALED else None
    return (OTHER_KEY, False) if opened is None else (opened, True)
