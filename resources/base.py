"""Common base of every resource: immutable, tolerant of unknown fields, with kind, id and version."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from resources.kinds import ResourceKind


class Model(BaseModel):
    """Immutable model; unknown fields are ignored so older clients read newer payloads."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class ResourceBase(Model):
    kind: ResourceKind
    id: UUID
    version: int = Field(default=0, ge=0, description="Per-resource counter, bumped by the manager.")

    def with_version(self, version: int) -> ResourceBase:
        return self.model_copy(update={"version": version})
