"""RemotePeerCheck for real: an L2 probe frame sent on the cluster's bridge, answered by the remote
agent through the tunnel, with nothing but CAP_NET_ADMIN (what packaging/lea-peer.service grants).

Frames go in and out through a *probe port*: a TAP device joined to the bridge. What the agent
writes to the port's descriptor the bridge receives on that port (and floods into every tunnel);
what the bridge sends to the port the agent reads, one frame per read (the kernel passes on only
broadcasts and frames to the station's address, not all the bench's flooded traffic; the rest
count as the port's tx drops). A packet socket would need
CAP_NET_RAW; a TAP needs CAP_NET_ADMIN and /dev/net/tun. The port is not persistent: the kernel
removes it when its descriptor closes, so an agent that dies leaves no port behind. The data plane
(lea_peer/dataplane/netlink.py) makes the port and joins it; this module speaks on it.

Each agent runs one ``ProbeStation`` per bridge it owns: it answers probe requests addressed to its
peer id and hands replies to the checks waiting for them. The leader's check broadcasts a request,
resends it every 0.5 s and waits up to 5 s for the reply of the expected peer. When the first
request goes unanswered it tests the remote's underlay address meanwhile, within the same 5 s,
with a TCP connection attempt to a closed port (no raw socket either): "connection refused" (a
reset came back) means the host answers, so the tunnel or the remote agent is at fault; no route,
host unreachable (no ARP reply) or silence means it does not. TCP rather than a UDP datagram: a
reset is not rate-limited, while the ICMP port unreachable a UDP datagram draws competes with the
ICMP errors for the tunnel's own packets to a host without the tunnel (about one a second).

Frame: Ethernet header with EtherType 0x88B5 (IEEE 802 "local experimental"), then
``b"LEAP"``, kind (1 request, 2 reply), a 16-byte nonce, the sender's and the target's peer ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
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
_PAYLOAD = struct.Struct("!4sB16s16s16s")
_ETH_HEADER = 14
_MAX_FRAME = 65536  # a read returns one whole frame, whatever the bridge's MTU
CHECK_TIMEOUT_S = 5.0
RESEND_S = 0.5
#: The probe port's name: this prefix and 8 hex digits (15 characters, the kernel's limit).
PROBE_PORT_PREFIX = "leaprb-"
#: Traceroute's first port: closed on nearly every host, so a live one answers with a TCP reset.
UNDERLAY_PORT = 33434
UNDERLAY_MIN_S = 1.0


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


def probe_port_name() -> str:
    """A fresh name for a probe port (random: with --netns it is made in one namespace, then moved)."""
    return f"{PROBE_PORT_PREFIX}{os.urandom(4).hex()}"


def probe_port_mac() -> bytes:
    """A random locally administered unicast address starting with fe.

    Used twice, each fresh. As the TAP device's own address: a bridge that picks its address from
    its lowest port never picks this one, so ports coming and going do not change the bridge's
    address (libvirt's convention for TAP devices). As the source of the station's frames: it must
    differ from the device's own, which the bridge keeps as a local entry and delivers to itself."""
    return b"\xfe" + os.urandom(5)


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def _set_once(future: asyncio.Future[None]) -> None:
    # The loop may call a reader again before the task waiting on the future runs.
    if not future.done():
        future.set_result(None)


class ProbePortClosed(Exception):
    """The probe port went away while a check waited on it."""


class ProbePort:
    """One TAP port on a bridge, by its non-blocking descriptor (owned: ``close`` removes the
    device). One read is one whole frame, one write sends one; ``mac`` is the source address of
    the frames sent on it (not the device's own address)."""

    def __init__(self, fd: int, name: str, bridge: str, mac: bytes) -> None:
        self.fd = fd
        self.name = name
        self.bridge = bridge
        self.mac = mac

    def send(self, frame: bytes) -> None:
        os.write(self.fd, frame)

    async def receive(self) -> bytes:
        """The next frame the bridge sends to this port; OSError once the device is gone."""
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(BlockingIOError):
                return os.read(self.fd, _MAX_FRAME)
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.fd, _set_once, readable)
            try:
                await readable
            finally:
                loop.remove_reader(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ProbeStation:
    """On one probe port: answers probe requests addressed to ``peer_id`` and resolves the checks
    waiting for a reply, until stopped (which closes the port) or the port goes away."""

    def __init__(self, peer_id: UUID, port: ProbePort) -> None:
        self.peer_id = peer_id
        self.port = port
        self.answered = 0
        self.received = 0  # frames read from the port
        self._waiting: dict[bytes, tuple[UUID, asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name=f"probe-station-{self.port.bridge}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.port.close()
        self._fail_waiting()

    def ask(self, nonce: bytes, target: UUID) -> asyncio.Future[None]:
        """Send a request for ``target`` (again, with the same nonce); the future resolves with its
        reply, or fails with ProbePortClosed."""
        if nonce not in self._waiting:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            if not self.running:
                future.set_exception(ProbePortClosed())
            self._waiting[nonce] = (target, future)
        with contextlib.suppress(OSError):  # a full queue drops it; the next resend goes
            self.port.send(encode_frame(BROADCAST, self.port.mac, REQUEST, nonce, self.peer_id, target))
        return self._waiting[nonce][1]

    def forget(self, nonce: bytes) -> None:
        self._waiting.pop(nonce, None)

    def _fail_waiting(self) -> None:
        for _target, future in self._waiting.values():
            if not future.done():
                future.set_exception(ProbePortClosed())

    async def _serve(self) -> None:
        try:
            while True:
                try:
                    data = await self.port.receive()
                except OSError:
                    return  # the device was deleted under us: nothing left to answer on
                self.received += 1
                probe = decode_frame(data)
                if probe is not None:
                    self._handle(probe)
        finally:
            self._fail_waiting()

    def _handle(self, probe: ProbeFrame) -> None:
        if probe.kind == REQUEST and probe.target == self.peer_id:
            reply = encode_frame(probe.source_mac, self.port.mac, REPLY, probe.nonce, self.peer_id, probe.sender)
            with contextlib.suppress(OSError):
                self.port.send(reply)
                self.answered += 1
        elif probe.kind == REPLY and (waiting := self._waiting.get(probe.nonce)) is not None:
            target, future = waiting
            if probe.sender == target and not future.done():
                future.set_result(None)


async def check_remote_peer(
    station: ProbeStation,
    remote_peer: UUID,
    remote_address: str,
    netns: str | None,
    timeout_s: float = CHECK_TIMEOUT_S,
) -> ParameterStatus:
    """Present when ``remote_peer`` answers a probe on the station's bridge within ``timeout_s``;
    else an Error that says whether its underlay address answers."""
    bridge = station.port.bridge
    nonce = os.urandom(16)
    started = time.monotonic()
    deadline = started + timeout_s
    underlay: asyncio.Task[tuple[bool, str]] | None = None
    try:
        while (left := deadline - time.monotonic()) > 0:
            reply = station.ask(nonce, remote_peer)
            try:
                await asyncio.wait_for(asyncio.shield(reply), min(left, RESEND_S))
            except TimeoutError:
                if underlay is None and remote_address:
                    budget = max(deadline - time.monotonic(), UNDERLAY_MIN_S)
                    underlay = asyncio.create_task(underlay_answer(netns, remote_address, budget))
                continue
            except ProbePortClosed:
                return ParameterError(reason=f"the probe port on bridge {bridge} went away during the check")
            ms = (time.monotonic() - started) * 1000
            return ParameterPresent(detail=f"peer {remote_peer} answered on {bridge} in {ms:.0f} ms")
        station.forget(nonce)  # before the wait below: a station stopping meanwhile fails no orphan future
        if underlay is None and remote_address:
            underlay = asyncio.create_task(underlay_answer(netns, remote_address, UNDERLAY_MIN_S))
        answer = await underlay if underlay is not None else None
    finally:
        station.forget(nonce)
        if underlay is not None:
            underlay.cancel()
    if answer is None:
        said = "no underlay address to test"
    elif answer[0]:
        fault = "so the tunnel or the remote agent is at fault"
        said = f"its underlay address {remote_address} answers ({answer[1]}), {fault}"
    else:
        said = f"its underlay address {remote_address} does not answer either ({answer[1]})"
    return ParameterError(
        reason=f"peer {remote_peer} did not answer a probe frame on bridge {bridge} within {timeout_s:g} s; {said}"
    )


_NOT_ANSWERING = {
    errno.ENETUNREACH: "network unreachable: no route to it",
    errno.EHOSTUNREACH: "host unreachable: no ARP reply, or an ICMP host unreachable came back",
}


async def underlay_answer(netns: str | None, address: str, timeout_s: float) -> tuple[bool, str]:
    """Whether ``address`` answers a TCP connection attempt to a closed port made from inside
    ``netns`` within ``timeout_s``, and how (a short phrase for the Error)."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        sock = await loop.run_in_executor(None, namespace_socket, netns, family, socket.SOCK_STREAM, 0)
    except OSError as exc:
        return False, f"cannot open a socket to test it: {exc.strerror or exc}"
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (address, UNDERLAY_PORT)), timeout_s)
    except TimeoutError:
        silence = f"nothing came back to a TCP connection attempt within {timeout_s:.1f} s"
        return False, f"{silence}: host down, or a firewall drops it"
    except ConnectionRefusedError:
        return True, f"it refused a TCP connection to port {UNDERLAY_PORT}"
    except OSError as exc:
        return False, _NOT_ANSWERING.get(exc.errno or 0, exc.strerror or str(exc))
    finally:
        sock.close()
    return True, f"it accepted a TCP connection to port {UNDERLAY_PORT}"
