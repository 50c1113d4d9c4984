"""Start-up replay: the persisted state rebuilt from a store (the seed's ApplySnapshot + ApplyEvent).

The manager restores from it at start-up; ``verify`` and the CLI's read-only commands replay with it.
"""

from __future__ import annotations

from dataclasses import dataclass
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
