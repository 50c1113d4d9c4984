"""Sockets inside the agent's network namespace while the agent itself stays in the root one (it
must reach the backend). pyroute2 forks a child that enters the namespace, opens the socket and
passes its descriptor back (~15 ms): Python 3.11 has no ``os.setns``, and a setns in this process
would move every thread of it."""

from __future__ import annotations

import socket

from pyroute2 import netns as _netns


def namespace_socket(netns: str | None, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A non-blocking socket opened in ``netns`` (None: this process's namespace). A missing
    namespace is an error (FileNotFoundError), never created."""
    if netns is None:
        sock = socket.socket(family, kind, proto)
    else:
        sock = _netns.create_socket(netns, family, kind, proto, flags=0)
    sock.setblocking(False)
    return sock
