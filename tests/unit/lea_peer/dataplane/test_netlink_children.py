"""pyroute2 forks a child for every namespace operation (creating one, opening netlink or a socket
in one) and stops it with SIGTERM. A forked child inherits asyncio's signal handling (a C handler
writing to the loop's wakeup socket, which parent and child share), so without care the child's
SIGTERM reaches the agent's loop as if the agent had been told to stop: ``lea-peer run`` with the
netlink data plane stopped itself right after its start-up probe. No root needed: a plain child."""

from __future__ import annotations

import asyncio
import os
import select
import signal

from pyroute2.process import ChildProcess

import lea_peer.dataplane.netlink  # noqa: F401  # importing the data plane configures pyroute2


def _started_then_wait(started: int, never: int) -> bytes:
    os.write(started, b"x")  # the child is running its function: the parent may stop it now
    select.select([never], [], [], 5.0)  # nothing comes: until the parent's SIGTERM (at most 5 s)
    return b""


def test_stopping_a_pyroute2_child_does_not_signal_the_agents_loop() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        received: list[int] = []
        loop.add_signal_handler(signal.SIGTERM, received.append, signal.SIGTERM)
        ours, theirs = os.pipe(), os.pipe()
        try:
            child = ChildProcess(target=_started_then_wait, args=[theirs[1], ours[0]])
            child.run()
            await loop.run_in_executor(None, os.read, theirs[0], 1)
            child.stop()  # SIGTERM to the child, as pyroute2 does after every namespace operation
            await asyncio.sleep(0.2)  # the loop reads its wakeup socket on its next turn
            return received
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            for fd in (*ours, *theirs):
                os.close(fd)

    assert asyncio.run(main()) == [], "the child's SIGTERM must not look like the agent's"
