"""ReconnectSchedule: 0.5 s -> 30 s with jitter, reset after 30 s connected, seeded and pure."""

from __future__ import annotations

import random

from lea_peer.reconnect import ReconnectSchedule


def test_steps_double_from_half_a_second_and_cap_at_thirty() -> None:
    schedule = ReconnectSchedule(random.Random(1))
    steps = []
    for _ in range(10):
        steps.append(schedule.step())
        schedule.next_delay()
    assert steps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_delays_are_jittered_within_the_upper_half_of_each_step() -> None:
    schedule = ReconnectSchedule(random.Random(7))
    for _ in range(200):
        step = schedule.step()
        delay = schedule.next_delay()
        assert max(0.5, step / 2) <= delay <= step
        assert 0.5 <= delay <= 30.0


def test_jitter_spreads_a_fleet_and_a_seed_reproduces_it() -> None:
    def delays(seed: int) -> list[float]:
        schedule = ReconnectSchedule(random.Random(seed))
        return [schedule.next_delay() for _ in range(8)]

    assert delays(3) == delays(3)
    assert delays(3) != delays(4)
    fleet = {round(delays(seed)[5], 6) for seed in range(20)}
    assert len(fleet) > 10  # twenty agents cut off at once do not retry in lock-step


def test_reset_only_after_a_healthy_connection() -> None:
    schedule = ReconnectSchedule(random.Random(0))
    for _ in range(5):
        schedule.next_delay()
    schedule.connected_for(29.9)
    assert schedule.step() == 16.0
    schedule.connected_for(30.0)
    assert schedule.step() == 0.5
    assert schedule.next_delay() == 0.5
