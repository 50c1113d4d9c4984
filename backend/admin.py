"""Administrative operations on a store: replay and verify (used by the CLI and the tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from backend.state import State
from backend.storage.base import EventStore
from resources.kinds import ResourceKind
from resources.resource import AnyResource


@dataclass
class Restored:
    state: State
    checkpoint_revision: int  # 0 without a checkpoint
    revision: int  # of the last change applied (the checkpoint's when there was no later event)
    replayed: int  # events applied after the checkpoint


def restore_state(store: EventStore, *, use_checkpoint: bool = True, up_to: int | None = None) -> Restored:
    """The seed's ApplySnapshot + ApplyEvent: the newest valid checkpoint, then every later event.

    Events are folded into a plain mapping and the indexed State is built once at the end: most of
    a long history overwrites the same resources, and indexing each intermediate version costs.
    """
    latest: dict[tuple[ResourceKind, UUID], AnyResource] = {}
    checkpoint_revision = 0
    if use_checkpoint:
        checkpoint = store.load_checkpoint()
        if checkpoint is not None:
            latest = {(r.kind, r.id): r for r in checkpoint.resources}
            checkpoint_revision = checkpoint.revision
    revision = checkpoint_revision
    replayed = 0
    for change in store.replay(checkpoint_revision, up_to):
        if change.resource is None:
            latest.pop((change.kind, change.id), None)
        else:
            latest[(change.kind, change.id)] = change.resource
        revision = change.revision
        replayed += 1
    state = State()
    for resource in latest.values():
        state.put(resource)
    return Restored(state, checkpoint_revision, revision, replayed)


def replay(store: EventStore, *, use_checkpoint: bool, up_to: int | None = None) -> tuple[State, int]:
    """The persisted state rebuilt from storage, and the revision of the last change applied."""
    restored = restore_state(store, use_checkpoint=use_checkpoint, up_to=up_to)
    return restored.state, restored.revision


@dataclass
class VerifyReport:
    events: int
    checkpoint_revision: int | None
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def verify(store: EventStore) -> VerifyReport:
    """Replay every event from zero and compare with the newest valid checkpoint."""
    checkpoint = store.load_checkpoint()
    if checkpoint is None:
        return VerifyReport(events=store.event_count(), checkpoint_revision=None)
    state, _ = replay(store, use_checkpoint=False, up_to=checkpoint.revision)
    expected = {(r.kind, r.id): r for r in checkpoint.resources}
    actual = {(r.kind, r.id): r for r in state.persisted()}
    report = VerifyReport(events=store.event_count(), checkpoint_revision=checkpoint.revision)
    report.mismatches = describe_differences(expected, actual, "checkpoint", "replay")
    return report


def describe_differences(
    left: dict[tuple[ResourceKind, UUID], AnyResource],
    right: dict[tuple[ResourceKind, UUID], AnyResource],
    left_name: str,
    right_name: str,
) -> list[str]:
    out = []
    for key in sorted(left.keys() | right.keys(), key=lambda k: (k[0].value, str(k[1]))):
        a, b = left.get(key), right.get(key)
        if a is None:
            out.append(f"{key[0]} {key[1]} is in the {right_name} but not in the {left_name}")
        elif b is None:
            out.append(f"{key[0]} {key[1]} is in the {left_name} but not in the {right_name}")
        elif a != b:
            out.append(f"{key[0]} {key[1]} differs: {left_name} v{a.version}, {right_name} v{b.version}")
    return out
