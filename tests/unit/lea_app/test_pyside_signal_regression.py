"""Regression guard for the PySide6 pin in pyproject.toml.

PySide6 6.12.0 on Python 3.11 aborts the whole interpreter with "Fatal Python error:
bool_dealloc: deallocating True or False" after a few thousand ``Signal.emit()`` calls: every
emit drops one reference to ``True`` until its refcount reaches zero. On Python 3.12+ the bools
are immortal (PEP 683), so the stray decref is harmless there; 6.11.x on 3.11 is clean too. Hence
pyproject pins ``PySide6-Essentials<6.12`` for Python < 3.12 (environment markers), and this test
fails if a crashing combination is ever installed again. The crash kills the interpreter outright, so the
emits run in a child process and the test checks its exit status and the slot count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

EMITS = 100_000

_CHILD = textwrap.dedent(
    f"""
    import sys
    from PySide6.QtCore import QCoreApplication, QObject, Signal

    class Emitter(QObject):
        flag = Signal(bool)
        number = Signal(int)

    app = QCoreApplication.instance() or QCoreApplication(sys.argv)
    emitter = Emitter()
    counts = {{"flag": 0, "number": 0, "true": 0}}

    def on_flag(value):
        counts["flag"] += 1
        if value:
            counts["true"] += 1

    def on_number(value):
        counts["number"] += 1

    emitter.flag.connect(on_flag)
    emitter.number.connect(on_number)
    for i in range({EMITS}):
        emitter.flag.emit(i % 2 == 0)
        emitter.number.emit(i)
    app.processEvents()
    print("flag", counts["flag"], "true", counts["true"], "number", counts["number"], flush=True)
    """
)


def test_many_signal_emits_do_not_crash_the_interpreter() -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, (
        f"PySide6 child exited with {proc.returncode} (a crashing PySide6/Python combination? "
        f"see the pin in pyproject.toml)\nstdout: {proc.stdout}\nstderr: {proc.stderr[-2000:]}"
    )
    assert proc.stdout.split() == ["flag", str(EMITS), "true", str(EMITS // 2), "number", str(EMITS)]
