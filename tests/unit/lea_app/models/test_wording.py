"""Backend messages in a dialog: no command-line advice, sentence case (Qt-free)."""

from __future__ import annotations

from pathlib import Path

from backend.datadir import DataDirLock
from lea_app.models.wording import for_dialog
from resources.errors import DataDirLocked


def test_the_locked_data_directory_says_what_a_window_user_can_do(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path / "lea.lock").acquire()
    try:
        try:
            DataDirLock(tmp_path / "lea.lock").acquire()
        except DataDirLocked as exc:
            message = exc.message
        else:
            raise AssertionError("a second lock on the same data directory was granted")
    finally:
        first.release()
    assert "--data-dir" in message  # the backend's words, for its command line
    text = for_dialog(message)
    assert "--" not in text and str(tmp_path) in text
    assert text.startswith("Data directory ")
    assert text.endswith("close the other LEA window first, then start LEA again.")


def test_option_advice_goes_and_sentences_are_finished() -> None:
    assert for_dialog("cannot open the port; use --port to choose another") == "Cannot open the port."
    assert for_dialog("backend gone, or pass --connect URL") == "Backend gone."
    assert for_dialog("Nothing to change.") == "Nothing to change."
    assert for_dialog("") == ""
