"""LEA's embedded backend in tests: the real child process (``lea-backend serve --child``) that
``lea_app.connection.child`` starts, on a data directory of the test's, durability off.

``child_options(data_dir, demo=True)`` for a ``ChildConnection``; ``other_writer(connection, name)``
is a second client with an editor token of its own, for "someone else changed it" (as a server's
other user would: the child's data directory holds its tokens); ``lookup`` reads one resource of the
backend itself. The process tree checks (no orphan) use ``children_of`` and ``wait_gone``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from uuid import UUID

import httpx

from lea_app.connection.child import ChildConnection
from lea_app.connection.process import ChildOptions
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

    def __init__(self, connection: ChildConnection, name: str = "someone-else") -> None:
        info = connection.process.info
        assert info is not None, "the child is not ready"
        token = create_token(connection.data_dir, "editor", name)
        self.http = httpx.Client(base_url=info.url + "/api/v1", headers={"Authorization": f"Bearer {token}"})

    def store_peer_descriptor(self, peer: PeerDescriptor) -> None:
        self.http.put(
            f"/peer/{peer.id}", content=peer.model_dump_json(), headers={"Content-Type": "application/json"}
        ).raise_for_status()

    def delete_peer_descriptor(self, peer_id: UUID) -> None:
        self.http.delete(f"/peer/{peer_id}").raise_for_status()

    def close(self) -> None:
        self.http.close()


def other_writer(connection: ChildConnection, name: str = "someone-else") -> OtherWriter:
    return OtherWriter(connection, name)


async def lookup(connection: ChildConnection, kind: ResourceKind, resource_id: UUID) -> Resource | None:
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
