"""The client's resource store: an evented container (no Qt).

It emits fine-grained changes, inserted / changed / removed ids per kind, once per applied batch
or snapshot; table models turn them into row insertions, updates and removals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from uuid import UUID

from resources.events import Event, EventType, StateSnapshot
from resources.kinds import ResourceKind
from resources.resource import AnyResource


@dataclass
class StoreChange:
    kind: ResourceKind
    inserted: set[UUID] = field(default_factory=set)
    changed: set[UUID] = field(default_factory=set)
    removed: set[UUID] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.inserted or self.changed or self.removed)


Listener = Callable[[StoreChange], None]


class Store:
    def __init__(self) -> None:
        self._by_kind: dict[ResourceKind, dict[UUID, AnyResource]] = {k: {} for k in ResourceKind}
        self._listeners: list[Listener] = []
        self._event_listeners: list[Callable[[list[Event]], None]] = []
        self.applied_events = 0

    # -- reading ---------------------------------------------------------------------------
    def get(self, kind: ResourceKind, id: UUID) -> AnyResource | None:
        return self._by_kind[kind].get(id)

    def all(self, kind: ResourceKind) -> dict[UUID, AnyResource]:
        """The live mapping of one kind (read it, never change it)."""
        return self._by_kind[kind]

    def resources(self) -> Iterator[AnyResource]:
        for mapping in self._by_kind.values():
            yield from mapping.values()

    def __len__(self) -> int:
        return sum(len(m) for m in self._by_kind.values())

    # -- listening -------------------------------------------------------------------------
    def listen(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def listen_events(self, listener: Callable[[list[Event]], None]) -> Callable[[], None]:
        """Also hear the raw events of every applied batch (the event log)."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener) if listener in self._event_listeners else None

    def _emit(self, changes: Iterable[StoreChange]) -> None:
        for change in changes:
            if change:
                for listener in list(self._listeners):
                    listener(change)

    # -- applying --------------------------------------------------------------------------
    def apply_events(self, events: Iterable[Event]) -> None:
        """Apply one batch, then emit its net changes per kind."""
        batch = list(events)
        before: dict[tuple[ResourceKind, UUID], bool] = {}
        for event in batch:
            mapping = self._by_kind[event.kind]
            key = (event.kind, event.id)
            if key not in before:
                before[key] = event.id in mapping
            if event.type == EventType.DELETED or event.resource is None:
                mapping.pop(event.id, None)
            else:
                mapping[event.id] = event.resource
            self.applied_events += 1
        changes: dict[ResourceKind, StoreChange] = {}
        for (kind, id), existed in before.items():
            exists = id in self._by_kind[kind]
            change = changes.get(kind)
            if change is None:  # (not setdefault: that would build a StoreChange per id)
                change = changes[kind] = StoreChange(kind)
            if existed and exists:
                change.changed.add(id)
            elif exists:
                change.inserted.add(id)
            elif existed:
                change.removed.add(id)
        self._emit(changes.values())
        for listener in list(self._event_listeners):
            listener(batch)

    def apply_snapshot(self, snapshot: StateSnapshot) -> None:
        """Make the store equal to the snapshot, emitting only what differs (views keep their rows)."""
        incoming: dict[ResourceKind, dict[UUID, AnyResource]] = {k: {} for k in ResourceKind}
        for resource in snapshot.resources:
            incoming[resource.kind][resource.id] = resource
        changes = []
        for kind in ResourceKind:
            old, new = self._by_kind[kind], incoming[kind]
            change = StoreChange(kind)
            change.removed = old.keys() - new.keys()
            change.inserted = new.keys() - old.keys()
            change.changed = {id for id in old.keys() & new.keys() if old[id] != new[id]}
            self._by_kind[kind] = new
            changes.append(change)
        self._emit(changes)
