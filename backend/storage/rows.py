"""What every store does to a stored row: checksums, kind and type names, payloads upcast on read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from backend.storage.upcasters import upcast
from resources.events import SCHEMA_VERSION, EventType
from resources.kinds import ResourceKind
from resources.resource import MODEL_BY_KIND, AnyResource, resource_from_dict

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
