"""The cannelloni UDP format, version 2: how CanConnection relays carry CAN frames.

A datagram is a 5-byte header (version 2, op code DATA = 0, a sequence number that wraps at 256
and the number of frames, u16) and then per frame: the CAN id as in ``<linux/can.h>`` (u32, with
the EFF/RTR/ERR flag bits), a length byte (``0x80`` set for a CAN FD frame), for FD frames a flags
byte (BRS, ESI), then the payload; remote-request frames carry a length but no payload. All
big-endian. A real ``cannelloni -I ... -R ... -r PORT -l PORT`` on the other end interoperates; an
empty DATA datagram (count 0) is valid and ignored by cannelloni, and LEA's relays send one as a
keepalive.

Decoding never raises anything but :class:`MalformedDatagram`, whose message names the problem.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

VERSION = 2
OP_DATA = 0
_OP_NAMES = {0: "DATA", 1: "ACK", 2: "NACK"}
HEADER = struct.Struct(">BBBH")
_ID = struct.Struct(">I")

CAN_EFF_FLAG = 0x80000000
CAN_RTR_FLAG = 0x40000000
CAN_ERR_FLAG = 0x20000000
CAN_SFF_MASK = 0x000007FF
CAN_EFF_MASK = 0x1FFFFFFF
#: Set in the length byte of a CAN FD frame.
CANFD_FRAME = 0x80
CANFD_BRS = 0x01
CANFD_ESI = 0x02
CAN_MAX_DLEN = 8
CANFD_MAX_DLEN = 64
#: The largest datagram a relay sends: an IPv4/UDP payload that fits a 1500-byte underlay.
MAX_DATAGRAM = 1472


class MalformedDatagram(ValueError):
    """A datagram that is not a valid cannelloni v2 DATA packet (the message says why)."""


@dataclass(frozen=True, slots=True)
class CanFrame:
    """One CAN or CAN FD frame. ``can_id`` includes the EFF/RTR/ERR flag bits; a remote request
    (RTR) has no ``data`` and asks for ``rtr_length`` bytes."""

    can_id: int
    data: bytes = b""
    fd: bool = False
    flags: int = 0
    rtr_length: int = 0

    def __post_init__(self) -> None:
        problem = frame_problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def extended(self) -> bool:
        return bool(self.can_id & CAN_EFF_FLAG)

    @property
    def rtr(self) -> bool:
        return bool(self.can_id & CAN_RTR_FLAG)

    @property
    def identifier(self) -> int:
        """The 11- or 29-bit identifier, without flag bits."""
        return self.can_id & (CAN_EFF_MASK if self.extended else CAN_SFF_MASK)

    @property
    def length(self) -> int:
        return self.rtr_length if self.rtr else len(self.data)

    def wire_size(self) -> int:
        return 4 + 1 + (1 if self.fd else 0) + (0 if self.rtr else len(self.data))


def frame_problem(frame: CanFrame) -> str | None:
    """Why ``frame`` cannot be sent, or None."""
    if not 0 <= frame.can_id <= 0xFFFFFFFF:
        return f"CAN id {frame.can_id:#x} does not fit 32 bits"
    if not frame.can_id & CAN_EFF_FLAG and frame.can_id & ~(CAN_EFF_FLAG | CAN_RTR_FLAG | CAN_ERR_FLAG) > CAN_SFF_MASK:
        return f"standard CAN id {frame.can_id & CAN_EFF_MASK:#x} is larger than 11 bits (set the EFF flag)"
    limit = CANFD_MAX_DLEN if frame.fd else CAN_MAX_DLEN
    if len(frame.data) > limit:
        kind = "CAN FD" if frame.fd else "classic CAN"
        return f"{kind} frame with {len(frame.data)} bytes of payload (at most {limit})"
    if frame.fd and frame.can_id & CAN_RTR_FLAG:
        return "a CAN FD frame cannot be a remote request"
    if frame.rtr:
        if frame.data:
            return "a remote request frame carries no payload"
        if not 0 <= frame.rtr_length <= CAN_MAX_DLEN:
            return f"remote request for {frame.rtr_length} bytes (at most {CAN_MAX_DLEN})"
    elif frame.rtr_length:
        return "rtr_length is only for remote request frames"
    if not 0 <= frame.flags <= 0xFF or (frame.flags and not frame.fd):
        return "flags are CAN FD flags (one byte, FD frames only)"
    return None


@dataclass(frozen=True, slots=True)
class Packet:
    sequence: int
    frames: tuple[CanFrame, ...]


def encode(sequence: int, frames: Iterable[CanFrame]) -> bytes:
    """One DATA datagram with ``frames`` (no size limit here: see :func:`packets`)."""
    frames = tuple(frames)
    if len(frames) > 0xFFFF:
        raise ValueError(f"{len(frames)} frames do not fit one datagram (at most 65535)")
    parts = [HEADER.pack(VERSION, OP_DATA, sequence & 0xFF, len(frames))]
    for frame in frames:
        parts.append(_ID.pack(frame.can_id))
        if frame.fd:
            parts.append(bytes((len(frame.data) | CANFD_FRAME, frame.flags)))
        else:
            parts.append(bytes((frame.length,)))
        if not frame.rtr:
            parts.append(frame.data)
    return b"".join(parts)


def packets(sequence: int, frames: Iterable[CanFrame], max_size: int = MAX_DATAGRAM) -> Iterator[bytes]:
    """Datagrams of at most ``max_size`` bytes carrying ``frames`` in order, numbered from
    ``sequence`` (mod 256)."""
    batch: list[CanFrame] = []
    size = HEADER.size
    for frame in frames:
        need = frame.wire_size()
        if batch and (size + need > max_size or len(batch) == 0xFFFF):
            yield encode(sequence, batch)
            sequence, batch, size = sequence + 1, [], HEADER.size
        batch.append(frame)
        size += need
    if batch:
        yield encode(sequence, batch)


def decode(datagram: bytes) -> Packet:
    """The frames of one datagram; :class:`MalformedDatagram` names what is wrong."""
    if len(datagram) < HEADER.size:
        raise MalformedDatagram(f"short datagram: {len(datagram)} bytes, the header alone is {HEADER.size}")
    version, op_code, sequence, count = HEADER.unpack_from(datagram)
    if version != VERSION:
        raise MalformedDatagram(f"cannelloni version {version}, only version {VERSION} is understood")
    if op_code != OP_DATA:
        raise MalformedDatagram(f"op code {op_code} ({_OP_NAMES.get(op_code, 'unknown')}) is not DATA")
    frames: list[CanFrame] = []
    offset = HEADER.size
    end = len(datagram)
    for index in range(count):
        if offset + 5 > end:
            raise MalformedDatagram(f"the header announces {count} frames, the datagram ends in frame {index + 1}")
        (can_id,) = _ID.unpack_from(datagram, offset)
        length = datagram[offset + 4]
        offset += 5
        fd = bool(length & CANFD_FRAME)
        length &= ~CANFD_FRAME
        flags = 0
        if fd:
            if offset >= end:
                raise MalformedDatagram(f"frame {index + 1}: the datagram ends before its CAN FD flags")
            flags = datagram[offset]
            offset += 1
        limit = CANFD_MAX_DLEN if fd else CAN_MAX_DLEN
        if length > limit:
            kind = "CAN FD" if fd else "classic CAN"
            raise MalformedDatagram(f"frame {index + 1}: {kind} length {length} (at most {limit})")
        rtr = bool(can_id & CAN_RTR_FLAG) and not fd
        payload = b""
        if not rtr:
            if offset + length > end:
                raise MalformedDatagram(
                    f"frame {index + 1}: {length} bytes of payload announced, {end - offset} left in the datagram"
                )
            payload = bytes(datagram[offset:offset + length])
            offset += length
        try:
            frames.append(CanFrame(can_id, payload, fd, flags, length if rtr else 0))
        except ValueError as exc:
            raise MalformedDatagram(f"frame {index + 1}: {exc}") from None
    if offset != end:
        raise MalformedDatagram(f"{end - offset} bytes after the {count} frames the header announces")
    return Packet(sequence, tuple(frames))


@dataclass
class SequenceTracker:
    """Counts datagrams lost (gaps in the 8-bit sequence) and ones arriving late or twice."""

    expected: int | None = None
    lost: int = 0
    out_of_order: int = 0

    def seen(self, sequence: int) -> None:
        if self.expected is None:
            self.expected = (sequence + 1) & 0xFF
            return
        gap = (sequence - self.expected) & 0xFF
        if gap < 128:  # ahead (or on time): the ones in between are lost
            self.lost += gap
            self.expected = (sequence + 1) & 0xFF
        else:  # behind: a late or repeated datagram; the expectation stays
            self.out_of_order += 1
