"""The relay's liveness rules as a state machine: datagrams heard, sends failed, time passing."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lea_peer.can.liveness import Liveness

LOST_AFTER = 3.0
REMOTE = "10.0.0.2:20001"


class LivenessMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.liveness = Liveness(LOST_AFTER)
        self.now = 0.0
        self.keepalive_heard = False
        self.last_heard: float | None = None
        self.last_failure: float | None = None

    @rule(keepalive=st.booleans())
    def a_datagram_arrives(self, keepalive: bool) -> None:
        was_healthy = self.liveness.healthy
        recovered = self.liveness.heard(self.now, keepalive)
        assert recovered == (not was_healthy)
        assert self.liveness.healthy and self.liveness.problem(REMOTE) is None
        self.keepalive_heard = self.keepalive_heard or keepalive
        self.last_heard, self.last_failure = self.now, None

    @rule(refused=st.booleans())
    def a_send_fails(self, refused: bool) -> None:
        was_healthy = self.liveness.healthy
        became_bad = self.liveness.send_failed(self.now, "sending failed", refused)
        if refused and self.last_heard is None:
            assert not became_bad and self.liveness.healthy == was_healthy, "refused before heard is no failure"
            return
        assert became_bad == was_healthy
        assert self.liveness.problem(REMOTE) == "sending failed"
        self.last_failure = self.now

    @rule(seconds=st.floats(0.0, 5.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        before = (self.liveness.failure, self.liveness.lost)
        changed = self.liveness.tick(self.now)
        assert changed == ((self.liveness.failure, self.liveness.lost) != before)

    @invariant()
    def never_lost_for_silence_without_a_keepalive(self) -> None:
        if not self.keepalive_heard:
            assert not self.liveness.lost

    @invariant()
    def lost_only_after_the_silence(self) -> None:
        if self.liveness.lost:
            assert self.last_heard is not None and self.now - self.last_heard > LOST_AFTER
            assert self.liveness.problem(REMOTE) in (
                f"no datagram from {REMOTE} for 3.0 s: relay peer lost", self.liveness.failure)

    @invariant()
    def a_failure_lasts_at_most_the_silence_after_the_last_one(self) -> None:
        if self.liveness.failure is not None:  # time passes only with a tick, which clears old failures
            assert self.last_failure is not None and self.now - self.last_failure <= LOST_AFTER

    @invariant()
    def healthy_means_no_problem(self) -> None:
        assert self.liveness.healthy == (self.liveness.problem(REMOTE) is None)


TestLiveness = LivenessMachine.TestCase


def test_silence_after_keepalives_is_a_loss_and_a_datagram_ends_it() -> None:
    liveness = Liveness(LOST_AFTER)
    liveness.heard(0.0, keepalive=True)
    assert not liveness.tick(3.0) and liveness.healthy
    assert liveness.tick(3.1)
    assert liveness.problem(REMOTE) == f"no datagram from {REMOTE} for 3.0 s: relay peer lost"
    assert not liveness.tick(10.0), "lost once, not again"
    assert liveness.heard(10.5, keepalive=True) and liveness.healthy


def test_a_failure_clears_when_no_new_one_comes_for_the_silence() -> None:
    liveness = Liveness(LOST_AFTER)
    assert not liveness.send_failed(0.0, "connection refused", refused=True), "before the remote was heard"
    assert liveness.send_failed(0.0, "network is unreachable", refused=False)
    assert not liveness.send_failed(1.0, "network is unreachable", refused=False), "still the same failure"
    assert not liveness.tick(3.5) and liveness.failure is not None
    assert liveness.tick(4.1) and liveness.healthy
