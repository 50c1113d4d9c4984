"""Server tokens in the OS keyring where one exists; a clear, session-only fallback where none does."""

from __future__ import annotations

import contextlib
import logging

import keyring
import keyring.errors
from keyring.backend import KeyringBackend

from resources.app import APP_NAME

log = logging.getLogger(__name__)
SERVICE = APP_NAME


def keyring_status() -> tuple[bool, str]:
    """(available, a sentence for the user)."""
    backend: KeyringBackend = keyring.get_keyring()
    # keyring's "fail" backend (no keyring on this system) and an empty chainer have priority 0.
    if (getattr(backend, "priority", 0) or 0) <= 0:
        return False, "No OS keyring is available: the token is used for this session only and not saved."
    return True, f"The token is saved in the OS keyring ({type(backend).__name__})."


def load_token(url: str) -> str | None:
    if not keyring_status()[0]:
        return None
    try:
        return keyring.get_password(SERVICE, url)
    except keyring.errors.KeyringError as exc:
        log.warning("could not read the token for %s from the keyring: %s", url, exc)
        return None


def save_token(url: str, token: str) -> bool:
    """True when saved; False (nothing saved, the token still works this session) otherwise."""
    if not keyring_status()[0]:
        return False
    try:
        keyring.set_password(SERVICE, url, token)
    except keyring.errors.KeyringError as exc:
        log.warning("could not save the token for %s in the keyring: %s", url, exc)
        return False
    return True


def forget_token(url: str) -> None:
    with contextlib.suppress(keyring.errors.KeyringError):  # nothing stored, or no keyring
        keyring.delete_password(SERVICE, url)
