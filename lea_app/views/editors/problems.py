"""What is wrong with an editor's form, and where it is shown. Qt-free: tested without a screen.

A problem is a broken rule at a field path as resources.errors names it (``interfaces[0].name``).
The backend's own pydantic models check the form (``validation_problems``), a backend refusal names
its fields (``refusal_problems``), and the cross-resource rules are pre-checked from the store with
the backend's own functions (``resources.rules``): a pre-check shows exactly the code and message the
backend's refusal would. ``place`` splits a path into the editor's input (or table), the table row
and the field in it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from typing import Any, NamedTuple
from uuid import UUID

from pydantic import ValidationError

from resources import rules
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
from resources.view import ResourceView

Data = dict[str, Any]


class Problem(NamedTuple):
    """A broken rule at a field path as resources.errors names it, e.g. ``interfaces[0].name``, and
    the code of the error that names it (``invalid_resource``, ``name_taken``...)."""

    field: str
    rule: str
    code: str = ""


class Placed(NamedTuple):
    """A problem inside one error target: the row (for tables), the field within it, the rule."""

    row: int | None
    field: str
    rule: str


_PATH = re.compile(r"^(?P<head>\w+)(?:\[(?P<index>\d+)\])?(?:\.(?P<rest>.+))?$")
_FIELD = re.compile(r"^(?P<name>\w+)(?:\[(?P<index>\d+)\])?")


NameOf = Callable[[str], str | None]


def validation_problems(
    parse: Callable[[Data], Any], data: Data, name_of: NameOf | None = None
) -> tuple[Any, list[Problem]]:
    """Build the model the backend would build; on failure, its problems (field, rule in plain
    words: what to enter, with an example, rather than pydantic's wording; ``name_of`` names the
    ids a rule mentions, e.g. an interface the form removed)."""
    try:
        return parse(data), []
    except ValidationError as exc:
        error = invalid_resource_from(exc)
        entries = error.details.get("errors", [])
        return None, [
            Problem(str(entry["field"]), plain_validation_rule(err, str(entry["rule"]), name_of), error.code)
            for err, entry in zip(exc.errors(), entries, strict=True)
        ]


#: What to enter in a number field the model could not read (typed text, empty, missing).
NUMBER_HINTS = {
    "bitrate": "enter the bitrate in bit/s, e.g. 500000",
    "data_bitrate": "enter the data bitrate in bit/s, e.g. 2000000",
    "sample_point": "enter the sample point as a fraction of the bit time, e.g. 0.875",
    "data_sample_point": "enter the data sample point as a fraction of the bit time, e.g. 0.8",
}
_UNITS = {"bitrate": " bit/s", "data_bitrate": " bit/s"}
_UNREADABLE = {"int_parsing", "int_from_float", "int_type", "float_parsing", "float_type", "missing", "finite_number"}
_BOUNDS = {
    "greater_than": "more than", "greater_than_equal": "at least", "less_than": "less than",
    "less_than_equal": "at most",
}
_REQUIRED = {"leader": "choose the leader peer", "interface": "choose the interface the device is attached to"}


def plain_validation_rule(err: Any, fallback: str, name_of: NameOf | None = None) -> str:
    """One pydantic error of the form in plain words (``fallback``: the backend's wording)."""
    typ: str = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    field = next((str(p) for p in reversed(err["loc"]) if isinstance(p, str) and p not in _TAGS), "")
    if field in NUMBER_HINTS and typ in _UNREADABLE:
        return NUMBER_HINTS[field]
    if typ in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        shown = f"{bound:g}" if isinstance(bound, float) else str(bound)
        return f"must be {_BOUNDS[typ]} {shown}{_UNITS.get(field, '')}"
    if typ == "missing":
        return _REQUIRED.get(field, "is required")
    if typ in ("int_parsing", "int_from_float", "int_type"):
        return "enter a whole number"
    if typ in ("float_parsing", "float_type"):
        return "enter a number"
    if typ == "too_short" and field == "devices":
        count = int(ctx.get("min_length", 0))
        return f"choose at least {count} device{'s' if count != 1 else ''}"
    if typ == "string_pattern_mismatch" and isinstance(err.get("input"), str):
        return _pattern_rule(err["input"], interface="interfaces" in err["loc"]) or fallback
    if fallback.endswith("only allowed when fd is true"):
        return "a data bitrate and data sample point are only allowed with FD: tick FD or clear them"
    if field == "interface" and fallback.startswith("must be one of the peer's interfaces"):
        gone = name_of(str(err.get("input"))) if name_of is not None else None
        was = f"interface {gone} was removed" if gone else "the one it was attached to is gone"
        return f"choose one of this peer's interfaces ({was})"
    return without_ids(fallback)


def _pattern_rule(value: str, interface: bool) -> str | None:
    """What exactly is wrong with a name that breaks its pattern (the first thing to fix)."""
    if interface:
        bad = sorted({c for c in value if c.isspace() or c in "/:"})
        allowed = "a Linux interface name has no spaces, '/' or ':'"
    else:
        bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "-_"))})
        allowed = "use only letters, digits, '-' and '_'"
    if bad:
        shown = ", ".join("a space" if c == " " else repr(c) for c in bad)
        return f"{allowed} (found {shown})"
    if not interface and (value[:1] in "-_" or value[-1:] in "-_"):
        return "must not start or end with '-' or '_'"
    return None


#: Discriminator tags in a pydantic location (not field names).
_TAGS = {"ethernet", "vcan", "can", "online", "offline", "function-after"}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DEVICE_ID = re.compile(r"device id \S+ \('([^']*)'\)")


def without_ids(text: str) -> str:
    """A message without raw UUIDs: "device id 4ceb8a45-… ('ecu-1')" -> "device 'ecu-1'"; any id
    left names something the store does not know (any more)."""
    return _UUID.sub("(a deleted one)", _DEVICE_ID.sub(r"device '\1'", text))


def plain_rule(error: LeaError) -> str:
    """A rule the store pre-checks (or the backend's refusal of it) in the editor's words: names,
    never raw ids, and what to do about it."""
    if isinstance(error, MissingReference):
        if error.details.get("field") == "leader":
            return "the chosen leader peer no longer exists; choose another leader"
        if error.details.get("field") == "devices":
            count = len(error.details.get("devices", ())) or 1
            some = "device no longer exists" if count == 1 else f"{count} chosen devices no longer exist"
            return f"{'the chosen ' if count == 1 else ''}{some}; uncheck {'it' if count == 1 else 'them'}"
    return without_ids(error.message)


def refusal_problems(error: LeaError) -> list[Problem]:
    """The fields a backend refusal names (the rest of a refusal is shown at the top)."""
    if isinstance(error, InvalidResource):
        return [
            Problem(str(e["field"]), without_ids(str(e["rule"])), error.code) for e in error.details.get("errors", [])
        ]
    if isinstance(error, NameTaken):
        return [Problem("name", plain_rule(error), error.code)]
    if isinstance(error, MissingReference) and "field" in error.details:
        return [Problem(str(error.details["field"]), plain_rule(error), error.code)]
    if isinstance(error, DeviceIdTaken | ReferencedByCluster) and "device" in error.details:
        return [Problem("devices", plain_rule(error), error.code)]
    return []


def rule_problems(*errors: LeaError | None) -> list[Problem]:
    """The problems of the errors ``resources.rules`` returns, where the backend's refusal would
    show them (one naming no field is for the summary only)."""
    problems = []
    for error in errors:
        if error is not None:
            problems.extend(refusal_problems(error) or [Problem("", plain_rule(error), error.code)])
    return problems


def name_taken(view: ResourceView, kind: ResourceKind, own_id: UUID, name: str) -> list[Problem]:
    """Names are unique per kind, ignoring case (``resources.rules.name_taken``)."""
    return rule_problems(rules.name_taken(view, kind, own_id, name))


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


def removed_devices_in_use(view: ResourceView, loaded: PeerDescriptor | None, kept: Iterable[str]) -> list[Problem]:
    """Devices of the peer as ``loaded`` that the form removed (not in ``kept``) and a cluster uses
    (``resources.rules.devices_in_use``)."""
    if loaded is None:
        return []
    return rule_problems(*rules.devices_in_use(view, loaded, set(_ids(kept))))


def missing_references(view: ResourceView, name: str, leader: str | None, devices: Collection[str]) -> list[Problem]:
    """A cluster's chosen leader or checked devices that are not in the store (any more)
    (``resources.rules.missing_leader`` and ``missing_devices``)."""
    leader_id = next(iter(_ids([leader])), None) if leader is not None else None
    return rule_problems(
        rules.missing_leader(view, name, leader_id) if leader_id is not None else None,
        rules.missing_devices(view, name, sorted(_ids(devices), key=str)),
    )


def peer_blocked_reason(view: ResourceView, peer_id: UUID) -> str | None:
    """Why the peer cannot be changed now (a deployed cluster uses it), or None."""
    return read_only_reason(rules.peer_in_deployed_cluster(view, peer_id))


def cluster_blocked_reason(view: ResourceView, cluster_id: UUID) -> str | None:
    """Why the cluster cannot be changed now (it is deployed), or None."""
    return read_only_reason(rules.cluster_deployed(view, cluster_id, "changed"))


def read_only_reason(error: LeaError | None) -> str | None:
    """The editor's read-only note for a rule that refuses every change: the refusal's message."""
    return f"Read-only: {error.message}." if error is not None else None


def _ids(values: Iterable[str]) -> list[UUID]:
    """The form's ids (strings), skipping any that is not one (the model's validation names those)."""
    ids = []
    for value in values:
        try:
            ids.append(UUID(value))
        except (TypeError, ValueError):
            continue
    return ids
