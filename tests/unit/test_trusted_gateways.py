"""`cpr-gateway backend --trusted-gateways CIDR[,CIDR]`: which callers' client address the
services' allow-lists use, read from the command line."""

from __future__ import annotations

import argparse
import ipaddress

import pytest

from cpr_devtools.backend import run_backend
from cpr_services.services import parse_networks


def test_networks_are_read_in_order_and_none_by_default() -> None:
    """Empty means nobody is trusted; spaces around a comma are fine; IPv6 too."""
    assert parse_networks("") == ()
    assert parse_networks("127.0.0.1/32, 10.0.0.0/8,fd00::/8") == (
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("gateway", "gateway"),
        ("10.0.0.1/8", "10.0.0.1/8"),
        ("10.0.0.0/33", "10.0.0.0/33"),
        ("127.0.0.1/32,x", "x"),
    ],
)
def test_a_part_that_is_not_a_network_is_named(text: str, part: str) -> None:
    """A typo, or host bits set (10.0.0.1/8 is probably a mistake), is refused by its part."""
    with pytest.raises(ValueError, match=f"^{part!r} is not a network"):
        parse_networks(text)


async def test_the_backend_command_refuses_a_bad_list_before_starting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit status 2 and the option named, as for a bad --drift."""
    args = argparse.Namespace(drift="", trusted_gateways="10.0.0.0/33")
    assert await run_backend(args) == 2
    assert capsys.readouterr().err.startswith("backend: --trusted-gateways: '10.0.0.0/33'")
