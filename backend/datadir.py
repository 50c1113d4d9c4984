"""The data directory: ``lea.db``, ``lea.lock`` (held by the one writing process) and ``logs/``."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout

from resources.app import default_data_dir
from resources.errors import DataDirError, DataDirLocked

DB_FILE = "lea.db"
LOCK_FILE = "lea.lock"
LOGS_DIR = "logs"
#: Mode of a data directory LEA creates (its files are created 0600: backend/storage/sqlite.py).
PRIVATE_DIR_MODE = 0o700


class DataDir:
    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_data_dir()

    @property
    def db_path(self) -> Path:
        return self.path / DB_FILE

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_FILE

    @property
    def logs_path(self) -> Path:
        return self.path / LOGS_DIR

    def ensure(self) -> None:
        """Create the directory and logs/ for writing, with a clear error if that is impossible.

        A new directory is private (0700: it holds the token hashes and everything LEA knows); an
        existing one keeps the mode its owner chose.
        """
        try:
            self.path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
            self.logs_path.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise DataDirError(
                f"cannot create data directory {self.path}: {exc.strerror or exc}", path=str(self.path)
            ) from exc
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise DataDirError(
                f"data directory {self.path} is read-only; LEA needs to write there",
                path=str(self.path),
            )

    def lock(self) -> DataDirLock:
        return DataDirLock(self.lock_path)


class DataDirLock:
    """An exclusive, non-blocking OS lock on ``lea.lock`` (filelock); released when the process dies.

    The holder writes its pid into the file once it holds the lock; a refused process only reads it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # Native lock only (a soft marker would outlive a killed holder); thread_local=False: a
        # backend may be closed on another thread than the one that opened it.
        self._lock = FileLock(
            path, mode=0o600, blocking=False, thread_local=False, fallback_to_soft=False,
            preserve_lock_file=True, on_acquired=_write_pid,
        )

    def acquire(self) -> DataDirLock:
        try:
            self._lock.acquire()
        except Timeout as exc:
            holder = self._holder()
            raise DataDirLocked(
                f"data directory {self.path.parent} is already in use by another LEA process "
                f"(pid {holder}); close it first or use another --data-dir",
                path=str(self.path.parent),
                pid=holder,
            ) from exc
        except OSError as exc:
            raise DataDirError(
                f"cannot open lock file {self.path}: {exc.strerror or exc}", path=str(self.path)
            ) from exc
        return self

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release()

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def _write_pid(fd: int) -> None:
    """Called by filelock with the locked descriptor: the file names its holder for refused processes."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
