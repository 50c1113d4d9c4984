"""RemotePeerCheck for real: an L2 probe frame sent on the cluster's bridge, answered by the remote
agent through the tunnel.

Every agent runs a ``ProbeResponder`` on each bridge it owns: an AF_PACKET socket bound to the
bridge (opened inside the agent's namespace) that answers probe requests addressed to its peer id.
The leader's check broadcasts a request on its bridge (the bridge floods it into every tunnel) and
waits up to 5 s for the reply of the expected peer. Without one, it pings the remote's underlay
address (a raw ICMP echo from inside the namespace) so that the error says whether the underlay or
the tunnel is at fault.

Frame: Ethernet header with EtherType 0x88B5 (IEEE 802 "local experimental"), then
``b"LEAP"``, kind (1 request, 2 reply), a 16-byte nonce, the sender's and the target's peer ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
from dataclasses import dataclass
from uuid import UUID

from lea_peer.sockets import namespace_socket
from resources.configuration import ParameterError, ParameterPresent, ParameterStatus

ETH_P_LEA_PROBE = 0x88B5
MAGIC = b"LEAP"
REQUEST = 1
REPLY = 2
BROADCAST = b"\xff" * 6
PACKET_OUTGOING = 4  # sll_pkttype of a frame this host sent (packet sockets see those too)
_PAYLOAD = struct.Struct("!4sB16s16s16s")
_ETH_HEADER = 14
CHECK_TIMEOUT_S = 5.0
RESEND_S = 0.5
ICMP_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class ProbeFrame:
    kind: int
    nonce: bytes
    sender: UUID
    target: UUID
    source_mac: bytes


def encode_frame(dst: bytes, src: bytes, kind: int, nonce: bytes, sender: UUID, target: UUID) -> bytes:
    frame = dst + src + struct.pack("!H", ETH_P_LEA_PROBE)
    # 67 bytes: above the 60-byte Ethernet minimum, so no padding is needed.
    return frame + _PAYLOAD.pack(MAGIC, kind, nonce, sender.bytes, target.bytes)


def decode_frame(frame: bytes) -> ProbeFrame | None:
    """The probe in ``frame``, or None for anything else (a frame we must ignore)."""
    if len(frame) < _ETH_HEADER + _PAYLOAD.size:
        return None
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype != ETH_P_LEA_PROBE:
        return None
    magic, kind, nonce, sender, target = _PAYLOAD.unpack_from(frame, _ETH_HEADER)
    if magic != MAGIC or kind not in (REQUEST, REPLY):
        return None
    return ProbeFrame(kind, nonce, UUID(bytes=sender), UUID(bytes=target), frame[6:12])


def open_probe_socket(netns: str | None, bridge: str) -> socket.socket:
    """An AF_PACKET socket for probe frames, bound to ``bridge`` in ``netns``."""
    sock = namespace_socket(netns, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_LEA_PROBE))
    try:
        # The name is resolved with an ioctl on this very socket, so inside its namespace.
        sock.bind((bridge, ETH_P_LEA_PROBE))
    except OSError:
        sock.close()
        raise
    return sock


def _own_mac(sock: socket.socket) -> bytes:
    address: tuple[str, int, int, int, bytes] = sock.getsockname()
    return bytes(address[4])[:6]


class ProbeResponder:
    """Answers probe requests addressed to ``peer_id`` on one bridge until stopped."""

    def __init__(self, peer_id: UUID, netns: str | None, bridge: str) -> None:
        self.peer_id = peer_id
        self.netns = netns
        self.bridge = bridge
        self.answered = 0
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sock = await loop.run_in_executor(None, open_probe_socket, self.netns, self.bridge)
        self._task = asyncio.create_task(self._serve(self._sock), name=f"probe-responder-{self.bridge}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _serve(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        mac = _own_mac(sock)
        while True:
            try:
                data, address = await loop.sock_recvfrom(sock, 2048)
            except OSError:
                # The bridge went away under the socket (ENETDOWN/ENXIO): nothing left to answer on.
                return
            if address[2] == PACKET_OUTGOING:
                continue
            probe = decode_frame(data)
            if probe is None or probe.kind != REQUEST or probe.target != self.peer_id:
                continue
            reply = encode_frame(probe.source_mac, mac, REPLY, probe.nonce, self.peer_id, probe.sender)
            with contextlib.suppress(OSError):
                await loop.sock_sendall(sock, reply)
                self.answered += 1


async def check_remote_peer(
    netns: str | None,
    bridge: str,
    own_peer: UUID,
    remote_peer: UUID,
    remote_address: str,
    timeout_s: float = CHECK_TIMEOUT_S,
) -> ParameterStatus:
    """Present when ``remote_peer`` answers a probe on ``bridge`` within ``timeout_s``; else an
    Error that says whether its underlay address answered an ICMP echo."""
    loop = asyncio.get_running_loop()
    try:
        sock = await loop.run_in_executor(None, open_probe_socket, netns, bridge)
    except OSError as exc:
        return ParameterError(reason=f"cannot send probe frames on bridge {bridge}: {exc.strerror or exc}")
    try:
        nonce = os.urandom(16)
        request = encode_frame(BROADCAST, _own_mac(sock), REQUEST, nonce, own_peer, remote_peer)
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                await loop.sock_sendall(sock, request)
            resend_at = min(deadline, time.monotonic() + RESEND_S)
            while (left := resend_at - time.monotonic()) > 0:
                try:
                    data, address = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), left)
                except (TimeoutError, OSError):
                    break
                probe = decode_frame(data)
                if (
                    probe is not None
                    and address[2] != PACKET_OUTGOING
                    and probe.kind == REPLY
                    and probe.nonce == nonce
                    and probe.sender == remote_peer
                ):
                    ms = (time.monotonic() - started) * 1000
                    return ParameterPresent(detail=f"peer {remote_peer} answered on {bridge} in {ms:.0f} ms")
    finally:
        sock.close()
    reachable = await underlay_reachable(netns, remote_address) if remote_address else None
    underlay = {
        True: f"its underlay address {remote_address} answers ICMP echo, so the tunnel or the remote agent is at fault",
        False: f"its underlay address {remote_address} does not answer ICMP echo either",
        None: "no underlay address to test",
    }[reachable]
    return ParameterError(
        reason=f"peer {remote_peer} did not answer a probe frame on bridge {bridge} within {timeout_s:g} s; {underlay}"
    )


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_echo_request(ident: int, seq: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload


async def underlay_reachable(netns: str | None, address: str, timeout_s: float = ICMP_TIMEOUT_S) -> bool:
    """True when ``address`` answers an ICMP echo sent from inside ``netns`` within ``timeout_s``."""
    loop = asyncio.get_running_loop()
    try:
        sock = await loop.run_in_executor(
            None, namespace_socket, netns, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP
        )
    except OSError:
        return False
    ident = os.getpid() & 0xFFFF
    seq = int.from_bytes(os.urandom(2), "big")
    try:
        await loop.sock_sendto(sock, icmp_echo_request(ident, seq, b"lea-underlay"), (address, 0))
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            data, source = await asyncio.wait_for(loop.sock_recvfrom(sock, 2048), left)
            header = (data[0] & 0x0F) * 4  # a raw IPv4 socket hands over the IP header too
            if source[0] != address or len(data) < header + 8:
                continue
            kind, _code, _sum, got_ident, got_seq = struct.unpack_from("!BBHHH", data, header)
            if kind == 0 and got_ident == ident and got_seq == seq:
                return True
    except (TimeoutError, OSError):
        return False
    finally:
        sock.close()
    return False
