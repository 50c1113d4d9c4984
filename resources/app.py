"""The application's name and default folders: one place for the backend and the desktop app."""

from __future__ import annotations

from pathlib import Path

import platformdirs

#: The distribution, the data and config folders, the keyring service and the desktop entry.
APP_NAME = "lea-desktop"
#: The bundled ``lea`` executable's hidden first argument that makes it ``lea-backend`` (packaging/lea_entry.py):
#: the bundle starts its embedded backend child from its own executable.
BACKEND_SUBCOMMAND = "__lea-backend__"


def default_data_dir(demo: bool = False) -> Path:
    """The user's data folder; --demo gets a folder of its own and never touches the user's data."""
    return Path(platformdirs.user_data_dir(APP_NAME + ("-demo" if demo else ""), appauthor=False))


def default_config_dir() -> Path:
    """The user's config folder (the desktop app's window settings)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
