"""LEA's REST API as an end-to-end test uses it to set up benches: peers, bench tokens, clusters,
deployments, and the states the agents' reports become (tests/helpers/server.py's client)."""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from websockets.exceptions import ConnectionClosed

from resources import ClusterDescriptor, PeerDescriptor
from tests.helpers.factories import make_cluster, make_peer
from tests.helpers.server import ServerProcess, create_token, start_server

API = "/api/v1"
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class AdminServer:
    """A real ``lea-backend serve`` and an admin token for it (the end-to-end tests' backend)."""

    process: ServerProcess
    admin: str


@contextlib.contextmanager
def admin_server(data_dir: Path, serve_args: list[str]) -> Iterator[AdminServer]:
    admin = create_token(data_dir, "admin", "root")
    process = start_server(data_dir, extra_args=serve_args)
    try:
        yield AdminServer(process, admin)
    finally:
        process.stop()


class BenchApi:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    # -- writes --
    def add_peer(self, peer: PeerDescriptor) -> PeerDescriptor:
        self.http.put(f"{API}/peer/{peer.id}", content=peer.model_dump_json(), headers=JSON).raise_for_status()
        return peer

    def new_peer(self, name: str, **options: Any) -> PeerDescriptor:
        """A peer with one device (``make_peer`` options), named ``name-<random>``."""
        return self.add_peer(make_peer(f"{name}-{uuid.uuid4().hex[:6]}", devices=1, **options))

    def token(self, peer: PeerDescriptor, name: str | None = None, role: str = "peer") -> str:
        params = {"name": name or peer.name, "role": role}
        if role == "peer":
            params["peer_id"] = str(peer.id)
        response = self.http.post(f"{API}/tokens", params=params)
        response.raise_for_status()
        return str(response.json()["token"])

    def revoke(self, name: str) -> None:
        self.http.delete(f"{API}/tokens/{name}").raise_for_status()

    def add_cluster(self, leader: PeerDescriptor, *members: PeerDescriptor) -> ClusterDescriptor:
        cluster = make_cluster(f"c-{uuid.uuid4().hex[:6]}", leader, *members)
        self.http.put(f"{API}/cluster/{cluster.id}", content=cluster.model_dump_json(), headers=JSON).raise_for_status()
        return cluster

    def deploy(self, cluster: UUID) -> None:
        self.http.put(f"{API}/cluster/{cluster}/deployment").raise_for_status()

    def undeploy(self, cluster: UUID) -> None:
        self.http.delete(f"{API}/cluster/{cluster}/deployment").raise_for_status()

    # -- reads --
    def get(self, kind: str, id: UUID) -> dict[str, Any] | None:
        response = self.http.get(f"{API}/{kind}/{id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def history(self, kind: str, id: UUID) -> list[dict[str, Any]]:
        response = self.http.get(f"{API}/{kind}/{id}/history")
        response.raise_for_status()
        events: list[dict[str, Any]] = response.json()
        return events

    def connection(self, peer: PeerDescriptor) -> dict[str, Any]:
        state = self.get("peer_connection_state", peer.id)
        return state["state"] if state else {"status": "offline"}

    def online(self, peer: PeerDescriptor) -> bool:
        return bool(self.connection(peer)["status"] == "online")

    def offline(self, peer: PeerDescriptor) -> bool:
        return bool(self.connection(peer)["status"] == "offline")

    def cluster_state(self, cluster: UUID) -> dict[str, Any]:
        state = self.get("cluster_state", cluster)
        return state["state"] if state else {"status": "undeployed"}

    def status(self, cluster: UUID) -> str:
        return str(self.cluster_state(cluster)["status"])

    def configuration(self, peer: PeerDescriptor) -> dict[str, Any] | None:
        return self.get("peer_configuration", peer.id)

    def reported(self, peer: PeerDescriptor) -> dict[str, str]:
        """The peer's last report: parameter id -> status (present, absent, error)."""
        state = self.get("peer_configuration_state", peer.id)
        return {p["id"]: p["state"]["status"] for p in (state or {}).get("parameters", ())}

    def reports(self, peer: PeerDescriptor) -> list[dict[str, Any]]:
        """The peer's last report: the parameter reports as JSON."""
        state = self.get("peer_configuration_state", peer.id)
        return list((state or {}).get("parameters", ()))

    def consistent(self, peer: PeerDescriptor) -> bool:
        """The last report covers exactly the desired configuration's parameters, each at its target."""
        desired = self.configuration(peer)
        if desired is None:
            return False
        targets = {p["id"]: p["target"] for p in desired["parameters"]}
        return bool(targets) and self.reported(peer) == targets


class Watcher:
    """Every event of ``WS /api/v1/watch`` recorded by a thread, volatile kinds included (the
    connection states, configurations and reports that the REST history does not keep).

        with Watcher(server, admin_token) as events:
            ...
            assert events.seen(lambda e: e["kind"] == "peer_connection_state", since=mark)
    """

    def __init__(self, server: ServerProcess, token: str) -> None:
        self._stack = contextlib.ExitStack()
        self._ws = self._stack.enter_context(server.watch(token))
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._read, name="watcher", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._stack.close()
        self._thread.join(10)

    def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            for raw in self._ws:
                message = json.loads(raw)
                if message.get("type") == "events":
                    with self._lock:
                        self._events.extend(message["events"])

    def mark(self) -> int:
        """A position: ``events(since=mark)`` are those recorded after it."""
        with self._lock:
            return len(self._events)

    def events(self, kind: str | None = None, id: UUID | None = None, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            found = self._events[since:]
        return [e for e in found if (kind is None or e["kind"] == kind) and (id is None or e["id"] == str(id))]

    def seen(self, predicate: Callable[[dict[str, Any]], bool], kind: str | None = None, id: UUID | None = None,
             since: int = 0) -> bool:
        return any(predicate(e) for e in self.events(kind, id, since))

    def connection_statuses(self, peer: UUID, since: int = 0) -> list[str]:
        """The peer's connection states in order (``offline`` when the state was deleted)."""
        return [
            (e["resource"] or {}).get("state", {}).get("status", "offline")
            for e in self.events("peer_connection_state", peer, since)
        ]

    def configured_targets(self, peer: UUID, since: int = 0) -> set[str]:
        """Every target any desired configuration of ``peer`` had (``absent`` = a removal was wanted)."""
        return {
            p["target"]
            for e in self.events("peer_configuration", peer, since) if e["resource"]
            for p in e["resource"]["parameters"]
        }
