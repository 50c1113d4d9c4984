"""The small widgets of the editors: inputs, the red rules under them, the changed-under-you banner."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from lea_app.views.editors.problems import Placed
from lea_app.views.message_bar import STYLES


def repolish(widget: QWidget) -> None:
    widget.style().unpolish(widget)
    widget.style().polish(widget)


def mark_invalid(widget: QWidget, rules: Sequence[str]) -> None:
    """A red border, and the rules as tooltip and accessible description (screen readers say why)."""
    invalid = bool(rules)
    if bool(widget.property("invalid")) != invalid:
        widget.setProperty("invalid", invalid)
        repolish(widget)
    text = "; ".join(sentence(rule) for rule in rules)
    widget.setToolTip(text)
    widget.setAccessibleDescription(text)


def set_choices(combo: QComboBox, choices: Sequence[tuple[str, str]], current: str | None, missing: str) -> None:
    """Offer (label, value) choices and keep ``current`` selected; a vanished one stays, labelled ``missing``."""
    if current is not None and all(value != current for _, value in choices):
        choices = [*choices, (missing, current)]
    shown = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    combo.blockSignals(True)
    try:
        if shown != list(choices):
            combo.clear()
            for label, value in choices:
                combo.addItem(label, value)
        combo.setCurrentIndex(combo.findData(current) if current is not None else -1)
    finally:
        combo.blockSignals(False)


def line_edit(placeholder: str = "") -> QLineEdit:
    edit = QLineEdit()
    edit.setPlaceholderText(placeholder)
    return edit


def sentence(text: str) -> str:
    """Sentence case: the first letter capitalised, the rest as written (names keep their case)."""
    return text[:1].upper() + text[1:]


class ErrorLabel(QLabel):
    """The red rule(s) under a field. Its line is reserved while there is nothing to say, so the
    inputs below never move when a rule appears or goes."""

    def __init__(self) -> None:
        super().__init__()
        self.setObjectName("fieldError")
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.setMinimumHeight(self.fontMetrics().lineSpacing())

    def show_rules(self, rules: Sequence[str]) -> None:
        unique = [sentence(rule) for rule in dict.fromkeys(rules)]
        self.setText("\n".join(unique))


class ErrorTarget(Protocol):
    """Something that shows the problems of one top-level field (a single input or a table)."""

    def describe(self, index: int | None, field: str) -> str: ...

    def show_errors(self, errors: Sequence[Placed]) -> None: ...

    def inputs_for(self, where: Placed) -> list[QWidget]:
        """The inputs a problem at ``where`` is about: it is shown once the user changed one of them."""
        ...

    def user_changed(self) -> bool:
        """The user changed the target's structure (added or removed a row): its own problems show."""
        ...


class FieldRow:
    """One form input with its label (buddy, mnemonic) and the error label beneath it."""

    def __init__(self, label_text: str, title: str, widget: QWidget, shown: QWidget | None = None) -> None:
        self.title = title
        self.widget = widget
        self.error = ErrorLabel()
        widget.setAccessibleName(title)
        self.label = QLabel(label_text)
        self.label.setBuddy(widget)
        self.container = QWidget()
        box = QVBoxLayout(self.container)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(shown or widget)
        box.addWidget(self.error)

    def add_to(self, form: QFormLayout) -> None:
        form.addRow(self.label, self.container)

    def describe(self, index: int | None, field: str) -> str:
        return self.title

    def inputs_for(self, where: Placed) -> list[QWidget]:
        return [self.widget]

    def user_changed(self) -> bool:
        return False

    def show_errors(self, errors: Sequence[Placed]) -> None:
        rules = [e.rule for e in errors]
        self.error.show_rules(rules)
        mark_invalid(self.widget, rules)


class Banner(QFrame):
    """The changed-under-you warning, with Reload when there is something newer to load."""

    def __init__(self, on_reload: Callable[[], None]) -> None:
        super().__init__()
        self.setObjectName("changedBanner")
        self.setStyleSheet(f"#changedBanner {{{STYLES['warning']} border-radius:4px;}}")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        layout.addWidget(self.label, 1)
        self.reload_button = QPushButton("&Reload")
        self.reload_button.setAccessibleName("Reload their changes")
        self.reload_button.clicked.connect(on_reload)
        layout.addWidget(self.reload_button)
        self.hide()

    def show_warning(self, text: str, reload: bool) -> None:
        self.label.setText(text)
        self.setAccessibleDescription(text)
        self.reload_button.setVisible(reload)
        self.show()

    @property
    def text(self) -> str:
        return self.label.text()
