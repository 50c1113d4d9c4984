"""An AF_CAN raw socket as a frame bus: the kernel plane's relays attach to the vcan bridge here.

The socket is CAN_RAW with CAN_RAW_FD_FRAMES, bound to one CAN interface (opened in the agent's
``--netns``); frames go in and out as ``struct can_frame`` (16 bytes) and ``struct canfd_frame``
(72 bytes) from ``<linux/can.h>``: the CAN id with its EFF/RTR/ERR bits in host byte order, the
length, for FD the flags (BRS, ESI), two reserved bytes, then the payload padded to 8 or 64.

:class:`SocketCanBus` is a :class:`~lea_peer.can.bus.FrameBus`: ports attach to an in-process bus
of the interface's name, and one port of it is the socket. A frame a port sends goes to the other
ports and out on the interface; a frame read from the interface goes to every port. The socket
does not read back what it wrote (CAN_RAW_RECV_OWN_MSGS stays off), so nothing loops; other
sockets and cangw rules on the interface see it (CAN_RAW_LOOPBACK stays on).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct

from lea_peer.can.bus import BusPort, CanBus, Receiver
from lea_peer.can.cannelloni import CAN_RTR_FLAG, CANFD_BRS, CANFD_ESI, CanFrame
from lea_peer.sockets import namespace_socket

log = logging.getLogger("lea_peer.can.socketcan")

CAN_FRAME = struct.Struct("=IBBBB8s")  # can_id, len, __pad, __res0, len8_dlc, data[8]
CANFD_FRAME = struct.Struct("=IBBBB64s")  # can_id, len, flags, __res0, __res1, data[64]
CAN_MTU = CAN_FRAME.size  # 16
CANFD_MTU = CANFD_FRAME.size  # 72
#: The flags a CAN FD frame carries across the relay (newer kernels also set CANFD_FDF, 0x04, on
#: every FD frame they hand out; that is implied by the FD length byte in cannelloni's format).
_FD_FLAGS = CANFD_BRS | CANFD_ESI
#: Frames read per wake-up before the loop gets a turn again.
_READ_BATCH = 256


class FrameTooShort(ValueError):
    """What a CAN socket returned is neither a CAN nor a CAN FD frame."""


def pack_frame(frame: CanFrame) -> bytes:
    """The ``struct can_frame`` or ``struct canfd_frame`` of ``frame``."""
    if frame.fd:
        return CANFD_FRAME.pack(frame.can_id, len(frame.data), frame.flags & 0xFF, 0, 0, frame.data)
    return CAN_FRAME.pack(frame.can_id, frame.length, 0, 0, 0, frame.data)


def unpack_frame(raw: bytes) -> CanFrame:
    """The frame in one read from a CAN_RAW socket (16 or 72 bytes)."""
    if len(raw) == CANFD_MTU:
        can_id, length, flags, _, _, data = CANFD_FRAME.unpack(raw)
        return CanFrame(can_id & ~CAN_RTR_FLAG, data[: min(length, 64)], fd=True, flags=flags & _FD_FLAGS)
    if len(raw) == CAN_MTU:
        can_id, length, _, _, _, data = CAN_FRAME.unpack(raw)
        length = min(length, 8)
        if can_id & CAN_RTR_FLAG:
            return CanFrame(can_id, b"", rtr_length=length)
        return CanFrame(can_id, data[:length])
    raise FrameTooShort(
        f"a CAN socket returned {len(raw)} bytes, neither a CAN ({CAN_MTU}) nor a CAN FD ({CANFD_MTU}) frame"
    )


def open_can_socket(netns: str | None, interface: str) -> socket.socket:
    """A non-blocking CAN_RAW socket with CAN FD frames, bound to ``interface`` in ``netns``."""
    sock = namespace_socket(netns, socket.AF_CAN, socket.SOCK_RAW, socket.CAN_RAW)
    try:
        sock.setsockopt(socket.SOL_CAN_RAW, socket.CAN_RAW_FD_FRAMES, 1)
        sock.bind((interface,))
    except OSError:
        sock.close()
        raise
    return sock


class SocketCanBus:
    """The frame bus of one CAN interface (the vcan bridge); :meth:`open` before the first attach."""

    def __init__(self, interface: str, netns: str | None = None) -> None:
        self.name = interface
        self.netns = netns
        self._hub = CanBus(interface)
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kernel: BusPort | None = None
        #: ifindex of the interface the socket was bound to (set by the plane that opened it).
        self.bound_to = 0
        #: Frames written to / read from the interface, and ones the kernel would not take.
        self.frames_out = self.frames_in = self.frames_dropped = 0
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    async def open(self) -> None:
        """Open and bind the socket (an OSError when it cannot: the caller names the interface)."""
        if self._sock is not None:
            return
        loop = asyncio.get_running_loop()
        sock = await loop.run_in_executor(None, open_can_socket, self.netns, self.name)
        self._sock, self._loop = sock, loop
        loop.add_reader(sock.fileno(), self._readable)
        if self._kernel is None:
            self._kernel = self._hub.attach(f"AF_CAN socket on {self.name}", self._write)

    async def reopen(self) -> None:
        """Bind a new socket (the interface was recreated); the attached ports stay."""
        self._close_socket()
        await self.open()

    def attach(self, name: str, receive: Receiver | None) -> BusPort:
        return self._hub.attach(name, receive)

    @property
    def ports(self) -> list[str]:
        return self._hub.ports

    def _close_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(sock.fileno())
            sock.close()

    def close(self) -> None:
        if self._kernel is not None:
            self._kernel.detach()
            self._kernel = None
        self._close_socket()

    def metrics(self) -> dict[str, int]:
        return {"frames_out": self.frames_out, "frames_in": self.frames_in, "frames_dropped": self.frames_dropped}

    def _write(self, frame: CanFrame, seen: frozenset[str]) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            sock.send(pack_frame(frame))
        except (BlockingIOError, InterruptedError):
            self.frames_dropped += 1  # the interface's queue is full (ENOBUFS): CAN has no retry either
        except OSError as exc:
            self.frames_dropped += 1
            if exc.errno != errno.ENOBUFS:
                self.last_error = f"cannot send a frame on {self.name}: {exc.strerror or exc}"
                log.debug("%s", self.last_error)
        else:
            self.frames_out += 1

    def _readable(self) -> None:
        for _ in range(_READ_BATCH):
            sock, port = self._sock, self._kernel
            if sock is None or port is None:
                return
            try:
                raw = sock.recv(CANFD_MTU)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ENETDOWN: the interface went down; frames come again when it is up
                self.last_error = f"cannot read frames on {self.name}: {exc.strerror or exc}"
                return
            try:
                frame = unpack_frame(raw)
            except ValueError as exc:
                self.last_error = str(exc)
                continue
            self.frames_in += 1
            port.send(frame)
