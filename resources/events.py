"""Events, the StateSnapshot clients fetch, and the storage checkpoint payload."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from resources.base import Model
from resources.kinds import ResourceKind
from resources.resource import AnyResource, Resource

#: Version of the persisted payloads; bumped when a persisted model changes shape (see upcasters).
SCHEMA_VERSION = 3


class EventType(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


class Event(Model):
    """One change of one resource. A transaction's events have contiguous revisions and share tx."""

    epoch: str
    revision: int = Field(ge=1)
    type: EventType
    kind: ResourceKind
    id: UUID
    resource: Resource | None = Field(default=None, description="The new state; None when deleted.")
    actor: str
    at: datetime
    tx: UUID

    @property
    def persisted(self) -> bool:
        return self.kind.persisted


class StateSnapshot(Model):
    """Every persisted and volatile resource as of exactly `revision` of `epoch`."""

    epoch: str
    revision: int = Field(ge=0)
    schema_version: int = SCHEMA_VERSION
    resources: tuple[Resource, ...] = ()


class Checkpoint(Model):
    """A storage checkpoint: the persisted kinds only, at `revision`. Not a StateSnapshot."""

    revision: int = Field(ge=0)
    schema_version: int = SCHEMA_VERSION
    resources: tuple[Resource, ...] = ()


class WriteResult(Model):
    """What an action returns: the revision of its (last) event and the resource's new version."""

    revision: int
    version: int
    id: UUID | None = None


def resources_of(snapshot: StateSnapshot | Checkpoint, kind: ResourceKind) -> list[AnyResource]:
    return [r for r in snapshot.resources if r.kind == kind]
