"""An asyncio TCP proxy between an agent and a backend that can misbehave like a real network.

- ``pause()``: nothing flows (bytes wait in the kernel's buffers) and new connections are
  accepted but not passed on; ``resume()`` lets everything through again, late.
- ``blackhole()``: connections stay open but every byte is read and dropped, both ways, and new
  connections are accepted and never passed on (a firewall that drops, a dead NAT entry).
- ``reset()``: every current connection is aborted with a TCP RST, on both sides.

    async with TcpProxy("127.0.0.1", backend_port) as proxy:
        connect_the_agent_to(proxy.port)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType

_CHUNK = 65536


class _Link:
    """One proxied connection: the client side and (once forwarding) the upstream side."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
            writer.transport.abort()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.accepted = 0  # connections accepted so far
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._blackhole = False
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self._links)

    def pause(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        """Forward normally again (also ends a black hole for new connections)."""
        self._blackhole = False
        self._flowing.set()

    def blackhole(self) -> None:
        self._blackhole = True
        self._flowing.set()

    def reset(self) -> None:
        """Abort every current connection with an RST; new ones are accepted as the mode says."""
        for link in list(self._links):
            link.abort()
            for task in link.tasks:
                task.cancel()
        self._links.clear()

    async def close(self) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            await self._flowing.wait()
            if self._blackhole:
                await self._drain_forever(reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                link.abort()
                return
            link.upstream = up_writer
            link.tasks = [
                asyncio.create_task(self._pump(reader, up_writer)),
                asyncio.create_task(self._pump(up_reader, writer)),
            ]
            await asyncio.gather(*link.tasks, return_exceptions=True)
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            self._links.discard(link)
            for w in (writer, link.upstream):
                if w is not None:
                    w.close()

    async def _drain_forever(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(_CHUNK):
            pass

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await self._flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    break
                await self._flowing.wait()  # paused after the read: hold the bytes until resumed
                if self._blackhole:
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()
