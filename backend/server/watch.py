"""``WS /api/v1/watch``: a client's live stream of events (docs/protocol.md), from the position it names.

The token is looked up again while the stream is open: a revoked token's stream closes.
"""

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Iterable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from backend.server.auth import authenticate, authorise, still_valid
from backend.server.context import backend_of, tokens_of
from backend.server.inputs import refuse_repeated
from backend.server.problems import problem_response
from backend.server.routes import API, MAX_REVISION
from backend.subscription import LoopWakeup, StreamSubscription
from backend.tokens import Role
from resources.errors import InvalidRequest, LeaError
from resources.wire import Ping

#: The server's log (uvicorn's; its level is the server_log_level setting): closed streams go there.
server_log = logging.getLogger("uvicorn.error")

PING_SECONDS = 15.0
#: How often an open stream's token is looked up again even when nothing is sent (it is also looked
#: up before every chunk of messages): a revoked token's stream closes within this, plus a lookup.
TOKEN_RECHECK_SECONDS = 0.5
#: Messages taken from the queue, checked against the token once, then sent one by one.
STREAM_CHUNK = 64
#: A stream's sender yields to the event loop after this much work (a replay is long; others wait).
SLICE_SECONDS = 0.0005
PING_TEXT = Ping().model_dump_json()

router = APIRouter()


@router.websocket(f"{API}/watch")
async def watch(websocket: WebSocket) -> None:
    tokens = tokens_of(websocket)
    token_header = websocket.headers.get("authorization")
    try:
        user = authenticate(tokens, token_header)  # first: without a token, nothing else is looked at
        authorise(user, Role.VIEWER)  # a bench agent's token watches nothing
        epoch, after = watch_position(websocket.query_params.multi_items())
    except LeaError as exc:
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(problem_response(exc))  # HTTP 401/400 + problem
        else:
            await websocket.close(code=4000 + exc.http_status, reason=exc.message[:120])
        return
    await websocket.accept()
    backend = backend_of(websocket)
    subscription = backend.manager.subscribe_stream(after=after, epoch=epoch)
    try:
        await _stream(
            websocket, subscription, lambda: still_valid(tokens, token_header),
            backend.settings.slow_reader_timeout, f"'{user.name}'",
        )
    finally:
        subscription.close()  # also when the client went away or the task was cancelled


_EPOCH = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REVISION = re.compile(r"[0-9]{1,19}")


def watch_position(query: Iterable[tuple[str, str]]) -> tuple[str | None, int | None]:
    """``epoch`` and ``after`` of ``WS /api/v1/watch``; InvalidRequest (400) when malformed."""
    items = list(query)
    refuse_repeated(items)
    params = dict(items)
    epoch, after = params.get("epoch"), params.get("after")
    if epoch is not None and not _EPOCH.fullmatch(epoch):
        raise InvalidRequest(
            f"epoch must be the epoch a hello named (1 to 64 letters, digits, '-' and '_'), not {epoch[:40]!r}"
        )
    if after is not None and not (_REVISION.fullmatch(after) and int(after) <= MAX_REVISION):
        raise InvalidRequest(f"after must be a revision, a whole number from 0 to {MAX_REVISION}, not {after[:40]!r}")
    return epoch, int(after) if after is not None else None


#: Why the server closes a stream: (WebSocket close code, reason), most important first.
REVOKED = (4401, "the token was revoked")
SHUTTING_DOWN = (1001, "backend shutting down")
SLOW_READER = (4408, "the client read nothing for too long")
_CLOSE_PRIORITY = (REVOKED, SHUTTING_DOWN, SLOW_READER)
Close = tuple[int, str]


async def _stream(
    websocket: WebSocket,
    subscription: StreamSubscription,
    token_valid: Callable[[], bool],
    send_timeout: float,
    who: str,
) -> None:
    """Forward the subscription's messages; ping when idle; close on revocation, a stuck reader or shutdown.

    Three tasks: the sender, a reader of the client's messages (their end is the disconnect), and a
    watchdog that re-checks the token and the age of a pending send even while that send waits on
    a client that does not read.
    """
    ready = LoopWakeup(subscription, asyncio.get_running_loop())
    sending = _Sending()
    tasks = [
        asyncio.ensure_future(_send(websocket, subscription, ready, token_valid, sending)),
        asyncio.ensure_future(_read(websocket)),
        asyncio.ensure_future(_watch(token_valid, sending, send_timeout)),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        ready.detach()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    reasons = {task.result() for task in done}  # a task's unexpected error propagates: a bug
    close = next((c for c in _CLOSE_PRIORITY if c in reasons), None)
    if close is None:  # the client went away
        return
    if close == SLOW_READER:
        server_log.info("closed the event stream of %s: it read nothing for %g s (%d)", who, send_timeout, close[0])
    else:
        server_log.info("closed the event stream of %s: %s (%d)", who, close[1], close[0])
    # The close frame is queued even if the client reads nothing (backend.server.limits); bounded anyway.
    with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        async with asyncio.timeout(send_timeout):
            await websocket.close(code=close[0], reason=close[1])


class _Sending:
    """When the pending send started (None: none pending); read by the watchdog."""

    since: float | None = None


class _SendBudget:
    """Sending time all streams spent in the current loop iteration (reset by the next one)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._spent = 0.0
        self._armed = False

    def exhausted(self) -> bool:
        return self._spent >= SLICE_SECONDS

    def charge(self, seconds: float) -> None:
        self._spent += seconds
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self._reset)  # runs at the start of the next iteration

    def _reset(self) -> None:
        self._spent, self._armed = 0.0, False


_BUDGETS: dict[asyncio.AbstractEventLoop, _SendBudget] = {}


def _budget(loop: asyncio.AbstractEventLoop) -> _SendBudget:
    budget = _BUDGETS.get(loop)
    if budget is None:
        for closed in [lp for lp in _BUDGETS if lp.is_closed()]:
            del _BUDGETS[closed]
        budget = _BUDGETS[loop] = _SendBudget(loop)
    return budget


async def _send(
    websocket: WebSocket,
    subscription: StreamSubscription,
    ready: LoopWakeup,
    token_valid: Callable[[], bool],
    sending: _Sending,
) -> Close | None:
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    try:
        while True:
            ready.clear()
            messages = subscription.take(STREAM_CHUNK)
            if not messages:
                if subscription.closed:
                    return SHUTTING_DOWN
                try:
                    async with asyncio.timeout(max(0.0, last_sent + PING_SECONDS - loop.time())):
                        await ready.wait()
                    continue
                except TimeoutError:
                    messages = [PING_TEXT]
            elif not token_valid():  # every message taken was committed before this look-up
                return REVOKED
            budget = _budget(loop)
            for text in messages:
                # A send does not yield while the socket takes data: let other clients run (a replay is
                # long). The budget is shared by every stream, so twenty replays cost a request one
                # slice per loop iteration, not twenty; nothing is held across the await.
                if budget.exhausted():
                    await asyncio.sleep(0)
                started = sending.since = loop.time()
                await websocket.send_text(text)
                sending.since = None
                last_sent = loop.time()
                budget.charge(last_sent - started)
    except WebSocketDisconnect:
        return None


async def _read(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it disconnects; returns then."""
    while (await websocket.receive()).get("type") != "websocket.disconnect":
        pass


async def _watch(token_valid: Callable[[], bool], sending: _Sending, send_timeout: float) -> Close:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(TOKEN_RECHECK_SECONDS)
        if not token_valid():
            return REVOKED
        if sending.since is not None and loop.time() - sending.since >= send_timeout:
            return SLOW_READER
