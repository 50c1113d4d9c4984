"""The log of ``lea-backend serve``: stderr and ``DATA_DIR/logs/backend.log`` (rotated).

One line per event worth an operator's attention: a failed commit (once per failure episode), a
refused token, a resync storm. The file gets INFO and above; stderr gets WARNING and above, so a
healthy server's stderr stays quiet. LEA writes its own ``logs/lea.log`` the same way
(``lea_app.app.setup_logging``). The one-shot admin commands do not log: a failure is their one
``lea-backend: error:`` line.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TextIO

from backend.datadir import LOGS_DIR

LOG_FILE = "backend.log"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as in LEA's lea.log
STDERR_FORMAT = "lea-backend: %(levelname)s %(name)s: %(message)s"
MAX_BYTES = 2_000_000
BACKUPS = 3


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time (tests capture it after set-up)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class _LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log file; on a full disk a record that cannot be written is dropped quietly.

    logging's default prints a traceback to stderr for every record that fails to be written,
    which on a full disk is every record. Here the first failure is said once on stderr; the
    records themselves still reach stderr through the other handler.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
        self._failing = False
        self._failed_now = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)
        if not self._failed_now:
            self._failing = False

    def handleError(self, record: logging.LogRecord) -> None:
        self._failed_now = True
        if self._failing:
            return
        self._failing = True
        error = sys.exc_info()[1]
        sys.stderr.write(f"lea-backend: WARNING: cannot write the log file {self.baseFilename}: {error}\n")


#: uvicorn's INFO lines for every WebSocket, which say nothing an operator needs.
_WEBSOCKET_NOISE = frozenset({"connection open", "connection closed"})


class _ClientUtf8IsInfo(logging.Filter):
    """uvicorn logs a client's text frame that is not UTF-8 as an ERROR with a traceback; it is the
    client's mistake (its connection is closed with 1007), worth an INFO line, not an alarm."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in _WEBSOCKET_NOISE:
            return False  # the "[accepted]" line before it already names the stream and its client
        if message.startswith("Invalid UTF-8 sequence received from client"):
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            record.msg = "refused a WebSocket text frame that is not valid UTF-8; the connection was closed (1007)"
            record.args = ()
            record.exc_info, record.exc_text = None, None
        return True


_installed: list[tuple[logging.Logger, logging.Handler | logging.Filter]] = []
_install_lock = threading.Lock()


def setup_logging(data_dir: Path | None) -> Path | None:
    """Log to stderr and, given a data directory, to ``DATA_DIR/logs/backend.log``; returns the file
    (None without a data directory or if it cannot be opened: stderr only). ``serve`` calls it first
    without one, and with one only once its start-up checks passed: a refusal writes no file."""
    with _install_lock:
        root = logging.getLogger()
        root.setLevel(logging.INFO)
        console = _Stderr()
        console.setLevel(logging.WARNING)
        console.setFormatter(logging.Formatter(STDERR_FORMAT))
        early = _take_early()
        _remove()
        _add(root, console)
        _add(logging.getLogger("uvicorn.error"), _ClientUtf8IsInfo())
        if data_dir is None:
            _add(root, _Early())  # start-up's records reach the file once there is one
            return None
        path: Path | None = data_dir / LOGS_DIR / LOG_FILE
        assert path is not None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            file = _LogFile(path)
        except OSError as exc:
            if os.access(data_dir, os.W_OK):  # else the backend reports the unusable data directory itself
                logging.getLogger(__name__).warning("cannot open the log file %s: %s", path, exc.strerror or exc)
            path = None
        else:
            file.setLevel(logging.INFO)
            file.setFormatter(logging.Formatter(FILE_FORMAT))
            _add(root, file)
            for record in early:
                file.handle(record)
        return path


class _Early(logging.Handler):
    """Keeps the INFO records of a start-up whose data directory is not open yet (bounded)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: deque[logging.LogRecord] = deque(maxlen=1000)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _take_early() -> list[logging.LogRecord]:
    return [r for _, item in _installed if isinstance(item, _Early) for r in item.records]


def close_logging() -> None:
    """Undo ``setup_logging`` (tests; a server process just exits)."""
    with _install_lock:
        _remove()


def _add(logger: logging.Logger, item: logging.Handler | logging.Filter) -> None:
    if isinstance(item, logging.Handler):
        logger.addHandler(item)
    else:
        logger.addFilter(item)
    _installed.append((logger, item))


def _remove() -> None:
    while _installed:
        logger, item = _installed.pop()
        if isinstance(item, logging.Handler):
            logger.removeHandler(item)
            item.close()
        else:
            logger.removeFilter(item)


class Throttle:
    """At most ``burst`` log lines per ``key`` in ``per`` seconds, so that a client hammering the
    server cannot flood the log; the next allowed line says how many were left out."""

    def __init__(self, burst: int = 10, per: float = 60.0) -> None:
        self.burst = burst
        self.per = per
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}  # key -> (window start, lines, left out)

    def allow(self, key: str) -> int | None:
        """None: leave this line out; else log it, mentioning the returned number left out before."""
        now = time.monotonic()
        with self._lock:
            start, lines, left_out = self._windows.get(key, (now, 0, 0))
            if now - start >= self.per:
                start, lines = now, 0
            if lines >= self.burst:
                self._windows[key] = (start, lines, left_out + 1)
                return None
            self._windows[key] = (start, lines + 1, 0)
            if len(self._windows) > 1024:  # keys are few; never let them grow without bound
                self._windows.clear()
            return left_out
