"""The resources contract (DESIGN section 3): one test per validation rule, and JSON round-trips.

Every rule test goes through ``invalid_resource_from`` (what the actions, the CLI and the server
report) and checks that the message names the offending field and the rule that was broken.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from resources import (
    CanConfiguration,
    Checkpoint,
    ClusterDescriptor,
    ClusterState,
    Event,
    EventType,
    Failed,
    PeerDescriptor,
    ResourceKind,
    StateSnapshot,
    WriteResult,
)
from resources.errors import InvalidResource, invalid_resource_from
from resources.names import INTERFACE_NAME_RULE, NAME_RULE
from resources.resource import RESOURCE_ADAPTER, AnyResource, resource_from_json
from resources.wire import EventBatch, Hello, Ping, Resync, WatchMessage
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.samples import NOW, every_resource, full_peer

# -- helpers ---------------------------------------------------------------------------------


def refused(model: type[BaseModel], data: dict[str, Any], what: str) -> InvalidResource:
    """Validate ``data`` expecting a failure, and return the InvalidResource the backend would raise."""
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    error = invalid_resource_from(info.value, what)
    assert isinstance(error, InvalidResource)
    assert error.code == "invalid_resource"
    assert error.message.startswith(f"invalid {what}: ")
    return error


def assert_names(error: InvalidResource, field: str, *rule_words: str) -> None:
    """The message names ``field`` (exactly, as the first problem) and every word of the rule."""
    first = error.details["errors"][0]
    assert first["field"] == field, error.message
    assert f": {field} " in error.message, error.message
    for words in rule_words:
        assert words in error.message, error.message
        assert words in first["rule"], first


def peer_data(**changes: Any) -> dict[str, Any]:
    data = make_peer("bench-01", devices=2, can=True).model_dump(mode="json")
    data.update(changes)
    return data


def can_peer_data(**can: Any) -> dict[str, Any]:
    """A peer whose first interface is CAN with the given configuration fields."""
    data = peer_data()
    data["interfaces"][0]["configuration"] = {"type": "can", **can}
    return data


def cluster_data(**changes: Any) -> dict[str, Any]:
    data = make_cluster("cluster-a", make_peer("bench-01")).model_dump(mode="json")
    data.update(changes)
    return data


# -- peer names ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abcd", "a" * 64, "bench-01", "Bench_2", "a-_b", "0000"])
def test_peer_name_accepts_4_to_64_allowed_characters(name: str) -> None:
    assert PeerDescriptor.model_validate(peer_data(name=name)).name == name


@pytest.mark.parametrize("name", ["", "a", "abc"])
def test_peer_name_too_short(name: str) -> None:
    assert_names(refused(PeerDescriptor, peer_data(name=name), "peer"), "name", "at least 4 characters")


def test_peer_name_too_long() -> None:
    error = refused(PeerDescriptor, peer_data(name="a" * 65), "peer")
    assert_names(error, "name", "at most 64 characters")


@pytest.mark.parametrize("name", ["bench 01", "bench.01", "bench/01", "bänch-01", "bench:01", "bench@01"])
def test_peer_name_charset(name: str) -> None:
    assert_names(refused(PeerDescriptor, peer_data(name=name), "peer"), "name", NAME_RULE)


@pytest.mark.parametrize("name", ["-bench", "_bench", "bench-", "bench_", "-bench_"])
def test_peer_name_must_not_start_or_end_with_dash_or_underscore(name: str) -> None:
    error = refused(PeerDescriptor, peer_data(name=name), "peer")
    assert_names(error, "name", "not starting or ending with '-' or '_'")


# -- location, interfaces, bridge -------------------------------------------------------------


def test_peer_location_at_most_64() -> None:
    assert PeerDescriptor.model_validate(peer_data(location="x" * 64)).location == "x" * 64
    assert PeerDescriptor.model_validate(peer_data(location=None)).location is None
    error = refused(PeerDescriptor, peer_data(location="x" * 65), "peer")
    assert_names(error, "location", "at most 64 characters")


def test_interface_name_at_most_15() -> None:
    data = peer_data()
    data["interfaces"][0]["name"] = "e" * 15
    PeerDescriptor.model_validate(data)
    data["interfaces"][0]["name"] = "e" * 16
    assert_names(refused(PeerDescriptor, data, "peer"), "interfaces[0].name", "at most 15 characters")


def test_interface_name_must_be_a_linux_interface_name() -> None:
    data = peer_data()
    data["interfaces"][1]["name"] = "can 0"
    assert_names(refused(PeerDescriptor, data, "peer"), "interfaces[1].name", INTERFACE_NAME_RULE)


def test_interface_names_unique_within_the_peer() -> None:
    data = peer_data()
    data["interfaces"][1]["name"] = data["interfaces"][0]["name"]
    assert_names(refused(PeerDescriptor, data, "peer"), "interfaces[1].name", "unique within the peer")


def test_bridge_name_follows_the_interface_name_rule() -> None:
    assert PeerDescriptor.model_validate(peer_data(bridge_name="br-test")).effective_bridge_name == "br-test"
    assert PeerDescriptor.model_validate(peer_data()).effective_bridge_name == "br-lea"
    error = refused(PeerDescriptor, peer_data(bridge_name="b" * 16), "peer")
    assert_names(error, "bridge_name", "at most 15 characters")


# -- CAN configuration -----------------------------------------------------------------------


@pytest.mark.parametrize("bitrate", [0, -500_000])
def test_can_bitrate_must_be_positive(bitrate: int) -> None:
    error = refused(PeerDescriptor, can_peer_data(bitrate=bitrate, sample_point=0.875), "peer")
    assert_names(error, "interfaces[0].configuration.bitrate", "must be > 0")


@pytest.mark.parametrize("sample_point", [0.0, -0.1])
def test_can_sample_point_must_be_above_zero(sample_point: float) -> None:
    error = refused(PeerDescriptor, can_peer_data(bitrate=500_000, sample_point=sample_point), "peer")
    assert_names(error, "interfaces[0].configuration.sample_point", "must be > 0")


def test_can_sample_point_at_most_one() -> None:
    assert CanConfiguration(bitrate=500_000, sample_point=1.0).sample_point == 1.0
    error = refused(PeerDescriptor, can_peer_data(bitrate=500_000, sample_point=1.01), "peer")
    assert_names(error, "interfaces[0].configuration.sample_point", "must be <= 1")


@pytest.mark.parametrize(
    "extra",
    [{"data_bitrate": 2_000_000}, {"data_sample_point": 0.8}, {"data_bitrate": 1, "data_sample_point": 0.8}],
)
def test_can_data_phase_only_when_fd(extra: dict[str, Any]) -> None:
    error = refused(PeerDescriptor, can_peer_data(bitrate=500_000, sample_point=0.875, **extra), "peer")
    assert_names(error, "interfaces[0].configuration", "data_bitrate", "only allowed when fd")


@pytest.mark.parametrize("extra", [{}, {"data_bitrate": 2_000_000}, {"data_sample_point": 0.8}])
def test_can_fd_requires_the_data_phase(extra: dict[str, Any]) -> None:
    data = can_peer_data(bitrate=500_000, sample_point=0.875, fd=True, **extra)
    error = refused(PeerDescriptor, data, "peer")
    assert_names(error, "interfaces[0].configuration", "CAN FD needs data_bitrate and data_sample_point")


def test_can_fd_with_data_phase_is_valid_and_its_ranges_apply() -> None:
    ok = can_peer_data(
        bitrate=500_000, sample_point=0.875, fd=True, data_bitrate=2_000_000, data_sample_point=0.8
    )
    peer = PeerDescriptor.model_validate(ok)
    assert isinstance(peer.interfaces[0].configuration, CanConfiguration)
    assert peer.interfaces[0].configuration.data_bitrate == 2_000_000
    bad = can_peer_data(bitrate=500_000, sample_point=0.875, fd=True, data_bitrate=0, data_sample_point=0.8)
    assert_names(
        refused(PeerDescriptor, bad, "peer"), "interfaces[0].configuration.data_bitrate", "must be > 0"
    )
    bad = can_peer_data(bitrate=500_000, sample_point=0.875, fd=True, data_bitrate=1, data_sample_point=1.5)
    error = refused(PeerDescriptor, bad, "peer")
    assert_names(error, "interfaces[0].configuration.data_sample_point", "must be <= 1")


@pytest.mark.parametrize("bitrate", ["bitrate", "data_bitrate"])
def test_can_bitrates_fit_the_kernels_32_bits(bitrate: str) -> None:
    fields = {
        "bitrate": 500_000, "sample_point": 0.875, "fd": True, "data_bitrate": 2_000_000, "data_sample_point": 0.8,
    }
    PeerDescriptor.model_validate(can_peer_data(**{**fields, bitrate: 2**32 - 1}))
    error = refused(PeerDescriptor, can_peer_data(**{**fields, bitrate: 2**64}), "peer")
    assert_names(error, f"interfaces[0].configuration.{bitrate}", "must be <= 4294967295")


def test_version_fits_a_64_bit_integer() -> None:
    assert PeerDescriptor.model_validate(peer_data(version=2**63 - 1)).version == 2**63 - 1
    assert_names(refused(PeerDescriptor, peer_data(version=2**63), "peer"), "version", "must be <= 9223372036854775807")


# -- devices ---------------------------------------------------------------------------------


def test_device_name_at_least_one_character() -> None:
    data = peer_data()
    data["devices"][0]["name"] = ""
    assert_names(refused(PeerDescriptor, data, "peer"), "devices[0].name", "at least 1 character long")


def test_device_name_at_most_64() -> None:
    data = peer_data()
    data["devices"][1]["name"] = "d" * 64
    PeerDescriptor.model_validate(data)
    data["devices"][1]["name"] = "d" * 65
    assert_names(refused(PeerDescriptor, data, "peer"), "devices[1].name", "at most 64 characters")


def test_device_name_unique_within_the_peer() -> None:
    data = peer_data()
    data["devices"][1]["name"] = data["devices"][0]["name"]
    error = refused(PeerDescriptor, data, "peer")
    assert_names(error, "devices[1].name", "must be unique within the peer")
    assert data["devices"][0]["name"] in error.message


def test_device_name_may_repeat_across_peers() -> None:
    a, b = make_peer("bench-01"), make_peer("bench-02")
    assert {d.name for d in a.devices} == {d.name for d in b.devices}


def test_device_ids_unique_within_the_peer() -> None:
    data = peer_data()
    data["devices"][1]["id"] = data["devices"][0]["id"]
    assert_names(refused(PeerDescriptor, data, "peer"), "devices[1].id", "must be unique within the peer")


def test_device_description_at_most_280() -> None:
    data = peer_data()
    data["devices"][0]["description"] = "d" * 280
    PeerDescriptor.model_validate(data)
    data["devices"][0]["description"] = "d" * 281
    assert_names(refused(PeerDescriptor, data, "peer"), "devices[0].description", "at most 280 characters")


def test_device_tags_at_most_64_each() -> None:
    data = peer_data()
    data["devices"][0]["tags"] = ["t" * 64, "ok"]
    PeerDescriptor.model_validate(data)
    data["devices"][0]["tags"] = ["ok", "t" * 65]
    assert_names(refused(PeerDescriptor, data, "peer"), "devices[0].tags[1]", "at most 64 characters")


def test_device_attached_to_an_existing_interface_of_the_peer() -> None:
    data = peer_data()
    other_interface = str(uuid.uuid4())
    data["devices"][1]["interface"] = other_interface
    error = refused(PeerDescriptor, data, "peer")
    assert_names(error, "devices[1].interface", "must be one of the peer's interfaces")
    assert other_interface in error.message


def test_device_cannot_use_an_interface_of_another_peer() -> None:
    data = peer_data()
    data["devices"][0]["interface"] = str(make_peer("bench-02").interfaces[0].id)
    assert_names(refused(PeerDescriptor, data, "peer"), "devices[0].interface", "does not have")


# -- names users see are clean ---------------------------------------------------------------

#: Controls, bidi overrides and isolates, zero-width characters, the BOM, line/paragraph separators.
UNCLEAN = [
    "\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\u202a", "\u202e", "\u2066", "\u2069", "\u200b",
    "\u200c", "\u200d", "\ufeff", "\u2028", "\u2029", "\u00ad", "\U000e0041",
]


def _with_text(field: str, text: str) -> dict[str, Any]:
    data = peer_data()
    if field == "location":
        data["location"] = text
    elif field == "interfaces[0].name":
        data["interfaces"][0]["name"] = text
    elif field == "bridge_name":
        data["bridge_name"] = text
    elif field == "devices[0].tags[0]":
        data["devices"][0]["tags"] = [text]
    else:
        data["devices"][0][field.removeprefix("devices[0].")] = text
    return data


TEXT_FIELDS = ["location", "interfaces[0].name", "bridge_name", "devices[0].name", "devices[0].description",
               "devices[0].tags[0]"]


@pytest.mark.parametrize("char", UNCLEAN, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_user_visible_text_refuses_control_and_invisible_characters(field: str, char: str) -> None:
    error = refused(PeerDescriptor, _with_text(field, f"ab{char}c"), "peer")
    first = error.details["errors"][0]
    assert first["field"] == field, error.message
    if not (field in ("interfaces[0].name", "bridge_name") and char.isspace()):  # there the space rule speaks
        assert_names(error, field, "must not contain control or invisible formatting characters",
                     f"U+{ord(char):04X}")


@pytest.mark.parametrize("char", UNCLEAN, ids=lambda c: f"U+{ord(c):04X}")
def test_peer_and_cluster_names_refuse_them_too(char: str) -> None:
    assert_names(refused(PeerDescriptor, peer_data(name=f"bench{char}01"), "peer"), "name", NAME_RULE)
    assert_names(refused(ClusterDescriptor, cluster_data(name=f"clu{char}ster"), "cluster"), "name", NAME_RULE)


@pytest.mark.parametrize(
    "text", ["Lab 4, rack 2", "Büro München", "实验室", "ecu-🚗", "Lab\u00a04", "الرف ٣", "x" * 64]
)
def test_visible_unicode_stays_allowed(text: str) -> None:
    for field in ("location", "devices[0].name", "devices[0].description", "devices[0].tags[0]"):
        PeerDescriptor.model_validate(_with_text(field, text))


def test_the_error_names_the_character() -> None:
    error = refused(PeerDescriptor, peer_data(location="Lab\u202e4"), "peer")
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in error.message
    error = refused(PeerDescriptor, peer_data(location="Lab\n4"), "peer")
    assert error.message.endswith("(found U+000A)"), error.message


# -- clusters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("abc", "at least 4 characters"),
        ("a" * 65, "at most 64 characters"),
        ("cluster a", NAME_RULE),
        ("clüster", NAME_RULE),
        ("-cluster", NAME_RULE),
        ("cluster_", NAME_RULE),
    ],
)
def test_cluster_name_rule(name: str, rule: str) -> None:
    assert_names(refused(ClusterDescriptor, cluster_data(name=name), "cluster"), "name", rule)


def test_cluster_name_accepts_the_peer_name_alphabet() -> None:
    assert ClusterDescriptor.model_validate(cluster_data(name="Cluster_01-x")).name == "Cluster_01-x"


@pytest.mark.parametrize("count", [0, 1])
def test_cluster_needs_at_least_two_devices(count: int) -> None:
    data = cluster_data()
    data["devices"] = data["devices"][:count]
    assert_names(refused(ClusterDescriptor, data, "cluster"), "devices", "at least 2 entries")


def test_cluster_devices_without_duplicates() -> None:
    data = cluster_data()
    data["devices"] = [data["devices"][0], data["devices"][0]]
    assert_names(refused(ClusterDescriptor, data, "cluster"), "devices", "only once in a cluster")


def test_cluster_devices_are_a_set() -> None:
    data = cluster_data()
    forward = ClusterDescriptor.model_validate(data)
    data["devices"] = list(reversed(data["devices"]))
    assert ClusterDescriptor.model_validate(data) == forward


def test_invalid_resource_lists_every_problem() -> None:
    data = peer_data(name="x", location="l" * 70)
    error = refused(PeerDescriptor, data, "peer")
    fields = [p["field"] for p in error.details["errors"]]
    assert fields == ["name", "location"]
    assert "(and 1 more)" in error.message
    problem = error.to_problem()
    assert problem.code == "invalid_resource" and problem.status == 422


def test_resources_are_immutable() -> None:
    peer = make_peer()
    with pytest.raises(ValidationError):
        peer.name = "other-name"  # type: ignore[misc]


# -- JSON round trips ------------------------------------------------------------------------

def _label(resource: AnyResource) -> str:
    state = getattr(resource, "state", None)
    return f"{resource.kind.value}-{getattr(state, 'status', '')}"


@pytest.mark.parametrize("resource", every_resource(), ids=_label)
def test_resource_json_round_trip(resource: AnyResource) -> None:
    text = resource.model_dump_json()
    assert type(resource).model_validate_json(text) == resource
    assert RESOURCE_ADAPTER.validate_json(text) == resource
    assert resource_from_json(resource.kind, text) == resource
    assert type(resource).model_validate(json.loads(text)) == resource


def test_every_kind_and_cluster_state_is_covered() -> None:
    resources = every_resource()
    assert {r.kind for r in resources} == set(ResourceKind)
    statuses = {r.state.status for r in resources if isinstance(r, ClusterState)}
    assert statuses == {"undeployed", "waiting", "deploying", "deployed", "undeploying", "failed"}


def test_event_json_round_trip() -> None:
    tx = uuid.uuid4()
    for i, resource in enumerate(every_resource(), start=1):
        event = Event(
            epoch="e1",
            revision=i,
            type=EventType.UPDATED,
            kind=resource.kind,
            id=resource.id,
            resource=resource,
            actor="alice",
            at=NOW,
            tx=tx,
        )
        assert Event.model_validate_json(event.model_dump_json()) == event
    deleted = Event(
        epoch="e1",
        revision=99,
        type=EventType.DELETED,
        kind=ResourceKind.PEER,
        id=uuid.uuid4(),
        resource=None,
        actor="bob",
        at=NOW,
        tx=tx,
    )
    again = Event.model_validate_json(deleted.model_dump_json())
    assert again == deleted and again.resource is None and again.at.utcoffset() == timedelta(0)


def test_state_snapshot_json_round_trip() -> None:
    snapshot = StateSnapshot(epoch="abc", revision=42, resources=tuple(every_resource()))
    again = StateSnapshot.model_validate_json(snapshot.model_dump_json())
    assert again == snapshot
    assert [type(r) for r in again.resources] == [type(r) for r in snapshot.resources]
    assert (
        StateSnapshot.model_validate_json(StateSnapshot(epoch="x", revision=0).model_dump_json()).resources
        == ()
    )


def test_checkpoint_json_round_trip() -> None:
    persisted = tuple(r for r in every_resource() if r.kind.persisted)
    checkpoint = Checkpoint(revision=7, resources=persisted)
    assert Checkpoint.model_validate_json(checkpoint.model_dump_json()) == checkpoint


def test_write_result_and_wire_messages_round_trip() -> None:
    result = WriteResult(revision=5, version=2, id=uuid.uuid4())
    assert WriteResult.model_validate_json(result.model_dump_json()) == result
    event = Event(
        epoch="e",
        revision=1,
        type=EventType.CREATED,
        kind=ResourceKind.PEER,
        id=uuid.uuid4(),
        resource=make_peer(),
        actor="a",
        at=NOW,
        tx=uuid.uuid4(),
    )
    adapter: TypeAdapter[Hello | EventBatch | Resync | Ping] = TypeAdapter(WatchMessage)
    for message in (Hello(epoch="e", revision=3), EventBatch(events=(event,)), Resync(reason="r"), Ping()):
        assert adapter.validate_json(message.model_dump_json()) == message


# -- tolerance of unknown fields (an older client reads a newer payload) ----------------------


def test_unknown_fields_are_ignored_at_every_level_of_a_peer() -> None:
    peer = full_peer()
    data = json.loads(peer.model_dump_json())
    data["added_in_v9"] = {"anything": [1, 2]}
    data["interfaces"][0]["mtu"] = 9000
    data["interfaces"][2]["configuration"]["termination"] = True
    data["devices"][0]["firmware"] = "1.2.3"
    assert PeerDescriptor.model_validate_json(json.dumps(data)) == peer
    assert RESOURCE_ADAPTER.validate_json(json.dumps(data)) == peer


def test_unknown_fields_are_ignored_in_events_snapshots_and_states() -> None:
    cluster_state = ClusterState(id=uuid.uuid4(), state=Failed(reason="boom"))
    data = json.loads(cluster_state.model_dump_json())
    data["state"]["retry_in"] = 5
    data["color"] = "red"
    assert ClusterState.model_validate_json(json.dumps(data)) == cluster_state

    event = Event(
        epoch="e",
        revision=3,
        type=EventType.CREATED,
        kind=ResourceKind.CLUSTER_STATE,
        id=cluster_state.id,
        resource=cluster_state,
        actor="a",
        at=NOW,
        tx=uuid.uuid4(),
    )
    data = json.loads(event.model_dump_json())
    data["causation_id"] = "x"
    data["resource"]["new_field"] = 1
    assert Event.model_validate_json(json.dumps(data)) == event

    snapshot = StateSnapshot(epoch="e", revision=3, resources=(cluster_state,))
    data = json.loads(snapshot.model_dump_json())
    data["server_time"] = NOW.isoformat()
    data["resources"][0]["extra"] = [1]
    assert StateSnapshot.model_validate_json(json.dumps(data)) == snapshot

    checkpoint = Checkpoint(revision=1, resources=(make_peer(),))
    data = json.loads(checkpoint.model_dump_json())
    data["compression"] = "none"
    assert Checkpoint.model_validate_json(json.dumps(data)) == checkpoint
