"""Driving LEA's qasync loop from a test (with qtbot), and what the GUI fixtures hand a test.

The fixtures themselves (``aloop``, ``lea``) live in tests/gui/conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pytestqt.qtbot import QtBot

from lea_app.connection.child import ChildConnection
from lea_app.controller import Controller
from lea_app.views.main_window import MainWindow

T = TypeVar("T")


def run(qtbot: QtBot, coro: Coroutine[Any, Any, T], timeout: int = 15_000) -> T:
    """Run a coroutine on the qasync loop while Qt processes events; return its result."""
    future = asyncio.ensure_future(coro)
    qtbot.waitUntil(future.done, timeout=timeout)
    return future.result()


@dataclass
class Lea:
    controller: Controller
    connection: ChildConnection
    window: MainWindow
    data_dir: Path


M = TypeVar("M", bound="_Flushable")


class _Flushable(Protocol):
    def flush(self) -> None: ...


def flushed(model: M) -> M:
    """``model`` after applying its pending updates (for a ``qtbot.waitUntil`` condition)."""
    model.flush()
    return model
