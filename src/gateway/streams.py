"""Stream I/O that every CPR Direkte server shares: the gateway's listener and the emulator.

Both read one request per connection under one deadline and close with the same
patience; keeping that here means a fix to either reaches both.
"""

from __future__ import annotations

import asyncio

from gateway.codec import Request, RequestFramer
from gateway.codec.framing import TIMEOUT
from gateway.codec.messages import LOOKUP_LENGTH
from gateway.errors import FramingError

#: One read takes at most the longest record plus one byte; more is an error anyway.
_READ_SIZE = LOOKUP_LENGTH + 1


async def read_request(
    reader: asyncio.StreamReader, framer: RequestFramer, within_s: float
) -> Request:
    """The framed request, or FramingError (garbage, early close, or not complete in time).

    ``within_s`` bounds the whole record, not each read: drip-feeding must not pay off.
    """
    try:
        async with asyncio.timeout(within_s):
            while True:
                chunk = await reader.read(_READ_SIZE)
                if not chunk:
                    raise framer.end_of_stream()
                framer.receive_data(chunk)
                request = framer.next_request()
                if request is not None:
                    return request
    except TimeoutError:
        raise FramingError(TIMEOUT, f"incomplete after {within_s:g}s") from None
    except OSError:  # reset or TLS failure mid-record: the peer is gone
        raise framer.end_of_stream() from None


async def close_patiently(writer: asyncio.StreamWriter, within_s: float) -> None:
    """Flush and close; a client that will not take its answer within ``within_s`` is aborted."""
    writer.close()
    try:
        async with asyncio.timeout(within_s):
            await writer.wait_closed()
    except (TimeoutError, OSError):
        writer.transport.abort()
