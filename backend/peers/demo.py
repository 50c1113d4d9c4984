"""Demo peers: a labelled simulation of test benches, for trying the app and for tests.

Only peers whose descriptor says ``demo`` are simulated. Each applies the parameters of its
configuration in dependency order with seeded, realistic delays (``delay_scale`` 0 makes it
instant), can fail a given parameter or drop offline mid-deployment (failure injection), and can
be switched online/offline. A demo peer that goes offline forgets its configuration, like a bench
that reboots.

When storage refuses writes (a full disk), what the benches could not say is kept (per peer: its
connection state, its latest report) and said again after a growing pause (``Backoff``: at once,
then RETRY_FIRST doubled up to RETRY_MAX); meanwhile nothing else is attempted, and stopping drops
it all.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

from backend import actions
from backend.manager import ResourcesManager
from backend.peers.broker import PeerBroker
from backend.peers.scheduler import Scheduler
from resources.backoff import Backoff
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterReport,
    ParameterStatus,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
    dependency_order,
)
from resources.errors import LeaError, StorageFailed
from resources.events import EventType
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.state import Offline, Online, PeerConnectionState
from resources.wire import EventBatch, Resync

log = logging.getLogger(__name__)
ACTOR = "demo-simulation"
#: Seconds before the second retry of writes storage refused; doubled per failure up to RETRY_MAX.
RETRY_FIRST = 0.1
RETRY_MAX = 5.0

#: Typical seconds a bench needs per parameter kind (jittered by +-50 %, times delay_scale).
BASE_DELAY: dict[ParameterKind, float] = {
    ParameterKind.DEVICE_INTERFACE: 0.15,
    ParameterKind.ETHERNET_BRIDGE: 0.3,
    ParameterKind.GRE_INTERFACE: 0.4,
    ParameterKind.INTERFACE_JOIN: 0.1,
    ParameterKind.CAN_BRIDGE: 0.3,
    ParameterKind.CAN_CONNECTION: 0.5,
    ParameterKind.CAN_LOCAL_ROUTE: 0.15,
    ParameterKind.REMOTE_PEER_CHECK: 0.6,
}


@dataclass(frozen=True)
class ParameterFailure:
    peer: str  # peer name
    kind: ParameterKind
    reason: str = "simulated failure"


@dataclass(frozen=True)
class OfflineFault:
    peer: str  # peer name
    after_parameters: int  # goes offline after applying this many parameters
    back_after: float | None = 0.5  # seconds until it comes back (None: stays offline)


@dataclass
class DemoFaults:
    """Failure injection for demo peers (tests and demonstrations)."""

    failures: list[ParameterFailure] = field(default_factory=list)
    offline: list[OfflineFault] = field(default_factory=list)


def demo_address(peer_id: UUID) -> str:
    """A stable, clearly simulated address (10.77.0.0/16) for a demo peer."""
    return f"10.77.{(peer_id.int >> 8) % 250 + 1}.{peer_id.int % 250 + 1}"


@dataclass
class _DemoPeer:
    peer: PeerDescriptor
    online: bool = False
    applied: set[UUID] = field(default_factory=set)
    configuration: PeerConfiguration | None = None
    generation: int = 0
    applied_count: int = 0  # parameters applied since the last configure (for offline faults)
    errors: dict[UUID, str] = field(default_factory=dict)


class DemoPeerBroker(PeerBroker):
    def __init__(
        self,
        manager: ResourcesManager,
        *,
        seed: int = 0,
        delay_scale: float = 1.0,
        faults: DemoFaults | None = None,
    ) -> None:
        self._manager = manager
        self._seed = seed
        self.delay_scale = delay_scale
        self.faults = faults or DemoFaults()
        self._peers: dict[UUID, _DemoPeer] = {}
        # set_online() for a peer the broker has not met yet (its event is still on the way).
        self._pending_online: dict[UUID, bool] = {}
        self._lock = threading.Lock()
        self._scheduler = Scheduler("lea-demo-peers")
        self._wake_lock = threading.Lock()
        self._drain_pending = False
        # Only demo peers, and peers it knows (one may stop being a demo peer, or be deleted): the
        # broker's thread is not woken for every ordinary peer write.
        self._subscription = manager.subscribe(
            kinds=[ResourceKind.PEER],
            accept=lambda e: e.id in self._peers or (isinstance(e.resource, PeerDescriptor) and e.resource.demo),
        )
        self._stopped = False
        # Writes storage refused, said again after a pause (guarded by _lock).
        self._unsaved_connections: set[UUID] = set()
        self._unsaved_reports: set[UUID] = set()
        self._backoff = Backoff(RETRY_FIRST, RETRY_MAX)  # no retries: storage works (as far as it knows)
        self._retry_due = False  # a retry is scheduled: write nothing until it runs

    # -- PeerBroker ------------------------------------------------------------------------
    def manages(self, peer: PeerDescriptor) -> bool:
        return peer.demo

    def start(self) -> None:
        self._subscription.on_ready = self._wake
        self._scheduler.start()
        self._scheduler.call_soon(self._resync)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._unsaved_connections.clear()
            self._unsaved_reports.clear()
        self._subscription.close()
        self._scheduler.stop()

    def wait_idle(self, timeout: float) -> bool:
        """Every simulated step scheduled so far has run (retries of refused writes included)."""
        return self._scheduler.wait_idle(timeout)

    def configure(self, peer_id: UUID, configuration: PeerConfiguration) -> None:
        with self._lock:
            demo = self._peers.get(peer_id)
            if demo is None or not demo.online:
                return  # an offline bench hears nothing; the deployment waits for it
            demo.generation += 1
            demo.configuration = configuration
            demo.applied_count = 0
            demo.errors.clear()
            generation = demo.generation
            # A peer that drops out mid-deployment is planned with the plan.
            rng = random.Random(f"{self._seed}/{peer_id}/{generation}")
            if configuration.parameters and configuration.parameters[0].target == Target.ABSENT:
                plan = list(reversed(dependency_order(configuration.parameters)))
            else:
                plan = dependency_order(configuration.parameters)
        self._scheduler.call_soon(lambda: self._report(peer_id, generation))
        at = 0.0
        for param in plan:
            at += BASE_DELAY[param.kind] * rng.uniform(0.5, 1.5) * self.delay_scale
            self._scheduler.call_later(at, functools.partial(self._apply, peer_id, generation, param))

    # -- online / offline ------------------------------------------------------------------
    def set_online(self, peer_id: UUID, online: bool) -> None:
        """Switch a demo peer on or off (off forgets its configuration, like a reboot).

        A peer stored a moment ago may not have reached the broker yet: the wish is kept and
        applied when it does, instead of the peer coming online regardless.
        """
        with self._lock:
            if self._stopped:
                return
            demo = self._peers.get(peer_id)
            if demo is None:
                self._pending_online[peer_id] = online
                return
            if demo.online == online:
                return
            demo.online = online
            demo.generation += 1
            if not online:
                demo.applied.clear()
                demo.configuration = None
        self._write_connection(peer_id, online)

    def is_online(self, peer_id: UUID) -> bool:
        with self._lock:
            demo = self._peers.get(peer_id)
            return demo is not None and demo.online

    # -- internals -------------------------------------------------------------------------
    def _write_connection(self, peer_id: UUID, online: bool) -> None:
        if not self._may_write(self._unsaved_connections, peer_id):
            return
        state = Online(remote_host=demo_address(peer_id), since=datetime.now(UTC)) if online else Offline()
        try:
            actions.set_peer_connection_state(self._manager, peer_id, state, ACTOR)
        except StorageFailed as exc:
            self._refused(self._unsaved_connections, peer_id, exc)
        except LeaError as exc:  # the peer was deleted meanwhile, or the backend is closing
            log.debug("demo peer %s: connection state not written: %s", peer_id, exc)
        else:
            self._saved()

    # -- storage refusing writes -----------------------------------------------------------
    def _may_write(self, unsaved: set[UUID], peer_id: UUID) -> bool:
        """False when stopped, or while a retry is due (the write joins it instead)."""
        with self._lock:
            if self._stopped:
                return False
            if self._retry_due:
                unsaved.add(peer_id)
                return False
            return True

    def _refused(self, unsaved: set[UUID], peer_id: UUID, exc: StorageFailed) -> None:
        """Storage refused a write: keep it, and retry everything kept after a growing pause."""
        with self._lock:
            if self._stopped:
                return
            unsaved.add(peer_id)
            if self._retry_due:
                return
            first = self._backoff.retries == 0
            pause = self._backoff.next_delay()
            self._retry_due = True
        if first:
            log.info("demo peers: storage refuses their writes (%s); retrying with backoff", exc.message)
        self._scheduler.call_later(pause, self._retry)

    def _saved(self) -> None:
        with self._lock:
            recovered = self._backoff.retries > 0
            self._backoff.reset()
        if recovered:
            log.info("demo peers: storage accepts their writes again")

    def _retry(self) -> None:
        with self._lock:
            self._retry_due = False
            if self._stopped:
                return
            connections, self._unsaved_connections = self._unsaved_connections, set()
            reports, self._unsaved_reports = self._unsaved_reports, set()
            # What is true now, not what was refused: a peer may have changed (or gone) meanwhile.
            online = {pid: pid in self._peers and self._peers[pid].online for pid in connections}
            generations = {pid: self._peers[pid].generation for pid in reports if pid in self._peers}
        for pid, is_online in online.items():
            self._write_connection(pid, is_online)
        for pid, generation in generations.items():
            self._report(pid, generation)

    def _resync(self) -> None:
        if self._stopped:
            return
        snapshot = self._manager.fetch_snapshot(kinds=[ResourceKind.PEER])
        present = {r.id for r in snapshot.resources}
        for resource in snapshot.resources:
            assert isinstance(resource, PeerDescriptor)
            self._peer_stored(resource)
        with self._lock:
            gone = [pid for pid in self._peers if pid not in present]
        for pid in gone:
            self._peer_deleted(pid)
        # A failed commit drops every write of its group, ours included: say again what is true.
        with self._lock:
            online = {pid: demo.online for pid, demo in self._peers.items()}
        for pid, is_online in online.items():
            current = self._manager.get(ResourceKind.PEER_CONNECTION_STATE, pid)
            if (isinstance(current, PeerConnectionState) and current.online) != is_online:
                self._write_connection(pid, is_online)

    def _wake(self) -> None:
        """Called on the writer's thread for every peer event: schedule one drain, not one per event."""
        with self._wake_lock:
            if self._drain_pending:
                return
            self._drain_pending = True
        self._scheduler.call_soon(self._drain)

    def _drain(self) -> None:
        with self._wake_lock:
            self._drain_pending = False
        while not self._stopped and (item := self._subscription.get_nowait()) is not None:
            if isinstance(item, Resync):
                self._resync()
            elif isinstance(item, EventBatch):
                for event in item.events:
                    if event.type == EventType.DELETED:
                        self._peer_deleted(event.id)
                    elif isinstance(event.resource, PeerDescriptor):
                        self._peer_stored(event.resource)

    def _peer_stored(self, peer: PeerDescriptor) -> None:
        with self._lock:
            if self._stopped:
                return
            demo = self._peers.get(peer.id)
            if not peer.demo:
                # No longer simulated: nothing reaches it now, so it must not stay Online.
                if demo is None:
                    return
                del self._peers[peer.id]
                demo.generation += 1
                online = False
                went_away = demo.online
            elif demo is not None:
                demo.peer = peer
                return
            else:
                self._peers[peer.id] = _DemoPeer(peer)
                online = self._pending_online.pop(peer.id, True)
                went_away = False
        if went_away:
            self._write_connection(peer.id, False)
        elif online:
            self.set_online(peer.id, True)

    def _peer_deleted(self, peer_id: UUID) -> None:
        with self._lock:
            self._peers.pop(peer_id, None)
            self._pending_online.pop(peer_id, None)

    def _current(self, peer_id: UUID, generation: int) -> _DemoPeer | None:
        demo = self._peers.get(peer_id)
        if demo is None or demo.generation != generation or not demo.online or self._stopped:
            return None
        return demo

    def _apply(self, peer_id: UUID, generation: int, param: Parameter) -> None:
        go_offline: OfflineFault | None = None
        with self._lock:
            demo = self._current(peer_id, generation)
            if demo is None or demo.errors:
                return
            failure = next(
                (f for f in self.faults.failures if f.peer == demo.peer.name and f.kind == param.kind), None
            )
            if failure is not None:
                demo.errors[param.id] = failure.reason
            elif param.target == Target.PRESENT:
                demo.applied.add(param.id)
            else:
                demo.applied.discard(param.id)
            demo.applied_count += 1
            go_offline = next(
                (o for o in self.faults.offline
                 if o.peer == demo.peer.name and o.after_parameters == demo.applied_count),
                None,
            )
        self._report(peer_id, generation)
        if go_offline is not None:
            self.faults.offline.remove(go_offline)  # a one-shot fault
            self.set_online(peer_id, False)
            if go_offline.back_after is not None:
                self._scheduler.call_later(go_offline.back_after, lambda: self.set_online(peer_id, True))

    def _report(self, peer_id: UUID, generation: int) -> None:
        if not self._may_write(self._unsaved_reports, peer_id):
            return
        with self._lock:
            demo = self._current(peer_id, generation)
            if demo is None or demo.configuration is None:
                return
            reports = []
            for param in demo.configuration.parameters:
                status: ParameterStatus
                if param.id in demo.errors:
                    status = ParameterError(reason=demo.errors[param.id])
                elif param.id in demo.applied:
                    status = ParameterPresent()
                else:
                    status = ParameterAbsent()
                reports.append(ParameterReport(id=param.id, state=status))
        report = PeerConfigurationState(id=peer_id, parameters=tuple(reports))
        try:
            actions.set_peer_configuration_state(self._manager, report, ACTOR)
        except StorageFailed as exc:
            self._refused(self._unsaved_reports, peer_id, exc)
        except LeaError as exc:
            log.debug("demo peer %s: report not written: %s", peer_id, exc)
        else:
            self._saved()
