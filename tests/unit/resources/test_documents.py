"""Reading a resource sent from outside (resources.documents): bounded JSON, then strict models.

The limits come first (each failure an InvalidDocument naming the problem), then pydantic's strict
mode: no value of the wrong JSON type is converted, yet everything the backend writes itself (UUIDs,
datetimes, enums as strings, tuples as arrays, unknown fields) still reads back.
"""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from resources import (
    Checkpoint,
    ClusterDescriptor,
    Event,
    EventType,
    PeerDescriptor,
    StateSnapshot,
)
from resources.documents import MAX_DEPTH, MAX_INT_DIGITS, load_json, parse_resource
from resources.errors import InvalidDocument, InvalidResource
from resources.resource import MODEL_BY_KIND
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.samples import every_resource


def peer_bytes(**changes: Any) -> bytes:
    data = json.loads(make_peer("bench-01", can=True).model_dump_json())
    data.update(changes)
    return json.dumps(data).encode()


def document_error(raw: bytes) -> str:
    with pytest.raises(InvalidDocument) as info:
        parse_resource(PeerDescriptor, raw, "peer")
    assert info.value.code == "invalid_document" and info.value.http_status == 400
    return info.value.message


def resource_error(raw: bytes, model: type[PeerDescriptor | ClusterDescriptor] = PeerDescriptor) -> InvalidResource:
    with pytest.raises(InvalidResource) as info:
        parse_resource(model, raw, "peer" if model is PeerDescriptor else "cluster")
    return info.value


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def with_extra(value: str) -> bytes:
    """A valid peer with one more (unknown, so ignored) field holding ``value`` verbatim."""
    good = make_peer("bench-01").model_dump_json()
    return (good[:-1] + ', "extra": ' + value + "}").encode("utf-8", "surrogatepass")


# -- what the backend writes reads back strictly -------------------------------------------------
@pytest.mark.parametrize("resource", [r for r in every_resource() if r.kind.persisted], ids=lambda r: r.kind.value)
def test_every_persisted_resource_as_written_is_accepted(resource: Any) -> None:
    assert parse_resource(type(resource), resource.model_dump_json().encode(), "resource") == resource


@pytest.mark.parametrize("resource", every_resource(), ids=lambda r: r.kind.value)
def test_strict_json_reads_every_resource_event_and_snapshot_the_backend_writes(resource: Any) -> None:
    """Strict JSON still takes UUIDs, datetimes, enums and dict keys as strings and tuples as arrays."""
    model = MODEL_BY_KIND[resource.kind]
    assert model.model_validate_json(resource.model_dump_json(), strict=True) == resource
    event = Event(
        epoch="e", revision=1, type=EventType.UPDATED, kind=resource.kind, id=resource.id, resource=resource,
        actor="a", at=datetime.now(UTC), tx=uuid.uuid4(),
    )
    assert Event.model_validate_json(event.model_dump_json(), strict=True) == event
    snapshot = StateSnapshot(epoch="e", revision=1, resources=(resource,))
    assert StateSnapshot.model_validate_json(snapshot.model_dump_json(), strict=True) == snapshot
    if resource.kind.persisted:
        checkpoint = Checkpoint(revision=1, resources=(resource,))
        assert Checkpoint.model_validate_json(checkpoint.model_dump_json(), strict=True) == checkpoint


def test_unknown_fields_are_still_ignored() -> None:
    data = json.loads(peer_bytes())
    data["added_later"] = {"anything": [1, None, "x"]}
    data["devices"][0]["firmware"] = "1.2"
    assert parse_resource(PeerDescriptor, json.dumps(data).encode(), "peer").name == "bench-01"


# -- strict, not coerced -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"demo": "yes"}, "demo", "must be true or false, not the string 'yes'"),
        ({"demo": 0}, "demo", "must be true or false, not 0"),
        ({"version": "1"}, "version", "must be a whole number, not the string '1'"),
        ({"version": 1.0}, "version", "must be a whole number"),
        ({"version": True}, "version", "must be a whole number, not true"),
        ({"location": 7}, "location", "must be a string, not 7"),
        ({"id": 12345}, "id", "UUID"),
    ],
)
def test_values_of_the_wrong_json_type_are_refused(changes: dict[str, Any], field: str, rule: str) -> None:
    error = resource_error(peer_bytes(**changes))
    assert error.details["errors"][0] == {"field": field, "rule": error.details["errors"][0]["rule"]}
    assert rule in error.details["errors"][0]["rule"], error.message


def test_the_models_stay_lax_for_python_callers() -> None:
    """Editors fill the models from text boxes: there "500000" is a number (strict is for the wire)."""
    data = json.loads(peer_bytes())
    data["interfaces"][1]["configuration"]["bitrate"] = "500000"
    assert PeerDescriptor.model_validate(data).interfaces[1].configuration.bitrate == 500_000  # type: ignore[union-attr]
    error = resource_error(json.dumps(data).encode())
    assert error.details["errors"][0]["field"] == "interfaces[1].configuration.bitrate"


def test_a_document_must_name_its_kind() -> None:
    data = json.loads(peer_bytes())
    del data["kind"]
    error = resource_error(json.dumps(data).encode())
    assert error.message == "invalid peer: kind is required"
    cluster = json.loads(make_cluster("cluster-a", make_peer()).model_dump_json())
    del cluster["kind"]
    del cluster["leader"]
    error = resource_error(json.dumps(cluster).encode(), ClusterDescriptor)
    assert [e["field"] for e in error.details["errors"]] == ["kind", "leader"]
    assert "kind" in PeerDescriptor.model_json_schema()["required"]  # and the schema says so


@pytest.mark.parametrize(("raw", "what"), [(b"[]", "an array"), (b"null", "null"), (b'"peer"', "a string"),
                                           (b"3", "a number"), (b"", "empty"), (b" \n", "empty")])
def test_the_document_must_be_an_object(raw: bytes, what: str) -> None:
    assert what in resource_error(raw).message


# -- the limits ------------------------------------------------------------------------------------
def test_nesting_up_to_the_limit_is_read_and_deeper_is_refused() -> None:
    assert parse_resource(PeerDescriptor, with_extra(nested(MAX_DEPTH - 1)), "peer").name == "bench-01"
    assert f"nested deeper than {MAX_DEPTH} levels" in document_error(with_extra(nested(MAX_DEPTH)))
    assert "nested deeper" in document_error(nested(200_000).encode())  # never recursed into


def test_integers_up_to_pythons_digit_limit_are_read_and_longer_are_refused() -> None:
    assert MAX_INT_DIGITS == 4300
    assert load_json(("-" + "7" * MAX_INT_DIGITS).encode()) < 0
    message = document_error(with_extra("7" * (MAX_INT_DIGITS + 1)))
    assert f"{MAX_INT_DIGITS + 1} digits" in message and f"at most {MAX_INT_DIGITS}" in message
    assert "5000 digits" in document_error(with_extra("-" + "1" * 5000))


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'{"kind": "peer", "name": "b\xe4nch"}', "not UTF-8 text (byte 27 is 0xe4)"),
        (b"\xff\xfe{\x00}\x00", "not UTF-8"),
        (gzip.compress(peer_bytes()), "gzip-compressed"),
        (b"\xef\xbb\xbf" + peer_bytes(), "byte order mark"),
        (with_extra("NaN"), "contains NaN, which is not a JSON number"),
        (with_extra("Infinity"), "Infinity"),
        (with_extra("-Infinity"), "-Infinity"),
        (with_extra('{"a": 1, "a": 2}'), "the key 'a' twice in one object"),
        (with_extra('"\\udc00"'), "unpaired surrogate escape (\\udc00)"),
        (with_extra('{"\\ud800": 1}'), "unpaired surrogate"),
        (b'{"kind": "peer",', "not valid JSON: Expecting property name enclosed in double quotes at line 1, column"),
        (b"{} {}", "not valid JSON: Extra data"),
    ],
)
def test_each_parse_failure_names_the_problem(raw: bytes, fragment: str) -> None:
    assert fragment in document_error(raw)


def test_a_surrogate_pair_is_one_character() -> None:
    raw = peer_bytes(location="rack \U0001f697")
    assert b"rack \\ud83d\\ude97" in raw  # json.dumps escapes it as a pair
    assert parse_resource(PeerDescriptor, raw, "peer").location == "rack \U0001f697"


def test_messages_stay_short_whatever_was_sent() -> None:
    key = "k" * 100_000
    message = document_error(with_extra(json.dumps({key: 1, "x": 2, **{}}).replace('"x"', f'"{key}"')))
    assert len(message) < 200 and "twice" in message
    error = resource_error(peer_bytes(demo="y" * 100_000))
    assert len(error.message) < 200
