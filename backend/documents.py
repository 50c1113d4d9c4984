"""Documents: peers and clusters as JSON objects (``lea-backend apply``), parsed and applied."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from backend import actions
from backend.manager import ResourcesManager, TxResult
from resources.errors import InvalidDocument, invalid_resource_from
from resources.kinds import ResourceKind
from resources.resource import MODEL_BY_KIND, AnyResource

_DOCUMENT_KINDS = {ResourceKind.PEER, ResourceKind.CLUSTER}


def parse_document(data: Any, where: str = "document") -> AnyResource:
    """A peer or cluster from a JSON object; a clear InvalidResource/InvalidDocument otherwise."""
    if not isinstance(data, dict):
        raise InvalidDocument(f"{where}: expected a JSON object, got {type(data).__name__}")
    kind_name = data.get("kind")
    try:
        kind = ResourceKind(str(kind_name))
    except ValueError:
        raise InvalidDocument(
            f"{where}: 'kind' must be one of {', '.join(sorted(k.value for k in _DOCUMENT_KINDS))}, "
            f"not {kind_name!r}"
        ) from None
    if kind not in _DOCUMENT_KINDS:
        raise InvalidDocument(f"{where}: resources of kind '{kind}' cannot be applied from a file")
    try:
        # Strict, as the API reads its bodies (resources.documents): "demo": "yes" is refused, not
        # coerced. Strict JSON reads UUIDs and datetimes from strings; Python-mode strict would not.
        return MODEL_BY_KIND[kind].model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        error = invalid_resource_from(exc, str(kind))
        error.message = f"{where}: {error.message}"
        raise error from None


def apply_resources(manager: ResourcesManager, resources: Sequence[AnyResource], actor: str) -> TxResult:
    """Create or update every resource of a file by id, all-or-nothing, peers before clusters."""
    ids = [(r.kind, r.id) for r in resources]
    if len(set(ids)) != len(ids):
        raise InvalidDocument("the same resource id appears more than once in the file")
    return actions.store_resources(manager, resources, actor)
