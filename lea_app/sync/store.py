"""The client's resource store: an evented container (no Qt).

It emits fine-grained changes, inserted / changed / removed ids per kind, once per applied batch
or snapshot; table models turn them into row insertions, updates and removals. It keeps the same
``ResourceIndex`` as the backend's State, so it is a ``resources.view.ResourceView``: LEA pre-checks
the backend's rules (``resources.rules``) and derives facts (``resources.derived``) from it cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from dataclasses import dataclass, field
from uuid import UUID

from resources.events import Event, EventType, StateSnapshot
from resources.index import ResourceIndex
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
#: How many names of deleted resources the store remembers.
GONE_NAMES = 10_000


class Store:
    def __init__(self) -> None:
        self._index = ResourceIndex()
        self._listeners: list[Listener] = []
        self._event_listeners: list[Callable[[list[Event]], None]] = []
        self.applied_events = 0
        #: The names of deleted peers and clusters (the event log names what a delete removed).
        self._gone_names: dict[UUID, str] = {}

    # -- reading (the ResourceView) --------------------------------------------------------
    def get(self, kind: ResourceKind, id: UUID, /) -> AnyResource | None:
        return self._index.get(kind, id)

    def of_kind(self, kind: ResourceKind, /) -> Mapping[UUID, AnyResource]:
        """The live mapping of one kind (read it, never change it)."""
        return self._index.of_kind(kind)

    all = of_kind

    def id_by_name(self, kind: ResourceKind, name: str, /) -> UUID | None:
        return self._index.id_by_name(kind, name)

    def device_owner(self, device_id: UUID, /) -> UUID | None:
        return self._index.device_owner(device_id)

    def clusters_with_device(self, device_id: UUID, /) -> Set[UUID]:
        return self._index.clusters_with_device(device_id)

    def members(self, cluster_id: UUID, /) -> Set[UUID]:
        return self._index.members(cluster_id)

    def clusters_of_peer(self, peer_id: UUID, /) -> Set[UUID]:
        return self._index.clusters_of_peer(peer_id)

    def resources(self) -> Iterator[AnyResource]:
        for kind in ResourceKind:
            yield from self._index.of_kind(kind).values()

    def __len__(self) -> int:
        return sum(len(self._index.of_kind(k)) for k in ResourceKind)

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
        index = self._index
        before: dict[tuple[ResourceKind, UUID], bool] = {}
        for event in batch:
            if event.type == EventType.DELETED or event.resource is None:
                old = index.delete(event.kind, event.id)
                name = vars(old).get("name") if old is not None else None  # pydantic keeps fields in __dict__
                if isinstance(name, str):
                    self._remember_gone(event.id, name)
            else:
                old = index.put(event.resource)
            key = (event.kind, event.id)
            if key not in before:
                before[key] = old is not None
            self.applied_events += 1
        changes: dict[ResourceKind, StoreChange] = {}
        mappings = {kind: index.of_kind(kind) for kind in ResourceKind}
        for (kind, id), existed in before.items():
            exists = id in mappings[kind]
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

    def _remember_gone(self, id: UUID, name: str) -> None:
        self._gone_names[id] = name
        if len(self._gone_names) > GONE_NAMES:
            del self._gone_names[next(iter(self._gone_names))]  # the oldest

    def deleted_name(self, id: UUID, /) -> str | None:
        """The name a peer or cluster had when it was deleted (the last GONE_NAMES deletes)."""
        return self._gone_names.get(id)

    def apply_snapshot(self, snapshot: StateSnapshot) -> None:
        """Make the store equal to the snapshot, emitting only what differs (views keep their rows)."""
        incoming: dict[ResourceKind, dict[UUID, AnyResource]] = {k: {} for k in ResourceKind}
        for resource in snapshot.resources:
            incoming[resource.kind][resource.id] = resource
        index = self._index
        changes = []
        for kind in ResourceKind:
            old, new = index.of_kind(kind), incoming[kind]
            change = StoreChange(kind)
            change.removed = old.keys() - new.keys()
            change.inserted = new.keys() - old.keys()
            change.changed = {id for id in old.keys() & new.keys() if old[id] != new[id]}
            changes.append(change)
        # Indexed in the order of an event batch: what goes away first, then what comes.
        for change in changes:
            for id in change.removed:
                index.delete(change.kind, id)
        for change in changes:
            for id in change.inserted | change.changed:
                index.put(incoming[change.kind][id])
        self._emit(changes)
