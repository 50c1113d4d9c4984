"""LEA's embedded backend in tests: the real child process (``lea-backend serve --child``) that
``lea_app.connection.child`` starts, on a data directory of the test's, durability off.

``child_options(data_dir, demo=True)`` for a ``ChildConnection``; ``SharedChild`` is one child for a
test module (``wipe`` empties it between tests); ``OtherWriter`` is a second client with an editor
token of its own, for "someone else changed it" (as a server's other user would: the child's data
directory holds its tokens); ``lookup`` reads one resource of the backend itself. The process tree
checks (no orphan) use ``children_of`` and ``wait_gone``.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from uuid import UUID

import httpx

from lea_app.connection.base import Connection
from lea_app.connection.process import BackendProcess, ChildOptions
from lea_app.connection.remote import RemoteConnection
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from resources.resource import Resource
from tests.helpers.server import create_token


def child_options(data_dir: Path, *, durability: str = "off", settings: str = "", **options: object) -> ChildOptions:
    """Options for a test child: ``lea.toml`` in ``data_dir`` sets the durability (off: fast tests)
    and any other ``settings`` (TOML lines)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "lea.toml").write_text(f'durability = "{durability}"\n{settings}\n', encoding="utf-8")
    return ChildOptions(data_dir, **options)  # type: ignore[arg-type]


class OtherWriter:
    """Another user of the child, with an editor token of their own (the actor of their changes).

    Its calls block (a plain httpx client), as a write from elsewhere would be: LEA's loop does not
    run meanwhile, so LEA has not heard of the change when the call returns.
    """

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {token}"})

    def store_peer_descriptor(self, peer: PeerDescriptor) -> None:
        self.http.put(
            f"/peer/{peer.id}", content=peer.model_dump_json(), headers={"Content-Type": "application/json"}
        ).raise_for_status()

    def delete_peer_descriptor(self, peer_id: UUID) -> None:
        self.http.delete(f"/peer/{peer_id}").raise_for_status()

    def close(self) -> None:
        self.http.close()


class SharedChild:
    """One child process for a whole test module (its start-up costs ~1 s): each test connects with
    its own ``RemoteConnection`` - what ``ChildConnection`` uses inside - and ``wipe`` empties the
    backend afterwards. Loop-agnostic: start and stop it with ``asyncio.run`` outside the tests' loop."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process = BackendProcess.spawn(child_options(data_dir))
        self.info = asyncio.run(self.process.wait_ready())
        self.other_token = create_token(data_dir, "editor", "someone-else")  # for OtherWriter

    def connect(self) -> RemoteConnection:
        return RemoteConnection(self.info.url, self.process.token)

    def stop(self) -> None:
        asyncio.run(self.process.stop())


async def wipe(connection: Connection) -> None:
    """Delete every deployment, cluster and peer (in that order: each blocks the next)."""
    resources = (await connection.fetch_snapshot()).resources
    for r in resources:
        if r.kind == ResourceKind.CLUSTER_DEPLOYMENT:
            await connection.delete_cluster_deployment(r.id)
    for r in resources:
        if r.kind == ResourceKind.CLUSTER:
            await connection.delete_cluster_descriptor(r.id)
    for r in resources:
        if r.kind == ResourceKind.PEER:
            await connection.delete_peer_descriptor(r.id)


async def lookup(connection: Connection, kind: ResourceKind, resource_id: UUID) -> Resource | None:
    """The backend's own copy of one resource (from a fresh snapshot), or None."""
    snapshot = await connection.fetch_snapshot()
    for resource in snapshot.resources:
        if resource.kind == kind and resource.id == resource_id:
            return resource
    return None


def children_of(pid: int) -> list[int]:
    """The live child processes of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, timeout: float) -> float | None:
    """Seconds until ``pid`` was gone, or None if it still runs after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not alive(pid):
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def kill9(pid: int) -> None:
    os.kill(pid, 9)
