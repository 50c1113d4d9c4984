"""The storage interface the ResourcesManager needs; every store passes tests/unit/storage's suite."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from uuid import UUID

from resources.errors import DataDirError
from resources.events import Checkpoint, Event, EventType
from resources.kinds import ResourceKind
from resources.resource import AnyResource


@dataclass(frozen=True, slots=True)
class ReplayedChange:
    """What restore needs of a stored event, without building a full Event."""

    revision: int
    type: EventType
    kind: ResourceKind
    id: UUID
    resource: AnyResource | None


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    revision: int
    schema_version: int
    valid: bool
    created_at: str


class WriteNotStored(Exception):
    """Mixed into a store's error when a write certainly left nothing in the store (it failed before
    its commit was sent): the manager keeps its epoch and reuses the revisions (no client resyncs)."""


class EventStore(ABC):
    """Append-only events (persisted kinds only), checkpoints, meta and tokens."""

    read_only: bool

    @abstractmethod
    def append(self, events: Sequence[Event], reserve_up_to: int | None = None) -> None:
        """Write ``events`` and, if given, the new revision high-water mark in one transaction."""

    @abstractmethod
    def reserved_revision(self) -> int:
        """The highest revision ever reserved (0 for a new store)."""

    @abstractmethod
    def last_revision(self) -> int:
        """The revision of the newest stored event (0 when there is none)."""

    @abstractmethod
    def event_count(self) -> int: ...

    @abstractmethod
    def read_events(
        self,
        after: int = 0,
        limit: int | None = None,
        kind: ResourceKind | None = None,
        resource_id: UUID | None = None,
        kinds: Collection[ResourceKind] | None = None,
    ) -> Iterator[Event]:
        """Stored events with revision > ``after`` in revision order, upcast to the current schema;
        only of ``kind`` (or of any of ``kinds``) and ``resource_id`` when given."""

    @abstractmethod
    def replay(self, after: int = 0, up_to: int | None = None) -> Iterator[ReplayedChange]:
        """The changes after ``after`` (up to ``up_to``), validated and upcast, as cheaply as possible."""

    @abstractmethod
    def write_checkpoint(self, checkpoint: Checkpoint) -> None: ...

    @abstractmethod
    def load_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint whose checksum is valid; damaged ones are skipped."""

    @abstractmethod
    def checkpoints(self) -> list[CheckpointInfo]:
        """Every checkpoint, newest first, with its checksum verified."""

    @abstractmethod
    def prune_checkpoints(self, keep: int) -> int:
        """Delete all but the newest ``keep`` valid checkpoints (and every damaged one)."""

    @abstractmethod
    def vacuum(self) -> None: ...

    @abstractmethod
    def integrity_check(self) -> str: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def damaged(self, detail: str) -> DataDirError:
        """The error for a store that is not what LEA wrote (named; nothing was changed)."""
