"""One writing process per data directory: a second one is refused clearly, never let in to corrupt it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend import actions
from backend.backend import Backend
from resources import ResourceKind
from resources.errors import DataDirLocked
from tests.helpers.factories import make_peer

REPO = Path(__file__).resolve().parents[2]

# Opens the data directory for writing, says so, then waits for "close" on stdin.
_HOLDER = textwrap.dedent(
    """
    import sys
    from backend.backend import Backend
    backend = Backend(sys.argv[1]).start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "close":
            backend.close()
            print("closed", flush=True)
            break
    """
)

# Tries to open the data directory for writing; prints the outcome as one JSON line.
_CONTENDER = textwrap.dedent(
    """
    import json, sys
    from backend.backend import Backend
    from resources.errors import LeaError
    try:
        backend = Backend(sys.argv[1])
    except LeaError as exc:
        print(json.dumps({"code": exc.code, "message": exc.message, "details": exc.details}))
        sys.exit(3)
    backend.close()
    print(json.dumps({"code": "opened"}))
    """
)


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


@pytest.fixture
def holder(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        _python(_HOLDER, str(data_dir)), cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", f"holder did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _contend(data_dir: Path) -> tuple[int, dict[str, object]]:
    proc = subprocess.run(
        _python(_CONTENDER, str(data_dir)), cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_refused_by(exc: DataDirLocked, data_dir: Path, pid: int) -> None:
    assert exc.code == "data_dir_locked"
    assert str(data_dir) in exc.message
    assert f"pid {pid}" in exc.message
    assert exc.details["path"] == str(data_dir)
    assert exc.details["pid"] == str(pid)


def test_second_process_is_refused_while_the_first_holds_the_directory(
    data_dir: Path, holder: subprocess.Popen[str]
) -> None:
    # Another process (this test process) is refused with a message naming directory and holder.
    with pytest.raises(DataDirLocked) as info:
        Backend(data_dir)
    _assert_refused_by(info.value, data_dir, holder.pid)

    # So is a third, separate interpreter.
    returncode, outcome = _contend(data_dir)
    assert returncode == 3
    assert outcome["code"] == "data_dir_locked"
    message = str(outcome["message"])
    assert str(data_dir) in message and f"pid {holder.pid}" in message
    assert "already in use" in message

    # The refused attempts did not take the lock over or damage anything: the holder still works.
    assert holder.poll() is None

    # After a clean close the lock is free again.
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("close\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "closed"
    assert holder.wait(30) == 0
    with Backend(data_dir).start() as backend:
        actions.store_peer_descriptor(backend.manager, make_peer("after-close"), "test")


def test_lock_is_free_after_the_holder_is_killed(data_dir: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(DataDirLocked):
        Backend(data_dir)
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.wait(30) == -signal.SIGKILL
    returncode, outcome = _contend(data_dir)
    assert (returncode, outcome["code"]) == (0, "opened")
    with Backend(data_dir).start() as backend:
        peer = make_peer("after-kill")
        actions.store_peer_descriptor(backend.manager, peer, "test")
        assert backend.manager.get(ResourceKind.PEER, peer.id) is not None


def test_second_backend_in_the_same_process_is_refused(data_dir: Path) -> None:
    first = Backend(data_dir).start()
    try:
        with pytest.raises(DataDirLocked) as info:
            Backend(data_dir)
        _assert_refused_by(info.value, data_dir, os.getpid())
        # The refused attempt left the first backend fully working.
        actions.store_peer_descriptor(first.manager, make_peer("still-works"), "test")
    finally:
        first.close()
    Backend(data_dir).close()
