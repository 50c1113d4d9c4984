"""One settings model with defaults, overridable by ``lea.toml`` in the data directory and the CLI."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from resources.errors import DataDirError, invalid_resource_from

SETTINGS_FILE = "lea.toml"
KIB = 1024
MIB = 1024 * KIB


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    durability: Literal["full", "normal", "off"] = Field(
        default="full",
        description="SQLite synchronous mode for event commits; on PostgreSQL synchronous_commit on, local, off.",
    )
    store: str | None = Field(
        default=None,
        description="Where events, checkpoints and tokens live: lea.db in the data directory (default), or a "
        "PostgreSQL database, postgresql://USER@HOST:PORT/DATABASE (no password in it: PGPASSWORD, "
        "~/.pgpass or store_password_file).",
    )
    store_password_file: Path | None = Field(
        default=None,
        description="A file with the PostgreSQL password (the password alone, or libpq's passfile lines).",
    )
    checkpoint_interval: int = Field(
        default=1000, ge=1, description="Write a checkpoint every N persisted events."
    )
    checkpoints_kept: int = Field(default=3, ge=1, description="Checkpoints kept by `compact`.")
    commit_group_max: int = Field(default=1024, ge=1, description="Most writes in one group commit.")
    ring_size: int = Field(
        default=50_000, ge=16, description="Recent events kept to serve subscribe(after=...)."
    )
    subscriber_queue_size: int = Field(
        default=50_000, ge=16, description="Events a subscriber may lag behind before it must resync."
    )
    ring_bytes: int = Field(
        default=32 * MIB, ge=64 * KIB,
        description="Bytes of event JSON the ring keeps; past this (or ring_size) the oldest transactions go.",
    )
    subscriber_queue_bytes: int = Field(
        default=64 * MIB, ge=64 * KIB,
        description="Bytes of event JSON a subscriber may lag behind before it must resync.",
    )
    max_event_bytes: int = Field(
        default=MIB, ge=4 * KIB,
        description="Largest event that may be stored: a resource's JSON with its revision, actor, time "
        "and ids (~300 bytes). A larger write is refused (413 payload_too_large).",
    )
    revision_block: int = Field(
        default=10_000, ge=1, description="Revisions reserved in meta at a time (never reused)."
    )
    write_timeout: float = Field(default=30.0, gt=0, description="Seconds a writer waits for its commit.")
    deploy_timeout: float = Field(
        default=60.0, gt=0, description="Seconds a peer may take to report a parameter."
    )
    # -- lea-backend serve: limits on clients (docs/protocol.md, "Limits") --
    slow_reader_timeout: float = Field(
        default=30.0, gt=0,
        description="Seconds a client may leave the server's sends unread; then its stream is closed (4408) "
        "and, if it still reads nothing as long again, its connection is dropped.",
    )
    ws_max_message_bytes: int = Field(
        default=4 * KIB, ge=256, description="Largest WebSocket message a client may send (the server reads none)."
    )
    request_timeout: float = Field(
        default=10.0, gt=0,
        description="Seconds a client has to send a whole request (head and body), from the connection's "
        "opening or the request's first byte.",
    )
    keep_alive_timeout: float = Field(
        default=5.0, gt=0, description="Seconds an idle connection is kept open between requests."
    )
    max_connections: int = Field(
        default=512, ge=1,
        description="Open connections (HTTP and WebSocket) at most; more are answered 503 and closed at once.",
    )
    max_header_bytes: int = Field(
        default=16 * KIB, ge=1 * KIB, description="Largest request head (request line and headers); more: 431."
    )
    max_url_bytes: int = Field(
        default=8 * KIB, ge=256, description="Longest request target (path and query string); longer: 414."
    )
    # -- peer agents (WS /api/v1/peer/connect, docs/protocol.md "Agent endpoint") --
    agent_heartbeat: float = Field(
        default=10.0, gt=0, le=3600,
        description="Seconds between heartbeats on an agent's connection (each side sends them).",
    )
    agent_timeout: float | None = Field(
        default=None, gt=0,
        description="Seconds of silence after which an agent's connection is lost (default: 3 heartbeats); "
        "also how long the agent has to send its hello.",
    )
    server_log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info",
        description="Level of uvicorn's records in the server's log (refused connections, closed streams: info).",
    )


def agent_timeout(settings: Settings) -> float:
    """The agents' silence timeout: the setting, or three heartbeats."""
    return settings.agent_timeout if settings.agent_timeout is not None else 3 * settings.agent_heartbeat


def load_settings(data_dir: Path | None, **overrides: Any) -> Settings:
    """Defaults, then ``DATA_DIR/lea.toml`` (``[backend]`` table or top level), then overrides."""
    values: dict[str, Any] = {}
    if data_dir is not None:
        path = data_dir / SETTINGS_FILE
        if path.exists():
            try:
                document = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise DataDirError(f"cannot read settings file {path}: {exc}", path=str(path)) from exc
            table = document.get("backend", document)
            if not isinstance(table, dict):
                raise DataDirError(f"{path}: [backend] must be a table", path=str(path))
            try:
                Settings(**table)
            except ValidationError as exc:  # name the file, so the user knows where to look
                raise invalid_resource_from(exc, f"setting in {path}") from exc
            values.update(table)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise invalid_resource_from(exc, "settings") from exc
