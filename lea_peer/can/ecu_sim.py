"""A SIMULATED ECU endpoint: a UDP address that stands in for a CAN device on a host without CAN.

``lea-peer run --can-sim can0=udp:127.0.0.1:30000`` makes device ``can0`` a :class:`CanBus` and
binds UDP 127.0.0.1:30000 in the agent's ``--netns``. Cannelloni datagrams received there are the
frames the ECU sent on ``can0``; frames routed to ``can0`` go, batched per pass of the event loop,
to the address the ECU last sent from (none yet: counted as unsent). Nothing here is a CAN
controller, and everything it reports says "simulated ECU endpoint".
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from dataclasses import dataclass

from lea_peer.can import cannelloni
from lea_peer.can.bus import CanBus
from lea_peer.can.cannelloni import CanFrame, MalformedDatagram, SequenceTracker
from lea_peer.can.relay import address_family, endpoint
from lea_peer.sockets import namespace_socket

log = logging.getLogger("lea_peer.can.ecu_sim")

LABEL = "simulated ECU endpoint"
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_READ_BATCH = 64


class SimulationError(ValueError):
    """A ``--can-sim`` value that cannot be used; ``str()`` names the problem."""


@dataclass(frozen=True)
class EcuAddress:
    device: str
    host: str
    port: int

    @property
    def text(self) -> str:
        return f"udp:{endpoint(self.host, self.port)}"


def parse_can_sim(text: str) -> EcuAddress:
    """``DEVICE=udp:HOST:PORT`` (IPv6: ``udp:[::1]:PORT``) as an address; SimulationError says why not."""
    device, sep, where = text.partition("=")
    if not sep:
        raise SimulationError(f"{text!r}: expected DEVICE=udp:HOST:PORT, e.g. can0=udp:127.0.0.1:30000")
    if not _INTERFACE.match(device):
        raise SimulationError(f"{text!r}: {device!r} is not an interface name (1-15 letters, digits, . _ : -)")
    scheme, sep, rest = where.partition(":")
    if scheme != "udp" or not sep:
        raise SimulationError(f"{text!r}: the endpoint must start with udp: (udp:HOST:PORT)")
    host, sep, port_text = rest.rpartition(":")
    if not sep or not host:
        raise SimulationError(f"{text!r}: expected udp:HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        raise SimulationError(f"{text!r}: {host!r} is not an IP address") from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise SimulationError(f"{text!r}: the port {port_text!r} is not a number from 1 to 65535")
    return EcuAddress(device, host, int(port_text))


class SimulatedEcu:
    """Device ``address.device`` as a bus plus the UDP endpoint the (simulated) ECU talks to."""

    def __init__(self, address: EcuAddress, netns: str | None = None) -> None:
        self.address = address
        self.netns = netns
        self.bus = CanBus(address.device)
        self._port = self.bus.attach(LABEL, self._to_ecu)
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.ecu: tuple[str, int] | None = None  # where the ECU last sent from
        self.frames_from_ecu = self.frames_to_ecu = self.frames_unsent = self.datagrams_malformed = 0
        self.tracker = SequenceTracker()
        self._sequence = 0
        self._outgoing: list[CanFrame] = []
        self._flush_scheduled = False

    @property
    def description(self) -> str:
        return f"{LABEL} {self.address.text} (simulation)"

    async def start(self) -> None:
        """Bind the endpoint; OSError (its message names the address) when it cannot."""
        if self._sock is not None:
            return
        loop = asyncio.get_running_loop()
        where = self.address.text
        try:
            sock = await loop.run_in_executor(
                None, namespace_socket, self.netns, address_family(self.address.host), socket.SOCK_DGRAM, 0
            )
        except FileNotFoundError:
            raise OSError(f"{LABEL} {where}: network namespace {self.netns} does not exist") from None
        try:
            sock.bind((self.address.host, self.address.port))
        except OSError as exc:
            sock.close()
            raise OSError(f"{LABEL} {where}: cannot bind it: {exc.strerror or exc}") from exc
        self._sock, self._loop = sock, loop
        loop.add_reader(sock.fileno(), self._readable)

    async def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock.fileno())
            sock.close()

    def metrics(self) -> dict[str, int]:
        return {
            "frames_from_ecu": self.frames_from_ecu,
            "frames_to_ecu": self.frames_to_ecu,
            "frames_unsent": self.frames_unsent,
            "datagrams_malformed": self.datagrams_malformed,
            "datagrams_lost": self.tracker.lost,
        }

    def _readable(self) -> None:
        for _ in range(_READ_BATCH):
            sock = self._sock
            if sock is None:
                return
            try:
                data, sender = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("%s: receiving failed: %s", self.description, exc)
                return
            self.ecu = (str(sender[0]), int(sender[1]))
            try:
                packet = cannelloni.decode(data)
            except MalformedDatagram as exc:
                self.datagrams_malformed += 1
                log.debug("%s: malformed datagram from %s: %s", self.description, sender, exc)
                continue
            self.tracker.seen(packet.sequence)
            self.frames_from_ecu += len(packet.frames)
            for frame in packet.frames:
                self._port.send(frame)

    def _to_ecu(self, frame: CanFrame, seen: frozenset[str]) -> None:
        self._outgoing.append(frame)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        frames, self._outgoing = self._outgoing, []
        sock, ecu = self._sock, self.ecu
        if sock is None or ecu is None:
            self.frames_unsent += len(frames)
            return
        for datagram in cannelloni.packets(self._sequence, frames):
            self._sequence = (self._sequence + 1) & 0xFF
            count = int.from_bytes(datagram[3:5], "big")
            try:
                sock.sendto(datagram, ecu)
            except OSError as exc:
                self.frames_unsent += count
                log.debug("%s: sending to %s failed: %s", self.description, ecu, exc)
                continue
            self.frames_to_ecu += count
