"""CanRelay: a CanConnection, CAN frames between two benches' buses over UDP in cannelloni's format.

Both ends bind ``local:port`` and send to ``remote:port`` (like ``cannelloni -l P -r P -R ADDR``);
the socket is opened in the agent's ``--netns`` and connected to the remote, so it takes only the
remote's datagrams and the kernel reports ICMP errors (nothing listens, no route) on it.

- Frames put on the bus in one pass of the event loop leave in as few datagrams as fit
  (``cannelloni.packets``), each with the next sequence number (mod 256).
- Every ``keepalive_s`` an empty DATA datagram goes out (valid cannelloni, ignored by it).
- Whether the remote is there follows lea_peer/can/liveness.py: a remote that sent a keepalive
  and is then silent for ``lost_after_s`` is lost (Error), one that never sent one (a real
  cannelloni) never is; a failing send is an Error too, except "connection refused" before the
  remote was ever heard (its relay may start later). The next datagram from the remote makes it
  Present again; ``on_change`` is called on each change (the agent re-checks at once).
- Malformed datagrams are counted and dropped, never raised. Metrics: frames_sent,
  frames_received, datagrams_lost (sequence gaps), datagrams_malformed, datagrams_out_of_order,
  frames_dropped (the socket buffer stayed full, or a send failed).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import socket
import time
from collections import deque
from collections.abc import Callable

from lea_peer.can import cannelloni
from lea_peer.can.bus import BusPort, FrameBus
from lea_peer.can.cannelloni import CanFrame, MalformedDatagram, SequenceTracker
from lea_peer.can.liveness import Liveness
from lea_peer.sockets import namespace_socket
from resources.configuration import ParameterError, ParameterPresent

log = logging.getLogger("lea_peer.can.relay")

KEEPALIVE_S = 1.0
LOST_AFTER_S = 3.0
#: Datagrams waiting for room in the socket's send buffer before frames are dropped.
BACKLOG = 1024
#: Datagrams read per wake-up before the loop gets a turn again.
_READ_BATCH = 64
_RECV_SIZE = 65535


class RelayFailure(Exception):
    """The relay cannot start; ``str()`` names the address and the cause."""


def _cause(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def address_family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class CanRelay:
    def __init__(
        self,
        bus: FrameBus,
        local: str,
        remote: str,
        port: int,
        netns: str | None = None,
        keepalive_s: float = KEEPALIVE_S,
        lost_after_s: float = LOST_AFTER_S,
        on_change: Callable[[], None] | None = None,
        label: str = "relay",
    ) -> None:
        self.bus, self.local, self.remote, self.port, self.netns = bus, local, remote, port, netns
        self.keepalive_s, self.lost_after_s = keepalive_s, lost_after_s
        self.on_change = on_change
        self.label = label
        self.frames_sent = self.frames_received = self.frames_dropped = 0
        self.datagrams_malformed = 0
        self.last_malformed: str | None = None
        self.tracker = SequenceTracker()
        self._sock: socket.socket | None = None
        self._port: BusPort | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sequence = 0
        self._outgoing: list[CanFrame] = []
        self._flush_scheduled = False
        self._backlog: deque[tuple[bytes, int]] = deque()
        self._tick: asyncio.TimerHandle | None = None
        self._last_keepalive = 0.0
        self.liveness = Liveness(lost_after_s)
        # Ticks divide the keepalive interval evenly and come at least 4 times per lost-after time.
        self._tick_s = keepalive_s / max(1, math.ceil(keepalive_s / (lost_after_s / 4)))

    @property
    def remote_endpoint(self) -> str:
        return endpoint(self.remote, self.port)

    @property
    def heard_at(self) -> float | None:
        """When the remote was last heard (monotonic); None: never."""
        return self.liveness.heard_at

    @property
    def speaks_keepalive(self) -> bool:
        """The remote sent an empty datagram: it is a LEA relay, and silence means it is gone."""
        return self.liveness.speaks_keepalive

    @property
    def running(self) -> bool:
        return self._sock is not None

    async def start(self) -> None:
        """Bind ``local:port`` in the namespace, connect to the remote, attach to the bus."""
        if self._sock is not None:
            return
        loop = asyncio.get_running_loop()
        family = address_family(self.remote or self.local)
        where = endpoint(self.local or ("::" if family == socket.AF_INET6 else "0.0.0.0"), self.port)
        try:
            sock = await loop.run_in_executor(None, namespace_socket, self.netns, family, socket.SOCK_DGRAM, 0)
        except FileNotFoundError:
            raise RelayFailure(f"network namespace {self.netns} does not exist") from None
        except OSError as exc:
            raise RelayFailure(f"cannot open a UDP socket for {where}: {_cause(exc)}") from exc
        try:
            sock.bind((self.local, self.port))
        except OSError as exc:
            sock.close()
            raise RelayFailure(f"cannot bind UDP {where}: {_cause(exc)}") from exc
        try:
            sock.connect((self.remote, self.port))
        except OSError as exc:
            sock.close()
            raise RelayFailure(f"cannot send to {self.remote_endpoint}: {_cause(exc)}") from exc
        self._sock, self._loop = sock, loop
        loop.add_reader(sock.fileno(), self._readable)
        self._port = self.bus.attach(f"{self.label} {self.remote_endpoint}", self._from_bus)
        self._keepalive()
        self._schedule_tick()

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if self._port is not None:
            self._port.detach()
            self._port = None
        sock, self._sock = self._sock, None
        if sock is not None and self._loop is not None:
            self._loop.remove_reader(sock.fileno())
            self._loop.remove_writer(sock.fileno())
            sock.close()
        self._backlog.clear()

    # -- state ------------------------------------------------------------------------------------
    def metrics(self) -> dict[str, int]:
        return {
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "datagrams_lost": self.tracker.lost,
            "datagrams_malformed": self.datagrams_malformed,
            "datagrams_out_of_order": self.tracker.out_of_order,
            "frames_dropped": self.frames_dropped,
        }

    def problem(self) -> str | None:
        """Why the relay does not work now, or None."""
        if self._sock is None:
            return f"the relay to {self.remote_endpoint} is not running"
        return self.liveness.problem(self.remote_endpoint)

    def state(self, what: str) -> ParameterPresent | ParameterError:
        """The parameter's state: ``what`` describes the relay (its bus and ends)."""
        problem = self.problem()
        if problem is not None:
            return ParameterError(reason=f"{what}: {problem}", metrics=self.metrics())
        if self.heard_at is None:
            heard = "waiting for the first datagram from the remote"
        elif self.speaks_keepalive:
            heard = "peer relay alive"
        else:
            heard = "the remote sends no keepalives (a plain cannelloni?): silence is not checked"
        if self.last_malformed:
            heard += f"; last malformed datagram: {self.last_malformed}"
        return ParameterPresent(detail=f"{what}; {heard}"[:500], metrics=self.metrics())

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- receiving --------------------------------------------------------------------------------
    def _readable(self) -> None:
        sock = self._sock
        for _ in range(_READ_BATCH):
            if sock is None or self._sock is not sock:
                return
            try:
                data = sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # an ICMP error for an earlier send
                self._send_failed(exc)
                continue
            self._datagram(data)

    def _datagram(self, data: bytes) -> None:
        try:
            packet = cannelloni.decode(data)
        except MalformedDatagram as exc:
            self.datagrams_malformed += 1
            self.last_malformed = str(exc)[:200]
            log.debug("%s: malformed datagram from %s: %s", self.label, self.remote_endpoint, exc)
            self._heard(keepalive=False)  # it is there, even if it speaks nonsense
            return
        self.tracker.seen(packet.sequence)
        self._heard(keepalive=not packet.frames)
        if not packet.frames:
            return
        self.frames_received += len(packet.frames)
        port = self._port
        if port is not None:
            for frame in packet.frames:
                port.send(frame)

    def _heard(self, keepalive: bool) -> None:
        if self.liveness.heard(time.monotonic(), keepalive):
            log.info("%s to %s: datagrams again, the relay works", self.label, self.remote_endpoint)
            self._changed()

    # -- sending ----------------------------------------------------------------------------------
    def _from_bus(self, frame: CanFrame, seen: frozenset[str]) -> None:
        self._outgoing.append(frame)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)  # frames that arrive together leave together

    def _flush(self) -> None:
        self._flush_scheduled = False
        frames, self._outgoing = self._outgoing, []
        if self._sock is None:
            return
        for datagram in cannelloni.packets(self._sequence, frames):
            self._sequence = (self._sequence + 1) & 0xFF
            self._send(datagram, int.from_bytes(datagram[3:5], "big"))

    def _send(self, datagram: bytes, frames: int) -> None:
        sock = self._sock
        if sock is None:
            return
        if self._backlog:
            self._queue(datagram, frames)
            return
        try:
            sock.send(datagram)
        except (BlockingIOError, InterruptedError):
            self._queue(datagram, frames)
            if self._loop is not None:
                self._loop.add_writer(sock.fileno(), self._writable)
            return
        except OSError as exc:
            self.frames_dropped += frames
            self._send_failed(exc)
            return
        self.frames_sent += frames

    def _queue(self, datagram: bytes, frames: int) -> None:
        if len(self._backlog) >= BACKLOG:
            self.frames_dropped += frames
            return
        self._backlog.append((datagram, frames))

    def _writable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while self._backlog:
            datagram, frames = self._backlog[0]
            try:
                sock.send(datagram)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._backlog.popleft()
                self.frames_dropped += frames
                self._send_failed(exc)
                continue
            self._backlog.popleft()
            self.frames_sent += frames
        if self._loop is not None:
            self._loop.remove_writer(sock.fileno())

    def _send_failed(self, exc: OSError) -> None:
        refused = exc.errno == errno.ECONNREFUSED
        reason = f"sending to {self.remote_endpoint} failed: {_cause(exc)}"
        if refused:
            reason += " (nothing listens there: relay peer lost)"
        if self.liveness.send_failed(time.monotonic(), reason, refused):
            log.warning("%s: %s", self.label, reason)
            self._changed()

    # -- keepalive and silence --------------------------------------------------------------------
    def _keepalive(self) -> None:
        self._last_keepalive = time.monotonic()
        datagram = cannelloni.encode(self._sequence, ())
        self._sequence = (self._sequence + 1) & 0xFF
        self._send(datagram, 0)

    def _schedule_tick(self) -> None:
        if self._loop is not None and self._sock is not None:
            self._tick = self._loop.call_later(self._tick_s, self._on_tick)

    def _on_tick(self) -> None:
        now = time.monotonic()
        if now - self._last_keepalive >= self.keepalive_s - self._tick_s / 2:
            self._keepalive()
        if self.liveness.tick(now):
            problem = self.problem()
            if problem is not None:
                log.warning("%s: %s", self.label, problem)
            self._changed()
        self._schedule_tick()

