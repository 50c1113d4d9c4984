"""tests/helpers/tcp_proxy.py itself: forwards, pauses (late delivery), black-holes and resets."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers.tcp_proxy import TcpProxy

WAIT_S = 10.0


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def nothing_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1024), seconds)
    except TimeoutError:
        return True
    return data == b""


def test_forward_pause_blackhole_reset() -> None:
    async def main() -> None:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server, TcpProxy("127.0.0.1", port) as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"one")
            assert await asyncio.wait_for(reader.readexactly(3), WAIT_S) == b"one"

            proxy.pause()
            writer.write(b"two")
            assert await nothing_within(reader, 0.3)
            proxy.resume()
            assert await asyncio.wait_for(reader.readexactly(3), WAIT_S) == b"two"  # late, not lost

            proxy.blackhole()
            writer.write(b"three")
            assert await nothing_within(reader, 0.3)
            late_reader, late_writer = await asyncio.open_connection("127.0.0.1", proxy.port)  # accepted...
            late_writer.write(b"four")
            assert await nothing_within(late_reader, 0.3)  # ...and never answered
            proxy.resume()

            proxy.reset()
            with pytest.raises(ConnectionResetError):  # an RST, not an orderly end of stream
                await asyncio.wait_for(reader.read(1024), WAIT_S)
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(late_reader.read(1024), WAIT_S)
            assert proxy.open_connections == 0
            writer.close()
            late_writer.close()

    asyncio.run(main())
