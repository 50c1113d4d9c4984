"""The agent (lea_peer.connection.Agent, in-process, MemoryDataPlane) against an in-test backend
speaking resources/agent.py: hello/welcome, configure and progressive reports, pre-emption,
heartbeats, silence timeout, final close codes, and reconnects through a misbehaving TCP proxy."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import lea_peer
from lea_peer.connection import Agent, AgentSettings, FinalError
from lea_peer.dataplane.memory import MemoryDataPlane
from lea_peer.reconnect import ReconnectSchedule
from resources.agent import CONNECT_PATH, CloseCode, TunnelType
from resources.configuration import Parameter, ParameterPresent, Target
from tests.helpers.agent_parameters import PEER, configuration, member_parameters
from tests.helpers.fake_agent_backend import TOKEN, FakeAgentBackend
from tests.helpers.tcp_proxy import TcpProxy

WAIT_S = 20.0


def settings(base_url: str, recheck_s: float = 30.0, open_timeout_s: float = 5.0) -> AgentSettings:
    return AgentSettings(url=base_url + CONNECT_PATH, peer_id=PEER, token=TOKEN, underlay_address="10.0.0.1",
                         recheck_s=recheck_s, open_timeout_s=open_timeout_s)


def fast_schedule() -> ReconnectSchedule:
    return ReconnectSchedule(random.Random(5), first=0.05, maximum=0.2, healthy_after=30.0)


@asynccontextmanager
async def agent_running(agent: Agent) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield task
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, WAIT_S)
        if not task.done():
            task.cancel()


def all_present(report_parameters: tuple[object, ...]) -> bool:
    return all(isinstance(p.state, ParameterPresent) for p in report_parameters)  # type: ignore[attr-defined]


def test_hello_welcome_configure_and_progressive_reports() -> None:
    async def main() -> None:
        async with FakeAgentBackend() as backend:
            plane = MemoryDataPlane(devices=["eth1"])
            agent = Agent(settings(backend.url), plane, fast_schedule())
            async with agent_running(agent):
                session = await backend.session(1)
                hello = session.hello
                assert hello is not None
                assert hello.peer_id == PEER and hello.agent_version == lea_peer.__version__
                assert hello.underlay_address == "10.0.0.1"
                assert set(hello.capabilities.tunnels) == {TunnelType.GRETAP, TunnelType.VXLAN}
                assert hello.applied == ()
                cfg = configuration()
                await session.configure(3, cfg)
                await backend.until(lambda: bool(session.reports) and all_present(session.reports[-1].parameters),
                                    "every parameter reported Present")
                last = session.reports[-1]
                assert last.generation == 3
                assert [p.id for p in last.parameters] == [p.id for p in cfg.parameters]  # the full list
                assert len(session.reports) < len(cfg.parameters) + 1  # coalesced, never more than one per change
                await backend.until(lambda: session.heartbeats >= 2, "heartbeats from the agent")
                assert plane.links["eth1"].master == "br-lea"

    asyncio.run(main())


def test_newer_configure_preempts_the_one_being_applied() -> None:
    async def main() -> None:
        p = member_parameters()
        entered, release = asyncio.Event(), asyncio.Event()

        async def gate(action: str, parameter: Parameter) -> None:
            if action == "apply" and parameter.id == p.bridge.id:
                entered.set()
                await release.wait()

        async with FakeAgentBackend() as backend:
            plane = MemoryDataPlane(devices=["eth1"], gate=gate)
            agent = Agent(settings(backend.url), plane, fast_schedule())
            async with agent_running(agent):
                session = await backend.session(1)
                await session.configure(1, configuration())
                await asyncio.wait_for(entered.wait(), WAIT_S)
                await session.configure(2, configuration(Target.ABSENT))
                await backend.until(lambda: agent.applier._pending is not None, "generation 2 received")
                release.set()
                await backend.until(lambda: bool(session.reports) and session.reports[-1].generation == 2
                                    and agent.applier.complete, "generation 2 applied")
                assert set(plane.links) == {"eth1"}
                applies_of_gen1_after_bridge = [
                    pid for what, pid, target in plane.calls
                    if what == "apply" and target == Target.PRESENT and pid != p.bridge.id
                ]
                # Generation 1 stopped right after the call in progress (the device may have come first).
                assert set(applies_of_gen1_after_bridge) <= {p.device.id}

    asyncio.run(main())


def test_silent_backend_times_out_and_the_agent_reconnects_with_the_full_list() -> None:
    async def main() -> None:
        async with FakeAgentBackend(heartbeat_s=0.1, timeout_s=1.0) as backend:
            agent = Agent(settings(backend.url), MemoryDataPlane(devices=["eth1"]), fast_schedule())
            async with agent_running(agent):
                first = await backend.session(1)
                await first.configure(1, configuration())
                await backend.until(lambda: bool(first.reports) and all_present(first.reports[-1].parameters),
                                    "configuration applied")
                backend.heartbeats = False
                await asyncio.wait_for(first.closed.wait(), WAIT_S)
                assert first.close_code == CloseCode.TIMEOUT
                backend.heartbeats = True
                second = await backend.session(2)
                assert second.hello is not None and all_present(second.hello.applied)
                assert len(second.hello.applied) == 6
                await backend.until(lambda: bool(second.reports), "the current report sent again")
                assert second.reports[-1].generation == 1 and all_present(second.reports[-1].parameters)

    asyncio.run(main())


def test_configuration_resent_on_reconnect_is_not_reapplied() -> None:
    async def main() -> None:
        async with FakeAgentBackend() as backend:
            backend.stored = (5, configuration())
            plane = MemoryDataPlane(devices=["eth1"])
            agent = Agent(settings(backend.url), plane, fast_schedule())
            async with agent_running(agent):
                first = await backend.session(1)
                await backend.until(lambda: bool(first.reports) and all_present(first.reports[-1].parameters),
                                    "stored configuration applied")
                applies = len([c for c in plane.calls if c[0] == "apply"])
                await first.close(CloseCode.SHUTDOWN, "backend restarts")
                second = await backend.session(2)
                await backend.until(lambda: bool(second.reports), "a report on the new connection")
                assert second.reports[-1].generation == 5
                await backend.until(lambda: agent.applier.idle.is_set(), "the applier idle")
                assert len([c for c in plane.calls if c[0] == "apply"]) == applies

    asyncio.run(main())


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (CloseCode.BAD_CREDENTIALS, "refused the token"),
        (CloseCode.WRONG_PEER, "not a bench token for peer"),
        (CloseCode.PEER_DELETED, "has no peer"),
        (CloseCode.REPLACED, "replaced this one"),
        (CloseCode.UNSUPPORTED, "protocol version"),
    ],
)
def test_final_close_code_stops_the_agent_with_a_clear_line(code: CloseCode, words: str) -> None:
    async def main() -> None:
        async with FakeAgentBackend() as backend:
            backend.close_on_hello = (code, "as the test says")
            agent = Agent(settings(backend.url), MemoryDataPlane(), fast_schedule())
            with pytest.raises(FinalError, match=words):
                await asyncio.wait_for(agent.run(asyncio.Event()), WAIT_S)
            assert len(backend.sessions) == 1  # no retry

    asyncio.run(main())


@pytest.mark.parametrize("status", [401, 403])
def test_http_refusal_of_the_upgrade_is_final(status: int) -> None:
    async def main() -> None:
        async with FakeAgentBackend() as backend:
            backend.refuse_http = status
            agent = Agent(settings(backend.url), MemoryDataPlane(), fast_schedule())
            with pytest.raises(FinalError, match=f"HTTP {status}"):
                await asyncio.wait_for(agent.run(asyncio.Event()), WAIT_S)

    asyncio.run(main())


def test_other_http_errors_and_shutdown_close_are_retried() -> None:
    async def main() -> None:
        async with FakeAgentBackend() as backend:
            backend.refuse_http = 503
            agent = Agent(settings(backend.url), MemoryDataPlane(), fast_schedule())
            async with agent_running(agent):
                await backend.until(lambda: agent.schedule.attempt >= 2, "two retries")
                backend.refuse_http = None
                first = await backend.session(len(backend.sessions) + 1)
                await first.close(CloseCode.SHUTDOWN)
                await backend.until(lambda: agent.sessions >= 2, "a new connection after the shutdown close")

    asyncio.run(main())


def test_reconnect_through_proxy_pause_blackhole_and_reset() -> None:
    async def main() -> None:
        async with FakeAgentBackend(heartbeat_s=0.1, timeout_s=1.0) as backend, \
                TcpProxy("127.0.0.1", backend.port) as proxy:
            plane = MemoryDataPlane(devices=["eth1"])
            agent = Agent(settings(proxy.url, recheck_s=0.1, open_timeout_s=1.0), plane, fast_schedule())
            async with agent_running(agent):
                first = await backend.session(1)
                await first.configure(1, configuration())
                await backend.until(lambda: bool(first.reports) and all_present(first.reports[-1].parameters),
                                    "configuration applied")

                # Pause: silence on the agent's side, it gives up on the connection and retries.
                proxy.pause()
                await backend.until(lambda: agent.schedule.attempt >= 2, "retries while paused")
                # The data plane stays up while disconnected, and drift is still repaired.
                plane.drop("gre-0123456789a")
                await backend.until(lambda: "gre-0123456789a" in plane.links, "drift repaired while disconnected")
                proxy.resume()
                await backend.until(lambda: agent.sessions >= 2, "reconnected after the pause")
                latest = backend.sessions[-1]
                await backend.until(
                    lambda: any("re-applied after drift" in (p.state.detail or "")  # type: ignore[union-attr]
                                for r in latest.reports for p in r.parameters),
                    "the report made while disconnected, sent after reconnecting")
                assert "br-lea" in plane.links

                # Black hole: connections look open but nothing arrives; the agent times out and retries.
                sessions = agent.sessions
                proxy.blackhole()
                attempts = agent.schedule.attempt
                await backend.until(lambda: agent.schedule.attempt >= attempts + 2, "retries into the black hole")
                assert agent.sessions == sessions
                proxy.resume()
                await backend.until(lambda: agent.sessions > sessions, "reconnected after the black hole")

                # Reset: an RST ends the connection at once; the agent is back after a short pause.
                sessions = agent.sessions
                proxy.reset()
                await backend.until(lambda: agent.sessions > sessions, "reconnected after the reset")
                assert plane.links["eth1"].master == "br-lea"
                await backend.until(lambda: len(backend.welcomed()) == 1, "the old connections closed")

    asyncio.run(main())


@pytest.mark.parametrize("code", [CloseCode.REPLACED, CloseCode.BAD_CREDENTIALS])
def test_final_close_while_running_stops_the_agent_and_leaves_the_bench_configured(code: CloseCode) -> None:
    async def main() -> None:
        async with FakeAgentBackend() as backend:
            plane = MemoryDataPlane(devices=["eth1"])
            agent = Agent(settings(backend.url), plane, fast_schedule())
            task = asyncio.create_task(agent.run(asyncio.Event()))
            session = await backend.session(1)
            await session.configure(1, configuration())
            await backend.until(lambda: bool(session.reports) and all_present(session.reports[-1].parameters),
                                "configuration applied")
            await session.close(code, "revoked or replaced")
            with pytest.raises(FinalError):
                await asyncio.wait_for(task, WAIT_S)
            assert plane.closed and plane.links["eth1"].master == "br-lea"  # exiting removes nothing
            assert len(backend.sessions) == 1

    asyncio.run(main())
