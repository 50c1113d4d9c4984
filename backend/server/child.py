"""``lea-backend serve --child``: the backend as LEA's own child process (issue #13).

LEA starts the child with a pipe on its stdin and writes one line to it: a fresh random session
token (never on the command line, which every user of the machine can read). The child accepts
that token as an admin named after the OS user (changes are recorded as the OS user's, as they
were in-process), prints one line on stdout for LEA - ``lea-backend: ready {json}`` with its
address, pid and version, or ``lea-backend: failed {json}`` with the error's code and message -
and then keeps watching stdin: when it closes (LEA exited, or was killed with -9) the child shuts
down cleanly, final checkpoint included, instead of living on as an orphan.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

from backend.tokens import Role, TokenInfo, TokenStore
from resources.app import APP_NAME
from resources.errors import InvalidRequest, LeaError

log = logging.getLogger(__name__)

READY = "lea-backend: ready "
FAILED = "lea-backend: failed "
#: A session token is at least this long (LEA sends 43 characters of secrets.token_urlsafe(32)).
MIN_TOKEN_CHARS = 32


def package_version() -> str:
    try:
        return version(APP_NAME)
    except PackageNotFoundError:  # a source tree without an install
        return "unknown"


def read_session_token(stdin: IO[str]) -> str:
    """The first line of stdin: the token LEA made for this launch."""
    token = stdin.readline().strip()
    if len(token) < MIN_TOKEN_CHARS:
        raise InvalidRequest(
            "serve --child reads a session token of at least "
            f"{MIN_TOKEN_CHARS} characters from the first line of stdin (LEA writes it there)"
        )
    return token


class SessionTokens(TokenStore):
    """The data directory's tokens (bench agents' ``peer`` tokens, any others), plus LEA's session token."""

    def __init__(self, db_path: Path, session_token: str, owner: str) -> None:
        super().__init__(db_path)
        self._session = session_token
        self._owner = TokenInfo(owner, Role.ADMIN, "")

    def authenticate(self, token: str) -> TokenInfo | None:
        if hmac.compare_digest(token.encode("utf-8"), self._session.encode("utf-8")):
            return self._owner
        return super().authenticate(token)


def announce_ready(url: str, agent_url: str | None) -> None:
    """The one line LEA waits for; then stdout goes to /dev/null (nothing else may block on the pipe)."""
    info = {"url": url, "pid": os.getpid(), "version": package_version(), "agent_url": agent_url}
    print(READY + json.dumps(info), flush=True)
    _detach_stdout()


def announce_failure(error: LeaError | str) -> None:
    code, message = (error.code, error.message) if isinstance(error, LeaError) else ("error", error)
    print(FAILED + json.dumps({"code": code, "message": message}), flush=True)
    _detach_stdout()


def _detach_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real stdout (a test's StringIO): nothing to detach
        pass


def watch_parent(stdin: IO[str], on_gone: Callable[[], Any]) -> threading.Thread:
    """Call ``on_gone`` once stdin reaches end of file: the parent has closed it or has died."""

    def wait() -> None:
        try:
            while stdin.readline():
                pass  # LEA writes nothing after the token; a stray line is ignored
        except (OSError, ValueError):
            pass
        log.info("LEA closed this backend's stdin (it exited or died): shutting down")
        on_gone()

    thread = threading.Thread(target=wait, name="lea-parent-watch", daemon=True)
    thread.start()
    return thread
