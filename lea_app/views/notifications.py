"""News of deployments: a deployment finished, failed, degraded, recovered, or an undeploy is done.

``DeploymentNews`` watches the cluster states in the store and says, in a sentence, what changed;
``DesktopNotifier`` also shows it as a desktop notification (``QSystemTrayIcon.showMessage``) where
the desktop has a system tray and LEA's window is not the active one: the window's own message bar
shows it in any case. News is said NEWS_MS after it happens, together with what else happened
meanwhile: more than NEWS_EACH of one kind (a "Deploy all", a lab switch that drops a row of benches)
are one sentence that names the first few, not a queue of hundreds of messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from lea_app.controller import Controller
from lea_app.models.resources import is_degraded, peer_names_of, status_detail
from lea_app.sync.store import StoreChange
from resources.cluster import ClusterDescriptor
from resources.kinds import ResourceKind
from resources.state import ClusterState, ClusterStatus, Deployed, Deploying, Failed, Undeployed, Undeploying

#: How long news waits for more of its kind (ms): what happens within it is said together.
NEWS_MS = 250
#: More news of one kind than this within NEWS_MS are said as one sentence.
NEWS_EACH = 3
#: The title and the sentence of many news of one kind, by the title of one.
SUMMARIES = {
    "Deployment finished": ("Deployments finished", "{n} clusters deployed"),
    "Deployment failed": ("Deployments failed", "{n} deployments failed (the event log says why)"),
    "Cluster degraded": ("Clusters degraded", "{n} clusters are degraded"),
    "Cluster healthy again": ("Clusters healthy again", "{n} clusters are healthy again"),
    "Undeployment finished": ("Undeployments finished", "{n} clusters undeployed"),
}


@dataclass(frozen=True)
class News:
    level: str  # "info" | "warning" | "error"
    title: str
    text: str
    clusters: tuple[str, ...]  # the names of the clusters it is about


def summarise(news: Sequence[News], each: int = NEWS_EACH) -> list[News]:
    """What to say of ``news``: each one as it happened or, when some kind (level and title) has more
    than ``each``, one sentence for that kind naming its first ``each`` clusters by name (kinds in
    the order they first happened)."""
    kinds: dict[tuple[str, str], list[News]] = {}
    for item in news:
        kinds.setdefault((item.level, item.title), []).append(item)
    if all(len(items) <= each for items in kinds.values()):
        return list(news)
    said: list[News] = []
    for (level, title), items in kinds.items():
        if len(items) <= each:
            said.extend(items)
            continue
        names = tuple(sorted({name for item in items for name in item.clusters}, key=str.casefold))
        plural, sentence = SUMMARIES.get(title, (title, f"{{n}} times: {title.lower()}"))
        listed = ", ".join(f"'{name}'" for name in names[:each])
        more = f" and {len(names) - each} more" if len(names) > each else ""
        said.append(News(level, plural, f"{sentence.format(n=len(items))}: {listed}{more}", names))
    return said


class DeploymentNews(QObject):
    #: level ("info" | "warning" | "error"), title, text, the names of the clusters it is about
    news = Signal(str, str, str, list)

    def __init__(self, controller: Controller, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        self._known: dict[UUID, ClusterStatus] = {}
        # Until LEA is first live, what arrives is what already was (the first snapshot): no news.
        self._primed = False
        self._pending: list[News] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(NEWS_MS)
        self._timer.timeout.connect(self._say)
        controller.sync_state_changed.connect(self._sync_state_changed)
        self.destroyed.connect(self.store.listen(self._on_change))

    def _sync_state_changed(self, state: str) -> None:
        if state == "live":
            self._primed = True

    def _on_change(self, change: StoreChange) -> None:
        if change.kind != ResourceKind.CLUSTER_STATE:
            return
        for id in change.inserted | change.changed:
            resource = self.store.get(ResourceKind.CLUSTER_STATE, id)
            if not isinstance(resource, ClusterState):
                continue
            before = self._known.get(id)
            self._known[id] = resource.state
            if self._primed:
                self._tell(id, before, resource.state)
        for id in change.removed:
            before = self._known.pop(id, None)
            if self._primed:
                self._tell(id, before, Undeployed())

    def _tell(self, id: UUID, before: ClusterStatus | None, now: ClusterStatus) -> None:
        name = self._name(id)
        said = news_of(name, before, now, lambda ids: peer_names_of(self.store.get, ids))
        if said is not None:
            self._pending.append(News(*said, (name,)))
            if not self._timer.isActive():
                self._timer.start()

    def _say(self) -> None:
        pending, self._pending = self._pending, []
        for item in summarise(pending):
            self.news.emit(item.level, item.title, item.text, list(item.clusters))

    def _name(self, id: UUID) -> str:
        cluster = self.store.get(ResourceKind.CLUSTER, id)
        return cluster.name if isinstance(cluster, ClusterDescriptor) else str(id)[:8]


def news_of(
    name: str, before: ClusterStatus | None, now: ClusterStatus, names: Callable[[Iterable[UUID]], tuple[str, ...]]
) -> tuple[str, str, str] | None:
    """(level, title, text) of the change from ``before`` to ``now``, or None when it is no news.

    ``names`` gives the names of peers by id (the store's, in LEA).
    """
    was_degraded = before is not None and is_degraded(before)
    if isinstance(now, Failed):
        if isinstance(before, Failed):
            return None
        where = f" on {names((now.peer,))[0]}" if now.peer is not None else ""
        return "error", "Deployment failed", f"Deployment of '{name}' failed{where}: {now.reason}"
    if is_degraded(now):
        if was_degraded:
            return None
        return "warning", "Cluster degraded", f"Cluster '{name}' is degraded: {status_detail(now)}"
    if isinstance(now, Deployed):
        if was_degraded:
            return "info", "Cluster healthy again", f"Cluster '{name}' is healthy again: every member is back"
        if isinstance(before, Deploying) and before.peers:
            benches = len(before.peers)
            where = f"{benches} bench{'es' if benches != 1 else ''}"
            return "info", "Deployment finished", f"Cluster '{name}' deployed: {before.total} parameters on {where}"
        if before is not None and not isinstance(before, Deployed):
            return "info", "Deployment finished", f"Cluster '{name}' deployed"
        return None
    if isinstance(now, Undeployed) and isinstance(before, Undeploying):
        return "info", "Undeployment finished", f"Cluster '{name}' undeployed"
    return None


class DesktopNotifier(QObject):
    """Shows news as a desktop notification where there is a system tray, while ``window`` is not active."""

    def __init__(self, window: QWidget, icon: QIcon) -> None:
        super().__init__(window)
        self.window = window
        self.icon = icon
        self._tray: QSystemTrayIcon | None = None
        self.shown = 0

    def notify(self, level: str, title: str, text: str) -> bool:
        """True when a desktop notification was shown."""
        if self.window.isActiveWindow() or not QSystemTrayIcon.isSystemTrayAvailable():
            return False
        if self._tray is None:
            self._tray = QSystemTrayIcon(self.icon, self)
            self._tray.setToolTip("LEA desktop")
            self._tray.activated.connect(self._raise_window)
            self._tray.messageClicked.connect(self._raise_window)
        self._tray.show()  # a tray icon must be visible for its messages to show
        kind = {
            "error": QSystemTrayIcon.MessageIcon.Critical,
            "warning": QSystemTrayIcon.MessageIcon.Warning,
        }.get(level, QSystemTrayIcon.MessageIcon.Information)
        self._tray.showMessage(title, text, kind, 10_000)
        self.shown += 1
        return True

    def _raise_window(self, *_: object) -> None:
        self.window.showNormal()
        self.window.raise_()
        self.window.activateWindow()

