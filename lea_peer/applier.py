"""Applies the backend's configuration to the bench, one configuration at a time.

- The newest ``configure`` wins: it pre-empts the one being applied between two parameters, never
  inside a data-plane call (a half-made netlink change is worse than a late one).
- Absent parameters are removed in reverse dependency order, then Present ones are applied in
  dependency order; a Present parameter whose dependency failed is not tried (Error naming it).
- After each configuration is fully applied, marked links that are not Present in it are swept:
  an agent killed with SIGKILL and restarted leaves no orphan, and a deployed cluster (whose links
  are in the configuration the backend re-sends) survives a restart untouched.
- After every change the FULL parameter list goes to the outbox (which coalesces), with the
  generation of the configuration it belongs to.
- Every ``recheck_s`` the Present parameters of the applied configuration are checked again; what
  drifted is re-applied and reported ("re-applied after drift ..." or an Error with the reason).
  A data plane whose state changes by itself (a CAN relay lost its peer, or hears it again) calls
  ``recheck_soon`` (``DataPlane.watch``): the re-check then runs at once, not ``recheck_s`` later.
  A healthy state that carries metrics (a relay's counters) is reported as checked, so the counters
  move at each re-check.
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from lea_peer.dataplane.base import DataPlane
from lea_peer.reports import ReportOutbox
from resources.agent import AgentReport
from resources.configuration import (
    Parameter,
    ParameterAbsent,
    ParameterError,
    ParameterPresent,
    ParameterReport,
    ParameterStatus,
    PeerConfiguration,
    Target,
    dependency_order,
)

log = logging.getLogger("lea_peer.applier")

RECHECK_S = 30.0
_NO_CLUSTER = UUID(int=0)
_DETAIL_MAX = 500


def matches(status: ParameterStatus, target: Target) -> bool:
    """True when ``status`` is what ``target`` asks for."""
    if target == Target.PRESENT:
        return isinstance(status, ParameterPresent)
    return isinstance(status, ParameterAbsent)


def label(parameter: Parameter) -> str:
    """A parameter as a log line names it: kind, what it is about, its target and id."""
    value = parameter.value
    about = value.get("name") or value.get("interface") or value.get("remote") or value.get("source") or ""
    return f"{parameter.kind.value} {about} ({parameter.target.value}, {parameter.id})".replace("  ", " ")


def steps(configuration: PeerConfiguration) -> list[Parameter]:
    """The order of work: removals in reverse dependency order, then additions in dependency order."""
    ordered = dependency_order(configuration.parameters)
    absent = [p for p in ordered if p.target == Target.ABSENT]
    present = [p for p in ordered if p.target == Target.PRESENT]
    return [*reversed(absent), *present]


class Applier:
    def __init__(self, data_plane: DataPlane, outbox: ReportOutbox, recheck_s: float = RECHECK_S) -> None:
        self.data_plane = data_plane
        self.outbox = outbox
        self.recheck_s = recheck_s
        #: The configuration being applied or last applied, with its generation.
        self.current: tuple[int, PeerConfiguration] | None = None
        #: True once ``current`` was applied to the end (and swept).
        self.complete = False
        #: Last known state per parameter id (kept across configurations: ids repeat for Absent).
        self.statuses: dict[UUID, ParameterStatus] = {}
        #: Set while nothing is pending and the current configuration is complete (tests wait on it).
        self.idle = asyncio.Event()
        self.swept: list[str] = []
        self._pending: tuple[int, PeerConfiguration] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._recheck_requested = False
        data_plane.watch(self.recheck_soon)

    async def load(self) -> None:
        """What is on the bench already (marked links left by an earlier run): the hello's ``applied``."""
        for link in await self.data_plane.owned():
            self.statuses[link.parameter] = ParameterPresent(detail=f"marked link {link.name} found at start-up")

    def applied(self) -> tuple[ParameterReport, ...]:
        """The agent's view for the hello: the current configuration's states, else what it found."""
        if self.current is not None:
            return self._report(*self.current).parameters
        return tuple(ParameterReport(id=pid, state=s) for pid, s in self.statuses.items())

    def configure(self, generation: int, configuration: PeerConfiguration) -> None:
        """A configure arrived: it replaces anything pending and pre-empts the one being applied."""
        self._pending = (generation, configuration)
        self.idle.clear()
        self._wake.set()

    def recheck_soon(self) -> None:
        """A state changed by itself: re-check as soon as the applier is idle."""
        self._recheck_requested = True
        self._wake.set()

    def stop(self) -> None:
        """Finish the data-plane call in progress, then return from ``run`` (the agent exits)."""
        self._stopping = True
        self._wake.set()

    @property
    def _interrupted(self) -> bool:
        """A newer configuration waits, or the agent stops: leave at the next parameter boundary."""
        return self._pending is not None or self._stopping

    async def run(self) -> None:
        """The applier's task: apply what arrives, re-check when idle for ``recheck_s``."""
        while not self._stopping:
            if self._pending is None and self._recheck_requested and self.complete:
                self._recheck_requested = False
                self._wake.clear()
                await self.recheck()
                continue
            if self._pending is None:
                self.idle.set()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.recheck_s if self.complete else None)
                except TimeoutError:
                    await self.recheck()
                    continue
            self._wake.clear()
            if self._pending is None or self._stopping:
                continue
            generation, configuration = self._pending
            self._pending = None
            if self.complete and self.current == (generation, configuration):
                self._publish()  # the same configuration again (a reconnect): just say where it stands
                continue
            await self.apply(generation, configuration)

    async def apply(self, generation: int, configuration: PeerConfiguration) -> bool:
        """Apply one configuration; False when a newer one pre-empted it."""
        self.current, self.complete = (generation, configuration), False
        log.info("applying configuration generation %d (%d parameters)", generation, len(configuration.parameters))
        cluster = configuration.cluster or _NO_CLUSTER
        for parameter in steps(configuration):
            if self._interrupted:
                if self._pending is not None:
                    log.info("generation %d pre-empted by generation %d", generation, self._pending[0])
                return False
            status = self._blocked(parameter) or await self._apply_one(cluster, parameter)
            if isinstance(status, ParameterError):
                log.warning("%s: %s", label(parameter), status.reason)
            else:
                log.debug("%s: %s", label(parameter), status.status)
            self._set(parameter, status)
        if self._interrupted:
            return False
        keep = {p.id for p in configuration.parameters if p.target == Target.PRESENT}
        try:
            swept = await self.data_plane.sweep(keep)
        except Exception as exc:
            log.error("sweeping marked links not in generation %d failed: %r", generation, exc)
            log.debug("traceback of the failed sweep", exc_info=True)
            swept = []
        if swept:
            log.info("swept marked links not in the configuration: %s", ", ".join(swept))
            self.swept.extend(swept)
        self.complete = True
        log.info("configuration generation %d applied", generation)
        return True

    async def recheck(self) -> bool:
        """Check every parameter of the applied configuration; re-apply what drifted. True if
        something changed (and was reported)."""
        if self.current is None or not self.complete:
            return False
        _generation, configuration = self.current
        cluster = configuration.cluster or _NO_CLUSTER
        changed = False
        # Only what should be there can drift; removals were made once and the sweep keeps them made.
        for parameter in (p for p in steps(configuration) if p.target == Target.PRESENT):
            if self._interrupted:
                return changed
            last = self.statuses.get(parameter.id)
            blocked = self._blocked(parameter)
            if blocked is not None:
                status: ParameterStatus = blocked
            else:
                observed = await self._check_one(cluster, parameter)
                if matches(observed, parameter.target):
                    # Healthy; if it was an Error it has recovered (an adapter plugged in again).
                    keep_last = last is not None and matches(last, parameter.target) and not _has_metrics(observed)
                    status = last if keep_last and last is not None else observed
                else:
                    status = await self._repair(cluster, parameter, observed)
            if status != last:
                changed = True
                self._set(parameter, status)
        return changed

    async def _repair(self, cluster: UUID, parameter: Parameter, observed: ParameterStatus) -> ParameterStatus:
        drift = _describe(observed)
        result = await self._apply_one(cluster, parameter)
        if isinstance(result, ParameterError) and isinstance(observed, ParameterError) \
                and result.reason == observed.reason:
            return result  # re-applying changed nothing: the cause is outside (a relay's lost peer)
        if isinstance(result, ParameterError):
            log.warning("%s drifted (%s); re-applying failed: %s", label(parameter), drift, result.reason)
            return ParameterError(reason=f"drifted ({drift}) and re-applying failed: {result.reason}")
        log.warning("%s drifted (%s); re-applied", label(parameter), drift)
        if isinstance(result, ParameterPresent):
            detail = f"re-applied after drift ({drift})" + (f"; {result.detail}" if result.detail else "")
            return ParameterPresent(detail=detail[:_DETAIL_MAX])
        return result

    def _blocked(self, parameter: Parameter) -> ParameterError | None:
        """An Error when a Present parameter depends on one that failed (it is not tried)."""
        if parameter.target != Target.PRESENT:
            return None
        for dep in parameter.dependencies:
            if isinstance(self.statuses.get(dep), ParameterError):
                return ParameterError(reason=f"not applied: it depends on parameter {dep}, which failed")
        return None

    async def _apply_one(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        try:
            return await self.data_plane.apply(cluster, parameter)
        except Exception as exc:  # a data-plane bug must not stop the agent: report it on the parameter
            log.error("applying %s failed: %r", label(parameter), exc)
            log.debug("traceback of the failed apply", exc_info=True)
            return ParameterError(reason=f"the agent failed applying it: {exc}")

    async def _check_one(self, cluster: UUID, parameter: Parameter) -> ParameterStatus:
        try:
            return await self.data_plane.check(cluster, parameter)
        except Exception as exc:
            log.error("checking %s failed: %r", label(parameter), exc)
            log.debug("traceback of the failed check", exc_info=True)
            return ParameterError(reason=f"the agent failed checking it: {exc}")

    def _set(self, parameter: Parameter, status: ParameterStatus) -> None:
        self.statuses[parameter.id] = status
        self._publish()

    def _publish(self) -> None:
        if self.current is not None:
            self.outbox.publish(self._report(*self.current))

    def _report(self, generation: int, configuration: PeerConfiguration) -> AgentReport:
        return AgentReport(
            generation=generation,
            parameters=tuple(
                ParameterReport(id=p.id, state=self.statuses.get(p.id, ParameterAbsent()))
                for p in configuration.parameters
            ),
        )


def _has_metrics(status: ParameterStatus) -> bool:
    return isinstance(status, ParameterPresent) and bool(status.metrics)


def _describe(observed: ParameterStatus) -> str:
    if isinstance(observed, ParameterError):
        return f"check said: {observed.reason}"
    if isinstance(observed, ParameterAbsent):
        return "it was absent"
    return "it was present"
