"""Applier with MemoryDataPlane: ordering, pre-emption, full coalesced reports, sweep, drift."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from lea_peer.applier import Applier
from lea_peer.can.simulated import SimulatedCanPlane
from lea_peer.dataplane.memory import MemoryDataPlane, MemoryLink
from lea_peer.reports import ReportOutbox
from resources.agent import AgentReport, ownership_marker
from resources.configuration import (
    Parameter,
    ParameterError,
    ParameterKind,
    ParameterPresent,
    ParameterStatus,
    PeerConfiguration,
    Target,
)
from tests.helpers.agent_parameters import configuration, member_parameters

TIMEOUT = 15.0


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(applier: Applier) -> AsyncIterator[Applier]:
    task = asyncio.create_task(applier.run())
    try:
        yield applier
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def applied(applier: Applier, generation: int, target: Target = Target.PRESENT) -> None:
    applier.configure(generation, configuration(target))
    await until(lambda: applier.complete and applier.current is not None and applier.current[0] == generation
                and applier.idle.is_set(), f"generation {generation} applied")


def calls(plane: MemoryDataPlane, action: str = "apply") -> list[uuid.UUID]:
    return [pid for what, pid, _ in plane.calls if what == action]


def test_present_in_dependency_order_absent_in_reverse() -> None:
    async def main() -> None:
        plane = MemoryDataPlane(devices=["eth1"])
        applier = Applier(plane, ReportOutbox())
        p = member_parameters()
        assert await applier.apply(1, configuration(Target.PRESENT))
        order = calls(plane)
        assert order.index(p.bridge.id) < order.index(p.tunnel.id) < order.index(p.join_tunnel.id)
        assert order.index(p.device.id) < order.index(p.join_device.id)
        assert order.index(p.tunnel.id) < order.index(p.check.id)
        plane.calls.clear()
        assert await applier.apply(2, configuration(Target.ABSENT))
        removal = calls(plane)
        assert removal.index(p.join_tunnel.id) < removal.index(p.tunnel.id) < removal.index(p.bridge.id)
        assert removal.index(p.join_device.id) < removal.index(p.bridge.id)
        assert set(plane.links) == {"eth1"}

    asyncio.run(main())


def test_every_report_is_the_full_list_with_the_generation() -> None:
    async def main() -> None:
        plane = MemoryDataPlane(devices=["eth1"])
        seen: list[AgentReport] = []
        outbox = ReportOutbox()
        outbox.publish = seen.append  # type: ignore[method-assign,assignment]  # see every publish, uncoalesced
        applier = Applier(plane, outbox)
        cfg = configuration()
        await applier.apply(7, cfg)
        assert len(seen) == len(cfg.parameters)  # one per change
        wanted = [p.id for p in cfg.parameters]
        assert all(r.generation == 7 and [i.id for i in r.parameters] == wanted for r in seen)
        present = [sum(isinstance(i.state, ParameterPresent) for i in r.parameters) for r in seen]
        assert present == list(range(1, len(cfg.parameters) + 1))  # progressive

    asyncio.run(main())


def test_newest_configure_preempts_between_parameters_never_inside_a_call() -> None:
    async def main() -> None:
        p = member_parameters()
        entered, release = asyncio.Event(), asyncio.Event()

        async def gate(action: str, parameter: Parameter) -> None:
            if action == "apply" and parameter.id == p.bridge.id and parameter.target == Target.PRESENT:
                entered.set()
                await release.wait()

        plane = MemoryDataPlane(devices=["eth1"], gate=gate)
        outbox = ReportOutbox()
        applier = Applier(plane, outbox)
        async with running(applier):
            applier.configure(1, configuration(Target.PRESENT))
            await asyncio.wait_for(entered.wait(), TIMEOUT)
            applier.configure(2, configuration(Target.ABSENT))
            applier.configure(3, configuration(Target.PRESENT, bridge="br-new"))  # the newest wins
            release.set()
            await until(lambda: applier.complete and applier.current is not None and applier.current[0] == 3,
                        "generation 3 applied")
        applied_ids = calls(plane)
        # The bridge call of generation 1 finished, then generation 1 stopped: its joins to br-lea never
        # ran (generation 3's joins are to br-new, other ids); generation 2 (replaced while pending) never ran.
        assert applied_ids.count(p.bridge.id) == 1
        assert p.join_device.id not in applied_ids and p.join_tunnel.id not in applied_ids
        assert not any(target == Target.ABSENT for _, _, target in plane.calls)
        assert "br-new" in plane.links and plane.links["eth1"].master == "br-new"
        assert "br-lea" not in plane.links  # the pre-empted generation's bridge was swept
        assert outbox.latest is not None and outbox.latest.generation == 3

    asyncio.run(main())


def test_reports_are_coalesced_latest_wins() -> None:
    async def main() -> None:
        outbox = ReportOutbox(min_interval_s=0.1)
        reports = [AgentReport(generation=g, parameters=()) for g in range(60)]
        received: list[tuple[float, AgentReport]] = []

        async def consume() -> None:
            while True:
                report = await outbox.next()
                received.append((time.monotonic(), report))

        task = asyncio.create_task(consume())
        outbox.publish(reports[0])
        await until(lambda: len(received) == 1, "the first report")
        for r in reports[1:]:
            outbox.publish(r)  # a burst: no yield in between
        await until(lambda: len(received) == 2, "the coalesced report")
        await asyncio.sleep(0.3)  # give a wrong implementation the chance to send more
        task.cancel()
        assert [r.generation for _, r in received] == [0, 59]
        assert received[1][0] - received[0][0] >= 0.1 - 1e-3

    asyncio.run(main())


def test_applier_burst_reaches_the_sender_as_one_full_report() -> None:
    async def main() -> None:
        outbox = ReportOutbox()
        applier = Applier(MemoryDataPlane(devices=["eth1"]), outbox)
        await applier.apply(1, configuration())
        assert outbox.published == 6
        report = await asyncio.wait_for(outbox.next(), TIMEOUT)
        assert all(isinstance(i.state, ParameterPresent) for i in report.parameters)

    asyncio.run(main())


def test_failed_dependency_blocks_dependents_with_a_reason() -> None:
    async def main() -> None:
        p = member_parameters()
        plane = MemoryDataPlane(devices=["eth1"], failures={p.bridge.id: "bridge module missing"})
        applier = Applier(plane, ReportOutbox())
        await applier.apply(1, configuration())
        assert isinstance(applier.statuses[p.bridge.id], ParameterError)
        for dependent in (p.tunnel, p.join_device, p.join_tunnel, p.check):
            status = applier.statuses[dependent.id]
            assert isinstance(status, ParameterError) and "depends on" in status.reason
        assert p.tunnel.id not in calls(plane)
        assert isinstance(applier.statuses[p.device.id], ParameterPresent)

    asyncio.run(main())


def test_first_configuration_sweeps_orphans_but_a_restart_keeps_the_deployed_cluster() -> None:
    async def main() -> None:
        plane = MemoryDataPlane(devices=["eth1"])
        old = uuid.uuid4()
        plane.links["gre-orphan"] = MemoryLink("gre-orphan", "vxlan", marker=ownership_marker(old, uuid.uuid4()))
        plane.links["br-mine"] = MemoryLink("br-mine", "bridge")  # not ours: never touched
        first = Applier(plane, ReportOutbox())
        await first.load()
        await first.apply(1, configuration())
        assert first.swept == ["gre-orphan"]
        assert {"br-lea", "gre-0123456789a", "br-mine"} <= set(plane.links)

        # The agent is killed and restarted: it finds its links and the same configuration keeps them.
        restarted = Applier(plane, ReportOutbox())
        await restarted.load()
        found = {r.id for r in restarted.applied()}
        p = member_parameters()
        assert found == {p.bridge.id, p.tunnel.id}
        before = dict(plane.links)
        await restarted.apply(1, configuration())
        assert restarted.swept == []
        assert plane.links["br-lea"] is before["br-lea"]  # adopted, not re-created
        assert plane.links["eth1"].master == "br-lea"

    asyncio.run(main())


def test_empty_configuration_after_restart_removes_everything_marked() -> None:
    async def main() -> None:
        plane = MemoryDataPlane(devices=["eth1"])
        await Applier(plane, ReportOutbox()).apply(1, configuration())
        restarted = Applier(plane, ReportOutbox())
        await restarted.load()
        await restarted.apply(2, configuration(Target.ABSENT).model_copy(update={"parameters": ()}))
        assert set(plane.links) == {"eth1"}

    asyncio.run(main())


def test_recheck_reapplies_drift_and_says_so() -> None:
    async def main() -> None:
        p = member_parameters()
        plane = MemoryDataPlane(devices=["eth1"])
        outbox = ReportOutbox()
        applier = Applier(plane, outbox)
        await applier.apply(1, configuration())
        assert not await applier.recheck()  # nothing drifted: nothing re-applied, nothing reported
        assert outbox.published == 6

        plane.drop("gre-0123456789a")
        assert await applier.recheck()
        assert plane.links["gre-0123456789a"].master == "br-lea"
        for pid in (p.tunnel.id, p.join_tunnel.id):
            status = applier.statuses[pid]
            assert isinstance(status, ParameterPresent)
            assert (status.detail or "").startswith("re-applied after drift (it was absent)")
        assert outbox.latest is not None and outbox.latest.generation == 1
        assert outbox.latest.parameters == applier.applied()

        plane.drop("gre-0123456789a")
        plane.failures[p.tunnel.id] = "RTNETLINK answers: no buffer space"
        assert await applier.recheck()
        status = applier.statuses[p.tunnel.id]
        assert isinstance(status, ParameterError)
        assert status.reason.startswith("drifted (it was absent) and re-applying failed:")
        assert "no buffer space" in status.reason

    asyncio.run(main())


def test_replugged_adapter_gets_its_join_back() -> None:
    async def main() -> None:
        p = member_parameters()
        plane = MemoryDataPlane(devices=["eth1"])
        applier = Applier(plane, ReportOutbox())
        await applier.apply(1, configuration())
        plane.plug("eth1")  # down and joined to nothing
        await applier.recheck()
        assert plane.links["eth1"].up and plane.links["eth1"].master == "br-lea"
        assert "re-applied after drift" in (applier.statuses[p.join_device.id].detail or "")  # type: ignore[union-attr]

    asyncio.run(main())


def test_run_loop_rechecks_periodically() -> None:
    async def main() -> None:
        plane = MemoryDataPlane(devices=["eth1"])
        applier = Applier(plane, ReportOutbox(), recheck_s=0.05)
        async with running(applier):
            await applied(applier, 1)
            plane.drop("br-lea")
            await until(lambda: "br-lea" in plane.links and plane.links["eth1"].master == "br-lea",
                        "the bridge re-applied by the periodic re-check")

    asyncio.run(main())


def test_same_configuration_again_is_not_reapplied_but_reported() -> None:
    async def main() -> None:
        plane = MemoryDataPlane(devices=["eth1"])
        outbox = ReportOutbox()
        applier = Applier(plane, outbox)
        async with running(applier):
            await applied(applier, 4)
            before, published = len(plane.calls), outbox.published
            await applied(applier, 4)
            await until(lambda: outbox.published == published + 1, "the report sent again")
        assert len(plane.calls) == before

    asyncio.run(main())


def test_absent_parameter_reports_absent_and_the_data_plane_error_is_kept_as_reason() -> None:
    async def main() -> None:
        class Broken(MemoryDataPlane):
            async def apply(self, cluster: uuid.UUID, parameter: Parameter) -> ParameterPresent:
                raise RuntimeError("netlink socket closed")

        applier = Applier(Broken(), ReportOutbox())
        await applier.apply(1, configuration())
        status = applier.statuses[member_parameters().device.id]
        assert isinstance(status, ParameterError) and "netlink socket closed" in status.reason
        await applier.apply(2, configuration(Target.ABSENT))  # still going: the agent did not crash
        assert applier.complete

    asyncio.run(main())




def test_recheck_of_a_removed_configuration_touches_nothing() -> None:
    async def main() -> None:
        plane = MemoryDataPlane(devices=["eth1"])
        applier = Applier(plane, ReportOutbox())
        await applier.apply(1, configuration())
        await applier.apply(2, configuration(Target.ABSENT))
        plane.calls.clear()
        assert not await applier.recheck()
        assert not plane.calls

    asyncio.run(main())


def test_stop_waits_for_the_call_in_progress_then_applies_nothing_more() -> None:
    async def main() -> None:
        p = member_parameters()
        entered, release = asyncio.Event(), asyncio.Event()

        async def gate(action: str, parameter: Parameter) -> None:
            if parameter.id == p.bridge.id:
                entered.set()
                await release.wait()

        plane = MemoryDataPlane(devices=["eth1"], gate=gate)
        applier = Applier(plane, ReportOutbox())
        task = asyncio.create_task(applier.run())
        applier.configure(1, configuration())
        await asyncio.wait_for(entered.wait(), TIMEOUT)
        applier.stop()
        await asyncio.sleep(0.05)
        assert not task.done()  # still inside the data-plane call
        release.set()
        await asyncio.wait_for(task, TIMEOUT)  # returned by itself, not cancelled
        assert "br-lea" in plane.links and plane.links["br-lea"].marker is not None
        assert calls(plane)[-1] == p.bridge.id

    asyncio.run(main())


class SwitchableCanPlane(SimulatedCanPlane):
    """A CAN plane whose relay state a test switches, as a real relay's peer comes and goes."""

    def __init__(self) -> None:
        super().__init__()
        self.problem: str | None = None
        self.frames = 0

    async def check(self, cluster: uuid.UUID, parameter: Parameter) -> ParameterStatus:
        if parameter.kind != ParameterKind.CAN_CONNECTION:
            return await super().check(cluster, parameter)
        metrics = {"frames_sent": self.frames}
        if self.problem:
            return ParameterError(reason=self.problem, metrics=metrics)
        return ParameterPresent(detail="relay", metrics=metrics)

    async def apply(self, cluster: uuid.UUID, parameter: Parameter) -> ParameterStatus:
        await super().apply(cluster, parameter)
        return await self.check(cluster, parameter)


def test_a_state_change_by_itself_is_reported_at_once_and_metrics_at_the_next_recheck() -> None:
    relay = Parameter(id=uuid.uuid4(), kind=ParameterKind.CAN_CONNECTION, target=Target.PRESENT,
                      value={"role": "client", "local": "10.0.0.1", "remote": "10.0.0.2", "port": 20001})
    config = PeerConfiguration(id=uuid.uuid4(), cluster=uuid.uuid4(), parameters=(relay,))

    async def main() -> None:
        can = SwitchableCanPlane()
        plane = MemoryDataPlane(can=can)
        outbox = ReportOutbox()
        applier = Applier(plane, outbox, recheck_s=3600)
        async with running(applier):
            applier.configure(1, config)
            await until(lambda: applier.complete and applier.idle.is_set(), "applied")
            can.frames = 5  # metrics alone wait for the periodic re-check
            can.problem = "no datagram from 10.0.0.2:20001 for 3.0 s: relay peer lost"
            can.changed()
            await until(lambda: isinstance(applier.statuses[relay.id], ParameterError), "the lost relay reported")
            assert applier.statuses[relay.id] == ParameterError(reason=can.problem, metrics={"frames_sent": 5})
            can.problem = None
            can.changed()
            await until(lambda: isinstance(applier.statuses[relay.id], ParameterPresent), "recovered")
            can.frames = 9
            assert await applier.recheck()
            assert applier.statuses[relay.id] == ParameterPresent(detail="relay", metrics={"frames_sent": 9})

    asyncio.run(main())
