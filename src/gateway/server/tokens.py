"""The admin API's bearer tokens: read once from ``admin.token_file``, compared in constant time.

The file holds one token per line. A line ``name:secret`` gives the secret a name, which the
``admin_action`` log line and the history record as who made a change; a bare ``secret`` is
named ``admin``. Blank lines and lines starting with ``#`` are skipped, so a Kubernetes Secret
holding one random value is a valid file as it is. Like the shadow key, a file that its group
or others may read is refused.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError
from gateway.storage.files import private_directory, read_secret

#: Who a bare secret (a line without ``name:``) is, in logs and history.
DEFAULT_NAME = "admin"
#: Shorter secrets are guessable; ``secrets.token_urlsafe(32)`` gives 43 characters.
MIN_SECRET_CHARS = 16
#: A token file is a few lines; a bigger file is not one (and is not read whole).
MAX_FILE_BYTES = 64 * 1024
_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
#: What a secret may hold: printable ASCII without spaces or ``:`` (an HTTP header carries it).
_SECRET = re.compile(r"[!-9;-~]+")


@dataclass(frozen=True, slots=True)
class AdminToken:
    """One accepted bearer token and the name its changes are recorded under."""

    name: str
    secret: str

    def __repr__(self) -> str:  # never the secret, in a traceback or a log
        return f"AdminToken({self.name!r})"


class AdminTokens:
    """The tokens the admin API accepts; none at all refuses every request."""

    def __init__(self, tokens: Iterable[AdminToken] = ()) -> None:
        self._tokens = tuple(tokens)

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def who(self, presented: str) -> str | None:
        """The name of the token ``presented`` is; None when it is none of them.

        Every token is compared, each with :func:`hmac.compare_digest`, so that the time taken
        tells neither how much of a secret matched nor which line did.
        """
        given = presented.encode("utf-8", "replace")
        found = None
        for token in self._tokens:
            if hmac.compare_digest(given, token.secret.encode("ascii")):
                found = token.name
        return found

    def first(self) -> AdminToken | None:
        """The file's first token: the one the ``canary`` command presents."""
        return self._tokens[0] if self._tokens else None


def read_tokens(path: Path) -> AdminTokens:
    """The tokens in ``path``; ConfigError naming the file if it is unreadable, readable by
    others than its owner, empty or malformed."""
    where = f"admin.token_file {path}"
    raw = read_secret(path, where, MAX_FILE_BYTES)
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([f"{where}: larger than {MAX_FILE_BYTES} bytes, not a token file"])
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: not ASCII text"]) from None
    return AdminTokens(parse_tokens(text, where))


def parse_tokens(text: str, where: str) -> list[AdminToken]:
    """The tokens of a token file's ``text``; ConfigError (one problem per bad line) otherwise.
    Messages name lines by number, never quote a secret."""
    tokens: list[AdminToken] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, secret = line.partition(":") if ":" in line else (DEFAULT_NAME, "", line)
        problem = _problem(name, secret, tokens)
        if problem:
            problems.append(f"{where}: line {number}: {problem}")
        else:
            tokens.append(AdminToken(name, secret))
    if not tokens and not problems:
        problems.append(f"{where}: holds no token")
    if problems:
        raise ConfigError(problems)
    return tokens


def _problem(name: str, secret: str, earlier: list[AdminToken]) -> str:
    if not _NAME.fullmatch(name):
        return "a name is 1-64 of A-Z a-z 0-9 . _ @ -"
    if len(secret) < MIN_SECRET_CHARS:
        return f"the secret is shorter than {MIN_SECRET_CHARS} characters"
    if not _SECRET.fullmatch(secret):
        return "the secret may hold only printable ASCII without spaces or ':'"
    if any(t.secret == secret for t in earlier):
        return "the same secret as an earlier line"
    return ""


def create_token_file(path: Path) -> bool:
    """Write a new random token to ``path`` (mode 600) unless it exists; True if it wrote one.

    For development stacks (``make run``); production mounts its own (docs/canary.md).
    """
    private_directory(path.parent)  # 0700
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    return True
