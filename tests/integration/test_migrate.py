"""``lea-backend migrate``: a data directory into an empty PostgreSQL database and back, all or nothing,
verified on both sides; refusals change nothing."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from backend import actions, migrate
from backend.backend import Backend
from backend.migrate import Side
from backend.storage.base import EventStore
from backend.storage.pg_target import PostgresTarget
from backend.storage.postgres import PostgresEventStore
from backend.tokens import PostgresTokenStore, Role, TokenStore
from resources import ResourceKind
from resources.errors import DataDirLocked, InvalidRequest
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.postgres import LocalPostgres
from tests.integration.test_postgres_store import lea_backend, ok, one_error

PERSISTED = [ResourceKind.PEER, ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT]


def fill(backend: Backend) -> None:
    """Peers, a cluster, a deployment, an update, a delete; a checkpoint in the middle."""
    manager = backend.manager
    a, b, c = make_peer("bench-a"), make_peer("bench-b", can=True), make_peer("bench-c")
    for peer in (a, b, c):
        actions.store_peer_descriptor(manager, peer, "alice")
    cluster = make_cluster("cluster-ab", a, b)
    actions.store_cluster_descriptor(manager, cluster, "alice")
    manager.write_checkpoint()
    actions.store_peer_descriptor(manager, c.model_copy(update={"location": "hall 2"}), "bob", expected_version=1)
    actions.store_cluster_deployment(manager, cluster.id, "bob")
    actions.delete_peer_descriptor(manager, c.id, "bob")


@pytest.fixture
def sqlite_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "sqlite"
    with Backend(data_dir, durability="off", checkpoint_interval=4).start() as backend:
        fill(backend)
    tokens = TokenStore(data_dir / "lea.db")
    try:
        tokens.create("ada", Role.ADMIN)
        tokens.create("bench-a-agent", Role.PEER, uuid.uuid4())
    finally:
        tokens.close()
    return data_dir


def everything(store: EventStore) -> tuple[Any, ...]:
    return (
        list(store.read_events()), store.checkpoints(), store.reserved_revision(), store.load_checkpoint(),
    )


def raw_tokens(side: Side) -> list[tuple[Any, ...]]:
    if side.target is not None:
        with psycopg.connect(side.target.conninfo()) as conn:
            return conn.execute("SELECT name, role, hash, created_at, peer_id FROM tokens ORDER BY name").fetchall()
    assert side.data_dir is not None
    conn2 = sqlite3.connect(side.data_dir / "lea.db")
    try:
        return conn2.execute("SELECT name, role, hash, created_at, peer_id FROM tokens ORDER BY name").fetchall()
    finally:
        conn2.close()


def contents(side: Side) -> tuple[Any, ...]:
    store = side.open()
    try:
        return everything(store)
    finally:
        store.close()


def snapshot_of(data_dir: Path, target: PostgresTarget | None) -> dict[Any, Any]:
    with Backend(data_dir, store=target, durability="off") as backend:
        return {(r.kind, r.id): r for r in backend.manager.fetch_snapshot(kinds=PERSISTED).resources}


def test_a_data_directory_migrates_into_postgresql_and_back(
    tmp_path: Path, sqlite_dir: Path, pg_target: PostgresTarget
) -> None:
    source, target = Side(data_dir=sqlite_dir), Side(target=pg_target)
    before = (sqlite_dir / "lea.db").read_bytes()
    report = migrate.migrate(source, target)
    assert report.ok, (report.differences, report.source.verify.mismatches, report.target.verify.mismatches)
    assert report.copied.events == report.source.events == 7 and report.copied.tokens == 2
    assert report.copied.checkpoints >= 2
    assert (sqlite_dir / "lea.db").read_bytes() == before  # the source is only read
    assert contents(source) == contents(target)
    assert raw_tokens(source) == raw_tokens(target)  # hashes copied: the same tokens work
    tokens = PostgresTokenStore(pg_target)
    try:
        assert [t.name for t in tokens.list()] == ["ada", "bench-a-agent"]
    finally:
        tokens.close()
    expected = snapshot_of(sqlite_dir, None)
    assert snapshot_of(tmp_path / "pg-server", pg_target) == expected
    # And back, into a new data directory.
    back = Side(data_dir=tmp_path / "back")
    report = migrate.migrate(target, back)
    assert report.ok and report.copied.events == 7  # a restart writes checkpoints, no event
    assert contents(target) == contents(back)
    assert raw_tokens(back) == raw_tokens(source)
    assert snapshot_of(tmp_path / "back", None) == expected
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["lea.db", "lea.lock", "logs"]


def test_the_cli_migrates_and_verifies_both(
    tmp_path: Path, sqlite_dir: Path, pg_target: PostgresTarget, postgres_server: LocalPostgres
) -> None:
    password = ["--to-password-file", str(postgres_server.password_file)]
    out = ok(lea_backend(sqlite_dir, "migrate", "--to", pg_target.url, *password))
    assert "migrate: copied 7 events" in out and "2 tokens" in out
    assert f"verify {sqlite_dir}: ok" in out and f"verify {pg_target.url}: ok" in out
    assert out.rstrip().endswith(f"as {sqlite_dir}")
    # Again: the target is no longer empty; refused, nothing changed.
    with PostgresEventStore(pg_target, read_only=True) as store:
        before = everything(store)
    again = lea_backend(sqlite_dir, "migrate", "--to", pg_target.url, *password)
    one_error(again, "already holds LEA data", "7 events")
    with PostgresEventStore(pg_target, read_only=True) as store:
        assert everything(store) == before
    # Back, with the environment's password, into a directory named by --to.
    out = ok(lea_backend(
        tmp_path, "migrate", "--from", pg_target.url, "--to", str(tmp_path / "back"),
        env={"PGPASSWORD": postgres_server.password},
    ))
    assert "migrate: ok" in out
    assert "verify: ok" in ok(lea_backend(tmp_path / "back", "verify"))
    # Into a data directory that has a lea.db: refused before anything is created.
    one_error(lea_backend(tmp_path, "migrate", "--from", str(sqlite_dir), "--to", str(tmp_path / "back")),
              "already holds a LEA database")
    one_error(lea_backend(tmp_path, "migrate", "--from", str(sqlite_dir), "--to", str(sqlite_dir)), "same store")
    one_error(lea_backend(tmp_path, "migrate", "--to", str(tmp_path / "x"), "--to-password-file", "f"),
              "--to-password-file is for a postgresql://")


def test_a_failed_copy_into_postgresql_leaves_it_empty(
    tmp_path: Path, sqlite_dir: Path, pg_target: PostgresTarget
) -> None:
    # A row PostgreSQL cannot hold (a NUL character in text): the COPY fails half-way through.
    conn = sqlite3.connect(sqlite_dir / "lea.db")
    conn.execute("UPDATE events SET actor = 'bo' || char(0) || 'b' WHERE revision = (SELECT max(revision) FROM events)")
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match="0x00"):
        migrate.migrate(Side(data_dir=sqlite_dir), Side(target=pg_target))
    with psycopg.connect(pg_target.conninfo()) as pg:  # the whole transaction, tables included, rolled back
        assert pg.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone() == (0,)


def test_a_failed_copy_into_a_data_directory_leaves_nothing(
    tmp_path: Path, sqlite_dir: Path, pg_target: PostgresTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert migrate.migrate(Side(data_dir=sqlite_dir), Side(target=pg_target)).ok
    real = migrate._PostgresSource.rows

    def failing(self: Any, table: str, columns: str, order: str) -> Any:
        if table == "tokens":
            raise OSError("the network went away")
        return real(self, table, columns, order)

    monkeypatch.setattr(migrate._PostgresSource, "rows", failing)
    with pytest.raises(OSError, match="network"):
        migrate.migrate(Side(target=pg_target), Side(data_dir=tmp_path / "new"))
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "lea.toml").write_text("durability = 'off'\n")
    with pytest.raises(OSError, match="network"):
        migrate.migrate(Side(target=pg_target), Side(data_dir=existing))
    assert sorted(p.name for p in existing.iterdir()) == ["lea.lock", "lea.toml", "logs"]  # no lea.db, no temporary


def test_refusals_change_nothing(tmp_path: Path, sqlite_dir: Path, pg_target: PostgresTarget) -> None:
    with psycopg.connect(pg_target.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (n int)")
    with pytest.raises(InvalidRequest, match=r"tables of another program \(invoices\)"):
        migrate.migrate(Side(data_dir=sqlite_dir), Side(target=pg_target))
    with psycopg.connect(pg_target.conninfo(), autocommit=True) as conn:
        conn.execute("DROP TABLE invoices")
    # A source in use by a running LEA: refused (stop it first), nothing copied.
    with Backend(sqlite_dir, durability="off"), pytest.raises(DataDirLocked, match="already in use"):
        migrate.migrate(Side(data_dir=sqlite_dir), Side(target=pg_target))
    with psycopg.connect(pg_target.conninfo()) as conn:
        assert conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone() == (0,)
    # An empty LEA database (a server opened it once, wrote nothing) is a fine target.
    PostgresEventStore(pg_target).close()
    assert migrate.migrate(Side(data_dir=sqlite_dir), Side(target=pg_target)).ok


def test_from_defaults_to_the_configured_store(
    tmp_path: Path, sqlite_dir: Path, pg_target: PostgresTarget, postgres_server: LocalPostgres
) -> None:
    password_file = str(postgres_server.password_file)
    ok(lea_backend(sqlite_dir, "migrate", "--to", pg_target.url, "--to-password-file", password_file))
    server_dir = tmp_path / "server"
    server_dir.mkdir()
    (server_dir / "lea.toml").write_text(f'store = "{pg_target.url}"\n', encoding="utf-8")
    env = {"PGPASSWORD": postgres_server.password}
    out = ok(lea_backend(server_dir, "migrate", "--to", str(tmp_path / "back"), env=env))
    assert f"from {pg_target.url} to {tmp_path / 'back'}" in out and "migrate: ok" in out
