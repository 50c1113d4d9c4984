"""The event stream's senders share one sending budget per event-loop iteration (issue #9)."""

from __future__ import annotations

import asyncio

from backend.server.watch import SLICE_SECONDS, _budget


def test_the_budget_is_shared_by_every_sender_and_renewed_by_the_next_iteration() -> None:
    async def scenario() -> list[bool]:
        loop = asyncio.get_running_loop()
        budget = _budget(loop)
        assert _budget(loop) is budget  # one per loop: every stream charges the same one
        seen = [budget.exhausted()]
        budget.charge(SLICE_SECONDS / 2)  # one stream's send
        seen.append(budget.exhausted())
        budget.charge(SLICE_SECONDS / 2)  # another stream's, in the same iteration
        seen.append(budget.exhausted())
        await asyncio.sleep(0)  # the next iteration starts with a fresh budget
        seen.append(budget.exhausted())
        return seen

    assert asyncio.run(scenario()) == [False, False, True, False]
