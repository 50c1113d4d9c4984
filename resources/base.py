"""Common base of every resource: immutable, tolerant of unknown fields, with kind, id and version."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from resources.kinds import ResourceKind

#: Largest version or revision (SQLite integers are 64-bit signed).
MAX_INT64 = 2**63 - 1


class Model(BaseModel):
    """Immutable model; unknown fields are ignored so older clients read newer payloads."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def _kind_is_required(schema: dict[str, Any]) -> None:
    """A document from outside must say its kind (resources.documents); every resource sent has it."""
    if "kind" in schema.get("properties", {}):
        schema["required"] = ["kind", *(f for f in schema.get("required", []) if f != "kind")]


class ResourceBase(Model):
    """``kind`` has a default for Python code; a JSON document must name it (resources.documents)."""

    model_config = ConfigDict(json_schema_extra=_kind_is_required)

    kind: ResourceKind
    id: UUID
    version: int = Field(default=0, ge=0, le=MAX_INT64, description="Per-resource counter, bumped by the manager.")

    def with_version(self, version: int) -> ResourceBase:
        return self.model_copy(update={"version": version})
