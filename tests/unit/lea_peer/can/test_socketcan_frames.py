"""struct can_frame / struct canfd_frame as <linux/can.h> lays them out (host byte order id, len,
pad/flags, two reserved bytes, data padded to 8 or 64), round trips with the codec's CanFrame, and
the socket bus's fan-out with a socketpair standing in for the AF_CAN socket."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lea_peer.can import socketcan
from lea_peer.can.cannelloni import CAN_EFF_FLAG, CAN_RTR_FLAG, CANFD_BRS, CANFD_ESI, CanFrame
from lea_peer.can.socketcan import CAN_MTU, CANFD_MTU, FrameTooShort, SocketCanBus, pack_frame, unpack_frame

ORDER = "<" if sys.byteorder == "little" else ">"


def test_a_classic_frame_is_16_bytes_laid_out_like_struct_can_frame() -> None:
    raw = pack_frame(CanFrame(0x123, b"\x11\x22\x33"))
    assert len(raw) == CAN_MTU == 16
    assert raw[:4] == struct.pack(f"{ORDER}I", 0x123)  # canid_t in host byte order
    assert raw[4] == 3 and raw[5:8] == b"\0\0\0"  # len, __pad, __res0, len8_dlc
    assert raw[8:] == b"\x11\x22\x33" + b"\0" * 5


def test_an_fd_frame_is_72_bytes_with_its_flags_after_the_length() -> None:
    frame = CanFrame(CAN_EFF_FLAG | 0x1ABCDEF0, bytes(range(64)), fd=True, flags=CANFD_BRS)
    raw = pack_frame(frame)
    assert len(raw) == CANFD_MTU == 72
    assert raw[:4] == struct.pack(f"{ORDER}I", CAN_EFF_FLAG | 0x1ABCDEF0)
    assert (raw[4], raw[5], raw[6], raw[7]) == (64, CANFD_BRS, 0, 0)
    assert raw[8:] == bytes(range(64))
    assert unpack_frame(raw) == frame


def test_a_remote_request_carries_its_length_and_no_data() -> None:
    frame = CanFrame(CAN_RTR_FLAG | 0x7FF, rtr_length=4)
    raw = pack_frame(frame)
    assert raw[4] == 4 and raw[8:] == b"\0" * 8
    assert unpack_frame(raw) == frame


def test_the_kernels_fdf_flag_is_not_carried_over() -> None:
    raw = struct.pack(f"{ORDER}IBBBB64s", 0x10, 2, CANFD_BRS | 0x04, 0, 0, b"\xaa\xbb")
    assert unpack_frame(raw) == CanFrame(0x10, b"\xaa\xbb", fd=True, flags=CANFD_BRS)


def test_a_read_of_another_size_is_refused_by_name() -> None:
    with pytest.raises(FrameTooShort, match="returned 5 bytes"):
        unpack_frame(b"\0" * 5)


frames = st.one_of(
    st.builds(
        lambda ext, ident, data: CanFrame((CAN_EFF_FLAG | ident) if ext else ident & 0x7FF, data),
        st.booleans(), st.integers(0, 0x1FFFFFFF), st.binary(max_size=8),
    ),
    st.builds(
        lambda ext, ident, data, flags: CanFrame((CAN_EFF_FLAG | ident) if ext else ident & 0x7FF, data, True, flags),
        st.booleans(), st.integers(0, 0x1FFFFFFF), st.binary(max_size=64),
        st.sampled_from([0, CANFD_BRS, CANFD_ESI, 3]),
    ),
    st.builds(
        lambda ident, n: CanFrame(CAN_RTR_FLAG | (ident & 0x7FF), rtr_length=n),
        st.integers(0, 0x7FF), st.integers(0, 8),
    ),
)


@given(frames)
def test_every_frame_survives_a_round_trip(frame: CanFrame) -> None:
    raw = pack_frame(frame)
    assert len(raw) == (CANFD_MTU if frame.fd else CAN_MTU)
    assert unpack_frame(raw) == frame


def test_the_bus_sends_port_frames_to_the_socket_and_socket_frames_to_every_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The kernel boundary is the socket: a SOCK_SEQPACKET pair keeps frame boundaries like CAN_RAW.
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    opened: list[tuple[str | None, str]] = []

    def fake_open(netns: str | None, interface: str) -> socket.socket:
        opened.append((netns, interface))
        return ours

    monkeypatch.setattr(socketcan, "open_can_socket", fake_open)

    async def scenario() -> None:
        bus = SocketCanBus("vcan-lea", "ns1")
        await bus.open()
        assert opened == [("ns1", "vcan-lea")]
        got_a: list[CanFrame] = []
        got_b: list[CanFrame] = []
        a = bus.attach("relay a", lambda frame, seen: got_a.append(frame))
        bus.attach("relay b", lambda frame, seen: got_b.append(frame))
        frame = CanFrame(0x42, b"\x01")
        a.send(frame)
        assert got_b == [frame] and got_a == []  # never back to the sender
        assert kernel.recv(100) == pack_frame(frame)
        fd = CanFrame(0x43, bytes(12), fd=True)
        kernel.send(pack_frame(fd))
        for _ in range(50):
            if got_a:
                break
            await asyncio.sleep(0.01)
        assert got_a == [fd] and got_b == [frame, fd]
        assert bus.metrics() == {"frames_out": 1, "frames_in": 1, "frames_dropped": 0}
        bus.close()
        assert ours.fileno() == -1
        a.send(frame)  # after close: nothing written, nothing raised

    asyncio.run(scenario())
    kernel.close()
