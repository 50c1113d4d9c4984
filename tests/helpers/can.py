"""A test's end of cannelloni UDP: an ECU (or a remote relay) as a plain socket, blocking with timeouts.

    with CannelloniSocket("127.0.0.2", port, remote=("127.0.0.1", port)) as peer:
        peer.send([CanFrame(0x123, b"hi")])
        packet = peer.receive(1.0)        # a decoded Packet, or None after the timeout

``netns`` opens it inside a network namespace (lea_peer.sockets.namespace_socket).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable

from lea_peer.can.cannelloni import CanFrame, Packet, decode, encode
from lea_peer.sockets import namespace_socket


def free_port(*hosts: str) -> int:
    """A UDP port free on every one of ``hosts`` (all IPv4) at the moment of asking."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first:
            first.bind((hosts[0], 0))
            port = int(first.getsockname()[1])
            others = []
            try:
                for host in hosts[1:]:
                    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    others.append(other)
                    other.bind((host, port))
                return port
            except OSError:
                continue
            finally:
                for other in others:
                    other.close()
    raise RuntimeError(f"no UDP port free on all of {hosts}")


class CannelloniSocket:
    def __init__(self, host: str, port: int, remote: tuple[str, int] | None = None, netns: str | None = None) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = namespace_socket(netns, family, socket.SOCK_DGRAM)
        self.sock.setblocking(True)
        self.sock.bind((host, port))
        self.remote = remote
        self.sequence = 0

    def __enter__(self) -> CannelloniSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, frames: Iterable[CanFrame], sequence: int | None = None, to: tuple[str, int] | None = None) -> None:
        """One datagram with ``frames`` (the next sequence number unless given)."""
        number = self.sequence if sequence is None else sequence
        self.sequence = (number + 1) & 0xFF
        self.send_raw(encode(number, frames), to)

    def send_raw(self, datagram: bytes, to: tuple[str, int] | None = None) -> None:
        target = to or self.remote
        assert target is not None, "no remote to send to"
        self.sock.sendto(datagram, target)

    def receive_raw(self, timeout: float) -> tuple[bytes, tuple[str, int]] | None:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, sender = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        return data, (str(sender[0]), int(sender[1]))

    def receive(self, timeout: float, keepalives: bool = False) -> Packet | None:
        """The next datagram, decoded (empty keepalives skipped unless ``keepalives``); None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.receive_raw(deadline - time.monotonic())
            if got is None:
                return None
            packet = decode(got[0])
            if packet.frames or keepalives:
                return packet
            if time.monotonic() > deadline:
                return None

    def frames(self, count: int, timeout: float) -> list[CanFrame]:
        """Frames until ``count`` arrived or ``timeout`` passed (fewer then)."""
        deadline = time.monotonic() + timeout
        got: list[CanFrame] = []
        while len(got) < count:
            packet = self.receive(deadline - time.monotonic())
            if packet is None:
                break
            got.extend(packet.frames)
        return got

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.sock.setblocking(False)
            while True:
                self.sock.recv(65535)
        self.sock.setblocking(True)
