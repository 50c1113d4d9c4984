"""What both editors share: non-modal dialogs validated on every edit.

Validation is the backend's own: the form is turned into the pydantic model on each edit and its
errors (``invalid_resource_from``, in plain words) are shown next to the field they name, plus the
cross-resource rules LEA can pre-check from its store. A problem shows once the user has changed one
of the inputs it is about, or tried to save: a new editor opens without a single error. A refusal
from the backend is shown the same way and the form keeps everything typed. A banner says when the
resource changes underneath an open editor.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Sequence
from typing import ClassVar, Generic, TypeVar
from uuid import UUID

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import isValid

from lea_app.controller import Controller
from lea_app.sync.store import StoreChange
from lea_app.views.editors.problems import (
    Data,
    Placed,
    Problem,
    name_taken,
    place,
    refusal_problems,
    validation_problems,
    without_ids,
)
from lea_app.views.editors.widgets import Banner, ErrorTarget, repolish
from lea_app.views.message_bar import MessageBar
from resources.cluster import ClusterDescriptor
from resources.errors import Conflict, LeaError
from resources.events import WriteResult
from resources.kinds import ResourceKind
from resources.peer import PeerDescriptor

EDITOR_STYLE = """
*[invalid="true"] { border: 1px solid #c42b1c; border-radius: 2px; }
QLabel#fieldError { color: #a4262c; }
QLabel#saveSummary[tone="error"] { color: #a4262c; }
QLabel#saveSummary[tone="info"] { color: #5f5f5f; }
QLabel#readOnlyNote { background: #e8f1fb; color: #163f6b; border: 1px solid #a9c7ea; border-radius: 4px;
                      padding: 6px 10px; }
"""
#: How long store changes are gathered before an editor reacts (a burst becomes one refresh).
STORE_COALESCE_MS = 50

M = TypeVar("M", bound=PeerDescriptor | ClusterDescriptor)


class ResourceEditor(QDialog, Generic[M]):
    """What both editors share: the warning banner, refusal message, read-only note, error routing,
    the save flow (expected_version = the version loaded) and closing without losing work unasked.

    Subclasses build the form, turn it into data for the model, and say what the store forbids.
    """

    kind: ClassVar[ResourceKind]
    noun: ClassVar[str]
    #: Store changes of these kinds may change what the editor shows, allows or forbids.
    watched: ClassVar[frozenset[ResourceKind]] = frozenset(
        {ResourceKind.PEER, ResourceKind.CLUSTER, ResourceKind.CLUSTER_DEPLOYMENT}
    )

    def __init__(self, controller: Controller, resource_id: UUID | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.store = controller.store
        self.is_new = resource_id is None
        self.resource_id: UUID = resource_id or uuid.uuid4()
        self.loaded_version: int | None = None
        self.targets: dict[str, ErrorTarget] = {}
        self.problems: list[Problem] = []  # the local ones: they block saving
        self._refusal: list[Problem] = []  # the backend's, shown until the next edit
        self._valid: M | None = None
        self._clean: Data = {}
        self._loading = False
        self._saving = False
        self._stale_version: int | None = None
        self._deleted = False
        self._read_only: str | None = None
        self.discard_box: QMessageBox | None = None
        self._focus_before_save: QWidget | None = None
        # What the user touched: each input's value when it was first seen (loaded or added), the
        # inputs whose value has differed from it since, and whether a save was attempted.
        self._baseline: dict[QWidget, object] = {}
        self._touched: set[QWidget] = set()
        self._show_all = False

        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setModal(False)
        self.setStyleSheet(EDITOR_STYLE)
        self.banner = Banner(self.reload)
        self.refusal = MessageBar()
        self.read_only_note = QLabel()
        self.read_only_note.setObjectName("readOnlyNote")
        self.read_only_note.setWordWrap(True)
        self.read_only_note.hide()
        self.body = QWidget()
        body = QVBoxLayout(self.body)
        body.setContentsMargins(0, 0, 0, 0)
        self.build(body)
        self.summary = QLabel()
        self.summary.setObjectName("saveSummary")
        self.summary.setWordWrap(True)
        self.save_button = QPushButton("&Save")
        self.save_button.setToolTip("Save (Ctrl+S)")
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.save)
        self.close_button = QPushButton("Close")
        self.close_button.setAutoDefault(False)
        self.close_button.clicked.connect(self.reject)
        self._layout()
        QShortcut(QKeySequence(QKeySequence.StandardKey.Save), self).activated.connect(self.save)

        self._store_timer = QTimer(self)
        self._store_timer.setSingleShot(True)
        self._store_timer.setInterval(STORE_COALESCE_MS)
        self._store_timer.timeout.connect(self._store_changed)
        unlisten = self.store.listen(self._on_store_change)
        self._unlisten = unlisten
        self.destroyed.connect(lambda *_: unlisten())
        controller.sync_state_changed.connect(self._refresh)
        controller.identity_changed.connect(self._refresh)

        existing = self.store.get(self.kind, resource_id) if resource_id is not None else None
        self.load(existing if isinstance(existing, self.model_type()) else None)
        if resource_id is not None and existing is None:
            self._deleted = True
            self.banner.show_warning(f"This {self.noun} does not exist (any more).", reload=False)
        self._refresh()
        self.first_input().setFocus()

    def _layout(self) -> None:
        root = QVBoxLayout(self)
        for widget in (self.banner, self.refusal, self.read_only_note):
            root.addWidget(widget)
        root.addWidget(self.body, 1)
        footer = QHBoxLayout()
        footer.addWidget(self.summary, 1)
        footer.addWidget(self.save_button)
        footer.addWidget(self.close_button)
        root.addLayout(footer)

    # -- what a subclass provides ----------------------------------------------------------
    def model_type(self) -> type[M]:
        raise NotImplementedError

    def build(self, body: QVBoxLayout) -> None:
        """Create the inputs, register each in ``targets`` by its top-level field name."""
        raise NotImplementedError

    def fill(self, resource: M | None) -> None:
        """Show ``resource`` (None: an empty form for a new one)."""
        raise NotImplementedError

    def form_data(self) -> Data:
        """What the form says, in the model's shape (numbers as typed)."""
        raise NotImplementedError

    def store_problems(self, data: Data) -> list[Problem]:
        """The backend's cross-resource rules that the store can pre-check."""
        return name_taken(self.store, self.kind, self.resource_id, str(data.get("name", "")))

    def blocked_reason(self) -> str | None:
        """Why this resource cannot be changed now (e.g. deployed), or None."""
        return None

    def name_of(self, id: str) -> str | None:
        """The name of an id a rule mentions (what the form or the store knows), for its message."""
        return None

    def refresh_choices(self) -> None:
        """Bring choices that come from the store (peers, devices) up to date."""

    def on_edit(self) -> None:
        """Keep dependent inputs in step after an edit."""

    def tab_sequence(self) -> list[QWidget]:
        raise NotImplementedError

    async def write(self, resource: M, expected_version: int | None, create_only: bool) -> WriteResult:
        raise NotImplementedError

    # -- loading and state -----------------------------------------------------------------
    def load(self, resource: M | None) -> None:
        self._loading = True
        try:
            self.fill(resource)
        finally:
            self._loading = False
        self.loaded_version = resource.version if resource is not None else None
        self._stale_version = None
        self._deleted = False
        self._refusal = []
        self.banner.hide()
        self.refusal.hide()
        self._clean = self.form_data()
        self._baseline.clear()
        self._touched.clear()
        self._show_all = False
        self._note_touched()
        title = f"New {self.noun}" if resource is None else f"{self.noun.capitalize()} '{resource.name}'"
        self.setWindowTitle(f"{title} — LEA")
        self.update_tab_order()

    def first_input(self) -> QWidget:
        return self.tab_sequence()[0]

    def update_tab_order(self) -> None:
        chain = [self.banner.reload_button, *self.tab_sequence(), self.save_button, self.close_button]
        for before, after in itertools.pairwise(chain):
            QWidget.setTabOrder(before, after)

    def is_dirty(self) -> bool:
        return self.form_data() != self._clean

    def edited(self, *_: object) -> None:
        """Any user edit: the backend's last refusal no longer applies to what is typed."""
        if self._loading:
            return
        self._refusal = []
        self.on_edit()
        self.revalidate()

    def _refresh(self, *_: object) -> None:
        if not isValid(self):
            return
        self._read_only = self.read_only_reason()
        self.body.setEnabled(self._read_only is None and not self._saving)  # no edits while a save is on its way
        self.read_only_note.setText(self._read_only or "")
        self.read_only_note.setVisible(self._read_only is not None)
        self.revalidate()

    def read_only_reason(self) -> str | None:
        if not self.is_new and (reason := self.blocked_reason()):
            return reason
        if not self.controller.identity.can_write:
            return f"Read-only: your role ({self.controller.identity.role}) cannot change {self.noun}s."
        if not self.controller.live:
            return "Read-only until LEA is back in sync with the backend."
        return None

    # -- what the user touched -------------------------------------------------------------
    def touch_inputs(self) -> list[tuple[QWidget, Callable[[], object]]]:
        """Every input of the form with its value (subclasses add inputs of their own kind)."""
        found: list[tuple[QWidget, Callable[[], object]]] = []
        for edit in self.body.findChildren(QLineEdit):
            found.append((edit, edit.text))
        for combo in self.body.findChildren(QComboBox):
            found.append((combo, combo.currentData))
        for check in self.body.findChildren(QCheckBox):
            found.append((check, check.isChecked))
        return found

    def _note_touched(self) -> None:
        for widget, value in self.touch_inputs():
            now = value()
            if widget not in self._baseline:
                self._baseline[widget] = now  # first seen (a new row): untouched
            elif now != self._baseline[widget]:
                self._touched.add(widget)

    def is_shown(self, problem: Problem) -> bool:
        """A problem is shown once the user changed an input it is about, or tried to save."""
        if self._show_all:
            return True
        placed = place(problem, self.targets)
        if placed is None:
            return True  # named by no input: only the summary says it
        target, where = self.targets[placed[0]], placed[1]
        if where.row is None and target.user_changed():
            return True  # about the table as a whole (a removed row): the user changed it
        return any(w in self._touched for w in target.inputs_for(where))

    # -- validation ------------------------------------------------------------------------
    def revalidate(self) -> None:
        self._note_touched()
        data = self.form_data()
        valid, found = validation_problems(self.model_type().model_validate, data, self.name_of)
        problems = [*found, *self.store_problems(data)]
        self.problems = problems
        self._valid = valid if not problems else None
        self._show_problems([p for p in problems if self.is_shown(p)] + self._refusal)
        self._update_save()

    def describe(self, problem: Problem) -> str:
        placed = place(problem, self.targets)
        if placed is None:
            return f"{problem.field}: {problem.rule}"
        key, where = placed
        return f"{self.targets[key].describe(where.row, where.field)}: {problem.rule}"

    def _show_problems(self, problems: Sequence[Problem]) -> None:
        by_target: dict[str, list[Placed]] = {key: [] for key in self.targets}
        for problem in problems:
            placed = place(problem, self.targets)
            if placed is not None:
                by_target[placed[0]].append(placed[1])
        for key, target in self.targets.items():
            target.show_errors(by_target[key])

    def save_blocker(self) -> tuple[str, str] | None:
        """Why Save is disabled now, as (summary, tone), or None when it is enabled."""
        if self._read_only is not None:
            return "", "info"
        if self._saving:
            return "Saving…", "info"
        if self._deleted:
            return f"This {self.noun} no longer exists, so it cannot be saved.", "error"
        if self._stale_version is not None:
            return f"Reload before saving: this {self.noun} was changed by someone else.", "error"
        if not self.is_new and not self.is_dirty():
            return "No changes.", "info"
        shown = [p for p in self.problems if self.is_shown(p)]
        if shown:
            more = len(shown) - 1
            extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
            return f"Cannot save: {self.describe(shown[0])}{extra}.", "error"
        return None

    def to_fill_in(self) -> str:
        """What the form still needs, in words, while its problems are not shown yet."""
        titles = []
        for problem in self.problems:
            placed = place(problem, self.targets)
            if placed is not None:
                titles.append(self.targets[placed[0]].describe(None, "").lower())
        names = list(dict.fromkeys(titles))
        if not names:
            return ""
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
        return f"To save, fill in the {listed}."

    def _update_save(self) -> None:
        blocker = self.save_blocker()
        self.save_button.setEnabled(blocker is None)
        text, tone = blocker or (self.to_fill_in() if self.problems else "", "info")
        self.summary.setText(text)
        if self.summary.property("tone") != tone:
            self.summary.setProperty("tone", tone)
            repolish(self.summary)

    # -- saving ----------------------------------------------------------------------------
    def save(self) -> None:
        if not self._show_all and self.problems:
            self._show_all = True  # an attempt to save: every problem shows now
            self.revalidate()
            self._focus_first_problem()
            return
        self.revalidate()
        resource = self._valid
        if resource is None or not self.save_button.isEnabled():
            return
        expected = None if self.is_new else self.loaded_version
        create_only = self.is_new
        self._saving = True
        self._focus_before_save = self.focusWidget()
        self.refusal.hide()
        self._refresh()
        self.controller.run(
            lambda: self.write(resource, expected, create_only),
            success=f"{self.noun.capitalize()} '{resource.name}' saved",
            on_done=self._saved,
            on_error=self._refused,
        )

    def _focus_first_problem(self) -> None:
        for problem in self.problems:
            placed = place(problem, self.targets)
            if placed is not None:
                inputs = [w for w in self.targets[placed[0]].inputs_for(placed[1]) if w.isEnabled()]
                if inputs:
                    inputs[0].setFocus(Qt.FocusReason.OtherFocusReason)
                    return

    def _saved(self, result: WriteResult) -> None:
        if not isValid(self):
            return
        self._saving = False
        self.loaded_version = result.version
        self._clean = self.form_data()
        self.accept()

    def _refused(self, error: LeaError) -> None:
        if not isValid(self):  # closed meanwhile: say it in the main window instead
            self.controller.message.emit("error", error.message)
            return
        self._saving = False
        self.refusal.show_message("error", f"Not saved: {without_ids(error.message)}")
        if isinstance(error, Conflict):
            current = self.store.get(self.kind, self.resource_id)
            actual = current.version if current is not None else error.details.get("actual", "?")
            self._show_changed(actual)
        self._refusal = refusal_problems(error)
        self._check_own_version()  # skipped while the save was on its way
        self._refresh()
        focus = self._focus_before_save
        if focus is not None and isValid(focus) and focus.isEnabled():
            focus.setFocus()  # the form was disabled while saving: the keyboard user carries on where they were

    # -- the resource changing underneath ------------------------------------------------------
    def _on_store_change(self, change: StoreChange) -> None:
        if change.kind in self.watched and isValid(self):
            self._store_timer.start()

    def _store_changed(self) -> None:
        self.refresh_choices()
        self._check_own_version()
        self._refresh()

    def _check_own_version(self) -> None:
        if self._saving or self.is_new:
            return  # our own save's event arrives before its reply: not someone else's change
        current = self.store.get(self.kind, self.resource_id)
        if current is None:
            self._deleted = True
            self.banner.show_warning(
                f"This {self.noun} was deleted by someone else. It can no longer be saved.", reload=False
            )
        elif current.version != self.loaded_version:
            self._show_changed(current.version)

    def _show_changed(self, version: object) -> None:
        self._stale_version = version if isinstance(version, int) else -1
        self.banner.show_warning(
            f"This {self.noun} was changed by someone else (version {version}). "
            "Saving will be refused; Reload to take their changes.",
            reload=True,
        )

    def reload(self) -> None:
        current = self.store.get(self.kind, self.resource_id)
        if isinstance(current, self.model_type()):
            self.load(current)
            self._refresh()

    # -- closing ---------------------------------------------------------------------------
    def reject(self) -> None:
        """Escape, Close and the window's close button: ask only when something would be lost."""
        if not self.is_dirty():
            self.discard()
            return
        box = QMessageBox(self)
        box.setObjectName("discardChanges")
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Discard changes")
        box.setText(f"Discard your changes to this {self.noun}?")
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: self.discard() if button is discard else None)
        self.discard_box = box
        box.open()

    def discard(self) -> None:
        """Close without asking; unsaved changes are dropped."""
        super().reject()

    def done(self, result: int) -> None:
        self._store_timer.stop()
        self._unlisten()
        super().done(result)
