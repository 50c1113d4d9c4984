"""What every store does to a stored row: checksums, kind and type names, payloads upcast on read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from backend.storage.upcasters import upcast
from resources.errors import SchemaTooNew
from resources.events import SCHEMA_VERSION, Checkpoint, EventType
from resources.kinds import ResourceKind
from resources.resource import MODEL_BY_KIND, RESOURCE_LIST_ADAPTER, AnyResource, resource_from_dict

KINDS = {k.value: k for k in ResourceKind}
TYPES = {t.value: t for t in EventType}
#: ``Model.model_validate_json`` without its Python wrapper (the same validator; replay is hot).
VALIDATE_JSON: dict[ResourceKind, Callable[[str], AnyResource]] = {
    kind: model.__pydantic_validator__.validate_json for kind, model in MODEL_BY_KIND.items()
}


def checksum(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def load_resource(kind: ResourceKind, payload: str, version: int) -> AnyResource:
    if version == SCHEMA_VERSION:
        return MODEL_BY_KIND[kind].model_validate_json(payload)
    return resource_from_dict(kind, upcast(kind, json.loads(payload), version))


def checkpoint_from_row(revision: int, version: int, digest: str, payload: str | None) -> Checkpoint | None:
    """A stored checkpoint, upcast to this schema; None when damaged (its checksum does not match:
    the caller falls back to an older checkpoint or a full replay). A newer schema is refused."""
    if payload is None or checksum(payload) != digest:
        return None
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(f"checkpoint {revision} has schema version {version}")
    if version == SCHEMA_VERSION:
        resources = tuple(RESOURCE_LIST_ADAPTER.validate_json(payload))
    else:
        resources = tuple(
            resource_from_dict(KINDS[item["kind"]], upcast(KINDS[item["kind"]], item, version))
            for item in json.loads(payload)
        )
    # Validated just above (or by the upcasters' path): not a second time over 10,000 resources.
    return Checkpoint.model_construct(revision=revision, schema_version=SCHEMA_VERSION, resources=resources)
