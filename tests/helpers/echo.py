"""A tiny UDP echo (there is no ``ping`` here) that runs inside a network namespace.

In a test, ``udp_echo_server(ns, address)`` runs a server thread on a socket opened inside ``ns``
and ``udp_echo(ns, address, size)`` sends one datagram from another namespace with "don't
fragment" set (so a too-small tunnel MTU fails instead of fragmenting) and waits for it back.
By hand: ``ip netns exec NS python -m tests.helpers.echo serve 0.0.0.0`` and
``ip netns exec NS python -m tests.helpers.echo send 192.168.77.2 --size 1472``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import socket
import sys
import threading
from collections.abc import Iterator

from pyroute2 import netns as _netns

PORT = 7007
IP_MTU_DISCOVER = 10  # linux/in.h; not exported by Python's socket module
IP_PMTUDISC_DO = 2
#: UDP payload that makes a full 1500-byte IP packet (1500 - 20 IP - 8 UDP).
FULL_FRAME_PAYLOAD = 1472


def _socket(ns: str | None) -> socket.socket:
    if ns is None:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock: socket.socket = _netns.create_socket(ns, socket.AF_INET, socket.SOCK_DGRAM, flags=0)
    return sock


@contextlib.contextmanager
def udp_echo_server(ns: str | None, address: str = "0.0.0.0", port: int = PORT) -> Iterator[None]:
    """Echo every datagram on ``address:port`` inside ``ns`` until the block ends."""
    sock = _socket(ns)
    sock.bind((address, port))
    stop_r, stop_w = os.pipe()

    def serve() -> None:
        while True:
            ready, _, _ = select.select([sock.fileno(), stop_r], [], [])
            if stop_r in ready:
                return
            data, peer = sock.recvfrom(65535)
            sock.sendto(data, peer)

    thread = threading.Thread(target=serve, name="udp-echo", daemon=True)
    thread.start()
    try:
        yield
    finally:
        os.write(stop_w, b"x")
        thread.join(10)
        sock.close()
        os.close(stop_r)
        os.close(stop_w)


def udp_echo(ns: str | None, address: str, size: int = 64, timeout_s: float = 2.0, attempts: int = 3) -> bool:
    """True when a ``size``-byte datagram to ``address`` (sent with DF) comes back within
    ``timeout_s`` in one of ``attempts`` tries (the first may wait for ARP across the tunnel)."""
    sock = _socket(ns)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO)
        sock.settimeout(timeout_s)
        payload = os.urandom(size)
        for _ in range(attempts):
            try:
                sock.sendto(payload, (address, PORT))
                while True:
                    data, _peer = sock.recvfrom(65535)
                    if data == payload:
                        return True
            except TimeoutError:
                continue
            except OSError:
                return False  # EMSGSIZE (larger than the path MTU) or unreachable
        return False
    finally:
        sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.echo")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("address", nargs="?", default="0.0.0.0")
    send = sub.add_parser("send")
    send.add_argument("address")
    send.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    if args.command == "serve":
        with udp_echo_server(None, args.address):
            threading.Event().wait()
        return 0
    ok = udp_echo(None, args.address, args.size)
    print("echo ok" if ok else "no echo")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
