"""What the event log says about an event, Qt-free: the change in words, the time in local time and
UTC, which events a filter keeps, and the change itself as field-level differences.

An event carries the resource as it is *after* the change; the version before is the previous
event of the same resource (its history, or the older events the live log still holds).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

from resources.events import Event, EventType
from resources.kinds import ResourceKind
from resources.resource import AnyResource
from resources.state import ClusterState, PeerConnectionState

#: The kinds in words (singular), as a user names them.
KIND_WORDS: dict[ResourceKind, str] = {
    ResourceKind.PEER: "Peer",
    ResourceKind.CLUSTER: "Cluster",
    ResourceKind.CLUSTER_DEPLOYMENT: "Deployment",
    ResourceKind.PEER_CONNECTION_STATE: "Connection state",
    ResourceKind.CLUSTER_STATE: "Cluster state",
    ResourceKind.PEER_CONFIGURATION: "Peer configuration",
    ResourceKind.PEER_CONFIGURATION_STATE: "Configuration report",
}
#: The filter's choices: the kinds in words, plural.
KIND_CHOICES: dict[ResourceKind, str] = {
    ResourceKind.PEER: "Peers",
    ResourceKind.CLUSTER: "Clusters",
    ResourceKind.CLUSTER_DEPLOYMENT: "Deployments",
    ResourceKind.PEER_CONNECTION_STATE: "Connection states",
    ResourceKind.CLUSTER_STATE: "Cluster states",
    ResourceKind.PEER_CONFIGURATION: "Peer configurations",
    ResourceKind.PEER_CONFIGURATION_STATE: "Configuration reports",
}
_DESCRIPTOR_VERBS = {EventType.CREATED: "created", EventType.UPDATED: "changed", EventType.DELETED: "deleted"}
#: The time filter's choices: (label, how far back; None = any time).
TIME_CHOICES: tuple[tuple[str, timedelta | None], ...] = (
    ("Any time", None),
    ("Last 5 minutes", timedelta(minutes=5)),
    ("Last hour", timedelta(hours=1)),
    ("Last 24 hours", timedelta(days=1)),
    ("Last 7 days", timedelta(days=7)),
)


def describe_change(event: Event) -> str:
    """The change in words: "Peer created", "Deployed", "Undeployed", "Cluster state: deploying"."""
    kind, resource = event.kind, event.resource
    if kind == ResourceKind.CLUSTER_DEPLOYMENT:
        if event.type == EventType.DELETED:
            return "Undeployed"
        return "Deployed" if event.type == EventType.CREATED else "Deployed again (retry)"
    if kind.persisted or event.type == EventType.DELETED:
        return f"{KIND_WORDS[kind]} {_DESCRIPTOR_VERBS[event.type]}"
    if isinstance(resource, PeerConnectionState):
        return "Peer online" if resource.online else "Peer offline"
    if isinstance(resource, ClusterState):
        return f"Cluster state: {resource.state.status}"
    if kind == ResourceKind.PEER_CONFIGURATION:
        return "Configuration sent to the peer"
    return "Configuration reported by the peer"


def local_time(at: datetime) -> str:
    """The time in the viewer's local time zone (what the table shows)."""
    return _aware(at).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def utc_time(at: datetime) -> str:
    """The time in UTC (what the tooltip shows)."""
    return _aware(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EventFilter:
    """Which events the log shows. The default shows every event; the event log page starts with
    ``volatile=False`` (connection states, progress and reports flood the log during a deploy)."""

    volatile: bool = True
    kinds: frozenset[ResourceKind] | None = None
    actor: str | None = None
    text: str = ""
    since: datetime | None = None

    def accepts(self, event: Event, label: str) -> bool:
        if not self.volatile and not event.kind.persisted:
            return False
        if self.kinds is not None and event.kind not in self.kinds:
            return False
        if self.actor is not None and event.actor != self.actor:
            return False
        if self.since is not None and _aware(event.at) < self.since:
            return False
        needle = self.text.strip().casefold()
        if needle:
            haystack = f"{label} {event.id} {describe_change(event)} {event.actor}".casefold()
            return needle in haystack
        return True

    @property
    def active(self) -> bool:
        """Anything beyond the default of the page (stored events only) is chosen."""
        return bool(self.kinds is not None or self.actor or self.text.strip() or self.since)


class FieldChange(NamedTuple):
    """One field that differs between two versions of a resource, in words."""

    field: str
    before: str
    after: str


#: Fields every resource has and that say nothing about the change itself.
_SKIPPED = {"kind", "id", "version"}
#: Nested models whose fields read as the owner's ("configuration", "state").
_TRANSPARENT = {"configuration", "state"}
NONE = "(none)"
#: The one field of a ClusterDeployment: that it exists (DESIGN section 3: "deployed").
DEPLOYED = "deployed"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NameOf = Callable[[str], str | None]
ABSENT = "—"


def diff_resources(
    before: AnyResource | None, after: AnyResource | None, name_of: NameOf | None = None
) -> list[FieldChange]:
    """The fields that differ, readable: nested fields as "interface 'can0' bitrate", ids replaced
    by the names ``name_of`` knows, lists of plain values joined. A created resource lists every
    field it has (before: "—"), a deleted one every field it had (after: "—")."""
    resolve = name_of or (lambda _: None)
    old = _flatten(_dump(before), "", resolve)
    new = _flatten(_dump(after), "", resolve)
    changes = []
    for field in dict.fromkeys([*old, *new]):
        absent = "no" if field == DEPLOYED else ABSENT  # a deployment's existence is its one field
        a, b = old.get(field, absent), new.get(field, absent)
        if {a, b} <= {ABSENT, NONE}:
            continue  # an empty field of a created or deleted resource says nothing
        if a != b:
            changes.append(FieldChange(field, a, b))
    return changes


def _dump(resource: AnyResource | None) -> dict[str, Any]:
    if resource is None:
        return {}
    if resource.kind == ResourceKind.CLUSTER_DEPLOYMENT:
        return {DEPLOYED: True}
    data: dict[str, Any] = resource.model_dump(mode="json")
    return {k: v for k, v in data.items() if k not in _SKIPPED}


def _words(key: str) -> str:
    return key.replace("_", " ")


def _flatten(value: Any, prefix: str, resolve: NameOf) -> dict[str, str]:
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, item in value.items():
            # a nested configuration or state reads as fields of its owner ("interface 'can0' bitrate")
            inner = prefix if key in _TRANSPARENT else f"{prefix} {_words(str(key))}".strip()
            out.update(_flatten(item, inner, resolve))
        return out
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        out = {}
        noun = prefix.removesuffix("s")
        for position, item in enumerate(value, start=1):
            name = item.get("name")
            label = f"{noun} '{name}'" if name else f"{noun} {position}"
            fields = {k: v for k, v in item.items() if k not in ("id", "name")}
            flat = _flatten(fields, label, resolve)
            out[label] = "present"  # an item added or removed shows as one line too
            out.update(flat)
        return out
    if isinstance(value, list):
        shown = sorted(_scalar(v, resolve) for v in value)
        return {prefix: ", ".join(shown) if shown else NONE}
    return {prefix: _scalar(value, resolve)}


def _scalar(value: Any, resolve: NameOf) -> str:
    if value is None or value == "":
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if _UUID.match(text):
        return resolve(text) or f"(unknown {text[:8]})"
    return text


def names_from(resources: Iterable[AnyResource]) -> Callable[[str], str | None]:
    """A ``name_of`` over peers, their devices and interfaces, and clusters (by id as text)."""
    names: dict[str, str] = {}
    for resource in resources:
        name = getattr(resource, "name", None)
        if name:
            names[str(resource.id)] = str(name)
        for device in getattr(resource, "devices", ()) or ():
            if not isinstance(device, UUID) and hasattr(device, "name"):
                names[str(device.id)] = f"{device.name} ({name})"
        for interface in getattr(resource, "interfaces", ()) or ():
            names[str(interface.id)] = f"{interface.name} ({name})"
    return names.get
