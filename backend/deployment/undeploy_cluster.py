"""undeploy_cluster: the same parameters with target Absent; Undeploying, then Undeployed.

A pure step like ``deploy_cluster``. The members are fixed when the run starts (the descriptor may
be deleted right after its deployment; the peers must still be undeployed), and count as
undeploying for every other cluster until the run ends.

- Each online member is sent its configuration with target Absent; a demo member offline (or back
  in a new session) is done: a simulated bench that drops out forgets its configuration.
- A real (agent-managed, not demo) member keeps its configuration while offline: its Absent
  configuration is stored (its agent gets it on its next hello) and the run waits for it,
  Undeploying{waiting_for} naming it, with no timeout meanwhile; back in a new session it is sent
  the Absent configuration again, and is done once it reports every parameter Absent.
- Undeploying{done, total} as the reports arrive; then the members' desired configurations and
  reports are cleared and the cluster is Undeployed.
- An Error report or a silent member: Failed ("undeploy: ..."), naming the peer and the parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from backend.deployment.progress import ClusterProgress, ParameterProgress, overdue, rejected
from backend.deployment.view import ClusterView, Report
from backend.deployment.writes import ClearPeers, Configure, Write
from resources.configuration import Target
from resources.state import ClusterStatus, Undeployed, Undeploying

WHAT = "undeploy: "
#: The session an offline member was "sent" its configuration in (it was only stored).
OFFLINE = -1


def start_undeploy(view: ClusterView, now: float) -> ClusterProgress:
    """The progress of a new undeploy_cluster run over the view's members, as they are now."""
    configurations = view.configurations(Target.ABSENT)
    return ClusterProgress(
        target=Target.ABSENT,
        members=tuple(m for m in view.members if m in configurations),
        parameters=ParameterProgress(configurations, Target.ABSENT, now),
    )


def undeploy_cluster(
    view: ClusterView, progress: ClusterProgress, reports: Sequence[Report], now: float
) -> tuple[list[Write], ClusterStatus | None]:
    """One step of undeploy_cluster: the writes to make, and the outcome once it is decided."""
    if progress.outcome is not None:
        return [], progress.outcome
    parameters = progress.parameters
    assert parameters is not None
    for report in reports:
        if not progress.counts(report):
            continue
        error = parameters.report(report.peer, report.state, now)
        if error is not None:
            return progress.finish(rejected(view, parameters, report.peer, error, WHAT))

    members = progress.members
    waiting_for: list[UUID] = []
    resend_to: list[UUID] = []
    for m in members:
        peer = view.peers.get(m)
        reachable = view.online.get(m)
        sent_in = progress.sessions.get(m)
        if peer is None:
            parameters.complete(m)
        elif peer.demo:
            if reachable is None or (sent_in is not None and sent_in != reachable.session):
                parameters.complete(m)
        elif not parameters.peer_finished(m):
            if reachable is None:
                waiting_for.append(m)
                parameters.heard[m] = now  # an offline bench owes nothing yet: no timeout runs
            elif sent_in != reachable.session:
                resend_to.append(m)  # back (or never sent to while online): it gets Absent again

    writes: list[Write] = []
    if progress.resend or resend_to:
        configurations = view.configurations(Target.ABSENT)
        for m in members:
            if m not in configurations or not parameters.pending(m):
                continue
            if not (progress.resend or m in resend_to):
                continue
            if m in view.online:
                progress.sending(configurations[m], view.online[m].session, now)
                writes.append(Configure(configurations[m]))
            elif not view.peers[m].demo:
                progress.sending(configurations[m], OFFLINE, now)  # stored: its agent gets it on hello
                writes.append(Configure(configurations[m]))
        progress.resend = False
    status = Undeploying(done=parameters.done, total=parameters.total, waiting_for=tuple(waiting_for))
    if parameters.changes != progress.shown_changes or status != progress.status:
        progress.shown_changes = parameters.changes
        writes += progress.publish(status)
    if parameters.finished:
        writes.append(ClearPeers(members))
        finished, outcome = progress.finish(Undeployed())
        return writes + finished, outcome
    failed = overdue(view, parameters, now, WHAT)
    if failed is not None:
        finished, outcome = progress.finish(failed)
        return writes + finished, outcome
    progress.wake_at = progress.next_check(view, now)
    return writes, None
