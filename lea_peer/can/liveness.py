"""Whether a relay's remote is there: from what it sends and how the relay's sends fare.

- A datagram from the remote (any, even a malformed one) means it is there; an empty DATA one is
  a keepalive: the remote is a LEA relay, and from then on silence for ``lost_after_s`` is a loss.
  A remote that never sent a keepalive (a real cannelloni) is never lost for silence.
- A failed send is a failure with its reason, except "connection refused" before the remote was
  ever heard (its relay may start a moment later). A failure with no new one for
  ``lost_after_s`` clears (the sends go out again; silence decides from there).

Times are ``time.monotonic()`` seconds passed in, so the rules are tested without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Liveness:
    lost_after_s: float
    #: When the remote was last heard; None: never.
    heard_at: float | None = None
    speaks_keepalive: bool = False
    failure: str | None = None
    failure_at: float = 0.0
    lost: bool = False

    @property
    def healthy(self) -> bool:
        return self.failure is None and not self.lost

    def problem(self, remote: str) -> str | None:
        """Why the remote counts as gone (``remote``: its address for the sentence), or None."""
        if self.failure is not None:
            return self.failure
        if self.lost:
            return f"no datagram from {remote} for {self.lost_after_s:.1f} s: relay peer lost"
        return None

    def heard(self, now: float, keepalive: bool) -> bool:
        """A datagram from the remote; True when the relay was unhealthy until now."""
        recovered = not self.healthy
        self.heard_at, self.failure, self.lost = now, None, False
        self.speaks_keepalive = self.speaks_keepalive or keepalive
        return recovered

    def send_failed(self, now: float, reason: str, refused: bool) -> bool:
        """A send failed (``refused``: connection refused); True when the relay was healthy until now."""
        if refused and self.heard_at is None:
            return False
        was_healthy = self.healthy
        self.failure, self.failure_at = reason, now
        return was_healthy

    def tick(self, now: float) -> bool:
        """Time passed; True when the problem changed (a failure cleared, the remote lost)."""
        before = (self.failure, self.lost)
        if self.failure is not None and now - self.failure_at > self.lost_after_s:
            self.failure = None
        if self.speaks_keepalive and self.heard_at is not None and now - self.heard_at > self.lost_after_s:
            self.lost = True
        return (self.failure, self.lost) != before
