"""Progress of one deploy_cluster or undeploy_cluster run: what its step remembers between calls.

``ParameterProgress`` counts which parameters each member reported done against the configuration
last sent to it; ``ClusterProgress`` is the whole state of a run (the counts, which configuration
each member was sent and when, the status last published, the outcome). Both are plain objects
with no clock and no thread of their own: time comes in as ``now`` (``time.monotonic()`` in the
runner, any number in a test).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from backend.deployment.view import ClusterView, Report
from backend.deployment.writes import PublishState, Write
from resources.configuration import (
    Parameter,
    ParameterError,
    ParameterPresent,
    PeerConfiguration,
    PeerConfigurationState,
    Target,
    dependency_order,
)
from resources.state import ClusterStatus, Failed, Progress


class ParameterProgress:
    """Which parameters each peer reported done, against the configuration last sent to it.

    ``done`` per peer as shown is monotonic (a peer that starts over after a reboot does not make
    the bar go back); ``finished`` and the timeouts use what the peers actually reported.
    """

    def __init__(self, configurations: dict[UUID, PeerConfiguration], target: Target, now: float) -> None:
        self.configurations = dict(configurations)
        self.target = target
        self.shown: dict[UUID, int] = dict.fromkeys(configurations, 0)
        self.done_ids: dict[UUID, set[UUID]] = {p: set() for p in configurations}
        self.heard: dict[UUID, float] = dict.fromkeys(configurations, now)
        self.changes = 0  # bumped whenever what is shown may have changed

    @property
    def total(self) -> int:
        return sum(len(c.parameters) for c in self.configurations.values())

    @property
    def done(self) -> int:
        return sum(self.shown.values())

    def restart(self, peer: UUID, configuration: PeerConfiguration, now: float) -> None:
        """A configuration was (re)sent: only reports about it count from now on."""
        self.configurations[peer] = configuration
        self.done_ids[peer] = set()
        self.heard[peer] = now
        self.changes += 1

    def report(self, peer: UUID, state: PeerConfigurationState, now: float) -> tuple[UUID, str] | None:
        """Count a report; returns (parameter, reason) of an error, if any."""
        self.heard[peer] = now
        wanted = {p.id for p in self.configurations[peer].parameters}
        done: set[UUID] = set()
        for item in state.parameters:
            if item.id not in wanted:
                continue
            if isinstance(item.state, ParameterError):
                return item.id, item.state.reason
            if isinstance(item.state, ParameterPresent) == (self.target == Target.PRESENT):
                done.add(item.id)
        self.done_ids[peer] = done
        self.shown[peer] = max(self.shown[peer], len(done))
        self.changes += 1
        return None

    def complete(self, peer: UUID) -> None:
        """Count every parameter of ``peer`` as done (an undeployed bench that dropped out)."""
        if self.peer_finished(peer):
            return
        self.done_ids[peer] = {p.id for p in self.configurations[peer].parameters}
        self.shown[peer] = len(self.configurations[peer].parameters)
        self.changes += 1

    def pending(self, peer: UUID) -> list[Parameter]:
        """The peer's parameters not reported done, dependencies first."""
        done = self.done_ids[peer]
        return [p for p in dependency_order(self.configurations[peer].parameters) if p.id not in done]

    def peer_finished(self, peer: UUID) -> bool:
        return len(self.done_ids[peer]) == len(self.configurations[peer].parameters)  # done_ids: only wanted ids

    @property
    def finished(self) -> bool:
        return all(self.peer_finished(p) for p in self.configurations)

    def deadline(self, timeout: float, since: float = 0.0) -> float | None:
        """When the first peer with work left will have said nothing for ``timeout`` (its silence
        counted from ``since`` at the earliest); None when no peer owes anything."""
        waiting = [max(self.heard[p], since) + timeout for p in self.configurations if not self.peer_finished(p)]
        return min(waiting) if waiting else None

    def overdue(self, timeout: float, now: float, since: float = 0.0) -> tuple[UUID, Parameter] | None:
        """The first peer with work left that has said nothing for ``timeout`` (counted from
        ``since`` at the earliest), and what it owes."""
        for peer in self.configurations:
            # The same sum as deadline(): a timer set for it finds the peer overdue, never a hair early.
            if now >= max(self.heard[peer], since) + timeout and not self.peer_finished(peer):
                return peer, self.pending(peer)[0]
        return None

    def per_peer(self) -> dict[UUID, Progress]:
        return {p: Progress(done=self.shown[p], total=len(c.parameters)) for p, c in self.configurations.items()}

    def kind_of(self, peer: UUID, parameter: UUID) -> str:
        for p in self.configurations[peer].parameters:
            if p.id == parameter:
                return p.kind.value
        return "parameter"


@dataclass
class ClusterProgress:
    """Everything one run of deploy_cluster or undeploy_cluster remembers between two steps.

    The step changes it; the runner tells it which revision each configuration was stored at
    (``stored``) and that events were lost (``resynced``), and reads ``wake_at`` (when to step it
    again if nothing happens) and ``outcome`` (the final status, once decided).
    """

    target: Target
    #: The members the run is about (undeploy: fixed when it starts; deploy: as of the last step).
    members: tuple[UUID, ...] = ()
    parameters: ParameterProgress | None = None
    #: Per member: the revision its latest configuration was stored at (None: not stored yet).
    configured: dict[UUID, int | None] = field(default_factory=dict)
    #: Per member: the online session it was sent its latest configuration in.
    sessions: dict[UUID, int] = field(default_factory=dict)
    #: Events were lost (or nothing was sent yet): the step must send its configurations again.
    resend: bool = True
    status: ClusterStatus | None = None  # the status last published
    shown_changes: int = -1  # ParameterProgress.changes when progress was last published
    outcome: ClusterStatus | None = None
    wake_at: float | None = None

    # -- the runner's side -----------------------------------------------------------------
    def stored(self, peer: UUID, revision: int) -> None:
        """The configuration last sent to ``peer`` is stored at ``revision``: reports after it count."""
        if peer in self.configured:
            self.configured[peer] = revision

    def resynced(self) -> None:
        """Events were lost: reports may have been missed, so the configurations are sent again."""
        self.resend = True

    # -- the step's side -------------------------------------------------------------------
    def counts(self, report: Report) -> bool:
        """True when ``report`` answers the configuration last sent to its peer."""
        if self.parameters is None or report.peer not in self.parameters.configurations:
            return False
        revision = self.configured.get(report.peer)
        return revision is not None and report.revision > revision

    def sending(self, configuration: PeerConfiguration, session: int, now: float) -> None:
        """``configuration`` is about to be sent: earlier reports of its peer no longer count."""
        assert self.parameters is not None
        self.configured[configuration.id] = None
        self.sessions[configuration.id] = session
        self.parameters.restart(configuration.id, configuration, now)

    def forget_sent(self) -> None:
        """A member went away: whatever was sent must be sent again once every member is back."""
        self.configured.clear()
        self.sessions.clear()

    def publish(self, status: ClusterStatus) -> list[Write]:
        """The write that shows ``status``, unless it is what is shown already."""
        if status == self.status:
            return []
        self.status = status
        return [PublishState(status)]

    def finish(self, outcome: ClusterStatus) -> tuple[list[Write], ClusterStatus]:
        self.outcome = outcome
        self.wake_at = None
        return self.publish(outcome), outcome

    def next_check(self, view: ClusterView, now: float) -> float | None:
        """When to judge silence next if nothing happens: the first deadline; while storage refuses
        writes (no report can arrive) one timeout from now, to look again."""
        if self.parameters is None:
            return None
        if view.storage_failing:
            return now + view.timeout if not self.parameters.finished else None
        return self.parameters.deadline(view.timeout, since=view.storage_recovered_at)


def overdue(view: ClusterView, parameters: ParameterProgress, now: float, what: str) -> Failed | None:
    """Failed for the first member silent for the timeout; never while storage refuses writes (the
    peers' reports cannot be stored: that is no silence of theirs), and counted from its recovery."""
    if view.storage_failing:
        return None
    late = parameters.overdue(view.timeout, now, since=view.storage_recovered_at)
    if late is None:
        return None
    peer, parameter = late
    return Failed(
        peer=peer, parameter=parameter.id,
        reason=f"{what}peer '{view.peer_name(peer)}' reported no progress on {parameter.kind.value} "
        f"within {view.timeout:g} s",
    )


def rejected(
    view: ClusterView, parameters: ParameterProgress, peer: UUID, error: tuple[UUID, str], what: str
) -> Failed:
    """Failed, for a parameter a peer reported as Error."""
    parameter, reason = error
    return Failed(
        peer=peer, parameter=parameter,
        reason=f"{what}peer '{view.peer_name(peer)}': {parameters.kind_of(peer, parameter)} failed: {reason}",
    )
