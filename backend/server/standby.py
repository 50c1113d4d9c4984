"""What a standby server (``lea-backend serve --standby``) answers while it waits for the write lock.

Every HTTP request gets 503 with a ``standby`` problem, ``/healthz`` included (its body says
``{"status": "standby"}``), so a load balancer's health check routes to the active server; a watch
socket is refused with the same 503 (an agent or LEA tries the next server of its list). Once the
standby holds the lock and has restored, :class:`Switch` hands every new request to the real API.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from backend.server.problems import PROBLEM
from resources.errors import Standby

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

RETRY_AFTER = "1"


class StandbyApp:
    def __init__(self, store: str) -> None:
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket":
            await receive()  # websocket.connect
            if "websocket.http.response" not in scope.get("extensions", {}):
                await send({"type": "websocket.close", "code": 1013, "reason": "standby server"})
                return
        elif kind != "http":
            return
        prefix = "websocket.http" if kind == "websocket" else "http"
        if scope.get("path") == "/healthz":
            body = json.dumps({"status": "standby", "store": self.store}).encode()
            media = "application/json"
        else:
            error = Standby(
                f"this server is the standby of {self.store}; the active server answers (it takes over "
                "when the active one stops)",
            )
            body = error.to_problem().model_dump_json().encode()
            media = PROBLEM
        await send({
            "type": f"{prefix}.response.start", "status": 503,
            "headers": [
                (b"content-type", media.encode()), (b"content-length", str(len(body)).encode()),
                (b"retry-after", RETRY_AFTER.encode()),
            ],
        })
        await send({"type": f"{prefix}.response.body", "body": body})


class Switch:
    """The ASGI app uvicorn runs: the standby answers until ``inner`` is the real API."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.inner(scope, receive, send)
