"""Probe frames, probe ports and the probe station of lea_peer/remote_check.py, without a network.

A SOCK_SEQPACKET socket pair stands in for the TAP device: like a TAP descriptor, one read on it
is one whole message. The far end plays the bridge (and the remote agent behind it)."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import uuid
from collections.abc import Iterator

import pytest

from lea_peer.remote_check import (
    BROADCAST,
    ETH_P_LEA_PROBE,
    PROBE_PORT_PREFIX,
    REPLY,
    REQUEST,
    ProbePort,
    ProbeStation,
    check_remote_peer,
    decode_frame,
    encode_frame,
    probe_port_mac,
    probe_port_name,
)
from resources.configuration import ParameterError, ParameterPresent

SRC = bytes.fromhex("020000000001")
REMOTE_MAC = bytes.fromhex("fe0000000002")
OWN, REMOTE = uuid.uuid4(), uuid.uuid4()


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


def test_probe_port_names_fit_the_kernel_and_addresses_are_local_unicast_and_high() -> None:
    names = {probe_port_name() for _ in range(20)}
    assert len(names) == 20 and all(n.startswith(PROBE_PORT_PREFIX) and len(n) <= 15 for n in names)
    mac = probe_port_mac()
    assert len(mac) == 6 and mac[0] == 0xFE, "locally administered, unicast, above any vendor address"
    assert probe_port_mac() != mac


@pytest.fixture
def wire() -> Iterator[tuple[ProbePort, socket.socket]]:
    """A probe port on one end of a message-preserving pair; the other end is the bridge."""
    ours, bridge = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fd = os.dup(ours.fileno())
    ours.close()
    os.set_blocking(fd, False)
    port = ProbePort(fd, "leaprb-00000000", "br-lea", SRC)
    bridge.settimeout(10)
    try:
        yield port, bridge
    finally:
        port.close()
        bridge.close()


def test_the_station_answers_requests_for_its_peer_only(wire: tuple[ProbePort, socket.socket]) -> None:
    port, bridge = wire

    async def scenario() -> bytes:
        station = ProbeStation(OWN, port)
        station.start()
        try:
            bridge.send(encode_frame(BROADCAST, REMOTE_MAC, REQUEST, b"a" * 16, REMOTE, uuid.uuid4()))
            bridge.send(b"\x00" * 80)  # any other frame on the bridge
            bridge.send(encode_frame(BROADCAST, REMOTE_MAC, REQUEST, b"b" * 16, REMOTE, OWN))
            return await asyncio.to_thread(bridge.recv, 2048)
        finally:
            await station.stop()

    reply = decode_frame(asyncio.run(scenario()))
    assert reply is not None, "the first frame out is the answer to the request for OWN"
    assert (reply.kind, reply.nonce, reply.sender, reply.target) == (REPLY, b"b" * 16, OWN, REMOTE)
    assert reply.source_mac == SRC


def _remote_agent(bridge: socket.socket, replies: int) -> None:
    """Answer ``replies`` requests the way the remote station does."""
    for _ in range(replies):
        probe = decode_frame(bridge.recv(2048))
        assert probe is not None and probe.kind == REQUEST and probe.target == REMOTE
        assert probe.source_mac == SRC
        bridge.send(encode_frame(probe.source_mac, REMOTE_MAC, REPLY, probe.nonce, REMOTE, OWN))


def test_a_check_is_present_when_the_remote_peer_replies(wire: tuple[ProbePort, socket.socket]) -> None:
    port, bridge = wire

    async def scenario() -> object:
        station = ProbeStation(OWN, port)
        station.start()
        remote = asyncio.create_task(asyncio.to_thread(_remote_agent, bridge, 1))
        try:
            return await check_remote_peer(station, REMOTE, "", None, timeout_s=10)
        finally:
            await remote
            await station.stop()

    status = asyncio.run(scenario())
    assert isinstance(status, ParameterPresent)
    assert (status.detail or "").startswith(f"peer {REMOTE} answered on br-lea in ")


def test_a_reply_from_another_peer_or_for_another_nonce_does_not_count(wire: tuple[ProbePort, socket.socket]) -> None:
    port, bridge = wire

    def impostor() -> None:
        probe = decode_frame(bridge.recv(2048))
        assert probe is not None
        bridge.send(encode_frame(SRC, REMOTE_MAC, REPLY, probe.nonce, uuid.uuid4(), OWN))
        bridge.send(encode_frame(SRC, REMOTE_MAC, REPLY, b"x" * 16, REMOTE, OWN))

    async def scenario() -> object:
        station = ProbeStation(OWN, port)
        station.start()
        fake = asyncio.create_task(asyncio.to_thread(impostor))
        try:
            return await check_remote_peer(station, REMOTE, "", None, timeout_s=1.0)
        finally:
            await fake
            await station.stop()

    assert asyncio.run(scenario()) == ParameterError(
        reason=f"peer {REMOTE} did not answer a probe frame on bridge br-lea within 1 s; no underlay address to test"
    )


def test_a_check_whose_port_goes_away_is_an_error_saying_so(wire: tuple[ProbePort, socket.socket]) -> None:
    port, bridge = wire

    async def scenario() -> object:
        station = ProbeStation(OWN, port)
        station.start()
        check = asyncio.create_task(check_remote_peer(station, REMOTE, "", None, timeout_s=10))
        await asyncio.to_thread(bridge.recv, 2048)  # the first request is out: the check is waiting
        await station.stop()  # what removing the bridge does
        return await check

    assert asyncio.run(scenario()) == ParameterError(
        reason="the probe port on bridge br-lea went away during the check"
    )
