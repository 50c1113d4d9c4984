"""Starting LEA: logging, the Qt application on an asyncio (qasync) loop, the window, the backend."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import signal
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_API", "pyside6")  # qasync must bind to PySide6, imported first

import qasync
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from lea_app.connection.base import Connection, ConnectionLost
from lea_app.connection.child import ChildConnection
from lea_app.connection.process import BackendProcess, ChildOptions
from lea_app.controller import Controller
from lea_app.models.wording import for_dialog
from lea_app.views.app_icon import app_icon
from lea_app.views.connect_dialog import ConnectDialog, ConnectionChoice
from lea_app.views.main_window import MainWindow
from resources.app import APP_NAME, default_config_dir
from resources.errors import LeaError
from resources.gc_policy import ScheduledCollector, raise_gc_threshold

log = logging.getLogger(__name__)


@dataclass
class Options:
    data_dir: Path
    demo: bool = False
    demo_delay_scale: float = 1.0
    connect: str | None = None  # a server URL; None = embedded backend
    token: str | None = None
    ca_file: str | None = None
    #: Accept bench agents on HOST:PORT (embedded backend only; off by default), TLS as for serve.
    agents_listen: tuple[str, int] | None = None
    agents_tls_cert: Path | None = None
    agents_tls_key: Path | None = None
    #: The embedded backend's process, started by ``lea_app.main`` before the app's imports.
    child_process: BackendProcess | None = None
    #: LEA's own log file (the About box shows it), once logging is set up.
    log_path: Path | None = None


def settings(demo: bool = False, path: Path | None = None) -> QSettings:
    """Window geometry and the last page: ``path``, else the user's config folder's ``lea.ini``, or
    ``lea-demo.ini`` for a demo session (its window settings never become the real session's).
    ``lea --smoke-test`` passes a file in its temporary directory: it never touches the user's."""
    if path is None:
        path = default_config_dir() / ("lea-demo.ini" if demo else "lea.ini")
    return QSettings(str(path), QSettings.Format.IniFormat)


def setup_logging(data_dir: Path) -> Path | None:
    logs = data_dir / "logs"
    try:
        logs.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            logs / "lea.log", maxBytes=2_000_000, backupCount=3, encoding="utf-8"
        )
    except OSError:
        return None  # the backend reports an unusable data directory itself, clearly
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return logs / "lea.log"


def child_options(options: Options) -> ChildOptions:
    return ChildOptions(
        options.data_dir, demo=options.demo, demo_delay_scale=options.demo_delay_scale,
        agents_listen=options.agents_listen, agents_tls_cert=options.agents_tls_cert,
        agents_tls_key=options.agents_tls_key,
    )


def spawn_embedded(options: Options) -> ChildConnection:
    """Start the embedded backend's child process now (or adopt the one ``lea_app.main`` started);
    it restores while LEA builds its window."""
    process, options.child_process = options.child_process, None
    return ChildConnection(child_options(options), process=process)


async def open_embedded(options: Options) -> Connection:
    return await spawn_embedded(options).ready()


async def open_connection(options: Options, spawned: ChildConnection | None = None) -> Connection:
    """The server of ``--connect`` (token from the option, else the keyring), or the embedded backend
    (``spawned``: its child process started already)."""
    if spawned is not None:
        return await spawned.ready()
    if options.connect is None:
        return await open_embedded(options)
    from lea_app.connection.remote import RemoteConnection, normalise_urls
    from lea_app.credentials import load_token

    url = normalise_urls(options.connect)
    connection = RemoteConnection(url, options.token or load_token(url), ca_file=options.ca_file)
    try:
        await connection.whoami()  # fail now, clearly, on a wrong address or token
    except BaseException:
        await connection.close()
        raise
    return connection


async def show_fatal(title: str, text: str) -> None:
    """A critical message that does not block the loop (qasync keeps running while it is open)."""
    box = QMessageBox(QMessageBox.Icon.Critical, title, for_dialog(text))
    done = asyncio.get_running_loop().create_future()
    box.finished.connect(lambda *_: None if done.done() else done.set_result(None))
    box.open()
    await done


async def run_window(options: Options, window_ready: asyncio.Future[MainWindow] | None = None) -> int:
    """Start the embedded backend's process, show the window meanwhile, then sync; returns the exit code."""
    spawned: ChildConnection | None = None
    if options.connect is None:
        try:
            spawned = spawn_embedded(options)  # first: the child restores while the window is built
        except LeaError as exc:
            await show_fatal("LEA cannot start", exc.message)
            return 1
    controller = Controller()
    gc_schedule = tune_gc(controller)
    window = MainWindow(
        controller, settings(options.demo), data_dir=str(options.data_dir), demo=options.demo,
        log_path=str(options.log_path or ""),
    )
    window.show()
    close_on_signals(window)
    closed = asyncio.Event()
    window.closed.connect(closed.set)
    window.switch_backend = lambda choice: asyncio.ensure_future(switch_backend(window, controller, options, choice))
    connection: Connection | None
    try:
        connection = await open_connection(options, spawned)
    except (LeaError, ConnectionLost) as exc:
        message = error_text(exc)
        log.error("cannot open the backend: %s", message)
        if options.connect is not None:
            # A wrong address or token: the connect dialog, with the error, offers a way forward.
            connection = await connect_interactively(window, options, message)
        else:
            window.hide()
            locked = isinstance(exc, LeaError) and exc.code == "data_dir_locked"
            await show_fatal("LEA is already running" if locked else "LEA cannot start", message)
            connection = None
        if connection is None:
            window.force_close()
            return 1
    await controller.start(connection)
    if window_ready is not None:
        window_ready.set_result(window)
    await closed.wait()
    await controller.close()
    gc_schedule.stop()  # started once live (the early returns above come before)
    return 0


def error_text(exc: LeaError | ConnectionLost) -> str:
    return exc.message if isinstance(exc, LeaError) else str(exc)


async def ask_connection(dialog: ConnectDialog) -> ConnectionChoice | None:
    """Show ``dialog`` without blocking the loop; the choice, or None when it was cancelled."""
    done: asyncio.Future[ConnectionChoice | None] = asyncio.get_running_loop().create_future()
    dialog.finished.connect(lambda *_: None if done.done() else done.set_result(dialog.choice))
    dialog.open()
    return await done


async def connect_interactively(window: MainWindow, options: Options, error: str) -> Connection | None:
    """The connect dialog showing why the start-up connection failed, until a backend answers or
    the user cancels (None)."""
    url, token = options.connect or "", options.token or ""
    while True:
        dialog = ConnectDialog(url, window, token=token)
        dialog.show_error(f"Could not connect: {error}")
        window.connect_dialog = dialog
        choice = await ask_connection(dialog)
        dialog.deleteLater()
        if choice is None:
            return None
        try:
            connection = await open_connection(choice_options(options, choice))
        except (LeaError, ConnectionLost) as exc:
            error, url, token = error_text(exc), choice.url, choice.token
            log.info("cannot connect to %s: %s", choice.url or "the embedded backend", error)
            continue
        remember_token(window, choice)
        if choice.remote:
            window.data_dir = "(on the server)"
        return connection


def choice_options(options: Options, choice: ConnectionChoice) -> Options:
    return Options(options.data_dir, options.demo, options.demo_delay_scale, choice.url or None, choice.token)


def remember_token(window: MainWindow, choice: ConnectionChoice) -> None:
    from lea_app.credentials import save_token

    if choice.remote and choice.remember and choice.token and not save_token(choice.url, choice.token):
        window.show_message("warning", "The token could not be saved in a keyring; it is used for this session only.")


def close_on_signals(window: MainWindow) -> None:
    """Ctrl+C or SIGTERM closes the window, so the backend's child process shuts down cleanly (final
    checkpoint) before LEA exits."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: QTimer.singleShot(0, window.force_close))
    # Python runs signal handlers only between bytecodes; a idle timer gives it the chance.
    ticker = QTimer(window)
    ticker.timeout.connect(lambda: None)
    ticker.start(250)


async def switch_backend(window: MainWindow, controller: Controller, options: Options, choice: Any) -> None:
    """Connect the running window to another backend chosen in the connection dialog."""
    try:
        connection = await open_connection(choice_options(options, choice))
    except (LeaError, ConnectionLost) as exc:
        window.show_message("error", f"Could not connect: {error_text(exc)}")
        return
    remember_token(window, choice)
    await controller.switch(connection)
    window.data_dir = str(options.data_dir) if not choice.remote else "(on the server)"
    window.show_message("info", f"Connected to {connection.description}")


def run(options: Options) -> int:
    options.log_path = setup_logging(options.data_dir)
    return run_coroutine(run_window(options))


#: How often the scheduled collector runs a young collection once LEA is live (resources/gc_policy.py).
GC_TICK_MS = 25


def schedule_collections(collector: ScheduledCollector | None = None) -> tuple[ScheduledCollector, QTimer]:
    """Freeze what is alive, switch the automatic collector off and run ``collector.tick`` from the
    event loop every ``GC_TICK_MS``: the young generation is collected between the window's own
    steps, never in the middle of one, and is short because it holds only the last tick's objects.
    The caller keeps the timer (a dropped QTimer stops)."""
    collector = collector or ScheduledCollector()
    collector.start()
    timer = QTimer()
    timer.setInterval(GC_TICK_MS)
    timer.timeout.connect(collector.tick)
    timer.start()
    return collector, timer


def tune_gc(controller: Controller | None = None) -> GcSchedule:
    """Keep the garbage collector from freezing the window.

    With 10,000 resources in the store a full collection walks ~700,000 objects (0.3-1.9 s
    measured by bench/gui_burst.py). A higher threshold makes collections rare during start-up, and
    once the first snapshot is applied everything loaded so far is frozen - without a full
    collection first: that one cost 110-140 ms of the UI thread right before the first paint, to
    free 58 unreachable objects (measured with 10,000 resources; docs/decisions.md) - and the
    collections move onto the event loop's schedule (:func:`schedule_collections`).
    """
    raise_gc_threshold()
    schedule = GcSchedule(controller)
    if controller is not None:
        controller.sync_state_changed.connect(schedule.on_state)
    return schedule


class GcSchedule:
    """The scheduled collector of one window, started the first time the sync engine is live."""

    def __init__(self, controller: Controller | None = None) -> None:
        self.controller = controller
        self.collector: ScheduledCollector | None = None
        self.timer: QTimer | None = None

    def on_state(self, state: str) -> None:
        if state == "live" and self.collector is None:
            # Quiet means no event applied too: a steady stream allocates about as much as it frees.
            self.collector, self.timer = schedule_collections(ScheduledCollector(activity=self.applied))

    def applied(self) -> int | None:
        """The last applied revision (None when not connected)."""
        try:
            return self.controller.engine.revision if self.controller is not None else None
        except LeaError:
            return None

    def stop(self) -> None:
        """The timer stopped and the automatic collector back on (the window is gone)."""
        if self.timer is not None:
            self.timer.stop()
        if self.collector is not None:
            self.collector.stop()


def make_application() -> QApplication:
    """The QApplication, named as the desktop knows LEA: X11's WM_CLASS is ("lea-desktop",
    "LEA desktop") - the instance from argv[0], which is why it is not the script's name - and
    Wayland's app id is the desktop entry's name (packaging/linux/lea-desktop.desktop)."""
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication([APP_NAME])
    app.setApplicationName("LEA desktop")
    app.setApplicationDisplayName("LEA desktop")
    app.setOrganizationName(APP_NAME)
    app.setDesktopFileName(APP_NAME)  # matches the installed lea-desktop.desktop entry (Wayland)
    app.setWindowIcon(app_icon())
    return app


def run_coroutine(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on a qasync loop over a QApplication; close the loop before the app goes."""
    app = make_application()
    app.setQuitOnLastWindowClosed(False)  # we quit after the backend has shut down cleanly
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    try:
        return int(loop.run_until_complete(main))
    finally:
        loop.close()  # before the QApplication goes away
