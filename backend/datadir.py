"""The data directory: ``lea.db``, ``lea.lock`` (held by the one writing process) and ``logs/``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType
from typing import IO

import platformdirs

from resources.errors import DataDirError, DataDirLocked

APP_NAME = "lea-desktop"
DB_FILE = "lea.db"
LOCK_FILE = "lea.lock"
LOGS_DIR = "logs"
#: Mode of a data directory LEA creates (its files are created 0600: backend/storage/sqlite.py).
PRIVATE_DIR_MODE = 0o700


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


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
    """An exclusive, non-blocking OS lock on ``lea.lock``; released when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self) -> DataDirLock:
        try:
            handle = open(  # noqa: SIM115 - held until release()
                self.path, "a+", encoding="utf-8", opener=lambda path, flags: os.open(path, flags, 0o600)
            )
        except OSError as exc:
            raise DataDirError(
                f"cannot open lock file {self.path}: {exc.strerror or exc}", path=str(self.path)
            ) from exc
        try:
            _lock_file(handle)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DataDirLocked(
                f"data directory {self.path.parent} is already in use by another LEA process "
                f"(pid {holder}); close it first or use another --data-dir",
                path=str(self.path.parent),
                pid=holder,
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        if self._file is not None:
            try:
                _unlock_file(self._file)
            finally:
                self._file.close()
                self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def __enter__(self) -> DataDirLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows runners
    import msvcrt

    def _lock_file(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock_file(handle: IO[str]) -> None:
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_file(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock_file(handle: IO[str]) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
