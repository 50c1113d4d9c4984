"""The storage interface the ResourcesManager needs; every store passes tests/unit/storage's suite."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from backend.storage.rows import KINDS, TYPES, load_resource
from resources.errors import DataDirError, invalid_resource_from
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

    # -- reading rows (both stores keep the same columns) ---------------------------------
    def event_from_row(self, row: Sequence[Any]) -> Event:
        """A stored event from its columns: revision, epoch, tx, kind, resource_id, type, payload,
        schema_version, actor, at (payload upcast when an older schema wrote it)."""
        revision, epoch, tx, kind_s, rid, type_s, payload, version, actor, at = row
        k, t = KINDS.get(kind_s), TYPES.get(type_s)
        if k is None or t is None:
            raise self.unknown_row(revision, kind_s, type_s)
        try:
            return Event(
                epoch=epoch, revision=revision, type=t, kind=k, id=UUID(rid),
                resource=None if payload is None else load_resource(k, payload, version),
                actor=actor, at=datetime.fromisoformat(at), tx=UUID(tx),
            )
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            raise self.unreadable_row(revision, k, exc) from exc

    def unknown_row(self, revision: int, kind: object, type: object) -> DataDirError:
        what = f"kind {kind!r}" if kind not in KINDS else f"type {type!r}"
        return self.damaged(f"the event at revision {revision} has an unknown {what}")

    def unreadable_row(self, revision: int, kind: ResourceKind | None, exc: Exception) -> DataDirError:
        if isinstance(exc, ValidationError):
            reason = invalid_resource_from(exc, f"stored {kind.value if kind else 'resource'}").message
        else:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        return self.damaged(f"the event at revision {revision} cannot be read ({reason})")
