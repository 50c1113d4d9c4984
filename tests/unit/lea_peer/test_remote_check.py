"""Probe frames and ICMP echo requests of lea_peer/remote_check.py, without a network."""

from __future__ import annotations

import struct
import uuid

from lea_peer.remote_check import (
    BROADCAST,
    ETH_P_LEA_PROBE,
    REPLY,
    REQUEST,
    _checksum,
    decode_frame,
    encode_frame,
    icmp_echo_request,
)

SRC = bytes.fromhex("020000000001")


def test_a_probe_frame_round_trips() -> None:
    nonce, sender, target = b"n" * 16, uuid.uuid4(), uuid.uuid4()
    frame = encode_frame(BROADCAST, SRC, REQUEST, nonce, sender, target)
    assert len(frame) == 67, "Ethernet header, magic, kind, nonce, two peer ids"
    assert frame[:6] == BROADCAST and frame[6:12] == SRC
    assert struct.unpack_from("!H", frame, 12) == (ETH_P_LEA_PROBE,)
    probe = decode_frame(frame)
    assert probe is not None
    assert (probe.kind, probe.nonce, probe.sender, probe.target, probe.source_mac) == (
        REQUEST, nonce, sender, target, SRC,
    )


def test_frames_that_are_not_probes_are_ignored() -> None:
    good = encode_frame(BROADCAST, SRC, REPLY, b"n" * 16, uuid.uuid4(), uuid.uuid4())
    assert decode_frame(good) is not None
    assert decode_frame(good[:20]) is None, "truncated"
    assert decode_frame(good[:12] + b"\x08\x00" + good[14:]) is None, "another EtherType (IPv4)"
    assert decode_frame(good[:14] + b"XXXX" + good[18:]) is None, "another magic"
    assert decode_frame(good[:18] + b"\x07" + good[19:]) is None, "an unknown kind"


def test_the_icmp_echo_request_carries_a_valid_checksum() -> None:
    packet = icmp_echo_request(0x1234, 7, b"lea-underlay")
    assert packet[0] == 8 and packet[1] == 0
    assert struct.unpack_from("!HH", packet, 4) == (0x1234, 7)
    assert _checksum(packet) == 0, "a packet with its checksum in place sums to zero"
    assert _checksum(b"\x45") == _checksum(b"\x45\x00"), "odd lengths are padded"
