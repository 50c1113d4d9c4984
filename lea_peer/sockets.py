"""Descriptors the data plane sends and receives on, none of which needs CAP_NET_RAW.

``open_tap`` makes a TAP device in this process's namespace (CAP_NET_ADMIN and access to
/dev/net/tun); the device stays attached to its descriptor when the link is later moved into
another namespace, so the agent never has to enter one for it.

``namespace_socket`` opens an ordinary socket inside the agent's namespace (``--netns``) while the
agent itself stays in the root one (it must reach the backend). pyroute2 forks a child that enters
the namespace, opens the socket and passes its descriptor back (~15 ms): Python 3.11 has no
``os.setns``, and a setns in this process would move every thread of it.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct

from pyroute2 import netns as _netns

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int), linux/if_tun.h
TUNSETTXFILTER = 0x400454D1  # _IOW('T', 209, unsigned int)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000  # whole Ethernet frames, without the 4-byte packet-information header
_IFREQ = struct.Struct("16sH")


def open_tap(name: str) -> int:
    """The non-blocking descriptor of a new TAP device ``name`` in this process's namespace. It is
    not persistent: closing the descriptor (or the process dying) removes the device."""
    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), IFF_TAP | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


def filter_tap(fd: int, addresses: list[bytes]) -> None:
    """Let the TAP hand over only frames sent to one of ``addresses`` (at most 8, exact matches,
    broadcast included): the kernel drops the rest of what the bridge floods to the port."""
    fcntl.ioctl(fd, TUNSETTXFILTER, struct.pack("HH", 0, len(addresses)) + b"".join(addresses))


def namespace_socket(netns: str | None, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A non-blocking socket opened in ``netns`` (None: this process's namespace). A missing
    namespace is an error (FileNotFoundError), never created."""
    if netns is None:
        sock = socket.socket(family, kind, proto)
    else:
        sock = _netns.create_socket(netns, family, kind, proto, flags=0)
    sock.setblocking(False)
    return sock
