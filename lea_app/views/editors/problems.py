"""What is wrong with an editor's form, and where it is shown. Qt-free: tested without a screen.

A problem is a broken rule at a field path as resources.errors names it (``interfaces[0].name``).
The backend's own pydantic models check the form (``validation_problems``), a backend refusal names
its fields (``refusal_problems``), and the cross-resource rules LEA can pre-check from its store add
theirs. ``place`` splits a path into the editor's input (or table), the table row and the field in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, NamedTuple
from uuid import UUID

from pydantic import ValidationError

from lea_app.sync.store import Store
from resources.cluster import ClusterDescriptor
from resources.derived import blocking_clusters
from resources.errors import (
    DeviceIdTaken,
    InvalidResource,
    LeaError,
    MissingReference,
    NameTaken,
    ReferencedByCluster,
    invalid_resource_from,
)
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor

Data = dict[str, Any]


class Problem(NamedTuple):
    """A broken rule at a field path as resources.errors names it, e.g. ``interfaces[0].name``."""

    field: str
    rule: str


class Placed(NamedTuple):
    """A problem inside one error target: the row (for tables), the field within it, the rule."""

    row: int | None
    field: str
    rule: str


_PATH = re.compile(r"^(?P<head>\w+)(?:\[(?P<index>\d+)\])?(?:\.(?P<rest>.+))?$")
_FIELD = re.compile(r"^(?P<name>\w+)(?:\[(?P<index>\d+)\])?")


def validation_problems(parse: Callable[[Data], Any], data: Data) -> tuple[Any, list[Problem]]:
    """Build the model the backend would build; on failure, its problems (field, friendly rule)."""
    try:
        return parse(data), []
    except ValidationError as exc:
        return None, refusal_problems(invalid_resource_from(exc))


def refusal_problems(error: LeaError) -> list[Problem]:
    """The fields a backend refusal names (the rest of a refusal is shown at the top)."""
    if isinstance(error, InvalidResource):
        return [Problem(str(e["field"]), str(e["rule"])) for e in error.details.get("errors", [])]
    if isinstance(error, NameTaken):
        return [Problem("name", error.message)]
    if isinstance(error, MissingReference) and "field" in error.details:
        return [Problem(str(error.details["field"]), error.message)]
    if isinstance(error, DeviceIdTaken | ReferencedByCluster) and "device" in error.details:
        return [Problem("devices", error.message)]
    return []


def name_taken(store: Store, kind: ResourceKind, own_id: UUID, name: str) -> list[Problem]:
    """Names are unique per kind, ignoring case (the backend's rule, pre-checked from the store)."""
    folded = name.casefold()
    for other in store.all(kind).values():
        other_name = getattr(other, "name", None)
        if other.id != own_id and isinstance(other_name, str) and other_name.casefold() == folded:
            rule = f"is already used by {kind.value} '{other_name}' (names are unique, ignoring case)"
            return [Problem("name", rule)]
    return []


def place(problem: Problem, targets: Collection[str]) -> tuple[str, Placed] | None:
    """The target (a top-level field in ``targets``) that shows ``problem``, and where in it; None
    when no input shows that field (the problem is then only named in the summary)."""
    match = _PATH.match(problem.field)
    if match is None or match["head"] not in targets:
        return None
    index = int(match["index"]) if match["index"] is not None else None
    return match["head"], Placed(index, match["rest"] or "", problem.rule)


def describe_field(field: str) -> str:
    """A field path inside a table row in words: ``configuration.data_bitrate`` -> "data bitrate"."""
    match = _FIELD.match(field.removeprefix("configuration."))
    if match is None:
        return field
    name = match["name"].replace("_", " ")
    if match["index"] is not None:
        return f"{name.removesuffix('s')} {int(match['index']) + 1}"
    return "CAN settings" if name == "configuration" else name


def removed_devices_in_use(store: Store, loaded: Mapping[UUID, str], kept: Iterable[str]) -> list[Problem]:
    """Devices the form removed (of those ``loaded``, id -> name) that a cluster still uses."""
    kept_ids = set(kept)
    removed = {id: name for id, name in loaded.items() if str(id) not in kept_ids}
    users: dict[UUID, list[str]] = {}
    for cluster in store.all(ResourceKind.CLUSTER).values():
        if isinstance(cluster, ClusterDescriptor):
            for device_id in removed.keys() & set(cluster.devices):
                users.setdefault(device_id, []).append(cluster.name)
    problems = []
    for device_id, names in users.items():
        clusters = ", ".join(f"'{n}'" for n in sorted(names))
        problems.append(Problem(
            "devices", f"device '{removed[device_id]}' cannot be removed: it is used by cluster {clusters}"
        ))
    return problems


def missing_references(store: Store, leader: str | None, devices: Collection[str]) -> list[Problem]:
    """A cluster's chosen leader or checked devices that are no longer in the store."""
    problems = []
    peers = store.all(ResourceKind.PEER)
    if leader is not None and UUID(leader) not in peers:
        problems.append(Problem("leader", "is not an existing peer any more (it was deleted)"))
    known = {str(d.id) for p in peers.values() if isinstance(p, PeerDescriptor) for d in p.devices}
    missing = len(set(devices) - known)
    if missing:
        problems.append(Problem("devices", f"{missing} checked device(s) no longer exist; uncheck them"))
    return problems


def peer_blocked_reason(store: Store, peer_id: UUID) -> str | None:
    """Why the peer cannot be changed now (a deployed cluster uses it), or None."""
    peers = [p for p in store.all(ResourceKind.PEER).values() if isinstance(p, PeerDescriptor)]
    clusters = [c for c in store.all(ResourceKind.CLUSTER).values() if isinstance(c, ClusterDescriptor)]
    blocker = blocking_clusters(peers, clusters, store.all(ResourceKind.CLUSTER_DEPLOYMENT)).get(peer_id)
    if blocker is None:
        return None
    return f"This peer is used by deployed cluster '{blocker.name}' and cannot be changed; undeploy it first."


def cluster_blocked_reason(store: Store, cluster_id: UUID) -> str | None:
    """Why the cluster cannot be changed now (it is deployed), or None."""
    if cluster_id in store.all(ResourceKind.CLUSTER_DEPLOYMENT):
        return "Deployed clusters cannot be changed; undeploy first."
    return None
