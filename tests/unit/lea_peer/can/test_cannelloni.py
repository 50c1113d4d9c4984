"""The cannelloni v2 codec against datagrams laid out byte by byte from the format's specification
(doc/udp_format.md of cannelloni: header version/op code/seq/count, then id u32, len (|0x80 for FD),
FD flags, data; big-endian), round trips, and malformed datagrams."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lea_peer.can.cannelloni import (
    CAN_EFF_FLAG,
    CAN_RTR_FLAG,
    CANFD_BRS,
    CanFrame,
    MalformedDatagram,
    Packet,
    SequenceTracker,
    decode,
    encode,
    packets,
)

# Each: the datagram as the specification lays it out, and what it carries.
SPEC_DATAGRAMS = [
    pytest.param(
        bytes.fromhex("02 00 07 0001" "00000123" "03" "112233"),
        Packet(7, (CanFrame(0x123, b"\x11\x22\x33"),)),
        id="classic standard id, 3 bytes",
    ),
    pytest.param(
        bytes.fromhex("02 00 ff 0001" "9abcdef0" "08" "0102030405060708"),
        Packet(255, (CanFrame(CAN_EFF_FLAG | 0x1ABCDEF0, bytes(range(1, 9))),)),
        id="classic extended id, 8 bytes",
    ),
    pytest.param(
        bytes.fromhex("02 00 00 0001" "000007ff" "00"),
        Packet(0, (CanFrame(0x7FF),)),
        id="zero-length",
    ),
    pytest.param(
        bytes.fromhex("02 00 01 0001" "40000100" "04"),
        Packet(1, (CanFrame(CAN_RTR_FLAG | 0x100, rtr_length=4),)),
        id="remote request: a length but no payload",
    ),
    pytest.param(
        bytes.fromhex("02 00 02 0001" "00000042" "c0" "01") + bytes(range(64)),
        Packet(2, (CanFrame(0x42, bytes(range(64)), fd=True, flags=CANFD_BRS),)),
        id="CAN FD, 64 bytes, bit rate switch",
    ),
    pytest.param(
        bytes.fromhex("02 00 03 0002" "80000001" "8c" "00" "aabbccddeeff001122334455" "0000000a" "02" "beef"),
        Packet(3, (CanFrame(CAN_EFF_FLAG | 1, bytes.fromhex("aabbccddeeff001122334455"), fd=True),
                   CanFrame(0xA, b"\xbe\xef"))),
        id="two frames: FD extended 12 bytes, then classic",
    ),
    pytest.param(bytes.fromhex("02 00 09 0000"), Packet(9, ()), id="empty DATA (keepalive)"),
]


@pytest.mark.parametrize(("datagram", "packet"), SPEC_DATAGRAMS)
def test_spec_datagrams_decode_and_encode_byte_for_byte(datagram: bytes, packet: Packet) -> None:
    assert decode(datagram) == packet
    assert encode(packet.sequence, packet.frames) == datagram


MALFORMED = [
    pytest.param(b"", "short datagram: 0 bytes", id="empty"),
    pytest.param(bytes.fromhex("02 00 01 00"), "short datagram: 4 bytes", id="short header"),
    pytest.param(bytes.fromhex("01 00 01 0000"), "version 1", id="wrong version"),
    pytest.param(bytes.fromhex("02 01 01 0000"), "op code 1 (ACK) is not DATA", id="ACK op code"),
    pytest.param(bytes.fromhex("02 00 01 0002" "00000123" "01" "aa"), "announces 2 frames", id="count > frames"),
    pytest.param(bytes.fromhex("02 00 01 0001" "00000123" "08" "aabb"), "8 bytes of payload announced, 2 left",
                 id="payload cut"),
    pytest.param(bytes.fromhex("02 00 01 0001" "00000123" "09") + bytes(9), "classic CAN length 9",
                 id="oversize classic"),
    pytest.param(bytes.fromhex("02 00 01 0001" "00000123" "c1" "00") + bytes(65), "CAN FD length 65",
                 id="oversize FD"),
    pytest.param(bytes.fromhex("02 00 01 0001" "00000123" "80"), "before its CAN FD flags", id="FD flags cut"),
    pytest.param(bytes.fromhex("02 00 01 0001" "00000800" "00"), "larger than 11 bits", id="standard id too big"),
    pytest.param(bytes.fromhex("02 00 01 0001" "00000123" "00" "ff"), "1 bytes after the 1 frames", id="trailing"),
    pytest.param(bytes.fromhex("02 00 01 0001" "40000123" "09"), "classic CAN length 9", id="RTR too long"),
]


@pytest.mark.parametrize(("datagram", "message"), MALFORMED)
def test_malformed_datagrams_are_refused_with_the_reason(datagram: bytes, message: str) -> None:
    with pytest.raises(MalformedDatagram, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(datagram)


frames = st.one_of(
    st.builds(lambda i, d: CanFrame(i, d), st.integers(0, 0x7FF), st.binary(max_size=8)),
    st.builds(lambda i, d: CanFrame(CAN_EFF_FLAG | i, d), st.integers(0, 0x1FFFFFFF), st.binary(max_size=8)),
    st.builds(lambda i, d, f: CanFrame(CAN_EFF_FLAG | i, d, fd=True, flags=f),
              st.integers(0, 0x1FFFFFFF), st.binary(max_size=64), st.integers(0, 3)),
    st.builds(lambda i, n: CanFrame(CAN_RTR_FLAG | i, rtr_length=n), st.integers(0, 0x7FF), st.integers(0, 8)),
)


@given(st.integers(0, 255), st.lists(frames, max_size=40))
def test_any_frames_round_trip(sequence: int, batch: list[CanFrame]) -> None:
    assert decode(encode(sequence, batch)) == Packet(sequence, tuple(batch))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_are_refused_never_anything_else(datagram: bytes) -> None:
    with contextlib.suppress(MalformedDatagram):
        decode(datagram)


@given(st.lists(frames, min_size=1, max_size=200), st.integers(40, 1472))
def test_packets_split_by_size_and_keep_the_order(batch: list[CanFrame], max_size: int) -> None:
    datagrams = list(packets(254, batch, max_size))
    decoded = [decode(d) for d in datagrams]
    assert [f for p in decoded for f in p.frames] == batch
    assert [p.sequence for p in decoded] == [(254 + i) % 256 for i in range(len(decoded))]
    assert all(len(d) <= max_size for d in datagrams if len(decode(d).frames) > 1)


def test_frames_that_cannot_exist_are_refused_when_built() -> None:
    with pytest.raises(ValueError, match="9 bytes of payload"):
        CanFrame(1, bytes(9))
    with pytest.raises(ValueError, match="cannot be a remote request"):
        CanFrame(CAN_RTR_FLAG | 1, fd=True)
    with pytest.raises(ValueError, match="FD frames only"):
        CanFrame(1, flags=CANFD_BRS)


def test_the_sequence_tracker_counts_gaps_across_the_wrap_and_late_datagrams() -> None:
    tracker = SequenceTracker()
    for sequence in (250, 251, 254, 255, 0, 3):  # 252, 253 lost; 1, 2 lost
        tracker.seen(sequence)
    assert (tracker.lost, tracker.out_of_order) == (4, 0)
    tracker.seen(2)  # late
    assert (tracker.lost, tracker.out_of_order, tracker.expected) == (4, 1, 4)
