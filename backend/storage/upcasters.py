"""Upcasters: old persisted payloads become current ones on read; nothing is rewritten in place.

Schema history
- v1: a peer's interfaces and bridge lived under ``network: {interfaces, bridge_name}`` (openDuT's
  shape) and peers had no ``demo`` flag.
- v2: ``interfaces`` and ``bridge_name`` are top-level fields of the peer; ``demo`` was added.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resources.errors import SchemaTooNew
from resources.events import SCHEMA_VERSION
from resources.kinds import ResourceKind

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

#: (kind, version it reads) -> function returning the payload of version + 1.
UPCASTERS: dict[tuple[ResourceKind, int], Upcaster] = {}


def upcaster(kind: ResourceKind, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(fn: Upcaster) -> Upcaster:
        UPCASTERS[(kind, from_version)] = fn
        return fn

    return register


@upcaster(ResourceKind.PEER, 1)
def _peer_v1_to_v2(payload: Payload) -> Payload:
    payload = dict(payload)
    network = payload.pop("network", None) or {}
    payload.setdefault("interfaces", network.get("interfaces", []))
    payload.setdefault("bridge_name", network.get("bridge_name"))
    payload.setdefault("demo", False)
    return payload


def upcast(kind: ResourceKind, payload: Payload, version: int) -> Payload:
    """Bring ``payload`` of schema ``version`` up to ``SCHEMA_VERSION``."""
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"a {kind} payload has schema version {version}; this LEA understands up to {SCHEMA_VERSION}"
        )
    while version < SCHEMA_VERSION:
        step = UPCASTERS.get((kind, version))
        if step is not None:
            payload = step(payload)
        version += 1
    return payload
