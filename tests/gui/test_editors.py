"""The peer and cluster editors on a real embedded backend (the child process): inline rules, saving, refusals, the
changed-under-you banner and read-only states."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from lea_app.connection.base import Identity
from lea_app.views.editors.base import ResourceEditor
from lea_app.views.editors.cluster import PEER_ROLE, ClusterEditor
from lea_app.views.editors.peer import PeerEditor
from lea_app.views.editors.rows import InterfaceRow
from lea_app.views.editors.widgets import FieldRow, sentence
from resources.cluster import ClusterDescriptor
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from tests.helpers.child import SharedChild
from tests.helpers.editors import EditorEnv, open_editor_env
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.qt import Lea, run


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedChild]:
    """One backend process for the module (a start-up per test would cost ~1 s each)."""
    shared = SharedChild(tmp_path_factory.mktemp("editors") / "lea-data")
    yield shared
    shared.stop()


@pytest.fixture
def env(qtbot: QtBot, aloop: asyncio.AbstractEventLoop, child: SharedChild) -> Iterator[EditorEnv]:
    yield from open_editor_env(qtbot, child)


# -- helpers -----------------------------------------------------------------------------------
def fill_valid_peer(editor: PeerEditor, name: str = "bench-new") -> None:
    editor.name_edit.setText(name)
    editor.location_edit.setText("Lab C")
    can = editor.interfaces.add_row()
    can.name_edit.setText("can0")
    can.type_combo.setCurrentIndex(can.type_combo.findData("can"))
    can.bitrate.setText("500000")
    can.sample_point.setText("0.875")
    device = editor.devices.add_row()
    device.name_edit.setText("ecu-1")
    device.tags.setText("powertrain, can")


def interface(editor: PeerEditor, row: int = 0) -> InterfaceRow:
    return editor.interfaces.rows[row]


def field_error(editor: ResourceEditor[Any], field: str) -> str:
    """The error text under the input of a top-level field."""
    target = editor.targets[field]
    assert isinstance(target, FieldRow)
    return target.error.text()


def check_item(editor: ClusterEditor, label: str, state: Qt.CheckState = Qt.CheckState.Checked) -> None:
    """Check the device "peer / device" in the picker (grouped by peer)."""
    peer, device = label.split(" / ")
    item = editor.picker.item_for(peer, device)
    assert item is not None, f"no device {label!r} in {[i.text(0) for i in editor.picker.items()]}"
    item.setCheckState(0, state)


def choose_leader(editor: ClusterEditor, name: str) -> None:
    peer = editor.store.id_by_name(ResourceKind.PEER, name)
    assert peer is not None
    editor.leader_combo.setCurrentIndex(editor.leader_combo.findData(str(peer)))


def assert_refused_locally(env: EditorEnv, editor: Any, widget: QWidget, error_text: str, rule: str) -> None:
    """The rule is next to the field, the field is marked, Save is off, and nothing is stored."""
    assert widget.property("invalid") is True, f"{widget.accessibleName()} is not marked"
    assert rule in error_text, f"{rule!r} not in {error_text!r}"
    assert rule.casefold() in widget.toolTip().casefold() and widget.toolTip()[:1].isupper()  # sentence case
    assert not editor.save_button.isEnabled()
    assert editor.summary.text().startswith("Cannot save:")
    before = env.revision
    editor.save_button.click()
    editor.save()  # even when called directly, an invalid form is never sent
    env.qtbot.wait(50)
    assert env.revision == before
    assert env.backend(editor.kind, editor.resource_id) is None
    assert editor.isVisible()


# -- peer: every field's rule ------------------------------------------------------------------
def _set_fd_then_drop_it(editor: PeerEditor) -> None:
    row = interface(editor)
    row.fd.setChecked(True)
    row.data_bitrate.setText("2000000")
    row.fd.setChecked(False)  # the typed data bitrate stays editable and is flagged, not dropped


def _two_devices_named_alike(editor: PeerEditor) -> None:
    editor.devices.add_row().name_edit.setText("ecu-1")


PEER_CASES: dict[str, tuple[Callable[[PeerEditor], None], Callable[[PeerEditor], tuple[QWidget, str]], str]] = {
    "name too short": (
        lambda e: e.name_edit.setText("ab"),
        lambda e: (e.name_edit, field_error(e, "name")), "at least 4 characters",
    ),
    "name with bad characters": (
        lambda e: e.name_edit.setText("bench 01!"),
        lambda e: (e.name_edit, field_error(e, "name")), "Use only letters, digits, '-' and '_' (found a space, '!')",
    ),
    "name starting with -": (
        lambda e: e.name_edit.setText("-bench"),
        lambda e: (e.name_edit, field_error(e, "name")), "Must not start or end with '-' or '_'",
    ),
    "location too long": (
        lambda e: e.location_edit.setText("x" * 65),
        lambda e: (e.location_edit, field_error(e, "location")), "at most 64 characters",
    ),
    "interface name too long": (
        lambda e: interface(e).name_edit.setText("can-interface-01"),
        lambda e: (interface(e).name_edit, e.interfaces.error.text()), "at most 15 characters",
    ),
    "CAN bitrate 0": (
        lambda e: interface(e).bitrate.setText("0"),
        lambda e: (interface(e).bitrate, e.interfaces.error.text()), "must be more than 0 bit/s",
    ),
    "sample point 1.5": (
        lambda e: interface(e).sample_point.setText("1.5"),
        lambda e: (interface(e).sample_point, e.interfaces.error.text()), "must be at most 1",
    ),
    "data bitrate without FD": (
        _set_fd_then_drop_it,
        lambda e: (interface(e).data_bitrate, e.interfaces.error.text()), "only allowed with FD: tick FD or clear them",
    ),
    "duplicate device name": (
        _two_devices_named_alike,
        lambda e: (e.devices.rows[1].name_edit, e.devices.error.text()), "'ecu-1' is used twice",
    ),
    "device description too long": (
        lambda e: e.devices.rows[0].description.setText("d" * 281),
        lambda e: (e.devices.rows[0].description, e.devices.error.text()), "at most 280 characters",
    ),
    "tag too long": (
        lambda e: e.devices.rows[0].tags.setText("ok, " + "t" * 65),
        lambda e: (e.devices.rows[0].tags, e.devices.error.text()), "at most 64 characters",
    ),
    # the shared rule of resources.names: no control or invisible characters in what users see
    "location with a bidi override": (
        lambda e: e.location_edit.setText("Lab \u202eC"),
        lambda e: (e.location_edit, field_error(e, "location")), "U+202E RIGHT-TO-LEFT OVERRIDE",
    ),
    "interface name with a BOM": (
        lambda e: interface(e).name_edit.setText("can\ufeff0"),
        lambda e: (interface(e).name_edit, e.interfaces.error.text()), "invisible formatting characters",
    ),
    "device name with a zero-width space": (
        lambda e: e.devices.rows[0].name_edit.setText("ecu\u200b1"),
        lambda e: (e.devices.rows[0].name_edit, e.devices.error.text()), "U+200B ZERO WIDTH SPACE",
    ),
    "tag with a control character": (
        lambda e: e.devices.rows[0].tags.setText("ok, t\x1bg"),
        lambda e: (e.devices.rows[0].tags, e.devices.error.text()), "must not contain control",
    ),
    "name taken (case-insensitive, from the store)": (
        lambda e: e.name_edit.setText("EXISTING-01"),
        lambda e: (e.name_edit, field_error(e, "name")),
        "A peer named 'EXISTING-01' already exists; peer names must be unique",  # the backend's words, sentence case
    ),
}


@pytest.mark.parametrize("case", list(PEER_CASES))
def test_bad_peer_input_shows_the_rule_and_stores_nothing(env: EditorEnv, case: str) -> None:
    env.put(make_peer("existing-01"))
    editor = env.peer_editor()
    fill_valid_peer(editor)
    assert editor.save_button.isEnabled(), editor.summary.text()
    apply, where, rule = PEER_CASES[case]
    apply(editor)
    widget, error_text = where(editor)
    assert_refused_locally(env, editor, widget, error_text, rule)


def test_can_fields_follow_the_interface_type_and_fd(env: EditorEnv) -> None:
    editor = env.peer_editor()
    row = editor.interfaces.add_row()
    assert not row.bitrate.isEnabled() and not row.fd.isEnabled()  # Ethernet
    row.type_combo.setCurrentIndex(row.type_combo.findData("can"))
    assert row.bitrate.isEnabled() and row.sample_point.isEnabled() and row.fd.isEnabled()
    assert not row.data_bitrate.isEnabled()
    row.fd.setChecked(True)
    assert row.data_bitrate.isEnabled() and row.data_sample_point.isEnabled()
    assert row.data_bitrate.accessibleName() == "Interface 1 data bitrate (bit/s)"


# -- cluster: every field's rule ---------------------------------------------------------------
CLUSTER_CASES: dict[str, tuple[Callable[[ClusterEditor], None], str, str]] = {
    "name rule": (lambda e: e.name_edit.setText("my cluster"), "name", "letters, digits"),
    "fewer than 2 devices": (
        lambda e: check_item(e, "bench-b / ecu-0", Qt.CheckState.Unchecked), "devices", "Choose at least 2 devices",
    ),
    "no leader": (lambda e: e.leader_combo.setCurrentIndex(-1), "leader", "Choose the leader peer"),
    "name taken": (
        lambda e: e.name_edit.setText("Existing-Cluster"), "name",
        "A cluster named 'Existing-Cluster' already exists; cluster names must be unique",
    ),
}


@pytest.mark.parametrize("case", list(CLUSTER_CASES))
def test_bad_cluster_input_shows_the_rule_and_stores_nothing(env: EditorEnv, case: str) -> None:
    a, b = env.put(make_peer("bench-a", devices=1)), env.put(make_peer("bench-b", devices=1))
    env.put(make_cluster("existing-cluster", a, b))
    editor = env.cluster_editor()
    editor.name_edit.setText("new-cluster")
    choose_leader(editor, "bench-a")
    check_item(editor, "bench-a / ecu-0")
    check_item(editor, "bench-b / ecu-0")
    assert editor.save_button.isEnabled(), editor.summary.text()
    apply, field, rule = CLUSTER_CASES[case]
    apply(editor)
    widget = {"name": editor.name_edit, "leader": editor.leader_combo, "devices": editor.picker.tree}[field]
    assert_refused_locally(env, editor, widget, field_error(editor, field), rule)


# -- saving ------------------------------------------------------------------------------------
def test_a_valid_peer_is_created_through_the_editor(env: EditorEnv) -> None:
    editor = env.peer_editor()
    assert editor.windowTitle().startswith("New peer")
    assert editor.summary.text() == "To save, fill in the name."  # a hint, not an error, before any input
    fill_valid_peer(editor)
    editor.save_button.click()
    env.qtbot.waitUntil(lambda: not editor.isVisible() if _alive(editor) else True, timeout=5_000)
    env.wait_version(ResourceKind.PEER, editor.resource_id, 1)
    peer = env.controller.store.get(ResourceKind.PEER, editor.resource_id)
    assert isinstance(peer, PeerDescriptor)
    assert (peer.name, peer.location, peer.version) == ("bench-new", "Lab C", 1)
    assert [i.name for i in peer.interfaces] == ["can0"]
    assert peer.devices[0].interface == peer.interfaces[0].id
    assert peer.devices[0].tags == ("powertrain", "can")
    # the write's acknowledgement may come after its event reached the store
    env.qtbot.waitUntil(lambda: ("info", "Peer 'bench-new' saved") in env.messages, timeout=5_000)


def test_a_valid_cluster_is_created_through_the_editor_with_a_filtered_device_list(env: EditorEnv) -> None:
    a, b = env.put(make_peer("bench-a")), env.put(make_peer("bench-b"))
    editor = env.cluster_editor()
    assert [editor.leader_combo.itemText(i) for i in range(editor.leader_combo.count())] == [
        "bench-a (offline)", "bench-b (offline)",
    ]
    editor.picker.filter.setText("BENCH-B")
    shown = [(i.data(0, PEER_ROLE), i.text(0)) for i in editor.picker.items() if not i.isHidden()]
    assert shown == [("bench-b", "ecu-0"), ("bench-b", "ecu-1")]
    editor.name_edit.setText("loop-1")
    choose_leader(editor, "bench-a")
    check_item(editor, "bench-b / ecu-0")
    check_item(editor, "bench-b / ecu-1")
    assert editor.picker.count.text() == "2 of 4 devices selected, on 1 peer"
    editor.windowHandle().requestActivate()  # a shortcut needs the active window
    env.qtbot.waitUntil(editor.isActiveWindow)
    env.qtbot.keyClick(editor.name_edit, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)  # Ctrl+S saves
    env.wait_version(ResourceKind.CLUSTER, editor.resource_id, 1)
    cluster = env.controller.store.get(ResourceKind.CLUSTER, editor.resource_id)
    assert isinstance(cluster, ClusterDescriptor) and cluster.leader == a.id
    assert set(cluster.devices) == {d.id for d in b.devices}
    # the write's acknowledgement may come after its event reached the store
    env.qtbot.waitUntil(lambda: ("info", "Cluster 'loop-1' saved") in env.messages, timeout=5_000)


def test_editing_an_existing_peer_keeps_its_ids_and_saves_its_version(env: EditorEnv) -> None:
    peer = env.put(make_peer("bench-01", can=True, demo=True))
    editor = env.peer_editor(peer.id)
    assert editor.demo_label.isVisible() and editor.demo_label.text() == "demo bench (simulated)"
    assert not editor.save_button.isEnabled() and editor.summary.text() == "No changes."
    editor.location_edit.setText("Lab B")
    editor.devices.add_row().name_edit.setText("ecu-new")
    editor.save_button.click()
    env.wait_version(ResourceKind.PEER, peer.id, 2)
    stored = env.controller.store.get(ResourceKind.PEER, peer.id)
    assert isinstance(stored, PeerDescriptor)
    assert stored.demo and stored.location == "Lab B"
    assert [i.id for i in stored.interfaces] == [i.id for i in peer.interfaces]
    assert [d.id for d in stored.devices[:2]] == [d.id for d in peer.devices]
    assert stored.devices[2].name == "ecu-new" and stored.devices[2].id not in {d.id for d in peer.devices}


# -- refusals and changes underneath -----------------------------------------------------------
def test_a_backend_refusal_is_shown_at_the_name_and_the_form_keeps_its_content(env: EditorEnv) -> None:
    editor = env.peer_editor()
    fill_valid_peer(editor, "bench-x")
    assert editor.save_button.isEnabled()
    # Someone else takes the name; LEA's store has not heard of it when Save is clicked.
    env.other.store_peer_descriptor(make_peer("BENCH-X"))
    editor.save_button.click()
    env.qtbot.waitUntil(lambda: "already exists" in field_error(editor, "name"), timeout=5_000)
    assert editor.isVisible()
    assert editor.name_edit.property("invalid") is True
    assert "Not saved: a peer named 'bench-x' already exists" in editor.refusal.text
    assert editor.name_edit.text() == "bench-x" and editor.location_edit.text() == "Lab C"
    assert interface(editor).bitrate.text() == "500000" and editor.devices.rows[0].tags.text() == "powertrain, can"
    assert env.backend(ResourceKind.PEER, editor.resource_id) is None
    editor.name_edit.setText("bench-y")  # a fix: the refusal no longer applies, saving works
    editor.save_button.click()
    env.wait_version(ResourceKind.PEER, editor.resource_id, 1)


def test_a_missing_reference_from_the_backend_is_shown_at_the_leader(env: EditorEnv) -> None:
    env.put(make_peer("bench-a", devices=1))
    env.put(make_peer("bench-b", devices=1))
    c = env.put(make_peer("bench-c", devices=1))
    editor = env.cluster_editor()
    editor.name_edit.setText("loop-1")
    choose_leader(editor, "bench-c")
    check_item(editor, "bench-a / ecu-0")
    check_item(editor, "bench-b / ecu-0")
    env.other.delete_peer_descriptor(c.id)  # LEA has not heard yet
    editor.save_button.click()
    backend_says = "The chosen leader peer no longer exists; choose another leader"  # its name, not its id
    env.qtbot.waitUntil(lambda: backend_says in field_error(editor, "leader"), timeout=5_000)
    assert "Not saved:" in editor.refusal.text and editor.isVisible()
    assert editor.name_edit.text() == "loop-1" and len(editor.picker.selected) == 2
    # Once LEA hears of the delete, its own pre-check (the backend's rule) says the very same, once.
    env.qtbot.waitUntil(lambda: env.controller.store.get(ResourceKind.PEER, c.id) is None, timeout=5_000)
    env.qtbot.waitUntil(lambda: [p.code for p in editor.problems] == ["missing_reference"], timeout=5_000)
    assert [sentence(p.rule) for p in editor.problems] == [backend_says]
    assert str(c.id) not in editor.refusal.text and "Not saved: cluster 'loop-1': leader (a deleted one)" in (
        editor.refusal.text
    )
    assert field_error(editor, "leader").count(backend_says) == 1
    assert not editor.save_button.isEnabled() and "the chosen leader peer no longer exists" in editor.summary.text()
    assert env.backend(ResourceKind.CLUSTER, editor.resource_id) is None


def test_a_device_used_by_a_cluster_cannot_be_removed(env: EditorEnv) -> None:
    a, b = env.put(make_peer("bench-a")), env.put(make_peer("bench-b"))
    env.put(make_cluster("loop-1", a, b))
    editor = env.peer_editor(a.id)
    editor.devices.remove_buttons[0].click()
    assert "device 'ecu-0' of peer 'bench-a' cannot be removed: it is used by cluster 'loop-1'" in (
        editor.devices.error.text()
    )
    assert not editor.save_button.isEnabled()


def test_a_change_underneath_shows_the_banner_and_reload_takes_it(env: EditorEnv) -> None:
    peer = env.put(make_peer("bench-01"))
    editor = env.peer_editor(peer.id)
    editor.location_edit.setText("typed here")
    env.put(peer.model_copy(update={"location": "Lab Z"}))
    env.qtbot.waitUntil(editor.banner.isVisible, timeout=5_000)
    assert "changed by someone else (version 2)" in editor.banner.text
    assert "Saving will be refused; Reload to take their changes." in editor.banner.text
    assert editor.location_edit.text() == "typed here"  # nothing typed is lost
    assert not editor.save_button.isEnabled()
    editor.banner.reload_button.click()
    assert not editor.banner.isVisible()
    assert editor.location_edit.text() == "Lab Z" and editor.loaded_version == 2


def test_a_conflict_from_the_backend_shows_the_banner(env: EditorEnv) -> None:
    peer = env.put(make_peer("bench-01"))
    editor = env.peer_editor(peer.id)
    editor.location_edit.setText("mine")
    env.other.store_peer_descriptor(peer.model_copy(update={"location": "theirs"}))
    editor.save_button.click()
    env.qtbot.waitUntil(editor.banner.isVisible, timeout=5_000)
    assert "changed by someone else (version 2)" in editor.banner.text
    assert "Not saved:" in editor.refusal.text and editor.location_edit.text() == "mine"
    assert env.backend(ResourceKind.PEER, peer.id).location == "theirs"


def test_a_deleted_resource_says_so(env: EditorEnv) -> None:
    a, b = env.put(make_peer("bench-a")), env.put(make_peer("bench-b"))
    cluster = env.put(make_cluster("loop-1", a, b))
    editor = env.cluster_editor(cluster.id)
    env.run(env.connection.delete_cluster_descriptor(cluster.id))
    env.qtbot.waitUntil(editor.banner.isVisible, timeout=5_000)
    assert "was deleted by someone else" in editor.banner.text
    assert not editor.banner.reload_button.isVisible() and not editor.save_button.isEnabled()


# -- read-only ---------------------------------------------------------------------------------
def test_a_deployed_cluster_and_its_peers_are_read_only(env: EditorEnv) -> None:
    a, b = env.put(make_peer("bench-a")), env.put(make_peer("bench-b"))
    cluster = env.put(make_cluster("loop-1", a, b))
    env.deploy(cluster.id)
    editor = env.cluster_editor(cluster.id)
    assert editor.read_only_note.isVisible()
    assert editor.read_only_note.text() == (
        "Read-only: cluster 'loop-1' is deployed and cannot be changed; undeploy it first."
    )
    for widget in (editor.name_edit, editor.leader_combo, editor.picker.tree, editor.picker.filter):
        assert not widget.isEnabled()
    assert not editor.save_button.isEnabled()
    peer_editor = env.peer_editor(b.id)
    assert peer_editor.read_only_note.text() == (
        "Read-only: peer 'bench-b' is used by deployed cluster 'loop-1'; undeploy it before changing the peer."
    )
    assert not peer_editor.name_edit.isEnabled() and not peer_editor.interfaces.add_button.isEnabled()
    env.run(env.connection.delete_cluster_deployment(cluster.id))
    env.qtbot.waitUntil(lambda: editor.name_edit.isEnabled(), timeout=5_000)  # undeployed: editable again
    assert not editor.read_only_note.isVisible()


def test_everything_is_read_only_for_a_viewer(env: EditorEnv) -> None:
    peer = env.put(make_peer("bench-01"))
    editor = env.peer_editor(peer.id)
    assert editor.name_edit.isEnabled()
    env.controller.identity = Identity(name="guest", role="viewer")
    env.controller.identity_changed.emit()
    assert not editor.name_edit.isEnabled() and not editor.save_button.isEnabled()
    assert "your role (viewer)" in editor.read_only_note.text()


# -- keyboard and accessibility ----------------------------------------------------------------
def test_escape_closes_at_once_when_unchanged_and_asks_when_changed(env: EditorEnv) -> None:
    peer = env.put(make_peer("bench-01"))
    unchanged = env.peer_editor(peer.id)
    env.qtbot.keyClick(unchanged.name_edit, Qt.Key.Key_Escape)
    assert not _alive(unchanged) or not unchanged.isVisible()
    changed = env.peer_editor(peer.id)
    changed.location_edit.setText("somewhere else")
    env.qtbot.keyClick(interface(changed).name_edit, Qt.Key.Key_Escape)  # from inside a table, too
    assert changed.isVisible() and changed.discard_box is not None and changed.discard_box.isVisible()
    discard = next(b for b in changed.discard_box.buttons() if b.text() == "Discard")
    discard.click()
    assert not _alive(changed) or not changed.isVisible()
    assert env.controller.store.get(ResourceKind.PEER, peer.id).location is None  # type: ignore[union-attr]


def test_every_input_has_a_label_and_an_accessible_name(env: EditorEnv) -> None:
    peer_editor = env.peer_editor(env.put(make_peer("bench-01", can=True)).id)
    cluster_editor = env.cluster_editor()
    for editor in (peer_editor, cluster_editor):
        for widget in editor.tab_sequence():
            assert widget.accessibleName(), f"{type(widget).__name__} in {type(editor).__name__} has no name"
        for target in editor.targets.values():
            if isinstance(target, FieldRow):  # a table's cells are named, not labelled
                assert target.label.buddy() is target.widget
    assert peer_editor.focusWidget() in (None, peer_editor.name_edit)


def _alive(widget: QWidget) -> bool:
    from shiboken6 import isValid

    return bool(isValid(widget))


def test_new_ids_for_new_rows(env: EditorEnv) -> None:
    editor = env.peer_editor()
    rows = [editor.interfaces.add_row(), editor.interfaces.add_row()]
    assert rows[0].id != rows[1].id and all(isinstance(r.id, uuid.UUID) for r in rows)
    editor.interfaces.remove_buttons[0].click()
    assert editor.interfaces.rows == [rows[1]] and rows[1].name_edit.accessibleName() == "Interface 1 name"


def test_the_main_window_opens_one_editor_per_resource(lea: Lea) -> None:
    store = lea.controller.store
    peer = store.id_by_name(ResourceKind.PEER, "demo-hil-01")
    assert peer is not None
    editor = lea.window.open_peer_editor(peer)
    assert isinstance(editor, PeerEditor) and editor.isVisible()
    assert editor.demo_label.isVisible() and editor.windowTitle().startswith("Peer 'demo-hil-01'")
    assert lea.window.open_peer_editor(peer) is editor
    cluster = next(iter(store.all(ResourceKind.CLUSTER)))
    cluster_editor = lea.window.open_cluster_editor(cluster)
    assert isinstance(cluster_editor, ClusterEditor) and cluster_editor.picker.selected
    new = lea.window.open_cluster_editor(None)
    assert isinstance(new, ClusterEditor) and new.is_new
    for opened in (editor, cluster_editor, new):
        opened.close()  # unchanged: closes without asking


# -- helping instead of scolding ---------------------------------------------------------------
def shown_errors(editor: ResourceEditor[Any]) -> list[str]:
    """Every error text on screen: the labels under inputs and tables, and the marked inputs."""
    texts = [target.error.text() for target in editor.targets.values()]  # type: ignore[attr-defined]
    marked = [w.accessibleName() for w in editor.findChildren(QWidget) if w.property("invalid") is True]
    return [t for t in texts if t] + marked


def test_a_new_editor_opens_without_errors_and_shows_them_once_touched_or_on_save(env: EditorEnv) -> None:
    editor = env.peer_editor()
    assert shown_errors(editor) == [] and editor.summary.property("tone") == "info"
    row = editor.interfaces.add_row()  # a new row: nothing typed in it yet, so nothing to say
    row.type_combo.setCurrentIndex(row.type_combo.findData("can"))  # CAN needs a bitrate: not typed yet
    assert shown_errors(editor) == [], shown_errors(editor)
    editor.name_edit.setText("ab")  # touched: its rule shows, the others still wait
    assert field_error(editor, "name") == "Must be at least 4 characters long"
    assert editor.interfaces.error.text() == ""
    assert editor.summary.text().startswith("Cannot save: Name: must be at least 4 characters")
    before = env.revision
    editor.save()  # an attempt to save: every problem shows, the first input in trouble has the focus
    assert "Interface 1 bitrate: enter the bitrate in bit/s, e.g. 500000" in editor.interfaces.error.text()
    assert row.bitrate.property("invalid") is True
    assert env.revision == before and not editor.save_button.isEnabled()

    cluster = env.cluster_editor()
    assert shown_errors(cluster) == []
    assert cluster.summary.text() == "To save, fill in the name, leader and devices."
    assert cluster.save_button.isEnabled()  # clicking it shows what is missing instead of saving
    cluster.save_button.click()
    assert field_error(cluster, "leader") == "Choose the leader peer"
    assert field_error(cluster, "devices") == "Choose at least 2 devices"
    assert cluster.focusWidget() in (None, cluster.name_edit) and not cluster.save_button.isEnabled()
    assert env.backend(ResourceKind.CLUSTER, cluster.resource_id) is None


def test_messages_are_plain_words_in_sentence_case_without_ids(env: EditorEnv) -> None:
    editor = env.peer_editor()
    fill_valid_peer(editor)
    interface(editor).bitrate.setText("500k")
    assert editor.interfaces.error.text() == "Interface 1 'can0' bitrate: enter the bitrate in bit/s, e.g. 500000"
    assert "Input should" not in editor.interfaces.error.text()
    interface(editor).bitrate.setText("500000")
    editor.devices.rows[0].name_edit.setText("")
    assert editor.devices.error.text() == "Device 1 name: must be at least 1 character long"
    editor.devices.rows[0].name_edit.setText("ecu-1")
    editor.interfaces.remove_row(interface(editor))  # the device's interface goes: named, never its id
    editor.save()
    device = editor.devices.rows[0]
    assert editor.devices.error.text() == (
        "Device 1 'ecu-1' interface: choose one of this peer's interfaces (interface can0 was removed)"
    )
    assert device.interface_combo.currentText() == "(removed interface can0)"
    assert device.interface_id is not None and device.interface_id not in editor.devices.error.text()


def test_an_error_label_reserves_its_space(env: EditorEnv) -> None:
    editor = env.cluster_editor()
    editor.resize(600, 640)
    env.qtbot.waitUntil(lambda: editor.picker.tree.height() > 0)

    def picker_top() -> int:
        return editor.picker.mapTo(editor, editor.picker.rect().topLeft()).y()

    top = picker_top()
    editor.name_edit.setText("a b")  # the name's rule appears above the device list
    env.qtbot.wait(20)
    assert field_error(editor, "name") != ""
    assert picker_top() == top
    editor.name_edit.setText("loop-1")  # and goes
    env.qtbot.wait(20)
    assert field_error(editor, "name") == "" and picker_top() == top


def test_the_device_picker_groups_by_peer_names_users_and_filters(env: EditorEnv) -> None:
    a, b = env.put(make_peer("bench-a")), env.put(make_peer("bench-b"))
    c = env.put(make_peer("bench-c", devices=1))
    used = env.put(make_cluster("loop-1", a, b))
    env.deploy(used.id)
    env.put(make_cluster("loop-2", b, c))
    editor = env.cluster_editor()
    picker = editor.picker
    assert [g.text(0) for g in picker.groups()] == [
        "bench-a — offline, 2 devices", "bench-b — offline, 2 devices", "bench-c — offline, 1 device",
    ]
    rows = {(i.data(0, PEER_ROLE), i.text(0)): i.text(1) for i in picker.items()}
    in_loop_1 = {d.id for d in a.devices} & set(used.devices)
    assert rows[("bench-a", "ecu-0")] == ("loop-1 (deployed)" if a.devices[0].id in in_loop_1 else "")
    assert rows[("bench-b", "ecu-0")] == "loop-1 (deployed), loop-2"  # deployed first
    assert rows[("bench-c", "ecu-0")] == "loop-2"
    picker.filter.setText("loop-2")  # by the cluster that uses a device
    visible = [(i.data(0, PEER_ROLE), i.text(0)) for i in picker.items() if not i.isHidden()]
    assert visible == [(p, d) for (p, d), users in rows.items() if "loop-2" in users]
    assert [g.isHidden() for g in picker.groups()] == [True, False, False]
    picker.filter.setText("BENCH-C")  # by peer: all its devices
    assert [(i.data(0, PEER_ROLE), i.text(0)) for i in picker.items() if not i.isHidden()] == [("bench-c", "ecu-0")]
    picker.filter.clear()
    # a peer's box checks all its devices
    picker.groups()[0].setCheckState(0, Qt.CheckState.Checked)
    assert picker.selected == {str(d.id) for d in a.devices}
    assert picker.count.text() == "2 of 5 devices selected, on 1 peer"


def test_the_device_picker_stays_usable_with_500_benches(env: EditorEnv) -> None:
    from resources.events import StateSnapshot

    peers = [make_peer(f"bench-{n:03d}", devices=3) for n in range(500)]
    env.controller.store.apply_snapshot(StateSnapshot(epoch="big", revision=0, resources=tuple(peers)))
    editor = env.cluster_editor()
    assert len(editor.picker.groups()) == 500 and len(editor.picker.items()) == 1500
    assert not any(g.isExpanded() for g in editor.picker.groups())  # grouped: 500 lines, not 1,500
    editor.picker.filter.setText("bench-123")
    shown = [g.text(0) for g in editor.picker.groups() if not g.isHidden()]
    assert shown == ["bench-123 — offline, 3 devices"] and editor.picker.groups()[123].isExpanded()


def test_the_leader_picker_shows_whether_each_peer_is_online(qtbot: QtBot, lea: Lea) -> None:
    store = lea.controller.store
    editor = lea.window.open_cluster_editor(None)
    assert isinstance(editor, ClusterEditor)
    labels = [editor.leader_combo.itemText(i) for i in range(editor.leader_combo.count())]
    assert labels and all(label.endswith(("(online)", "(offline)")) for label in labels)
    peer = store.id_by_name(ResourceKind.PEER, "demo-hil-01")
    assert peer is not None
    index = editor.leader_combo.findData(str(peer))
    qtbot.waitUntil(lambda: editor.leader_combo.itemText(index) == "demo-hil-01 (online)", timeout=10_000)
    editor.leader_combo.setCurrentIndex(index)
    run(qtbot, lea.connection.set_demo_peer_online(peer, False))
    qtbot.waitUntil(lambda: editor.leader_combo.itemText(index) == "demo-hil-01 (offline)", timeout=10_000)
    assert editor.leader_combo.currentIndex() == index and editor.leader_id == str(peer)  # the choice stays
    header = next(g for g in editor.picker.groups() if g.data(0, PEER_ROLE) == "demo-hil-01")
    assert "offline" in header.text(0)
    editor.close()
