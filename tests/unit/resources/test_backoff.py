"""resources.backoff.Backoff: the one retry pause of LEA's sync engine, the demo benches and the
deployment actions."""

from __future__ import annotations

from resources.backoff import Backoff


def test_backoff_grows_from_zero_doubles_and_caps() -> None:
    backoff = Backoff(first=0.1, maximum=0.5)
    assert [backoff.next_delay() for _ in range(6)] == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert [backoff.next_delay() for _ in range(3)] == [0.0, 0.1, 0.2]


def test_default_backoffs_are_bounded() -> None:
    for backoff in (Backoff(), Backoff(first=0.25, maximum=10.0)):
        delays = [backoff.next_delay() for _ in range(50)]
        assert delays[0] == 0.0
        assert delays == sorted(delays)
        assert max(delays) == backoff.maximum


def test_retries_count_the_pauses_since_the_last_reset() -> None:
    backoff = Backoff(first=0.01, maximum=2.0)
    assert backoff.retries == 0  # nothing failed yet: a first failure is news worth logging
    for _ in range(3):
        backoff.next_delay()
    assert backoff.retries == 3
    backoff.reset()
    assert backoff.retries == 0
