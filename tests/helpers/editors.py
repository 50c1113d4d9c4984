"""Helpers for the editor tests: an empty embedded backend (one child process per test module,
emptied after each test), a live Controller on it, and a second writer (``env.other``) for changes
made underneath.

``open_editor_env`` is the body of a fixture that also needs ``aloop`` from tests/gui/conftest.py
(qasync driven by qtbot); the test module wraps it in its own fixture.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID

from pytestqt.qtbot import QtBot
from shiboken6 import isValid

from lea_app.connection.remote import RemoteConnection
from lea_app.controller import Controller
from lea_app.views.editors.base import ResourceEditor
from lea_app.views.editors.cluster import ClusterEditor
from lea_app.views.editors.peer import PeerEditor
from resources.cluster import ClusterDescriptor
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor
from tests.helpers.child import OtherWriter, SharedChild, lookup, wipe
from tests.helpers.qt import run

T = TypeVar("T")
R = TypeVar("R", PeerDescriptor, ClusterDescriptor)
E = TypeVar("E", bound=ResourceEditor[Any])


@dataclass
class EditorEnv:
    qtbot: QtBot
    controller: Controller
    connection: RemoteConnection
    #: Someone else, with a token of their own ("someone-else"): writes LEA has not heard of yet.
    other: OtherWriter
    editors: list[ResourceEditor[Any]] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return run(self.qtbot, coro)

    @property
    def revision(self) -> int:
        """The backend's own revision: unchanged means nothing was stored."""
        return self.run(self.connection.fetch_snapshot()).revision

    def backend(self, kind: ResourceKind, id: UUID) -> Any:
        return self.run(lookup(self.connection, kind, id))

    def put(self, resource: R) -> R:
        """Store through the connection, then wait until LEA's store has it."""
        if isinstance(resource, PeerDescriptor):
            result = self.run(self.connection.store_peer_descriptor(resource))
        else:
            result = self.run(self.connection.store_cluster_descriptor(resource))
        self.wait_version(resource.kind, resource.id, result.version)
        stored = self.controller.store.get(resource.kind, resource.id)
        assert isinstance(stored, type(resource))
        return stored

    def deploy(self, cluster_id: UUID) -> None:
        self.run(self.connection.store_cluster_deployment(cluster_id))
        self.qtbot.waitUntil(lambda: cluster_id in self.controller.store.all(ResourceKind.CLUSTER_DEPLOYMENT))

    def wait_version(self, kind: ResourceKind, id: UUID, version: int) -> None:
        def arrived() -> bool:
            current = self.controller.store.get(kind, id)
            return current is not None and current.version >= version

        self.qtbot.waitUntil(arrived, timeout=5_000)

    def peer_editor(self, peer_id: UUID | None = None) -> PeerEditor:
        return self._show(PeerEditor(self.controller, peer_id, None))

    def cluster_editor(self, cluster_id: UUID | None = None) -> ClusterEditor:
        return self._show(ClusterEditor(self.controller, cluster_id, None))

    def _show(self, editor: E) -> E:
        self.editors.append(editor)
        editor.show()
        return editor


def open_editor_env(qtbot: QtBot, child: SharedChild) -> Iterator[EditorEnv]:
    """The module's backend, empty; LEA's controller live on it; editors closed and the backend
    emptied again at the end."""
    connection = child.connect()
    controller = Controller()
    run(qtbot, controller.start(connection))
    qtbot.waitUntil(lambda: controller.live, timeout=10_000)
    env = EditorEnv(qtbot, controller, connection, OtherWriter(child.info.url, child.other_token))
    controller.message.connect(lambda level, text: env.messages.append((level, text)))
    yield env
    for editor in env.editors:
        if isValid(editor):
            editor.discard()
    env.other.close()
    run(qtbot, wipe(connection))
    run(qtbot, controller.close())
