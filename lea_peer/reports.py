"""The agent's outgoing reports: the latest one wins, at most one per ``min_interval_s``.

The applier publishes the full parameter list after every change; the connection's sender takes
them out. Between two sends only the latest is kept, so a burst of changes costs one message, and
a report made while disconnected is sent (as the current full list) once connected again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from resources.agent import AgentReport

#: At most ~10 reports per second.
MIN_INTERVAL_S = 0.1


class ReportOutbox:
    def __init__(self, min_interval_s: float = MIN_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._latest: AgentReport | None = None
        self._pending = asyncio.Event()
        self._last_sent = -float("inf")
        self.published = 0

    @property
    def latest(self) -> AgentReport | None:
        return self._latest

    def publish(self, report: AgentReport) -> None:
        """Replace whatever is waiting with ``report``."""
        self._latest = report
        self.published += 1
        self._pending.set()

    def resend(self) -> None:
        """After a reconnect: the current full list goes out again (if there is one)."""
        if self._latest is not None:
            self._pending.set()

    def discard_pending(self) -> None:
        """Nothing waits to be sent (the connection is new and said its state in the hello)."""
        self._pending.clear()

    async def next(self) -> AgentReport:
        """The latest report, once there is one not yet taken and the interval has passed."""
        while True:
            await self._pending.wait()
            wait = self._last_sent + self.min_interval_s - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)  # coalesce: whatever is published meanwhile replaces it
            if not self._pending.is_set() or self._latest is None:
                continue
            self._pending.clear()
            self._last_sent = self._clock()
            return self._latest
