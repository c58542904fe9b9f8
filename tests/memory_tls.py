"""A TLS handshake between two SSLObjects over memory BIOs, in this process: each side
steps its handshake, then what each wrote is handed to the other, ``rounds`` times."""

from __future__ import annotations

import contextlib
import ssl


def pump_handshake(
    client: ssl.SSLObject,
    server: ssl.SSLObject,
    bios: list[ssl.MemoryBIO],
    rounds: int = 10,
) -> None:
    """``bios`` are (client in, client out, server in, server out); a side's handshake error
    other than wanting more to read propagates."""
    c_in, c_out, s_in, s_out = bios
    for _ in range(rounds):
        for side in (client, server):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        s_in.write(c_out.read())
        c_in.write(s_out.read())
