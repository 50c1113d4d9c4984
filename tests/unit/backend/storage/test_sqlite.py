"""The EventStore suite (in the spirit of pyeventsourcing's shared persistence tests).

The first part is written against the ``EventStore`` interface only, through the ``store`` fixture
parametrized over every implementation (today: SQLite). The second part damages an SQLite database
with raw ``sqlite3`` to check what the store does with bad files, old payloads and damaged
checkpoints; the last part checks revisions across restarts and the settings file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backend import actions, admin, restore
from backend.backend import Backend
from backend.settings import Settings, load_settings
from backend.storage.base import EventStore
from backend.storage.pg_target import PostgresTarget
from backend.storage.postgres import PostgresEventStore
from backend.storage.sqlite import Durability, SqliteEventStore
from resources import (
    SCHEMA_VERSION,
    CanConfiguration,
    Checkpoint,
    ClusterDeployment,
    Device,
    EthernetConfiguration,
    Event,
    EventType,
    NetworkInterface,
    PeerDescriptor,
    ResourceKind,
)
from resources.errors import DataDirError, InvalidResource, SchemaTooNew
from resources.kinds import history_kinds
from resources.peer import MAX_BITRATE
from resources.resource import AnyResource
from resources.state import Online
from resources.wire import EventBatch
from tests.helpers.factories import make_cluster, make_peer

# -- implementations -------------------------------------------------------------------------

StoreFactory = Callable[[], EventStore]


def _sqlite(request: pytest.FixtureRequest, directory: Path) -> Callable[[], EventStore]:
    return lambda: SqliteEventStore(directory / "lea.db", durability="off")


def _postgres(request: pytest.FixtureRequest, directory: Path) -> Callable[[], EventStore]:
    target = request.getfixturevalue("pg_target")  # a new empty database on the session's PostgreSQL
    return lambda: PostgresEventStore(target, durability="off")


#: Every EventStore implementation; each must pass the interface part of this suite.
IMPLEMENTATIONS: dict[str, Callable[[pytest.FixtureRequest, Path], Callable[[], EventStore]]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens (and re-opens) the same store; every store opened is closed at the end."""
    opened: list[EventStore] = []
    make = IMPLEMENTATIONS[request.param](request, tmp_path)

    def factory() -> EventStore:
        store = make()
        opened.append(store)
        return store

    yield factory
    for store in opened:
        with contextlib.suppress(Exception):
            store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> EventStore:
    return open_store()


# -- event builders --------------------------------------------------------------------------

T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def event(
    revision: int,
    resource: AnyResource | None = None,
    *,
    kind: ResourceKind | None = None,
    id: uuid.UUID | None = None,
    type: EventType | None = None,
    tx: uuid.UUID | None = None,
    actor: str = "tester",
) -> Event:
    if resource is not None:
        kind, id = resource.kind, resource.id
        type = type or (EventType.CREATED if resource.version <= 1 else EventType.UPDATED)
    assert kind is not None and id is not None
    return Event(
        epoch="epoch-1",
        revision=revision,
        type=type or EventType.DELETED,
        kind=kind,
        id=id,
        resource=resource,
        actor=actor,
        at=T0 + timedelta(seconds=revision),
        tx=tx or uuid.uuid4(),
    )


def v(resource: Any, version: int) -> Any:
    return resource.model_copy(update={"version": version})


def history_of_three(store: EventStore) -> tuple[list[Event], dict[str, Any]]:
    """Seven events: two peers and a cluster created, a peer updated, a deployment, a delete."""
    a, b = make_peer("bench-a"), make_peer("bench-b", can=True)
    cluster = make_cluster("cluster-ab", a, b)
    tx = uuid.uuid4()
    events = [
        event(1, v(a, 1), tx=tx),
        event(2, v(b, 1), tx=tx),
        event(3, v(cluster, 1)),
        event(4, v(a.model_copy(update={"location": "lab"}), 2)),
        event(5, v(ClusterDeployment(id=cluster.id), 1)),
        event(6, kind=ResourceKind.CLUSTER_DEPLOYMENT, id=cluster.id),
        event(7, v(b.model_copy(update={"location": "lab 2"}), 2)),
    ]
    store.append(events[:2])
    store.append(events[2:5])
    store.append(events[5:])
    return events, {"a": a, "b": b, "cluster": cluster}


def state_of(events: list[Event]) -> dict[tuple[ResourceKind, uuid.UUID], AnyResource]:
    state: dict[tuple[ResourceKind, uuid.UUID], AnyResource] = {}
    for e in events:
        if e.resource is None:
            state.pop((e.kind, e.id), None)
        else:
            state[(e.kind, e.id)] = e.resource
    return state


def replayed_state(
    store: EventStore, use_checkpoint: bool
) -> dict[tuple[ResourceKind, uuid.UUID], AnyResource]:
    state, _ = restore.replay(store, use_checkpoint=use_checkpoint)
    return {(r.kind, r.id): r for r in state.persisted()}


# ============================================================================================
# The EventStore interface
# ============================================================================================


def test_a_new_store_is_empty(store: EventStore) -> None:
    assert store.event_count() == 0
    assert store.last_revision() == 0
    assert store.reserved_revision() == 0
    assert list(store.read_events()) == []
    assert list(store.replay()) == []
    assert store.load_checkpoint() is None
    assert store.checkpoints() == []
    assert store.read_only is False


def test_append_then_read_events_in_revision_order(store: EventStore) -> None:
    events, _ = history_of_three(store)
    assert store.event_count() == 7
    assert store.last_revision() == 7
    assert list(store.read_events()) == events
    assert list(store.read_events(after=3)) == events[3:]
    assert list(store.read_events(after=2, limit=2)) == events[2:4]
    assert list(store.read_events(after=7)) == []
    first = next(store.read_events())
    assert first.at == T0 + timedelta(seconds=1) and first.at.utcoffset() == timedelta(0)
    assert first.tx == events[1].tx  # a transaction's shared tx survives storage


def test_replay_yields_every_change_in_order(store: EventStore) -> None:
    events, _ = history_of_three(store)
    changes = list(store.replay())
    assert [c.revision for c in changes] == [e.revision for e in events]
    assert [(c.type, c.kind, c.id, c.resource) for c in changes] == [
        (e.type, e.kind, e.id, e.resource) for e in events
    ]
    assert [c.revision for c in store.replay(after=5)] == [6, 7]
    assert changes[5].resource is None and changes[5].type == EventType.DELETED


def test_history_filters_by_kind_and_id(store: EventStore) -> None:
    _, things = history_of_three(store)
    a = things["a"]
    assert [e.revision for e in store.read_events(kind=ResourceKind.PEER, resource_id=a.id)] == [1, 4]
    assert [e.revision for e in store.read_events(kind=ResourceKind.PEER)] == [1, 2, 4, 7]
    cluster_id = things["cluster"].id
    assert [
        e.revision for e in store.read_events(kind=ResourceKind.CLUSTER_DEPLOYMENT, resource_id=cluster_id)
    ] == [
        5,
        6,
    ]
    assert [e.revision for e in store.read_events(resource_id=cluster_id)] == [3, 5, 6]
    assert list(store.read_events(kind=ResourceKind.CLUSTER, resource_id=a.id)) == []
    assert [e.revision for e in store.read_events(after=1, kind=ResourceKind.PEER, resource_id=a.id)] == [4]


def test_a_clusters_history_holds_its_deployments_events(store: EventStore) -> None:
    _, things = history_of_three(store)
    cluster_id = things["cluster"].id
    history = list(store.read_events(kinds=history_kinds(ResourceKind.CLUSTER), resource_id=cluster_id))
    assert [(e.revision, e.kind, e.type) for e in history] == [
        (3, ResourceKind.CLUSTER, EventType.CREATED),
        (5, ResourceKind.CLUSTER_DEPLOYMENT, EventType.CREATED),
        (6, ResourceKind.CLUSTER_DEPLOYMENT, EventType.DELETED),
    ]
    assert history_kinds(ResourceKind.PEER) == (ResourceKind.PEER,)
    assert list(store.read_events(kinds=(), resource_id=cluster_id)) == []


def test_append_is_all_or_nothing(store: EventStore) -> None:
    events, _ = history_of_three(store)
    peer = make_peer("bench-z")
    with pytest.raises(Exception):  # noqa: B017 - the implementation's own error; what matters is below
        store.append([event(8, v(peer, 1)), event(7, v(peer, 2))], reserve_up_to=1000)  # 7 exists
    assert store.event_count() == 7
    assert list(store.read_events()) == events
    assert store.reserved_revision() == 0


def test_reserve_up_to_is_a_high_water_mark(open_store: StoreFactory) -> None:
    store = open_store()
    store.append([], reserve_up_to=100)
    assert store.reserved_revision() == 100
    assert store.last_revision() == 0 and store.event_count() == 0
    store.append([event(101, v(make_peer("bench-a"), 1))], reserve_up_to=200)
    assert store.reserved_revision() == 200 and store.last_revision() == 101
    store.append([event(102, v(make_peer("bench-b"), 1))])  # no new mark: the old one stays
    assert store.reserved_revision() == 200
    store.close()
    again = open_store()
    assert again.reserved_revision() == 200
    assert again.last_revision() == 102


def test_events_and_checkpoints_survive_reopening(open_store: StoreFactory) -> None:
    store = open_store()
    events, _ = history_of_three(store)
    store.write_checkpoint(Checkpoint(revision=4, resources=tuple(state_of(events[:4]).values())))
    store.close()
    again = open_store()
    assert list(again.read_events()) == events
    checkpoint = again.load_checkpoint()
    assert checkpoint is not None and checkpoint.revision == 4
    assert {(r.kind, r.id): r for r in checkpoint.resources} == state_of(events[:4])


def test_the_newest_checkpoint_is_loaded(store: EventStore) -> None:
    events, _ = history_of_three(store)
    for revision in (2, 5, 3):
        store.write_checkpoint(
            Checkpoint(revision=revision, resources=tuple(state_of(events[:revision]).values()))
        )
    checkpoint = store.load_checkpoint()
    assert checkpoint is not None and checkpoint.revision == 5
    assert checkpoint.schema_version == SCHEMA_VERSION
    assert {(r.kind, r.id): r for r in checkpoint.resources} == state_of(events[:5])
    infos = store.checkpoints()
    assert [c.revision for c in infos] == [5, 3, 2]
    assert all(c.valid and c.schema_version == SCHEMA_VERSION for c in infos)
    # Restore = checkpoint + the events after it = full replay.
    assert replayed_state(store, use_checkpoint=True) == replayed_state(store, use_checkpoint=False)
    assert replayed_state(store, use_checkpoint=False) == state_of(events)


def test_an_empty_checkpoint_round_trips(store: EventStore) -> None:
    store.write_checkpoint(Checkpoint(revision=0))
    checkpoint = store.load_checkpoint()
    assert checkpoint is not None and checkpoint.revision == 0 and checkpoint.resources == ()


def test_prune_checkpoints_keeps_the_newest_valid(store: EventStore) -> None:
    events, _ = history_of_three(store)
    for revision in range(1, 8):
        store.write_checkpoint(
            Checkpoint(revision=revision, resources=tuple(state_of(events[:revision]).values()))
        )
    assert store.prune_checkpoints(keep=3) == 4
    assert [c.revision for c in store.checkpoints()] == [7, 6, 5]
    assert store.prune_checkpoints(keep=3) == 0
    assert store.event_count() == 7  # events are never deleted
    store.vacuum()
    assert store.integrity_check() == "ok"
    assert list(store.read_events()) == events


def test_integrity_check_of_a_healthy_store(store: EventStore) -> None:
    history_of_three(store)
    assert store.integrity_check() == "ok"


# ============================================================================================
# Every store: damaged checkpoints, newer schema, old payloads (changed with raw SQL); SQLite: bad files
# ============================================================================================


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "lea.db"


class Db:
    """One implementation's database for the tests below: open a store or a Backend on it, and change
    it behind the store's back with raw SQL (``?`` placeholders, the same statements for both)."""

    def __init__(self, data_dir: Path, target: PostgresTarget | None = None) -> None:
        self.data_dir, self.target = data_dir, target
        self.path = data_dir / "lea.db"
        self.name = target.url if target is not None else str(self.path)

    def open(self, *, read_only: bool = False, durability: Durability = "off") -> EventStore:
        if self.target is not None:
            return PostgresEventStore(self.target, durability=durability, read_only=read_only)
        return SqliteEventStore(self.path, durability=durability, read_only=read_only)

    def backend(self, **settings: Any) -> Backend:
        return Backend(self.data_dir, store=self.target, durability="off", **settings)

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.target is not None:
            with psycopg.connect(self.target.conninfo(), autocommit=True) as pg:
                cursor = pg.execute(sql.replace("?", "%s"), args)
                return cursor.fetchall() if cursor.description else []
        conn = sqlite3.connect(self.path)
        try:
            result = conn.execute(sql, args).fetchall()
            conn.commit()
            return result
        finally:
            conn.close()

    def contents(self) -> object:
        """Everything stored, to show that a refusal changed nothing."""
        if self.target is None:
            return self.path.read_bytes()
        return {t: sorted(map(repr, self.rows(f"SELECT * FROM {t}"))) for t in ("events", "checkpoints", "meta")}


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, data_dir: Path) -> Db:
    return Db(data_dir, request.getfixturevalue("pg_target") if request.param == "postgresql" else None)


def raw(db: Db, sql: str, args: tuple[Any, ...] = ()) -> None:
    db.rows(sql, args)


def sqlite_with_checkpoints(db: Db, revisions: tuple[int, ...] = (3, 5)) -> list[Event]:
    store = db.open()
    try:
        events, _ = history_of_three(store)
        for revision in revisions:
            store.write_checkpoint(
                Checkpoint(revision=revision, resources=tuple(state_of(events[:revision]).values()))
            )
    finally:
        store.close()
    return events


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE checkpoints SET payload = replace(payload, 'bench', 'bunch') WHERE revision = 5",
        "UPDATE checkpoints SET payload = substr(payload, 1, 20) WHERE revision = 5",
        "UPDATE checkpoints SET checksum = 'deadbeef' WHERE revision = 5",
        "UPDATE checkpoints SET payload = NULL WHERE revision = 5",
    ],
    ids=["payload-edited", "payload-truncated", "checksum", "payload-null"],
)
def test_a_damaged_checkpoint_is_skipped_for_an_older_one(db: Db, damage: str) -> None:
    events = sqlite_with_checkpoints(db)
    raw(db, damage)
    store = db.open()
    try:
        checkpoint = store.load_checkpoint()
        assert checkpoint is not None and checkpoint.revision == 3
        assert {(r.kind, r.id): r for r in checkpoint.resources} == state_of(events[:3])
        assert [(c.revision, c.valid) for c in store.checkpoints()] == [(5, False), (3, True)]
        assert replayed_state(store, use_checkpoint=True) == state_of(events)
        report = admin.verify(store)
        assert report.ok and report.checkpoint_revision == 3
    finally:
        store.close()


def test_when_every_checkpoint_is_damaged_restore_replays_everything(db: Db) -> None:
    events = sqlite_with_checkpoints(db)
    raw(db, "UPDATE checkpoints SET checksum = 'x' || checksum")
    store = db.open()
    try:
        assert store.load_checkpoint() is None
        assert replayed_state(store, use_checkpoint=True) == state_of(events)
    finally:
        store.close()
    backend = db.backend()
    try:
        restored = {
            (r.kind, r.id): r for r in backend.manager.fetch_snapshot(kinds=list(ResourceKind)).resources
        }
        assert restored == state_of(events)
        assert backend.manager.revision >= 7
    finally:
        backend.close()


def test_backend_restores_past_a_damaged_newest_checkpoint(db: Db) -> None:
    events = sqlite_with_checkpoints(db, revisions=(2, 6))
    raw(db, "UPDATE checkpoints SET payload = replace(payload, 'lab', 'LAB') WHERE revision = 6")
    backend = db.backend()
    try:
        restored = {(r.kind, r.id): r for r in backend.manager.fetch_snapshot().resources}
        assert restored == state_of(events)
    finally:
        backend.close()


def test_prune_drops_damaged_checkpoints_and_keeps_n_valid(db: Db) -> None:
    sqlite_with_checkpoints(db, revisions=(1, 2, 3, 4, 5))
    raw(db, "UPDATE checkpoints SET checksum = 'bad' WHERE revision IN (5, 2)")
    store = db.open()
    try:
        assert store.prune_checkpoints(keep=2) == 3
        assert [(c.revision, c.valid) for c in store.checkpoints()] == [(4, True), (3, True)]
    finally:
        store.close()


def test_a_database_from_a_newer_schema_is_refused(db: Db) -> None:
    sqlite_with_checkpoints(db)
    raw(db, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    before = db.contents()
    with pytest.raises(SchemaTooNew) as info:
        db.open(durability="full")
    message = info.value.message
    assert "99" in message and "newer" in message and str(SCHEMA_VERSION) in message
    assert db.name in message
    assert info.value.code == "schema_too_new"
    with pytest.raises(SchemaTooNew):
        db.open(read_only=True)
    # Through the Backend too, and the data directory is not left locked by the failed attempt.
    for _ in range(2):
        with pytest.raises(SchemaTooNew):
            db.backend()
    assert db.contents() == before


def test_a_checkpoint_from_a_newer_schema_is_refused(db: Db) -> None:
    sqlite_with_checkpoints(db)
    raw(db, "UPDATE checkpoints SET schema_version = 99 WHERE revision = 5")
    store = db.open()
    try:
        with pytest.raises(SchemaTooNew):
            store.load_checkpoint()
    finally:
        store.close()


def _siblings(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()}


@pytest.mark.parametrize(
    "content",
    [
        b"hello, this is a text file and not a database\n" * 50,
        b"\x00\x01\x02" * 2000,
        b"SQLite format 2\x00" + b"x" * 100,
    ],
    ids=["text", "binary", "almost-sqlite"],
)
def test_a_non_sqlite_file_is_refused_and_left_byte_identical(db_path: Path, content: bytes) -> None:
    db_path.write_bytes(content)
    before = _siblings(db_path)
    with pytest.raises(DataDirError) as info:
        SqliteEventStore(db_path)
    assert "not an SQLite database" in info.value.message and str(db_path) in info.value.message
    assert db_path.read_bytes() == content
    assert _siblings(db_path) == before  # no -wal / -shm / journal left behind
    with pytest.raises(DataDirError):
        Backend(db_path.parent, durability="off")
    assert db_path.read_bytes() == content


def test_a_foreign_sqlite_database_is_refused_and_left_byte_identical(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('ada', '123')")
    conn.commit()
    conn.close()
    before_bytes, before_files = db_path.read_bytes(), _siblings(db_path)
    with pytest.raises(DataDirError) as info:
        SqliteEventStore(db_path)
    assert "another program" in info.value.message
    assert db_path.read_bytes() == before_bytes
    assert _siblings(db_path) == before_files
    with pytest.raises(DataDirError):
        Backend(db_path.parent, durability="off")
    assert db_path.read_bytes() == before_bytes
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("SELECT name FROM contacts").fetchall() == [("ada",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    finally:
        conn.close()


def test_a_truncated_database_is_refused_clearly(db_path: Path) -> None:
    sqlite_with_checkpoints(Db(db_path.parent))
    data = db_path.read_bytes()
    db_path.write_bytes(data[:100])  # a valid header, nothing behind it
    with pytest.raises(DataDirError) as info:
        SqliteEventStore(db_path)
    assert str(db_path) in info.value.message
    assert db_path.read_bytes() == data[:100]


def test_an_empty_database_file_is_refused_not_recreated(db_path: Path) -> None:
    db_path.write_bytes(b"")  # what a failed copy or a full disk may leave: SQLite would start afresh in it
    for read_only in (False, True):
        with pytest.raises(DataDirError) as info:
            SqliteEventStore(db_path, read_only=read_only)
        assert f"{db_path} is empty (0 bytes)" in info.value.message
    with pytest.raises(DataDirError, match="is empty"):
        Backend(db_path.parent, durability="off")
    assert db_path.read_bytes() == b""
    assert _siblings(db_path) == {"lea.db", "lea.lock", "logs"}  # no -wal / -shm


def test_a_new_database_is_never_seen_empty_by_another_opener(tmp_path: Path) -> None:
    """Several processes may create the same new lea.db at once (``token create`` x3): all succeed."""
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(2):
        path = tmp_path / f"race-{attempt}" / "lea.db"
        path.parent.mkdir()
        with ThreadPoolExecutor(8) as pool:
            stores = list(pool.map(lambda p: SqliteEventStore(p, durability="off"), [path] * 8))
        for store in stores:
            store.close()
        assert "lea.db" in _siblings(path)
        assert not [name for name in _siblings(path) if name.endswith(".new")]  # no temporary file left
        reader = SqliteEventStore(path, read_only=True)
        try:
            assert reader.event_count() == 0 and reader.get_meta("schema_version") == str(SCHEMA_VERSION)
        finally:
            reader.close()


def test_a_damaged_meta_value_is_refused_clearly(db: Db) -> None:
    sqlite_with_checkpoints(db)
    raw(db, "UPDATE meta SET value = '2.5' WHERE key = 'schema_version'")
    for read_only in (False, True):
        with pytest.raises(DataDirError) as info:
            db.open(read_only=read_only)
        assert info.value.message.startswith(f"{db.name} is damaged: its meta schema_version is '2.5'")


# -- upcasting a real v1 payload -------------------------------------------------------------

V1_PEER_ID = "6f2c8a4e-3b1d-4c5e-9f7a-0a1b2c3d4e5f"
V1_ETH_ID = "11111111-2222-4333-8444-555555555555"
V1_CAN_ID = "66666666-7777-4888-9999-aaaaaaaaaaaa"
V1_DEV_A = "0b5d7e2a-1c3f-4a6b-8d9e-f01234567890"
V1_DEV_B = "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

#: A peer exactly as schema v1 stored it: interfaces and bridge under ``network``, no ``demo``.
V1_PEER_PAYLOAD = (
    '{"kind": "peer", "id": "6f2c8a4e-3b1d-4c5e-9f7a-0a1b2c3d4e5f", "version": 2, '
    '"name": "bench-legacy", "location": "Hall 7", '
    '"network": {"interfaces": ['
    '{"id": "11111111-2222-4333-8444-555555555555", "name": "eth0", "configuration": {"type": "ethernet"}}, '
    '{"id": "66666666-7777-4888-9999-aaaaaaaaaaaa", "name": "can0", '
    '"configuration": {"type": "can", "bitrate": 500000, "sample_point": 0.875, "fd": false}}], '
    '"bridge_name": "br-legacy"}, '
    '"devices": ['
    '{"id": "0b5d7e2a-1c3f-4a6b-8d9e-f01234567890", "name": "door-ecu", "description": "Door module", '
    '"interface": "11111111-2222-4333-8444-555555555555", "tags": ["body", "v1"]}, '
    '{"id": "9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "name": "brake-ecu", "description": "", '
    '"interface": "66666666-7777-4888-9999-aaaaaaaaaaaa", "tags": []}]}'
)


def expected_v1_peer() -> PeerDescriptor:
    return PeerDescriptor(
        id=uuid.UUID(V1_PEER_ID),
        version=2,
        name="bench-legacy",
        location="Hall 7",
        demo=False,
        interfaces=(
            NetworkInterface(id=uuid.UUID(V1_ETH_ID), name="eth0", configuration=EthernetConfiguration()),
            NetworkInterface(
                id=uuid.UUID(V1_CAN_ID),
                name="can0",
                configuration=CanConfiguration(bitrate=500_000, sample_point=0.875),
            ),
        ),
        bridge_name="br-legacy",
        devices=(
            Device(
                id=uuid.UUID(V1_DEV_A),
                name="door-ecu",
                description="Door module",
                interface=uuid.UUID(V1_ETH_ID),
                tags=("body", "v1"),
            ),
            Device(id=uuid.UUID(V1_DEV_B), name="brake-ecu", interface=uuid.UUID(V1_CAN_ID)),
        ),
    )


def insert_v1_event(
    db: Db, revision: int, payload: str | None = V1_PEER_PAYLOAD, type: str = "updated", schema_version: int = 1
) -> None:
    raw(
        db,
        "INSERT INTO events (revision, epoch, tx, kind, resource_id, type, payload, schema_version, actor, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            revision,
            "old-epoch",
            str(uuid.uuid4()),
            "peer",
            V1_PEER_ID,
            type,
            payload,
            schema_version,
            "legacy-user",
            "2023-06-01T10:00:00+00:00",
        ),
    )


def new_empty_db(db: Db) -> None:
    db.open().close()


def test_v1_payload_is_upcast_on_read(db: Db) -> None:
    assert json.loads(V1_PEER_PAYLOAD)["network"]["bridge_name"] == "br-legacy"  # really the v1 shape
    new_empty_db(db)
    insert_v1_event(db, 1)
    store = db.open()
    try:
        (stored,) = list(store.read_events())
        assert stored.resource == expected_v1_peer()
        assert stored.actor == "legacy-user" and stored.at == datetime(2023, 6, 1, 10, tzinfo=UTC)
        (change,) = list(store.replay())
        assert change.resource == expected_v1_peer() and change.id == uuid.UUID(V1_PEER_ID)
        assert list(store.read_events(kind=ResourceKind.PEER, resource_id=uuid.UUID(V1_PEER_ID))) == [stored]
    finally:
        store.close()
    # upcast on read, never rewritten in place
    assert db.rows("SELECT payload, schema_version FROM events") == [(V1_PEER_PAYLOAD, 1)]


def test_a_v2_payload_that_breaks_todays_text_and_range_rules_still_loads_repaired(db: Db) -> None:
    # Written before names refused control characters and bitrates had a 32-bit cap (schema v2).
    v2 = json.loads(V1_PEER_PAYLOAD)
    network = v2.pop("network")
    v2.update(interfaces=network["interfaces"], bridge_name=network["bridge_name"], demo=False)
    v2["location"] = "Hall 7\nbench-fake  online"
    v2["devices"][0]["tags"] = ["body", "\u202eevil"]
    v2["interfaces"][1]["configuration"]["bitrate"] = 2**40
    payload = json.dumps(v2)
    new_empty_db(db)
    insert_v1_event(db, 1, payload, schema_version=2)
    store = db.open()
    try:
        (change,) = list(store.replay())
        peer = change.resource
        assert isinstance(peer, PeerDescriptor)
        assert peer.location == "Hall 7\ufffdbench-fake  online"
        assert peer.devices[0].tags == ("body", "\ufffdevil")
        configuration = peer.interfaces[1].configuration
        assert isinstance(configuration, CanConfiguration) and configuration.bitrate == MAX_BITRATE
    finally:
        store.close()
    # repaired on read, never rewritten in place
    assert db.rows("SELECT payload, schema_version FROM events") == [(payload, 2)]


def test_backend_restores_v1_events_as_current_models(db: Db) -> None:
    new_empty_db(db)
    insert_v1_event(db, 1)
    backend = db.backend().start()
    try:
        assert backend.manager.get(ResourceKind.PEER, uuid.UUID(V1_PEER_ID)) == expected_v1_peer()
        # New writes on top of the old history: stored as the current schema, history mixes both.
        updated = expected_v1_peer().model_copy(update={"location": "Hall 8"})
        result = actions.store_peer_descriptor(backend.manager, updated, "alice", expected_version=2)
        assert result.version == 3 and result.revision > 1
        history = list(backend.store.read_events(kind=ResourceKind.PEER, resource_id=uuid.UUID(V1_PEER_ID)))
        assert [e.resource.location for e in history if isinstance(e.resource, PeerDescriptor)] == ["Hall 7", "Hall 8"]
    finally:
        backend.close()
    store = db.open(read_only=True)
    try:
        assert admin.verify(store).ok
        assert replayed_state(store, use_checkpoint=False) == replayed_state(store, use_checkpoint=True)
    finally:
        store.close()


def test_v1_checkpoint_payload_is_upcast(db: Db) -> None:
    new_empty_db(db)
    payload = "[" + V1_PEER_PAYLOAD + "]"
    raw(
        db,
        "INSERT INTO checkpoints (revision, schema_version, checksum, created_at, payload) VALUES (?, ?, ?, ?, ?)",
        (4, 1, hashlib.sha256(payload.encode("utf-8")).hexdigest(), "2023-06-01T10:00:00+00:00", payload),
    )
    store = db.open()
    try:
        checkpoint = store.load_checkpoint()
        assert checkpoint is not None and checkpoint.revision == 4
        assert checkpoint.schema_version == SCHEMA_VERSION
        assert checkpoint.resources == (expected_v1_peer(),)
        assert [(c.revision, c.schema_version, c.valid) for c in store.checkpoints()] == [(4, 1, True)]
    finally:
        store.close()
    # A v1 event after the v1 checkpoint, then restore through the Backend.
    insert_v1_event(
        db, 5, V1_PEER_PAYLOAD.replace('"Hall 7"', '"Hall 9"').replace('"version": 2', '"version": 3')
    )
    backend = db.backend()
    try:
        restored = backend.manager.get(ResourceKind.PEER, uuid.UUID(V1_PEER_ID))
        assert restored == expected_v1_peer().model_copy(update={"location": "Hall 9", "version": 3})
        assert backend.manager.revision >= 5
    finally:
        backend.close()


# ============================================================================================
# Revisions never repeat across restarts
# ============================================================================================


def _run_once(db: Db, run: int, clean: bool) -> list[int]:
    """One process lifetime: persisted writes, then volatile-only writes last; every revision seen."""
    backend = db.backend(revision_block=3).start()
    seen: list[int] = []
    sub = backend.manager.subscribe(kinds=[ResourceKind.PEER, ResourceKind.PEER_CONNECTION_STATE])
    peer = make_peer(f"bench-run-{run}")
    seen.append(actions.store_peer_descriptor(backend.manager, peer, "alice").revision)
    seen.append(
        actions.store_peer_descriptor(
            backend.manager, peer.model_copy(update={"location": "x"}), "a"
        ).revision
    )
    for i in range(run + 4):  # more volatile writes than a reserved block: reservation must follow them
        online = Online(remote_host=f"10.0.0.{i}", since=datetime.now(UTC))
        seen.append(actions.set_peer_connection_state(backend.manager, peer.id, online, "broker").revision)
    delivered = [e.revision for item in sub.drain() if isinstance(item, EventBatch) for e in item.events]
    assert delivered == seen
    if clean:
        backend.close()
    else:  # as if the process died: no final checkpoint, nothing flushed on the way out
        backend.operator.stop()
        backend.brokers.stop()
        backend.manager.close(checkpoint=False)
        backend.store.close()
        if backend.writer is not None:  # PostgreSQL: the dead process's session ends, and its write lock
            backend.writer.release()
        backend._lock.release()
    return seen


def test_revisions_never_repeat_across_restarts(db: Db) -> None:
    every: list[int] = []
    for run, clean in enumerate([True, True, False, True, False, False, True]):
        seen = _run_once(db, run, clean)
        assert seen == sorted(set(seen)), f"run {run}: revisions not strictly increasing: {seen}"
        if every:
            assert seen[0] > max(every), f"run {run} started at {seen[0]}, but {max(every)} was seen before"
        every.extend(seen)
    assert every == sorted(set(every))
    store = db.open(read_only=True)
    try:
        stored = [e.revision for e in store.read_events()]
        assert stored == sorted(set(stored)) and set(stored) <= set(every)
        assert len(stored) == 2 * 7  # only the persisted writes were stored
        assert store.reserved_revision() >= max(every)
    finally:
        store.close()


# ============================================================================================
# Settings: defaults, lea.toml, command-line overrides
# ============================================================================================


def test_settings_defaults(data_dir: Path) -> None:
    settings = load_settings(data_dir)
    assert settings == Settings()
    assert settings.durability == "full" and settings.checkpoint_interval == 1000


@pytest.mark.parametrize("table", ["", "[backend]\n"])
def test_lea_toml_overrides_the_defaults(data_dir: Path, table: str) -> None:
    (data_dir / "lea.toml").write_text(
        f'{table}durability = "normal"\ncheckpoint_interval = 7\nwrite_timeout = 2.5\n', encoding="utf-8"
    )
    settings = load_settings(data_dir)
    assert settings.durability == "normal"
    assert settings.checkpoint_interval == 7 and settings.write_timeout == 2.5
    assert settings.ring_size == Settings().ring_size
    # Command-line options win over the file.
    assert load_settings(data_dir, checkpoint_interval=9, durability=None).checkpoint_interval == 9
    backend = Backend(data_dir, durability="off")
    try:
        assert backend.settings.checkpoint_interval == 7 and backend.settings.durability == "off"
    finally:
        backend.close()


def test_the_checkpoint_interval_from_lea_toml_is_used(data_dir: Path) -> None:
    (data_dir / "lea.toml").write_text(
        "[backend]\ncheckpoint_interval = 3\ndurability = 'off'\n", encoding="utf-8"
    )
    backend = Backend(data_dir).start()
    try:
        for i in range(7):
            actions.store_peer_descriptor(backend.manager, make_peer(f"bench-{i:02}"), "alice")
        assert [c.revision for c in backend.store.checkpoints()][:2] == [6, 3]
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("text", "field", "rule"),
    [
        ("checkpoint_interval = 0", "checkpoint_interval", ">= 1"),
        ('durability = "fast"', "durability", "'full', 'normal' or 'off'"),
        ('checkpoint_interval = "often"', "checkpoint_interval", "integer"),
        ("[backend]\nwrite_timeout = -1", "write_timeout", "> 0"),
        ("checkpoint_intervall = 5", "checkpoint_intervall", "not a known"),
    ],
)
def test_a_bad_value_in_lea_toml_is_a_clear_error(data_dir: Path, text: str, field: str, rule: str) -> None:
    (data_dir / "lea.toml").write_text(text + "\n", encoding="utf-8")
    with pytest.raises(InvalidResource) as info:
        load_settings(data_dir)
    message = info.value.message
    assert field in message and rule in message and "lea.toml" in message, message
    with pytest.raises(InvalidResource):
        Backend(data_dir)
    assert not (data_dir / "lea.db").exists()


def test_unreadable_lea_toml_is_a_clear_error(data_dir: Path) -> None:
    (data_dir / "lea.toml").write_text("durability = \n", encoding="utf-8")
    with pytest.raises(DataDirError) as info:
        load_settings(data_dir)
    assert "lea.toml" in info.value.message


def test_reopening_an_existing_database_needs_no_sqlite_utils(tmp_path: Path) -> None:
    """sqlite-utils only creates the tables of a new file; every later start goes without its import."""
    import subprocess
    import sys

    db = tmp_path / "lea.db"
    SqliteEventStore(db).close()
    code = (
        "import sys\n"
        "from backend.storage.sqlite import SqliteEventStore\n"
        f"SqliteEventStore({str(db)!r}).close()\n"
        "print('sqlite_utils' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_missing_table_or_index_is_created_again_on_open(db_path: Path) -> None:
    SqliteEventStore(db_path).close()
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        conn.execute("DROP INDEX idx_events_kind_resource_id")
        conn.execute("DROP TABLE checkpoints")
        conn.commit()
    store = SqliteEventStore(db_path)
    store.write_checkpoint(Checkpoint(revision=0, resources=()))
    store.close()
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"events", "checkpoints", "meta", "idx_events_kind_resource_id"} <= names
