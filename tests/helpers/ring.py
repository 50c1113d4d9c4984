"""Filling a real server's ring of recent transactions with large peers, over HTTP from several threads."""

from __future__ import annotations

import threading
import uuid

import httpx

from resources import PeerDescriptor
from tests.helpers.factories import make_peer
from tests.helpers.server import API, ServerProcess

JSON = {"Content-Type": "application/json"}


def put(http: httpx.Client, peer: PeerDescriptor) -> httpx.Response:
    return http.put(f"{API}/peer/{peer.id}", content=peer.model_dump_json(), headers=JSON)


def fill_ring(server: ServerProcess, token: str | None, count: int, threads: int = 4) -> None:
    """Store ``count`` peers of 200 devices (~28 kB events each), each one transaction."""
    peers = [make_peer(f"ring-{uuid.uuid4().hex[:8]}", devices=200) for _ in range(count)]

    def store(chunk: list[PeerDescriptor]) -> None:
        with server.client(token) as http:
            for peer in chunk:
                assert put(http, peer).status_code == 200

    writers = [threading.Thread(target=store, args=(peers[i::threads],)) for i in range(threads)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
