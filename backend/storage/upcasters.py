"""Upcasters: old persisted payloads become current ones on read; nothing is rewritten in place.

Schema history
- v1: a peer's interfaces and bridge lived under ``network: {interfaces, bridge_name}`` (openDuT's
  shape) and peers had no ``demo`` flag.
- v2: ``interfaces`` and ``bridge_name`` are top-level fields of the peer; ``demo`` was added.
- v3: user-visible text refuses control and invisible characters (``resources.names``) and CAN
  bitrates fit 32 bits; older payloads that broke these rules are repaired on read (a forbidden
  character becomes U+FFFD, a bitrate is capped), so a database written before still loads.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from resources.errors import SchemaTooNew
from resources.events import SCHEMA_VERSION
from resources.kinds import ResourceKind
from resources.names import FORBIDDEN_CATEGORIES, FORBIDDEN_CHARACTERS, forbidden_character
from resources.peer import MAX_BITRATE

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


def _clean_text(value: Any) -> Any:
    """Every string in ``value`` with each forbidden character replaced by U+FFFD."""
    if isinstance(value, str):
        if forbidden_character(value) is None:
            return value
        return "".join(
            "\ufffd" if c in FORBIDDEN_CHARACTERS or unicodedata.category(c) in FORBIDDEN_CATEGORIES else c
            for c in value
        )
    if isinstance(value, list):
        return [_clean_text(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean_text(v) for k, v in value.items()}
    return value


@upcaster(ResourceKind.PEER, 2)
def _peer_v2_to_v3(payload: Payload) -> Payload:
    payload = dict(_clean_text(payload))
    for interface in payload.get("interfaces") or []:
        configuration = interface.get("configuration") if isinstance(interface, dict) else None
        if isinstance(configuration, dict) and configuration.get("type") == "can":
            for key in ("bitrate", "data_bitrate"):
                if isinstance(configuration.get(key), int) and configuration[key] > MAX_BITRATE:
                    configuration[key] = MAX_BITRATE
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
