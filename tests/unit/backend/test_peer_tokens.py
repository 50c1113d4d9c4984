"""Peer tokens (backend.tokens): bound to one peer, passing no REST or watch check, and the
``peer_id`` column added to a database written by the release before it."""

from __future__ import annotations

import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.server.auth import authorise
from backend.storage.sqlite import SqliteEventStore
from backend.tokens import Role, TokenStore
from resources.errors import Forbidden, InvalidResource

GOLDEN = Path(__file__).resolve().parent / "golden" / "release_1_tokens.lea.db"
#: The admin token `lea-backend token create --role admin --name alice` printed when GOLDEN was made
#: by the release before peer tokens (its tokens table has no peer_id column).
GOLDEN_TOKEN = "lea_UIz4j97FpW_Q65zK48U2zQE4V2X9etXtOYntyWG5oNc"
PEER = uuid.UUID("0b7d1c84-4f0e-4f43-8a3a-6a5b2c9d0e11")


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[TokenStore]:
    store = TokenStore(tmp_path / "lea.db")
    yield store
    store.close()


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "lea.db"
    shutil.copyfile(GOLDEN, path)
    return path


def _columns(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[1] for row in conn.execute("PRAGMA table_info(tokens)")]
    finally:
        conn.close()


def test_a_peer_token_is_bound_to_its_peer(tokens: TokenStore) -> None:
    secret = tokens.create("bench-1", Role.PEER, PEER)
    info = tokens.authenticate(secret)
    assert info is not None and (info.role, info.peer_id) == (Role.PEER, PEER)
    assert [(t.name, t.peer_id) for t in tokens.list()] == [("bench-1", PEER)]


def test_other_tokens_have_no_peer(tokens: TokenStore) -> None:
    info = tokens.authenticate(tokens.create("erin", Role.EDITOR))
    assert info is not None and info.peer_id is None


def test_a_peer_token_needs_a_peer_and_no_other_takes_one(tokens: TokenStore) -> None:
    with pytest.raises(InvalidResource, match="bound to one peer"):
        tokens.create("bench-1", Role.PEER)
    with pytest.raises(InvalidResource, match="a viewer token takes no peer id"):
        tokens.create("vic", Role.VIEWER, PEER)
    assert tokens.list() == []


@pytest.mark.parametrize("needed", [Role.VIEWER, Role.EDITOR, Role.ADMIN, Role.PEER])
def test_the_peer_role_passes_no_check(needed: Role) -> None:
    assert not Role.PEER.allows(needed)
    assert not Role.ADMIN.allows(Role.PEER)


def test_authorise_refuses_a_peer_token_naming_the_agent_endpoint(tokens: TokenStore) -> None:
    info = tokens.authenticate(tokens.create("bench-1", Role.PEER, PEER))
    assert info is not None
    with pytest.raises(Forbidden, match=r"bench agent's token.*/api/v1/peer/connect"):
        authorise(info, Role.VIEWER)


def test_the_golden_database_is_of_the_release_before(old_db: Path) -> None:
    assert "peer_id" not in _columns(old_db)  # else this test proves nothing


def test_a_token_store_migrates_an_old_database_keeping_its_tokens(old_db: Path) -> None:
    store = TokenStore(old_db)
    try:
        alice = store.authenticate(GOLDEN_TOKEN)
        assert alice is not None and (alice.name, alice.role, alice.peer_id) == ("alice", Role.ADMIN, None)
        store.create("bench-1", Role.PEER, PEER)
    finally:
        store.close()
    assert _columns(old_db)[-1] == "peer_id"
    again = TokenStore(old_db)  # idempotent
    try:
        assert [(t.name, t.peer_id) for t in again.list()] == [("alice", None), ("bench-1", PEER)]
    finally:
        again.close()


def test_the_event_store_migrates_an_old_database(old_db: Path) -> None:
    SqliteEventStore(old_db).close()
    assert "peer_id" in _columns(old_db)


def test_a_read_only_store_reads_an_old_database_without_migrating(old_db: Path) -> None:
    store = TokenStore(old_db, read_only=True)
    try:
        assert [(t.name, t.peer_id) for t in store.list()] == [("alice", None)]
        info = store.authenticate(GOLDEN_TOKEN)
        assert info is not None and info.peer_id is None
    finally:
        store.close()
    assert "peer_id" not in _columns(old_db)
