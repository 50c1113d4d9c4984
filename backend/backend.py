"""The backend on a data directory: lock, storage, manager with its rules; start and close.

Embedded LEA, the server and the admin CLI all open the backend through this one path.
"""

from __future__ import annotations

import getpass
import logging
from pathlib import Path
from types import TracebackType
from typing import Any

from backend import rules
from backend.datadir import DataDir, DataDirLock
from backend.manager import ResourcesManager
from backend.settings import Settings, load_settings
from backend.storage.sqlite import SqliteEventStore

log = logging.getLogger(__name__)


def os_actor() -> str:
    """The actor recorded for changes made in-process: the OS user."""
    try:
        return getpass.getuser()
    except Exception:
        return "local"


class Backend:
    """Opens ``DATA_DIR`` for writing (exclusive lock), restores the manager, and closes it cleanly."""

    def __init__(self, data_dir: Path | str | None = None, **setting_overrides: Any) -> None:
        self.data_dir = DataDir(data_dir)
        self.data_dir.ensure()
        self.settings: Settings = load_settings(self.data_dir.path, **setting_overrides)
        self._lock: DataDirLock = self.data_dir.lock().acquire()
        try:
            self.store = SqliteEventStore(self.data_dir.db_path, durability=self.settings.durability)
        except BaseException:
            self._lock.release()
            raise
        self.manager = ResourcesManager(self.store, self.settings, rules=rules.check)
        try:
            self.manager.restore()
        except BaseException:
            self.store.close()
            self._lock.release()
            raise

    def start(self) -> Backend:
        self.manager.start()
        return self

    def close(self) -> None:
        try:
            self.manager.close()
        finally:
            self.store.close()
            self._lock.release()

    def __enter__(self) -> Backend:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
