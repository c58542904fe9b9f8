"""`make run` (cpr-gateway up) creates the admin token routing.yaml names and says where it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpr_devtools.up import ensure_admin_token
from gateway.server.tokens import read_tokens


def test_up_creates_a_missing_token_once_and_prints_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mode 600, accepted by the gateway's reader; a second start keeps it and says where."""
    path = tmp_path / "var" / "admin.token"
    ensure_admin_token(path, "http://127.0.0.1:9100/")
    first = capsys.readouterr().out
    assert f"created the admin token (mode 600): {path}" in first
    assert f"dashboard: http://127.0.0.1:9100/ (token in {path})" in first
    assert path.stat().st_mode & 0o777 == 0o600
    token = path.read_text()
    assert read_tokens(path).who(token.strip()) == "admin"
    ensure_admin_token(path, "http://127.0.0.1:9100/")
    assert "created" not in capsys.readouterr().out
    assert path.read_text() == token


def test_up_without_a_token_file_says_the_api_is_closed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """routing.yaml without admin.token_file: nothing written, and the API refuses every call."""
    ensure_admin_token(None, "http://127.0.0.1:9100/")
    assert "refuses every call" in capsys.readouterr().out
