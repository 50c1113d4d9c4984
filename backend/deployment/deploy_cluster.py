"""deploy_cluster: Waiting while members are offline or busy, Deploying with progress, Deployed.

A pure step (no clock, no thread, no I/O): given what the world looks like, the run's progress,
the reports that arrived since the last step and the time, it returns what to write and, once
decided, the outcome. The runner (``backend/deployment/runner.py``) calls it whenever something
concerning the cluster happened, or at ``progress.wake_at``.

- Every member online and free: each is sent its PeerConfiguration (again, whenever a member came
  back in a new session or events were lost: a bench that was away forgot it), and the reports
  become Deploying{done, total, per peer} progress, monotonic.
- A member offline, or still being undeployed from another cluster: Waiting, naming it (waiting is
  never a failure, however long). So is a cluster whose members have no tunnel type in common
  (gretap if all have it, else vxlan): "no common tunnel type: ...", naming what each can make.
- An Error report, or a member with work left silent for ``view.timeout`` (not while storage
  refuses writes, and counted from its recovery): Failed naming the peer, the parameter and why.
- Every member reported every parameter Present: Deployed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

from backend.deployment.progress import ClusterProgress, ParameterProgress, overdue, rejected
from backend.deployment.view import ClusterView, Report
from backend.deployment.writes import Configure, Write
from resources.agent import TunnelType
from resources.configuration import Target
from resources.state import ClusterStatus, Deployed, Deploying, Waiting


def start_deploy() -> ClusterProgress:
    """The progress of a new deploy_cluster run (its first step sends the configurations)."""
    return ClusterProgress(target=Target.PRESENT)


def deploy_cluster(
    view: ClusterView, progress: ClusterProgress, reports: Sequence[Report], now: float
) -> tuple[list[Write], ClusterStatus | None]:
    """One step of deploy_cluster: the writes to make, and the outcome once it is decided."""
    if progress.outcome is not None:
        return [], progress.outcome
    parameters = progress.parameters
    for report in reports:
        if parameters is None or not progress.counts(report):
            continue  # about an earlier configuration, or from a peer that is no member
        error = parameters.report(report.peer, report.state, now)
        if error is not None:
            return progress.finish(rejected(view, parameters, report.peer, error, ""))

    members = view.members
    progress.members = members
    offline = [m for m in members if m not in view.online]
    busy = {m: view.undeploying[m] for m in members if m in view.undeploying}
    if offline or busy:
        progress.forget_sent()  # a member that was away forgot its configuration: send it all again
        progress.wake_at = None
        return progress.publish(waiting(view, offline, busy)), None
    plan = view.tunnel_plan()
    if isinstance(plan, str):  # no tunnel type every member can make: waiting for other agents
        progress.forget_sent()
        progress.wake_at = None
        lacking = tuple(m for m in members if TunnelType.VXLAN not in view.online[m].tunnels)
        return progress.publish(Waiting(reason=plan, peers=lacking)), None

    writes: list[Write] = []
    if progress.resend or any(progress.sessions.get(m) != view.online[m].session for m in members):
        configurations = view.configurations(Target.PRESENT)
        if parameters is None or parameters.configurations.keys() != configurations.keys():
            parameters = progress.parameters = ParameterProgress(configurations, Target.PRESENT, now)
            progress.shown_changes = -1
        for member, configuration in configurations.items():
            progress.sending(configuration, view.online[member].session, now)
            writes.append(Configure(configuration))
        progress.resend = False
    assert parameters is not None
    if parameters.changes != progress.shown_changes:  # building the state costs: only when it moved
        progress.shown_changes = parameters.changes
        writes += progress.publish(
            Deploying(done=parameters.done, total=parameters.total, peers=parameters.per_peer())
        )
    if parameters.finished:
        finished, outcome = progress.finish(Deployed())
        return writes + finished, outcome
    failed = overdue(view, parameters, now, "")
    if failed is not None:
        finished, outcome = progress.finish(failed)
        return writes + finished, outcome
    progress.wake_at = progress.next_check(view, now)
    return writes, None


def waiting(view: ClusterView, offline: Sequence[UUID], busy: Mapping[UUID, str]) -> Waiting:
    """Waiting, naming every offline member and every member busy undeploying elsewhere."""
    parts = []
    if offline:
        parts.append(f"peer {', '.join(repr(view.peer_name(p)) for p in offline)} offline")
    for peer, cluster_name in sorted(busy.items(), key=lambda kv: str(kv[0])):
        parts.append(f"peer '{view.peer_name(peer)}' still undeploying from cluster '{cluster_name}'")
    return Waiting(reason="; ".join(parts), peers=tuple([*offline, *sorted(busy, key=str)]))
