"""``lea-backend`` on a PostgreSQL store, for real: the admin CLI and ``serve`` in subprocesses against
the session's PostgreSQL (tests/helpers/postgres.py), the password from the environment or a file,
and the refusals (a password in the URL, a foreign database, a wrong password, nothing listening).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from backend import actions, admin
from backend.backend import Backend
from backend.storage.pg_target import PostgresTarget, redact
from backend.storage.postgres import PostgresEventStore
from resources import PeerDescriptor
from resources.errors import DataDirError, StorageFailed
from tests.helpers.factories import make_peer
from tests.helpers.postgres import LocalPostgres, free_port
from tests.helpers.server import REPO, running_server

ERROR_PREFIX = "lea-backend: error: "


def lea_backend(
    data_dir: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "backend", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO, env=environment, input=stdin,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_the_admin_cli_works_on_a_postgresql_store(
    tmp_path: Path, pg_target: PostgresTarget, postgres_server: LocalPostgres
) -> None:
    data_dir = tmp_path / "server"
    url = pg_target.url
    password = {"PGPASSWORD": postgres_server.password}  # libpq's own variable
    file = ["--store-password-file", str(postgres_server.password_file)]
    peer = make_peer("bench-pg")
    (tmp_path / "peer.json").write_text(peer.model_dump_json(), encoding="utf-8")

    applied = ok(lea_backend(data_dir, "--store", url, "apply", str(tmp_path / "peer.json"), env=password))
    assert "created peer bench-pg version 1" in applied
    assert "bench-pg" in ok(lea_backend(data_dir, "list", "peer", "--store", url, env=password))
    events = ok(lea_backend(data_dir, "--store", url, *file, "events", "--json")).splitlines()
    assert [json.loads(line)["resource"]["name"] for line in events] == ["bench-pg"]
    assert "bench-pg" in ok(lea_backend(data_dir, "--store", url, *file, "history", "peer", str(peer.id)))
    assert "checkpoint written at revision" in ok(lea_backend(data_dir, "--store", url, *file, "snapshot"))
    assert "verify: ok: the replay from zero matches the checkpoint" in ok(
        lea_backend(data_dir, "--store", url, *file, "verify")
    )
    compact = ok(lea_backend(data_dir, "--store", url, *file, "compact", "--keep", "1"))
    assert "kept 1 checkpoint" in compact and "no event was deleted" in compact
    token = ok(lea_backend(data_dir, "token", "create", "--role", "admin", "--name", "ada", "--store", url, *file))
    assert token.startswith("lea_")
    assert "ada" in ok(lea_backend(data_dir, "token", "list", "--store", url, env=password))
    # Everything is in PostgreSQL; the data directory holds only the lock and the logs.
    assert not (data_dir / "lea.db").exists()
    with PostgresEventStore(pg_target, read_only=True) as store:
        assert [e.resource.name for e in store.read_events() if e.resource is not None] == ["bench-pg"]  # type: ignore[union-attr]
    with psycopg.connect(pg_target.conninfo()) as conn:
        assert conn.execute("SELECT name, role FROM tokens").fetchall() == [("ada", "admin")]
    ok(lea_backend(data_dir, "token", "revoke", "ada", "--store", url, *file))
    assert "ada" not in ok(lea_backend(data_dir, "token", "list", "--store", url, *file))


def test_lea_toml_names_the_store_and_its_password_file(
    tmp_path: Path, pg_target: PostgresTarget, postgres_server: LocalPostgres
) -> None:
    data_dir = tmp_path / "server"
    data_dir.mkdir()
    (data_dir / "pg-password").write_text(postgres_server.password + "\n", encoding="utf-8")
    (data_dir / "pg-password").chmod(0o600)
    (data_dir / "lea.toml").write_text(
        f'[backend]\nstore = "{pg_target.url}"\nstore_password_file = "pg-password"\n', encoding="utf-8"
    )
    peer = make_peer("bench-toml")
    (tmp_path / "peer.json").write_text(peer.model_dump_json(), encoding="utf-8")
    ok(lea_backend(data_dir, "apply", str(tmp_path / "peer.json")))
    assert "bench-toml" in ok(lea_backend(data_dir, "list", "peer"))
    assert not (data_dir / "lea.db").exists()


def test_serve_on_a_postgresql_store(tmp_path: Path, pg_target: PostgresTarget, postgres_server: LocalPostgres) -> None:
    data_dir = tmp_path / "server"
    args = ["--store", pg_target.url, "--store-password-file", str(postgres_server.password_file)]
    token = ok(lea_backend(data_dir, "token", "create", "--role", "editor", "--name", "eve", *args)).strip()
    peer = make_peer("bench-served")
    with running_server(data_dir, extra_args=args) as server:
        assert pg_target.url in server.output()[0]  # "serving postgresql://... on http://..."
        with server.client(token) as client:
            response = client.put(f"/api/v1/peer/{peer.id}", json=peer.model_dump(mode="json"))
            assert response.status_code in (200, 201), response.text
            assert client.get("/api/v1/whoami").json()["name"] == "eve"
        with server.client("lea_not-a-token") as client:
            assert client.get("/api/v1/peer").status_code == 401
    with PostgresEventStore(pg_target, read_only=True) as store:
        assert [e.resource.name for e in store.read_events() if e.resource is not None] == ["bench-served"]  # type: ignore[union-attr]
        assert store.load_checkpoint() is not None  # the final checkpoint of a clean stop
    assert not (data_dir / "lea.db").exists()


def test_a_password_in_the_url_is_refused_and_never_echoed(tmp_path: Path, postgres_server: LocalPostgres) -> None:
    url = f"postgresql://lea:{postgres_server.password}@127.0.0.1:{postgres_server.port}/postgres"
    for command in (["events"], ["serve", "--port", "0"], ["token", "list"]):
        result = lea_backend(tmp_path / "d", "--store", url, *command)
        line = one_error(result, "holds a password", "PGPASSWORD", "never on the command line")
        assert postgres_server.password not in result.stderr + result.stdout
        assert "lea:***@" in line
    query = f"postgresql://lea@127.0.0.1:{postgres_server.port}/postgres?password={postgres_server.password}"
    one_error(lea_backend(tmp_path / "d", "--store", query, "events"), "holds a password")
    assert not (tmp_path / "d").exists()  # refused before anything was created


def test_refusals_name_the_problem(tmp_path: Path, postgres_server: LocalPostgres, pg_target: PostgresTarget) -> None:
    file = ["--store-password-file", str(postgres_server.password_file)]
    # A database of another program: refused, left untouched.
    with psycopg.connect(pg_target.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE contacts (name text)")
        conn.execute("INSERT INTO contacts VALUES ('ada')")
    one_error(lea_backend(tmp_path / "d", "--store", pg_target.url, *file, "apply", "-", stdin="[]"),
              "holds no documents")  # bad input is refused before the store is opened
    peer = make_peer("bench-x")
    (tmp_path / "peer.json").write_text(peer.model_dump_json(), encoding="utf-8")
    one_error(
        lea_backend(tmp_path / "d", "--store", pg_target.url, *file, "apply", str(tmp_path / "peer.json")),
        "holds tables of another program (contacts)", "left untouched",
    )
    with psycopg.connect(pg_target.conninfo()) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        assert tables == [("contacts",)]
    # A wrong password; nothing listening; a missing password file; not a PostgreSQL URL.
    one_error(
        lea_backend(tmp_path / "d", "--store", pg_target.url, "events", env={"PGPASSWORD": "wrong"}),
        pg_target.url, "password authentication failed",
    )
    closed = f"postgresql://lea@127.0.0.1:{free_port()}/lea"
    one_error(lea_backend(tmp_path / "d", "--store", closed, "events", env={"PGPASSWORD": "x"}), closed, "refused")
    one_error(
        lea_backend(
            tmp_path / "d", "--store", pg_target.url, "--store-password-file", str(tmp_path / "nope"), "events"
        ),
        "password file", "does not exist",
    )
    one_error(lea_backend(tmp_path / "d", "--store", "mysql://x@h/db", "events"), "not a PostgreSQL URL")


def test_an_empty_database_holds_no_data_for_read_commands(
    tmp_path: Path, pg_target: PostgresTarget, postgres_server: LocalPostgres
) -> None:
    file = ["--store-password-file", str(postgres_server.password_file)]
    one_error(lea_backend(tmp_path / "d", "--store", pg_target.url, *file, "events"), "holds no LEA data yet")
    assert ok(lea_backend(tmp_path / "d", "--store", pg_target.url, *file, "token", "list")).split() == [
        "NAME", "ROLE", "CREATED", "PEER",
    ]
    with psycopg.connect(pg_target.conninfo()) as conn:  # reading created nothing
        query = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        assert conn.execute(query).fetchone() == (0,)


def test_target_parsing() -> None:
    with pytest.raises(DataDirError, match="holds a password"):
        PostgresTarget.parse("postgresql://u:secret@h:5432/db")
    with pytest.raises(DataDirError, match="names no database"):
        PostgresTarget.parse("postgresql://u@h:5432")
    assert redact("postgresql://u:secret@h/db?sslmode=require&password=x") == (
        "postgresql://u:***@h/db?sslmode=require&password=***"
    )
    assert PostgresTarget.parse("postgres://u@h:5/db").database == "db"


@pytest.mark.parametrize(("durability", "expected"), [("full", "on"), ("normal", "local"), ("off", "off")])
def test_durability_is_synchronous_commit(pg_target: PostgresTarget, durability: str, expected: str) -> None:
    with PostgresEventStore(pg_target, durability=durability) as store:
        with store.pool.connection() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == (expected,)
        writer = store._writer()  # the commit path's own connection too
        assert writer.execute("SHOW synchronous_commit").fetchone() == (expected,)


def test_serve_child_refuses_a_postgresql_store(tmp_path: Path, pg_target: PostgresTarget) -> None:
    result = lea_backend(tmp_path / "d", "serve", "--child", "--store", pg_target.url, stdin="x" * 40 + "\n")
    assert result.returncode == 2
    assert "serve --child is LEA's own embedded backend on lea.db" in result.stderr
    assert not (tmp_path / "d").exists()


def test_lost_connections_fail_one_commit_then_the_store_reconnects(data_dir: Path, pg_target: PostgresTarget) -> None:
    """Every connection of the server killed (as a PostgreSQL restart does): the commit under way fails
    with storage_failed and nothing of it is stored; the next write and every read reconnect."""
    backend = Backend(data_dir, store=pg_target, durability="off").start()
    try:
        actions.store_peer_descriptor(backend.manager, make_peer("bench-a"), "tester")
        with psycopg.connect(pg_target.conninfo(), autocommit=True) as admin_conn:
            killed = admin_conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert killed is not None and killed[0] >= 2  # the commit connection and the pool's
        with pytest.raises(StorageFailed):
            actions.store_peer_descriptor(backend.manager, make_peer("bench-b"), "tester")
        # Writes go on once the server has its write lock back (backend/writer_lock.py: fenced until
        # then, within a second); each refusal meanwhile is storage_failed and stores nothing.
        deadline = time.monotonic() + 10
        while True:
            try:
                actions.store_peer_descriptor(backend.manager, make_peer("bench-c"), "tester")
                break
            except StorageFailed:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        stored = [e.resource.name for e in backend.store.read_events() if isinstance(e.resource, PeerDescriptor)]
        assert stored == ["bench-a", "bench-c"]
    finally:
        backend.close()
    with PostgresEventStore(pg_target, read_only=True) as store:
        assert admin.verify(store).ok
