"""Event storage: the interface and its SQLite implementation."""

from backend.storage.base import CheckpointInfo, EventStore, ReplayedChange
from backend.storage.sqlite import SqliteEventStore

__all__ = ["CheckpointInfo", "EventStore", "ReplayedChange", "SqliteEventStore"]
