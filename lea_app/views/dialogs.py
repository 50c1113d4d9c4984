"""Small dialogs: delete confirmations that name what blocks a delete, and the About box."""

from __future__ import annotations

import html
from collections.abc import Callable
from importlib.metadata import version

from PySide6.QtCore import Qt, QUrl
from PySide6.QtWidgets import QMessageBox, QWidget

from lea_app.models.wording import for_dialog
from lea_app.sync.store import Store
from lea_app.views.app_icon import app_icon
from resources import rules
from resources.app import APP_NAME
from resources.cluster import ClusterDescriptor
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor


def peer_delete_blockers(store: Store, peer: PeerDescriptor) -> str | None:
    """What the backend would refuse the delete with (``resources.rules.peer_in_use``), and what to do."""
    error = rules.peer_in_use(store, peer.id)
    if error is None:
        return None
    return f"{for_dialog(error.message)} Remove it from those clusters (or delete them) first."


def cluster_delete_blockers(store: Store, cluster: ClusterDescriptor) -> str | None:
    """What the backend would refuse the delete with (``resources.rules.cluster_deployed``)."""
    error = rules.cluster_deployed(store, cluster.id, "deleted")
    return for_dialog(error.message) if error is not None else None


def confirm_delete(
    parent: QWidget, what: str, name: str, blocker: str | None, on_confirm: Callable[[], None], detail: str = ""
) -> QMessageBox:
    """A non-modal confirmation; when something blocks the delete it says what, and offers no Delete."""
    box = QMessageBox(parent)
    box.setObjectName("deleteConfirmation")
    box.setWindowTitle(f"Delete {what}")
    if blocker is not None:
        box.setIcon(QMessageBox.Icon.Warning)
        box.setText(blocker)
        box.setStandardButtons(QMessageBox.StandardButton.Close)
    else:
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(f"Delete {what} '{name}'?")
        box.setInformativeText(detail or "Its history stays in the event log.")
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: on_confirm() if button is delete else None)
    box.open()
    return box


def cluster_benches(store: Store, cluster: ClusterDescriptor) -> list[str]:
    """The names of the cluster's benches, the leader first and marked, then the others by name."""
    names = []
    for peer_id in store.members(cluster.id):
        peer = store.get(ResourceKind.PEER, peer_id)
        name = peer.name if isinstance(peer, PeerDescriptor) else str(peer_id)[:8]
        leader = peer_id == cluster.leader
        names.append((not leader, name.casefold(), f"{name} (leader)" if leader else name))
    return [shown for *_, shown in sorted(names)]


def confirm_undeploy(parent: QWidget, name: str, benches: list[str], on_confirm: Callable[[], None]) -> QMessageBox:
    """A non-modal confirmation naming the cluster and the benches its configuration is removed from."""
    box = QMessageBox(parent)
    box.setObjectName("undeployConfirmation")
    box.setWindowTitle("Undeploy cluster")
    box.setIcon(QMessageBox.Icon.Warning)
    box.setText(f"Undeploy cluster '{name}'?")
    count = f"{len(benches)} bench{'es' if len(benches) != 1 else ''}"
    box.setInformativeText(
        f"Its configuration is removed from its {count}: {', '.join(benches)}. Tests running on them lose "
        "the cluster's network. An offline bench is cleaned up when it reconnects."
    )
    undeploy = box.addButton("Undeploy", QMessageBox.ButtonRole.DestructiveRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Cancel)
    box.buttonClicked.connect(lambda button: on_confirm() if button is undeploy else None)
    box.open()
    return box


def cluster_summary(store: Store, cluster: ClusterDescriptor) -> str:
    members = store.members(cluster.id)
    return f"{len(cluster.devices)} devices on {len(members)} peers. Peers and devices are not deleted."


LICENCE_URL = "https://www.apache.org/licenses/LICENSE-2.0"
OPENDUT_URL = "https://opendut.eclipse.dev/"


def about_text(description: str, data_dir: str, demo: bool, log_path: str = "") -> str:
    log = (
        f'<br><b>Log file:</b> <a href="{QUrl.fromLocalFile(log_path).toString()}">{html.escape(log_path)}</a>'
        if log_path else "<br><b>Log file:</b> none (the data directory is not writable)"
    )
    return (
        f"<h3>LEA desktop {version(APP_NAME)}</h3>"
        "<p>Manage test benches, group their devices into clusters and deploy them, live.</p>"
        f"<p><b>Backend:</b> {html.escape(description)}<br><b>Data directory:</b> {html.escape(data_dir)}{log}"
        + ("<br><b>Demo mode:</b> the benches are a labelled simulation." if demo else "")
        + f'</p><p><b>Licence:</b> <a href="{LICENCE_URL}">Apache License 2.0</a>'
        + f'<br>Domain after <a href="{OPENDUT_URL}">Eclipse openDuT</a> (CARL, EDGAR, LEA).</p>'
    )


def show_about(parent: QWidget, description: str, data_dir: str, demo: bool, log_path: str = "") -> QMessageBox:
    box = QMessageBox(parent)
    box.setObjectName("aboutBox")
    box.setWindowTitle("About LEA desktop")
    box.setIconPixmap(app_icon().pixmap(64, 64))
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(about_text(description, data_dir, demo, log_path))
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)  # links open, text selectable
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
    return box
