"""The editors' problem mapping, without Qt: what is wrong with a form, and which input shows it."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

from lea_app.sync.store import Store
from lea_app.views.editors.problems import (
    Placed,
    Problem,
    cluster_blocked_reason,
    describe_field,
    missing_references,
    name_taken,
    peer_blocked_reason,
    place,
    refusal_problems,
    removed_devices_in_use,
    rule_problems,
    validation_problems,
)
from resources.cluster import ClusterDeployment, ClusterDescriptor
from resources.errors import (
    Conflict,
    DeviceIdTaken,
    InvalidResource,
    MissingReference,
    NameTaken,
    ReferencedByCluster,
)
from resources.events import StateSnapshot
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import AnyResource
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.server import REPO


def store_of(*resources: AnyResource) -> Store:
    store = Store()
    store.apply_snapshot(StateSnapshot(epoch="problems", revision=0, resources=resources))
    return store


def test_importing_the_problem_mapping_loads_no_qt() -> None:
    code = (
        "import sys, lea_app.views.editors.problems\n"
        "qt = sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'qasync'))\n"
        "print(qt)\n"
        "sys.exit(1 if qt else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"Qt was imported: {out.stdout}{out.stderr}"


def test_a_form_is_checked_by_the_backends_model_and_its_problems_name_fields() -> None:
    data: dict[str, Any] = make_peer("bench-01", devices=1).model_dump(mode="json")
    resource, problems = validation_problems(PeerDescriptor.model_validate, data)
    assert isinstance(resource, PeerDescriptor) and problems == []

    data["name"] = "-bench"
    data["interfaces"][0]["name"] = "has space"
    resource, problems = validation_problems(PeerDescriptor.model_validate, data)
    assert resource is None
    assert {p.field for p in problems} == {"name", "interfaces[0].name"}
    assert all(p.rule for p in problems)


def test_messages_are_in_plain_words() -> None:
    """What to enter, with an example, instead of pydantic's wording; counts in the singular when 1."""
    data: dict[str, Any] = make_peer("bench-01", can=True, devices=1).model_dump(mode="json")
    can = data["interfaces"][1]["configuration"]
    can["bitrate"] = "500k"
    can["sample_point"] = "87.5%"
    data["devices"][0]["name"] = ""
    _, problems = validation_problems(PeerDescriptor.model_validate, data)
    rules = {p.field: p.rule for p in problems}
    assert rules["interfaces[1].configuration.bitrate"] == "enter the bitrate in bit/s, e.g. 500000"
    assert rules["interfaces[1].configuration.sample_point"] == (
        "enter the sample point as a fraction of the bit time, e.g. 0.875"
    )
    assert rules["devices[0].name"] == "must be at least 1 character long"
    assert not any("Input should" in rule for rule in rules.values())
    can["bitrate"], can["sample_point"] = "0", "1.5"
    data["devices"][0]["name"] = "ecu-1"
    _, problems = validation_problems(PeerDescriptor.model_validate, data)
    assert [p.rule for p in problems] == ["must be more than 0 bit/s", "must be at most 1"]
    del can["bitrate"]
    _, problems = validation_problems(PeerDescriptor.model_validate, data)
    assert [p.rule for p in problems] == ["enter the bitrate in bit/s, e.g. 500000", "must be at most 1"]


def test_a_name_breaking_its_pattern_says_what_to_fix() -> None:
    data: dict[str, Any] = make_peer("bench-01", devices=1).model_dump(mode="json")
    for name, rule in (
        ("bench 01!", "use only letters, digits, '-' and '_' (found a space, '!')"),
        ("-bench", "must not start or end with '-' or '_'"),
        ("bench_", "must not start or end with '-' or '_'"),
    ):
        _, problems = validation_problems(PeerDescriptor.model_validate, {**data, "name": name})
        assert [(p.field, p.rule) for p in problems] == [("name", rule)]
    interfaces = [{**data["interfaces"][0], "name": "eth 0/1"}]
    _, problems = validation_problems(PeerDescriptor.model_validate, {**data, "interfaces": interfaces})
    assert [p.rule for p in problems] == ["a Linux interface name has no spaces, '/' or ':' (found a space, '/')"]


def test_a_device_on_a_removed_interface_is_named_not_its_id() -> None:
    data: dict[str, Any] = make_peer("bench-01", devices=1).model_dump(mode="json")
    gone = str(uuid.uuid4())
    data["devices"][0]["interface"] = gone
    _, problems = validation_problems(PeerDescriptor.model_validate, data)
    assert [p.field for p in problems] == ["devices[0].interface"]
    assert gone not in problems[0].rule and "choose one of this peer's interfaces" in problems[0].rule
    _, problems = validation_problems(PeerDescriptor.model_validate, data, {gone: "eth9"}.get)
    assert problems[0].rule == "choose one of this peer's interfaces (interface eth9 was removed)"
    taken = DeviceIdTaken(f"device id {gone} ('ecu-1') already belongs to peer 'bench-02'", device=gone)
    assert refusal_problems(taken)[0].rule == "device 'ecu-1' already belongs to peer 'bench-02'"


def test_place_splits_a_field_path_into_target_row_and_field() -> None:
    targets = {"name", "interfaces", "devices"}
    rule = "must be a number"
    assert place(Problem("interfaces[1].configuration.bitrate", rule), targets) == (
        "interfaces", Placed(1, "configuration.bitrate", rule)
    )
    assert place(Problem("name", rule), targets) == ("name", Placed(None, "", rule))
    assert place(Problem("devices[0]", rule), targets) == ("devices", Placed(0, "", rule))
    assert place(Problem("leader", rule), targets) is None  # no input shows it: only the summary names it
    assert place(Problem("", rule), targets) is None
    assert place(Problem("[0].name", rule), targets) is None


def test_a_field_inside_a_row_is_described_in_words() -> None:
    assert describe_field("name") == "name"
    assert describe_field("configuration.data_bitrate") == "data bitrate"
    assert describe_field("configuration") == "CAN settings"
    assert describe_field("tags[2]") == "tag 3"
    assert describe_field("[odd") == "[odd"


def test_a_backend_refusal_names_the_fields_it_can() -> None:
    invalid = InvalidResource("invalid", errors=[{"field": "devices[0].name", "rule": "is empty"}])
    assert refusal_problems(invalid) == [Problem("devices[0].name", "is empty", "invalid_resource")]
    assert refusal_problems(NameTaken("name taken")) == [Problem("name", "name taken", "name_taken")]
    assert refusal_problems(MissingReference("no leader", field="leader")) == [
        Problem("leader", "the chosen leader peer no longer exists; choose another leader", "missing_reference")
    ]
    assert refusal_problems(MissingReference("no such thing")) == []
    device = str(uuid.uuid4())
    assert refusal_problems(DeviceIdTaken("taken", device=device)) == [Problem("devices", "taken", "device_id_taken")]
    assert refusal_problems(ReferencedByCluster("in use", device=device)) == [
        Problem("devices", "in use", "referenced_by_cluster")
    ]
    assert refusal_problems(Conflict("changed meanwhile")) == []  # shown at the top, not at a field


def test_a_rule_naming_no_field_is_a_problem_for_the_summary() -> None:
    error = Conflict("changed meanwhile")
    assert rule_problems(None, error) == [Problem("", "changed meanwhile", "conflict")]
    assert place(rule_problems(error)[0], {"name"}) is None


def test_names_are_unique_per_kind_ignoring_case() -> None:
    peer = make_peer("Bench-01")
    store = store_of(peer)
    [problem] = name_taken(store, ResourceKind.PEER, uuid.uuid4(), "bench-01")
    assert problem == Problem(
        "name", "a peer named 'bench-01' already exists; peer names must be unique", "name_taken"
    )  # the backend's words (tests/unit/resources/test_rules.py runs both)
    assert name_taken(store, ResourceKind.PEER, peer.id, "BENCH-01") == []  # its own name
    assert name_taken(store, ResourceKind.CLUSTER, uuid.uuid4(), "bench-01") == []  # another kind


def test_removing_a_device_a_cluster_uses_is_a_problem_naming_the_clusters() -> None:
    peer = make_peer("bench-01", devices=4)
    shared, first_only, second_only, free = peer.devices
    first = ClusterDescriptor(id=uuid.uuid4(), name="first", leader=peer.id, devices=(shared.id, first_only.id))
    second = ClusterDescriptor(id=uuid.uuid4(), name="second", leader=peer.id, devices=(shared.id, second_only.id))
    store = store_of(peer, first, second)
    assert removed_devices_in_use(store, peer, [str(d.id) for d in peer.devices]) == []
    assert removed_devices_in_use(store, peer, [str(d.id) for d in peer.devices[:3]]) == []  # free is unused
    assert removed_devices_in_use(store, None, []) == []  # a new peer removes nothing
    problems = removed_devices_in_use(store, peer, [str(free.id), "not-an-id"])
    assert sorted(problems) == sorted(
        Problem(
            "devices", f"device '{device.name}' of peer 'bench-01' cannot be removed: it is used by cluster {users}",
            "referenced_by_cluster",
        )
        for device, users in ((shared, "'first', 'second'"), (first_only, "'first'"), (second_only, "'second'"))
    )


def test_a_cluster_referring_to_deleted_peers_or_devices_is_a_problem() -> None:
    peer = make_peer("bench-01", devices=2)
    store = store_of(peer)
    devices = {str(d.id) for d in peer.devices}
    assert missing_references(store, "loop", str(peer.id), devices) == []
    assert missing_references(store, "loop", None, ()) == []
    gone, lost = uuid.uuid4(), sorted([uuid.uuid4(), uuid.uuid4()], key=str)
    assert missing_references(store, "loop", str(gone), devices | {str(d) for d in lost}) == [
        Problem("leader", "the chosen leader peer no longer exists; choose another leader", "missing_reference"),
        Problem("devices", "2 chosen devices no longer exist; uncheck them", "missing_reference"),
    ]  # names and what to do, never the raw ids the backend's message carries
    assert missing_references(store, "loop", None, devices | {str(lost[0])}) == [
        Problem("devices", "the chosen device no longer exists; uncheck it", "missing_reference"),
    ]


def test_a_deployed_cluster_blocks_changes_to_itself_and_its_peers() -> None:
    leader, member, bystander = make_peer("bench-01"), make_peer("bench-02"), make_peer("bench-03")
    cluster = make_cluster("loop", leader, member)
    store = store_of(leader, member, bystander, cluster)
    assert cluster_blocked_reason(store, cluster.id) is None
    assert peer_blocked_reason(store, member.id) is None
    store = store_of(leader, member, bystander, cluster, ClusterDeployment(id=cluster.id))
    assert cluster_blocked_reason(store, cluster.id) == (
        "Read-only: cluster 'loop' is deployed and cannot be changed; undeploy it first."
    )
    for peer in (leader, member):
        assert peer_blocked_reason(store, peer.id) == (
            f"Read-only: peer '{peer.name}' is used by deployed cluster 'loop'; undeploy it before changing the peer."
        )
    assert peer_blocked_reason(store, bystander.id) is None


def test_the_pickers_choices_show_online_state_and_who_uses_a_device() -> None:
    from datetime import UTC, datetime

    from lea_app.views.editors.choices import DeviceChoice, device_groups, leader_choices, sorted_peers
    from resources.state import Online, PeerConnectionState

    a, b = make_peer("bench-a", devices=1), make_peer("Bench-B", devices=2)
    bare = PeerDescriptor(id=uuid.uuid4(), name="bench-none")
    deployed = make_cluster("loop-1", a, b)
    idle = ClusterDescriptor(id=uuid.uuid4(), name="idle", leader=b.id, devices=tuple(d.id for d in b.devices))
    online = PeerConnectionState(id=a.id, state=Online(remote_host="10.0.0.1", since=datetime.now(UTC)))
    store = store_of(a, b, bare, deployed, idle, ClusterDeployment(id=deployed.id), online)
    peers = sorted_peers(store)
    assert [p.name for p in peers] == ["bench-a", "Bench-B", "bench-none"]  # by name, ignoring case
    assert [label for label, _ in leader_choices(store, peers)] == [
        "bench-a (online)", "Bench-B (offline)", "bench-none (offline)",
    ]
    groups = device_groups(store, peers, own_cluster=idle.id)
    assert [(g.peer, g.online) for g in groups] == [("bench-a", True), ("Bench-B", False)]  # no devices: no group
    in_deployed = set(deployed.devices)
    assert groups[1].devices == tuple(
        DeviceChoice(d.name, str(d.id), "loop-1 (deployed)" if d.id in in_deployed else "")
        for d in sorted(b.devices, key=lambda d: d.name)
    )  # the cluster being edited is not named as another user
