"""When to try the backend again: exponential backoff with jitter, reset after a healthy period.

Pure (no clock, no sleeping): the connection loop says how long each connection lasted and asks
for the next pause; the random source is passed in, so a seeded schedule is reproducible.
"""

from __future__ import annotations

import random

FIRST_S = 0.5
MAXIMUM_S = 30.0
#: A connection that lasted this long was healthy: the next failure starts the schedule over.
HEALTHY_AFTER_S = 30.0


class ReconnectSchedule:
    """Pauses that double from ``first`` to ``maximum``; each is drawn uniformly from the upper
    half of its step (never below ``first``), so a fleet of agents cut off by one backend restart
    does not come back in lock-step."""

    def __init__(
        self,
        rng: random.Random,
        first: float = FIRST_S,
        maximum: float = MAXIMUM_S,
        healthy_after: float = HEALTHY_AFTER_S,
    ) -> None:
        self.rng = rng
        self.first = first
        self.maximum = maximum
        self.healthy_after = healthy_after
        self.attempt = 0

    def step(self) -> float:
        """The upper bound of the current pause (before jitter)."""
        return float(min(self.maximum, self.first * 2 ** min(self.attempt, 64)))

    def next_delay(self) -> float:
        """The pause before the next attempt; each call moves one step up."""
        step = self.step()
        self.attempt += 1
        return self.rng.uniform(max(self.first, step / 2), step)

    def connected_for(self, seconds: float) -> None:
        """A connection ended after ``seconds``; a healthy one resets the schedule."""
        if seconds >= self.healthy_after:
            self.reset()

    def reset(self) -> None:
        self.attempt = 0
