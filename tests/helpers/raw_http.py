"""Raw sockets against a real server: hand-made requests, and a WebSocket client that reads only when told.

``websockets``' own client reads in a background thread; a test of what the server does to a
client that stops reading needs one that does not read at all until asked::

    with RawWatch.open(server.url, token, rcvbuf=4096) as ws:   # handshake done, hello not read yet
        ...                                                      # nothing is read meanwhile
        messages, close = ws.read_until_closed(timeout=10)       # every message, then the close frame

Also: ``request(url, raw_bytes)`` sends bytes as they are and returns the status line's code, and
``server_side_socket_open(server_port, client_port)`` looks the server's end of a connection up in
/proc/net/tcp.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from tests.helpers.server import API


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def connect(url: str, *, rcvbuf: int | None = None, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to the server (``rcvbuf``: a small receive buffer, set before connecting)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(address(url))
    return sock


def read_response_head(sock: socket.socket, timeout: float) -> bytes:
    """Bytes up to the end of the response head (or what came before EOF); TimeoutError if none in time."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def status_of(head: bytes) -> int | None:
    if not head.startswith(b"HTTP/1.1 "):
        return None
    return int(head.split(b" ", 2)[1])


def request(url: str, raw: bytes, timeout: float = 5.0) -> tuple[int | None, bytes]:
    """Send ``raw`` on a new connection; (status, everything read until EOF or ``timeout``)."""
    with connect(url, timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return status_of(data), data


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Whether the server closes (EOF or reset) ``sock`` within ``timeout``; what it sends is dropped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def upgrade_request(url: str, token: str | None, query: dict[str, Any] | None = None,
                    extra_headers: list[tuple[str, str]] | None = None) -> bytes:
    host, port = address(url)
    target = API + "/watch" + (f"?{urlencode(query)}" if query else "")
    lines = [
        f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}", "Sec-WebSocket-Version: 13",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    lines += [f"{name}: {value}" for name, value in extra_headers or []]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass
class Close:
    code: int
    reason: str


@dataclass
class RawWatch:
    """``WS /api/v1/watch`` on a plain socket: reads only when a method is called."""

    sock: socket.socket
    buffer: bytes = b""
    messages: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, url: str, token: str | None, *, rcvbuf: int | None = None, after: int | None = None,
             timeout: float = 10.0) -> RawWatch:
        sock = connect(url, rcvbuf=rcvbuf, timeout=timeout)
        sock.sendall(upgrade_request(url, token, {"after": after} if after is not None else None))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(1)  # byte by byte: nothing after the head is read
            assert chunk, head
            head += chunk
        assert status_of(head) == 101, head
        return cls(sock)

    def __enter__(self) -> RawWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    @property
    def local_port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _fill(self, n: int, deadline: float) -> None:
        while len(self.buffer) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete frame in time")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionResetError("the server closed the connection without a close frame")
            self.buffer += chunk

    def frame(self, timeout: float = 10.0) -> tuple[int, bytes]:
        """The next frame from the server (unmasked): (opcode, payload)."""
        deadline = time.monotonic() + timeout
        self._fill(2, deadline)
        opcode, length = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
        offset = 2
        if length == 126:
            self._fill(4, deadline)
            length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
        elif length == 127:
            self._fill(10, deadline)
            length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
        self._fill(offset + length, deadline)
        payload = self.buffer[offset : offset + length]
        self.buffer = self.buffer[offset + length :]
        return opcode, payload

    def message(self, timeout: float = 10.0) -> dict[str, Any]:
        opcode, payload = self.frame(timeout)
        assert opcode == 1, (opcode, payload[:200])
        data = json.loads(payload)
        assert isinstance(data, dict)
        return data

    def read_until_closed(self, timeout: float) -> tuple[list[dict[str, Any]], Close]:
        """Every message until the server's close frame (within ``timeout``)."""
        deadline = time.monotonic() + timeout
        messages: list[dict[str, Any]] = []
        while True:
            opcode, payload = self.frame(max(0.01, deadline - time.monotonic()))
            if opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return messages, Close(code, payload[2:].decode("utf-8", "replace"))
            if opcode == 1:
                messages.append(json.loads(payload))

    def send_text(self, text: bytes) -> None:
        """One client frame (masked with a zero key, which leaves the payload as it is)."""
        n = len(text)
        if n < 126:
            head = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        self.sock.sendall(head + b"\0\0\0\0" + text)


def server_side_socket_open(server_port: int, client_port: int) -> bool:
    """Whether the server still has its end of the loopback connection from ``client_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table, encoding="ascii").read().splitlines()[1:]  # noqa: SIM115
        except FileNotFoundError:
            continue
        for line in lines:
            local, remote = line.split()[1:3]
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                return True
    return False


def rss_mib(pid: int) -> float:
    """The process's resident set (VmRSS) in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")
