"""A body that never finishes arriving is answered 408 and the connection
closed, on a real server over a real socket."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from chatdash.settings import get_settings
from tests.security.api_server import serve_api

TIMEOUT = 1.0  # CHATDASH_BODY_TIMEOUT_SECONDS for this server (10 s by default)
GRACE = 5.0    # how much longer than the timeout the answer may take


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with serve_api(tmp_path_factory.mktemp("slow"), {"CHATDASH_BODY_TIMEOUT_SECONDS": str(TIMEOUT)}) as address:
        yield address


async def send_part_of_a_body(host: str, port: int, path: str) -> tuple[bytes, float, bool]:
    """Declare 900 bytes, send 7, then wait for the server: (answer, seconds, closed)."""
    reader, writer = await asyncio.open_connection(host, port)
    started = time.monotonic()
    # The store routes read the body once the secret is right (the server inherits it).
    auth = f"Authorization: Bearer {get_settings().store_secret}\r\n"
    writer.write(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}"
                 f"Content-Length: 900\r\n\r\n".encode() + b'{"visi')
    await writer.drain()
    try:
        # Read until the server closes the connection; it must do so by itself.
        answer = await asyncio.wait_for(reader.read(), TIMEOUT + GRACE)
        closed = reader.at_eof()
    finally:
        writer.close()
    return answer, time.monotonic() - started, closed


@pytest.mark.parametrize("path", ["/api/track", "/api/visitor", "/api/store/orders"])
def test_a_body_that_stops_arriving_gets_408_and_the_connection_is_closed(server, path):
    answer, seconds, closed = asyncio.run(send_part_of_a_body(*server, path))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(body) == {"error": f"the request body did not arrive within {TIMEOUT:g} s", "detail": []}
    assert closed
    assert TIMEOUT <= seconds < TIMEOUT + GRACE


def test_a_body_sent_slowly_but_in_time_is_read(server):
    async def slow_but_complete() -> bytes:
        host, port = server
        reader, writer = await asyncio.open_connection(host, port)
        body = b'{"visitor": ""}'
        writer.write(f"POST /api/visitor HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
        for i in range(0, len(body), 5):
            writer.write(body[i:i + 5])
            await writer.drain()
            await asyncio.sleep(TIMEOUT / 10)  # pacing the client, not waiting on the server
        answer = await asyncio.wait_for(reader.read(), TIMEOUT + GRACE)
        writer.close()
        return answer

    answer = asyncio.run(slow_but_complete())
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b'"visitor"' in answer
