"""One settings model with defaults, overridable by ``lea.toml`` in the data directory and the CLI."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from resources.errors import DataDirError, invalid_resource_from

SETTINGS_FILE = "lea.toml"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    durability: Literal["full", "normal", "off"] = Field(
        default="full", description="SQLite synchronous mode for event commits."
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
    revision_block: int = Field(
        default=10_000, ge=1, description="Revisions reserved in meta at a time (never reused)."
    )
    write_timeout: float = Field(default=30.0, gt=0, description="Seconds a writer waits for its commit.")
    deploy_timeout: float = Field(
        default=60.0, gt=0, description="Seconds a peer may take to report a parameter."
    )


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
