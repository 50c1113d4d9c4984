"""The UI thread's shared budget: back-to-back work is one chain of at most LIMIT; workers take turns."""

from __future__ import annotations

from lea_app.sync.budget import OWED_FOR, WorkBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def work(budget: WorkBudget, clock: Clock, worker: str, seconds: float) -> None:
    start = clock.now
    clock.now += seconds
    budget.done(worker, start, clock.now)


def test_back_to_back_work_is_one_chain_of_at_most_the_limit() -> None:
    clock = Clock()
    budget = WorkBudget(limit=0.010, quiet=0.0005, clock=clock)
    deadline = budget.turn("sync")
    assert deadline == clock.now + 0.010
    work(budget, clock, "sync", 0.006)
    assert budget.turn("sync") == clock.now + 0.004  # the same chain: what is left of it
    work(budget, clock, "paint", 0.005)  # what Qt did counts too
    assert budget.turn("sync") is None and budget.yields == 1
    clock.now += 0.001  # a pause ends the chain
    assert budget.turn("sync") == clock.now + 0.010


def test_a_worker_that_yielded_is_owed_the_next_chain() -> None:
    clock = Clock()
    budget = WorkBudget(limit=0.010, quiet=0.0005, clock=clock)
    work(budget, clock, "sync", 0.010)
    assert budget.turn("flush") is None  # the chain is spent
    clock.now += 0.001
    assert budget.turn("sync") is None  # sync worked last and flush waits: flush goes first
    assert budget.turn("flush", fresh=True) is not None
    work(budget, clock, "flush", 0.004)
    assert budget.turn("sync") is not None  # nobody is owed any more: the rest of the chain


def test_fresh_work_only_starts_a_chain() -> None:
    clock = Clock()
    budget = WorkBudget(limit=0.010, quiet=0.0005, clock=clock)
    work(budget, clock, "sync", 0.001)
    assert budget.turn("flush", fresh=True) is None  # its paint would follow the engine's work
    clock.now += 0.0005
    assert budget.turn("flush", fresh=True) is not None


def test_a_worker_that_stopped_asking_is_owed_nothing() -> None:
    clock = Clock()
    budget = WorkBudget(limit=0.010, quiet=0.0005, clock=clock)
    work(budget, clock, "sync", 0.010)
    assert budget.turn("flush") is None
    clock.now += OWED_FOR + 0.001  # the flusher had nothing more to do
    assert budget.turn("sync") is not None


def test_a_worker_that_let_the_loop_turn_starts_afresh_unless_others_worked_since() -> None:
    clock = Clock()
    budget = WorkBudget(limit=0.010, quiet=0.0005, clock=clock)
    work(budget, clock, "sync", 0.008)
    budget.yielded("sync")
    assert budget.turn("sync") == clock.now + 0.010
    work(budget, clock, "sync", 0.008)
    work(budget, clock, "paint", 0.004)  # a paint came in the loop's turn: it is still back to back
    budget.yielded("sync")
    assert budget.turn("sync") is None
