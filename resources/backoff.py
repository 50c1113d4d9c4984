"""Growing pauses between retries, the one helper every retry loop uses (backend and LEA alike)."""

from __future__ import annotations


class Backoff:
    """Pauses of 0 (the first retry comes at once), then ``first``, doubled up to ``maximum``.

    ``reset`` after a success (or a healthy period) starts over from 0.
    """

    def __init__(self, first: float = 0.1, maximum: float = 5.0) -> None:
        self.first = first
        self.maximum = maximum
        self._next = 0.0
        self._retries = 0

    def next_delay(self) -> float:
        """The pause before the next retry."""
        delay = self._next
        self._next = min(self.maximum, max(self.first, self._next * 2))
        self._retries += 1
        return delay

    def reset(self) -> None:
        self._next = 0.0
        self._retries = 0

    @property
    def retries(self) -> int:
        """Pauses handed out since the last reset (0: nothing has failed since)."""
        return self._retries
